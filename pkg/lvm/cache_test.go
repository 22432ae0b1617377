package lvm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// reportJSON returns a minimal fullreport with one VG whose free size marks
// the "version" of the state.
func reportJSON(free string) string {
	return `{"report":[{"vg":[{"vg_name":"vg","vg_free":"` + free + `"}]}]}`
}

func freeOf(t *testing.T, r *Report) string {
	t.Helper()
	if r == nil || len(r.VGs) != 1 {
		t.Fatalf("unexpected report %+v", r)
	}
	switch r.VGs[0].Free {
	case 1:
		return "old"
	case 2:
		return "new"
	case 3:
		return "newer"
	}
	return "?"
}

func TestReportCached(t *testing.T) {
	f := newFake(t, result{stdout: reportJSON("1")})
	c := New(f.fe, Options{})
	ctx := context.Background()
	r1, err := c.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.calls() != 1 {
		t.Fatalf("want 1 exec, got %d", f.calls())
	}
	// Callers get private copies.
	r1.VGs[0].Name = "changed"
	r1.VGs = nil
	_ = r2
	r3, _ := c.Report(ctx)
	if r3.VGs[0].Name != "vg" {
		t.Errorf("cached report was modified through a returned copy: %+v", r3)
	}
}

func TestMutationInvalidates(t *testing.T) {
	for _, fail := range []bool{false, true} {
		name := "success"
		if fail {
			name = "failure"
		}
		t.Run(name, func(t *testing.T) {
			mut := result{}
			if fail {
				mut = result{exit: 5, stderr: `  Failed to find logical volume "vg/lv"`}
			}
			f := newFake(t, result{stdout: reportJSON("1")}, mut, result{stdout: reportJSON("2")})
			c := New(f.fe, Options{})
			ctx := context.Background()
			r, err := c.Report(ctx)
			if err != nil || freeOf(t, r) != "old" {
				t.Fatal(r, err)
			}
			err = c.RemoveLV(ctx, "vg", "lv")
			if fail != (err != nil) {
				t.Fatalf("RemoveLV: %v", err)
			}
			r, err = c.Report(ctx)
			if err != nil || freeOf(t, r) != "new" {
				t.Fatal(r, err)
			}
			if _, err := c.Report(ctx); err != nil {
				t.Fatal(err)
			}
			if f.calls() != 3 {
				t.Fatalf("want 3 execs, got %d", f.calls())
			}
		})
	}
}

func TestInvalidate(t *testing.T) {
	f := newFake(t, result{stdout: reportJSON("1")}, result{stdout: reportJSON("2")})
	c := New(f.fe, Options{})
	ctx := context.Background()
	if _, err := c.Report(ctx); err != nil {
		t.Fatal(err)
	}
	c.Invalidate()
	r, err := c.Report(ctx)
	if err != nil || freeOf(t, r) != "new" || f.calls() != 2 {
		t.Fatal(r, err, f.calls())
	}
}

func TestReportErrorNotCached(t *testing.T) {
	f := newFake(t,
		result{exit: 5, stderr: "  Volume group \"vg\" not found"},
		result{stdout: "garbage"},
		result{stdout: reportJSON("1")})
	c := New(f.fe, Options{})
	ctx := context.Background()
	if _, err := c.Report(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	if _, err := c.Report(ctx); err == nil {
		t.Fatal("want parse error")
	}
	if r, err := c.Report(ctx); err != nil || freeOf(t, r) != "old" {
		t.Fatal(r, err)
	}
	if f.calls() != 3 {
		t.Fatalf("want 3 execs, got %d", f.calls())
	}
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitWaiters waits until n Report calls use the current flight.
func waitWaiters(t *testing.T, c *Client, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := 0
		if f := c.flights[""]; f != nil {
			got = f.waiters
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d callers joined the refresh", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentReportsShareOneExec(t *testing.T) {
	const n = 20
	block := make(chan struct{})
	f := newFake(t, result{stdout: reportJSON("1"), block: block})
	c := New(f.fe, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Report(context.Background())
			if err == nil && (len(r.VGs) != 1 || r.VGs[0].Free != 1) {
				err = errors.New("wrong report")
			}
			errs <- err
		}()
	}
	waitWaiters(t, c, n)
	close(block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if f.calls() != 1 {
		t.Fatalf("want 1 exec, got %d", f.calls())
	}
}

// A refresh that started before a mutation completed must not repopulate the
// cache, and callers arriving after the mutation must not join it.
func TestStaleRefreshNotCached(t *testing.T) {
	staleStarted, staleBlock := make(chan struct{}), make(chan struct{})
	freshStarted, freshBlock := make(chan struct{}), make(chan struct{})
	f := newFake(t,
		result{stdout: reportJSON("1"), started: staleStarted, block: staleBlock}, // refresh #1 (old state)
		result{}, // mutation
		result{stdout: reportJSON("2"), started: freshStarted, block: freshBlock}, // refresh #2
	)
	c := New(f.fe, Options{})
	ctx := context.Background()

	type res struct {
		r   *Report
		err error
	}
	first := make(chan res, 1)
	go func() { r, err := c.Report(ctx); first <- res{r, err} }()
	waitChan(t, staleStarted, "first refresh")

	if err := c.ExtendLV(ctx, "vg", "lv", 1<<30); err != nil {
		t.Fatal(err)
	}

	second := make(chan res, 1)
	go func() { r, err := c.Report(ctx); second <- res{r, err} }()
	waitChan(t, freshStarted, "a new refresh (must not join the stale one)")

	// Let the fresh refresh finish first, then the stale one.
	close(freshBlock)
	s := <-second
	if s.err != nil || freeOf(t, s.r) != "new" {
		t.Fatalf("second Report: %+v %v", s.r, s.err)
	}
	close(staleBlock)
	fr := <-first
	if fr.err != nil || freeOf(t, fr.r) != "old" {
		t.Fatalf("first Report: %+v %v", fr.r, fr.err)
	}

	// The cache holds the fresh state; no further exec (none is scripted).
	r, err := c.Report(ctx)
	if err != nil || freeOf(t, r) != "new" {
		t.Fatalf("third Report: %+v %v", r, err)
	}
	if f.calls() != 3 {
		t.Fatalf("want 3 execs, got %d", f.calls())
	}
}

// Same, but the stale refresh completes while no other refresh is running.
func TestStaleRefreshCompletingAlone(t *testing.T) {
	started, block := make(chan struct{}), make(chan struct{})
	f := newFake(t,
		result{stdout: reportJSON("1"), started: started, block: block},
		result{},
		result{stdout: reportJSON("2")},
	)
	c := New(f.fe, Options{})
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := c.Report(ctx); err != nil {
			t.Error(err)
		}
	}()
	waitChan(t, started, "refresh")
	if err := c.Deactivate(ctx, "vg", "lv"); err != nil {
		t.Fatal(err)
	}
	close(block)
	<-done
	r, err := c.Report(ctx)
	if err != nil || freeOf(t, r) != "new" {
		t.Fatalf("Report after mutation returned %+v %v", r, err)
	}
}

func TestReportContextCancel(t *testing.T) {
	started, block := make(chan struct{}), make(chan struct{})
	f := newFake(t, result{stdout: reportJSON("1"), started: started, block: block})
	c := New(f.fe, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.Report(ctx); errc <- err }()
	waitChan(t, started, "refresh")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// The refresh keeps running for other callers and fills the cache.
	other := make(chan error, 1)
	go func() { _, err := c.Report(context.Background()); other <- err }()
	waitWaiters(t, c, 2)
	close(block)
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	if r, err := c.Report(context.Background()); err != nil || freeOf(t, r) != "old" {
		t.Fatal(r, err)
	}
	if f.calls() != 1 {
		t.Fatalf("want 1 exec, got %d", f.calls())
	}
}

func TestReportMaxAge(t *testing.T) {
	f := newFake(t, result{stdout: reportJSON("1")}, result{stdout: reportJSON("2")})
	now := time.Unix(1000, 0)
	c := New(f.fe, Options{MaxAge: 10 * time.Second, now: func() time.Time { return now }})
	ctx := context.Background()
	if _, err := c.Report(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second)
	if _, err := c.Report(ctx); err != nil || f.calls() != 1 {
		t.Fatalf("report at exactly MaxAge refreshed (%d execs, %v)", f.calls(), err)
	}
	now = now.Add(time.Second)
	if _, err := c.Report(ctx); err != nil || f.calls() != 2 {
		t.Fatalf("report older than MaxAge not refreshed (%d execs, %v)", f.calls(), err)
	}
}

func twoVGs(freeA, freeB string) string {
	return `{"report":[{"vg":[{"vg_name":"vga","vg_free":"` + freeA + `"}],"pv":[{"pv_name":"/dev/a","vg_name":"vga"}],"lv":[{"lv_name":"la","vg_name":"vga"}]},` +
		`{"vg":[{"vg_name":"vgb","vg_free":"` + freeB + `"}],"pv":[{"pv_name":"/dev/b","vg_name":"vgb"}],"lv":[{"lv_name":"lb","vg_name":"vgb"}]},` +
		`{"pv":[{"pv_name":"/dev/orphan","vg_name":""}]}]}`
}

// ReportVG reads one VG (its name last on the command line), caches it per VG, answers
// from a valid full report without running lvm, and is invalidated with everything else.
func TestReportVG(t *testing.T) {
	f := newFake(t,
		result{stdout: twoVGs("1", "1")}, // ReportVG vgb (lvm names only vgb; extra VGs are dropped)
		result{stdout: twoVGs("2", "2")}, // Report
		result{stdout: twoVGs("3", "3")}, // ReportVG vgb after Invalidate
	)
	c := New(f.fe, Options{})
	ctx := context.Background()
	only := func(r *Report, vg string) {
		t.Helper()
		if len(r.VGs) != 1 || r.VGs[0].Name != vg || len(r.PVs) != 1 || r.PVs[0].VGName != vg || len(r.LVs) != 1 || r.LVs[0].VGName != vg {
			t.Fatalf("report of %s: %+v", vg, r)
		}
	}
	r, err := c.ReportVG(ctx, "vgb")
	if err != nil {
		t.Fatal(err)
	}
	only(r, "vgb")
	if args := f.argv(0)[1:]; args[len(args)-1] != "vgb" || args[0] != "fullreport" {
		t.Errorf("ReportVG ran lvm %v, want fullreport … vgb", args)
	}
	if r, err = c.ReportVG(ctx, "vgb"); err != nil || r.VGs[0].Free != 1 || f.calls() != 1 {
		t.Fatalf("cached ReportVG: %+v, %v, %d execs", r, err, f.calls())
	}
	all, err := c.Report(ctx) // its own scope: not answered by one VG
	if err != nil || len(all.VGs) != 2 || len(all.PVs) != 3 || f.calls() != 2 {
		t.Fatalf("Report: %+v, %v, %d execs", all, err, f.calls())
	}
	if args := f.argv(1)[1:]; args[len(args)-1] == "vgb" {
		t.Errorf("Report ran lvm %v, naming a VG", args)
	}
	r, err = c.ReportVG(ctx, "vga") // from the full report, no exec
	if err != nil || f.calls() != 2 {
		t.Fatalf("ReportVG vga with a full report cached: %v, %d execs", err, f.calls())
	}
	only(r, "vga")
	c.Invalidate()
	if r, err = c.ReportVG(ctx, "vgb"); err != nil || r.VGs[0].Free != 3 || f.calls() != 3 {
		t.Fatalf("ReportVG after Invalidate: %+v, %v, %d execs", r, err, f.calls())
	}
	if _, err := c.ReportVG(ctx, "-bad"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ReportVG of an invalid name: %v", err)
	}
}

// A VG that does not exist is an empty report (cached), exactly when lvm says so for that
// VG; any other failure is an error and not cached.
func TestReportVGNotFound(t *testing.T) {
	f := newFake(t,
		result{exit: 5, stdout: `{"report":[]}`, stderr: "  Volume group \"vgx\" not found\n  Cannot process volume group vgx"},
		result{exit: 5, stdout: `{"report":[]}`, stderr: "  Volume group \"vgy\" not found\n  Cannot process volume group vgy"},
		result{exit: 5, stdout: `{"report":[]}`, stderr: "  Volume group \"vgz\" not found"},
	)
	c := New(f.fe, Options{})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		r, err := c.ReportVG(ctx, "vgx")
		if err != nil || len(r.VGs)+len(r.PVs)+len(r.LVs) != 0 {
			t.Fatalf("ReportVG of a VG lvm does not know: %+v, %v", r, err)
		}
	}
	if f.calls() != 1 {
		t.Errorf("the answer \"no such VG\" was not cached: %d execs", f.calls())
	}
	// lvm speaks of another VG: an error
	if _, err := c.ReportVG(ctx, "vgw"); err == nil {
		t.Error(`ReportVG vgw with lvm saying "vgy" not found: no error`)
	}
	if r, err := c.PeekVG(ctx, "vgz"); err != nil || r.VGByName("vgz") != nil {
		t.Errorf("PeekVG of a VG lvm does not know: %+v, %v", r, err)
	}
}

// PeekVG runs fullreport --readonly for the VG and caches it as its own scope until a
// mutation of that VG; a cached report of the VG answers too.
func TestPeekVG(t *testing.T) {
	f := newFake(t,
		result{stdout: twoVGs("1", "1")},
		result{stdout: twoVGs("2", "2")},
		result{stdout: twoVGs("3", "3")},
		result{stdout: twoVGs("4", "4")},
	)
	c := New(f.fe, Options{})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		r, err := c.PeekVG(ctx, "vga")
		if err != nil || r.LVByName("vga", "la") == nil || r.VGByName("vgb") != nil || r.VGs[0].Free != 1 {
			t.Fatalf("PeekVG: %+v, %v", r, err)
		}
	}
	if f.calls() != 1 {
		t.Errorf("PeekVG was not cached: %d execs for 2 peeks", f.calls())
	}
	if args := f.argv(0)[1:]; args[1] != "--readonly" || args[len(args)-1] != "vga" {
		t.Errorf("PeekVG ran lvm %v, want fullreport --readonly … vga", args)
	}
	// a mutation of another VG leaves the peek; one of vga drops it
	c.InvalidateVG("vgb")
	if r, err := c.PeekVG(ctx, "vga"); err != nil || r.VGs[0].Free != 1 || f.calls() != 1 {
		t.Errorf("PeekVG after vgb changed: %+v, %v, %d execs", r, err, f.calls())
	}
	c.InvalidateVG("vga")
	if r, err := c.PeekVG(ctx, "vga"); err != nil || r.VGs[0].Free != 2 || f.calls() != 2 {
		t.Errorf("PeekVG after vga changed: %+v, %v, %d execs", r, err, f.calls())
	}
	if _, err := c.ReportVG(ctx, "vga"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.PeekVG(ctx, "vga"); err != nil || r.VGs[0].Free != 3 || f.calls() != 3 {
		t.Errorf("PeekVG with the VG cached: %+v, %v, %d execs", r, err, f.calls())
	}
}

// A mutation of one VG drops only that VG's report and the report of everything.
func TestInvalidateVG(t *testing.T) {
	f := newFake(t,
		result{stdout: twoVGs("1", "1")},
		result{stdout: twoVGs("2", "2")},
		result{stdout: twoVGs("3", "3")},
	)
	c := New(f.fe, Options{})
	ctx := context.Background()
	for _, vg := range []string{"vga", "vgb"} {
		if _, err := c.ReportVG(ctx, vg); err != nil {
			t.Fatal(err)
		}
	}
	if f.calls() != 2 {
		t.Fatalf("two VGs read with %d execs", f.calls())
	}
	c.InvalidateVG("vga")
	if r, err := c.ReportVG(ctx, "vgb"); err != nil || r.VGs[0].Free != 2 || f.calls() != 2 {
		t.Errorf("vgb after a change of vga: %+v, %v, %d execs (want its cached report)", r, err, f.calls())
	}
	if r, err := c.ReportVG(ctx, "vga"); err != nil || r.VGByName("vga").Free != 3 || f.calls() != 3 {
		t.Errorf("vga after its change: %+v, %v, %d execs (want a fresh read)", r, err, f.calls())
	}
}

// A tag change lvm confirms is applied to the cached report (no fullreport after it); a
// failed one drops the VG's report.
func TestChangeTagsPatchesCache(t *testing.T) {
	f := newFake(t,
		result{stdout: twoVGs("1", "1")},
		result{},        // lvchange: success
		result{exit: 5}, // lvchange: failure
		result{stdout: twoVGs("2", "2")},
	)
	c := New(f.fe, Options{})
	ctx := context.Background()
	if _, err := c.ReportVG(ctx, "vga"); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangeTags(ctx, "vga", "la", []string{"lnv.x=1", "lnv.y=2"}, []string{"lnv.none=0"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.argv(1)[1:], " "); got != "lvchange --addtag lnv.x=1 --addtag lnv.y=2 --deltag lnv.none=0 vga/la" {
		t.Errorf("ran lvm %s", got)
	}
	rep, err := c.ReportVG(ctx, "vga")
	if err != nil || f.calls() != 2 {
		t.Fatalf("read after a tag change: %v, %d execs (want the patched cache)", err, f.calls())
	}
	if lv := rep.LVByName("vga", "la"); lv == nil || !slices.Contains(lv.Tags, "lnv.x=1") || !slices.Contains(lv.Tags, "lnv.y=2") {
		t.Errorf("patched LV: %+v", lv)
	}
	if err := c.ChangeTags(ctx, "vga", "la", nil, []string{"lnv.x=1"}); err == nil {
		t.Fatal("failed lvchange: no error")
	}
	if rep, err := c.ReportVG(ctx, "vga"); err != nil || f.calls() != 4 || rep.VGs[0].Free != 2 {
		t.Errorf("read after a failed tag change: %v, %d execs (want a fresh read)", err, f.calls())
	}
}
