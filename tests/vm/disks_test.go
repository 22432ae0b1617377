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

// localnvmeBin is the real binary, copied into the payload by hack/test-vm.sh.
func localnvmeBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LOCALNVME_BIN")
	if p == "" {
		p = "/payload/localnvme"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("localnvme binary not found at %s: %v", p, err)
	}
	return p
}

type listedDrive struct {
	Device, Identity, Serial, Class, VolumeGroup, State string
	ReasonCodes                                         []string
	Reasons                                             []string
	Health                                              *struct {
		Degraded           bool
		CriticalWarnings   []string
		TemperatureCelsius int
	}
}

// TestDisksCLI: `localnvme disks list` shows every drive with the exact reason it is
// refused (filesystem, partition table, foreign LVM PV, mounted); `disks adopt` refuses a
// non-empty drive unless --force-wipe repeats its identity, never wipes a mounted one;
// `disks release` gives an unused drive back. Refused drives stay byte-for-byte unchanged.
func TestDisksCLI(t *testing.T) {
	requireVM(t)
	bin := localnvmeBin(t)
	withFS, withPT := namespaceBySerial(t, serialSpare0), namespaceBySerial(t, serialSpare1)
	foreign, mounted := namespaceBySerial(t, "LNVSPARE2"), namespaceBySerial(t, "LNVSPARE3")
	run(t, "wipefs", "-q", "-a", withFS.DevPath, withPT.DevPath)
	run(t, "mkfs.ext4", "-q", "-F", withFS.DevPath)
	run(t, "sh", "-c", "echo 'label: gpt' | sfdisk -q "+withPT.DevPath)
	run(t, "lvm", "pvcreate", "-q", foreign.DevPath)
	run(t, "lvm", "vgcreate", "-q", "someone-elses-vg", foreign.DevPath)
	run(t, "mkfs.ext4", "-q", "-F", mounted.DevPath)
	mnt := t.TempDir()
	run(t, "mount", "-o", "ro", mounted.DevPath, mnt) // read-only: nothing writes while we hash it
	t.Cleanup(func() {
		_ = exec.Command("umount", mnt).Run()
		_ = exec.Command("lvm", "vgremove", "-f", "someone-elses-vg").Run()
		_ = exec.Command("lvm", "pvremove", "-f", foreign.DevPath).Run()
	})
	hashes := map[string]string{}
	for _, d := range []string{withPT.DevPath, foreign.DevPath, mounted.DevPath} {
		hashes[d] = sha256Device(t, d)
	}

	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`deviceClasses:
- name: thick
  volumeGroup: lnv-thick
  type: thick
  stripes: 2
  devices: [{serial: %s}, {serial: %s}]
- name: thin
  volumeGroup: lnv-thin
  type: thin
  devices: [{serial: %s}]
- name: extra
  volumeGroup: lnv-extra
  type: thick
  devices: [{serial: %s}]
`, serialThick0, serialThick1, serialThin0, serialSpare0)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"disks", "--config", cfgFile}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running %s: %v", bin, err)
		}
		return string(out), 0
	}

	table, rc := cli("list")
	if rc != 0 {
		t.Fatalf("disks list: rc=%d\n%s", rc, table)
	}
	fmt.Printf("\n$ localnvme disks list\n%s\n", table)
	out, rc := cli("list", "-o", "json")
	if rc != 0 {
		t.Fatalf("disks list -o json: rc=%d\n%s", rc, out)
	}
	var drives []listedDrive
	if err := json.Unmarshal([]byte(out), &drives); err != nil {
		t.Fatalf("parsing JSON: %v\n%s", err, out)
	}
	bySerial := map[string]listedDrive{}
	for _, d := range drives {
		bySerial[d.Serial] = d
	}
	want := []struct {
		serial, state, code, class string
	}{
		{serialSpare0, "refused", "signature", "extra"},
		{serialSpare1, "refused", "partition-table", ""},
		{"LNVSPARE2", "foreign", "lvm-member", ""},
		{"LNVSPARE3", "refused", "mounted", ""},
	}
	for _, w := range want {
		d, ok := bySerial[w.serial]
		if !ok {
			t.Errorf("drive %s missing from disks list", w.serial)
			continue
		}
		if d.State != w.state || !contains(d.ReasonCodes, w.code) || d.Class != w.class {
			t.Errorf("drive %s: state=%s codes=%v class=%q reasons=%v; want state=%s code=%s class=%q", w.serial, d.State, d.ReasonCodes, d.Class, d.Reasons, w.state, w.code, w.class)
		}
	}
	// Health: read with the NVMe admin ioctl for every drive; only LNVCRIT0 (started with
	// smart_critical_warning) is degraded.
	for _, d := range drives {
		if d.Health == nil {
			t.Errorf("drive %s: no health in disks list", d.Serial)
			continue
		}
		if d.Health.Degraded != (d.Serial == "LNVCRIT0") {
			t.Errorf("drive %s: degraded=%v warnings=%v", d.Serial, d.Health.Degraded, d.Health.CriticalWarnings)
		}
	}
	if thin := bySerial[serialThin0]; thin.Identity != "eui64:00a0b0c0d0e0f001" {
		t.Errorf("the nvme-ns drive's identity is %q, want its EUI-64 eui64:00a0b0c0d0e0f001 (read by NVMe Identify)", thin.Identity)
	}
	if !strings.Contains(table, "DEGRADED(spare-below-threshold,reliability-degraded)") {
		t.Errorf("the table does not show LNVCRIT0 degraded:\n%s", table)
	}
	for _, s := range []string{serialThick0, serialThick1, serialThin0} {
		if d := bySerial[s]; d.State != "member" && d.State != "adoptable" {
			t.Errorf("class drive %s: state %s (%v)", s, d.State, d.Reasons)
		}
	}

	// adopt: refused without --force-wipe, refused when --force-wipe names another drive.
	id := bySerial[serialSpare0].Identity
	before := sha256Device(t, withFS.DevPath)
	if out, rc := cli("adopt", "--class", "extra", id); rc == 0 || !strings.Contains(out, "--force-wipe "+id) {
		t.Errorf("adopt of a drive with ext4: rc=%d %s", rc, out)
	}
	if out, rc := cli("adopt", "--class", "extra", "--force-wipe", bySerial[serialSpare1].Identity, id); rc == 0 {
		t.Errorf("adopt with --force-wipe naming another drive succeeded: %s", out)
	}
	if after := sha256Device(t, withFS.DevPath); after != before {
		t.Fatalf("refused adoption changed the drive")
	}
	if out, rc := cli("adopt", "--class", "extra", "--force-wipe", bySerial["LNVSPARE3"].Identity, bySerial["LNVSPARE3"].Identity); rc == 0 || !strings.Contains(out, "cannot be wiped: mounted") {
		t.Errorf("forced adoption of a mounted drive: rc=%d %s", rc, out)
	}
	// adopt with the identity repeated: wiped and adopted.
	if out, rc := cli("adopt", "--class", "extra", "--force-wipe", id, id); rc != 0 {
		t.Fatalf("forced adoption: rc=%d %s", rc, out)
	}
	if pvs := run(t, "lvm", "pvs", "--noheadings", "-o", "vg_name", withFS.DevPath); strings.TrimSpace(pvs) != "lnv-extra" {
		t.Errorf("after adopt, %s is in VG %q", withFS.DevPath, strings.TrimSpace(pvs))
	}
	if out, rc := cli("adopt", "--class", "extra", id); rc != 0 {
		t.Errorf("repeated adopt is not a no-op: rc=%d %s", rc, out)
	}
	// release: gives the drive back (the VG had only this PV, so it goes too).
	if out, rc := cli("release", id); rc != 0 {
		t.Fatalf("release: rc=%d %s", rc, out)
	}
	if typ := blkidType(t, withFS.DevPath); typ != "" {
		t.Errorf("after release the drive still shows %s", typ)
	}
	if out, rc := cli("release", bySerial["LNVSPARE2"].Identity); rc == 0 {
		t.Errorf("release of a foreign VG's PV succeeded: %s", out)
	}
	for d, h := range hashes {
		if got := sha256Device(t, d); got != h {
			t.Errorf("refused drive %s changed", d)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
