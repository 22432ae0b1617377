package volume

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
)

// failingReport makes every report fail.
type failingReport struct{ *fakeLVM }

func (failingReport) Report(context.Context) (*lvm.Report, error) {
	return nil, errors.New("lvm fullreport: exit status 5")
}

// newThinTestEngine sets up a thin class on a VG and pool that already exist (the fake
// cannot create pools), with two thin volumes and a thin snapshot in the pool.
func newThinTestEngine(t *testing.T) (*Engine, *fakeLVM) {
	t.Helper()
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: thin
  volumeGroup: vg-thin
  type: thin
  thinPool: {name: pool, overprovisionRatio: 2}
  devices: [{serial: T0}]
`))
	if err != nil {
		t.Fatal(err)
	}
	lv := func(name, attr string, size uint64, tags ...string) lvm.LV {
		return lvm.LV{Name: name, VGName: "vg-thin", UUID: name + "-uuid", Size: size, Attr: attr, Pool: "pool", Tags: tags}
	}
	f := &fakeLVM{rep: lvm.Report{
		VGs: []lvm.VG{{Name: "vg-thin", UUID: "thin-vg-uuid", Size: 10 << 30, ExtentSize: 4 << 20}},
		PVs: []lvm.PV{{Name: "/dev/nvme2n1", VGName: "vg-thin", Size: 10 << 30}},
		LVs: []lvm.LV{
			{Name: "pool", VGName: "vg-thin", UUID: "pool-uuid", Size: 8 << 30, Attr: "twi-aotz--", DataPercent: 10},
			lv("v000000000000000000000001", "Vwi-a-tz--", 3<<30, "lnv.kind=v"),
			lv("v000000000000000000000002", "Vwi-a-tz--", 1<<30, "lnv.kind=v"),
			lv("s000000000000000000000003", "Vwi---tz-k", 3<<30, "lnv.kind=s"),
			lv("scratch", "Vwi-a-tz--", 1<<30), // not ours: counts against capacity, not as a volume
		},
	}}
	d := fakeDisks{nss: []disk.Namespace{{Name: "nvme2n1", DevPath: "/dev/nvme2n1", Serial: "T0", NSID: 1}}}
	e := New(f, d, nil, cfg)
	e.Setup(context.Background())
	return e, f
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T) *Engine
		want    []ClassStats
		wantErr bool
	}{
		{
			name: "thick: volumes, a COW snapshot and a clone's temporary snapshot; refused class",
			setup: func(t *testing.T) *Engine {
				e, f := newTestEngine(t, map[string]disk.Verdict{
					"nvme1n1": {Refusals: []disk.Refusal{{Reason: disk.ReasonSignature, Detail: `blkid -p found TYPE="ext4"`}}},
				})
				f.rep.VGs[0].Size = 2 << 30
				for _, n := range []string{"a", "b"} {
					if _, err := e.Create(ctx, CreateRequest{Name: n, Class: "fast", Size: SizeRequest{Required: 10 << 20}}); err != nil {
						t.Fatal(err)
					}
				}
				f.rep.LVs = append(f.rep.LVs,
					lvm.LV{Name: LVName(KindSnapshot, "snap"), VGName: "vg-fast", Size: 28 << 20, Attr: "swi-a-s---", Tags: []string{"lnv.kind=s"}},
					lvm.LV{Name: LVName(kindTemp, "a"), VGName: "vg-fast", Size: 28 << 20, Attr: "swi-a-s---", Tags: []string{"lnv.kind=t"}},
					lvm.LV{Name: "manual", VGName: "vg-fast", Size: 1 << 20, Attr: "-wi-a-----"},
				)
				return e
			},
			want: []ClassStats{
				{Class: "fast", Type: "thick", VolumeGroup: "vg-fast", Ready: true, Total: 2 << 30, Free: 1 << 30, Allocated: 24 << 20, Volumes: 2, Snapshots: 1},
				{Class: "other", Type: "thick", VolumeGroup: "vg-other"},
			},
		},
		{
			name: "thin: total is the pool, free is the overprovisioned rest, allocated the volumes' virtual sizes",
			setup: func(t *testing.T) *Engine {
				e, _ := newThinTestEngine(t)
				return e
			},
			want: []ClassStats{
				// free = 8 GiB × 2 − (3 + 1 + 3 + 1) GiB
				{Class: "thin", Type: "thin", VolumeGroup: "vg-thin", Ready: true, Total: 8 << 30, Free: 8 << 30, Allocated: 4 << 30, Volumes: 2, Snapshots: 1},
			},
		},
		{
			name: "thin pool removed after setup: not ready",
			setup: func(t *testing.T) *Engine {
				e, f := newThinTestEngine(t)
				f.rep.LVs = f.rep.LVs[1:]
				return e
			},
			want: []ClassStats{{Class: "thin", Type: "thin", VolumeGroup: "vg-thin"}},
		},
		{
			name: "VG gone after setup: not ready",
			setup: func(t *testing.T) *Engine {
				e, f := newTestEngine(t, nil)
				f.rep.VGs = f.rep.VGs[1:] // vg-other stays
				f.rep.VGs[0].Size = 1 << 30
				return e
			},
			want: []ClassStats{
				{Class: "fast", Type: "thick", VolumeGroup: "vg-fast"},
				{Class: "other", Type: "thick", VolumeGroup: "vg-other", Ready: true, Total: 1 << 30, Free: 1 << 30},
			},
		},
		{
			name: "report fails",
			setup: func(t *testing.T) *Engine {
				e, f := newTestEngine(t, nil)
				e.lvm = failingReport{f}
				return e
			},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.setup(t)
			var before int
			if f, ok := e.lvm.(*fakeLVM); ok {
				before = f.reports
			}
			got, err := e.Stats(ctx)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Stats error %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Stats:\n got %+v\nwant %+v", got, tc.want)
			}
			if f, ok := e.lvm.(*fakeLVM); ok && f.reports-before != 1 {
				t.Errorf("Stats took %d LVM reports, want 1", f.reports-before)
			}
		})
	}
}
