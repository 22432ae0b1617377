package lvm

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"
)

// result is the scripted outcome of one lvm invocation.
type result struct {
	stdout string
	stderr string
	exit   int   // non-zero: FakeExitError
	err    error // overrides exit
	// block, if non-nil, is waited on before returning; started is closed
	// when the command runs.
	block   chan struct{}
	started chan struct{}
}

// fakeLVM scripts a FakeExec and records the commands it created.
type fakeLVM struct {
	t    *testing.T
	fe   *testingexec.FakeExec
	mu   sync.Mutex
	cmds []*testingexec.FakeCmd
}

func newFake(t *testing.T, results ...result) *fakeLVM {
	t.Helper()
	f := &fakeLVM{t: t, fe: &testingexec.FakeExec{}}
	for _, r := range results {
		f.add(r)
	}
	return f
}

func (f *fakeLVM) add(r result) {
	f.fe.CommandScript = append(f.fe.CommandScript, func(cmd string, args ...string) utilexec.Cmd {
		fc := &testingexec.FakeCmd{}
		fc.RunScript = []testingexec.FakeAction{func() ([]byte, []byte, error) {
			if r.started != nil {
				close(r.started)
			}
			if r.block != nil {
				<-r.block
			}
			err := r.err
			if err == nil && r.exit != 0 {
				err = testingexec.FakeExitError{Status: r.exit}
			}
			return []byte(r.stdout), []byte(r.stderr), err
		}}
		f.mu.Lock()
		f.cmds = append(f.cmds, fc)
		f.mu.Unlock()
		return testingexec.InitFakeCmd(fc, cmd, args...)
	})
}

func (f *fakeLVM) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cmds)
}

func (f *fakeLVM) argv(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.cmds) {
		f.t.Fatalf("command %d was not run (%d commands)", i, len(f.cmds))
	}
	return f.cmds[i].Argv
}

func (f *fakeLVM) env(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cmds[i].Env
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
