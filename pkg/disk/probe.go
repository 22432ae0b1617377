package disk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/execwait"
)

// Reason codes for refusing a device.
type Reason string

const (
	ReasonPartitionTable Reason = "partition-table"
	ReasonSignature      Reason = "signature"      // filesystem / RAID / other signature found by blkid -p
	ReasonLVMMember      Reason = "lvm-member"     // blkid -p TYPE=LVM2_member (the caller checks whether it is its own VG)
	ReasonMounted        Reason = "mounted"        // device or one of its partitions appears in mountinfo (match by major:minor)
	ReasonHolders        Reason = "holders"        // /sys/block/X/holders is not empty (device-mapper, md, ...)
	ReasonSwap           Reason = "swap"           // in /proc/swaps (by path or major:minor)
	ReasonReadOnly       Reason = "read-only"      // /sys/block/X/ro is 1
	ReasonProbeFailed    Reason = "probe-failed"   // blkid exited with anything but 0 or 2, or could not run; or a proc file was unreadable
	ReasonPartitions     Reason = "has-partitions" // sysfs shows partitions
)

// Refusal is one reason a device is not considered empty.
type Refusal struct {
	Reason Reason
	Detail string // human readable, e.g. `blkid -p found TYPE="ext4" UUID="..."`
}

// Verdict of an emptiness check. Empty is true only if there are no refusals at all.
type Verdict struct {
	Empty     bool
	Refusals  []Refusal
	Signature map[string]string // blkid -p key/values when found (TYPE, PTTYPE, UUID, ...)
}

// String returns "empty" or "refused: reason: detail; reason: detail".
func (v Verdict) String() string {
	if len(v.Refusals) == 0 {
		if v.Empty {
			return "empty"
		}
		return "refused: (no reason recorded)"
	}
	parts := make([]string, 0, len(v.Refusals))
	for _, r := range v.Refusals {
		parts = append(parts, string(r.Reason)+": "+r.Detail)
	}
	return "refused: " + strings.Join(parts, "; ")
}

// Has reports whether the verdict contains a refusal with reason r.
func (v Verdict) Has(r Reason) bool {
	for _, x := range v.Refusals {
		if x.Reason == r {
			return true
		}
	}
	return false
}

// blkid exit codes (util-linux misc-utils/blkid.c).
const (
	blkidExitNotFound  = 2 // no tokens found; also returned when the device cannot be opened (with a warning on stderr)
	blkidExitOther     = 4 // usage or other error
	blkidExitAmbivalen = 8 // ambivalent low-level probing result
)

// BlkidError is a blkid run that neither found a signature (exit 0) nor cleanly found
// nothing (exit 2 with empty stderr).
type BlkidError struct {
	Device   string
	ExitCode int    // -1 when blkid did not run to completion (not found, killed, context done)
	Stderr   string // trimmed
	Err      error  // underlying error from exec, if any
	// TimedOut: blkid ran past Prober.Timeout and was killed (Timeout() reports it; the
	// service boundary answers Unavailable).
	TimedOut bool
}

// Timeout reports whether blkid was killed at Prober.Timeout.
func (e *BlkidError) Timeout() bool { return e.TimedOut }

func (e *BlkidError) Error() string {
	var what string
	switch {
	case e.ExitCode == blkidExitAmbivalen:
		what = "ambivalent probing result (exit 8)"
	case e.ExitCode == blkidExitNotFound:
		what = "exit 2 (nothing found) but the device could not be probed"
	case e.ExitCode >= 0:
		what = "exit " + strconv.Itoa(e.ExitCode)
	default:
		what = "did not complete"
	}
	msg := "blkid -p -o export " + e.Device + ": " + what
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	var exitErr utilexec.ExitError
	if e.Err != nil && !errors.As(e.Err, &exitErr) {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *BlkidError) Unwrap() error { return e.Err }

// Ambivalent reports whether blkid found more than one conflicting signature (exit 8).
func (e *BlkidError) Ambivalent() bool { return e.ExitCode == blkidExitAmbivalen }

// Prober checks whether a namespace is provably empty. All OS access goes through small
// interfaces so tests can fake them.
type Prober struct {
	Exec          utilexec.Interface // for blkid; defaults to utilexec.New()
	BlkidPath     string             // default "blkid"
	MountInfoPath string             // default "/proc/self/mountinfo"
	SwapsPath     string             // default "/proc/swaps"
	// Timeout bounds one blkid run (default DefaultBlkidTimeout); the caller's context ends
	// it earlier.
	Timeout time.Duration
	// grace is how long a killed blkid may take to exit (execwait.DefaultGrace; tests).
	grace time.Duration

	// StatDevice returns the "major:minor" of the block device at path (following
	// symlinks), or an error if path does not exist or is not a block device.
	// nil means stat(2). Tests that use fake device paths must set it: Check refuses a
	// namespace whose device node cannot be verified (probe-failed), because blkid exits 2
	// ("nothing found") without a word for a path that does not exist.
	StatDevice func(path string) (majMin string, err error)
}

func (p *Prober) exec() utilexec.Interface {
	if p.Exec == nil {
		return utilexec.New()
	}
	return p.Exec
}

func (p *Prober) blkid() string {
	if p.BlkidPath == "" {
		return "blkid"
	}
	return p.BlkidPath
}

func (p *Prober) mountInfoPath() string {
	if p.MountInfoPath == "" {
		return "/proc/self/mountinfo"
	}
	return p.MountInfoPath
}

func (p *Prober) swapsPath() string {
	if p.SwapsPath == "" {
		return "/proc/swaps"
	}
	return p.SwapsPath
}

func (p *Prober) statDevice(path string) (string, error) {
	if p.StatDevice != nil {
		return p.StatDevice(path)
	}
	return StatBlockDevice(path)
}

// StatBlockDevice returns the "major:minor" of the block device at path, following
// symlinks. It is the default Prober.StatDevice.
func StatBlockDevice(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s is not a block device", path)
	}
	dev := uint64(st.Rdev) // Rdev's width differs between architectures
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)), nil
}

// devices is the set of block devices that belong to a namespace: itself and its partitions.
type devices struct {
	byMajMin map[string]string // "259:0" -> "nvme0n1"
	byPath   map[string]string // "/dev/nvme0n1" -> "nvme0n1"
}

func namespaceDevices(ns Namespace) devices {
	d := devices{byMajMin: map[string]string{}, byPath: map[string]string{}}
	devPath := nsDevPath(ns)
	if ns.MajorMinor != "" {
		d.byMajMin[ns.MajorMinor] = ns.Name
	}
	d.byPath[devPath] = ns.Name
	devDir := filepath.Dir(devPath)
	for _, part := range ns.Partitions {
		d.byPath[filepath.Join(devDir, part)] = part
		if mm := ns.PartitionMajorMinor[part]; mm != "" {
			d.byMajMin[mm] = part
		}
	}
	return d
}

func (d devices) match(majMin, path string) (string, bool) {
	if name, ok := d.byMajMin[majMin]; ok && majMin != "" {
		return name, true
	}
	if name, ok := d.byPath[path]; ok && path != "" {
		return name, true
	}
	return "", false
}

func nsDevPath(ns Namespace) string {
	if ns.DevPath != "" {
		return ns.DevPath
	}
	return filepath.Join("/dev", ns.Name)
}

// Check runs every check (does not stop at the first refusal) and never writes to the device.
//
// blkid invocation: `blkid -p -o export <dev>` (low-level probe, bypasses the cache).
// Exit code 2 = nothing found (empty); 0 = signature(s) found -> PTTYPE present ->
// ReasonPartitionTable; TYPE=LVM2_member -> ReasonLVMMember; other TYPE -> ReasonSignature.
// Exit 8 (ambivalent result), any other exit code, failure to run, or exit 2 with a
// message on stderr (blkid exits 2 when it cannot open the device) -> ReasonProbeFailed.
// Unreadable mountinfo or swaps files are also ReasonProbeFailed: emptiness must be proven.
func (p *Prober) Check(ctx context.Context, ns Namespace) Verdict {
	var v Verdict
	add := func(r Reason, format string, args ...any) {
		v.Refusals = append(v.Refusals, Refusal{Reason: r, Detail: fmt.Sprintf(format, args...)})
	}
	devPath := nsDevPath(ns)
	devs := namespaceDevices(ns)

	if ns.ReadOnly {
		add(ReasonReadOnly, "%s is read-only (sysfs ro=1)", ns.Name)
	}
	if len(ns.Partitions) > 0 {
		add(ReasonPartitions, "sysfs shows partitions %s", strings.Join(ns.Partitions, ", "))
	}
	if len(ns.Holders) > 0 {
		add(ReasonHolders, "held by %s", strings.Join(ns.Holders, ", "))
	}

	// Mounts.
	if infos, err := mount.ParseMountInfo(p.mountInfoPath()); err != nil {
		add(ReasonProbeFailed, "cannot read %s: %v", p.mountInfoPath(), err)
	} else {
		var hits []string
		for _, mi := range infos {
			mm := strconv.Itoa(mi.Major) + ":" + strconv.Itoa(mi.Minor)
			if name, ok := devs.match(mm, mi.Source); ok {
				hits = append(hits, fmt.Sprintf("%s (%s) at %s (%s)", name, mm, mi.MountPoint, mi.FsType))
			}
		}
		if len(hits) > 0 {
			add(ReasonMounted, "%s", strings.Join(hits, ", "))
		}
	}

	// Swap.
	if swaps, err := readSwaps(p.swapsPath()); err != nil {
		add(ReasonProbeFailed, "cannot read %s: %v", p.swapsPath(), err)
	} else {
		var hits []string
		for _, s := range swaps {
			name, ok := devs.match("", s)
			if !ok {
				// Swap may be listed under another name (/dev/disk/by-id/..., a
				// symlink); compare device numbers. Swap files are not block devices.
				if mm, err := p.statDevice(s); err == nil {
					name, ok = devs.match(mm, "")
				}
			}
			if ok {
				hits = append(hits, fmt.Sprintf("%s is active swap (%s)", name, s))
			}
		}
		if len(hits) > 0 {
			add(ReasonSwap, "%s", strings.Join(hits, ", "))
		}
	}

	// The device node must be the namespace sysfs describes: blkid reports a missing
	// path as "nothing found", and a stale /dev would make it probe another disk.
	if mm, err := p.statDevice(devPath); err != nil {
		add(ReasonProbeFailed, "cannot verify device node: %v", err)
	} else if ns.MajorMinor != "" && mm != ns.MajorMinor {
		add(ReasonProbeFailed, "%s is device %s but sysfs says %s is %s", devPath, mm, ns.Name, ns.MajorMinor)
	}

	// Signatures.
	kv, found, err := p.Signature(ctx, devPath)
	switch {
	case err != nil:
		add(ReasonProbeFailed, "%v", err)
	case found:
		v.Signature = kv
		desc := describeSignature(kv)
		matched := false
		if kv["PTTYPE"] != "" {
			add(ReasonPartitionTable, "blkid -p found %s", desc)
			matched = true
		}
		if t := kv["TYPE"]; t != "" {
			if t == "LVM2_member" {
				add(ReasonLVMMember, "blkid -p found %s", desc)
			} else {
				add(ReasonSignature, "blkid -p found %s", desc)
			}
			matched = true
		}
		if !matched {
			// blkid says it found something but named neither; do not call that empty.
			add(ReasonSignature, "blkid -p exited 0 without TYPE or PTTYPE: %s", desc)
		}
	}

	v.Empty = len(v.Refusals) == 0
	return v
}

// describeSignature renders the interesting keys first, e.g. `TYPE="ext4" UUID="..."`.
func describeSignature(kv map[string]string) string {
	if len(kv) == 0 {
		return "(no values)"
	}
	first := []string{"PTTYPE", "PTUUID", "TYPE", "UUID", "LABEL", "VERSION", "USAGE"}
	seen := map[string]bool{"DEVNAME": true}
	var parts []string
	for _, k := range first {
		if val, ok := kv[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%q", k, val))
			seen[k] = true
		}
	}
	var rest []string
	for k := range kv {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%s=%q", k, kv[k]))
	}
	if len(parts) == 0 {
		return "(no values)"
	}
	return strings.Join(parts, " ")
}

// DefaultBlkidTimeout is Prober.Timeout's default: one blkid probe reads a few KiB
// (seconds even in the emulated VMs).
const DefaultBlkidTimeout = 2 * time.Minute

// Signature returns blkid -p's key/values for any block device path (e.g. an LV path),
// with found=false when blkid exits 2. Any other failure is returned as an error (a
// *BlkidError); callers must NEVER format when err != nil. Exit 2 with a message on stderr
// is an error too: blkid uses exit 2 when it cannot open the device.
func (p *Prober) Signature(ctx context.Context, devPath string) (kv map[string]string, found bool, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	// bounded: a device that does not answer must not wedge the caller
	limit := p.Timeout
	if limit <= 0 {
		limit = DefaultBlkidTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := p.exec().CommandContext(cctx, p.blkid(), "-p", "-o", "export", devPath)
	cmd.SetStdout(&stdout)
	cmd.SetStderr(&stderr)
	start := time.Now()
	grace := p.grace
	if grace <= 0 {
		grace = execwait.DefaultGrace
	}
	runErr := execwait.Run(cctx, cmd, grace)
	if errors.Is(runErr, execwait.ErrNotExited) {
		// its output is still blkid's: not read
		why := fmt.Errorf("the caller gave up (%w) after %s", ctx.Err(), time.Since(start).Round(time.Millisecond))
		if ctx.Err() == nil {
			why = fmt.Errorf("killed at %s, the limit for one blkid probe", limit)
		}
		return nil, false, &BlkidError{Device: devPath, ExitCode: -1, TimedOut: ctx.Err() == nil,
			Err: fmt.Errorf("%w, and it had not exited %s later: %w (%s does not answer its reads)", why, grace, runErr, devPath)}
	}
	errText := strings.TrimSpace(stderr.String())

	if ctxErr := ctx.Err(); ctxErr != nil {
		// the caller gave up: its context's error (DeadlineExceeded, Canceled)
		return nil, false, &BlkidError{Device: devPath, ExitCode: -1, Stderr: errText, Err: ctxErr}
	}
	if cctx.Err() != nil {
		return nil, false, &BlkidError{Device: devPath, ExitCode: -1, Stderr: errText, TimedOut: true,
			Err: fmt.Errorf("killed after %s, the limit for one blkid probe (%s did not answer its reads?)", time.Since(start).Round(time.Millisecond), devPath)}
	}
	if runErr == nil {
		return parseExport(stdout.String()), true, nil
	}
	var exitErr utilexec.ExitError
	if errors.As(runErr, &exitErr) && exitErr.Exited() {
		code := exitErr.ExitStatus()
		if code == blkidExitNotFound && errText == "" {
			// blkid also exits 2, silently, for a path that does not exist.
			if _, err := p.statDevice(devPath); err != nil {
				return nil, false, &BlkidError{Device: devPath, ExitCode: code, Err: err}
			}
			return nil, false, nil
		}
		return nil, false, &BlkidError{Device: devPath, ExitCode: code, Stderr: errText, Err: runErr}
	}
	return nil, false, &BlkidError{Device: devPath, ExitCode: -1, Stderr: errText, Err: runErr}
}

// parseExport parses `blkid -o export` output: KEY=value lines, values with shell-style
// backslash escapes. A blank line separates devices; only one device is probed here.
func parseExport(out string) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, val, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		kv[k] = unescapeExport(val)
	}
	return kv
}

func unescapeExport(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readSwaps returns the Filename column of /proc/swaps. A missing file (kernel built
// without swap support) means no swap.
func readSwaps(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || (i == 0 && fields[0] == "Filename") {
			continue
		}
		out = append(out, unescapeOctal(fields[0]))
	}
	return out, nil
}

// unescapeOctal decodes the \040-style escapes the kernel uses in /proc/swaps paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
