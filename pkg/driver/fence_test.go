package driver

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/localnvme/localnvme/pkg/volume"
)

// TestFencedVolumeRefusedByEveryUse fences a volume and checks that every call that would
// hand its data to a workload, or change it, answers FailedPrecondition naming the fence,
// while unpublish, unstage and DeleteVolume still clean it up.
func TestFencedVolumeRefusedByEveryUse(t *testing.T) {
	d, l, h := newEngineDriver(t)
	ctx := context.Background()
	resp, err := d.CreateVolume(ctx, createReq("pvc-1", map[string]string{ParamDeviceClass: "thin"}))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	const reason = "released by node-loss policy at 2026-01-02T03:04:05Z: node n1 deleted"
	if err := d.engine.Fence(ctx, id, reason); err != nil {
		t.Fatal(err)
	}
	calls := len(l.calls)
	vc := mountCap()[0]
	capRange := &csi.CapacityRange{RequiredBytes: 128 << 20}
	refused := map[string]error{}
	_, refused["NodeStageVolume"] = d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: "/staging", VolumeCapability: vc})
	_, refused["NodePublishVolume"] = d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: "/staging", TargetPath: "/target", VolumeCapability: vc})
	_, refused["NodeExpandVolume"] = d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: "/target", CapacityRange: capRange})
	_, refused["ControllerExpandVolume"] = d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: capRange})
	clone := createReq("pvc-clone", map[string]string{ParamDeviceClass: "thin"})
	clone.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
	_, refused["CreateVolume (clone)"] = d.CreateVolume(ctx, clone)
	_, refused["CreateSnapshot"] = d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: id})
	want := "fenced: " + reason + "; this LV is removed only by DeleteVolume of its PV"
	for rpc, err := range refused {
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), want) {
			t.Errorf("%s = %v, want FailedPrecondition with %q", rpc, err, want)
		}
	}
	if len(l.calls) != calls {
		t.Errorf("refused calls changed LVM: %v", l.calls[calls:])
	}

	// Cleanup still works.
	pid, err := volume.ParseID(id, volume.KindVolume)
	if err != nil {
		t.Fatal(err)
	}
	h.dm = map[string]string{"253:3": pid.DMUUID()}
	h.files = map[string]Target{"/staging": {Kind: TargetEmptyDir}, "/target": {Kind: TargetEmptyDir}}
	h.mounts = []mount.MountInfo{{MountPoint: "/staging", Major: 253, Minor: 3}, {MountPoint: "/target", Major: 253, Minor: 3}}
	if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: "/target"}); err != nil {
		t.Errorf("NodeUnpublishVolume of a fenced volume: %v", err)
	}
	if _, err := d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: "/staging"}); err != nil {
		t.Errorf("NodeUnstageVolume of a fenced volume: %v", err)
	}
	if len(h.mounts) != 0 || len(h.removed) != 1 {
		t.Errorf("after unpublish and unstage: mounts %v, removed %v", h.mounts, h.removed)
	}
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatalf("DeleteVolume of a fenced volume: %v", err)
	}
	if !strings.Contains(strings.Join(l.calls, ";"), "lvremove") {
		t.Errorf("DeleteVolume did not remove the fenced LV: %v", l.calls)
	}
}
