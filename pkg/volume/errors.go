package volume

import (
	"errors"
	"fmt"
)

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

// kindError carries an error class without printing it: for messages whose beginning is
// part of the contract ("volume lost: …", "fenced: …"), which "%w: …" would prefix with the
// class's text.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorfKind is fmt.Errorf(format, args...) that also matches errors.Is(err, kind).
func errorfKind(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
