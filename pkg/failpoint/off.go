//go:build !failpoints

package failpoint

// Enabled is true in a build with the tag `failpoints`.
const Enabled = false

// Hit marks a crash point. Without the build tag `failpoints` it does nothing (and is
// inlined away).
func Hit(string) {}
