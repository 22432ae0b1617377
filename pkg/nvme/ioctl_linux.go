package nvme

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// passthruCmd is the kernel's struct nvme_passthru_cmd (alias nvme_admin_cmd) from
// include/uapi/linux/nvme_ioctl.h: 72 bytes, no implicit padding.
type passthruCmd struct {
	opcode      uint8
	flags       uint8
	rsvd1       uint16
	nsid        uint32
	cdw2        uint32
	cdw3        uint32
	metadata    uint64
	addr        uint64
	metadataLen uint32
	dataLen     uint32
	cdw10       uint32
	cdw11       uint32
	cdw12       uint32
	cdw13       uint32
	cdw14       uint32
	cdw15       uint32
	timeoutMS   uint32
	result      uint32
}

// ioctlAdminCmd is NVME_IOCTL_ADMIN_CMD = _IOWR('N', 0x41, struct nvme_admin_cmd).
const ioctlAdminCmd = 3<<30 | uintptr(unsafe.Sizeof(passthruCmd{}))<<16 | 'N'<<8 | 0x41

// IoctlAdmin sends admin commands with the NVMe admin passthrough ioctl. Expect to need
// CAP_SYS_ADMIN (the ioctl fails with EACCES/EPERM otherwise).
type IoctlAdmin struct{}

// AdminCmd opens path read-only, issues cmd with data as the transfer buffer (the
// direction is implied by the opcode; Identify and Get Log Page read into data) and
// closes it. A positive ioctl result is the NVMe status.
func (IoctlAdmin) AdminCmd(path string, cmd *Command, data []byte) (uint32, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = unix.Close(fd) }() // read only

	pc := passthruCmd{
		opcode:    cmd.Opcode,
		nsid:      cmd.NSID,
		cdw10:     cmd.CDW10,
		cdw11:     cmd.CDW11,
		cdw12:     cmd.CDW12,
		cdw13:     cmd.CDW13,
		cdw14:     cmd.CDW14,
		cdw15:     cmd.CDW15,
		timeoutMS: cmd.TimeoutMS,
		dataLen:   uint32(len(data)),
	}
	if len(data) > 0 {
		pc.addr = uint64(uintptr(unsafe.Pointer(&data[0])))
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlAdminCmd, uintptr(unsafe.Pointer(&pc)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return 0, fmt.Errorf("NVME_IOCTL_ADMIN_CMD opcode 0x%02x on %s: %w", cmd.Opcode, path, errno)
	}
	return uint32(r), nil
}
