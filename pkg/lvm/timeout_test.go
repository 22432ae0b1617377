package lvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
