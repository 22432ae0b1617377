package volume

import (
	"context"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/localnvme/localnvme/pkg/failpoint"
)

// DeviceIO is the BlockIO of the node: plain reads and writes for copies, the BLKZEROOUT
// ioctl for zeroing.
type DeviceIO struct{}

var _ BlockIO = DeviceIO{}

const (
	copyChunk = 4 << 20
	// zeroChunk bounds one BLKZEROOUT call, so that ctx is checked between calls.
	zeroChunk = 1 << 30
)

// Copy copies size bytes from src to dst and syncs dst. It checks ctx between chunks.
func (DeviceIO) Copy(ctx context.Context, src, dst string, size uint64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer func() { _ = out.Close() }() // on the error paths; the copy's end closes it and checks
	buf := make([]byte, copyChunk)
	var done uint64
	for done < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := uint64(len(buf))
		if size-done < n {
			n = size - done
		}
		if _, err := io.ReadFull(in, buf[:n]); err != nil {
			return fmt.Errorf("reading %s at %d: %w", src, done, err)
		}
		if _, err := out.Write(buf[:n]); err != nil {
			return fmt.Errorf("writing %s at %d: %w", dst, done, err)
		}
		if done == 0 {
			failpoint.Hit(failpoint.CloneCopyChunk)
		}
		done += n
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// Zero makes length bytes of dev from offset read as zeros with BLKZEROOUT: the kernel sends
// the device's Write Zeroes command where it has one (NVMe Write Zeroes, passed through
// device-mapper) and writes zero pages otherwise; either way the range reads zeros after,
// which a discard does not promise. It never deallocates on the kernel's initiative
// (BLKZEROOUT asks for no unmap) and drops the page cache of the range. offset and length
// must be multiples of the logical block size (LV sizes are multiples of the extent size).
// It checks ctx between 1 GiB calls and syncs at the end.
func (DeviceIO) Zero(ctx context.Context, dev string, offset, length uint64) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // on the error paths; the end closes it and checks
	for done := uint64(0); done < length; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(uint64(zeroChunk), length-done)
		r := [2]uint64{offset + done, n}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r))); errno != 0 {
			return fmt.Errorf("BLKZEROOUT %s at %d (+%d bytes): %w", dev, offset+done, n, errno)
		}
		done += n
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
