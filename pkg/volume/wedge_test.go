package volume

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/lvm"
)

// wedgedLVM is fakeLVM with one VG whose lock a hung command holds: every read that takes
// that lock (ReportVG of it, Report of everything) fails as the lvm client reports a command
// killed at its limit. PeekVG takes no lock and answers.
type wedgedLVM struct {
	*fakeLVM
	wedged string
}

func (w *wedgedLVM) killed(args ...string) error {
	return &lvm.Error{Args: append([]string{"fullreport"}, args...), ExitCode: -1, Kind: lvm.ErrTimeout}
}

func (w *wedgedLVM) Report(context.Context) (*lvm.Report, error) { return nil, w.killed() }

func (w *wedgedLVM) ReportVG(ctx context.Context, vg string) (*lvm.Report, error) {
	if vg == w.wedged {
		return nil, w.killed(vg)
	}
	return w.fakeLVM.ReportVG(ctx, vg)
}

// A volume group whose lock is held by a hung lvm command fails only its own class's
// operations (with the timeout in the chain, which the driver answers Unavailable): another
// class creates, resolves, snapshots, reports capacity and deletes as before; a delete
// that would need every VG to prove a volume gone fails rather than report it deleted.
func TestWedgedVGFailsOnlyItsOwnClass(t *testing.T) {
	e, f := newTestEngine(t, nil)
	ctx := context.Background()
	a, err := e.Create(ctx, CreateRequest{Name: "a", Class: "fast", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Create(ctx, CreateRequest{Name: "b", Class: "other", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	w := &wedgedLVM{fakeLVM: f, wedged: "vg-fast"}
	e.lvm = w

	timedOut := func(what string, err error) {
		t.Helper()
		var lerr *lvm.Error
		if !errors.As(err, &lerr) || !lerr.Timeout() || !strings.Contains(err.Error(), "fullreport") {
			t.Errorf("%s in the wedged class: %v, want the killed lvm command in the chain", what, err)
		}
	}
	_, err = e.Create(ctx, CreateRequest{Name: "a2", Class: "fast", Size: SizeRequest{Required: 4 << 20}})
	timedOut("Create", err)
	_, err = e.ResolveFresh(ctx, a.ID.String(), KindVolume)
	timedOut("ResolveFresh", err)
	_, err = e.Capacity(ctx, "fast")
	timedOut("Capacity", err)
	err = e.Delete(ctx, a.ID.String())
	timedOut("Delete", err)
	if f.rep.LVByName("vg-fast", a.ID.LVName) == nil {
		t.Fatal("the wedged class's volume is gone")
	}

	// the other class answers
	peeks := f.peeks
	c, err := e.Create(ctx, CreateRequest{Name: "c", Class: "other", Size: SizeRequest{Required: 4 << 20}})
	if err != nil {
		t.Fatalf("Create in the other class: %v", err)
	}
	if f.peeks == peeks {
		t.Error("Create did not look for the name in the wedged class (PeekVG)")
	}
	if _, err := e.ResolveFresh(ctx, b.ID.String(), KindVolume); err != nil {
		t.Errorf("ResolveFresh in the other class: %v", err)
	}
	if _, err := e.Capacity(ctx, "other"); err != nil {
		t.Errorf("Capacity of the other class: %v", err)
	}
	if _, err := e.Expand(ctx, b.ID.String(), SizeRequest{Required: 8 << 20}); err != nil {
		t.Errorf("Expand in the other class: %v", err)
	}
	if _, err := e.CreateSnapshot(ctx, "snap-b", b.ID.String()); err != nil {
		t.Errorf("CreateSnapshot in the other class: %v", err)
	}
	if err := e.Delete(ctx, c.ID.String()); err != nil {
		t.Errorf("Delete in the other class: %v", err)
	}
	if f.rep.LVByName("vg-other", c.ID.LVName) != nil {
		t.Error("Delete in the other class left the LV")
	}
	// c is gone from its VG; proving it is not elsewhere needs every VG: not "deleted"
	err = e.Delete(ctx, c.ID.String())
	if err == nil || !strings.Contains(err.Error(), "not reporting it deleted") {
		t.Errorf("Delete of a gone volume while a VG cannot be read: %v, want an error", err)
	}
	timedOut("Delete of a gone volume", err)

	// the same name as the wedged class's volume, asked in the other class: still refused
	_, err = e.Create(ctx, CreateRequest{Name: "a", Class: "other", Size: SizeRequest{Required: 4 << 20}})
	if !errors.Is(err, ErrAlreadyExists) || !strings.Contains(err.Error(), `device class "fast"`) {
		t.Errorf("Create of a name the wedged class holds: %v, want AlreadyExists naming class fast", err)
	}

	// the lock released: the wedged class answers again
	e.lvm = f
	if _, err := e.ResolveFresh(ctx, a.ID.String(), KindVolume); err != nil {
		t.Errorf("ResolveFresh after the wedge: %v", err)
	}
}
