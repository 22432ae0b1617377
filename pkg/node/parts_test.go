package node

import (
	"testing"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/localnvme/localnvme/pkg/config"
)

// Options.Exec reaches every part that runs commands (the benchmark counts through it);
// without it the parts run the real commands.
func TestNewPartsExec(t *testing.T) {
	cfg, err := config.Parse([]byte("deviceClasses:\n- {name: a, volumeGroup: vg-a, type: thick, devices: [{serial: X}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fake := &testingexec.FakeExec{}
	p := NewParts(Options{Config: cfg, Exec: fake})
	if p.Exec != utilexec.Interface(fake) || p.Prober.Exec != utilexec.Interface(fake) {
		t.Errorf("Options.Exec not used: parts exec %T, prober exec %T", p.Exec, p.Prober.Exec)
	}
	if p := NewParts(Options{Config: cfg}); p.Exec == nil || p.Exec == utilexec.Interface(fake) {
		t.Errorf("default exec: %T", p.Exec)
	}
}
