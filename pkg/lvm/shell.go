package lvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// The lvm shell.
//
// Every lvm command started as its own process pays for the process start, the loading of
// lvm's libraries and its configuration before it does any work: under emulation that is
// two thirds of an lvcreate (~270 of ~400 ms). `lvm` run without arguments is a shell that
// reads commands on stdin and runs each in the same process; with LVM_REPORT_FD set and
// the command profile ShellProfile, it writes one JSON document per command to that fd: the
// command's reports (the same JSON `--reportformat json` prints) and its log, whose last
// "shell" status entry carries the command's return code. This is how lvmdbusd drives LVM.
//
// The Client keeps one shell per VG (commands on one VG queue behind each other, as they
// would behind the VG's lock) and one for node-wide commands, so a command hung on one VG's
// device holds up only that VG. A command that runs past its limit (or whose caller gives
// up) kills its shell; the next command starts a new one. Commands whose arguments the
// shell cannot carry, and the lock-free peeks, run as processes as before.

// ShellProfileName is the LVM command profile a shell runs with (LVM_COMMAND_PROFILE); the
// file is ShellProfileName + ".profile" in LVM's config/profile_dir.
const ShellProfileName = "localnvme-shell"

// ShellProfile is that profile's content: JSON reports and a command log with every
// message, so that each command's output is one JSON document with its return code.
const ShellProfile = `# localnvme: the profile of the lvm shells the node plugin drives (LVM_COMMAND_PROFILE).
# Written by localnvme; changes are overwritten.
report {
	output_format = "json"
}
log {
	report_command_log = 1
	command_log_selection = "all"
	command_log_cols = "log_seq_num,log_type,log_context,log_object_type,log_object_name,log_message,log_errno,log_ret_code"
}
`

// ShellProcess is one running `lvm` shell.
type ShellProcess interface {
	// Send writes one command line to the shell's stdin.
	Send(line string) error
	// Docs delivers the JSON documents the shell writes to its report fd, one per command,
	// in order. It is closed when the fd closes (the shell exited or was killed).
	Docs() <-chan []byte
	// Kill ends the shell (SIGKILL) without waiting for it to exit.
	Kill()
	// Diagnostics is what the shell wrote to stdout and stderr lately (for errors).
	Diagnostics() string
}

// ShellStarter starts lvm shells.
type ShellStarter interface {
	// Prepare makes sure the profile file ShellProfileName.profile in profileDir holds
	// ShellProfile.
	Prepare(profileDir string) error
	// Start starts `lvmPath` with env (LVM_REPORT_FD is set by the starter).
	Start(lvmPath string, env []string) (ShellProcess, error)
}

// scopeExec runs a command as its own process, never in a shell.
const scopeExec = "\x00exec"

// shell is one scope's shell: one command at a time.
type shell struct {
	slot chan struct{} // holds one token while a command runs
	proc ShellProcess  // nil: none running (started on the next command)
}

// EnableShell switches the Client to lvm shells for the commands that can use them. It
// asks lvm where profiles live, has starter write ShellProfile there, and runs one command
// in a shell to prove it works. On error the Client goes on running every command as its
// own process.
func (c *Client) EnableShell(ctx context.Context, starter ShellStarter) error {
	out, err := c.run(ctx, false, scopeExec, "config", "--typeconfig", "full", "config/profile_dir")
	if err != nil {
		return fmt.Errorf("asking lvm for its profile directory: %w", err)
	}
	dir, err := parseConfigValue(string(out), "profile_dir")
	if err != nil {
		return err
	}
	if err := starter.Prepare(dir); err != nil {
		return fmt.Errorf("writing the lvm shell profile into %s: %w", dir, err)
	}
	c.mu.Lock()
	c.starter = starter
	c.mu.Unlock()
	if _, err := c.run(ctx, false, "", "version"); err != nil {
		c.DisableShell()
		return fmt.Errorf("a first command in an lvm shell failed: %w", err)
	}
	return nil
}

// DisableShell ends the shells; every later command runs as its own process.
func (c *Client) DisableShell() {
	c.mu.Lock()
	c.starter = nil
	shells := c.shells
	c.shells = nil
	c.mu.Unlock()
	for _, s := range shells {
		go func() {
			s.slot <- struct{}{}
			if s.proc != nil {
				s.proc.Kill()
				s.proc = nil
			}
			<-s.slot
		}()
	}
}

// ShellEnabled reports whether commands run in lvm shells.
func (c *Client) ShellEnabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starter != nil
}

// parseConfigValue reads `key="value"` from `lvm config` output.
func parseConfigValue(out, key string) (string, error) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			if s, err := strconv.Unquote(v); err == nil && strings.HasPrefix(s, "/") {
				return s, nil
			}
		}
	}
	return "", fmt.Errorf("lvm config printed no absolute %s: %q", key, strings.TrimSpace(out))
}

// shellFor returns scope's shell, or nil when the command runs as a process.
func (c *Client) shellFor(scope string, argv []string) (*shell, ShellStarter) {
	if scope == scopeExec {
		return nil, nil
	}
	if _, ok := shellLine(argv); !ok {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.starter == nil {
		return nil, nil
	}
	if c.shells == nil {
		c.shells = map[string]*shell{}
	}
	s := c.shells[scope]
	if s == nil {
		s = &shell{slot: make(chan struct{}, 1)}
		c.shells[scope] = s
	}
	return s, c.starter
}

// maxShellArgs is the lvm shell's limit on the words of one line (MAX_ARGS), less one.
const maxShellArgs = 63

// shellLine quotes argv for the lvm shell, which splits a line at white space, takes a
// word wrapped in ' or " as it is (no escapes), and ignores the rest of the line from a
// word that starts with #. ok is false when argv cannot be carried that way.
func shellLine(argv []string) (string, bool) {
	if len(argv) > maxShellArgs {
		return "", false
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsAny(a, "\n\r\x00") {
			return "", false
		}
		plain := a != "" && !strings.ContainsAny(a, " \t\v\f'\"") && a[0] != '#'
		switch {
		case plain:
			words[i] = a
		case !strings.Contains(a, "'"):
			words[i] = "'" + a + "'"
		case !strings.Contains(a, `"`):
			words[i] = `"` + a + `"`
		default:
			return "", false
		}
	}
	return strings.Join(words, " "), true
}

// errShellGone: the shell exited before it answered.
var errShellGone = errors.New("the lvm shell exited")

// runShell runs argv in s and returns its JSON document as stdout, with an *Error for a
// failed command like run's. ran is false when the command surely did not run (the shell
// could not be started), so the caller may run it as a process instead.
func (c *Client) runShell(ctx, cctx context.Context, s *shell, starter ShellStarter, argv []string) (out []byte, ran bool, err error) {
	line, _ := shellLine(argv)
	select {
	case s.slot <- struct{}{}:
	case <-cctx.Done():
		return nil, true, c.shellTimeout(ctx, argv, "waiting for the VG's lvm shell (another command on the VG still runs)")
	}
	defer func() { <-s.slot }()
	if s.proc == nil {
		p, err := starter.Start(c.opts.LVMPath, shellEnv())
		if err != nil {
			return nil, false, fmt.Errorf("starting an lvm shell: %w", err)
		}
		s.proc = p
	}
	p := s.proc
	if err := p.Send(line); err != nil {
		p.Kill()
		s.proc = nil
		return nil, false, fmt.Errorf("writing to the lvm shell: %w: %s", err, p.Diagnostics())
	}
	select {
	case doc, ok := <-p.Docs():
		if !ok {
			s.proc = nil
			return nil, true, &Error{Args: argv, ExitCode: -1, cause: fmt.Errorf("%w while running the command: %s", errShellGone, p.Diagnostics())}
		}
		return doc, true, shellResult(argv, doc)
	case <-cctx.Done():
		// A shell whose command never ends is killed with it (a process stuck in the
		// kernel is left behind, as run leaves one); the next command starts a new shell.
		p.Kill()
		s.proc = nil
		return nil, true, c.shellTimeout(ctx, argv, "running in the lvm shell")
	}
}

// shellTimeout is the *Error of a command that ran out of time or whose caller gave up.
func (c *Client) shellTimeout(ctx context.Context, argv []string, doing string) error {
	lerr := &Error{Args: argv, ExitCode: -1}
	if ctx.Err() != nil {
		lerr.cause = fmt.Errorf("the caller gave up %s: %w", doing, ctx.Err())
		lerr.Kind = ctx.Err()
	} else {
		lerr.cause = fmt.Errorf("killed after %s, the limit for one lvm command, %s (a device that does not answer?)", c.opts.CommandTimeout, doing)
		lerr.Kind = ErrTimeout
	}
	return lerr
}

func shellEnv() []string {
	// no HOME: the shell keeps no history file
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1", "LVM_COMMAND_PROFILE=" + ShellProfileName}
}

// shellLog is the part of a shell's JSON document shellResult reads.
type shellLog struct {
	Log []struct {
		Type    string `json:"log_type"`
		Context string `json:"log_context"`
		Message string `json:"log_message"`
		RetCode string `json:"log_ret_code"`
	} `json:"log"`
}

// shellResult turns a command's document into run's error: nil when its shell status is
// success (ret code 1, ECMD_PROCESSED), else an *Error whose ExitCode is the ret code (what
// lvm exits with as a process) and whose Stderr holds the warnings and errors it logged.
func shellResult(argv []string, doc []byte) error {
	var l shellLog
	if err := json.Unmarshal(doc, &l); err != nil {
		return &Error{Args: argv, ExitCode: -1, cause: fmt.Errorf("the lvm shell's report is not JSON: %w", err)}
	}
	ret := -1
	var msgs []string
	for _, e := range l.Log {
		switch {
		case e.Type == "status" && e.Context == "shell":
			if n, err := strconv.Atoi(e.RetCode); err == nil {
				ret = n
			}
		case e.Type == "error" || e.Type == "warn":
			msgs = append(msgs, e.Message)
		}
	}
	stderr := strings.Join(msgs, "\n")
	switch ret {
	case 1:
		return nil
	case -1:
		return &Error{Args: argv, ExitCode: -1, Stderr: stderr, cause: errors.New("the lvm shell's report has no command status")}
	}
	return &Error{Args: argv, ExitCode: ret, Stderr: stderr, Kind: ClassifyStderr(stderr)}
}

// logShell logs a command run in a shell the way run logs a process.
func logShell(ctx context.Context, mutation bool, argv []string, dur time.Duration, err error) {
	level := 4
	if mutation {
		level = 2
	}
	logger := klog.FromContext(ctx).V(level)
	if err == nil {
		logger.Info("lvm command succeeded", "args", argv, "duration", dur, "shell", true)
		return
	}
	logger.Info("lvm command failed", "args", argv, "duration", dur, "shell", true, "err", err)
}
