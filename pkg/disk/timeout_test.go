package disk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"
)

// A blkid that does not return (a device whose reads queue forever) is killed at the
// Prober's Timeout and reported as a timeout, not as the caller's deadline; the caller's own
// deadline ends it earlier with the caller's error.
func TestSignatureTimeout(t *testing.T) {
	script := filepath.Join(t.TempDir(), "blkid")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &Prober{Exec: utilexec.New(), BlkidPath: script, Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, found, err := p.Signature(context.Background(), "/dev/vg/lv")
	var be *BlkidError
	if !errors.As(err, &be) || !be.Timeout() || found || errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "killed after") || !strings.Contains(err.Error(), "/dev/vg/lv") {
		t.Fatalf("Signature of a hung blkid = %v (found %v), want a timeout naming the device", err, found)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("returned after %s", d)
	}
	t.Logf("reported: %v", err)

	p.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err = p.Signature(ctx, "/dev/vg/lv")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &be) || be.Timeout() {
		t.Errorf("Signature past the caller's deadline = %v, want DeadlineExceeded", err)
	}
}

// A blkid that takes the kill but does not exit (measured in the VM: its exit's last close
// of a suspended device waits for the queued read) is reported a grace period after the
// kill instead of waited for; staging then refuses, never formats.
func TestSignatureKilledButNotExited(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	fc := &testingexec.FakeCmd{}
	fc.RunScript = []testingexec.FakeAction{func() ([]byte, []byte, error) { <-stuck; return nil, nil, nil }}
	fe := &testingexec.FakeExec{CommandScript: []testingexec.FakeCommandAction{
		func(cmd string, args ...string) utilexec.Cmd { return testingexec.InitFakeCmd(fc, cmd, args...) },
	}}
	p := &Prober{Exec: fe, Timeout: 100 * time.Millisecond, grace: 200 * time.Millisecond}
	start := time.Now()
	_, found, err := p.Signature(context.Background(), "/dev/vg/lv")
	var be *BlkidError
	if !errors.As(err, &be) || !be.Timeout() || found || !strings.Contains(err.Error(), "had not exited") || !strings.Contains(err.Error(), "/dev/vg/lv does not answer") {
		t.Fatalf("Signature of a stuck blkid = %v (found %v), want a timeout saying it had not exited", err, found)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %s", d)
	}
	t.Logf("reported: %v", err)
}
