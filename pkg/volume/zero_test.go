package volume

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
)

func newZeroTestEngine(t *testing.T) (*Engine, *fakeLVM, *fakeBlockIO) {
	t.Helper()
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: fast
  volumeGroup: vg-fast
  type: thick
  devices: [{serial: S0}]
`))
	if err != nil {
		t.Fatal(err)
	}
	f, b := &fakeLVM{}, &fakeBlockIO{}
	e := New(f, fakeDisks{nss: []disk.Namespace{{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1}}}, b, cfg)
	e.Setup(context.Background())
	if c, _ := e.Class("fast"); c == nil || !c.Ready {
		t.Fatalf("class fast not ready: %+v", c)
	}
	f.calls = nil
	return e, f, b
}

// since returns the calls recorded after the first n.
func since(calls []string, n int) []string { return append([]string{}, calls[n:]...) }

func hasZeroTag(f *fakeLVM, lv string) (string, bool) {
	for _, l := range f.rep.LVs {
		if l.Name == lv {
			return l.Tag(TagZero)
		}
	}
	return "", false
}

// A new thick volume is zeroed over its whole size before Create returns it, recorded by
// lnv.zero=0 from lvcreate on; a retry does not zero again.
func TestThickCreateIsZeroedBeforeItIsReturned(t *testing.T) {
	e, f, b := newZeroTestEngine(t)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-z", Class: "fast", Size: SizeRequest{Required: 10 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	lv := v.LV.Name
	wantLVM := []string{
		fmt.Sprintf("lvcreate vg-fast/%s %d", lv, 12<<20),
		fmt.Sprintf("lvchange --deltag [lnv.zero=0] vg-fast/%s", lv),
	}
	if !reflect.DeepEqual(f.calls, wantLVM) {
		t.Errorf("LVM calls %q, want %q", f.calls, wantLVM)
	}
	if want := []string{fmt.Sprintf("zero /dev/vg-fast/%s 0+%d", lv, 12<<20)}; !reflect.DeepEqual(b.calls, want) {
		t.Errorf("block calls %q, want %q", b.calls, want)
	}
	if _, ok := hasZeroTag(f, lv); ok || v.Zeroing {
		t.Errorf("the zero tag is still there (volume Zeroing=%v)", v.Zeroing)
	}
	nl, nb := len(f.calls), len(b.calls)
	if _, err := e.Create(ctx, CreateRequest{Name: "pvc-z", Class: "fast", Size: SizeRequest{Required: 10 << 20}}); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != nl || len(b.calls) != nb {
		t.Errorf("the retry did more: LVM %q, block %q", since(f.calls, nl), since(b.calls, nb))
	}
}

// A create whose zeroing failed (or was cut by a crash) leaves lnv.zero=0: the volume is not
// returned, cannot be a content source, reports ZeroingIncomplete, and the retry zeroes it.
func TestInterruptedZeroingIsFinishedByTheRetry(t *testing.T) {
	e, f, b := newZeroTestEngine(t)
	ctx := context.Background()
	b.fail = errors.New("injected: device gone")
	req := CreateRequest{Name: "pvc-i", Class: "fast", Size: SizeRequest{Required: 8 << 20}}
	if _, err := e.Create(ctx, req); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Create with failing zeroing: %v, want the zeroing error", err)
	}
	lv := f.rep.LVs[len(f.rep.LVs)-1]
	if z, ok := hasZeroTag(f, lv.Name); !ok || z != "0" {
		t.Fatalf("after the failed zeroing the LV has tags %v, want lnv.zero=0", lv.Tags)
	}
	id := NewID("fast", f.rep.VGs[0].UUID, lv.Name, lv.UUID).String()
	if _, err := e.Create(ctx, CreateRequest{Name: "clone", Class: "fast", Size: SizeRequest{Required: 8 << 20}, Source: id}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "zeroed") {
		t.Errorf("clone of a volume being zeroed: %v, want ErrUnavailable saying it is being zeroed", err)
	}
	if _, err := e.CreateSnapshot(ctx, "snap", id); !errors.Is(err, ErrUnavailable) {
		t.Errorf("snapshot of a volume being zeroed: %v, want ErrUnavailable", err)
	}
	conds, err := e.VolumeHealth(ctx, id)
	if err != nil || len(conds) != 1 || conds[0].Reason != "ZeroingIncomplete" {
		t.Errorf("health %+v, %v; want ZeroingIncomplete", conds, err)
	}
	nb := len(b.calls)
	v, err := e.Create(ctx, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if want := []string{fmt.Sprintf("zero /dev/vg-fast/%s 0+%d", lv.Name, 8<<20)}; !reflect.DeepEqual(since(b.calls, nb), want) {
		t.Errorf("retry block calls %q, want %q", since(b.calls, nb), want)
	}
	if _, ok := hasZeroTag(f, lv.Name); ok || v.Zeroing {
		t.Errorf("the zero tag is still there after the retry")
	}
}

// A crash after lvextend and before the zero tag's removal leaves lnv.zero=<old size>: the
// next NodeStage (FinishZeroing) or expand zeroes the added range through the volume, and
// the expand's retry then finds the size reached and nothing left to do.
func TestInterruptedThickExpandIsFinishedByStage(t *testing.T) {
	e, f, b := newZeroTestEngine(t)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-x", Class: "fast", Size: SizeRequest{Required: 40 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	id, lv := v.ID.String(), v.LV.Name
	// what a crash right after lvextend leaves
	if err := f.AddTags(ctx, "vg-fast", lv, []string{Tag(TagZero, fmt.Sprint(40<<20))}); err != nil {
		t.Fatal(err)
	}
	if err := f.ExtendLV(ctx, "vg-fast", lv, 60<<20); err != nil {
		t.Fatal(err)
	}
	nb := len(b.calls)
	r, err := e.ResolveUsable(ctx, id, true)
	if err != nil || !r.Zeroing || r.ZeroFrom != 40<<20 {
		t.Fatalf("resolve: %+v %v, want Zeroing from %d", r, err, 40<<20)
	}
	if err := e.FinishZeroing(ctx, r); err != nil {
		t.Fatal(err)
	}
	if want := []string{fmt.Sprintf("zero /dev/vg-fast/%s %d+%d", lv, 40<<20, 20<<20)}; !reflect.DeepEqual(since(b.calls, nb), want) {
		t.Errorf("finish block calls %q, want %q", since(b.calls, nb), want)
	}
	if _, ok := hasZeroTag(f, lv); ok {
		t.Errorf("the zero tag is still there")
	}
	nl, nb := len(f.calls), len(b.calls)
	if _, err := e.Expand(ctx, id, SizeRequest{Required: 60 << 20}); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != nl || len(b.calls) != nb {
		t.Errorf("the retry did more: LVM %q, block %q", since(f.calls, nl), since(b.calls, nb))
	}
}

// A thick clone larger than its source: the copy covers the source's bytes, zeroing the rest,
// before the copying tag goes.
func TestThickCloneTailIsZeroed(t *testing.T) {
	e, _, b := newZeroTestEngine(t)
	ctx := context.Background()
	src, err := e.Create(ctx, CreateRequest{Name: "src", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	nb := len(b.calls)
	v, err := e.Create(ctx, CreateRequest{Name: "big-clone", Class: "fast", Size: SizeRequest{Required: 20 << 20}, Source: src.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	tmp := "t" + v.LV.Name[1:]
	want := []string{
		fmt.Sprintf("copy /dev/vg-fast/%s /dev/vg-fast/%s %d", tmp, v.LV.Name, 8<<20),
		fmt.Sprintf("zero /dev/vg-fast/%s %d+%d", v.LV.Name, 8<<20, 12<<20),
	}
	if !reflect.DeepEqual(since(b.calls, nb), want) {
		t.Errorf("block calls %q, want %q", since(b.calls, nb), want)
	}
	if v.Copying || v.Zeroing {
		t.Errorf("clone returned with copying=%v zeroing=%v", v.Copying, v.Zeroing)
	}
	// A clone of the same size needs no zeroing.
	nb = len(b.calls)
	if _, err := e.Create(ctx, CreateRequest{Name: "same-clone", Class: "fast", Size: SizeRequest{Required: 8 << 20}, Source: src.ID.String()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range since(b.calls, nb) {
		if strings.HasPrefix(c, "zero ") {
			t.Errorf("a same-size clone was zeroed: %s", c)
		}
	}
}
