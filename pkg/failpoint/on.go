//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Enabled is true in a build with the tag `failpoints`.
const Enabled = true

// armed is read once, when the process starts.
var armed = parse(os.Getenv(EnvVar))

// parse reads a comma-separated list of point names. An unknown name stops the process: a
// test armed at a point that does not exist would otherwise run unarmed and pass.
func parse(v string) map[string]bool {
	out := map[string]bool{}
	for _, name := range strings.Split(v, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !known(name) {
			fmt.Fprintf(os.Stderr, "%s: unknown crash point %q (known: %s)\n", EnvVar, name, strings.Join(Points, ", "))
			os.Exit(2)
		}
		out[name] = true
	}
	return out
}

// Hit kills the process with SIGKILL when the point is armed: one line on stderr (written
// directly, not through the buffered logger), then no deferred call, no flush, no cleanup.
func Hit(name string) {
	if !armed[name] {
		return
	}
	fmt.Fprintf(os.Stderr, "%s\n", Message(name))
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; never return to the caller
}
