package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"

	"github.com/localnvme/localnvme/pkg/failpoint"
	"github.com/localnvme/localnvme/pkg/volume"
)

// NodeGetCapabilities lists the node RPCs. In controller mode only EXPAND_VOLUME is
// advertised, which is what external-resizer checks to pick its node-only expansion path.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	caps := []csi.NodeServiceCapability_RPC_Type{csi.NodeServiceCapability_RPC_EXPAND_VOLUME}
	if d.mode == ModeNode {
		caps = append(caps,
			csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
			csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
			csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
			csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
			csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
		)
	}
	out := &csi.NodeGetCapabilitiesResponse{}
	for _, c := range caps {
		out.Capabilities = append(out.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}},
		})
	}
	return out, nil
}

// NodeGetInfo names the node and its topology.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID, AccessibleTopology: d.topology()[0]}, nil
}

// device returns the LV's device path and number after checking that the device node is
// the LV the volume ID names (its device-mapper UUID carries the VG and LV UUIDs). The LV
// must be active.
func (d *Driver) device(v *volume.Volume) (string, string, error) {
	dev := v.DevicePath()
	maj, min, ok, err := d.host.DevNumber(dev)
	if err != nil || !ok {
		return "", "", fmt.Errorf("%w: device %s of volume %s is not available (err=%v)", volume.ErrPrecondition, dev, v.ID, err)
	}
	got, err := d.host.DMUUID(maj, min)
	if err != nil {
		return "", "", fmt.Errorf("reading the device-mapper UUID of %s: %w", dev, err)
	}
	if got != v.DMUUID() {
		return "", "", fmt.Errorf("%w: device %s (%d:%d) has device-mapper UUID %q, volume %s needs %q: the device is not this volume's LV",
			volume.ErrPrecondition, dev, maj, min, got, v.ID, v.DMUUID())
	}
	return dev, devString(int(maj), int(min)), nil
}

// NodeStageVolume verifies the volume is the very LV its ID names, formats it only if it was
// never formatted and is provably blank, verifies a recorded filesystem, and mounts it.
func (d *Driver) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (_ *csi.NodeStageVolumeResponse, err error) {
	defer func() { err = toStatus(err) }()
	id, staging, vc := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, invalid("volume_id missing")
	case staging == "":
		return nil, invalid("staging_target_path missing")
	case vc == nil:
		return nil, invalid("volume_capability missing")
	}
	if err := checkPath("staging_target_path", staging); err != nil {
		return nil, err
	}
	if err := validateCapabilities([]*csi.VolumeCapability{vc}); err != nil {
		return nil, err
	}
	st, err := d.inspect("staging_target_path", staging)
	if err != nil {
		return nil, err
	}
	staging = st.Path // as the mount table shows it
	unlock, err := d.engine.LockVolume(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Fresh, so a hand-made change is seen; a fenced volume is refused.
	v, err := d.engine.ResolveUsable(ctx, id, true)
	if err != nil {
		return nil, err
	}
	if v.Copying {
		return nil, classErrorf(errCloneCopying, "volume %s is a clone whose block copy has not completed", id)
	}
	if err := d.engine.Activate(ctx, v); err != nil {
		return nil, err
	}
	// An interrupted create or thick expand left extents that may hold a deleted volume's
	// data: zeroed before anything mounts the volume.
	if err := d.engine.FinishZeroing(ctx, v); err != nil {
		return nil, err
	}
	dev, devNum, err := d.device(v)
	if err != nil {
		return nil, err
	}
	if vc.GetBlock() != nil {
		// Raw block: nothing to mount; NodePublish bind-mounts the device node.
		return &csi.NodeStageVolumeResponse{}, nil
	}
	fsType := vc.GetMount().GetFsType()
	if fsType == "" {
		fsType = v.FSType
	}
	if fsType == "" {
		fsType = v.Class.FSType
	}
	if v.FSType != "" && v.FSType != fsType {
		return nil, classErrorf(errFSTypeMismatch, "volume %s holds a %s filesystem, the capability asks for %s", id, v.FSType, fsType)
	}
	mis, err := d.host.MountInfo()
	if err != nil {
		return nil, classErrorf(errHost, "reading mount table: %w", err)
	}
	if mi := mountAt(mis, staging); mi != nil {
		if devString(mi.Major, mi.Minor) == devNum {
			return &csi.NodeStageVolumeResponse{}, nil // already staged
		}
		return nil, classErrorf(errMountConflict, "staging path %s already has device %d:%d mounted, not volume %s (%s)", staging, mi.Major, mi.Minor, id, devNum)
	}
	// before any probe or mkfs: never mount over something that holds data
	if err := requireEmpty("staging_target_path", st, true); err != nil {
		return nil, err
	}
	if err := d.ensureFilesystem(ctx, v, dev, fsType); err != nil {
		return nil, err
	}
	if err := d.host.MakeTarget(staging, true); err != nil {
		return nil, classErrorf(errHost, "creating staging path: %w", err)
	}
	if err := d.host.Mount(dev, staging, fsType, mountOptions(fsType, vc.GetMount().GetMountFlags(), false)); err != nil {
		return nil, classErrorf(errHost, "mounting %s at %s: %w", dev, staging, err)
	}
	failpoint.Hit(failpoint.StageAfterMount)
	klog.FromContext(ctx).Info("Volume staged", "volumeID", id, "device", dev, "fsType", fsType, "path", staging)
	return &csi.NodeStageVolumeResponse{}, nil
}

// ensureFilesystem makes sure dev holds the volume's filesystem:
//   - recorded (tags have a UUID): the device must show exactly that type and UUID;
//   - not recorded, device blank (blkid exit 2): mkfs, then record type and UUID;
//   - not recorded, our own interrupted mkfs (intent tag, same type): record it;
//   - anything else, or a probe that failed: refuse, never format.
func (d *Driver) ensureFilesystem(ctx context.Context, v *volume.Volume, dev, fsType string) error {
	kv, found, err := d.prober.Signature(ctx, dev)
	if err != nil {
		return fmt.Errorf("probing %s for a filesystem failed, refusing to format it: %w", dev, err)
	}
	if v.FSUUID != "" {
		if !found {
			return fmt.Errorf("%w: volume %s was formatted %s (UUID %s) but %s now shows no filesystem; refusing to format it again", volume.ErrPrecondition, v.ID, v.FSType, v.FSUUID, dev)
		}
		if kv["TYPE"] != v.FSType || kv["UUID"] != v.FSUUID {
			return fmt.Errorf("%w: volume %s was formatted %s (UUID %s) but %s shows %s (UUID %s); refusing to mount a different filesystem", volume.ErrPrecondition, v.ID, v.FSType, v.FSUUID, dev, kv["TYPE"], kv["UUID"])
		}
		return nil
	}
	if found {
		if v.Formatting == fsType && kv["TYPE"] == fsType && kv["UUID"] != "" {
			klog.FromContext(ctx).Info("Recording the filesystem of an interrupted format", "volumeID", v.ID, "uuid", kv["UUID"])
			return d.engine.RecordFilesystem(ctx, v, fsType, kv["UUID"])
		}
		return fmt.Errorf("%w: volume %s was never formatted by localnvme but %s holds a signature (%s); refusing to format or mount it", volume.ErrPrecondition, v.ID, dev, sigString(kv))
	}
	if err := d.engine.MarkFormatting(ctx, v, fsType); err != nil {
		return err
	}
	failpoint.Hit(failpoint.StageMkfsIntent)
	if err := d.fs.format(ctx, fsType, dev); err != nil {
		return err
	}
	failpoint.Hit(failpoint.StageAfterMkfs)
	kv, found, err = d.prober.Signature(ctx, dev)
	if err != nil || !found || kv["TYPE"] != fsType || kv["UUID"] == "" {
		return fmt.Errorf("after mkfs.%s, %s shows %s (found=%v, err=%v)", fsType, dev, sigString(kv), found, err)
	}
	return d.engine.RecordFilesystem(ctx, v, fsType, kv["UUID"])
}

func sigString(kv map[string]string) string {
	s := ""
	for _, k := range []string{"TYPE", "PTTYPE", "UUID", "LABEL"} {
		if kv[k] != "" {
			s += fmt.Sprintf("%s=%q ", k, kv[k])
		}
	}
	if s == "" {
		return "no signature"
	}
	return s[:len(s)-1]
}

// NodeUnstageVolume unmounts the volume from the staging path: every mount of this volume
// stacked there, and nothing else (a foreign mount is refused and left). The directory itself
// belongs to kubelet.
func (d *Driver) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (_ *csi.NodeUnstageVolumeResponse, err error) {
	defer func() { err = toStatus(err) }()
	unlock, _, err := d.unmountVolumeAt(ctx, req.GetVolumeId(), "staging_target_path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// unmountVolumeAt is the common part of NodeUnstageVolume and NodeUnpublishVolume: it checks
// the request, takes the volume's lock (returned as unlock), and unmounts every mount of the
// volume stacked on path and nothing else. gone reports that nothing is at the path.
func (d *Driver) unmountVolumeAt(ctx context.Context, id, field, path string) (unlock func(), gone bool, err error) {
	if id == "" {
		return nil, false, invalid("volume_id missing")
	}
	if path == "" {
		return nil, false, invalid(field + " missing")
	}
	if err := checkPath(field, path); err != nil {
		return nil, false, err
	}
	pid, err := parseVolumeID(id)
	if err != nil {
		return nil, false, err
	}
	t, err := d.inspect(field, path)
	if err != nil {
		return nil, false, err
	}
	unlock, err = d.engine.LockVolume(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if t.Kind == TargetAbsent {
		return unlock, true, nil
	}
	if err := d.unmountOwn(pid, field, t.Path); err != nil {
		unlock()
		return nil, false, err
	}
	return unlock, false, nil
}

// publishedAt lists the mount points other than staging where the device is mounted:
// bind mounts of its filesystem and bind mounts of its device node.
func (d *Driver) publishedAt(mis []mount.MountInfo, devNum, staging string) []string {
	var out []string
	for i := range mis {
		mi := &mis[i]
		switch {
		case devString(mi.Major, mi.Minor) == devNum:
			if mi.MountPoint != staging {
				out = append(out, mi.MountPoint)
			}
		case isDevtmpfs(mi):
			if maj, min, ok, err := d.host.DevNumber(mi.MountPoint); err == nil && ok && devString(int(maj), int(min)) == devNum {
				out = append(out, mi.MountPoint)
			}
		}
	}
	return out
}

// NodePublishVolume bind-mounts the staged filesystem (or the device node) at the target.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (_ *csi.NodePublishVolumeResponse, err error) {
	defer func() { err = toStatus(err) }()
	id, target, staging, vc := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, invalid("volume_id missing")
	case target == "":
		return nil, invalid("target_path missing")
	case vc == nil:
		return nil, invalid("volume_capability missing")
	case staging == "":
		return nil, invalid("staging_target_path missing (the volume must be staged first)")
	}
	if err := checkPath("target_path", target); err != nil {
		return nil, err
	}
	if err := checkPath("staging_target_path", staging); err != nil {
		return nil, err
	}
	if err := validateCapabilities([]*csi.VolumeCapability{vc}); err != nil {
		return nil, err
	}
	tt, err := d.inspect("target_path", target)
	if err != nil {
		return nil, err
	}
	st, err := d.inspect("staging_target_path", staging)
	if err != nil {
		return nil, err
	}
	target, staging = tt.Path, st.Path // as the mount table shows them
	unlock, err := d.engine.LockVolume(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, err := d.engine.ResolveUsable(ctx, id, false)
	if err != nil {
		return nil, err
	}
	dev, devNum, err := d.device(v)
	if err != nil {
		return nil, err
	}
	mis, err := d.host.MountInfo()
	if err != nil {
		return nil, classErrorf(errHost, "reading mount table: %w", err)
	}
	block := vc.GetBlock() != nil
	if mi := mountAt(mis, target); mi != nil {
		if devString(mi.Major, mi.Minor) == devNum {
			return &csi.NodePublishVolumeResponse{}, nil
		}
		if maj, min, ok, err := d.host.DevNumber(target); err == nil && ok && devString(int(maj), int(min)) == devNum {
			return &csi.NodePublishVolumeResponse{}, nil
		}
		return nil, classErrorf(errMountConflict, "target %s already has something else mounted (%d:%d %s)", target, mi.Major, mi.Minor, mi.Root)
	}
	if err := requireEmpty("target_path", tt, !block); err != nil {
		return nil, err
	}
	if vc.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
		if others := d.publishedAt(mis, devNum, staging); len(others) > 0 {
			return nil, classErrorf(errSingleWriter, "volume %s has access mode SINGLE_NODE_SINGLE_WRITER and is already published at %v", id, others)
		}
	}
	opts := []string{"bind"}
	if req.GetReadonly() {
		opts = append(opts, "ro")
	}
	if block {
		if err := d.host.MakeTarget(target, false); err != nil {
			return nil, classErrorf(errHost, "creating target file: %w", err)
		}
		if err := d.host.Mount(dev, target, "", opts); err != nil {
			return nil, classErrorf(errHost, "bind-mounting %s at %s: %w", dev, target, err)
		}
	} else {
		st := mountAt(mis, staging)
		if st == nil || devString(st.Major, st.Minor) != devNum {
			return nil, classErrorf(errNotStaged, "volume %s is not staged at %s", id, staging)
		}
		if err := d.host.MakeTarget(target, true); err != nil {
			return nil, classErrorf(errHost, "creating target directory: %w", err)
		}
		if err := d.host.Mount(staging, target, "", opts); err != nil {
			return nil, classErrorf(errHost, "bind-mounting %s at %s: %w", staging, target, err)
		}
	}
	failpoint.Hit(failpoint.PublishAfterMount)
	klog.FromContext(ctx).Info("Volume published", "volumeID", id, "target", target, "block", block, "readonly", req.GetReadonly())
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts every mount of this volume stacked on the target (a foreign
// mount is refused and left) and removes the target only when it is the empty directory or
// empty file that NodePublishVolume makes (never recursively).
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (_ *csi.NodeUnpublishVolumeResponse, err error) {
	defer func() { err = toStatus(err) }()
	id, target := req.GetVolumeId(), req.GetTargetPath()
	unlock, gone, err := d.unmountVolumeAt(ctx, id, "target_path", target)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if gone {
		return &csi.NodeUnpublishVolumeResponse{}, nil
	}
	// unmounted: what is left is what publish made, or something that must stay
	tt, err := d.inspect("target_path", target)
	if err != nil {
		return nil, err
	}
	switch tt.Kind {
	case TargetAbsent:
	case TargetEmptyDir, TargetEmptyFile:
		if err := d.host.RemoveTarget(tt.Path); err != nil {
			return nil, classErrorf(errHost, "removing %s: %w", tt.Path, err)
		}
	default:
		return nil, classErrorf(errPathOccupied, "target_path %s is %s and no mount of volume %s: left alone, it is not what NodePublishVolume makes; remove it by hand if nothing needs it", tt.Path, tt.What, id)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// mountedVolume checks that path is where v is published or staged, and says whether it is a
// block target.
func (d *Driver) mountedVolume(v *volume.Volume, path string) (block bool, err error) {
	_, devNum, err := d.device(v)
	if err != nil {
		return false, classErrorf(errNotAtPath, "volume %s is not active on this node: %w", v.ID, err)
	}
	if maj, min, ok, err := d.host.DevNumber(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, classErrorf(errNotAtPath, "path %s does not exist: %w", path, err)
		}
		return false, classErrorf(errHost, "stat %s: %w", path, err)
	} else if ok {
		if devString(int(maj), int(min)) != devNum {
			return false, classErrorf(errNotAtPath, "%s is not the device of volume %s", path, v.ID)
		}
		return true, nil
	}
	mis, err := d.host.MountInfo()
	if err != nil {
		return false, classErrorf(errHost, "reading mount table: %w", err)
	}
	mi := mountAt(mis, path)
	if mi == nil || devString(mi.Major, mi.Minor) != devNum {
		return false, classErrorf(errNotAtPath, "volume %s is not mounted at %s", v.ID, path)
	}
	return false, nil
}

// NodeGetVolumeStats reports bytes and inodes of a mounted volume, or bytes of a block one.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (_ *csi.NodeGetVolumeStatsResponse, err error) {
	defer func() { err = toStatus(err) }()
	if req.GetVolumeId() == "" {
		return nil, invalid("volume_id missing")
	}
	if req.GetVolumePath() == "" {
		return nil, invalid("volume_path missing")
	}
	if err := checkVolumePath(req.GetVolumeId(), req.GetVolumePath()); err != nil {
		return nil, err
	}
	v, err := d.engine.Resolve(ctx, req.GetVolumeId(), volume.KindVolume)
	if err != nil {
		return nil, err
	}
	block, err := d.mountedVolume(v, req.GetVolumePath())
	if err != nil {
		return nil, err
	}
	if block {
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: int64(v.Size)}}}, nil
	}
	st, err := d.host.Statfs(req.GetVolumePath())
	if err != nil {
		return nil, classErrorf(errHost, "statfs %s: %w", req.GetVolumePath(), err)
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: st.TotalBytes, Available: st.AvailableBytes, Used: st.UsedBytes},
		{Unit: csi.VolumeUsage_INODES, Total: st.TotalInodes, Available: st.FreeInodes, Used: st.UsedInodes},
	}}, nil
}

// NodeExpandVolume grows the LV if the controller did not already, then the filesystem.
func (d *Driver) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (_ *csi.NodeExpandVolumeResponse, err error) {
	defer func() { err = toStatus(err) }()
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if id == "" {
		return nil, invalid("volume_id missing")
	}
	if path == "" {
		return nil, invalid("volume_path missing")
	}
	if err := checkVolumePath(id, path); err != nil {
		return nil, err
	}
	if sp := req.GetStagingTargetPath(); sp != "" {
		if err := checkPath("staging_target_path", sp); err != nil {
			return nil, err
		}
	}
	size, err := sizeRequest(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	unlock, err := d.engine.LockVolume(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, err := d.engine.ResolveUsable(ctx, id, false)
	if err != nil {
		return nil, err
	}
	block, err := d.mountedVolume(v, path)
	if err != nil {
		return nil, err
	}
	// A zero tag left by an expand interrupted after its lvextend (the LV already has the
	// requested size): ExpandHeld zeroes the added range before the filesystem may grow
	// onto it. Growing first would let the next NodeStage zero the grown filesystem's tail.
	if size.Required > v.Size || v.Zeroing {
		if v, err = d.engine.ExpandHeld(ctx, id, size); err != nil {
			return nil, err
		}
	}
	if !block && req.GetVolumeCapability().GetBlock() == nil {
		failpoint.Hit(failpoint.ExpandBeforeFSGrow)
		if err := d.fs.resize(ctx, v.DevicePath(), path); err != nil {
			return nil, err
		}
		klog.FromContext(ctx).Info("Filesystem grown", "volumeID", id, "bytes", v.Size, "path", path)
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: int64(v.Size)}, nil
}

func volumeHealthEntries(conds []volume.Condition) []*csi.VolumeHealth_VolumeHealthEntry {
	var out []*csi.VolumeHealth_VolumeHealthEntry
	for _, c := range conds {
		st := csi.VolumeHealthErrorType_DEGRADED
		if c.Unreachable {
			st = csi.VolumeHealthErrorType_INACCESSIBLE
		}
		out = append(out, &csi.VolumeHealth_VolumeHealthEntry{Status: st, Reason: c.Reason, Message: c.Message})
	}
	return out
}

// NodeGetVolumeHealth reports LV presence and identity, its VG's PVs and its thin pool.
func (d *Driver) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (_ *csi.NodeGetVolumeHealthResponse, err error) {
	defer func() { err = toStatus(err) }()
	if req.GetVolumeId() == "" {
		return nil, invalid("volume_id missing")
	}
	conds, err := d.engine.VolumeHealth(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	// The staging mount is always read-write; read-only there means the kernel remounted
	// the filesystem after an error (ext4 errors=remount-ro, an xfs shutdown).
	if staging := req.GetStagingTargetPath(); staging != "" {
		if mis, err := d.host.MountInfo(); err == nil {
			if mi := mountAt(mis, staging); mi != nil && (slices.Contains(mi.MountOptions, "ro") || slices.Contains(mi.SuperOptions, "ro")) {
				conds = append(conds, volume.Condition{Reason: "FilesystemReadOnly", Unreachable: true,
					Message: fmt.Sprintf("the filesystem staged at %s is mounted read-only (remounted after an error?)", staging)})
			}
		}
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
		VolumeId:       req.GetVolumeId(),
		HealthStatuses: volumeHealthEntries(conds),
	}}, nil
}

// NodeGetStorageHealth reports each device class's adverse conditions.
func (d *Driver) NodeGetStorageHealth(ctx context.Context, _ *csi.NodeGetStorageHealthRequest) (*csi.NodeGetStorageHealthResponse, error) {
	out := &csi.NodeGetStorageHealthResponse{}
	for _, c := range d.engine.Classes() {
		for _, cond := range d.engine.ClassHealth(ctx, c) {
			st := csi.StorageHealthErrorType_STORAGE_DEGRADED
			if cond.Unreachable {
				st = csi.StorageHealthErrorType_STORAGE_UNREACHABLE
			}
			out.BackendHealth = append(out.BackendHealth, &csi.NodeGetStorageHealthResponse_StorageBackendHealth{
				Status: st, Reason: cond.Reason, Message: fmt.Sprintf("device class %s: %s", c.Name, cond.Message),
			})
		}
	}
	return out, nil
}
