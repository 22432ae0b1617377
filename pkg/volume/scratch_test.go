package volume

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
)

// newScratchTestEngine is newZeroTestEngine with a shared trace of LVM and block calls, and
// optionally a class striped over two drives.
func newScratchTestEngine(t *testing.T, striped bool) (*Engine, *fakeLVM, *fakeBlockIO, *[]string) {
	t.Helper()
	yaml := `
deviceClasses:
- name: fast
  volumeGroup: vg-fast
  type: thick
  devices: [{serial: S0}]
`
	nss := []disk.Namespace{{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1}}
	if striped {
		yaml = `
deviceClasses:
- name: fast
  volumeGroup: vg-fast
  type: thick
  stripes: 2
  stripeSize: 64Ki
  devices: [{serial: S0}, {serial: S1}]
`
		nss = append(nss, disk.Namespace{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "S1", NSID: 1})
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	trace := &[]string{}
	f, b := &fakeLVM{trace: trace}, &fakeBlockIO{trace: trace}
	e := New(f, fakeDisks{nss: nss}, b, cfg)
	e.Setup(context.Background())
	if c, _ := e.Class("fast"); c == nil || !c.Ready {
		t.Fatalf("class fast not ready: %+v", c)
	}
	f.calls, *trace = nil, nil
	return e, f, b, trace
}

func rangesOf(f *fakeLVM, lv string) []lvm.PERange {
	return append([]lvm.PERange(nil), f.ext["vg-fast/"+lv]...)
}

// A thick expand zeroes the added extents through a scratch LV before they join the volume:
// scratch create → zero of the scratch's device → its PE ranges read → tag → scratch remove
// → lvextend naming exactly those ranges → the volume's segments checked → tag removed.
// Nothing is zeroed through the volume, and the retry does nothing.
func TestThickExpandZeroesThroughAScratchLV(t *testing.T) {
	e, f, b, trace := newScratchTestEngine(t, false)
	ctx := context.Background()
	// the deleted volume whose extents the expand lands on
	old, err := e.Create(ctx, CreateRequest{Name: "old", Class: "fast", Size: SizeRequest{Required: 28 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-x", Class: "fast", Size: SizeRequest{Required: 12 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	dirty := rangesOf(f, old.LV.Name)
	if err := e.Delete(ctx, old.ID.String()); err != nil {
		t.Fatal(err)
	}
	id, lv, z := v.ID.String(), v.LV.Name, scratchName(v.LV.Name)
	var zeroed []lvm.PERange
	var scratchTags []string
	b.onZero = func(_ context.Context, dev string) {
		if dev == "/dev/vg-fast/"+z {
			zeroed = rangesOf(f, z)
			scratchTags = f.rep.LVByName("vg-fast", z).Tags
		}
	}
	*trace = nil
	nb := len(b.calls)
	got, err := e.Expand(ctx, id, SizeRequest{Required: 40 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(zeroed, dirty) {
		t.Fatalf("the scratch LV lay on %v, want the deleted volume's %v (the test proves nothing)", zeroed, dirty)
	}
	want := []string{
		fmt.Sprintf("lvcreate vg-fast/%s %d", z, 28<<20),
		fmt.Sprintf("zero /dev/vg-fast/%s 0+%d", z, 28<<20),
		fmt.Sprintf("lvs --segments vg-fast/%s", z),
		fmt.Sprintf("lvchange --addtag [lnv.zero=%d] vg-fast/%s", 12<<20, lv),
		fmt.Sprintf("lvremove vg-fast/%s", z),
		fmt.Sprintf("lvextend vg-fast/%s %d -i 1 -I 0 %s", lv, 40<<20, rangesString(zeroed)),
		fmt.Sprintf("lvs --segments vg-fast/%s", lv),
		fmt.Sprintf("lvchange --deltag [lnv.zero=%d] vg-fast/%s", 12<<20, lv),
	}
	if !reflect.DeepEqual(*trace, want) {
		t.Errorf("calls\n%q\nwant\n%q", *trace, want)
	}
	if want := []string{Tag(TagKind, "z"), Tag(TagScratchFor, lv)}; !reflect.DeepEqual(scratchTags, want) {
		t.Errorf("scratch LV tags %q, want %q", scratchTags, want)
	}
	if want := []string{fmt.Sprintf("zero /dev/vg-fast/%s 0+%d", z, 28<<20)}; !reflect.DeepEqual(since(b.calls, nb), want) {
		t.Errorf("block calls %q, want only the scratch's zeroing %q", since(b.calls, nb), want)
	}
	if got.Size != 40<<20 || got.Zeroing || f.rep.LVByName("vg-fast", z) != nil {
		t.Errorf("expanded volume: size %d zeroing %v; scratch left: %v", got.Size, got.Zeroing, f.rep.LVByName("vg-fast", z) != nil)
	}
	nl, nb := len(f.calls), len(b.calls)
	if _, err := e.Expand(ctx, id, SizeRequest{Required: 40 << 20}); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != nl || len(b.calls) != nb {
		t.Errorf("the retry did more: LVM %q, block %q", since(f.calls, nl), since(b.calls, nb))
	}
}

// A striped class: the scratch LV has the class's stripes and stripe size, and lvextend
// names the ranges on both PVs with the same -i/-I.
func TestStripedThickExpandNamesEveryStripesRanges(t *testing.T) {
	e, f, _, trace := newScratchTestEngine(t, true)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-s", Class: "fast", Size: SizeRequest{Required: 16 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	lv, z := v.LV.Name, scratchName(v.LV.Name)
	*trace = nil
	if _, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 40 << 20}); err != nil {
		t.Fatal(err)
	}
	want := []lvm.PERange{{PV: "/dev/nvme0n1", First: 2, Last: 4}, {PV: "/dev/nvme1n1", First: 2, Last: 4}}
	if got := rangesOf(f, lv)[2:]; !reflect.DeepEqual(got, want) {
		t.Errorf("the volume grew onto %v, want %v", got, want)
	}
	for _, w := range []string{
		fmt.Sprintf("lvcreate vg-fast/%s %d -i 2 -I 65536", z, 24<<20),
		fmt.Sprintf("lvextend vg-fast/%s %d -i 2 -I 65536 /dev/nvme0n1:2-4 /dev/nvme1n1:2-4", lv, 40<<20),
	} {
		if !slicesContains(*trace, w) {
			t.Errorf("calls %q lack %q", *trace, w)
		}
	}
}

func slicesContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// Another allocation takes the zeroed extents between the scratch's removal and lvextend
// (something outside the driver: the driver's own wait on the allocation lock): lvextend
// fails, the answer is Unavailable naming what happened, the volume is neither grown nor
// zeroed through nor left tagged, and the retry zeroes new extents.
func TestExpandThatLosesItsExtentsIsRetryable(t *testing.T) {
	e, f, b, trace := newScratchTestEngine(t, false)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-r", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	lv, z := v.LV.Name, scratchName(v.LV.Name)
	var stolen []lvm.PERange
	f.after = func(call string) {
		if call == "lvremove vg-fast/"+z && stolen == nil {
			stolen = []lvm.PERange{{PV: "/dev/nvme0n1", First: 2, Last: 2}}
			f.give("vg-fast", "thief", stolen)
			f.rep.LVs = append(f.rep.LVs, lvm.LV{Name: "thief", VGName: "vg-fast", Size: 4 << 20})
		}
	}
	nb := len(b.calls)
	_, err = e.Expand(ctx, v.ID.String(), SizeRequest{Required: 20 << 20})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "allocated by something else") || !strings.Contains(err.Error(), "vg-fast/thief") {
		t.Fatalf("Expand losing its extents: %v, want ErrUnavailable naming vg-fast/thief", err)
	}
	if errors.Is(err, ErrNoSpace) {
		t.Errorf("the lost race reads as out of space: %v", err)
	}
	for _, c := range *trace {
		if strings.HasPrefix(c, "lvextend ") {
			t.Errorf("an lvextend succeeded: %s", c)
		}
	}
	if want := []string{fmt.Sprintf("zero /dev/vg-fast/%s 0+%d", z, 12<<20)}; !reflect.DeepEqual(since(b.calls, nb), want) {
		t.Errorf("block calls %q, want only the scratch's zeroing %q", since(b.calls, nb), want)
	}
	cur := f.rep.LVByName("vg-fast", lv)
	if _, tagged := cur.Tag(TagZero); cur.Size != 8<<20 || tagged || f.rep.LVByName("vg-fast", z) != nil {
		t.Errorf("after the lost race: size %d, tags %v, scratch left %v", cur.Size, cur.Tags, f.rep.LVByName("vg-fast", z) != nil)
	}

	*trace = nil
	got, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 20 << 20})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got.Size != 20<<20 || got.Zeroing {
		t.Errorf("retry: size %d zeroing %v", got.Size, got.Zeroing)
	}
	if want := fmt.Sprintf("lvextend vg-fast/%s %d -i 1 -I 0 /dev/nvme0n1:3-5", lv, 20<<20); !slicesContains(*trace, want) {
		t.Errorf("retry calls %q lack %q", *trace, want)
	}
}

// A failed zeroing of the scratch: no tag, no lvextend, the scratch removed.
func TestExpandWhoseScratchZeroingFailsChangesNothing(t *testing.T) {
	e, f, b, trace := newScratchTestEngine(t, false)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-f", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	*trace = nil
	b.fail = errors.New("injected: device gone")
	if _, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 20 << 20}); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Expand with a failing zeroing: %v", err)
	}
	z := scratchName(v.LV.Name)
	want := []string{fmt.Sprintf("lvcreate vg-fast/%s %d", z, 12<<20), fmt.Sprintf("lvremove vg-fast/%s", z)}
	if !reflect.DeepEqual(*trace, want) {
		t.Errorf("calls %q, want %q", *trace, want)
	}
	if cur := f.rep.LVByName("vg-fast", v.LV.Name); cur.Size != 8<<20 || len(cur.Tags) != 3 {
		t.Errorf("volume changed: size %d tags %v", cur.Size, cur.Tags)
	}
}

// A crash leaves a scratch LV: the next expand removes it first (its space counts), and so
// does the volume's deletion. An LV with the scratch's name but not its tags is not ours.
func TestLeftoverScratchIsRemovedOnRetryAndDelete(t *testing.T) {
	e, f, _, trace := newScratchTestEngine(t, false)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-l", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	lv, z := v.LV.Name, scratchName(v.LV.Name)
	leave := func(tags ...string) {
		t.Helper()
		if err := f.CreateLV(ctx, lvm.CreateLVOptions{VG: "vg-fast", Name: z, Size: 12 << 20, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	ours := []string{Tag(TagKind, "z"), Tag(TagScratchFor, lv)}
	// The engine's cached report predates the leftover (it was left by another process
	// or before a restart): the expand must read LVM afresh and still find it.
	before, _ := f.Report(ctx)
	leave(ours...)
	f.cache = before
	*trace = nil
	if _, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 20 << 20}); err != nil {
		t.Fatal(err)
	}
	if len(*trace) < 2 || (*trace)[0] != "lvremove vg-fast/"+z || (*trace)[1] != fmt.Sprintf("lvcreate vg-fast/%s %d", z, 12<<20) {
		t.Errorf("calls %q: want the leftover removed before the new scratch is created", *trace)
	}

	// Not ours: the expand refuses and touches nothing.
	leave(Tag(TagKind, "z"), Tag(TagScratchFor, "vsomeoneelse0000000000000"))
	*trace = nil
	if _, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 32 << 20}); !errors.Is(err, ErrPrecondition) {
		t.Errorf("Expand with a foreign LV named like its scratch: %v, want ErrPrecondition", err)
	}
	if len(*trace) != 0 || f.rep.LVByName("vg-fast", z) == nil {
		t.Errorf("calls %q; the foreign LV must stay", *trace)
	}
	// ... and the delete leaves it alone too.
	if err := e.Delete(ctx, v.ID.String()); err != nil {
		t.Fatal(err)
	}
	if f.rep.LVByName("vg-fast", z) == nil || f.rep.LVByName("vg-fast", lv) != nil {
		t.Errorf("delete: the foreign LV must stay, the volume go")
	}
	if err := f.RemoveLV(ctx, "vg-fast", z); err != nil {
		t.Fatal(err)
	}

	// Ours, on delete.
	w, err := e.Create(ctx, CreateRequest{Name: "pvc-d", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	z = scratchName(w.LV.Name)
	if err := f.CreateLV(ctx, lvm.CreateLVOptions{VG: "vg-fast", Name: z, Size: 4 << 20, Tags: []string{Tag(TagKind, "z"), Tag(TagScratchFor, w.LV.Name)}}); err != nil {
		t.Fatal(err)
	}
	*trace = nil
	if err := e.Delete(ctx, w.ID.String()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"lvremove vg-fast/" + z, "lvremove vg-fast/" + w.LV.Name}; !reflect.DeepEqual(*trace, want) {
		t.Errorf("delete calls %q, want %q", *trace, want)
	}
}

// The caller's context: ended before the scratch exists, nothing is done; ended while the
// scratch is zeroed, the expand still completes (a retry finds the volume grown) and never
// extends onto anything but the zeroed extents.
func TestExpandHonoursTheCallersContext(t *testing.T) {
	e, f, b, trace := newScratchTestEngine(t, false)
	v, err := e.Create(context.Background(), CreateRequest{Name: "pvc-c", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	id, lv, z := v.ID.String(), v.LV.Name, scratchName(v.LV.Name)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	*trace = nil
	if _, err := e.Expand(ctx, id, SizeRequest{Required: 20 << 20}); !errors.Is(err, context.Canceled) {
		t.Errorf("Expand with an ended context: %v, want Canceled", err)
	}
	if len(*trace) != 0 {
		t.Errorf("calls after an ended context: %q", *trace)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	b.onZero = func(zctx context.Context, dev string) {
		cancel() // the CO gives up while the scratch is zeroed
	}
	*trace = nil
	got, err := e.Expand(ctx, id, SizeRequest{Required: 20 << 20})
	if err != nil {
		t.Fatalf("Expand whose caller gave up during the zeroing: %v", err)
	}
	if got.Size != 20<<20 || got.Zeroing || f.rep.LVByName("vg-fast", z) != nil {
		t.Errorf("size %d zeroing %v, scratch left %v", got.Size, got.Zeroing, f.rep.LVByName("vg-fast", z) != nil)
	}
	if want := fmt.Sprintf("lvextend vg-fast/%s %d -i 1 -I 0 /dev/nvme0n1:2-4", lv, 20<<20); !slicesContains(*trace, want) {
		t.Errorf("calls %q lack %q", *trace, want)
	}
}

// The allocation lock: Create and the scratch's lvcreate wait for it under the caller's
// context; the expand's remove → lvextend waits for it (detached, bounded) and runs after.
func TestAllocationLockHonoursContext(t *testing.T) {
	e, f, b, trace := newScratchTestEngine(t, false)
	bg := context.Background()
	v, err := e.Create(bg, CreateRequest{Name: "pvc-a", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := e.lockAllocation(bg, "vg-fast")
	if err != nil {
		t.Fatal(err)
	}
	*trace = nil
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	if _, err := e.Create(ctx, CreateRequest{Name: "pvc-b", Class: "fast", Size: SizeRequest{Required: 8 << 20}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Create while the allocation lock is held: %v, want DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel2()
	if _, err := e.Expand(ctx2, v.ID.String(), SizeRequest{Required: 20 << 20}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Expand while the allocation lock is held: %v, want DeadlineExceeded", err)
	}
	if len(*trace) != 0 {
		t.Errorf("calls while the allocation lock was held: %q", *trace)
	}
	unlock()

	// Taken by someone else while the scratch is zeroed: the remove and lvextend wait.
	var released time.Time
	b.onZero = func(context.Context, string) {
		u, err := e.lockAllocation(bg, "vg-fast")
		if err != nil {
			t.Error(err)
			return
		}
		time.AfterFunc(30*time.Millisecond, func() { released = time.Now(); u() })
	}
	f.after = func(call string) {
		if strings.HasPrefix(call, "lvremove vg-fast/z") && released.IsZero() {
			t.Errorf("the scratch was removed while another holder had the allocation lock")
		}
	}
	if _, err := e.Expand(bg, v.ID.String(), SizeRequest{Required: 20 << 20}); err != nil {
		t.Fatal(err)
	}
}

// Thin classes are unchanged: one lvextend, no scratch, no zeroing.
func TestThinExpandHasNoScratch(t *testing.T) {
	e, f := newThinTestEngine(t)
	f.rep.VGs[0].UUID = "thinvg-aaaa-bbbb-cccc-dddd-eeee-ffffff"
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-t", Class: "thin", Size: SizeRequest{Required: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.calls)
	if _, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 2 << 30}); err != nil {
		t.Fatal(err)
	}
	if want := []string{fmt.Sprintf("lvextend vg-thin/%s %d", v.LV.Name, 2<<30)}; !reflect.DeepEqual(since(f.calls, n), want) {
		t.Errorf("calls %q, want %q", since(f.calls, n), want)
	}
}

// Should lvextend ever put the volume elsewhere than on the zeroed extents (never seen), the
// check after it notices and the added range is zeroed through the volume before the answer.
func TestExpandNotOnTheZeroedExtentsIsZeroedThroughTheVolume(t *testing.T) {
	e, f, b, _ := newScratchTestEngine(t, false)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-m", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	lv := v.LV.Name
	f.after = func(call string) {
		if strings.HasPrefix(call, "lvextend vg-fast/"+lv) {
			f.ext["vg-fast/"+lv] = []lvm.PERange{{PV: "/dev/nvme0n1", First: 0, Last: 1}, {PV: "/dev/nvme0n1", First: 100, Last: 102}}
		}
	}
	nb := len(b.calls)
	got, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 20 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("zero /dev/vg-fast/%s 0+%d", scratchName(lv), 12<<20),
		fmt.Sprintf("zero /dev/vg-fast/%s %d+%d", lv, 8<<20, 12<<20),
	}
	if !reflect.DeepEqual(since(b.calls, nb), want) {
		t.Errorf("block calls %q, want %q", since(b.calls, nb), want)
	}
	if _, ok := hasZeroTag(f, lv); ok || got.Zeroing {
		t.Errorf("the zero tag is still there")
	}
}
