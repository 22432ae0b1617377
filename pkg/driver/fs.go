package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/execwait"
	"github.com/localnvme/localnvme/pkg/volume"
)

// filesystems creates and grows filesystems through exec.
type filesystems struct {
	exec utilexec.Interface
}

// mkfsCommand returns the mkfs command line for a device. It never passes a "force" flag.
// That is a second line of defence for xfs only: mkfs.xfs refuses a device with a
// filesystem signature unless -f is given, but mke2fs asks "Proceed anyway?" only when
// stdin is a terminal and otherwise overwrites. The guard is the blkid probe before mkfs
// (ensureFilesystem: only a provably blank device is formatted).
func mkfsCommand(fsType, dev string) (string, []string, error) {
	switch fsType {
	case "ext4":
		// No reserved blocks: a database volume is not a root filesystem.
		return "mkfs.ext4", []string{"-q", "-m", "0", dev}, nil
	case "xfs":
		return "mkfs.xfs", []string{"-q", dev}, nil
	}
	return "", nil, fmt.Errorf("unsupported filesystem %q", fsType)
}

// mountOptions adds what every mount of fsType needs: xfs refuses two mounted filesystems
// with one UUID, and clones/snapshots share their source's UUID.
func mountOptions(fsType string, flags []string, readOnly bool) []string {
	opts := append([]string{}, flags...)
	if fsType == "xfs" {
		opts = append(opts, "nouuid")
	}
	if readOnly {
		opts = append(opts, "ro")
	}
	return opts
}

// mkfsTimeout bounds one mkfs: a device that stops answering must not wedge the stage.
const mkfsTimeout = 15 * time.Minute

// format runs mkfs.
func (f *filesystems) format(ctx context.Context, fsType, dev string) error {
	name, args, err := mkfsCommand(fsType, dev)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, mkfsTimeout)
	defer cancel()
	cmd := f.exec.CommandContext(cctx, name, args...)
	cmd.SetStdin(strings.NewReader(""))
	var buf bytes.Buffer
	cmd.SetStdout(&buf)
	cmd.SetStderr(&buf)
	err = execwait.Run(cctx, cmd, execwait.DefaultGrace)
	if errors.Is(err, execwait.ErrNotExited) {
		// stuck in the kernel on the device; its output is still its own
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: the caller gave up (%w) and the killed command had not exited %s later: %w", name, strings.Join(args, " "), ctx.Err(), execwait.DefaultGrace, err)
		}
		return fmt.Errorf("%w: %s %s did not finish within %s and was killed, and had not exited %s later: %w", volume.ErrUnavailable, name, strings.Join(args, " "), mkfsTimeout, execwait.DefaultGrace, err)
	}
	out := buf.Bytes()
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return fmt.Errorf("%w: %s %s did not finish within %s and was killed: %s", volume.ErrUnavailable, name, strings.Join(args, " "), mkfsTimeout, strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	klog.FromContext(ctx).Info("Formatted volume", "fsType", fsType, "device", dev)
	return nil
}

// resizeTimeout bounds one filesystem grow (blkid, then resize2fs or xfs_growfs).
const resizeTimeout = 15 * time.Minute

// ctxExec runs every command under ctx: mount-utils' ResizeFs calls Command, not
// CommandContext, so without it a wedged resize2fs would hold the volume's lock forever.
type ctxExec struct {
	utilexec.Interface
	ctx context.Context
}

func (e ctxExec) Command(cmd string, args ...string) utilexec.Cmd {
	return e.Interface.CommandContext(e.ctx, cmd, args...)
}

// resize grows the filesystem on dev mounted at mountPath to fill the device, under ctx and
// resizeTimeout (an online grow is journaled by the kernel: killing the tool mid-way leaves
// the filesystem consistent, at its old or new size).
func (f *filesystems) resize(ctx context.Context, dev, mountPath string) error {
	cctx, cancel := context.WithTimeout(ctx, resizeTimeout)
	defer cancel()
	if _, err := mount.NewResizeFs(ctxExec{f.exec, cctx}).Resize(dev, mountPath); err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return fmt.Errorf("%w: growing the filesystem on %s did not finish within %s and was killed: %w", volume.ErrUnavailable, dev, resizeTimeout, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("growing filesystem on %s: %w", dev, ctx.Err())
		}
		return fmt.Errorf("growing filesystem on %s: %w", dev, err)
	}
	return nil
}
