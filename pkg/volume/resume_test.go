package volume

import (
	"context"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
)

func TestAdoptionPVUUID(t *testing.T) {
	a := disk.Namespace{Name: "nvme0n1", Serial: "S0", NSID: 1, EUI64: "00a0b0c0d0e0fdd1"}
	b := disk.Namespace{Name: "nvme1n1", Serial: "S1", NSID: 1, EUI64: "00a0b0c0d0e0fdd1"} // same EUI-64
	u := adoptionPVUUID("vg-fast", a)
	if !lvm.ValidUUID(u) || len(u) != 38 || strings.Count(u, "-") != 6 {
		t.Errorf("adoptionPVUUID = %q: not an LVM UUID in lvm's 6-4-4-4-4-4-6 form", u)
	}
	if u != adoptionPVUUID("vg-fast", a) {
		t.Error("not deterministic")
	}
	for _, other := range []string{adoptionPVUUID("vg-other", a), adoptionPVUUID("vg-fast", b)} {
		if other == u {
			t.Errorf("another VG or drive gives the same UUID %s", u)
		}
	}
}

// A crash between pvcreate and vgcreate leaves an orphan PV. The next setup resumes the
// adoption when the PV carries the label this class's adoption writes and nothing else, and
// refuses (touching nothing) an orphan PV that is not provably its own.
func TestSetupResumesInterruptedAdoption(t *testing.T) {
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: fast
  volumeGroup: vg-fast
  type: thick
  devices: [{serial: S0}, {serial: S1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s0 := disk.Namespace{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1}
	s1 := disk.Namespace{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "S1", NSID: 1}
	label := []disk.Refusal{{Reason: disk.ReasonLVMMember, Detail: `blkid -p found TYPE="LVM2_member"`}}
	tests := []struct {
		name      string
		uuid      string         // of the orphan PV on S0
		refusals  []disk.Refusal // the emptiness check of S0
		wantReady bool
	}{
		{"own label", adoptionPVUUID("vg-fast", s0), label, true},
		{"own label, dashes stripped", StripUUID(adoptionPVUUID("vg-fast", s0)), label, true},
		{"random UUID (someone's pvcreate)", "abcdef-0000-1111-2222-3333-4444-ghijkl", label, false},
		{"another class's label", adoptionPVUUID("vg-other", s0), label, false},
		{"another drive's label", adoptionPVUUID("vg-fast", s1), label, false},
		{"own label, but mounted", adoptionPVUUID("vg-fast", s0), append(append([]disk.Refusal{}, label...), disk.Refusal{Reason: disk.ReasonMounted}), false},
		{"own label, probe failed", adoptionPVUUID("vg-fast", s0), append(append([]disk.Refusal{}, label...), disk.Refusal{Reason: disk.ReasonProbeFailed}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeLVM{}
			f.rep.PVs = []lvm.PV{{Name: s0.DevPath, UUID: tt.uuid}}
			e := New(f, fakeDisks{nss: []disk.Namespace{s0, s1}, verdicts: map[string]disk.Verdict{s0.Name: {Refusals: tt.refusals}}}, nil, cfg)
			e.Setup(context.Background())
			c, _ := e.Class("fast")
			calls := strings.Join(f.calls, "; ")
			if c.Ready != tt.wantReady {
				t.Fatalf("ready=%v problems=%v, want ready=%v (calls: %s)", c.Ready, c.Problems, tt.wantReady, calls)
			}
			if !tt.wantReady {
				if len(f.calls) != 0 {
					t.Errorf("a refused class changed LVM: %s", calls)
				}
				return
			}
			// S0 is not labelled again; S1 (blank) is; the VG takes both.
			want := "pvcreate /dev/nvme1n1; vgcreate vg-fast [/dev/nvme0n1 /dev/nvme1n1]"
			if !strings.HasPrefix(calls, want) {
				t.Errorf("calls %q, want them to start with %q", calls, want)
			}
			if got := f.rep.PVs[1].UUID; got != adoptionPVUUID("vg-fast", s1) {
				t.Errorf("S1 labelled with UUID %q, want the derived %q", got, adoptionPVUUID("vg-fast", s1))
			}
		})
	}
}

// `disks list` shows a drive an interrupted adoption labelled as adoptable, and `disks
// adopt` finishes the adoption without --force-wipe; an orphan PV with any other UUID stays
// foreign and needs --force-wipe.
func TestAdoptResumesInterruptedAdoption(t *testing.T) {
	cfg, _ := config.Parse([]byte("deviceClasses:\n- name: fast\n  volumeGroup: vg-fast\n  type: thick\n  devices: [{serial: S0}]\n"))
	s0 := disk.Namespace{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1}
	for _, own := range []bool{true, false} {
		f := &fakeLVM{}
		uuid := "abcdef-0000-1111-2222-3333-4444-ghijkl"
		if own {
			uuid = adoptionPVUUID("vg-fast", s0)
		}
		f.rep.PVs = []lvm.PV{{Name: s0.DevPath, UUID: uuid}}
		d := fakeDisks{nss: []disk.Namespace{s0}, verdicts: map[string]disk.Verdict{s0.Name: {Refusals: []disk.Refusal{{Reason: disk.ReasonLVMMember}}}}}
		e := New(f, d, nil, cfg)
		drives, err := e.Drives(context.Background())
		want := map[bool]DriveState{true: DriveAdoptable, false: DriveForeign}[own]
		if err != nil || len(drives) != 1 || drives[0].State != want {
			t.Fatalf("own=%v: drives %+v, %v; want state %s", own, drives, err, want)
		}
		_, err = e.Adopt(context.Background(), "fast", "serial:s0/ns1", "", nil)
		calls := strings.Join(f.calls, "; ")
		if own && (err != nil || calls != "vgcreate vg-fast [/dev/nvme0n1]") {
			t.Errorf("adopt of an interrupted adoption: %v, calls %q; want it resumed with vgcreate alone", err, calls)
		}
		if !own && (err == nil || !strings.Contains(err.Error(), "--force-wipe") || len(f.calls) != 0) {
			t.Errorf("adopt of someone else's orphan PV: %v, calls %q; want it refused asking for --force-wipe", err, calls)
		}
	}
}
