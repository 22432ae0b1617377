package node

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/metrics"
	"github.com/localnvme/localnvme/pkg/nvme"
	"github.com/localnvme/localnvme/pkg/volume"
)

// staticLVM serves a fixed report; setup of an existing VG only activates it. Any other
// call panics through the nil embedded interface.
type staticLVM struct {
	volume.LVM
	rep lvm.Report
}

func (s *staticLVM) Report(context.Context) (*lvm.Report, error) { r := s.rep; return &r, nil }
func (s *staticLVM) ReportVG(_ context.Context, vg string) (*lvm.Report, error) {
	return s.rep.OnlyVG(vg), nil
}
func (s *staticLVM) VGChangeActivate(context.Context, string) error { return nil }

type staticDisks struct {
	nss      []disk.Namespace
	verdicts map[string]disk.Verdict
}

func (d staticDisks) List() ([]disk.Namespace, error) { return d.nss, nil }
func (d staticDisks) Check(_ context.Context, ns disk.Namespace) disk.Verdict {
	if v, ok := d.verdicts[ns.Name]; ok {
		return v
	}
	return disk.Verdict{Empty: true}
}

func TestMetricsSourceDrives(t *testing.T) {
	cfg, err := config.Parse([]byte(`
deviceClasses:
- name: fast
  volumeGroup: vg-fast
  type: thick
  devices: [{serial: S0}]
- name: fs
  volumeGroup: vg-fs
  type: thick
  devices: [{serial: S1}, {serial: S2}]
- name: orphan
  volumeGroup: vg-orphan
  type: thick
  devices: [{serial: S3}]
`))
	if err != nil {
		t.Fatal(err)
	}
	ns := func(i, serial string) disk.Namespace {
		return disk.Namespace{Name: "nvme" + i + "n1", DevPath: "/dev/nvme" + i + "n1", Serial: serial, Model: "QEMU NVMe Ctrl", NSID: 1, SizeBytes: 1 << 30}
	}
	nss := []disk.Namespace{ns("0", "S0"), ns("1", "S1"), ns("2", "S2"), ns("3", "S3"), ns("10", "S10")}
	l := &staticLVM{rep: lvm.Report{
		VGs: []lvm.VG{{Name: "vg-fast", UUID: "u", Size: 1 << 30, Free: 1 << 30, ExtentSize: 4 << 20}},
		PVs: []lvm.PV{{Name: "/dev/nvme0n1", VGName: "vg-fast", Free: 1 << 30}, {Name: "/dev/nvme3n1"}},
	}}
	eng := volume.New(l, staticDisks{nss: nss, verdicts: map[string]disk.Verdict{
		"nvme1n1": {Refusals: []disk.Refusal{
			{Reason: disk.ReasonSignature, Detail: `blkid -p found TYPE="ext4"`},
			{Reason: disk.ReasonMounted, Detail: "/mnt"},
		}},
	}}, nil, cfg)
	eng.Setup(context.Background())

	drives, err := newMetricsSource(eng).Drives(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	drive := func(i, serial, class string, refused bool, reason string) metrics.DriveStat {
		return metrics.DriveStat{Name: "nvme" + i + "n1", Identity: "serial:" + strings.ToLower(serial) + "/ns1", Serial: serial,
			Model: "QEMU NVMe Ctrl", Class: class, SizeBytes: 1 << 30, Refused: refused, RefusalReason: reason}
	}
	want := []metrics.DriveStat{
		drive("0", "S0", "fast", false, ""),
		drive("1", "S1", "fs", true, "signature"),
		drive("2", "S2", "fs", false, ""), // empty, but its class is refused because of nvme1n1
		drive("3", "S3", "orphan", true, "lvm-member"),
	}
	if !reflect.DeepEqual(drives, want) {
		t.Errorf("Drives:\n got %+v\nwant %+v", drives, want)
	}

	classes, err := newMetricsSource(eng).Classes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(classes) != 3 || !classes[0].Ready || classes[0].TotalBytes != 1<<30 || classes[0].FreeBytes != 1<<30 || classes[1].Ready || classes[2].Ready {
		t.Errorf("Classes: %+v", classes)
	}
	n := &Node{Engine: eng}
	if err := n.Ready(); err != nil {
		t.Errorf("Ready with class fast ready: %v", err)
	}
}

func TestReadyNamesRefusedClasses(t *testing.T) {
	cfg, err := config.Parse([]byte("deviceClasses:\n- {name: a, volumeGroup: vg-a, type: thick, devices: [{serial: X}]}\n- {name: b, volumeGroup: vg-b, type: thick, devices: [{serial: Y}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	eng := volume.New(&staticLVM{}, staticDisks{}, nil, cfg)
	eng.Setup(context.Background())
	err = (&Node{Engine: eng}).Ready()
	if err == nil || !strings.Contains(err.Error(), ": a, b refused") {
		t.Errorf("Ready with no class ready: %v, want an error naming a and b", err)
	}
	// unauthenticated /healthz: names, not probe details
	if strings.Contains(err.Error(), "serial") || strings.Contains(err.Error(), "/dev/") {
		t.Errorf("Ready exposes probe details: %v", err)
	}
}

type countingHealth struct {
	mu    sync.Mutex
	reads int
}

func (c *countingHealth) Health(string) (*nvme.HealthLog, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // an ioctl takes a while; concurrent scrapes overlap
	return &nvme.HealthLog{}, nil
}

// One health read per drive serves every scrape for driveCacheTTL, concurrent ones too.
func TestMetricsSourceDrivesCachesHealth(t *testing.T) {
	cfg, err := config.Parse([]byte("deviceClasses:\n- {name: fast, volumeGroup: vg-fast, type: thick, devices: [{serial: S0}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := &staticLVM{rep: lvm.Report{
		VGs: []lvm.VG{{Name: "vg-fast", UUID: "u", Size: 1 << 30, Free: 1 << 30, ExtentSize: 4 << 20}},
		PVs: []lvm.PV{{Name: "/dev/nvme0n1", VGName: "vg-fast", Free: 1 << 30}},
	}}
	nss := []disk.Namespace{{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "S0", NSID: 1, SizeBytes: 1 << 30}}
	eng := volume.New(l, staticDisks{nss: nss}, nil, cfg)
	eng.Setup(context.Background())
	h := &countingHealth{}
	eng.SetDriveHealth(h)
	s := newMetricsSource(eng)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }

	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := s.Drives(context.Background()); err != nil || len(d) != 1 || d[0].Health == nil {
				t.Errorf("Drives = %+v, %v", d, err)
			}
		}()
	}
	wg.Wait()
	if h.reads != 1 {
		t.Errorf("10 concurrent scrapes read the health log %d times, want 1", h.reads)
	}
	now = now.Add(driveCacheTTL - time.Millisecond)
	_, _ = s.Drives(context.Background())
	if h.reads != 1 {
		t.Errorf("a scrape within the TTL read again (%d reads)", h.reads)
	}
	now = now.Add(time.Millisecond)
	_, _ = s.Drives(context.Background())
	if h.reads != 2 {
		t.Errorf("after the TTL: %d reads, want 2", h.reads)
	}
}
