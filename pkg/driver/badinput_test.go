package driver

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every RPC refuses bad input with a precise code, and nothing is mutated in LVM or on the
// host; a malformed ID is refused without even reading LVM's state.
func TestBadInputEveryRPC(t *testing.T) {
	f := newPathFixture(t)
	ctx := context.Background()
	d := f.d
	good := f.id
	// well-formed IDs: of an LV that does not exist (NotFound), and of this volume's LV
	// name with another LV UUID (a re-created LV: FailedPrecondition)
	parts := strings.Split(good, ".")
	forged := strings.Join([]string{parts[0], parts[1], "v0123456789abcdef01234567", parts[3]}, ".")
	recreated := good[:len(good)-4] + "zzzz"
	malformed := "thin.not-a-vg-uuid.vabc.x"
	snapForged := strings.Replace(forged, ".v", ".s", 1)
	mc := mountCap()
	rwx := []*csi.VolumeCapability{{AccessType: mc[0].AccessType, AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER}}}
	btrfs := []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "btrfs"}}, AccessMode: mc[0].AccessMode}}
	thin := map[string]string{ParamDeviceClass: "thin"}
	rng := &csi.CapacityRange{RequiredBytes: 128 << 20}
	long := strings.Repeat("x", 800)
	type call struct {
		name      string
		do        func() error
		code      codes.Code
		noReports bool // refused before LVM's state is read
	}
	calls := []call{
		{"CreateVolume no name", func() error {
			_, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{VolumeCapabilities: mc, Parameters: thin})
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume long name", func() error { _, err := d.CreateVolume(ctx, createReq(long, thin)); return err }, codes.InvalidArgument, true},
		{"CreateVolume no capabilities", func() error {
			_, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "a", Parameters: thin})
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume RWX", func() error {
			_, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "a", Parameters: thin, VolumeCapabilities: rwx})
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume btrfs", func() error {
			_, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "a", Parameters: thin, VolumeCapabilities: btrfs})
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume unknown parameter", func() error {
			_, err := d.CreateVolume(ctx, createReq("a", map[string]string{ParamDeviceClass: "thin", "localnvme.io/devcie-class": "x"}))
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume policy typo", func() error {
			_, err := d.CreateVolume(ctx, createReq("a", map[string]string{ParamDeviceClass: "thin", "localnvme.io/on-node-loss": "relase"}))
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume limit below required", func() error {
			r := createReq("a", thin)
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 2 << 30, LimitBytes: 1 << 30}
			_, err := d.CreateVolume(ctx, r)
			return err
		}, codes.InvalidArgument, true},
		{"CreateVolume from a malformed source", func() error {
			r := createReq("a", thin)
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: malformed}}}
			_, err := d.CreateVolume(ctx, r)
			return err
		}, codes.NotFound, false},
		{"CreateVolume from a forged snapshot", func() error {
			r := createReq("a", thin)
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snapForged}}}
			_, err := d.CreateVolume(ctx, r)
			return err
		}, codes.NotFound, false},
		{"DeleteVolume no id", func() error { _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{}); return err }, codes.InvalidArgument, true},
		{"ControllerExpandVolume no id", func() error {
			_, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{CapacityRange: rng})
			return err
		}, codes.InvalidArgument, true},
		{"ControllerExpandVolume no range", func() error {
			_, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"ControllerExpandVolume malformed", func() error {
			_, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: malformed, CapacityRange: rng})
			return err
		}, codes.NotFound, true},
		{"ControllerExpandVolume forged", func() error {
			_, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: forged, CapacityRange: rng})
			return err
		}, codes.NotFound, false},
		{"CreateSnapshot no name", func() error {
			_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{SourceVolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"CreateSnapshot long name", func() error {
			_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: long, SourceVolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"CreateSnapshot no source", func() error { _, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s"}); return err }, codes.InvalidArgument, true},
		{"CreateSnapshot forged source", func() error {
			_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: forged})
			return err
		}, codes.NotFound, false},
		{"CreateSnapshot of a re-created LV", func() error {
			_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: recreated})
			return err
		}, codes.FailedPrecondition, false},
		{"NodeStageVolume re-created LV", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: recreated, StagingTargetPath: "/s", VolumeCapability: mc[0]})
			return err
		}, codes.FailedPrecondition, false},
		{"DeleteSnapshot no id", func() error { _, err := d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{}); return err }, codes.InvalidArgument, true},
		{"ValidateVolumeCapabilities no id", func() error {
			_, err := d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeCapabilities: mc})
			return err
		}, codes.InvalidArgument, true},
		{"ValidateVolumeCapabilities no capabilities", func() error {
			_, err := d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"ValidateVolumeCapabilities malformed", func() error {
			_, err := d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: malformed, VolumeCapabilities: mc})
			return err
		}, codes.NotFound, true},
		{"NodeStageVolume no id", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{StagingTargetPath: "/s", VolumeCapability: mc[0]})
			return err
		}, codes.InvalidArgument, true},
		{"NodeStageVolume no capability", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: good, StagingTargetPath: "/s"})
			return err
		}, codes.InvalidArgument, true},
		{"NodeStageVolume RWX", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: good, StagingTargetPath: "/s", VolumeCapability: rwx[0]})
			return err
		}, codes.InvalidArgument, true},
		{"NodeStageVolume traversal", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: good, StagingTargetPath: "/var/lib/kubelet/../../etc", VolumeCapability: mc[0]})
			return err
		}, codes.InvalidArgument, true},
		{"NodeStageVolume malformed", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: malformed, StagingTargetPath: "/s", VolumeCapability: mc[0]})
			return err
		}, codes.NotFound, true},
		{"NodeStageVolume forged", func() error {
			_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: forged, StagingTargetPath: "/s", VolumeCapability: mc[0]})
			return err
		}, codes.NotFound, false},
		{"NodePublishVolume no target", func() error {
			_, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: good, StagingTargetPath: "/s", VolumeCapability: mc[0]})
			return err
		}, codes.InvalidArgument, true},
		{"NodePublishVolume relative target", func() error {
			_, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: good, StagingTargetPath: "/s", TargetPath: "t", VolumeCapability: mc[0]})
			return err
		}, codes.InvalidArgument, true},
		{"NodePublishVolume forged", func() error {
			_, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: forged, StagingTargetPath: "/s", TargetPath: "/t", VolumeCapability: mc[0]})
			return err
		}, codes.NotFound, false},
		{"NodeUnpublishVolume no target", func() error {
			_, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"NodeUnpublishVolume malformed", func() error {
			_, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: malformed, TargetPath: "/t"})
			return err
		}, codes.NotFound, true},
		{"NodeUnstageVolume relative", func() error {
			_, err := d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: good, StagingTargetPath: "s"})
			return err
		}, codes.InvalidArgument, true},
		{"NodeGetVolumeStats no path", func() error {
			_, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"NodeGetVolumeStats malformed", func() error {
			_, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: malformed, VolumePath: "/t"})
			return err
		}, codes.NotFound, true},
		{"NodeGetVolumeStats forged", func() error {
			_, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: forged, VolumePath: "/t"})
			return err
		}, codes.NotFound, false},
		{"NodeExpandVolume no path", func() error {
			_, err := d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: good})
			return err
		}, codes.InvalidArgument, true},
		{"NodeExpandVolume malformed", func() error {
			_, err := d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: malformed, VolumePath: "/t", CapacityRange: rng})
			return err
		}, codes.NotFound, true},
		{"ListVolumes bad token", func() error { _, err := d.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: "zzz"}); return err }, codes.Aborted, false},
		{"ListSnapshots negative max", func() error { _, err := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{MaxEntries: -1}); return err }, codes.InvalidArgument, true},
		{"ListVolumes negative max", func() error { _, err := d.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: -1}); return err }, codes.InvalidArgument, true},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			lvmCalls, reports := len(f.l.calls), f.l.reports
			err := c.do()
			if got := status.Code(err); got != c.code {
				t.Errorf("code %s (%v), want %s", got, err, c.code)
			}
			if msg := status.Convert(err).Message(); len(msg) < 10 {
				t.Errorf("message %q does not say what is wrong", msg)
			}
			if len(f.l.calls) != lvmCalls || len(f.h.calls) != 0 {
				t.Errorf("mutations: LVM %v, host %v", f.l.calls[lvmCalls:], f.h.calls)
			}
			if c.noReports && f.l.reports != reports {
				t.Errorf("read LVM's state %d times before refusing", f.l.reports-reports)
			}
		})
	}
}
