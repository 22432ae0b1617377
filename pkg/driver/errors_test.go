package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Every error class has one code, chosen in toStatus; a class wrapped (classErrorf, then
// %w again by a caller) keeps its code, its message (the class's text is not printed) and
// its cause (errors.Is and errors.As reach both).
func TestErrorClassCodes(t *testing.T) {
	want := map[error]codes.Code{
		errHost:              codes.Internal,
		errMountConflict:     codes.FailedPrecondition,
		errPathOccupied:      codes.FailedPrecondition,
		errOutsideKubeletDir: codes.FailedPrecondition,
		errFSTypeMismatch:    codes.FailedPrecondition,
		errNotStaged:         codes.FailedPrecondition,
		errSingleWriter:      codes.FailedPrecondition,
		errCloneCopying:      codes.Unavailable,
		errNotAtPath:         codes.NotFound,
		errNotVolumeID:       codes.NotFound,

		volume.ErrNotFound:       codes.NotFound,
		volume.ErrAlreadyExists:  codes.AlreadyExists,
		volume.ErrInvalid:        codes.InvalidArgument,
		volume.ErrOutOfRange:     codes.OutOfRange,
		volume.ErrNoSpace:        codes.ResourceExhausted,
		volume.ErrPrecondition:   codes.FailedPrecondition,
		volume.ErrUnavailable:    codes.Unavailable,
		volume.ErrUnimplemented:  codes.Unimplemented,
		context.DeadlineExceeded: codes.DeadlineExceeded,
		context.Canceled:         codes.Canceled,
	}
	// every class toStatus knows is listed here, so a new one cannot go untested
	for _, c := range statusCodes {
		if _, ok := want[c.class]; !ok {
			t.Errorf("class %q has no expected code in this test", c.class)
		}
	}
	if len(statusCodes) != len(want) {
		t.Errorf("toStatus knows %d classes, the test %d", len(statusCodes), len(want))
	}
	cause := &fs.PathError{Op: "mount", Path: "/staging", Err: errors.New("device busy")}
	for class, code := range want {
		t.Run(class.Error(), func(t *testing.T) {
			err := classErrorf(class, "doing it at %s: %w", "/p", cause)
			for _, e := range []error{err, fmt.Errorf("outer: %w", err)} {
				st := status.Convert(toStatus(e))
				if st.Code() != code {
					t.Errorf("toStatus(%v) = %s, want %s", e, st.Code(), code)
				}
				if st.Message() != e.Error() {
					t.Errorf("message %q, want the error's %q", st.Message(), e.Error())
				}
				if !errors.Is(e, class) {
					t.Errorf("errors.Is(%v, class) = false", e)
				}
				var pe *fs.PathError
				if !errors.Is(e, cause) || !errors.As(e, &pe) || pe != cause {
					t.Errorf("the cause is not in %v's chain", e)
				}
			}
			if got := err.Error(); got != "doing it at /p: mount /staging: device busy" {
				t.Errorf("message %q: the class's text must not be printed", got)
			}
		})
	}
}

// The first class in statusCodes' order picks the code: the node's classes over the
// engine's, a classified error over an exec timeout; an unclassified timeout is
// Unavailable; a status error (a request check) passes through unchanged.
func TestErrorClassPrecedence(t *testing.T) {
	devErr := fmt.Errorf("%w: device /dev/vg/lv of volume v is not available", volume.ErrPrecondition)
	timeout := &disk.BlkidError{Device: "/dev/vg/lv", ExitCode: -1, TimedOut: true, Err: errors.New("killed after 2m0s")}
	for _, tt := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"not at path over the device check's precondition", classErrorf(errNotAtPath, "volume v is not active on this node: %w", devErr), codes.NotFound},
		{"host failure over a timeout in its cause", classErrorf(errHost, "mounting: %w", timeout), codes.Internal},
		{"an unclassified timeout", fmt.Errorf("probing: %w", timeout), codes.Unavailable},
		{"an engine class over a timeout", fmt.Errorf("%w: probing: %w", volume.ErrUnavailable, timeout), codes.Unavailable},
		{"unclassified", errors.New("lvm exploded"), codes.Internal},
		{"a status error", status.Error(codes.InvalidArgument, "volume_id missing"), codes.InvalidArgument},
	} {
		if got := status.Code(toStatus(tt.err)); got != tt.code {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.code)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
