package failpoint

import "fmt"

// Message is the line a process armed at name writes to stderr just before it kills itself.
func Message(name string) string {
	return fmt.Sprintf("failpoint %s: killing the process with SIGKILL", name)
}
