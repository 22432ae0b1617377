package driver

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/localnvme/localnvme/pkg/fenceapi"
)

func mountCap() []*csi.VolumeCapability {
	return []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
}

func createReq(name string, params map[string]string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{Name: name, Parameters: params, VolumeCapabilities: mountCap(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 64 << 20}}
}

func TestCreateVolumePolicyInVolumeContext(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   map[string]string
	}{
		{"defaults", map[string]string{ParamDeviceClass: "thin"},
			map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "keep", fenceapi.ParamNodeLossDelay: "5m0s"}},
		{"no parameters at all (default class)", nil,
			map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "keep", fenceapi.ParamNodeLossDelay: "5m0s"}},
		{"release after 90s, normalised", map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "release", fenceapi.ParamNodeLossDelay: "90s"},
			map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "release", fenceapi.ParamNodeLossDelay: "1m30s"}},
		{"other parameters are not copied", map[string]string{ParamDeviceClass: "thin", "csi.storage.k8s.io/fstype": "ext4"},
			map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "keep", fenceapi.ParamNodeLossDelay: "5m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, _ := newEngineDriver(t)
			resp, err := d.CreateVolume(context.Background(), createReq("pvc-1", tt.params))
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetVolume().GetVolumeContext(); !maps.Equal(got, tt.want) {
				t.Errorf("volume context = %v, want %v", got, tt.want)
			}
			if _, err := fenceapi.ParsePolicy(resp.GetVolume().GetVolumeContext()); err != nil {
				t.Errorf("the fencing controller cannot parse the PV's attributes: %v", err)
			}
		})
	}
}

func TestCreateVolumeRefusesInvalidPolicyBeforeLVM(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"unknown action", map[string]string{fenceapi.ParamOnNodeLoss: "delete"}, `parameter localnvme.io/on-node-loss="delete": want "keep" or "release"`},
		{"bad duration", map[string]string{fenceapi.ParamNodeLossDelay: "5 minutes"}, `parameter localnvme.io/node-loss-delay="5 minutes": not a duration`},
		{"too long", map[string]string{fenceapi.ParamNodeLossDelay: "5000h"}, "must be between 0s and"},
		{"negative", map[string]string{fenceapi.ParamNodeLossDelay: "-1m"}, "must be between 0s and"},
		{"unknown key", map[string]string{"localnvme.io/on-node-los": "keep"}, `unknown parameter "localnvme.io/on-node-los"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, l, _ := newEngineDriver(t)
			reports := l.reports
			_, err := d.CreateVolume(context.Background(), createReq("pvc-1", tt.params))
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.want) {
				t.Errorf("CreateVolume = %v, want InvalidArgument with %q", err, tt.want)
			}
			if len(l.calls) != 0 || l.reports != reports {
				t.Errorf("LVM was used before the parameters were checked: %v, %d reports", l.calls, l.reports-reports)
			}
			_, err = d.GetCapacity(context.Background(), &csi.GetCapacityRequest{Parameters: tt.params})
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("GetCapacity = %v, want InvalidArgument", err)
			}
		})
	}
}

func TestGetCapacityAcceptsPolicyParameters(t *testing.T) {
	d, _, _ := newEngineDriver(t)
	resp, err := d.GetCapacity(context.Background(), &csi.GetCapacityRequest{Parameters: map[string]string{
		ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "release", fenceapi.ParamNodeLossDelay: "10m",
	}})
	if err != nil || resp.GetAvailableCapacity() == 0 {
		t.Errorf("GetCapacity with a policy = %v, %v; want the class's capacity", resp, err)
	}
}

func TestCloneAndRestoreCarryPolicy(t *testing.T) {
	d, _, _ := newEngineDriver(t)
	ctx := context.Background()
	params := map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "release", fenceapi.ParamNodeLossDelay: "2m"}
	want := map[string]string{ParamDeviceClass: "thin", fenceapi.ParamOnNodeLoss: "release", fenceapi.ParamNodeLossDelay: "2m0s"}
	src, err := d.CreateVolume(ctx, createReq("pvc-src", map[string]string{ParamDeviceClass: "thin"}))
	if err != nil {
		t.Fatal(err)
	}
	srcID := src.GetVolume().GetVolumeId()
	snap, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: srcID})
	if err != nil {
		t.Fatal(err)
	}
	for name, cs := range map[string]*csi.VolumeContentSource{
		"clone":   {Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: srcID}}},
		"restore": {Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}},
	} {
		req := createReq("pvc-"+name, params)
		req.VolumeContentSource = cs
		resp, err := d.CreateVolume(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := resp.GetVolume().GetVolumeContext(); !maps.Equal(got, want) {
			t.Errorf("%s: volume context = %v, want %v", name, got, want)
		}
		if resp.GetVolume().GetContentSource() == nil {
			t.Errorf("%s: no content source in the response", name)
		}
	}
}
