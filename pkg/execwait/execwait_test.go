package execwait

import (
	"context"
	"errors"
	"testing"
	"time"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"
)

func fakeCmd(run func() error) utilexec.Cmd {
	fc := &testingexec.FakeCmd{}
	fc.RunScript = []testingexec.FakeAction{func() ([]byte, []byte, error) { return nil, nil, run() }}
	return testingexec.InitFakeCmd(fc, "x")
}

func TestRun(t *testing.T) {
	// a command that returns: its error, the context not involved
	want := errors.New("exit status 3")
	if err := Run(context.Background(), fakeCmd(func() error { return want }), time.Second); !errors.Is(err, want) {
		t.Errorf("Run = %v, want %v", err, want)
	}

	// killed and exits within the grace: its error
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	cancel()
	go func() { time.Sleep(50 * time.Millisecond); close(exited) }()
	killed := errors.New("signal: killed")
	if err := Run(ctx, fakeCmd(func() error { <-exited; return killed }), 5*time.Second); !errors.Is(err, killed) {
		t.Errorf("Run of a command that exits when killed = %v, want %v", err, killed)
	}

	// killed and never exits (until released): ErrNotExited after the grace, not later
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	stuck := make(chan struct{})
	defer close(stuck)
	start := time.Now()
	if err := Run(ctx, fakeCmd(func() error { <-stuck; return killed }), 200*time.Millisecond); !errors.Is(err, ErrNotExited) {
		t.Errorf("Run of a command that does not exit = %v, want ErrNotExited", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("returned after %s, want the 100ms context + 200ms grace", d)
	}
}
