package volume

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/lvm"
)

const fenceReason = "released by node-loss policy at 2026-01-02T03:04:05Z: node n1 deleted"

// fencedVolume creates a volume in class fast and fences it.
func fencedVolume(t *testing.T) (*Engine, *fakeLVM, *Volume) {
	t.Helper()
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-fenced", Class: "fast", Size: SizeRequest{Required: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Fence(ctx, v.ID.String(), fenceReason); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	return e, f, v
}

func wantFenced(t *testing.T, what string, err error) {
	t.Helper()
	want := "fenced: " + fenceReason + "; this LV is removed only by DeleteVolume of its PV"
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v, want ErrPrecondition with %q", what, err, want)
	}
}

func TestFenceTagsOnceAndIsIdempotent(t *testing.T) {
	e, f, v := fencedVolume(t)
	ctx := context.Background()
	lv := f.rep.LVByName("vg-fast", v.LV.Name)
	want := Tag(TagFenced, EncodeName(fenceReason))
	if !lv.HasTag(want) {
		t.Fatalf("LV tags %v, want %s", lv.Tags, want)
	}
	if !lvm.ValidTag(want) {
		t.Errorf("tag %q is not a valid LVM tag", want)
	}
	calls := len(f.calls)
	if err := e.Fence(ctx, v.ID.String(), "another reason"); err != nil {
		t.Fatalf("second Fence: %v", err)
	}
	if len(f.calls) != calls {
		t.Errorf("second Fence ran %v, want no LVM change", f.calls[calls:])
	}
	got, err := e.Resolve(ctx, v.ID.String(), KindVolume)
	if err != nil {
		t.Fatalf("Resolve of a fenced volume: %v (it must still resolve, for DeleteVolume and health)", err)
	}
	if got.Fenced != fenceReason {
		t.Errorf("Fenced = %q, want the first reason %q", got.Fenced, fenceReason)
	}
}

func TestFenceRefusesWhatItCannotProve(t *testing.T) {
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-1", Class: "fast", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Fence(ctx, v.ID.String(), "  "); !errors.Is(err, ErrInvalid) {
		t.Errorf("Fence without a reason: %v, want ErrInvalid", err)
	}
	if err := e.Fence(ctx, "garbage", fenceReason); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fence of a garbage ID: %v, want ErrNotFound", err)
	}
	other := v.ID
	other.VGUUID = strings.Repeat("7", 32) // another incarnation of vg-fast
	if err := e.Fence(ctx, other.String(), fenceReason); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fence of an ID of another VG incarnation: %v, want ErrNotFound", err)
	}
	other = v.ID
	other.LVUUID = strings.Repeat("9", 32) // LV re-created under the same name
	if err := e.Fence(ctx, other.String(), fenceReason); !errors.Is(err, ErrPrecondition) {
		t.Errorf("Fence of an ID whose LV was re-created: %v, want ErrPrecondition", err)
	}
	for _, c := range f.calls {
		if strings.Contains(c, "--addtag") {
			t.Errorf("a refused Fence tagged: %s", c)
		}
	}
}

func TestFenceTruncatesLongReasons(t *testing.T) {
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-1", Class: "fast", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 2000)
	if err := e.Fence(ctx, v.ID.String(), long); err != nil {
		t.Fatal(err)
	}
	lv := f.rep.LVByName("vg-fast", v.LV.Name)
	got, _ := lv.Tag(TagFenced)
	if !lvm.ValidTag(Tag(TagFenced, got)) {
		t.Errorf("tag of %d characters is not a valid LVM tag", len(Tag(TagFenced, got)))
	}
	r, err := e.Resolve(ctx, v.ID.String(), KindVolume)
	if err != nil || r.Fenced == "" || !strings.HasPrefix(long, r.Fenced) || strings.ContainsRune(r.Fenced, '\uFFFD') {
		t.Errorf("Fenced = %q (%v), want a prefix of the reason cut at a character boundary", r.Fenced, err)
	}
}

func TestFencedVolumeIsRefusedButDeletable(t *testing.T) {
	e, f, v := fencedVolume(t)
	ctx := context.Background()
	id := v.ID.String()
	calls := len(f.calls)

	for _, fresh := range []bool{true, false} {
		_, err := e.ResolveUsable(ctx, id, fresh)
		wantFenced(t, "ResolveUsable (stage, publish, node expand)", err)
	}
	_, err := e.Expand(ctx, id, SizeRequest{Required: 64 << 20})
	wantFenced(t, "Expand", err)
	_, err = e.Create(ctx, CreateRequest{Name: "clone", Class: "fast", Size: SizeRequest{Required: 8 << 20}, Source: id})
	wantFenced(t, "Create with the fenced volume as source", err)
	_, err = e.CreateSnapshot(ctx, "snap", id)
	wantFenced(t, "CreateSnapshot of the fenced volume", err)
	if len(f.calls) != calls {
		t.Errorf("refused calls changed LVM: %v", f.calls[calls:])
	}
	conds, err := e.VolumeHealth(ctx, id)
	if err != nil || len(conds) != 1 || conds[0].Reason != "VolumeFenced" || !conds[0].Unreachable {
		t.Errorf("VolumeHealth = %+v, %v; want one VolumeFenced condition", conds, err)
	}

	if err := e.Delete(ctx, id); err != nil {
		t.Fatalf("Delete of a fenced volume: %v", err)
	}
	if f.rep.LVByName("vg-fast", v.LV.Name) != nil {
		t.Error("Delete left the fenced LV")
	}
}

func TestUnfencedVolumeIsUsable(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	v, err := e.Create(ctx, CreateRequest{Name: "pvc-1", Class: "fast", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.ResolveUsable(ctx, v.ID.String(), true); err != nil || got.Fenced != "" {
		t.Errorf("ResolveUsable of an unfenced volume: %+v, %v", got, err)
	}
	if _, err := e.Expand(ctx, v.ID.String(), SizeRequest{Required: 4 << 20}); err != nil {
		t.Errorf("Expand of an unfenced volume: %v", err)
	}
}

func TestClassVGs(t *testing.T) {
	e, f := newTestEngine(t, nil)
	f.rep.VGs = f.rep.VGs[:1] // only vg-fast exists
	got, err := e.ClassVGs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Class != "fast" || got[0].VGUUID != StripUUID(f.rep.VGs[0].UUID) || strings.Contains(got[0].VGUUID, "-") || !got[0].Ready ||
		got[1].Class != "other" || got[1].VGUUID != "" {
		t.Errorf("ClassVGs = %+v", got)
	}
}
