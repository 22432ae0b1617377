//go:build !failpoints

package failpoint

import (
	"os"
	"testing"
)

// Without the build tag nothing is armed, whatever the environment says.
func TestHitIsANoOpWithoutTheTag(t *testing.T) {
	if Enabled {
		t.Fatal("Enabled without the failpoints tag")
	}
	t.Setenv(EnvVar, CreateAfterLVCreate)
	for _, p := range Points {
		Hit(p)
	}
	if os.Getpid() == 0 {
		t.Fatal("unreachable")
	}
}
