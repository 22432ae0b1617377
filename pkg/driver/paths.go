package driver

import (
	"fmt"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/localnvme/localnvme/pkg/volume"
)

// checkPath refuses a staging, target or volume path that is not absolute and clean (no
// "..", ".", "//" or trailing "/"): kubelet never sends one, and a path that is not what it
// looks like must never reach a mount.
func checkPath(field, p string) error {
	switch {
	case !filepath.IsAbs(p):
		return status.Errorf(codes.InvalidArgument, "%s %q is not an absolute path", field, p)
	case filepath.Clean(p) != p:
		return status.Errorf(codes.InvalidArgument, "%s %q is not a clean path (it is %q once cleaned): no \"..\", \".\", repeated or trailing \"/\"", field, p, filepath.Clean(p))
	}
	return nil
}

// checkVolumePath is checkPath for the volume_path of NodeGetVolumeStats and
// NodeExpandVolume, where the CSI spec (and csi-sanity) want NotFound: the volume is not at
// a path that is not absolute and clean.
func checkVolumePath(id, p string) error {
	if err := checkPath("volume_path", p); err != nil {
		return classErrorf(errNotAtPath, "volume %s is not at %s", id, status.Convert(err).Message())
	}
	return nil
}

// parseVolumeID parses a volume ID without touching LVM: unstage and unpublish need only
// the device-mapper UUID it implies.
func parseVolumeID(id string) (volume.ID, error) {
	pid, err := volume.ParseID(id, volume.KindVolume)
	if err != nil {
		return volume.ID{}, classErrorf(errNotVolumeID, "volume %q is not a localnvme volume ID: %w", id, err)
	}
	return pid, nil
}

// inspect resolves a path given by kubelet (through every symlink) and, with
// Options.KubeletDir set, refuses one that resolves outside kubelet's directory.
func (d *Driver) inspect(field, p string) (Target, error) {
	t, err := d.host.Inspect(p)
	if err != nil {
		return Target{}, classErrorf(errHost, "inspecting %s %s: %w", field, p, err)
	}
	if d.kubeletDir != "" && !under(t.Path, d.kubeletDir) {
		return Target{}, classErrorf(errOutsideKubeletDir, "%s %s resolves to %s, outside kubelet's directory %s: refusing to mount or unmount there", field, p, t.Path, d.kubeletDir)
	}
	return t, nil
}

// under reports whether p is dir or lies below it (both clean and absolute).
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// requireEmpty refuses to mount over anything that could hold data: the path must be absent
// (the driver creates it), an empty directory (dir) or an empty regular file (!dir).
func requireEmpty(field string, t Target, dir bool) error {
	switch {
	case t.Kind == TargetAbsent:
		return nil
	case dir && t.Kind == TargetEmptyDir, !dir && t.Kind == TargetEmptyFile:
		return nil
	}
	want := "an empty directory"
	if !dir {
		want = "an empty regular file"
	}
	return classErrorf(errPathOccupied, "%s %s is %s, not absent or %s: refusing to mount over it; remove it if nothing needs it", field, t.Path, t.What, want)
}

// ownMount says whether the mount on top of path is volume id's: its device (for a bind
// mount of a device node, the node's device) has the device-mapper UUID the ID implies.
// what describes the mounted device for a refusal.
func (d *Driver) ownMount(id volume.ID, path string, mi *mount.MountInfo) (ok bool, what string, err error) {
	maj, min := uint32(mi.Major), uint32(mi.Minor)
	if isDevtmpfs(mi) {
		bm, bn, isBlock, err := d.host.DevNumber(path)
		if err != nil {
			return false, "", fmt.Errorf("stat %s: %w", path, err)
		}
		if !isBlock {
			return false, fmt.Sprintf("a %s mount that is not a block device", mi.FsType), nil
		}
		maj, min = bm, bn
	}
	u, err := d.host.DMUUID(maj, min)
	if err != nil {
		return false, "", fmt.Errorf("reading the device-mapper UUID of %d:%d: %w", maj, min, err)
	}
	if u == id.DMUUID() {
		return true, "", nil
	}
	if u == "" {
		return false, fmt.Sprintf("device %d:%d (%s, not a device-mapper device)", maj, min, mi.Source), nil
	}
	return false, fmt.Sprintf("device %d:%d (%s, device-mapper UUID %s)", maj, min, mi.Source, u), nil
}

// unmountOwn unmounts every mount of volume id stacked on path and refuses (leaving it
// mounted) a mount of anything else.
func (d *Driver) unmountOwn(id volume.ID, field, path string) error {
	for i := 0; i < 8; i++ {
		mis, err := d.host.MountInfo()
		if err != nil {
			return classErrorf(errHost, "reading mount table: %w", err)
		}
		mi := mountAt(mis, path)
		if mi == nil {
			return nil
		}
		ok, what, err := d.ownMount(id, path, mi)
		if err != nil {
			return classErrorf(errHost, "%s %s: %w", field, path, err)
		}
		if !ok {
			return classErrorf(errMountConflict, "%s %s has %s mounted, not volume %s (device-mapper UUID %s): left alone; unmount it by hand if it does not belong there", field, path, what, id, id.DMUUID())
		}
		if err := d.host.Unmount(path); err != nil {
			return classErrorf(errHost, "unmounting %s: %w", path, err)
		}
	}
	return classErrorf(errHost, "%s %s is still mounted after 8 unmounts", field, path)
}
