package nvme

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestPassthruLayout(t *testing.T) {
	var pc passthruCmd
	if got := unsafe.Sizeof(pc); got != 72 {
		t.Errorf("sizeof(nvme_passthru_cmd) = %d, want 72", got)
	}
	offsets := []struct {
		name      string
		got, want uintptr
	}{
		{"nsid", unsafe.Offsetof(pc.nsid), 4},
		{"metadata", unsafe.Offsetof(pc.metadata), 16},
		{"addr", unsafe.Offsetof(pc.addr), 24},
		{"data_len", unsafe.Offsetof(pc.dataLen), 36},
		{"cdw10", unsafe.Offsetof(pc.cdw10), 40},
		{"cdw15", unsafe.Offsetof(pc.cdw15), 60},
		{"timeout_ms", unsafe.Offsetof(pc.timeoutMS), 64},
		{"result", unsafe.Offsetof(pc.result), 68},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, want %d", o.name, o.got, o.want)
		}
	}
	if ioctlAdminCmd != 0xC0484E41 {
		t.Errorf("NVME_IOCTL_ADMIN_CMD = %#x, want 0xc0484e41", ioctlAdminCmd)
	}
}

func TestIoctlAdminErrors(t *testing.T) {
	_, err := IoctlAdmin{}.AdminCmd(filepath.Join(t.TempDir(), "nvme9"), &Command{Opcode: OpIdentify}, make([]byte, 4096))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing device: err = %v, want ErrNotExist", err)
	}
	// A regular file does not know the ioctl (ENOTTY).
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (IoctlAdmin{}).AdminCmd(f, &Command{Opcode: OpIdentify}, make([]byte, 4096)); err == nil {
		t.Error("ioctl on a regular file succeeded")
	}
}
