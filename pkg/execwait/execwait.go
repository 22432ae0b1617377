// Package execwait bounds how long a caller waits for a command that was killed.
//
// A command started with CommandContext is killed when its context ends, but Wait returns
// only when the process has exited, and a process in uninterruptible I/O does not exit
// until the I/O completes. Measured in the VM: `blkid -p` of a device-mapper device that is
// suspended (its reads queue) takes SIGKILL, then hangs in the exit's last close of the
// device, which waits for the queued read. On a device that never answers, the caller would
// wait forever. Run returns ErrNotExited a grace period after the context ended instead, and
// leaves the process to be reaped in the background when it finally exits.
package execwait

import (
	"context"
	"errors"
	"time"

	utilexec "k8s.io/utils/exec"
)

// DefaultGrace is how long Run waits for a killed command to exit.
const DefaultGrace = 10 * time.Second

// ErrNotExited: the command was killed (its context ended) but had not exited a grace
// period later. Its output buffers are still the command's: the caller must not read them.
var ErrNotExited = errors.New("killed but not exited (a process in uninterruptible I/O: the device does not answer)")

// Run runs cmd, which must have been created with CommandContext(ctx, …), and returns its
// error; or ErrNotExited when ctx ended and the process had not exited grace later.
func Run(ctx context.Context, cmd utilexec.Cmd, grace time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return ErrNotExited
	}
}
