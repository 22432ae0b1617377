package volume

import "errors"

// Error classes. The engine wraps them with %w and a precise message; the CSI service layer
// maps each to one gRPC code (see pkg/driver/errors.go) and nothing below it picks codes.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrInvalid       = errors.New("invalid argument")
	ErrOutOfRange    = errors.New("out of range")
	ErrNoSpace       = errors.New("insufficient capacity")
	ErrPrecondition  = errors.New("failed precondition")
	ErrUnavailable   = errors.New("unavailable")
	ErrUnimplemented = errors.New("unimplemented")
)

func isKind(err, kind error) bool { return errors.Is(err, kind) }
