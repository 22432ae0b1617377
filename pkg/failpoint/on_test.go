//go:build failpoints

package failpoint

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "FAILPOINT_TEST_CHILD"

// TestMain runs the child of the tests below: it hits every point in order, printing each
// name to stdout first, and exits 0 if none killed it.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		for _, p := range Points {
			os.Stdout.WriteString("reached " + p + "\n")
			Hit(p)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, armed string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", EnvVar+"="+armed)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestHitKillsAtTheArmedPoint(t *testing.T) {
	if !Enabled {
		t.Fatal("Enabled is false with the failpoints tag")
	}
	target := Points[len(Points)/2]
	out, errOut, err := runChild(t, " "+target+" , "+Points[len(Points)-1])
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want killed\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", ws)
	}
	if !strings.Contains(errOut, Message(target)) {
		t.Errorf("stderr %q does not name the point", errOut)
	}
	if !strings.HasSuffix(out, "reached "+target+"\n") {
		t.Errorf("child did not die at %s: stdout\n%s", target, out)
	}
}

func TestUnarmedRunsThrough(t *testing.T) {
	out, errOut, err := runChild(t, "")
	if err != nil {
		t.Fatalf("unarmed child: %v\n%s", err, errOut)
	}
	if strings.Count(out, "reached ") != len(Points) {
		t.Errorf("unarmed child stopped early:\n%s", out)
	}
}

func TestUnknownPointStopsTheProcess(t *testing.T) {
	_, errOut, err := runChild(t, "create-after-lvcreate,no-such-point")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(errOut, `unknown crash point "no-such-point"`) {
		t.Fatalf("child with an unknown point: %v, stderr %q; want exit 2 naming it", err, errOut)
	}
}
