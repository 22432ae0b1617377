//go:build vmtest

package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// TestRestartAnswersFromMountTableAndLVM: a node plugin restarted between kubelet's calls
// answers repeated NodeStage/NodePublish and the unpublish/unstage from the mount table and
// LVM alone — same filesystem (never re-formatted), same data — and finishes an interrupted
// format (intent tag set, mkfs done, UUID never recorded) by recording, not re-formatting.
func TestRestartAnswersFromMountTableAndLVM(t *testing.T) {
	ctx := context.Background()
	cfg := classesConfig(t, "")
	capy := mountCap("xfs", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	dir := t.TempDir()
	stage, target := filepath.Join(dir, "stage"), filepath.Join(dir, "target")

	n1, _, conn1 := startNode(t, cfg)
	ctl := csi.NewControllerClient(conn1)
	vr, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "restart-vol", CapacityRange: &csi.CapacityRange{RequiredBytes: 320 << 20},
		Parameters:         map[string]string{"localnvme.io/device-class": "thin"},
		VolumeCapabilities: []*csi.VolumeCapability{capy},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := vr.GetVolume().GetVolumeId()
	dev := "/dev/lnv-thin/" + strings.Split(id, ".")[2]
	// Simulate a plugin that died between mkfs and recording the UUID.
	run(t, "lvm", "lvchange", "--addtag", "lnv.mkfs=xfs", "lnv-thin/"+strings.Split(id, ".")[2])
	run(t, "mkfs.xfs", "-q", dev)
	n1.LVM.Invalidate()
	uuid := strings.TrimSpace(run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev))

	node1 := csi.NewNodeClient(conn1)
	if _, err := node1.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: stage, VolumeCapability: capy}); err != nil {
		t.Fatalf("NodeStage after an interrupted format: %v", err)
	}
	if got := strings.TrimSpace(run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev)); got != uuid {
		t.Fatalf("the interrupted format was redone: UUID %s → %s", uuid, got)
	}
	tags := run(t, "lvm", "lvs", "--noheadings", "-o", "lv_tags", "lnv-thin/"+strings.Split(id, ".")[2])
	if !strings.Contains(tags, "lnv.fsuuid="+uuid) || strings.Contains(tags, "lnv.mkfs=") {
		t.Fatalf("tags after staging: %s (want fsuuid=%s recorded and the intent tag gone)", tags, uuid)
	}
	if _, err := node1.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: stage, TargetPath: target, VolumeCapability: capy}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "before-restart"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A second plugin instance on the same node: nothing in memory from the first.
	_, _, conn2 := startNode(t, cfg)
	node2 := csi.NewNodeClient(conn2)
	if _, err := node2.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: stage, VolumeCapability: capy}); err != nil {
		t.Fatalf("repeated NodeStage after restart: %v", err)
	}
	if _, err := node2.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: stage, TargetPath: target, VolumeCapability: capy}); err != nil {
		t.Fatalf("repeated NodePublish after restart: %v", err)
	}
	mounts := run(t, "cat", "/proc/self/mountinfo")
	if c := strings.Count(mounts, " "+target+" "); c != 1 {
		t.Errorf("target mounted %d times after the repeated publish, want 1", c)
	}
	if b, err := os.ReadFile(filepath.Join(target, "before-restart")); err != nil || string(b) != "kept" {
		t.Errorf("data after restart: %q, %v", b, err)
	}
	if _, err := node2.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target}); err != nil {
		t.Errorf("stats after restart: %v", err)
	}
	if _, err := node2.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still exists after unpublish: %v", err)
	}
	if _, err := node2.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: stage}); err != nil {
		t.Fatal(err)
	}
	// Repeats of the teardown are answered too.
	if _, err := node2.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Errorf("repeated unpublish: %v", err)
	}
	if _, err := node2.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: stage}); err != nil {
		t.Errorf("repeated unstage: %v", err)
	}
	if _, err := csi.NewControllerClient(conn2).DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Errorf("DeleteVolume: %v", err)
	}
}
