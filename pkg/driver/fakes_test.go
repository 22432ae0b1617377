package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/volume"
)

// memLVM is an in-memory LVM for a thin class "thin" (VG vg-thin, pool "pool") that already
// exists: enough for the engine to create, clone, snapshot, tag and remove thin LVs. Calls
// it does not implement panic through the nil embedded interface.
type memLVM struct {
	volume.LVM
	rep     lvm.Report
	seq     int
	calls   []string // mutations
	reports int
	// journal, when set, also gets every mutation, in order with the other fakes' calls
	journal *[]string
}

// record notes a mutation in calls and in the shared journal.
func (m *memLVM) record(call string) {
	m.calls = append(m.calls, call)
	if m.journal != nil {
		*m.journal = append(*m.journal, "lvm "+call)
	}
}

func newMemLVM() *memLVM {
	return &memLVM{rep: lvm.Report{
		VGs: []lvm.VG{{Name: "vg-thin", UUID: "thinvg-aaaa-bbbb-cccc-dddd-eeee-ffffff", Size: 10 << 30, ExtentSize: 4 << 20}},
		PVs: []lvm.PV{{Name: "/dev/nvme0n1", VGName: "vg-thin", Size: 10 << 30}},
		LVs: []lvm.LV{{Name: "pool", VGName: "vg-thin", UUID: "pool00-aaaa-bbbb-cccc-dddd-eeee-ffffff", Size: 8 << 30, Attr: "twi-aotz--"}},
	}}
}

func (m *memLVM) uuid() string {
	m.seq++
	return fmt.Sprintf("%06d-aaaa-bbbb-cccc-dddd-eeee-ffffff", m.seq)
}

func (m *memLVM) vgUUID(name string) string {
	for _, vg := range m.rep.VGs {
		if vg.Name == name {
			return vg.UUID
		}
	}
	return ""
}

func (m *memLVM) Report(context.Context) (*lvm.Report, error) {
	m.reports++
	return m.rep.Clone(), nil
}
func (m *memLVM) ReportVG(_ context.Context, vg string) (*lvm.Report, error) {
	m.reports++
	return m.rep.OnlyVG(vg), nil
}
func (m *memLVM) PeekVG(_ context.Context, vg string) (*lvm.Report, error) {
	return m.rep.OnlyVG(vg), nil
}
func (m *memLVM) Invalidate()                                    {}
func (m *memLVM) VGChangeActivate(context.Context, string) error { return nil }
func (m *memLVM) CreateLV(_ context.Context, o lvm.CreateLVOptions) error {
	m.record("lvcreate " + o.Name)
	m.rep.LVs = append(m.rep.LVs, lvm.LV{Name: o.Name, VGName: o.VG, VGUUID: m.vgUUID(o.VG), UUID: m.uuid(), Size: o.Size, Pool: o.ThinPool, Tags: o.Tags, Attr: "Vwi-a-tz--", Active: true})
	return nil
}
func (m *memLVM) CreateSnapshot(_ context.Context, vg, origin, name string, _ uint64, tags []string) error {
	m.record("snapshot " + origin + " " + name)
	src := m.rep.LVByName(vg, origin)
	m.rep.LVs = append(m.rep.LVs, lvm.LV{Name: name, VGName: vg, VGUUID: m.vgUUID(vg), UUID: m.uuid(), Size: src.Size, Pool: src.Pool, Origin: origin, Tags: tags, Attr: "Vwi---tz-k"})
	return nil
}
func (m *memLVM) ExtendLV(_ context.Context, vg, name string, size uint64) error {
	m.record("lvextend " + name)
	m.rep.LVByName(vg, name).Size = size
	return nil
}
func (m *memLVM) Activate(_ context.Context, vg, name string) error {
	m.record("lvchange -ay " + name)
	lv := m.rep.LVByName(vg, name)
	lv.Active, lv.KernelMajor, lv.KernelMinor = true, 253, 3
	return nil
}

// AddTags, DeleteTags and ChangeTags are one lvchange each, as in pkg/lvm, recorded as
// "lvchange <lv> --addtag t… --deltag t…"; adding a tag the LV has is a no-op, as in LVM.
func (m *memLVM) AddTags(ctx context.Context, vg, name string, tags []string) error {
	return m.ChangeTags(ctx, vg, name, tags, nil)
}
func (m *memLVM) DeleteTags(ctx context.Context, vg, name string, tags []string) error {
	return m.ChangeTags(ctx, vg, name, nil, tags)
}
func (m *memLVM) ChangeTags(_ context.Context, vg, name string, add, del []string) error {
	call := "lvchange " + name
	for _, t := range add {
		call += " --addtag " + t
	}
	for _, t := range del {
		call += " --deltag " + t
	}
	m.record(call)
	lv := m.rep.LVByName(vg, name)
	tags := slices.DeleteFunc(append([]string(nil), lv.Tags...), func(t string) bool { return slices.Contains(del, t) })
	for _, t := range add {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	lv.Tags = tags
	return nil
}
func (m *memLVM) InvalidateVG(string) {}
func (m *memLVM) RemoveLV(_ context.Context, vg, name string) error {
	for i, lv := range m.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			m.record("lvremove " + name)
			m.rep.LVs = append(m.rep.LVs[:i], m.rep.LVs[i+1:]...)
			return nil
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}

type oneDisk struct{}

func (oneDisk) List() ([]disk.Namespace, error) {
	return []disk.Namespace{{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "T0", NSID: 1}}, nil
}
func (oneDisk) Check(context.Context, disk.Namespace) disk.Verdict { return disk.Verdict{Empty: true} }

// testConfig is the device-class configuration of the engine drivers: one thin class.
const testConfig = `
deviceClasses:
- name: thin
  volumeGroup: vg-thin
  type: thin
  thinPool: {name: pool, overprovisionRatio: 4}
  devices: [{serial: T0}]
`

// newEngineDriver returns a node-mode driver for node n1 over memLVM and a fake host.
func newEngineDriver(t *testing.T) (*Driver, *memLVM, *fakeHost) {
	t.Helper()
	l, h := newMemLVM(), &fakeHost{}
	return newNodeDriver(t, l, h, nil, nil, nil), l, h
}

// newNodeDriver returns a node-mode driver for node n1 with a new engine (set up, its
// class ready) over l and h: calling it again over the same fakes is a restart of the
// node plugin, with nothing in memory. ex runs blkid and mkfs, prober probes (nil: none),
// bio zeroes and copies.
func newNodeDriver(t *testing.T, l *memLVM, h *fakeHost, ex utilexec.Interface, prober *disk.Prober, bio volume.BlockIO) *Driver {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	eng := volume.New(l, oneDisk{}, bio, cfg)
	eng.Setup(context.Background())
	if c, _ := eng.Class("thin"); !c.Ready {
		t.Fatalf("class thin not ready: %v", c.Problems)
	}
	d, err := New(Options{NodeID: "n1", Version: "v1", Mode: ModeNode, Engine: eng, Host: h, Exec: ex, Prober: prober})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// execResult is what one scripted command does.
type execResult struct {
	stdout, stderr string
	exit           int  // exit status; 0 is success
	hang           bool // runs until its context ends (a device that does not answer)
}

// scriptedExec answers commands from a script, per command name in order, and records
// every command line (in journal). A command whose script is used up fails with exit 127
// ("not scripted"), so an unexpected command shows in the journal and fails its test.
type scriptedExec struct {
	utilexec.Interface
	mu      sync.Mutex
	journal *[]string
	script  map[string][]execResult
}

func (e *scriptedExec) Command(cmd string, args ...string) utilexec.Cmd {
	return e.CommandContext(context.Background(), cmd, args...)
}

func (e *scriptedExec) CommandContext(ctx context.Context, cmd string, args ...string) utilexec.Cmd {
	e.mu.Lock()
	defer e.mu.Unlock()
	*e.journal = append(*e.journal, strings.Join(append([]string{cmd}, args...), " "))
	r := execResult{exit: 127, stderr: cmd + ": not scripted"}
	if q := e.script[cmd]; len(q) > 0 {
		r, e.script[cmd] = q[0], q[1:]
	}
	fc := &testingexec.FakeCmd{RunScript: []testingexec.FakeAction{func() ([]byte, []byte, error) {
		if r.hang {
			<-ctx.Done()
			return nil, nil, errors.New("signal: killed")
		}
		var out, errOut []byte
		if r.stdout != "" {
			out = []byte(r.stdout)
		}
		if r.stderr != "" {
			errOut = []byte(r.stderr)
		}
		if r.exit != 0 {
			return out, errOut, testingexec.FakeExitError{Status: r.exit}
		}
		return out, errOut, nil
	}}}
	return testingexec.InitFakeCmd(fc, cmd, args...)
}

// fakeBlockIO records zeroing and copies in journal.
type fakeBlockIO struct{ journal *[]string }

func (b fakeBlockIO) Copy(_ context.Context, src, dst string, size uint64) error {
	*b.journal = append(*b.journal, fmt.Sprintf("copy %s %s %d", src, dst, size))
	return nil
}
func (b fakeBlockIO) Zero(_ context.Context, dev string, offset, length uint64) error {
	*b.journal = append(*b.journal, fmt.Sprintf("zero %s %d %d", dev, offset, length))
	return nil
}

// fakeHost is a mount table and a few paths in memory, in the manner of mount-utils'
// FakeMounter: Mount adds to the mount table and Unmount removes from it. It records every
// call that would change the host (mount, unmount, mkdir/create, remove) in calls, and in
// journal when that is set (reads are not recorded).
type fakeHost struct {
	Host
	mounts  []mount.MountInfo
	removed []string
	calls   []string
	// journal, when set, also gets every recorded call, in order with the other fakes'
	journal *[]string
	// files: what Inspect finds at a path (by the path as given; Target.Path defaults to
	// it); a path not listed is an empty directory while something is mounted on it, else
	// absent. MakeTarget adds what it makes.
	files map[string]Target
	// dm: device-mapper UUIDs by "maj:min"; devs: device numbers of block device paths (a
	// file a device node is bind-mounted on included, while it is mounted)
	dm   map[string]string
	devs map[string][2]uint32
	// unmounted, if set, runs after each Unmount (a test shows what was under the mount)
	unmounted func()
	// mountErr fails every Mount (after recording it); mountInfoErr fails MountInfo
	mountErr, mountInfoErr error
}

func (h *fakeHost) record(call string) {
	h.calls = append(h.calls, call)
	if h.journal != nil {
		*h.journal = append(*h.journal, call)
	}
}

func (h *fakeHost) MountInfo() ([]mount.MountInfo, error) {
	if h.mountInfoErr != nil {
		return nil, h.mountInfoErr
	}
	return append([]mount.MountInfo(nil), h.mounts...), nil
}

// Mount adds what the kernel would show: a device's filesystem with the device's number; a
// bind of a mounted directory with that mount's number; a bind of a device node as a
// devtmpfs mount (0:5), the target then standing for the device (DevNumber).
func (h *fakeHost) Mount(source, target, fstype string, options []string) error {
	h.record(fmt.Sprintf("mount %s %s %s %v", source, target, fstype, options))
	if h.mountErr != nil {
		return h.mountErr
	}
	n, isDev := h.devs[source]
	switch {
	case slices.Contains(options, "bind") && isDev:
		h.mounts = append(h.mounts, mount.MountInfo{MountPoint: target, Major: 0, Minor: 5, FsType: "devtmpfs", Source: "udev", Root: "/" + filepath.Base(source), MountOptions: options})
		h.devs[target] = n
	case slices.Contains(options, "bind") && mountAt(h.mounts, source) != nil:
		mi := *mountAt(h.mounts, source)
		mi.MountPoint, mi.MountOptions = target, options
		h.mounts = append(h.mounts, mi)
	case isDev:
		h.mounts = append(h.mounts, mount.MountInfo{MountPoint: target, Major: int(n[0]), Minor: int(n[1]), FsType: fstype, Source: source, Root: "/", MountOptions: options})
	default:
		// a mount the fake cannot model: recorded, and nothing shows in the table
	}
	return nil
}
func (h *fakeHost) Unmount(target string) error {
	h.record("unmount " + target)
	for i := len(h.mounts) - 1; i >= 0; i-- {
		if h.mounts[i].MountPoint == target {
			devBind := isDevtmpfs(&h.mounts[i])
			h.mounts = append(h.mounts[:i], h.mounts[i+1:]...)
			if devBind && mountAt(h.mounts, target) == nil {
				delete(h.devs, target) // the file under the bind is no device
			}
			if h.unmounted != nil {
				h.unmounted()
			}
			return nil
		}
	}
	return fmt.Errorf("%s: not mounted", target)
}
func (h *fakeHost) MakeTarget(path string, dir bool) error {
	h.record(fmt.Sprintf("maketarget %s dir=%v", path, dir))
	if h.files == nil {
		h.files = map[string]Target{}
	}
	if dir {
		h.files[path] = Target{Kind: TargetEmptyDir, What: "an empty directory"}
	} else {
		h.files[path] = Target{Kind: TargetEmptyFile, What: "an empty regular file"}
	}
	return nil
}
func (h *fakeHost) RemoveTarget(path string) error {
	h.record("remove " + path)
	h.removed = append(h.removed, path)
	delete(h.files, path)
	return nil
}
func (h *fakeHost) Inspect(path string) (Target, error) {
	if t, ok := h.files[path]; ok {
		if t.Path == "" {
			t.Path = path
		}
		if t.What == "" {
			t.What = fmt.Sprintf("kind %d", t.Kind)
		}
		return t, nil
	}
	if mountAt(h.mounts, path) != nil {
		return Target{Path: path, Kind: TargetEmptyDir, What: "an empty directory"}, nil
	}
	return Target{Path: path, Kind: TargetAbsent, What: "absent"}, nil
}
func (h *fakeHost) DevNumber(path string) (uint32, uint32, bool, error) {
	if n, ok := h.devs[path]; ok {
		return n[0], n[1], true, nil
	}
	return 0, 0, false, nil
}
func (h *fakeHost) DMUUID(major, minor uint32) (string, error) {
	return h.dm[devString(int(major), int(minor))], nil
}

var _ Host = (*fakeHost)(nil)
