package lvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilexec "k8s.io/utils/exec"
)

// A hung lvm command is killed at CommandTimeout and reported as ErrTimeout; the shared
// report recovers: the next Report runs a new command and serves its answer.
func TestHungCommandIsKilledAndTheReportRecovers(t *testing.T) {
	dir := t.TempDir()
	report, err := filepath.Abs("testdata/fullreport_empty.json")
	if err != nil {
		t.Fatal(err)
	}
	hang := filepath.Join(dir, "hang")
	script := filepath.Join(dir, "lvm")
	body := "#!/bin/sh\nif [ -e " + hang + " ]; then exec sleep 30; fi\nexec cat " + report + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hang, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(utilexec.New(), Options{LVMPath: script, CommandTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = c.Report(context.Background())
	var lerr *Error
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &lerr) || !lerr.Timeout() {
		t.Fatalf("Report of a hung lvm = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the hung command was killed after %s", d)
	}
	t.Logf("reported: %v", err)

	// the caller's own deadline ends a command earlier, with the caller's error
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.run(ctx, true, "lvcreate", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run past the caller's deadline = %v, want DeadlineExceeded", err)
	}

	if err := os.Remove(hang); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Report(context.Background()); err != nil {
		t.Fatalf("Report after the device answers again: %v", err)
	}
}

// One VG's lock held by a hung command (here: every lvm run that names vga, or names no VG
// at all and so would take vga's lock too, hangs) holds up neither ReportVG nor PeekVG of
// another VG; ReportVG of the wedged VG, and Report, are killed at CommandTimeout.
func TestWedgedVGDoesNotHoldUpAnotherVG(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "lvm")
	body := `#!/bin/sh
last=""
for a in "$@"; do last=$a; done
case $last in
vga|-o,) exec sleep 30 ;;
vgb) echo '{"report":[{"vg":[{"vg_name":"vgb","vg_free":"2"}],"lv":[{"lv_name":"x","vg_name":"vgb"}]}]}' ;;
*) echo "unexpected $*" >&2; exit 3 ;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(utilexec.New(), Options{LVMPath: script, CommandTimeout: 2 * time.Second})
	ctx := context.Background()
	wedged := make(chan error, 2)
	start := time.Now()
	go func() { _, err := c.ReportVG(ctx, "vga"); wedged <- err }()
	go func() { _, err := c.Report(ctx); wedged <- err }()
	time.Sleep(100 * time.Millisecond) // both hung commands are running
	for _, peek := range []bool{false, true} {
		c.Invalidate()
		t0 := time.Now()
		var r *Report
		var err error
		if peek {
			r, err = c.PeekVG(ctx, "vgb")
		} else {
			r, err = c.ReportVG(ctx, "vgb")
		}
		if err != nil || r.VGByName("vgb") == nil || r.LVByName("vgb", "x") == nil {
			t.Fatalf("vgb (peek %v) while vga is wedged: %+v, %v", peek, r, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("vgb (peek %v) took %s while vga was wedged", peek, d)
		}
	}
	for i := 0; i < 2; i++ {
		if err := <-wedged; !errors.Is(err, ErrTimeout) {
			t.Errorf("a read that needs vga's lock = %v, want ErrTimeout", err)
		}
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("the wedged reads returned after %s, want the 2s CommandTimeout", d)
	}
}

// An lvm command that takes the kill but does not exit (stuck in uninterruptible I/O, e.g.
// waiting for AIO to a device that does not answer) is reported a grace period after the
// kill, as a timeout saying it has not exited, instead of waiting for it.
func TestKilledCommandThatDoesNotExit(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	f := newFake(t, result{block: stuck}, result{block: stuck})
	c := New(f.fe, Options{CommandTimeout: 100 * time.Millisecond, grace: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.ReportVG(context.Background(), "vg")
	var lerr *Error
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &lerr) || !lerr.Timeout() || !strings.Contains(err.Error(), "had not exited") {
		t.Fatalf("ReportVG with a stuck lvm = %v, want ErrTimeout saying it had not exited", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %s", d)
	}
	t.Logf("reported: %v", err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.RemoveLV(ctx, "vg", "lv"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "had not exited") {
		t.Errorf("a stuck command past the caller's deadline = %v, want DeadlineExceeded", err)
	}
}
