package driver

import (
	"context"
	"fmt"
	"slices"
	"testing"

	mount "k8s.io/mount-utils"

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
	m.calls = append(m.calls, "lvcreate "+o.Name)
	m.rep.LVs = append(m.rep.LVs, lvm.LV{Name: o.Name, VGName: o.VG, VGUUID: m.vgUUID(o.VG), UUID: m.uuid(), Size: o.Size, Pool: o.ThinPool, Tags: o.Tags, Attr: "Vwi-a-tz--", Active: true})
	return nil
}
func (m *memLVM) CreateSnapshot(_ context.Context, vg, origin, name string, _ uint64, tags []string) error {
	m.calls = append(m.calls, "snapshot "+origin+" "+name)
	src := m.rep.LVByName(vg, origin)
	m.rep.LVs = append(m.rep.LVs, lvm.LV{Name: name, VGName: vg, VGUUID: m.vgUUID(vg), UUID: m.uuid(), Size: src.Size, Pool: src.Pool, Origin: origin, Tags: tags, Attr: "Vwi---tz-k"})
	return nil
}
func (m *memLVM) ExtendLV(_ context.Context, vg, name string, size uint64) error {
	m.calls = append(m.calls, "lvextend "+name)
	m.rep.LVByName(vg, name).Size = size
	return nil
}
func (m *memLVM) AddTags(_ context.Context, vg, name string, tags []string) error {
	m.calls = append(m.calls, fmt.Sprint("addtag ", name, tags))
	lv := m.rep.LVByName(vg, name)
	lv.Tags = append(append([]string(nil), lv.Tags...), tags...)
	return nil
}
func (m *memLVM) ChangeTags(ctx context.Context, vg, name string, add, del []string) error {
	if len(add) > 0 {
		if err := m.AddTags(ctx, vg, name, add); err != nil {
			return err
		}
	}
	if len(del) > 0 {
		m.calls = append(m.calls, fmt.Sprint("deltag ", name, del))
		lv := m.rep.LVByName(vg, name)
		lv.Tags = slices.DeleteFunc(append([]string(nil), lv.Tags...), func(t string) bool { return slices.Contains(del, t) })
	}
	return nil
}
func (m *memLVM) InvalidateVG(string) {}
func (m *memLVM) RemoveLV(_ context.Context, vg, name string) error {
	for i, lv := range m.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			m.calls = append(m.calls, "lvremove "+name)
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

// newEngineDriver returns a node-mode driver for node n1 over memLVM and a fake host.
func newEngineDriver(t *testing.T) (*Driver, *memLVM, *fakeHost) {
	t.Helper()
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: thin
  volumeGroup: vg-thin
  type: thin
  thinPool: {name: pool, overprovisionRatio: 4}
  devices: [{serial: T0}]
`))
	if err != nil {
		t.Fatal(err)
	}
	l := newMemLVM()
	eng := volume.New(l, oneDisk{}, nil, cfg)
	eng.Setup(context.Background())
	if c, _ := eng.Class("thin"); !c.Ready {
		t.Fatalf("class thin not ready: %v", c.Problems)
	}
	h := &fakeHost{}
	d, err := New(Options{NodeID: "n1", Version: "v1", Mode: ModeNode, Engine: eng, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	return d, l, h
}

// fakeHost is a mount table and a few paths in memory; it records every call that would
// change the host (mount, unmount, mkdir/create, remove) in calls.
type fakeHost struct {
	Host
	mounts  []mount.MountInfo
	removed []string
	calls   []string
	// files: what Inspect finds at a path (by the path as given; Target.Path defaults to
	// it); a path not listed is an empty directory while something is mounted on it, else
	// absent.
	files map[string]Target
	// dm: device-mapper UUIDs by "maj:min"; devs: device numbers of block device paths
	dm   map[string]string
	devs map[string][2]uint32
	// unmounted, if set, runs after each Unmount (a test shows what was under the mount)
	unmounted func()
}

func (h *fakeHost) MountInfo() ([]mount.MountInfo, error) {
	return append([]mount.MountInfo(nil), h.mounts...), nil
}
func (h *fakeHost) Mount(source, target, fstype string, options []string) error {
	h.calls = append(h.calls, fmt.Sprintf("mount %s %s %s %v", source, target, fstype, options))
	return nil
}
func (h *fakeHost) Unmount(target string) error {
	h.calls = append(h.calls, "unmount "+target)
	for i := len(h.mounts) - 1; i >= 0; i-- {
		if h.mounts[i].MountPoint == target {
			h.mounts = append(h.mounts[:i], h.mounts[i+1:]...)
			if h.unmounted != nil {
				h.unmounted()
			}
			return nil
		}
	}
	return fmt.Errorf("%s: not mounted", target)
}
func (h *fakeHost) MakeTarget(path string, dir bool) error {
	h.calls = append(h.calls, fmt.Sprintf("maketarget %s dir=%v", path, dir))
	return nil
}
func (h *fakeHost) RemoveTarget(path string) error {
	h.calls = append(h.calls, "remove "+path)
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
