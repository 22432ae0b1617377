//go:build vmtest

package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
)

// TestDemo walks a volume through its life on real LVM, printing each step:
// create → stage → publish → write → expand → snapshot → clone → verify data in the clone → delete.
// It runs once per device class (thick: COW snapshot + block copy; thin: thin snapshots).
func TestDemo(t *testing.T) {
	_, _, conn := startNode(t, classesConfig(t, ""))
	ctl, nodeC, ident := csi.NewControllerClient(conn), csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	ctx := context.Background()
	info, err := ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n== localnvme demo: driver %s %s on node %s\n", info.GetName(), info.GetVendorVersion(), *nodeName)
	for _, class := range []struct{ name, fs string }{{"thick", "ext4"}, {"thin", "xfs"}} {
		demoClass(t, ctl, nodeC, class.name, class.fs)
	}
	fmt.Printf("\n== demo complete\n")
}

func step(format string, args ...any) func(string, ...any) {
	start := time.Now()
	fmt.Printf("-> "+format+"\n", args...)
	return func(f string, a ...any) {
		fmt.Printf("   ok (%.1fs) "+f+"\n", append([]any{time.Since(start).Seconds()}, a...)...)
	}
}

func demoClass(t *testing.T, ctl csi.ControllerClient, nodeC csi.NodeClient, class, fs string) {
	ctx := context.Background()
	dir := t.TempDir()
	capy := mountCap(fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	fmt.Printf("\n== device class %q (%s)\n", class, fs)

	capResp, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"localnvme.io/device-class": class}})
	if err != nil {
		t.Fatalf("GetCapacity: %v", err)
	}
	fmt.Printf("   capacity: %d MiB available, max volume %d MiB\n", capResp.GetAvailableCapacity()>>20, capResp.GetMaximumVolumeSize().GetValue()>>20)

	done := step("CreateVolume demo-%s (320 MiB)", class)
	vr, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "demo-" + class, CapacityRange: &csi.CapacityRange{RequiredBytes: 320 << 20},
		Parameters:         map[string]string{"localnvme.io/device-class": class},
		VolumeCapabilities: []*csi.VolumeCapability{capy},
	})
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	vol := vr.GetVolume()
	done("id=%s size=%d MiB topology=%v", vol.GetVolumeId(), vol.GetCapacityBytes()>>20, vol.GetAccessibleTopology()[0].GetSegments())

	stage, target := filepath.Join(dir, "stage"), filepath.Join(dir, "pod")
	publish(t, nodeC, vol.GetVolumeId(), stage, target, capy)

	done = step("write 16 MiB of random data to %s/data", target)
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(target, "data"), data, 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	unix.Sync()
	sum := sha256.Sum256(data)
	done("sha256 %x…", sum[:8])

	done = step("ControllerExpandVolume + NodeExpandVolume to 512 MiB (online)")
	if _, err := ctl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(), CapacityRange: &csi.CapacityRange{RequiredBytes: 512 << 20}}); err != nil {
		t.Fatalf("ControllerExpandVolume: %v", err)
	}
	if _, err := nodeC.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: vol.GetVolumeId(), VolumePath: target, CapacityRange: &csi.CapacityRange{RequiredBytes: 512 << 20}}); err != nil {
		t.Fatalf("NodeExpandVolume: %v", err)
	}
	st, err := nodeC.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: vol.GetVolumeId(), VolumePath: target})
	if err != nil {
		t.Fatalf("NodeGetVolumeStats: %v", err)
	}
	total := st.GetUsage()[0].GetTotal()
	if total < 400<<20 {
		t.Fatalf("filesystem is %d MiB after expansion to 512 MiB", total>>20)
	}
	done("filesystem now %d MiB (was created at 320 MiB), %d MiB used", total>>20, st.GetUsage()[0].GetUsed()>>20)

	done = step("CreateSnapshot demo-%s-snap", class)
	sr, err := ctl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "demo-" + class + "-snap", SourceVolumeId: vol.GetVolumeId()})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	done("id=%s size=%d MiB ready=%v", sr.GetSnapshot().GetSnapshotId(), sr.GetSnapshot().GetSizeBytes()>>20, sr.GetSnapshot().GetReadyToUse())

	done = step("overwrite the original's data after the snapshot")
	if err := os.WriteFile(filepath.Join(target, "data"), []byte("changed after the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	done("")

	done = step("CreateVolume demo-%s-clone from the snapshot", class)
	cr, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "demo-" + class + "-clone", CapacityRange: &csi.CapacityRange{RequiredBytes: 512 << 20},
		Parameters:          map[string]string{"localnvme.io/device-class": class},
		VolumeCapabilities:  []*csi.VolumeCapability{capy},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sr.GetSnapshot().GetSnapshotId()}}},
	})
	if err != nil {
		t.Fatalf("CreateVolume from snapshot: %v", err)
	}
	clone := cr.GetVolume()
	done("id=%s size=%d MiB", clone.GetVolumeId(), clone.GetCapacityBytes()>>20)

	cstage, ctarget := filepath.Join(dir, "clone-stage"), filepath.Join(dir, "clone-pod")
	publish(t, nodeC, clone.GetVolumeId(), cstage, ctarget, capy)

	done = step("verify the data in the clone")
	got, err := os.ReadFile(filepath.Join(ctarget, "data"))
	if err != nil {
		t.Fatalf("reading clone: %v", err)
	}
	if !bytes.Equal(got, data) {
		gs := sha256.Sum256(got)
		t.Fatalf("DATA MISMATCH in clone: sha256 %x, want %x", gs[:8], sum[:8])
	}
	gs := sha256.Sum256(got)
	done("clone holds the snapshot's data: sha256 %x… == %x…", gs[:8], sum[:8])

	for _, v := range []struct{ id, stage, target string }{{clone.GetVolumeId(), cstage, ctarget}, {vol.GetVolumeId(), stage, target}} {
		done = step("unpublish, unstage")
		if _, err := nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target}); err != nil {
			t.Fatalf("NodeUnpublish: %v", err)
		}
		if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.stage}); err != nil {
			t.Fatalf("NodeUnstage: %v", err)
		}
		done("%s", v.id)
	}
	done = step("DeleteVolume clone, DeleteSnapshot, DeleteVolume original")
	if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: clone.GetVolumeId()}); err != nil {
		t.Fatalf("DeleteVolume clone: %v", err)
	}
	if _, err := ctl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: sr.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}
	lv, err := ctl.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	done("%d volumes left on the node", len(lv.GetEntries()))
}

func publish(t *testing.T, nodeC csi.NodeClient, id, stage, target string, capy *csi.VolumeCapability) {
	ctx := context.Background()
	done := step("NodeStageVolume (verify identity, mkfs if blank, mount) + NodePublishVolume")
	if _, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: stage, VolumeCapability: capy}); err != nil {
		t.Fatalf("NodeStageVolume: %v", err)
	}
	if _, err := nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: stage, TargetPath: target, VolumeCapability: capy}); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	done("mounted at %s", target)
}
