// Package lvm runs LVM2 commands through k8s.io/utils/exec and parses their
// JSON reports.
//
// All commands are executed as `lvm <subcommand> [--config X] args...` with
// LC_ALL=C so that messages (used for error classification) are stable.
// Reads go through a single cached `lvm fullreport` which every mutation
// invalidates.
package lvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/execwait"
)

// Options configure a Client.
type Options struct {
	LVMPath string // default "lvm"
	Config  string // if non-empty, passed to every command as --config <Config>
	// MaxAge bounds how long a cached report is served (0 = until the next mutation).
	// It bounds how late changes made outside the driver (a PV gone, an LV removed by
	// hand) are seen by the read-only paths.
	MaxAge time.Duration
	// CommandTimeout bounds every lvm command (default DefaultCommandTimeout): a command
	// still running then is killed and fails with ErrTimeout, so a hung device never wedges
	// the plugin (a refresh of the shared report included). The caller's context ends a
	// command earlier.
	CommandTimeout time.Duration
	// now is the clock (tests).
	now func() time.Time
	// grace is how long a killed command may take to exit (execwait.DefaultGrace; tests).
	grace time.Duration
	// OnCommand, when set, is called before every lvm command with its subcommand and
	// whether it runs in a shell (EnableShell) or as its own process (the benchmark
	// counts commands per RPC with it).
	OnCommand func(sub string, shell bool)
}

// DefaultLVMPath is the lvm binary used when Options.LVMPath is empty.
const DefaultLVMPath = "lvm"

// DefaultCommandTimeout is Options.CommandTimeout's default: far above what any lvm command
// takes on real hardware (well under a second) or in the emulated VMs (up to ~40 s).
const DefaultCommandTimeout = 3 * time.Minute

// Client runs lvm commands. It caches one Report and invalidates it on every
// mutation. A Client is safe for concurrent use.
type Client struct {
	ex   utilexec.Interface
	opts Options

	mu      sync.Mutex
	gen     uint64             // bumped by every invalidation
	cache   map[string]cached  // by scope ("" everything, else one VG's name), valid for gen
	flights map[string]*flight // by scope: the refresh in progress
	inval   map[string]uint64  // by scope: the generation of its last invalidation

	starter ShellStarter      // non-nil: commands run in lvm shells (EnableShell)
	shells  map[string]*shell // by scope ("" node-wide, else a VG's name)
}

// cached is one scope's report and when it was read.
type cached struct {
	rep *Report
	at  time.Time
}

// flight is one in-progress refresh shared by concurrent Report callers.
type flight struct {
	done chan struct{}
	gen  uint64 // generation the refresh was started in
	// waiters counts the Report calls that used this flight (for tests).
	waiters int
	rep     *Report
	err     error
}

// New returns a Client executing lvm through ex.
func New(ex utilexec.Interface, o Options) *Client {
	if o.LVMPath == "" {
		o.LVMPath = DefaultLVMPath
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.grace <= 0 {
		o.grace = execwait.DefaultGrace
	}
	return &Client{ex: ex, opts: o, cache: map[string]cached{}, flights: map[string]*flight{}, inval: map[string]uint64{}}
}

// Invalidate drops every cached report. A refresh already in flight will not
// populate the cache.
func (c *Client) Invalidate() {
	c.mu.Lock()
	c.gen++
	clear(c.cache)
	c.inval[allScopes] = c.gen
	c.mu.Unlock()
}

// InvalidateVG drops what a change to VG vg alone makes stale: vg's cached report and
// peek, and the report of everything. Other VGs' reports stay. A refresh of those
// scopes already in flight will not populate the cache.
func (c *Client) InvalidateVG(vg string) {
	if vg == "" {
		c.Invalidate()
		return
	}
	c.mu.Lock()
	c.gen++
	for _, scope := range []string{vg, peekScope(vg), ""} {
		delete(c.cache, scope)
		c.inval[scope] = c.gen
	}
	c.mu.Unlock()
}

// patchTags applies a confirmed tag change of vg/name to the cached reports that hold
// the LV, and makes refreshes already in flight (read before the change) uncacheable.
func (c *Client) patchTags(vg, name string, add, del []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, scope := range []string{vg, peekScope(vg), ""} {
		c.inval[scope] = c.gen
		e, ok := c.cache[scope]
		if !ok {
			continue
		}
		rep := e.rep.Clone()
		for i := range rep.LVs {
			lv := &rep.LVs[i]
			if lv.VGName != vg || lv.Name != name {
				continue
			}
			tags := lv.Tags[:0:0]
			for _, t := range lv.Tags {
				if !slices.Contains(del, t) && !slices.Contains(add, t) {
					tags = append(tags, t)
				}
			}
			tags = append(tags, add...)
			lv.Tags = tags
		}
		c.cache[scope] = cached{rep: rep, at: e.at}
	}
}

// allScopes keys the generation of the last Invalidate in Client.inval.
const allScopes = "\x00all"

// peekScope is the cache key of vg's peek.
func peekScope(vg string) string { return "\x00peek/" + vg }

// currentLocked: a refresh of scope started in generation gen is still current (c.mu held).
func (c *Client) currentLocked(scope string, gen uint64) bool {
	return gen >= c.inval[allScopes] && gen >= c.inval[scope]
}

// Report returns the (cached) state of all VGs, PVs (including orphans) and
// visible LVs. The returned Report is a private copy the caller may modify.
//
// Concurrent callers share one in-flight refresh. A refresh started before an
// Invalidate (i.e. before a mutation completed) is delivered to the callers
// that were already waiting for it but never cached; callers arriving after
// the invalidation start a new refresh. The refresh is not cancelled when a
// caller's ctx is; the caller just stops waiting.
//
// Reading everything takes every VG's lock in turn: while one VG's lock is held (an lvm
// command hung on a device that does not answer), Report waits for it, up to
// CommandTimeout. Questions about one VG use ReportVG, which does not.
func (c *Client) Report(ctx context.Context) (*Report, error) {
	return c.report(ctx, "")
}

// ReportVG returns the (cached) state of one VG: the VG, its PVs and its LVs, as Report
// would show them (an empty Report when the VG does not exist). It is read with `lvm
// fullreport <vg>`, which takes only that VG's lock, so a command hung in another VG does
// not hold it up. A valid cached Report answers it without running lvm. Caching, sharing
// and invalidation are Report's.
func (c *Client) ReportVG(ctx context.Context, vg string) (*Report, error) {
	if !ValidName(vg) {
		return nil, fmt.Errorf("%w: volume group name %q", ErrInvalidArgument, vg)
	}
	if all, ok := c.cachedAll(vg); ok {
		return all, nil
	}
	return c.report(ctx, vg)
}

// cachedAll answers one VG from a valid cached report of everything.
func (c *Client) cachedAll(vg string) (*Report, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if all, ok := c.cachedLocked(""); ok {
		return all.OnlyVG(vg), true
	}
	return nil, false
}

// PeekVG returns one VG's LVs, their UUIDs and tags, as its on-disk metadata holds them,
// without taking the VG's lock (`lvm fullreport --readonly <vg>`): it answers while
// another command holds that lock (hung or not). It carries no device-mapper state (LVs
// show inactive, with no kernel device and no usage), so it answers only what the
// metadata does, such as whether an LV of a name exists. A valid cached report of the VG
// (or of everything) answers instead. A peek is cached as its own scope until a mutation
// of the VG (InvalidateVG) or MaxAge. An empty Report when the VG does not exist.
func (c *Client) PeekVG(ctx context.Context, vg string) (*Report, error) {
	if !ValidName(vg) {
		return nil, fmt.Errorf("%w: volume group name %q", ErrInvalidArgument, vg)
	}
	if all, ok := c.cachedAll(vg); ok {
		return all, nil
	}
	c.mu.Lock()
	one, ok := c.cachedLocked(vg)
	if !ok {
		one, ok = c.cachedLocked(peekScope(vg))
	}
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return one, nil
	}
	rep, err := c.loadReport(ctx, vg, true)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.currentLocked(peekScope(vg), gen) {
		c.cache[peekScope(vg)] = cached{rep: rep.Clone(), at: c.opts.now()}
	}
	c.mu.Unlock()
	return rep, nil
}

// cachedLocked returns a copy of scope's cached report when it is valid (c.mu held).
func (c *Client) cachedLocked(scope string) (*Report, bool) {
	e, ok := c.cache[scope]
	if !ok {
		return nil, false
	}
	if c.opts.MaxAge > 0 && c.opts.now().Sub(e.at) > c.opts.MaxAge {
		delete(c.cache, scope)
		return nil, false
	}
	return e.rep.Clone(), true
}

func (c *Client) report(ctx context.Context, scope string) (*Report, error) {
	c.mu.Lock()
	if r, ok := c.cachedLocked(scope); ok {
		c.mu.Unlock()
		return r, nil
	}
	f := c.flights[scope]
	if f == nil || !c.currentLocked(scope, f.gen) {
		f = &flight{done: make(chan struct{}), gen: c.gen}
		c.flights[scope] = f
		go c.refresh(context.WithoutCancel(ctx), scope, f)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return f.rep.Clone(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) refresh(ctx context.Context, scope string, f *flight) {
	rep, err := c.loadReport(ctx, scope, false)
	c.mu.Lock()
	if c.flights[scope] == f {
		delete(c.flights, scope)
	}
	if err == nil && c.currentLocked(scope, f.gen) {
		c.cache[scope] = cached{rep: rep, at: c.opts.now()}
	}
	f.rep, f.err = rep, err
	c.mu.Unlock()
	close(f.done)
}

// loadReport runs one fullreport: of everything (scope ""), or of the VG scope, then
// without its lock when peek is set.
func (c *Client) loadReport(ctx context.Context, scope string, peek bool) (*Report, error) {
	args := fullReportArgs()
	if peek {
		args = append([]string{"--readonly"}, args...)
	}
	if scope != "" {
		args = append(args, scope)
	}
	runScope := scope
	if peek {
		runScope = scopeExec // never queued behind the VG's shell: a peek answers while it is busy
	}
	out, err := c.run(ctx, false, runScope, "fullreport", args...)
	if err != nil {
		if scope != "" && vgNotFound(err, scope) {
			// lvm exits 5 for a VG it does not know; that is an answer, not a failure
			if rep, perr := ParseFullReport(out); perr == nil && rep.VGByName(scope) == nil {
				return &Report{}, nil
			}
		}
		return nil, err
	}
	rep, err := ParseFullReport(out)
	if err != nil {
		return nil, fmt.Errorf("parse lvm fullreport output: %w", err)
	}
	if scope != "" {
		rep = rep.OnlyVG(scope)
	}
	return rep, nil
}

// vgNotFound: err is lvm's exit 5 saying exactly that VG vg does not exist.
func vgNotFound(err error, vg string) bool {
	var lerr *Error
	if !errors.As(err, &lerr) || lerr.ExitCode != 5 {
		return false
	}
	want := `Volume group "` + vg + `" not found`
	for _, line := range strings.Split(lerr.Stderr, "\n") {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

// Sentinel error kinds, see Error.Kind.
var (
	ErrNotFound          = errors.New("lvm: not found")
	ErrAlreadyExists     = errors.New("lvm: already exists")
	ErrInsufficientSpace = errors.New("lvm: insufficient space")
	// ErrTimeout: the command ran past Options.CommandTimeout and was killed.
	ErrTimeout = errors.New("lvm: command timed out")
)

// ErrInvalidArgument is returned (wrapped, not as *Error) when a mutation is
// called with an argument that is rejected before running lvm.
var ErrInvalidArgument = errors.New("lvm: invalid argument")

// Error is a failed lvm command.
type Error struct {
	Args     []string // arguments after the lvm binary, starting with the subcommand
	ExitCode int      // -1 if the command did not exit normally (e.g. could not be started)
	Stderr   string
	Kind     error // one of the sentinel errors above, or nil

	cause error // underlying exec error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lvm %s failed", strings.Join(e.Args, " "))
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " with exit code %d", e.ExitCode)
	} else if e.cause != nil {
		fmt.Fprintf(&b, ": %v", e.cause)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

// Timeout reports whether the command was killed at Options.CommandTimeout (the service
// boundary answers Unavailable: a retry may find the device answering again).
func (e *Error) Timeout() bool { return errors.Is(e.Kind, ErrTimeout) }

// Unwrap returns Kind, so errors.Is(err, ErrNotFound) works. When Kind is nil
// it returns the underlying exec error, if any.
func (e *Error) Unwrap() error {
	if e.Kind != nil {
		return e.Kind
	}
	return e.cause
}

// errorPatterns map lower-cased stderr fragments to kinds; first match wins.
var errorPatterns = []struct {
	kind    error
	substrs []string
}{
	{ErrInsufficientSpace, []string{
		"insufficient free space",
		"insufficient suitable allocatable extents",
		"insufficient free extents",
		"free space in thin pool",
		"no specified pvs have space available",
	}},
	{ErrAlreadyExists, []string{"already exists"}},
	{ErrNotFound, []string{
		"not found",
		"failed to find",
		"no device found",
	}},
}

// ClassifyStderr returns the error kind for an lvm stderr text, or nil.
// Lines starting with "WARNING:" are ignored: lvm prints e.g. "WARNING:
// Device for PV ... not found" for unrelated missing devices.
func ClassifyStderr(stderr string) error {
	var relevant []string
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "WARNING:") {
			continue
		}
		relevant = append(relevant, strings.ToLower(line))
	}
	text := strings.Join(relevant, "\n")
	for _, p := range errorPatterns {
		for _, s := range p.substrs {
			if strings.Contains(text, s) {
				return p.kind
			}
		}
	}
	return nil
}

func (c *Client) argv(sub string, args []string) []string {
	a := make([]string, 0, len(args)+3)
	a = append(a, sub)
	if c.opts.Config != "" {
		a = append(a, "--config", c.opts.Config)
	}
	return append(a, args...)
}

// run executes `lvm sub [--config X] args...` and returns stdout: in scope's lvm shell
// when shells are enabled and the arguments allow it (scope is "" for node-wide commands,
// a VG's name for commands on one VG, scopeExec for a process always), else as a process.
func (c *Client) run(ctx context.Context, mutation bool, scope, sub string, args ...string) ([]byte, error) {
	argv := c.argv(sub, args)
	cctx, cancel := context.WithTimeout(ctx, c.opts.CommandTimeout)
	defer cancel()
	if s, starter := c.shellFor(scope, argv); s != nil {
		if c.opts.OnCommand != nil {
			c.opts.OnCommand(sub, true)
		}
		start := time.Now()
		out, ran, err := c.runShell(ctx, cctx, s, starter, argv)
		if ran {
			logShell(ctx, mutation, argv, time.Since(start), err)
			return out, err
		}
		klog.FromContext(ctx).Info("lvm shell unavailable; running the command as a process", "args", argv, "err", err)
	}
	if c.opts.OnCommand != nil {
		c.opts.OnCommand(sub, false)
	}
	cmd := c.ex.CommandContext(cctx, c.opts.LVMPath, argv...)
	cmd.SetEnv(append(os.Environ(), "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1"))
	var stdout, stderr bytes.Buffer
	cmd.SetStdout(&stdout)
	cmd.SetStderr(&stderr)

	level := 4
	if mutation {
		level = 2
	}
	logger := klog.FromContext(ctx).V(level)

	start := time.Now()
	err := execwait.Run(cctx, cmd, c.opts.grace)
	dur := time.Since(start)
	if errors.Is(err, execwait.ErrNotExited) {
		// killed, stuck in the kernel (uninterruptible I/O); its output is still its own
		lerr := &Error{Args: argv, ExitCode: -1}
		if ctx.Err() != nil {
			lerr.cause = fmt.Errorf("the caller gave up (%w), and the killed command had not exited %s later: %w", ctx.Err(), c.opts.grace, err)
			lerr.Kind = ctx.Err()
		} else {
			lerr.cause = fmt.Errorf("killed after %s, the limit for one lvm command, and it had not exited %s later: %w", c.opts.CommandTimeout, c.opts.grace, err)
			lerr.Kind = ErrTimeout
		}
		logger.Info("lvm command failed", "args", argv, "duration", dur, "err", lerr.cause)
		return nil, lerr
	}
	if err == nil {
		kv := []any{"args", argv, "duration", dur}
		if s := strings.TrimSpace(stderr.String()); s != "" {
			kv = append(kv, "stderr", s)
		}
		logger.Info("lvm command succeeded", kv...)
		return stdout.Bytes(), nil
	}

	lerr := &Error{Args: argv, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()), cause: err}
	var ee utilexec.ExitError
	switch {
	case ctx.Err() != nil:
		// the caller gave up: its context's error (DeadlineExceeded, Canceled)
		lerr.cause = fmt.Errorf("killed after %s: %w", dur.Round(time.Millisecond), ctx.Err())
		lerr.Kind = ctx.Err()
	case cctx.Err() != nil:
		lerr.cause = fmt.Errorf("killed after %s, the limit for one lvm command (a device that does not answer?)", c.opts.CommandTimeout)
		lerr.Kind = ErrTimeout
	case errors.As(err, &ee):
		lerr.ExitCode = ee.ExitStatus()
		lerr.Kind = ClassifyStderr(lerr.Stderr)
	}
	logger.Info("lvm command failed", "args", argv, "duration", dur, "exitCode", lerr.ExitCode, "stderr", lerr.Stderr, "err", err)
	return stdout.Bytes(), lerr
}
