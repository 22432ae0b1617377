//go:build vmtest

package vm

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// TestStorageHealthReportsDegradedDrive: NodeGetStorageHealth reports the class whose drive
// has a SMART critical warning (qemu smart_critical_warning) as degraded, naming the drive
// and the warnings, and reports nothing for classes on healthy drives.
func TestStorageHealthReportsDegradedDrive(t *testing.T) {
	n, _, conn := startNode(t, classesConfig(t, `- name: crit
  volumeGroup: lnv-crit
  type: thick
  devices:
  - serial: LNVCRIT0
`))
	resp, err := csi.NewNodeClient(conn).NodeGetStorageHealth(context.Background(), &csi.NodeGetStorageHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var crit int
	for _, b := range resp.GetBackendHealth() {
		t.Logf("backend health: %s %s: %s", b.GetStatus(), b.GetReason(), b.GetMessage())
		switch {
		case strings.HasPrefix(b.GetMessage(), "device class crit:") && b.GetStatus() == csi.StorageHealthErrorType_STORAGE_DEGRADED &&
			b.GetReason() == "DriveDegraded" && strings.Contains(b.GetMessage(), "spare-below-threshold") && strings.Contains(b.GetMessage(), "reliability-degraded"):
			crit++
		default:
			t.Errorf("unexpected backend health entry: %s %s: %s", b.GetStatus(), b.GetReason(), b.GetMessage())
		}
	}
	if crit != 1 {
		t.Errorf("want exactly one DriveDegraded entry for class crit, got %d", crit)
	}
	// The same drive is degraded in the metrics; the healthy members are not.
	loopbackUp(t)
	srv := httptest.NewServer(n.Metrics.Handler(n.Ready))
	defer srv.Close()
	sc := scrapeMetrics(t, srv.URL)
	for _, s := range []struct {
		serial string
		want   float64
	}{{"LNVCRIT0", 1}, {serialThick0, 0}, {serialThick1, 0}, {serialThin0, 0}} {
		drive := strings.TrimPrefix(namespaceBySerial(t, s.serial).DevPath, "/dev/")
		sc.want(t, "localnvme_drive_degraded", map[string]string{"drive": drive}, s.want)
	}
	sc.want(t, "localnvme_drive_critical_warning", map[string]string{"drive": strings.TrimPrefix(namespaceBySerial(t, "LNVCRIT0").DevPath, "/dev/")}, 5)
}

// TestVolumeHealthReportsReadOnlyFilesystem: a staged filesystem remounted read-only (what
// ext4 errors=remount-ro does) is reported by NodeGetVolumeHealth; a healthy one is not.
func TestVolumeHealthReportsReadOnlyFilesystem(t *testing.T) {
	_, _, conn := startNode(t, classesConfig(t, ""))
	ctx := context.Background()
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	vr, err := csi.NewControllerClient(conn).CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "ro-health", CapacityRange: &csi.CapacityRange{RequiredBytes: 64 << 20},
		Parameters: map[string]string{"localnvme.io/device-class": "thick"}, VolumeCapabilities: []*csi.VolumeCapability{capy},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := vr.GetVolume().GetVolumeId()
	nodeC := csi.NewNodeClient(conn)
	stage := t.TempDir() + "/stage"
	if _, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: stage, VolumeCapability: capy}); err != nil {
		t.Fatal(err)
	}
	health := func() []string {
		r, err := nodeC.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: id, StagingTargetPath: stage})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range r.GetVolumeHealth().GetHealthStatuses() {
			out = append(out, e.GetStatus().String()+"/"+e.GetReason())
		}
		return out
	}
	if h := health(); len(h) != 0 {
		t.Errorf("healthy volume reports %v", h)
	}
	run(t, "mount", "-o", "remount,ro", stage)
	if h := health(); len(h) != 1 || h[0] != "INACCESSIBLE/FilesystemReadOnly" {
		t.Errorf("read-only remount: health %v, want [INACCESSIBLE/FilesystemReadOnly]", h)
	}
	if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: stage}); err != nil {
		t.Fatal(err)
	}
	if _, err := csi.NewControllerClient(conn).DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
}
