package lvm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// OSShellStarter starts real lvm shells (os/exec: the report fd is an extra file, which
// k8s.io/utils/exec cannot pass).
type OSShellStarter struct{}

var _ ShellStarter = OSShellStarter{}

// Prepare writes the profile unless it already holds ShellProfile (atomically: a
// temporary file renamed over it).
func (OSShellStarter) Prepare(profileDir string) error {
	path := filepath.Join(profileDir, ShellProfileName+".profile")
	if b, err := os.ReadFile(path); err == nil && string(b) == ShellProfile {
		return nil
	}
	if err := os.MkdirAll(profileDir, 0o755); err != nil { //nolint:gosec // G301: LVM's profile directory (/etc/lvm/profile is 0755)
		return err
	}
	tmp, err := os.CreateTemp(profileDir, "."+ShellProfileName+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after the rename there is nothing to remove
	if _, err := tmp.WriteString(ShellProfile); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Start starts lvmPath as a shell with its report fd (3) on a pipe.
func (OSShellStarter) Start(lvmPath string, env []string) (ShellProcess, error) {
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(lvmPath)
	cmd.Env = append(slices.Clip(env), "LVM_REPORT_FD=3") // never into the caller's array
	cmd.ExtraFiles = []*os.File{repW}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		_ = repR.Close()
		_ = repW.Close()
		return nil, err
	}
	p := &osShell{cmd: cmd, stdin: stdin, docs: make(chan []byte, 1), killed: make(chan struct{}), diag: &tailBuffer{max: 4096}}
	cmd.Stdout = p.diag
	cmd.Stderr = p.diag
	// its own process group: a signal to the plugin's group does not reach it mid-command
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = repR.Close()
		_ = repW.Close()
		return nil, fmt.Errorf("starting %s: %w", lvmPath, err)
	}
	_ = repW.Close() // the shell has its copy
	go p.readDocs(repR)
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// osShell is a running lvm shell process.
type osShell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	docs  chan []byte
	diag  *tailBuffer

	killOnce sync.Once
	killed   chan struct{} // closed by Kill: nobody reads docs any more
}

func (p *osShell) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

func (p *osShell) Docs() <-chan []byte { return p.docs }

func (p *osShell) Kill() {
	p.killOnce.Do(func() {
		close(p.killed)
		_ = p.stdin.Close()
		if p.cmd.Process != nil {
			_ = p.cmd.Process.Kill()
		}
	})
}

func (p *osShell) Diagnostics() string { return p.diag.String() }

// readDocs splits the report stream into JSON documents until it ends.
func (p *osShell) readDocs(r *os.File) {
	defer close(p.docs)
	defer func() { _ = r.Close() }()
	dec := json.NewDecoder(r)
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if !errors.Is(err, io.EOF) {
				_, _ = fmt.Fprintf(p.diag, "\n(report stream: %v)", err) // a tailBuffer never fails
			}
			return
		}
		select {
		case p.docs <- bytes.Clone(doc):
		case <-p.killed:
			return
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
