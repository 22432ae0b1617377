//go:build vmtest

package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The harness's two drives that answer to one EUI-64 (hack/test-vm.sh: eui= on both), as
// drives with bogus namespace IDs do.
const (
	serialDupA = "LNVDUPA"
	serialDupB = "LNVDUPB"
	dupEUI64   = "eui64:00a0b0c0d0e0fdd1"
)

// TestAmbiguousIdentityIsRefused: with two real namespaces answering to one EUI-64, a class
// that selects that identity is refused naming both devices, `disks list` flags both,
// `disks adopt` of the identity and a --force-wipe naming it are refused, and nothing is
// written to either drive (SHA-256 before and after). The serial form still names one.
func TestAmbiguousIdentityIsRefused(t *testing.T) {
	requireVM(t)
	a, b := namespaceBySerial(t, serialDupA), namespaceBySerial(t, serialDupB)
	for _, ns := range []struct{ name, eui string }{{a.DevPath, a.EUI64}, {b.DevPath, b.EUI64}} {
		t.Logf("%s: EUI-64 %q", ns.name, ns.eui)
	}
	// Something on both, so that a wipe would show.
	run(t, "mkfs.ext4", "-q", "-F", a.DevPath)
	run(t, "mkfs.ext4", "-q", "-F", b.DevPath)
	before := map[string]string{a.DevPath: sha256Device(t, a.DevPath), b.DevPath: sha256Device(t, b.DevPath)}

	n, _, _ := startNode(t, classesConfig(t, fmt.Sprintf(`- name: dup
  volumeGroup: lnv-dup
  type: thick
  devices:
  - identity: %s
`, dupEUI64)))
	found := false
	for _, c := range n.Engine.Classes() {
		if c.Name != "dup" {
			continue
		}
		found = true
		msg := strings.Join(c.Problems, "; ")
		switch {
		case c.Ready:
			t.Errorf("class dup is ready on an identity two drives answer to")
		case !strings.Contains(msg, "ambiguous") || !strings.Contains(msg, a.Name) || !strings.Contains(msg, b.Name):
			t.Errorf("class dup refused with %q; want it to say ambiguous and name %s and %s", msg, a.Name, b.Name)
		default:
			t.Logf("class dup refused: %s", msg)
		}
	}
	if !found {
		t.Fatal("class dup is not in the engine's classes")
	}

	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`deviceClasses:
- name: dup
  volumeGroup: lnv-dup
  type: thick
  devices: [{identity: %s}]
`, dupEUI64)), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, int) {
		out, err := exec.Command(localnvmeBin(t), append([]string{"disks", "--config", cfgFile}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	out, rc := cli("list", "-o", "json")
	if rc != 0 {
		t.Fatalf("disks list -o json: rc=%d\n%s", rc, out)
	}
	var drives []struct {
		Device, Serial     string
		SharesIdentityWith []string
	}
	if err := json.Unmarshal([]byte(out), &drives); err != nil {
		t.Fatalf("parsing JSON: %v\n%s", err, out)
	}
	for _, d := range drives {
		want := ""
		switch d.Serial {
		case serialDupA:
			want = b.Name
		case serialDupB:
			want = a.Name
		}
		if got := strings.Join(d.SharesIdentityWith, ","); got != want {
			t.Errorf("disks list: %s (%s) sharesIdentityWith %q, want %q", d.Device, d.Serial, got, want)
		}
	}
	table, _ := cli("list")
	for _, l := range strings.Split(table, "\n") {
		if (strings.Contains(l, serialDupA) || strings.Contains(l, serialDupB)) && !strings.Contains(l, "AMBIGUOUS") {
			t.Errorf("disks list does not flag the line: %s", l)
		}
	}
	if out, rc := cli("adopt", "--class", "dup", dupEUI64); rc == 0 || !strings.Contains(out, "ambiguous") {
		t.Errorf("disks adopt %s: rc=%d, want a refusal saying ambiguous:\n%s", dupEUI64, rc, out)
	} else {
		t.Logf("disks adopt refused: %s", strings.TrimSpace(out))
	}
	if out, rc := cli("adopt", "--class", "dup", "--force-wipe", dupEUI64, dupEUI64); rc == 0 || !strings.Contains(out, "ambiguous") {
		t.Errorf("disks adopt --force-wipe %s: rc=%d, want a refusal saying ambiguous:\n%s", dupEUI64, rc, out)
	}
	for dev, h := range before {
		if got := sha256Device(t, dev); got != h {
			t.Errorf("drive %s changed: sha256 %s → %s", dev, h[:16], got[:16])
		} else {
			t.Logf("drive %s unchanged (sha256 %s…)", dev, h[:16])
		}
	}
}
