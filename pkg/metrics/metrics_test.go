package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type fakeSource struct {
	mu                   sync.Mutex
	classes              []ClassStat
	drives               []DriveStat
	classErr, driveErr   error
	classCalls, drvCalls int
	deadlineSet          bool
}

func (f *fakeSource) Classes(ctx context.Context) ([]ClassStat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.classCalls++
	_, f.deadlineSet = ctx.Deadline()
	return f.classes, f.classErr
}

func (f *fakeSource) Drives(context.Context) ([]DriveStat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drvCalls++
	return f.drives, f.driveErr
}

// sourceMetrics are the names the source collector exports.
var sourceMetrics = []string{
	"localnvme_class_ready", "localnvme_class_capacity_bytes", "localnvme_class_volumes",
	"localnvme_drive_info", "localnvme_drive_size_bytes", "localnvme_drive_refused",
	"localnvme_drive_degraded", "localnvme_drive_critical_warning", "localnvme_drive_temperature_celsius",
	"localnvme_drive_available_spare_ratio", "localnvme_drive_available_spare_threshold_ratio",
	"localnvme_drive_percentage_used_ratio", "localnvme_drive_media_errors_total",
	"localnvme_drive_unsafe_shutdowns_total", "localnvme_drive_power_on_hours",
	"localnvme_scrape_errors_total",
}

var (
	thickReady = ClassStat{Class: "thick", Type: "thick", VolumeGroup: "lnv-thick", Ready: true,
		TotalBytes: 6 << 30, FreeBytes: 5 << 30, AllocatedBytes: 1 << 30, Volumes: 2, Snapshots: 1}
	thinRefused = ClassStat{Class: "thin", Type: "thin", VolumeGroup: "lnv-thin"}
	driveOK     = DriveStat{Name: "nvme0n1", Identity: "serial:s0/ns1", Serial: "S0", Model: "QEMU NVMe Ctrl", Class: "thick", SizeBytes: 3 << 30}
	driveRef    = DriveStat{Name: "nvme2n1", Identity: "eui64:00a0b0c0d0e0f001", Serial: "S2", Model: "QEMU NVMe Ctrl", Class: "thin", SizeBytes: 6 << 30,
		Refused: true, RefusalReason: "signature"}
	driveSick = DriveStat{Name: "nvme1n1", Identity: "serial:s1/ns1", Serial: "S1", Model: "Acme 9000", Class: "thick", SizeBytes: 3 << 30,
		Health: &DriveHealth{Degraded: true, CriticalWarning: 0x04, TemperatureCelsius: 71, AvailableSpare: 5, AvailableSpareThreshold: 10,
			PercentageUsed: 120, MediaErrors: 3, UnsafeShutdowns: 17, PowerOnHours: 26280}}
)

const classText = `
# HELP localnvme_class_capacity_bytes Device class capacity: total (thick: VG size; thin: pool data size), free (what can still be provisioned; thin: after overprovisioning), allocated (sum of volume sizes; thin: virtual).
# TYPE localnvme_class_capacity_bytes gauge
localnvme_class_capacity_bytes{class="thick",kind="allocated",type="thick",vg="lnv-thick"} 1.073741824e+09
localnvme_class_capacity_bytes{class="thick",kind="free",type="thick",vg="lnv-thick"} 5.36870912e+09
localnvme_class_capacity_bytes{class="thick",kind="total",type="thick",vg="lnv-thick"} 6.442450944e+09
# HELP localnvme_class_ready 1 when the device class is set up and can serve volumes, else 0.
# TYPE localnvme_class_ready gauge
localnvme_class_ready{class="thick",type="thick",vg="lnv-thick"} 1
localnvme_class_ready{class="thin",type="thin",vg="lnv-thin"} 0
# HELP localnvme_class_volumes Volumes and snapshots in the device class.
# TYPE localnvme_class_volumes gauge
localnvme_class_volumes{class="thick",kind="snapshot"} 1
localnvme_class_volumes{class="thick",kind="volume"} 2
`

const driveText = `
# HELP localnvme_drive_available_spare_ratio Available spare capacity (0..1).
# TYPE localnvme_drive_available_spare_ratio gauge
localnvme_drive_available_spare_ratio{drive="nvme1n1",identity="serial:s1/ns1"} 0.05
# HELP localnvme_drive_available_spare_threshold_ratio Available spare threshold below which the drive warns (0..1).
# TYPE localnvme_drive_available_spare_threshold_ratio gauge
localnvme_drive_available_spare_threshold_ratio{drive="nvme1n1",identity="serial:s1/ns1"} 0.1
# HELP localnvme_drive_critical_warning NVMe SMART critical warning bit field (0 = none).
# TYPE localnvme_drive_critical_warning gauge
localnvme_drive_critical_warning{drive="nvme1n1",identity="serial:s1/ns1"} 4
# HELP localnvme_drive_degraded 1 when the drive's health log reports it degraded, else 0.
# TYPE localnvme_drive_degraded gauge
localnvme_drive_degraded{drive="nvme1n1",identity="serial:s1/ns1"} 1
# HELP localnvme_drive_info NVMe namespace selected by a device class (always 1).
# TYPE localnvme_drive_info gauge
localnvme_drive_info{class="thick",drive="nvme0n1",identity="serial:s0/ns1",model="QEMU NVMe Ctrl",serial="S0"} 1
localnvme_drive_info{class="thick",drive="nvme1n1",identity="serial:s1/ns1",model="Acme 9000",serial="S1"} 1
localnvme_drive_info{class="thin",drive="nvme2n1",identity="eui64:00a0b0c0d0e0f001",model="QEMU NVMe Ctrl",serial="S2"} 1
# HELP localnvme_drive_media_errors_total Unrecovered data integrity errors over the drive's life.
# TYPE localnvme_drive_media_errors_total counter
localnvme_drive_media_errors_total{drive="nvme1n1",identity="serial:s1/ns1"} 3
# HELP localnvme_drive_percentage_used_ratio Vendor estimate of the drive's life used (1 = 100%, may exceed 1).
# TYPE localnvme_drive_percentage_used_ratio gauge
localnvme_drive_percentage_used_ratio{drive="nvme1n1",identity="serial:s1/ns1"} 1.2
# HELP localnvme_drive_power_on_hours Power-on hours of the drive.
# TYPE localnvme_drive_power_on_hours gauge
localnvme_drive_power_on_hours{drive="nvme1n1",identity="serial:s1/ns1"} 26280
# HELP localnvme_drive_refused 1 for each drive that keeps its device class from being set up, with the reason.
# TYPE localnvme_drive_refused gauge
localnvme_drive_refused{drive="nvme2n1",identity="eui64:00a0b0c0d0e0f001",reason="signature"} 1
# HELP localnvme_drive_size_bytes Size of the NVMe namespace.
# TYPE localnvme_drive_size_bytes gauge
localnvme_drive_size_bytes{drive="nvme0n1",identity="serial:s0/ns1"} 3.221225472e+09
localnvme_drive_size_bytes{drive="nvme1n1",identity="serial:s1/ns1"} 3.221225472e+09
localnvme_drive_size_bytes{drive="nvme2n1",identity="eui64:00a0b0c0d0e0f001"} 6.442450944e+09
# HELP localnvme_drive_temperature_celsius Composite temperature of the drive.
# TYPE localnvme_drive_temperature_celsius gauge
localnvme_drive_temperature_celsius{drive="nvme1n1",identity="serial:s1/ns1"} 71
# HELP localnvme_drive_unsafe_shutdowns_total Unsafe shutdowns over the drive's life.
# TYPE localnvme_drive_unsafe_shutdowns_total counter
localnvme_drive_unsafe_shutdowns_total{drive="nvme1n1",identity="serial:s1/ns1"} 17
`

func errorsText(n string) string {
	return `
# HELP localnvme_scrape_errors_total Errors reading class or drive state while collecting metrics.
# TYPE localnvme_scrape_errors_total counter
localnvme_scrape_errors_total ` + n + "\n"
}

func TestCollectorSeries(t *testing.T) {
	lvmDown := errors.New("lvm fullreport: exit status 5")
	for _, tc := range []struct {
		name string
		src  *fakeSource
		// want is the exposition of sourceMetrics after each of the consecutive scrapes.
		want []string
	}{
		{
			name: "ready and refused classes, healthy refused and degraded drives",
			src:  &fakeSource{classes: []ClassStat{thickReady, thinRefused}, drives: []DriveStat{driveOK, driveRef, driveSick}},
			want: []string{classText + driveText + errorsText("0")},
		},
		{
			name: "duplicate class and drive are reported once",
			src: &fakeSource{classes: []ClassStat{thickReady, thinRefused, thickReady},
				drives: []DriveStat{driveOK, driveRef, driveSick, driveOK}},
			want: []string{classText + driveText + errorsText("0")},
		},
		{
			name: "class source error: drives still exported, error counted per scrape",
			src:  &fakeSource{classErr: lvmDown, drives: []DriveStat{driveOK, driveRef, driveSick}},
			want: []string{driveText + errorsText("1"), driveText + errorsText("2")},
		},
		{
			name: "drive source error: classes still exported",
			src:  &fakeSource{classes: []ClassStat{thickReady, thinRefused}, driveErr: lvmDown},
			want: []string{classText + errorsText("1")},
		},
		{
			name: "both fail: only the error counter",
			src:  &fakeSource{classErr: lvmDown, driveErr: context.DeadlineExceeded},
			want: []string{errorsText("2"), errorsText("4")},
		},
		{
			name: "nothing configured",
			src:  &fakeSource{},
			want: []string{errorsText("0")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			m.Register(tc.src)
			srv := httptest.NewServer(m.Handler(nil))
			defer srv.Close()
			for i, want := range tc.want {
				if err := testutil.ScrapeAndCompare(srv.URL+"/metrics", strings.NewReader(want), sourceMetrics...); err != nil {
					t.Errorf("scrape %d: %v", i+1, err)
				}
			}
			if tc.src.classCalls != len(tc.want) || tc.src.drvCalls != len(tc.want) {
				t.Errorf("source called %d/%d times for %d scrapes, want once each per scrape", tc.src.classCalls, tc.src.drvCalls, len(tc.want))
			}
			if !tc.src.deadlineSet {
				t.Error("source called without a deadline")
			}
		})
	}
}

// A source error must not turn the scrape into an HTTP error, and the standard collectors
// are on the registry.
func TestScrapeSucceedsDespiteSourceError(t *testing.T) {
	m := New()
	m.Register(&fakeSource{classErr: errors.New("boom"), driveErr: errors.New("boom")})
	srv := httptest.NewServer(m.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200:\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{"localnvme_scrape_errors_total 2", "go_goroutines ", "process_cpu_seconds_total ", "promhttp_metric_handler_errors_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestHealthz(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ready      func() error
		wantStatus int
		wantBody   string
	}{
		{"no ready func", nil, http.StatusOK, "ok"},
		{"ready", func() error { return nil }, http.StatusOK, "ok"},
		{"not ready", func() error { return errors.New("no device class is ready: thick, thin refused") }, http.StatusServiceUnavailable, "no device class is ready: thick, thin refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(New().Handler(tc.ready))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

// /livez answers 200 even while /healthz reports not ready.
func TestLivezIgnoresReadiness(t *testing.T) {
	srv := httptest.NewServer(New().Handler(func() error { return errors.New("no device class is ready") }))
	defer srv.Close()
	for path, want := range map[string]int{"/livez": http.StatusOK, "/healthz": http.StatusServiceUnavailable} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestUnaryServerInterceptor(t *testing.T) {
	m := New()
	icpt := m.UnaryServerInterceptor()
	for _, tc := range []struct {
		fullMethod string
		err        error
	}{
		{"/csi.v1.Controller/CreateVolume", nil},
		{"/csi.v1.Controller/CreateVolume", nil},
		{"/csi.v1.Controller/CreateVolume", status.Error(codes.ResourceExhausted, "no space")},
		{"/csi.v1.Controller/DeleteVolume", status.Error(codes.FailedPrecondition, "has snapshots")},
		{"/csi.v1.Node/NodeStageVolume", errors.New("not a status error")},
	} {
		resp, err := icpt(context.Background(), "req", &grpc.UnaryServerInfo{FullMethod: tc.fullMethod},
			func(context.Context, any) (any, error) { return "resp", tc.err })
		if resp != "resp" || !errors.Is(err, tc.err) {
			t.Errorf("%s: interceptor changed the result: %v, %v", tc.fullMethod, resp, err)
		}
	}
	want := map[[2]string]uint64{
		{"CreateVolume", "OK"}:                 2,
		{"CreateVolume", "ResourceExhausted"}:  1,
		{"DeleteVolume", "FailedPrecondition"}: 1,
		{"NodeStageVolume", "Unknown"}:         1,
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "localnvme_rpc_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var key [2]string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "method":
					key[0] = l.GetValue()
				case "code":
					key[1] = l.GetValue()
				}
			}
			got[key] = mt.GetHistogram().GetSampleCount()
			if n := len(mt.GetHistogram().GetBucket()); n != len(RPCBuckets) {
				t.Errorf("%v: %d buckets, want %d", key, n, len(RPCBuckets))
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: count %d, want %d", k, got[k], n)
		}
	}
	if n := testutil.CollectAndCount(m.rpcDuration, "localnvme_rpc_duration_seconds"); n != len(want) {
		t.Errorf("CollectAndCount = %d, want %d", n, len(want))
	}
}

func TestValidLabelsRepairsInvalidUTF8(t *testing.T) {
	in := []string{"ok", "SN\xff\xfe1", "model"}
	got := validLabels(in)
	if got[0] != "ok" || got[1] != "SN\uFFFD1" || got[2] != "model" {
		t.Fatalf("validLabels(%q) = %q", in, got)
	}
	if in[1] != "SN\xff\xfe1" {
		t.Fatalf("validLabels changed its argument: %q", in)
	}
	d := prometheus.NewDesc("x", "x", []string{"a", "b", "c"}, nil)
	ch := make(chan prometheus.Metric, 1)
	gauge(ch, d, 1, in...) // panics without the repair
	if m := <-ch; m == nil {
		t.Fatal("no metric")
	}
}
