package driver

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/localnvme/localnvme/pkg/volume"
)

// toStatus is the one place where engine errors become gRPC codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, volume.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, volume.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, volume.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, volume.ErrOutOfRange):
		code = codes.OutOfRange
	case errors.Is(err, volume.ErrNoSpace):
		code = codes.ResourceExhausted
	case errors.Is(err, volume.ErrPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, volume.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, volume.ErrUnimplemented):
		code = codes.Unimplemented
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case isTimeout(err):
		code = codes.Unavailable // an exec killed at its own limit (lvm.Error.Timeout)
	}
	return status.Error(code, err.Error())
}

func invalid(msg string) error { return status.Error(codes.InvalidArgument, msg) }

// notInControllerMode refuses an RPC in controller mode. Unimplemented is the CSI spec's
// code for an RPC "disabled in the Plugin's current mode of operation"; retrying cannot help.
func notInControllerMode(method string) error {
	return status.Errorf(codes.Unimplemented,
		"%s is not served by the localnvme controller: %s volumes are served by the node plugin (localnvme node) on the node that holds them",
		method, DriverName)
}

// isTimeout: something in err's chain says it timed out (an exec killed at its limit).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
