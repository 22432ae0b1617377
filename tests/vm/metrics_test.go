//go:build vmtest

package vm

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
)

// TestMetricsScrape serves the node's metrics handler and checks the class, drive and RPC
// series against a create volume → snapshot → delete cycle in each class.
func TestMetricsScrape(t *testing.T) {
	n, _, conn := startNode(t, classesConfig(t, ""))
	loopbackUp(t)
	srv := httptest.NewServer(n.Metrics.Handler(n.Ready))
	defer srv.Close()
	ctl := csi.NewControllerClient(conn)
	ctx := context.Background()

	if code, body := metricsGet(t, srv.URL+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}

	before := scrapeMetrics(t, srv.URL)
	before.want(t, "localnvme_scrape_errors_total", nil, 0)
	// Drives: the three class members, by serial, with their class; no refusals.
	got := map[string]string{}
	for _, m := range before.series("localnvme_drive_info", nil) {
		got[promLabel(m, "serial")] = promLabel(m, "class")
		if size := before.value(t, "localnvme_drive_size_bytes", map[string]string{"drive": promLabel(m, "drive")}); size <= 0 {
			t.Errorf("drive %s: size %v", promLabel(m, "drive"), size)
		}
	}
	if want := map[string]string{serialThick0: "thick", serialThick1: "thick", serialThin0: "thin"}; !maps.Equal(got, want) {
		t.Errorf("drive_info serial→class %v, want %v", got, want)
	}
	if s := before.series("localnvme_drive_refused", nil); len(s) != 0 {
		t.Errorf("drive_refused series on a healthy node: %v", s)
	}

	for _, c := range []struct{ class, typ, vg, fs string }{{"thick", "thick", "lnv-thick", "ext4"}, {"thin", "thin", "lnv-thin", "xfs"}} {
		t.Run(c.class, func(t *testing.T) {
			classL := map[string]string{"class": c.class, "type": c.typ, "vg": c.vg}
			capL := func(kind string) map[string]string {
				return map[string]string{"class": c.class, "type": c.typ, "vg": c.vg, "kind": kind}
			}
			volL := func(kind string) map[string]string { return map[string]string{"class": c.class, "kind": kind} }
			params := map[string]string{"localnvme.io/device-class": c.class}

			pre := scrapeMetrics(t, srv.URL)
			pre.want(t, "localnvme_class_ready", classL, 1)
			total, free := pre.value(t, "localnvme_class_capacity_bytes", capL("total")), pre.value(t, "localnvme_class_capacity_bytes", capL("free"))
			alloc := pre.value(t, "localnvme_class_capacity_bytes", capL("allocated"))
			vols, snaps := pre.value(t, "localnvme_class_volumes", volL("volume")), pre.value(t, "localnvme_class_volumes", volL("snapshot"))
			if total <= 0 || free <= 0 {
				t.Errorf("capacity total %v free %v, want both > 0", total, free)
			}
			gc, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: params})
			if err != nil {
				t.Fatalf("GetCapacity: %v", err)
			}
			if float64(gc.GetAvailableCapacity()) != free {
				t.Errorf("free %v, GetCapacity says %d", free, gc.GetAvailableCapacity())
			}

			vr, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
				Name: "metrics-" + c.class, CapacityRange: &csi.CapacityRange{RequiredBytes: 64 << 20}, Parameters: params,
				VolumeCapabilities: []*csi.VolumeCapability{mountCap(c.fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)},
			})
			if err != nil {
				t.Fatalf("CreateVolume: %v", err)
			}
			size := float64(vr.GetVolume().GetCapacityBytes())

			mid := scrapeMetrics(t, srv.URL)
			mid.want(t, "localnvme_class_volumes", volL("volume"), vols+1)
			mid.want(t, "localnvme_class_capacity_bytes", capL("total"), total)
			mid.want(t, "localnvme_class_capacity_bytes", capL("free"), free-size)
			mid.want(t, "localnvme_class_capacity_bytes", capL("allocated"), alloc+size)
			// A thin class overprovisions (ratio 10 here), so its free space exceeds the pool.
			if midTotal, midFree := mid.value(t, "localnvme_class_capacity_bytes", capL("total")), mid.value(t, "localnvme_class_capacity_bytes", capL("free")); c.typ == "thick" && !(midTotal > midFree && midFree > 0) {
				t.Errorf("thick class with a volume: total %v free %v, want total > free > 0", midTotal, midFree)
			}

			sr, err := ctl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "metrics-" + c.class + "-snap", SourceVolumeId: vr.GetVolume().GetVolumeId()})
			if err != nil {
				t.Fatalf("CreateSnapshot: %v", err)
			}
			withSnap := scrapeMetrics(t, srv.URL)
			withSnap.want(t, "localnvme_class_volumes", volL("snapshot"), snaps+1)
			withSnap.want(t, "localnvme_class_volumes", volL("volume"), vols+1)
			withSnap.want(t, "localnvme_class_capacity_bytes", capL("allocated"), alloc+size) // snapshots are not allocated volumes

			if _, err := ctl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: sr.GetSnapshot().GetSnapshotId()}); err != nil {
				t.Fatalf("DeleteSnapshot: %v", err)
			}
			if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vr.GetVolume().GetVolumeId()}); err != nil {
				t.Fatalf("DeleteVolume: %v", err)
			}
			post := scrapeMetrics(t, srv.URL)
			post.want(t, "localnvme_class_volumes", volL("volume"), vols)
			post.want(t, "localnvme_class_volumes", volL("snapshot"), snaps)
			post.want(t, "localnvme_class_capacity_bytes", capL("free"), free)
			post.want(t, "localnvme_class_capacity_bytes", capL("allocated"), alloc)
		})
	}

	// A refused request is recorded with its code.
	if _, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{}); err == nil {
		t.Fatal("CreateVolume without a name succeeded")
	}
	after := scrapeMetrics(t, srv.URL)
	after.want(t, "localnvme_scrape_errors_total", nil, 0)
	for _, c := range []struct {
		method, code string
		min          uint64
	}{
		{"CreateVolume", "OK", 2}, {"CreateSnapshot", "OK", 2}, {"DeleteSnapshot", "OK", 2},
		{"DeleteVolume", "OK", 2}, {"GetCapacity", "OK", 2}, {"CreateVolume", "InvalidArgument", 1},
	} {
		if got := after.rpcCount(c.method, c.code); got < c.min {
			t.Errorf("localnvme_rpc_duration_seconds_count{method=%q,code=%q} = %d, want >= %d", c.method, c.code, got, c.min)
		}
	}
	if got := after.rpcCount("DeleteVolume", ""); got == 0 {
		t.Error("no localnvme_rpc_duration_seconds series for DeleteVolume")
	}
	if t.Failed() {
		t.Logf("last scrape:\n%s", after.text)
	} else {
		var lines []string
		for _, l := range strings.Split(after.text, "\n") {
			if strings.HasPrefix(l, "localnvme_class_") || strings.HasPrefix(l, "localnvme_drive_") || strings.HasPrefix(l, "localnvme_rpc_duration_seconds_count") {
				lines = append(lines, l)
			}
		}
		t.Logf("last scrape (class, drive and RPC count series):\n%s", strings.Join(lines, "\n"))
	}
}

// TestMetricsScrapeRefusedDrive: drives refused at setup (a filesystem, a partition table)
// are exported with their reason code, their classes as not ready, and /healthz answers 503
// naming the classes when no class is ready.
func TestMetricsScrapeRefusedDrive(t *testing.T) {
	requireVM(t)
	withFS, withPT := namespaceBySerial(t, serialSpare0), namespaceBySerial(t, serialSpare1)
	run(t, "mkfs.ext4", "-q", "-F", withFS.DevPath)
	run(t, "sh", "-c", "echo 'label: gpt' | sfdisk -q "+withPT.DevPath)
	refused := refusedSparesClasses()
	n, _, _ := startNode(t, classesConfig(t, refused))
	loopbackUp(t)
	srv := httptest.NewServer(n.Metrics.Handler(n.Ready))
	defer srv.Close()
	if code, body := metricsGet(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with thick and thin ready: %d %q, want 200", code, body)
	}
	s := scrapeMetrics(t, srv.URL)
	s.want(t, "localnvme_class_ready", map[string]string{"class": "has-fs", "type": "thick", "vg": "lnv-hasfs"}, 0)
	s.want(t, "localnvme_class_ready", map[string]string{"class": "has-pt", "type": "thin", "vg": "lnv-haspt"}, 0)
	s.want(t, "localnvme_class_ready", map[string]string{"class": "thick"}, 1)
	if got := s.series("localnvme_class_capacity_bytes", map[string]string{"class": "has-fs"}); len(got) != 0 {
		t.Errorf("capacity series for a refused class: %v", got)
	}
	for _, c := range []struct {
		ns            disk.Namespace
		class, reason string
	}{{withFS, "has-fs", "signature"}, {withPT, "has-pt", "partition-table"}} {
		drive := map[string]string{"drive": c.ns.Name, "identity": c.ns.Identity()}
		s.want(t, "localnvme_drive_refused", map[string]string{"drive": c.ns.Name, "identity": c.ns.Identity(), "reason": c.reason}, 1)
		s.want(t, "localnvme_drive_info", map[string]string{"drive": c.ns.Name, "serial": c.ns.Serial, "class": c.class}, 1)
		s.want(t, "localnvme_drive_size_bytes", drive, float64(c.ns.SizeBytes))
	}
	if got := s.series("localnvme_drive_refused", nil); len(got) != 2 {
		t.Errorf("%d drive_refused series, want 2:\n%s", len(got), s.text)
	}
	s.want(t, "localnvme_scrape_errors_total", nil, 0)

	// Only refused classes: not healthy, and the answer names them.
	n2, _, _ := startNode(t, func() *config.Config {
		cfg, err := config.Parse([]byte("deviceClasses:\n" + refused))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}())
	srv2 := httptest.NewServer(n2.Metrics.Handler(n2.Ready))
	defer srv2.Close()
	code, body := metricsGet(t, srv2.URL+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "has-fs") || !strings.Contains(body, "has-pt") {
		t.Errorf("/healthz with no class ready: %d %q, want 503 naming has-fs and has-pt", code, body)
	}
	t.Logf("/healthz with no class ready: %d %s", code, body)
}

// loopbackUp brings lo up: the VM's init leaves networking alone, and httptest serves on
// 127.0.0.1 (binding works with lo down, connecting does not).
func loopbackUp(t *testing.T) {
	t.Helper()
	flags, err := os.ReadFile("/sys/class/net/lo/flags")
	if err != nil {
		t.Fatalf("reading lo flags: %v", err)
	}
	if v, err := strconv.ParseUint(strings.TrimSpace(string(flags)), 0, 32); err == nil && v&1 == 1 { // IFF_UP
		return
	}
	run(t, "ip", "link", "set", "lo", "up")
}

func metricsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// metricsScrape is one parsed /metrics answer.
type metricsScrape struct {
	fams map[string]*dto.MetricFamily
	text string
}

func scrapeMetrics(t *testing.T, base string) metricsScrape {
	t.Helper()
	code, body := metricsGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return metricsScrape{fams: fams, text: body}
}

// series returns the metrics of a family whose labels include every pair of want.
func (s metricsScrape) series(name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range s.fams[name].GetMetric() {
		ok := true
		for k, v := range want {
			if promLabel(m, k) != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// value is the value of the one gauge or counter series that matches.
func (s metricsScrape) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	ms := s.series(name, labels)
	if len(ms) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(ms))
	}
	if c := ms[0].GetCounter(); c != nil {
		return c.GetValue()
	}
	return ms[0].GetGauge().GetValue()
}

func (s metricsScrape) want(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := s.value(t, name, labels); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// rpcCount sums the RPC histogram's sample counts for method (and code, "" = any).
func (s metricsScrape) rpcCount(method, code string) uint64 {
	want := map[string]string{"method": method}
	if code != "" {
		want["code"] = code
	}
	var n uint64
	for _, m := range s.series("localnvme_rpc_duration_seconds", want) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

func promLabel(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
