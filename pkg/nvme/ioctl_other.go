//go:build !linux

package nvme

import (
	"errors"
	"runtime"
)

// IoctlAdmin is only implemented on Linux.
type IoctlAdmin struct{}

// AdminCmd always fails off Linux.
func (IoctlAdmin) AdminCmd(path string, cmd *Command, data []byte) (uint32, error) {
	return 0, errors.New("nvme admin passthrough is not supported on " + runtime.GOOS)
}
