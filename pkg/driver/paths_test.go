package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/volume"
)

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// pathFixture: a driver with one thin volume whose device /dev/vg-thin/<lv> is 253:3.
type pathFixture struct {
	d   *Driver
	h   *fakeHost
	l   *memLVM
	id  string
	pid volume.ID
}

func newPathFixture(t *testing.T) *pathFixture {
	t.Helper()
	d, l, h := newEngineDriver(t)
	resp, err := d.CreateVolume(context.Background(), createReq("pvc-paths", map[string]string{ParamDeviceClass: "thin"}))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	pid, err := volume.ParseID(id, volume.KindVolume)
	if err != nil {
		t.Fatal(err)
	}
	h.dm = map[string]string{"253:3": pid.DMUUID(), "253:9": "LVM-someoneelsesvolumegroupanditslv"}
	h.devs = map[string][2]uint32{"/dev/vg-thin/" + pid.LVName: {253, 3}}
	h.files = map[string]Target{}
	return &pathFixture{d: d, h: h, l: l, id: id, pid: pid}
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("%s = %v, want %s containing %q", what, err, code, msg)
	}
}

// Paths that are not absolute and clean are refused before anything looks at the host.
func TestNodePathsMustBeAbsoluteAndClean(t *testing.T) {
	f := newPathFixture(t)
	ctx := context.Background()
	bad := []string{"relative/target", "/var/lib/kubelet/../../etc", "/var/lib/kubelet/pods/", "/a//b", "/a/./b", "."}
	for _, p := range bad {
		calls, lvmCalls := len(f.h.calls), len(f.l.calls)
		errs := map[string]error{}
		_, errs["NodeStageVolume"] = f.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: f.id, StagingTargetPath: p, VolumeCapability: mountCap()[0]})
		_, errs["NodePublishVolume target"] = f.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: f.id, StagingTargetPath: "/staging", TargetPath: p, VolumeCapability: mountCap()[0]})
		_, errs["NodePublishVolume staging"] = f.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: f.id, StagingTargetPath: p, TargetPath: "/target", VolumeCapability: mountCap()[0]})
		_, errs["NodeUnpublishVolume"] = f.d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: p})
		_, errs["NodeUnstageVolume"] = f.d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: f.id, StagingTargetPath: p})
		_, errs["NodeGetVolumeStats"] = f.d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: f.id, VolumePath: p})
		_, errs["NodeExpandVolume"] = f.d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: f.id, VolumePath: p})
		for rpc, err := range errs {
			code := codes.InvalidArgument
			if rpc == "NodeGetVolumeStats" || rpc == "NodeExpandVolume" {
				code = codes.NotFound // the spec's and csi-sanity's code for "not at that path"
			}
			wantCode(t, rpc+" "+p, err, code, "path")
		}
		if len(f.h.calls) != calls || len(f.l.calls) != lvmCalls {
			t.Errorf("path %q: host calls %v, LVM calls %v", p, f.h.calls[calls:], f.l.calls[lvmCalls:])
		}
	}
}

// Nothing is mounted over a path that holds data; staging refuses before any probe or mkfs
// (the fixture has no prober: reaching it would panic).
func TestNodeNeverMountsOverData(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		stage bool
		block bool
		at    Target
		want  string
	}{
		{"stage over a directory with entries", true, false, Target{Kind: TargetOther, What: "a directory with entries"}, "is a directory with entries, not absent or an empty directory"},
		{"stage through a symlink to /etc", true, false, Target{Path: "/etc", Kind: TargetOther, What: "a directory with entries"}, "/etc is a directory with entries"},
		{"stage over a file", true, false, Target{Kind: TargetOther, What: "a 12-byte regular file"}, "a 12-byte regular file"},
		{"publish over a directory with entries", false, false, Target{Kind: TargetOther, What: "a directory with entries"}, "is a directory with entries, not absent or an empty directory"},
		{"publish mount over an empty file", false, false, Target{Kind: TargetEmptyFile, What: "an empty regular file"}, "not absent or an empty directory"},
		{"publish block over an empty directory", false, true, Target{Kind: TargetEmptyDir, What: "an empty directory"}, "not absent or an empty regular file"},
		{"publish block over a file with data", false, true, Target{Kind: TargetOther, What: "a 4096-byte regular file"}, "a 4096-byte regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPathFixture(t)
			vc := mountCap()[0]
			if tt.block {
				vc = blockCap()
			}
			var err error
			if tt.stage {
				f.h.files["/staging"] = tt.at
				_, err = f.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: f.id, StagingTargetPath: "/staging", VolumeCapability: vc})
			} else {
				f.h.mounts = []mount.MountInfo{{MountPoint: "/staging", Major: 253, Minor: 3}}
				f.h.files["/target"] = tt.at
				_, err = f.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: f.id, StagingTargetPath: "/staging", TargetPath: "/target", VolumeCapability: vc})
			}
			wantCode(t, tt.name, err, codes.FailedPrecondition, tt.want)
			if len(f.h.calls) != 0 {
				t.Errorf("host calls %v, want none", f.h.calls)
			}
		})
	}
}

// Publish onto an absent or empty target mounts at the resolved path.
func TestNodePublishResolvedTarget(t *testing.T) {
	f := newPathFixture(t)
	f.h.mounts = []mount.MountInfo{{MountPoint: "/kubelet/staging", Major: 253, Minor: 3}}
	f.h.files["/var/lib/kubelet/staging"] = Target{Path: "/kubelet/staging", Kind: TargetOther, What: "a directory with entries"}
	f.h.files["/var/lib/kubelet/target"] = Target{Path: "/kubelet/target", Kind: TargetEmptyDir}
	_, err := f.d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: f.id, StagingTargetPath: "/var/lib/kubelet/staging", TargetPath: "/var/lib/kubelet/target", VolumeCapability: mountCap()[0]})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"maketarget /kubelet/target dir=true", "mount /kubelet/staging /kubelet/target  [bind]"}
	if strings.Join(f.h.calls, "; ") != strings.Join(want, "; ") {
		t.Errorf("calls %q, want %q", f.h.calls, want)
	}
}

// Unstage and unpublish unmount only their own volume and remove only what publish makes.
func TestNodeUnmountOnlyOwnVolume(t *testing.T) {
	ctx := context.Background()
	own := mount.MountInfo{MountPoint: "/p", Major: 253, Minor: 3, Source: "/dev/mapper/vg--thin-own"}
	foreign := mount.MountInfo{MountPoint: "/p", Major: 253, Minor: 9, Source: "/dev/mapper/other"}
	plain := mount.MountInfo{MountPoint: "/p", Major: 8, Minor: 1, Source: "/dev/sda1"}
	devBind := mount.MountInfo{MountPoint: "/p", Major: 0, Minor: 5, FsType: "devtmpfs", Source: "udev"}
	tests := []struct {
		name      string
		unstage   bool
		mounts    []mount.MountInfo
		at        *Target // what is at /p once nothing is mounted (nil: an empty directory)
		pDev      *[2]uint32
		code      codes.Code
		msg       string
		calls     []string
		mountsOut int
	}{
		{name: "unpublish own", mounts: []mount.MountInfo{own}, calls: []string{"unmount /p", "remove /p"}},
		{name: "unpublish stacked own", mounts: []mount.MountInfo{own, own}, calls: []string{"unmount /p", "unmount /p", "remove /p"}},
		{name: "unpublish own block", mounts: []mount.MountInfo{devBind}, pDev: &[2]uint32{253, 3}, at: &Target{Kind: TargetEmptyFile}, calls: []string{"unmount /p", "remove /p"}},
		{name: "unpublish foreign dm", mounts: []mount.MountInfo{foreign}, code: codes.FailedPrecondition, msg: "has device 253:9 (/dev/mapper/other, device-mapper UUID LVM-someoneelsesvolumegroupanditslv) mounted, not volume", mountsOut: 1},
		{name: "unpublish foreign disk", mounts: []mount.MountInfo{plain}, code: codes.FailedPrecondition, msg: "not a device-mapper device", mountsOut: 1},
		{name: "unpublish foreign block bind", mounts: []mount.MountInfo{devBind}, pDev: &[2]uint32{8, 1}, code: codes.FailedPrecondition, msg: "has device 8:1", mountsOut: 1},
		{name: "unpublish foreign over own", mounts: []mount.MountInfo{own, foreign}, code: codes.FailedPrecondition, msg: "253:9", mountsOut: 2},
		{name: "unpublish plain file left", at: &Target{Kind: TargetOther, What: "a 5-byte regular file"}, code: codes.FailedPrecondition, msg: "is a 5-byte regular file and no mount of volume"},
		{name: "unpublish directory with entries left", at: &Target{Kind: TargetOther, What: "a directory with entries"}, code: codes.FailedPrecondition, msg: "left alone"},
		{name: "unpublish absent", at: &Target{Kind: TargetAbsent}},
		{name: "unpublish empty dir", calls: []string{"remove /p"}},
		{name: "unstage own", unstage: true, mounts: []mount.MountInfo{own}, calls: []string{"unmount /p"}},
		{name: "unstage foreign", unstage: true, mounts: []mount.MountInfo{foreign}, code: codes.FailedPrecondition, msg: "left alone", mountsOut: 1},
		{name: "unstage not mounted", unstage: true, at: &Target{Kind: TargetOther, What: "a directory with entries"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPathFixture(t)
			f.h.mounts = tt.mounts
			under := Target{Kind: TargetEmptyDir, What: "an empty directory"}
			if tt.at != nil {
				under = *tt.at
			}
			if len(tt.mounts) == 0 {
				f.h.files["/p"] = under
			} else {
				// what is under the mounts shows once they are gone
				f.h.unmounted = func() {
					if mountAt(f.h.mounts, "/p") == nil {
						f.h.files["/p"] = under
					}
				}
			}
			if tt.pDev != nil {
				f.h.devs["/p"] = *tt.pDev
			}
			var err error
			if tt.unstage {
				_, err = f.d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: f.id, StagingTargetPath: "/p"})
			} else {
				_, err = f.d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: "/p"})
			}
			if tt.code == codes.OK {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			} else {
				wantCode(t, tt.name, err, tt.code, tt.msg)
			}
			if strings.Join(f.h.calls, "; ") != strings.Join(tt.calls, "; ") {
				t.Errorf("host calls %q, want %q", f.h.calls, tt.calls)
			}
			if len(f.h.mounts) != tt.mountsOut {
				t.Errorf("%d mounts left (%v), want %d", len(f.h.mounts), f.h.mounts, tt.mountsOut)
			}
		})
	}
}

func TestNodeUnmountBadVolumeID(t *testing.T) {
	f := newPathFixture(t)
	f.h.mounts = []mount.MountInfo{{MountPoint: "/p", Major: 253, Minor: 3}}
	_, err := f.d.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: "not-an-id", StagingTargetPath: "/p"})
	wantCode(t, "NodeUnstageVolume", err, codes.NotFound, "is not a localnvme volume ID")
	_, err = f.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "thin.x.y.z", TargetPath: "/p"})
	wantCode(t, "NodeUnpublishVolume", err, codes.NotFound, "is not a localnvme volume ID")
	if len(f.h.calls) != 0 || len(f.h.mounts) != 1 {
		t.Errorf("calls %v, mounts %v", f.h.calls, f.h.mounts)
	}
}

// With a kubelet directory, a path that resolves outside it is refused before any mount.
func TestNodeKubeletDir(t *testing.T) {
	f := newPathFixture(t)
	f.d.kubeletDir = "/var/lib/kubelet"
	f.h.files["/var/lib/kubelet/pods/x/mount"] = Target{Path: "/etc/x", Kind: TargetAbsent}
	f.h.mounts = []mount.MountInfo{{MountPoint: "/var/lib/kubelet/staging", Major: 253, Minor: 3}}
	_, err := f.d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: f.id, StagingTargetPath: "/var/lib/kubelet/staging", TargetPath: "/var/lib/kubelet/pods/x/mount", VolumeCapability: mountCap()[0]})
	wantCode(t, "NodePublishVolume", err, codes.FailedPrecondition, "resolves to /etc/x, outside kubelet's directory /var/lib/kubelet")
	_, err = f.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: "/var/lib/kubelet/pods/x/mount"})
	wantCode(t, "NodeUnpublishVolume", err, codes.FailedPrecondition, "outside kubelet's directory")
	if len(f.h.calls) != 0 {
		t.Errorf("host calls %v", f.h.calls)
	}
	if !under("/var/lib/kubelet/pods", "/var/lib/kubelet") || under("/var/lib/kubeletx", "/var/lib/kubelet") || !under("/var/lib/kubelet", "/var/lib/kubelet") {
		t.Error("under() is wrong")
	}
}

// One lock per volume: while a node RPC holds the volume, DeleteVolume and a snapshot of it
// wait, and give up with DeadlineExceeded when their deadline passes, without touching LVM.
func TestOneLockPerVolume(t *testing.T) {
	f := newPathFixture(t)
	unlock, err := f.d.engine.LockVolume(context.Background(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	calls := len(f.l.calls)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	_, err = f.d.DeleteVolume(short(), &csi.DeleteVolumeRequest{VolumeId: f.id})
	wantCode(t, "DeleteVolume", err, codes.DeadlineExceeded, "waiting for another operation")
	_, err = f.d.CreateSnapshot(short(), &csi.CreateSnapshotRequest{Name: "snap-locked", SourceVolumeId: f.id})
	wantCode(t, "CreateSnapshot", err, codes.DeadlineExceeded, "waiting for another operation")
	_, err = f.d.NodeUnpublishVolume(short(), &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: "/target"})
	wantCode(t, "NodeUnpublishVolume", err, codes.DeadlineExceeded, "waiting for another operation")
	if len(f.l.calls) != calls || len(f.h.calls) != 0 {
		t.Errorf("LVM calls %v, host calls %v while the volume was locked", f.l.calls[calls:], f.h.calls)
	}
	unlock()
	if _, err := f.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: f.id}); err != nil {
		t.Fatalf("DeleteVolume after unlock: %v", err)
	}
}

func TestRequestNameTooLong(t *testing.T) {
	f := newPathFixture(t)
	calls := len(f.l.calls)
	long := strings.Repeat("n", volume.MaxRequestNameLen+1)
	_, err := f.d.CreateVolume(context.Background(), createReq(long, map[string]string{ParamDeviceClass: "thin"}))
	wantCode(t, "CreateVolume", err, codes.InvalidArgument, "at most 761 fit")
	_, err = f.d.CreateSnapshot(context.Background(), &csi.CreateSnapshotRequest{Name: long, SourceVolumeId: f.id})
	wantCode(t, "CreateSnapshot", err, codes.InvalidArgument, "at most 761 fit")
	if len(f.l.calls) != calls {
		t.Errorf("LVM calls %v", f.l.calls[calls:])
	}
	// the longest name that fits is created, and its tag is valid
	if _, err := f.d.CreateVolume(context.Background(), createReq(long[1:], map[string]string{ParamDeviceClass: "thin"})); err != nil {
		t.Fatalf("CreateVolume with a %d-byte name: %v", len(long)-1, err)
	}
	if tag := volume.Tag(volume.TagName, volume.EncodeName(long[1:])); !lvm.ValidTag(tag) {
		t.Errorf("tag of a %d-byte name is not a valid LVM tag (%d chars)", len(long)-1, len(tag))
	}
}

// DeleteVolume refuses a volume the mount table still shows, a raw block bind included.
func TestDeleteVolumeStillMounted(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mounts []mount.MountInfo
		devs   map[string][2]uint32
		want   string
	}{
		{"staged filesystem", []mount.MountInfo{{MountPoint: "/staging", Major: 253, Minor: 3}}, nil, "still mounted at [/staging]"},
		{"raw block bind", []mount.MountInfo{{MountPoint: "/pods/x/dev", Major: 0, Minor: 5, FsType: "devtmpfs", Source: "udev"}}, map[string][2]uint32{"/pods/x/dev": {253, 3}}, "still mounted at [/pods/x/dev]"},
		{"another volume's mount", []mount.MountInfo{{MountPoint: "/other", Major: 253, Minor: 9}}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newPathFixture(t)
			f.h.mounts = tt.mounts
			for k, v := range tt.devs {
				f.h.devs[k] = v
			}
			_, err := f.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: f.id})
			removed := strings.Contains(strings.Join(f.l.calls, ";"), "lvremove")
			if tt.want == "" {
				if err != nil || !removed {
					t.Fatalf("DeleteVolume = %v, removed %v; want deleted", err, removed)
				}
				return
			}
			wantCode(t, "DeleteVolume", err, codes.FailedPrecondition, tt.want)
			if removed {
				t.Errorf("the LV was removed: %v", f.l.calls)
			}
		})
	}
}

func TestValidateVolumeCapabilitiesChecksTheVolume(t *testing.T) {
	f := newPathFixture(t)
	ctx := context.Background()
	ext4 := mountCap()
	xfs := []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}
	check := func(what string, caps []*csi.VolumeCapability, params map[string]string, wantMsg string) {
		t.Helper()
		r, err := f.d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: f.id, VolumeCapabilities: caps, Parameters: params})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		switch {
		case wantMsg == "" && r.GetConfirmed() == nil:
			t.Errorf("%s: not confirmed: %s", what, r.GetMessage())
		case wantMsg != "" && (r.GetConfirmed() != nil || !strings.Contains(r.GetMessage(), wantMsg)):
			t.Errorf("%s: confirmed %v, message %q; want %q", what, r.GetConfirmed() != nil, r.GetMessage(), wantMsg)
		}
	}
	check("unformatted, ext4", ext4, nil, "")
	check("unformatted, xfs", xfs, nil, "")
	check("its class", ext4, map[string]string{ParamDeviceClass: "thin"}, "")
	check("another class", ext4, map[string]string{ParamDeviceClass: "fast"}, "is in device class thin, the parameters ask for fast")
	check("a typo in a parameter", ext4, map[string]string{"localnvme.io/on-node-los": "keep"}, "unknown parameter")
	// record ext4 on the LV, as staging does
	lv := f.l.rep.LVByName("vg-thin", f.pid.LVName)
	lv.Tags = append(lv.Tags, volume.Tag(volume.TagFSType, "ext4"), volume.Tag(volume.TagFSUUID, "u-1"))
	check("formatted ext4, ext4", ext4, nil, "")
	check("formatted ext4, xfs", xfs, nil, "holds a ext4 filesystem, the capability asks for xfs")
}

func TestTimedOutExecIsUnavailable(t *testing.T) {
	err := fmt.Errorf("reading LVM state: %w", &lvm.Error{Args: []string{"fullreport"}, Kind: lvm.ErrTimeout})
	if c := status.Code(toStatus(err)); c != codes.Unavailable {
		t.Errorf("timed-out lvm: %s, want Unavailable", c)
	}
	err = fmt.Errorf("reading LVM state: %w", &lvm.Error{Args: []string{"fullreport"}, Kind: context.DeadlineExceeded})
	if c := status.Code(toStatus(err)); c != codes.DeadlineExceeded {
		t.Errorf("lvm past the caller's deadline: %s, want DeadlineExceeded", c)
	}
	// staging's wrap of a blkid killed at its limit
	err = fmt.Errorf("probing /dev/vg/lv for a filesystem failed, refusing to format it: %w", &disk.BlkidError{Device: "/dev/vg/lv", ExitCode: -1, TimedOut: true, Err: errors.New("killed after 2m0s")})
	if c := status.Code(toStatus(err)); c != codes.Unavailable {
		t.Errorf("timed-out blkid: %s, want Unavailable", c)
	}
}
