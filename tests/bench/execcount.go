package bench

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	utilexec "k8s.io/utils/exec"
)

// ExecCounter is a utilexec.Interface that counts the commands it starts, by Key, and hands
// every call unchanged to the wrapped Interface. The benchmark builds the node with it
// (node.Options.Exec) and reads Snapshot before and after each RPC: the difference is what
// that RPC executed. It changes nothing else: same commands, same arguments, same results.
type ExecCounter struct {
	utilexec.Interface

	mu     sync.Mutex
	counts Counts
}

// Counts are commands started, by Key.
type Counts map[string]int

// NewExecCounter wraps inner.
func NewExecCounter(inner utilexec.Interface) *ExecCounter {
	return &ExecCounter{Interface: inner, counts: Counts{}}
}

// Key names a command for counting: the base name of the binary, and for lvm also its
// subcommand ("lvm lvcreate"), since one lvm binary does everything.
func Key(cmd string, args []string) string {
	k := filepath.Base(cmd)
	if k == "lvm" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		k += " " + args[0]
	}
	return k
}

// Add counts one command (the counting Host uses it for mount(8) and umount(8)).
func (c *ExecCounter) Add(key string) {
	c.mu.Lock()
	c.counts[key]++
	c.mu.Unlock()
}

// OnLVMCommand counts an lvm command run in an lvm shell (node.Options.LVMOnCommand); one
// run as a process is counted when it is started.
func (c *ExecCounter) OnLVMCommand(sub string, shell bool) {
	if shell {
		c.Add("lvm " + sub)
	}
}

// Command implements utilexec.Interface.
func (c *ExecCounter) Command(cmd string, args ...string) utilexec.Cmd {
	c.Add(Key(cmd, args))
	return c.Interface.Command(cmd, args...)
}

// CommandContext implements utilexec.Interface.
func (c *ExecCounter) CommandContext(ctx context.Context, cmd string, args ...string) utilexec.Cmd {
	c.Add(Key(cmd, args))
	return c.Interface.CommandContext(ctx, cmd, args...)
}

// Snapshot returns a copy of the counts so far.
func (c *ExecCounter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(Counts, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Sub returns after minus before, without zero entries.
func (after Counts) Sub(before Counts) Counts {
	out := Counts{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Add adds o into c.
func (c Counts) Add(o Counts) {
	for k, v := range o {
		c[k] += v
	}
}

// Total is the number of commands.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// PerOp divides every count by ops.
func (c Counts) PerOp(ops int) map[string]float64 {
	out := map[string]float64{}
	if ops <= 0 {
		return out
	}
	for k, v := range c {
		out[k] = float64(v) / float64(ops)
	}
	return out
}

// FormatPerOp renders per-op counts compactly, most frequent first: "lvm fullreport 2,
// lvm lvcreate 1, blkid 1" (fractions with one decimal).
func FormatPerOp(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+fmtNum(m[k]))
	}
	return strings.Join(parts, ", ")
}
