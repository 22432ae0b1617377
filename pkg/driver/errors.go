package driver

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/localnvme/localnvme/pkg/volume"
)

// The node service's error classes. Like the engine's sentinels (pkg/volume/errors.go),
// each names a situation and toStatus maps it to one gRPC code; node.go and paths.go wrap
// them through classErrorf, so the message stays the operator's alone and the cause stays
// in the chain (%w). Only request checks (a missing field, a path that is not absolute and
// clean, a bad capability or capacity range) answer InvalidArgument directly (invalid,
// checkPath), before anything looks at the host or LVM.
var (
	// errHost: the node's OS failed, or did not do what it was asked: reading the mount
	// table, inspecting, creating or removing a path, mount, unmount, stat, statfs.
	errHost = errors.New("host operation failed")
	// errMountConflict: the path has something mounted that is not this volume (staging
	// path, publish target, or a foreign mount unstage/unpublish leaves alone).
	errMountConflict = errors.New("something else is mounted at the path")
	// errPathOccupied: the path holds something the driver did not make (entries, bytes, a
	// device node, a dangling symlink): never mounted over, never removed.
	errPathOccupied = errors.New("the path holds something else")
	// errOutsideKubeletDir: the path resolves outside kubelet's directory.
	errOutsideKubeletDir = errors.New("the path resolves outside kubelet's directory")
	// errFSTypeMismatch: the capability asks for another filesystem than the one recorded.
	errFSTypeMismatch = errors.New("filesystem type differs from the recorded one")
	// errNotStaged: a filesystem publish whose staging path does not hold this volume.
	errNotStaged = errors.New("volume not staged")
	// errSingleWriter: SINGLE_NODE_SINGLE_WRITER and the volume is published elsewhere.
	errSingleWriter = errors.New("single-writer volume already published")
	// errCloneCopying: a clone whose block copy has not completed (retrying will do).
	errCloneCopying = errors.New("clone copy not completed")
	// errNotAtPath: the volume is not at the volume_path of NodeGetVolumeStats or
	// NodeExpandVolume (the CSI spec's NotFound), or not active on this node.
	errNotAtPath = errors.New("volume not at path")
	// errNotVolumeID: not a localnvme volume ID (unstage and unpublish parse it without LVM).
	errNotVolumeID = errors.New("not a localnvme volume ID")
)

// statusCodes maps every error class to its code; the first class in an error's chain, in
// this order, picks the code. The node service's classes come first: one may wrap an
// engine error whose own class would say otherwise (a volume that is "not at this path"
// because its device check failed is NotFound, not FailedPrecondition).
var statusCodes = []struct {
	class error
	code  codes.Code
}{
	{errHost, codes.Internal},
	{errMountConflict, codes.FailedPrecondition},
	{errPathOccupied, codes.FailedPrecondition},
	{errOutsideKubeletDir, codes.FailedPrecondition},
	{errFSTypeMismatch, codes.FailedPrecondition},
	{errNotStaged, codes.FailedPrecondition},
	{errSingleWriter, codes.FailedPrecondition},
	{errCloneCopying, codes.Unavailable},
	{errNotAtPath, codes.NotFound},
	{errNotVolumeID, codes.NotFound},

	{volume.ErrNotFound, codes.NotFound},
	{volume.ErrAlreadyExists, codes.AlreadyExists},
	{volume.ErrInvalid, codes.InvalidArgument},
	{volume.ErrOutOfRange, codes.OutOfRange},
	{volume.ErrNoSpace, codes.ResourceExhausted},
	{volume.ErrPrecondition, codes.FailedPrecondition},
	{volume.ErrUnavailable, codes.Unavailable},
	{volume.ErrUnimplemented, codes.Unimplemented},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// toStatus is the one place where errors become gRPC codes: a status error (a request
// check) passes through; otherwise the first class of statusCodes in the chain picks the
// code, an exec killed at its own limit is Unavailable, and anything else is Internal. The
// message is the error's, unchanged.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	for _, c := range statusCodes {
		if errors.Is(err, c.class) {
			return c.code
		}
	}
	if isTimeout(err) {
		return codes.Unavailable // an exec killed at its own limit (lvm.Error.Timeout)
	}
	return codes.Internal
}

// classError is an error of a class (one of statusCodes) whose message does not print the
// class: the message is the part of the contract operators read, the class picks the code.
type classError struct {
	class error
	err   error
}

func (e *classError) Error() string   { return e.err.Error() }
func (e *classError) Unwrap() []error { return []error{e.class, e.err} }

// classErrorf is fmt.Errorf(format, args...) (with %w for causes) in class.
func classErrorf(class error, format string, args ...any) error {
	return &classError{class: class, err: fmt.Errorf(format, args...)}
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
