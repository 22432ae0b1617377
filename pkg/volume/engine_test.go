package volume

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/nvme"
)

// fakeLVM keeps an in-memory report and applies the few mutations the engine makes.
// It exists to test the engine's decisions (identity checks, idempotency), not LVM.
type fakeLVM struct {
	rep     lvm.Report
	seq     int
	calls   []string
	reports int
	// ext holds the physical extents of the thick LVs, by "vg/lv", in allocation order
	// (fakePEs extents of 4 MiB on every PV, first fit).
	ext map[string][]lvm.PERange
	// trace, if set, also records the calls, the segment reads and (with the fake BlockIO's
	// trace pointing to the same slice) the block I/O, in order.
	trace *[]string
	// after, if set, runs after each recorded mutation (to make something happen in between).
	after func(call string)
	// cache, if set, is what Report answers (a report cached before a change made outside
	// the engine) until Invalidate or a mutation drops it, as the real client's cache.
	cache *lvm.Report
	peeks int
}

const fakePEs = 256

// ctxErr is what a real lvm exec returns when the caller's context has ended.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &lvm.Error{Kind: err}
	}
	return nil
}

func (f *fakeLVM) taken(pv string, pe uint64) bool {
	for _, rs := range f.ext {
		for _, r := range rs {
			if r.PV == pv && r.First <= pe && pe <= r.Last {
				return true
			}
		}
	}
	return false
}

// alloc finds extents first fit: extents/stripes on each of the VG's first `stripes` PVs.
func (f *fakeLVM) alloc(vg string, extents uint64, stripes int) ([]lvm.PERange, error) {
	stripes = max(stripes, 1)
	var pvs []string
	for _, pv := range f.rep.PVs {
		if pv.VGName == vg {
			pvs = append(pvs, pv.Name)
		}
	}
	if len(pvs) < stripes {
		return nil, &lvm.Error{Kind: lvm.ErrInsufficientSpace, Stderr: "Insufficient suitable allocatable extents"}
	}
	var out []lvm.PERange
	for _, pv := range pvs[:stripes] {
		need := extents / uint64(stripes)
		for pe := uint64(0); pe < fakePEs && need > 0; pe++ {
			if f.taken(pv, pe) {
				continue
			}
			if n := len(out); n > 0 && out[n-1].PV == pv && out[n-1].Last == pe-1 {
				out[n-1].Last = pe
			} else {
				out = append(out, lvm.PERange{PV: pv, First: pe, Last: pe})
			}
			need--
		}
		if need > 0 {
			return nil, &lvm.Error{Kind: lvm.ErrInsufficientSpace, Stderr: "Insufficient free space"}
		}
	}
	return out, nil
}

func (f *fakeLVM) give(vg, lv string, rs []lvm.PERange) {
	if f.ext == nil {
		f.ext = map[string][]lvm.PERange{}
	}
	f.ext[vg+"/"+lv] = append(f.ext[vg+"/"+lv], rs...)
}

func (f *fakeLVM) ExtendLVOnto(ctx context.Context, o lvm.ExtendLVOptions) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	var rs []string
	var n uint64
	for _, r := range o.Ranges {
		rs = append(rs, r.String())
		n += r.Len()
	}
	call := fmt.Sprintf("lvextend %s/%s %d -i %d -I %d %s", o.VG, o.Name, o.Size, o.Stripes, o.StripeSize, strings.Join(rs, " "))
	for i, lv := range f.rep.LVs {
		if lv.VGName != o.VG || lv.Name != o.Name {
			continue
		}
		for _, r := range o.Ranges {
			for pe := r.First; pe <= r.Last; pe++ {
				if f.taken(r.PV, pe) {
					_ = f.log("FAILED %s", call) // the call is recorded; the lvm error is the answer
					return &lvm.Error{Kind: lvm.ErrInsufficientSpace, ExitCode: 5, Stderr: "Insufficient free space: 2 extents needed, but only 1 available"}
				}
			}
		}
		if n*(4<<20) != o.Size-lv.Size {
			_ = f.log("FAILED %s", call) // the call is recorded; the lvm error is the answer
			return &lvm.Error{Kind: lvm.ErrInsufficientSpace, ExitCode: 5, Stderr: "Insufficient free space"}
		}
		f.give(o.VG, o.Name, o.Ranges)
		f.rep.LVs[i].Size = o.Size
		return f.log("%s", call)
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}

func (f *fakeLVM) Segments(ctx context.Context, vg, name string) ([]lvm.Segment, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if f.trace != nil {
		*f.trace = append(*f.trace, fmt.Sprintf("lvs --segments %s/%s", vg, name))
	}
	var out []lvm.Segment
	for _, lv := range f.rep.LVs {
		if lv.VGName == vg && (name == "" || lv.Name == name) {
			out = append(out, lvm.Segment{LV: lv.Name, SegType: "linear", Stripes: 1, Ranges: f.ext[vg+"/"+lv.Name]})
		}
	}
	if name != "" && len(out) == 0 {
		return nil, &lvm.Error{Kind: lvm.ErrNotFound}
	}
	return out, nil
}

func (f *fakeLVM) uuid() string {
	f.seq++
	return fmt.Sprintf("%06d-aaaa-bbbb-cccc-dddd-eeee-ffffff", f.seq)
}
func (f *fakeLVM) Report(context.Context) (*lvm.Report, error) {
	f.reports++
	src := &f.rep
	if f.cache != nil {
		src = f.cache
	}
	c := *src
	c.LVs = append([]lvm.LV(nil), src.LVs...)
	return &c, nil
}
func (f *fakeLVM) ReportVG(ctx context.Context, vg string) (*lvm.Report, error) {
	r, err := f.Report(ctx)
	if err != nil {
		return nil, err
	}
	return r.OnlyVG(vg), nil
}
func (f *fakeLVM) PeekVG(_ context.Context, vg string) (*lvm.Report, error) {
	f.peeks++
	return f.rep.OnlyVG(vg), nil
}
func (f *fakeLVM) Invalidate()         { f.cache = nil }
func (f *fakeLVM) InvalidateVG(string) { f.cache = nil }
func (f *fakeLVM) log(s string, a ...any) error {
	f.cache = nil
	call := fmt.Sprintf(s, a...)
	f.calls = append(f.calls, call)
	if f.trace != nil {
		*f.trace = append(*f.trace, call)
	}
	if f.after != nil {
		f.after(call)
	}
	return nil
}
func (f *fakeLVM) PVCreate(_ context.Context, dev string, _ uint64, uuid string) error {
	f.rep.PVs = append(f.rep.PVs, lvm.PV{Name: dev, UUID: uuid})
	return f.log("pvcreate %s", dev)
}
func (f *fakeLVM) VGCreate(_ context.Context, name string, devs []string, _ []string) error {
	f.rep.VGs = append(f.rep.VGs, lvm.VG{Name: name, UUID: f.uuid(), ExtentSize: 4 << 20})
	for i := range f.rep.PVs {
		for _, d := range devs {
			if f.rep.PVs[i].Name == d {
				f.rep.PVs[i].VGName = name
				f.rep.PVs[i].Free = 1 << 30
			}
		}
	}
	return f.log("vgcreate %s %v", name, devs)
}
func (f *fakeLVM) VGExtend(_ context.Context, name string, devs []string) error {
	return f.log("vgextend %s %v", name, devs)
}
func (f *fakeLVM) VGChangeActivate(_ context.Context, vg string) error { return nil }
func (f *fakeLVM) CreateLV(ctx context.Context, o lvm.CreateLVOptions) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if o.ThinPool == "" {
		rs, err := f.alloc(o.VG, o.Size/(4<<20), o.Stripes)
		if err != nil {
			return err
		}
		f.give(o.VG, o.Name, rs)
	}
	f.rep.LVs = append(f.rep.LVs, lvm.LV{Name: o.Name, VGName: o.VG, UUID: f.uuid(), Size: o.Size, Tags: o.Tags, Attr: "-wi-a-----", Active: true})
	if o.Stripes > 1 {
		return f.log("lvcreate %s/%s %d -i %d -I %d", o.VG, o.Name, o.Size, o.Stripes, o.StripeSize)
	}
	return f.log("lvcreate %s/%s %d", o.VG, o.Name, o.Size)
}
func (f *fakeLVM) CreateThinPool(context.Context, string, string, int, []string) error {
	return errors.New("not in this fake")
}
func (f *fakeLVM) CreateSnapshot(_ context.Context, vg, origin, name string, size uint64, tags []string) error {
	for _, lv := range f.rep.LVs {
		if lv.VGName == vg && lv.Name == origin {
			f.rep.LVs = append(f.rep.LVs, lvm.LV{Name: name, VGName: vg, UUID: f.uuid(), Size: lv.Size, Origin: origin, Tags: tags, Attr: "swi-a-s---", Active: true})
			return f.log("lvcreate --snapshot %s/%s %s %d", vg, origin, name, size)
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}
func (f *fakeLVM) RemoveLV(ctx context.Context, vg, name string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for i, lv := range f.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			f.rep.LVs = append(f.rep.LVs[:i], f.rep.LVs[i+1:]...)
			delete(f.ext, vg+"/"+name)
			return f.log("lvremove %s/%s", vg, name)
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}
func (f *fakeLVM) ExtendLV(ctx context.Context, vg, name string, size uint64) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for i, lv := range f.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			if _, thick := f.ext[vg+"/"+name]; thick && size > lv.Size {
				rs, err := f.alloc(vg, (size-lv.Size)/(4<<20), 1)
				if err != nil {
					return err
				}
				f.give(vg, name, rs)
			}
			f.rep.LVs[i].Size = size
			return f.log("lvextend %s/%s %d", vg, name, size)
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}
func (f *fakeLVM) AddTags(ctx context.Context, vg, name string, tags []string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for i, lv := range f.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			f.rep.LVs[i].Tags = append(append([]string(nil), lv.Tags...), tags...)
			return f.log("lvchange --addtag %v %s/%s", tags, vg, name)
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}
func (f *fakeLVM) DeleteTags(ctx context.Context, vg, name string, tags []string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for i, lv := range f.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			var kept []string
			for _, t := range lv.Tags {
				if !slices.Contains(tags, t) {
					kept = append(kept, t)
				}
			}
			f.rep.LVs[i].Tags = kept
			return f.log("lvchange --deltag %v %s/%s", tags, vg, name)
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}
func (f *fakeLVM) ChangeTags(ctx context.Context, vg, name string, add, del []string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for i, lv := range f.rep.LVs {
		if lv.VGName == vg && lv.Name == name {
			var kept []string
			for _, t := range lv.Tags {
				if !slices.Contains(del, t) {
					kept = append(kept, t)
				}
			}
			kept = append(kept, add...)
			f.rep.LVs[i].Tags = kept
			return f.log("lvchange --addtag %v --deltag %v %s/%s", add, del, vg, name)
		}
	}
	return &lvm.Error{Kind: lvm.ErrNotFound}
}

// fakeBlockIO records copies and zeroing; fail makes the next Zero fail; onZero, if set,
// runs inside every Zero (with its context) before it succeeds.
type fakeBlockIO struct {
	calls  []string
	fail   error
	trace  *[]string
	onZero func(ctx context.Context, dev string)
}

var _ BlockIO = (*fakeBlockIO)(nil)

func (b *fakeBlockIO) Copy(_ context.Context, src, dst string, size uint64) error {
	b.calls = append(b.calls, fmt.Sprintf("copy %s %s %d", src, dst, size))
	return nil
}
func (b *fakeBlockIO) Zero(ctx context.Context, dev string, offset, length uint64) error {
	if err := b.fail; err != nil {
		b.fail = nil
		return err
	}
	if b.onZero != nil {
		b.onZero(ctx, dev)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	call := fmt.Sprintf("zero %s %d+%d", dev, offset, length)
	b.calls = append(b.calls, call)
	if b.trace != nil {
		*b.trace = append(*b.trace, call)
	}
	return nil
}
func (f *fakeLVM) Activate(context.Context, string, string) error { return nil }
func (f *fakeLVM) VGReduce(_ context.Context, vg string, devs []string) error {
	return f.log("vgreduce %s %v", vg, devs)
}
func (f *fakeLVM) VGRemove(_ context.Context, vg string) error { return f.log("vgremove %s", vg) }
func (f *fakeLVM) PVRemove(_ context.Context, dev string) error {
	return f.log("pvremove %s", dev)
}

type fakeDisks struct {
	nss      []disk.Namespace
	verdicts map[string]disk.Verdict
}

func (d fakeDisks) List() ([]disk.Namespace, error) { return d.nss, nil }
func (d fakeDisks) Check(_ context.Context, ns disk.Namespace) disk.Verdict {
	if v, ok := d.verdicts[ns.Name]; ok {
		return v
	}
	return disk.Verdict{Empty: true}
}

func newTestEngine(t *testing.T, verdicts map[string]disk.Verdict) (*Engine, *fakeLVM) {
	t.Helper()
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: fast
  volumeGroup: vg-fast
  type: thick
  devices: [{serial: S0}]
- name: other
  volumeGroup: vg-other
  type: thick
  devices: [{serial: S1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLVM{}
	d := fakeDisks{nss: []disk.Namespace{
		{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1},
		{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "S1", NSID: 1},
	}, verdicts: verdicts}
	e := New(f, d, &fakeBlockIO{}, cfg)
	e.Setup(context.Background())
	return e, f
}

func TestSetupRefusesNonEmptyAndTouchesNothing(t *testing.T) {
	e, f := newTestEngine(t, map[string]disk.Verdict{
		"nvme1n1": {Refusals: []disk.Refusal{{Reason: disk.ReasonSignature, Detail: `blkid -p found TYPE="ext4"`}}},
	})
	fast, _ := e.Class("fast")
	other, _ := e.Class("other")
	if !fast.Ready {
		t.Errorf("class fast not ready: %v", fast.Problems)
	}
	if other.Ready || !strings.Contains(strings.Join(other.Problems, ";"), "ext4") {
		t.Errorf("class other: ready=%v problems=%v, want refused naming ext4", other.Ready, other.Problems)
	}
	for _, c := range f.calls {
		if strings.Contains(c, "nvme1n1") || strings.Contains(c, "vg-other") {
			t.Errorf("refused device or class was touched: %s", c)
		}
	}
	_, err := e.Create(context.Background(), CreateRequest{Name: "x", Class: "other", Size: SizeRequest{Required: 4 << 20}})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Create in a refused class: %v, want ErrUnavailable", err)
	}
}

func TestResolveVerifiesIdentity(t *testing.T) {
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-1", Class: "fast", Size: SizeRequest{Required: 10 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	id := v.ID.String()
	if v.Size != 12<<20 {
		t.Errorf("size %d, want 12 MiB (rounded to the 4 MiB extent)", v.Size)
	}

	// Idempotent retry: same answer, no second lvcreate.
	before := len(f.calls)
	again, err := e.Create(ctx, CreateRequest{Name: "pvc-1", Class: "fast", Size: SizeRequest{Required: 10 << 20}})
	if err != nil || again.ID != v.ID || len(f.calls) != before {
		t.Errorf("retry: id %v err %v, %d new LVM calls", again.ID, err, len(f.calls)-before)
	}
	// Same name, other size or class: AlreadyExists.
	if _, err := e.Create(ctx, CreateRequest{Name: "pvc-1", Class: "fast", Size: SizeRequest{Required: 100 << 20}}); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("bigger retry: %v, want ErrAlreadyExists", err)
	}

	if _, err := e.Resolve(ctx, id, KindVolume); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if _, err := e.Resolve(ctx, id, KindSnapshot); !errors.Is(err, ErrNotFound) {
		t.Errorf("volume ID resolved as snapshot: %v", err)
	}
	// Removed and re-created under the same name: FailedPrecondition naming both UUIDs.
	f.rep.LVs[0].UUID = "999999-aaaa-bbbb-cccc-dddd-eeee-ffffff"
	_, err = e.Resolve(ctx, id, KindVolume)
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "re-created") {
		t.Errorf("re-created LV: %v, want ErrPrecondition saying re-created", err)
	}
	// Delete leaves the impostor alone.
	if err := e.Delete(ctx, id); err != nil {
		t.Errorf("Delete of a replaced volume: %v", err)
	}
	if len(f.rep.LVs) != 1 {
		t.Errorf("Delete removed the re-created LV that the ID does not name")
	}
	// VG re-created (new UUID): the ID does not resolve on this incarnation.
	f.rep.LVs[0].UUID = strings.Repeat("0", 6) + "-aaaa-bbbb-cccc-dddd-eeee-ffffff"
	f.rep.VGs[0].UUID = "777777-aaaa-bbbb-cccc-dddd-eeee-ffffff"
	_, err = e.Resolve(ctx, id, KindVolume)
	if !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "volume lost: ") || !strings.Contains(err.Error(), "replaced, wiped or rebuilt") ||
		!strings.Contains(err.Error(), "777777aaaabbbbccccddddeeeeffffff") || !strings.Contains(err.Error(), v.ID.VGUUID) {
		t.Errorf("re-created VG: %v, want ErrNotFound starting \"volume lost: \", naming both VG UUIDs and rebuilt disks", err)
	}
	// VG gone: lost as well.
	f.rep.VGs[0].Name = "vg-renamed"
	_, err = e.Resolve(ctx, id, KindVolume)
	if !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "volume lost: ") || !strings.Contains(err.Error(), "no volume group vg-fast") {
		t.Errorf("VG gone: %v, want ErrNotFound starting \"volume lost: \" saying vg-fast is missing", err)
	}
	f.rep.VGs[0].Name = "vg-fast"
	// Garbage IDs are not found; deleting them succeeds.
	if _, err := e.Resolve(ctx, "fake-volume-id", KindVolume); !errors.Is(err, ErrNotFound) {
		t.Errorf("garbage ID: %v", err)
	}
	if err := e.Delete(ctx, "fake-volume-id"); err != nil {
		t.Errorf("Delete garbage ID: %v", err)
	}
}

func TestReportIsCachedPerOperation(t *testing.T) {
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := e.Create(ctx, CreateRequest{Name: fmt.Sprint("v", i), Class: "fast", Size: SizeRequest{Required: 4 << 20}}); err != nil {
			t.Fatal(err)
		}
	}
	f.reports = 0
	vols, err := e.List(ctx, KindVolume)
	if err != nil || len(vols) != 3 {
		t.Fatalf("List: %d volumes, %v", len(vols), err)
	}
	if f.reports != 1 {
		t.Errorf("listing 3 volumes took %d LVM reports, want 1", f.reports)
	}
}

func TestDeleteRefusesWhenClassWasRemovedButLVExists(t *testing.T) {
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-keep", Class: "other", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("deviceClasses:\n- name: fast\n  volumeGroup: vg-fast\n  type: thick\n  devices: [{serial: S0}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e2 := New(f, fakeDisks{nss: []disk.Namespace{{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1}}}, nil, cfg)
	e2.Setup(ctx)
	err = e2.Delete(ctx, v.ID.String())
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "vg-other/") {
		t.Fatalf("Delete with the class gone: %v, want ErrPrecondition naming the LV", err)
	}
	if len(f.rep.LVs) != 1 {
		t.Fatal("the LV was removed")
	}
}

func TestSetupRuleSelectors(t *testing.T) {
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: named
  volumeGroup: vg-named
  type: thick
  devices: [{serial: S0}]
- name: big
  volumeGroup: vg-big
  type: thick
  devices: [{modelPattern: "Big*", minSize: 1Gi}]
- name: rest
  volumeGroup: vg-rest
  type: thick
  devices: [{allEmpty: true}]
- name: none
  volumeGroup: vg-none
  type: thick
  devices: [{serialPattern: "NOPE*"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	nss := []disk.Namespace{
		{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", Model: "Small", SizeBytes: 4 << 30},
		{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "S1", Model: "Small", SizeBytes: 4 << 30},
		{Name: "nvme2n1", DevPath: "/dev/nvme2n1", Serial: "S2", Model: "Big One", SizeBytes: 4 << 30},
		{Name: "nvme3n1", DevPath: "/dev/nvme3n1", Serial: "S3", Model: "Big Two", SizeBytes: 4 << 30},
		{Name: "nvme4n1", DevPath: "/dev/nvme4n1", Serial: "S4", Model: "Big Tiny", SizeBytes: 512 << 20},
	}
	f := &fakeLVM{}
	e := New(f, fakeDisks{nss: nss, verdicts: map[string]disk.Verdict{
		"nvme2n1": {Refusals: []disk.Refusal{{Reason: disk.ReasonPartitionTable, Detail: `PTTYPE="gpt"`}}},
	}}, nil, cfg)
	e.Setup(context.Background())
	want := map[string][]string{"named": {"S0"}, "big": {"S3"}, "rest": {"S1", "S4"}}
	for _, c := range e.Classes() {
		var got []string
		for _, m := range c.Members {
			got = append(got, m.Serial)
		}
		if c.Name == "none" {
			if c.Ready || !strings.Contains(strings.Join(c.Problems, ";"), "no drive matched") {
				t.Errorf("class none: ready=%v problems=%v", c.Ready, c.Problems)
			}
			continue
		}
		if !c.Ready || fmt.Sprint(got) != fmt.Sprint(want[c.Name]) {
			t.Errorf("class %s: ready=%v members=%v problems=%v, want members %v", c.Name, c.Ready, got, c.Problems, want[c.Name])
		}
		if c.Name == "big" && (len(c.Refused) != 1 || c.Refused[0].Serial != "S2" || c.Refused[0].BlocksClass ||
			fmt.Sprint(c.Refused[0].Codes) != "[partition-table]" || !strings.Contains(c.Refused[0].Reason, "gpt")) {
			t.Errorf("class big: refused=%+v, want the partitioned drive skipped", c.Refused)
		}
	}
	for _, call := range f.calls {
		if strings.Contains(call, "nvme2n1") {
			t.Errorf("non-empty drive touched: %s", call)
		}
	}
}

type fakeWiper struct {
	d     fakeDisks
	wiped []string
}

func (w *fakeWiper) Wipe(_ context.Context, dev string) error {
	w.wiped = append(w.wiped, dev)
	for name := range w.d.verdicts {
		if "/dev/"+name == dev {
			delete(w.d.verdicts, name)
		}
	}
	return nil
}

func TestAdoptForceWipeRules(t *testing.T) {
	cfg, _ := config.Parse([]byte("deviceClasses:\n- name: fast\n  volumeGroup: vg-fast\n  type: thick\n  devices: [{allEmpty: true}]\n"))
	ext4 := disk.Verdict{Refusals: []disk.Refusal{{Reason: disk.ReasonSignature, Detail: `TYPE="ext4"`}}}
	mounted := disk.Verdict{Refusals: []disk.Refusal{{Reason: disk.ReasonSignature}, {Reason: disk.ReasonMounted, Detail: "/mnt"}}}
	nss := []disk.Namespace{
		{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "A", NSID: 1},
		{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "B", NSID: 1},
	}
	tests := []struct {
		name, identity, force string
		verdicts              map[string]disk.Verdict
		wantErr               string
		wantWiped             bool
	}{
		{"empty drive", "serial:a/ns1", "", nil, "", false},
		{"non-empty refused", "serial:a/ns1", "", map[string]disk.Verdict{"nvme0n1": ext4}, "--force-wipe serial:a/ns1", false},
		{"force names another drive", "serial:a/ns1", "serial:b/ns1", map[string]disk.Verdict{"nvme0n1": ext4}, "not provably empty", false},
		{"force wipes content", "serial:a/ns1", "serial:a/ns1", map[string]disk.Verdict{"nvme0n1": ext4}, "", true},
		{"mounted is never wiped", "serial:a/ns1", "serial:a/ns1", map[string]disk.Verdict{"nvme0n1": mounted}, "cannot be wiped: mounted", false},
		{"unknown identity", "serial:zz/ns1", "", nil, "no NVMe namespace", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verdicts := map[string]disk.Verdict{}
			for k, v := range tt.verdicts {
				verdicts[k] = v
			}
			d := fakeDisks{nss: nss, verdicts: verdicts}
			f := &fakeLVM{}
			e := New(f, d, &fakeBlockIO{}, cfg)
			w := &fakeWiper{d: d}
			_, err := e.Adopt(context.Background(), "fast", tt.identity, tt.force, w)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Adopt: %v, want error containing %q", err, tt.wantErr)
			}
			if (len(w.wiped) > 0) != tt.wantWiped {
				t.Errorf("wiped %v, want wiped=%v", w.wiped, tt.wantWiped)
			}
			created := strings.Contains(strings.Join(f.calls, ";"), "pvcreate")
			if created != (tt.wantErr == "") {
				t.Errorf("LVM calls %v after err=%v", f.calls, err)
			}
		})
	}
}

type fakeHealth map[string]*nvme.HealthLog

func (f fakeHealth) Health(dev string) (*nvme.HealthLog, error) {
	if h, ok := f[dev]; ok {
		return h, nil
	}
	return nil, errors.New("no health log")
}

func TestClassHealthIncludesDriveHealth(t *testing.T) {
	tests := []struct {
		name       string
		log        *nvme.HealthLog
		wantReason string
	}{
		{"healthy", &nvme.HealthLog{AvailableSpare: 100, AvailableSpareThreshold: 10, TemperatureKelvin: 320}, ""},
		{"critical warning", &nvme.HealthLog{CriticalWarning: 0x05, AvailableSpare: 100, AvailableSpareThreshold: 10}, "DriveDegraded"},
		{"worn out", &nvme.HealthLog{AvailableSpare: 100, AvailableSpareThreshold: 10, PercentageUsed: 100}, "DriveDegraded"},
		{"spare below threshold", &nvme.HealthLog{AvailableSpare: 5, AvailableSpareThreshold: 10}, "DriveDegraded"},
		{"unreadable", nil, "DriveHealthUnreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, f := newTestEngine(t, nil)
			f.rep.VGs[0].Size = 1 << 30
			h := fakeHealth{}
			if tt.log != nil {
				h["/dev/nvme0n1"] = tt.log
			}
			e.SetDriveHealth(h)
			c, _ := e.Class("fast")
			conds := e.ClassHealth(context.Background(), c)
			var reasons []string
			for _, c := range conds {
				reasons = append(reasons, c.Reason)
			}
			if tt.wantReason == "" && len(conds) != 0 || tt.wantReason != "" && (len(conds) != 1 || conds[0].Reason != tt.wantReason) {
				t.Errorf("conditions %v, want [%s]", reasons, tt.wantReason)
			}
		})
	}
}

// Two namespaces answering to one EUI-64 (a controller with bogus identifiers): a class
// selecting that identity is refused naming both, adopt/force-wipe/release refuse it, and
// Drives flags both; nothing is written.
func TestAmbiguousIdentityIsRefused(t *testing.T) {
	const eui = "eui64:00a0b0c0d0e0f001"
	nss := []disk.Namespace{
		{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "A", NSID: 1, EUI64: "00a0b0c0d0e0f001"},
		{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "B", NSID: 1, EUI64: "00a0b0c0d0e0f001"},
		{Name: "nvme2n1", DevPath: "/dev/nvme2n1", Serial: "C", NSID: 1, EUI64: "00a0b0c0d0e0f002"},
	}
	cfg, err := config.Parse([]byte("deviceClasses:\n- {name: fast, volumeGroup: vg-fast, type: thick, devices: [{identity: " + eui + "}]}\n- {name: other, volumeGroup: vg-other, type: thick, devices: [{identity: eui64:00a0b0c0d0e0f002}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ext4 := disk.Verdict{Refusals: []disk.Refusal{{Reason: disk.ReasonSignature, Detail: `TYPE="ext4"`}}}
	d := fakeDisks{nss: nss, verdicts: map[string]disk.Verdict{"nvme0n1": ext4}}
	f := &fakeLVM{}
	e := New(f, d, &fakeBlockIO{}, cfg)
	e.Setup(context.Background())
	c, _ := e.Class("fast")
	if c.Ready || len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "ambiguous: /dev/nvme0n1 (serial:a/ns1) and /dev/nvme1n1 (serial:b/ns1) all answer") {
		t.Errorf("class fast: ready %v, problems %q; want refused naming both drives", c.Ready, c.Problems)
	}
	if o, _ := e.Class("other"); !o.Ready {
		t.Errorf("class other (an unambiguous identity) not ready: %v", o.Problems)
	}
	for _, call := range f.calls {
		if strings.Contains(call, "nvme0n1") || strings.Contains(call, "nvme1n1") {
			t.Errorf("LVM touched an ambiguous drive: %s", call)
		}
	}
	w := &fakeWiper{d: d}
	if _, err := e.Adopt(context.Background(), "other", eui, "", w); err == nil || !strings.Contains(err.Error(), "is ambiguous") {
		t.Errorf("Adopt by the shared identity: %v, want ambiguous", err)
	}
	// by serial it is found, but a force-wipe naming the shared identity is no confirmation
	if _, err := e.Adopt(context.Background(), "other", "serial:a/ns1", eui, w); err == nil || !strings.Contains(err.Error(), "does not name it and only it") || !strings.Contains(err.Error(), "--force-wipe serial:a/ns1") {
		t.Errorf("Adopt with --force-wipe %s: %v, want refused suggesting serial:a/ns1", eui, err)
	}
	if len(w.wiped) != 0 {
		t.Errorf("wiped %v", w.wiped)
	}
	if _, err := e.Release(context.Background(), eui); err == nil || !strings.Contains(err.Error(), "is ambiguous") {
		t.Errorf("Release by the shared identity: %v, want ambiguous", err)
	}
	drives, err := e.Drives(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	shares := map[string][]string{}
	for _, dr := range drives {
		shares[dr.Name] = dr.SharesIdentityWith
	}
	if !reflect.DeepEqual(shares["nvme0n1"], []string{"nvme1n1"}) || !reflect.DeepEqual(shares["nvme1n1"], []string{"nvme0n1"}) || shares["nvme2n1"] != nil {
		t.Errorf("SharesIdentityWith: %v", shares)
	}
}
