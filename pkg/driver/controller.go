package driver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/volume"
)

// xfsMinSize is the smallest volume mkfs.xfs accepts.
const xfsMinSize = 300 << 20

// ControllerGetCapabilities lists the controller RPCs. Controller mode serves none of them
// (in particular not EXPAND_VOLUME, so external-resizer hands expansion to NodeExpandVolume
// on the owning node) and answers an empty list.
func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []csi.ControllerServiceCapability_RPC_Type
	if d.mode == ModeNode {
		caps = []csi.ControllerServiceCapability_RPC_Type{
			csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
			csi.ControllerServiceCapability_RPC_GET_CAPACITY,
			csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
			csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
			csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
			csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
			csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
			csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
			csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		}
	}
	out := &csi.ControllerGetCapabilitiesResponse{}
	for _, c := range caps {
		out.Capabilities = append(out.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return out, nil
}

func (d *Driver) topology() []*csi.Topology {
	return []*csi.Topology{{Segments: map[string]string{TopologyKey: d.nodeID}}}
}

// onThisNode reports whether a topology names this node (or names no node at all).
func (d *Driver) onThisNode(t *csi.Topology) bool {
	n, ok := t.GetSegments()[TopologyKey]
	return !ok || n == d.nodeID
}

// checkAccessibility: the volume can only live on this node, so requirements must allow it.
func (d *Driver) checkAccessibility(req *csi.TopologyRequirement) error {
	if req == nil || (len(req.GetRequisite()) == 0 && len(req.GetPreferred()) == 0) {
		return nil
	}
	var names []string
	for _, t := range append(append([]*csi.Topology{}, req.GetRequisite()...), req.GetPreferred()...) {
		if d.onThisNode(t) {
			return nil
		}
		names = append(names, t.GetSegments()[TopologyKey])
	}
	return status.Errorf(codes.ResourceExhausted, "accessibility requirements name only %v; this driver instance provisions on node %q only", names, d.nodeID)
}

// validateCapabilities checks that every capability is one this driver serves.
func validateCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return invalid("volume capabilities missing")
	}
	for _, c := range caps {
		if c.GetBlock() == nil && c.GetMount() == nil {
			return invalid("volume capability needs an access type (mount or block)")
		}
		if fs := c.GetMount().GetFsType(); fs != "" && fs != "ext4" && fs != "xfs" {
			return invalid(fmt.Sprintf("fs_type %q is not supported (ext4, xfs)", fs))
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		default:
			return invalid(fmt.Sprintf("access mode %v is not supported: local volumes are single-node", c.GetAccessMode().GetMode()))
		}
	}
	return nil
}

func sizeRequest(r *csi.CapacityRange) (volume.SizeRequest, error) {
	if r.GetRequiredBytes() < 0 || r.GetLimitBytes() < 0 {
		return volume.SizeRequest{}, status.Error(codes.InvalidArgument, "capacity range must not be negative")
	}
	s := volume.SizeRequest{Required: uint64(r.GetRequiredBytes()), Limit: uint64(r.GetLimitBytes())}
	if s.Limit != 0 && s.Required > s.Limit {
		return s, status.Errorf(codes.InvalidArgument, "required_bytes %d exceeds limit_bytes %d", s.Required, s.Limit)
	}
	return s, nil
}

// volumeParams reads the StorageClass parameters: the device class and the node-loss
// policy (fenceapi.ParsePolicy: defaults when absent, an unknown value is an error). Other
// localnvme.io/ keys are errors, so a typo never passes silently.
func volumeParams(params map[string]string) (string, fenceapi.Policy, error) {
	for k := range params {
		if strings.HasPrefix(k, "localnvme.io/") && k != ParamDeviceClass && k != fenceapi.ParamOnNodeLoss && k != fenceapi.ParamNodeLossDelay {
			return "", fenceapi.Policy{}, status.Errorf(codes.InvalidArgument, "unknown parameter %q (known: %s, %s, %s)", k, ParamDeviceClass, fenceapi.ParamOnNodeLoss, fenceapi.ParamNodeLossDelay)
		}
	}
	policy, err := fenceapi.ParsePolicy(params)
	if err != nil {
		return "", fenceapi.Policy{}, invalid(err.Error())
	}
	return params[ParamDeviceClass], policy, nil
}

// CreateVolume provisions an LV on this node.
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := checkRequestName(req.GetName()); err != nil {
		return nil, err
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if err := d.checkAccessibility(req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	size, err := sizeRequest(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	class, policy, err := volumeParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	c, err := d.engine.Class(class)
	if err != nil {
		return nil, toStatus(err)
	}
	cr := volume.CreateRequest{Name: req.GetName(), Class: c.Name, Size: size}
	for _, vc := range req.GetVolumeCapabilities() {
		if m := vc.GetMount(); m != nil && (m.GetFsType() == "xfs" || (m.GetFsType() == "" && c.FSType == "xfs")) {
			cr.MinSize = xfsMinSize
		}
	}
	if src := req.GetVolumeContentSource(); src != nil {
		switch {
		case src.GetSnapshot() != nil:
			cr.Source = src.GetSnapshot().GetSnapshotId()
			if _, err := volume.ParseID(cr.Source, volume.KindSnapshot); err != nil {
				return nil, status.Errorf(codes.NotFound, "source snapshot %q: %v", cr.Source, err)
			}
		case src.GetVolume() != nil:
			cr.Source = src.GetVolume().GetVolumeId()
			if _, err := volume.ParseID(cr.Source, volume.KindVolume); err != nil {
				return nil, status.Errorf(codes.NotFound, "source volume %q: %v", cr.Source, err)
			}
		default:
			return nil, invalid("unsupported volume content source")
		}
	}
	v, err := d.engine.Create(ctx, cr)
	if err != nil {
		return nil, toStatus(err)
	}
	out := d.csiVolume(v, req.GetVolumeContentSource())
	// The PV's volumeAttributes carry its normalised policy (defaults included), so the
	// fencing controller reads it from the PV even when its StorageClass is gone.
	for k, val := range policy.Attributes() {
		out.VolumeContext[k] = val
	}
	return &csi.CreateVolumeResponse{Volume: out}, nil
}

func (d *Driver) csiVolume(v *volume.Volume, src *csi.VolumeContentSource) *csi.Volume {
	if src == nil && v.Source != "" {
		if pid, err := volume.ParseID(v.Source, ""); err == nil && pid.Kind() == volume.KindSnapshot {
			src = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: v.Source}}}
		} else {
			src = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.Source}}}
		}
	}
	return &csi.Volume{
		VolumeId:           v.ID.String(),
		CapacityBytes:      int64(v.Size),
		VolumeContext:      map[string]string{ParamDeviceClass: v.Class.Name},
		ContentSource:      src,
		AccessibleTopology: d.topology(),
	}
}

// DeleteVolume removes the LV; an unknown ID is already deleted.
func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("volume_id missing")
	}
	if err := d.engine.DeleteUnlessInUse(ctx, req.GetVolumeId(), d.mountedAnywhere); err != nil {
		return nil, toStatus(err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// mountedAnywhere refuses to delete a volume the mount table still shows: its filesystem
// mounted (staged or published) or its device node bind-mounted (a raw block publish, which
// LVM does not see as open).
func (d *Driver) mountedAnywhere(v *volume.Volume) error {
	if d.host == nil {
		return nil
	}
	_, devNum, err := d.device(v)
	if err != nil {
		return nil //nolint:nilerr // no device node (inactive LV): nothing can be mounted
	}
	mis, err := d.host.MountInfo()
	if err != nil {
		return fmt.Errorf("reading the mount table: %w", err)
	}
	if at := d.publishedAt(mis, devNum, ""); len(at) > 0 {
		return fmt.Errorf("%w: volume %s is still mounted at %v on this node: unpublish and unstage it first", volume.ErrPrecondition, v.ID, at)
	}
	return nil
}

// ValidateVolumeCapabilities confirms the capabilities this driver serves.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("volume_id missing")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, invalid("volume capabilities missing")
	}
	v, err := d.engine.Resolve(ctx, req.GetVolumeId(), volume.KindVolume)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	if msg := volumeMismatch(v, req.GetVolumeCapabilities(), req.GetParameters()); msg != "" {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: msg}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// page applies CSI pagination over a sorted list of IDs. The token is the ID of the first
// entry of the next page, so deleting entries between calls never invalidates it.
func page(ids []string, start string, max int32) (from, to int, next string, err error) {
	if max < 0 {
		return 0, 0, "", invalid("max_entries must not be negative")
	}
	if start != "" {
		if _, perr := volume.ParseID(start, ""); perr != nil {
			return 0, 0, "", status.Errorf(codes.Aborted, "invalid starting_token %q", start)
		}
		from = sort.SearchStrings(ids, start)
	}
	to = len(ids)
	if max > 0 && from+int(max) < to {
		to = from + int(max)
		next = ids[to]
	}
	return from, to, next, nil
}

// ListVolumes lists this node's volumes.
func (d *Driver) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_entries %d is negative", req.GetMaxEntries())
	}
	vols, err := d.engine.List(ctx, volume.KindVolume)
	if err != nil {
		return nil, toStatus(err)
	}
	ids := make([]string, len(vols))
	for i, v := range vols {
		ids[i] = v.ID.String()
	}
	from, to, next, err := page(ids, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csi.ListVolumesResponse{NextToken: next}
	for _, v := range vols[from:to] {
		out.Entries = append(out.Entries, &csi.ListVolumesResponse_Entry{Volume: d.csiVolume(v, nil)})
	}
	return out, nil
}

// GetCapacity reports a class's capacity on this node (zero for other nodes' topology).
func (d *Driver) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if t := req.GetAccessibleTopology(); t != nil && !d.onThisNode(t) {
		return &csi.GetCapacityResponse{}, nil
	}
	if len(req.GetVolumeCapabilities()) > 0 {
		if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
			return &csi.GetCapacityResponse{}, nil //nolint:nilerr // capabilities this driver cannot serve have zero capacity (CSI), not an error
		}
	}
	class, _, err := volumeParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	c, err := d.engine.Class(class)
	if err != nil {
		return nil, toStatus(err)
	}
	if !c.Ready {
		return &csi.GetCapacityResponse{}, nil
	}
	capy, err := d.engine.Capacity(ctx, c.Name)
	if err != nil {
		return nil, toStatus(err)
	}
	return &csi.GetCapacityResponse{
		AvailableCapacity: int64(capy.Available),
		MaximumVolumeSize: wrapperspb.Int64(int64(capy.MaxVolume)),
	}, nil
}

// ControllerExpandVolume grows the LV (node mode only); the node grows the filesystem.
func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if d.mode != ModeNode {
		return nil, notInControllerMode("ControllerExpandVolume")
	}
	if req.GetVolumeId() == "" {
		return nil, invalid("volume_id missing")
	}
	if req.GetCapacityRange() == nil {
		return nil, invalid("capacity_range missing")
	}
	size, err := sizeRequest(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	v, err := d.engine.Expand(ctx, req.GetVolumeId(), size)
	if err != nil {
		return nil, toStatus(err)
	}
	return &csi.ControllerExpandVolumeResponse{
		CapacityBytes:         int64(v.Size),
		NodeExpansionRequired: req.GetVolumeCapability().GetBlock() == nil,
	}, nil
}

func (d *Driver) csiSnapshot(s *volume.Volume) *csi.Snapshot {
	return &csi.Snapshot{
		AccessibleTopology: d.topology(),
		SnapshotId:         s.ID.String(),
		SourceVolumeId:     s.Source,
		SizeBytes:          int64(s.Size),
		CreationTime:       timestamppb.New(s.Created),
		ReadyToUse:         true,
	}
}

// CreateSnapshot snapshots a volume.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if err := checkRequestName(req.GetName()); err != nil {
		return nil, err
	}
	if req.GetSourceVolumeId() == "" {
		return nil, invalid("source_volume_id missing")
	}
	for k := range req.GetParameters() {
		if strings.HasPrefix(k, "localnvme.io/") {
			return nil, status.Errorf(codes.InvalidArgument, "unknown snapshot parameter %q", k)
		}
	}
	if err := d.checkAccessibility(req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	s, err := d.engine.CreateSnapshot(ctx, req.GetName(), req.GetSourceVolumeId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &csi.CreateSnapshotResponse{Snapshot: d.csiSnapshot(s)}, nil
}

// DeleteSnapshot removes a snapshot; an unknown ID is already deleted.
func (d *Driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, invalid("snapshot_id missing")
	}
	if err := d.engine.DeleteSnapshot(ctx, req.GetSnapshotId()); err != nil {
		return nil, toStatus(err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots lists snapshots, optionally one ID or those of one source volume.
func (d *Driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_entries %d is negative", req.GetMaxEntries())
	}
	snaps, err := d.engine.List(ctx, volume.KindSnapshot)
	if err != nil {
		return nil, toStatus(err)
	}
	var ids []string
	var keep []*volume.Volume
	for _, s := range snaps {
		if req.GetSnapshotId() != "" && s.ID.String() != req.GetSnapshotId() {
			continue
		}
		if req.GetSourceVolumeId() != "" && s.Source != req.GetSourceVolumeId() {
			continue
		}
		keep = append(keep, s)
		ids = append(ids, s.ID.String())
	}
	from, to, next, err := page(ids, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csi.ListSnapshotsResponse{NextToken: next}
	for _, s := range keep[from:to] {
		out.Entries = append(out.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: d.csiSnapshot(s)})
	}
	return out, nil
}

// GetSnapshot returns one snapshot.
func (d *Driver) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, invalid("snapshot_id missing")
	}
	s, err := d.engine.Resolve(ctx, req.GetSnapshotId(), volume.KindSnapshot)
	if err != nil {
		return nil, toStatus(err)
	}
	return &csi.GetSnapshotResponse{Snapshot: d.csiSnapshot(s)}, nil
}

// checkRequestName: a CreateVolume/CreateSnapshot name is required and must fit its LV tag.
func checkRequestName(name string) error {
	switch {
	case name == "":
		return invalid("name missing")
	case len(name) > volume.MaxRequestNameLen:
		return status.Errorf(codes.InvalidArgument, "name is %d bytes; at most %d fit in the LV tag that records it (LVM tags are at most 1024 characters)", len(name), volume.MaxRequestNameLen)
	}
	return nil
}

// volumeMismatch says how the volume differs from what a ValidateVolumeCapabilities request
// asks ("" when it does not): another device class, parameters that CreateVolume would
// refuse, or a filesystem other than the one recorded on the volume.
func volumeMismatch(v *volume.Volume, caps []*csi.VolumeCapability, params map[string]string) string {
	class, _, err := volumeParams(params)
	if err != nil {
		return status.Convert(err).Message()
	}
	if class != "" && class != v.Class.Name {
		return fmt.Sprintf("volume %s is in device class %s, the parameters ask for %s", v.ID, v.Class.Name, class)
	}
	recorded := v.FSType
	for _, vc := range caps {
		fs := vc.GetMount().GetFsType()
		if vc.GetMount() == nil || fs == "" {
			continue
		}
		// not formatted yet: staging makes the filesystem the capability names
		if recorded != "" && fs != recorded {
			return fmt.Sprintf("volume %s holds a %s filesystem, the capability asks for %s", v.ID, recorded, fs)
		}
	}
	return ""
}
