package lvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeShells is a ShellStarter whose shells answer each line with answer(line); an answer
// of "" leaves the command running forever, "EXIT" ends the shell.
type fakeShells struct {
	mu       sync.Mutex
	answer   func(line string) string
	started  int
	lines    []string
	killed   int
	prepared []string
	startErr error
	env      []string
}

func (f *fakeShells) Prepare(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepared = append(f.prepared, dir)
	return nil
}

func (f *fakeShells) Start(lvmPath string, env []string) (ShellProcess, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	f.started++
	f.env = env
	return &fakeShell{f: f, docs: make(chan []byte, 1)}, nil
}

func (f *fakeShells) counts() (started, killed int, lines []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started, f.killed, append([]string(nil), f.lines...)
}

type fakeShell struct {
	f      *fakeShells
	docs   chan []byte
	closed bool
}

func (p *fakeShell) Send(line string) error {
	p.f.mu.Lock()
	p.f.lines = append(p.f.lines, line)
	p.f.mu.Unlock()
	switch a := p.f.answer(line); a {
	case "":
	case "EXIT":
		close(p.docs)
		p.closed = true
	default:
		p.docs <- []byte(a)
	}
	return nil
}
func (p *fakeShell) Docs() <-chan []byte { return p.docs }
func (p *fakeShell) Kill() {
	p.f.mu.Lock()
	p.f.killed++
	p.f.mu.Unlock()
}
func (p *fakeShell) Diagnostics() string { return "diag" }

func shellDoc(ret int, report string, msgs ...string) string {
	var b strings.Builder
	b.WriteString("{")
	if report != "" {
		b.WriteString(`"report": ` + report + ",")
	}
	b.WriteString(`"log": [`)
	for _, m := range msgs {
		fmt.Fprintf(&b, `{"log_type":"error","log_context":"processing","log_message":%q,"log_ret_code":"0"},`, m)
	}
	status := "success"
	if ret != 1 {
		status = "failure"
	}
	fmt.Fprintf(&b, `{"log_type":"status","log_context":"shell","log_message":%q,"log_ret_code":"%d"}]}`, status, ret)
	return b.String()
}

func enabledClient(t *testing.T, f *fakeShells, o Options) (*Client, *fakeLVM) {
	t.Helper()
	ex := newFake(t, result{stdout: "profile_dir=\"/etc/lvm/profile\"\n"})
	c := New(ex.fe, o)
	if err := c.EnableShell(context.Background(), f); err != nil {
		t.Fatalf("EnableShell: %v", err)
	}
	return c, ex
}

func TestShellRunsCommands(t *testing.T) {
	f := &fakeShells{answer: func(line string) string {
		switch {
		case strings.HasPrefix(line, "version"):
			return shellDoc(1, "")
		case strings.HasPrefix(line, "lvcreate") && strings.Contains(line, " dup "):
			return shellDoc(5, "", `Logical Volume "dup" already exists in volume group "vg1"`)
		case strings.HasPrefix(line, "lvcreate"):
			return shellDoc(1, "")
		case strings.HasPrefix(line, "fullreport"):
			return shellDoc(1, `[{"vg":[{"vg_name":"vg1","vg_uuid":"u1","vg_size":"100","vg_free":"50","vg_extent_size":"4"}],"pv":[],"lv":[],"seg":[]}]`)
		}
		return shellDoc(3, "", "unexpected")
	}}
	var cmds []string
	c, ex := enabledClient(t, f, Options{Config: `devices/filter=[ "a|.*|" ]`, OnCommand: func(sub string, shell bool) { cmds = append(cmds, fmt.Sprintf("%s %v", sub, shell)) }})
	if got := ex.argv(0)[1:]; strings.Join(got, " ") != `config --config devices/filter=[ "a|.*|" ] --typeconfig full config/profile_dir` {
		t.Errorf("profile dir asked with %q", got)
	}
	if len(f.prepared) != 1 || f.prepared[0] != "/etc/lvm/profile" {
		t.Errorf("profile prepared in %v", f.prepared)
	}
	ctx := context.Background()
	if err := c.CreateLV(ctx, CreateLVOptions{VG: "vg1", Name: "lv1", Size: 8 << 20, Tags: []string{"lnv.kind=volume"}}); err != nil {
		t.Fatalf("CreateLV: %v", err)
	}
	err := c.CreateLV(ctx, CreateLVOptions{VG: "vg1", Name: "dup", Size: 8 << 20})
	var lerr *Error
	if !errors.Is(err, ErrAlreadyExists) || !errors.As(err, &lerr) || lerr.ExitCode != 5 || !strings.Contains(lerr.Stderr, "already exists") {
		t.Errorf("CreateLV of an existing LV: %v", err)
	}
	rep, err := c.ReportVG(ctx, "vg1")
	if err != nil || rep.VGByName("vg1") == nil || rep.VGByName("vg1").Free != 50 {
		t.Errorf("ReportVG: %+v, %v", rep, err)
	}
	started, _, lines := f.counts()
	// one shell node-wide (version), one for vg1
	if started != 2 {
		t.Errorf("%d shells started, want 2", started)
	}
	if want := `lvcreate --config 'devices/filter=[ "a|.*|" ]' --yes -ay -Zy -Wy --addtag lnv.kind=volume -L 8388608b -n lv1 vg1`; lines[1] != want {
		t.Errorf("line sent\n got %s\nwant %s", lines[1], want)
	}
	if ex.calls() != 1 {
		t.Errorf("%d processes run, want only `lvm config`", ex.calls())
	}
	if strings.Join(cmds, ",") != "config false,version true,lvcreate true,lvcreate true,fullreport true" {
		t.Errorf("OnCommand saw %v", cmds)
	}
	if !strings.Contains(strings.Join(f.env, " "), "LVM_COMMAND_PROFILE="+ShellProfileName) {
		t.Errorf("shell env %v", f.env)
	}
}

// A command that does not finish in time kills its shell; the next command starts another.
// Another VG's shell answers meanwhile.
func TestShellTimeoutKillsShell(t *testing.T) {
	hang := make(chan struct{})
	f := &fakeShells{answer: func(line string) string {
		if strings.Contains(line, "hang") {
			close(hang)
			return ""
		}
		return shellDoc(1, "")
	}}
	c, _ := enabledClient(t, f, Options{CommandTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- c.RemoveLV(ctx, "vg1", "hang") }()
	<-hang
	start := time.Now()
	if err := c.RemoveLV(ctx, "vg2", "other"); err != nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("vg2 while vg1 hangs: %v after %s", err, time.Since(start))
	}
	err := <-done
	var lerr *Error
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &lerr) || !lerr.Timeout() {
		t.Fatalf("hung command: %v", err)
	}
	if err := c.RemoveLV(ctx, "vg1", "next"); err != nil {
		t.Fatalf("next command on vg1: %v", err)
	}
	started, killed, _ := f.counts()
	if killed != 1 || started != 4 { // node-wide, vg1, vg2, vg1 again
		t.Errorf("started %d shells and killed %d, want 4 and 1", started, killed)
	}
}

// A shell that exits during a command fails that command (it may have run: no retry);
// the next command gets a new shell. A shell that cannot start falls back to a process.
func TestShellExitAndFallback(t *testing.T) {
	f := &fakeShells{answer: func(line string) string {
		if strings.Contains(line, "crash") {
			return "EXIT"
		}
		return shellDoc(1, "")
	}}
	c, ex := enabledClient(t, f, Options{})
	ctx := context.Background()
	if err := c.RemoveLV(ctx, "vg1", "crash"); err == nil || !errors.Is(err, errShellGone) {
		t.Errorf("command whose shell exited: %v", err)
	}
	if err := c.RemoveLV(ctx, "vg1", "fine"); err != nil {
		t.Errorf("next command: %v", err)
	}
	f.mu.Lock()
	f.startErr = errors.New("no lvm")
	f.mu.Unlock()
	ex.add(result{})
	if err := c.RemoveLV(ctx, "vg9", "lv"); err != nil {
		t.Errorf("command with no shell: %v", err)
	}
	if got := strings.Join(ex.argv(1)[1:], " "); got != "lvremove -f vg9/lv" {
		t.Errorf("fallback process ran %q", got)
	}
}

func TestShellLine(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
		ok   bool
	}{
		{[]string{"lvs", "-o", "lv_name", "vg/lv"}, "lvs -o lv_name vg/lv", true},
		{[]string{"lvs", "--config", `a/b="x y"`}, `lvs --config 'a/b="x y"'`, true},
		{[]string{"lvs", "it's"}, `lvs "it's"`, true},
		{[]string{"lvs", "#tag"}, "lvs '#tag'", true},
		{[]string{"lvs", ""}, "lvs ''", true},
		{[]string{"lvs", `'"`}, "", false},
		{[]string{"lvs", "a\nb"}, "", false},
		{append([]string{"lvs"}, make([]string, 63)...), "", false},
	} {
		got, ok := shellLine(tc.argv)
		if got != tc.want || ok != tc.ok {
			t.Errorf("shellLine(%q) = %q, %v; want %q, %v", tc.argv, got, ok, tc.want, tc.ok)
		}
	}
}

func TestShellResult(t *testing.T) {
	if err := shellResult([]string{"x"}, []byte(shellDoc(1, ""))); err != nil {
		t.Errorf("success: %v", err)
	}
	err := shellResult([]string{"lvs"}, []byte(shellDoc(5, "", `Volume group "vg" not found`, "Cannot process volume group vg")))
	var lerr *Error
	if !errors.As(err, &lerr) || lerr.ExitCode != 5 || !vgNotFound(err, "vg") || !errors.Is(err, ErrNotFound) {
		t.Errorf("failure: %#v", err)
	}
	if err := shellResult([]string{"x"}, []byte(`{"log": []}`)); err == nil {
		t.Error("no status: no error")
	}
	if err := shellResult([]string{"x"}, []byte(`nonsense`)); err == nil {
		t.Error("not JSON: no error")
	}
}

func TestOSShellStarterPrepare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profile")
	if err := (OSShellStarter{}).Prepare(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ShellProfileName+".profile")
	if b, err := os.ReadFile(path); err != nil || string(b) != ShellProfile {
		t.Fatalf("profile: %q, %v", b, err)
	}
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (OSShellStarter{}).Prepare(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != ShellProfile {
		t.Errorf("profile not rewritten: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// The image ships the profile (hack/image); it must be the one the plugin would write.
func TestImageShellProfile(t *testing.T) {
	b, err := os.ReadFile("../../hack/image/localnvme-shell.profile")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != ShellProfile {
		t.Errorf("hack/image/localnvme-shell.profile differs from lvm.ShellProfile: regenerate it from the constant")
	}
}
