package driver

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

const stagedUUID = "0b9e7f02-1c1e-4a39-9b4e-4f4c2c1d7a11"

// withMode returns a copy of vc with another access mode.
func withMode(vc *csi.VolumeCapability, m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{AccessType: vc.GetAccessType(), AccessMode: &csi.VolumeCapability_AccessMode{Mode: m}}
}

// stageForPublish stages the fixture's volume at /staging: a recorded ext4 filesystem
// mounted, or (block) nothing; then forgets the calls.
func (f *nodeFixture) stageForPublish(t *testing.T, block bool) *csi.VolumeCapability {
	t.Helper()
	vc := fsCap("ext4")
	if block {
		vc = blockCap()
	} else {
		f.addTags("lnv.fstype=ext4", "lnv.fsuuid="+stagedUUID)
		f.x.script["blkid"] = []execResult{fsSig("ext4", stagedUUID)}
	}
	if err := f.stage(vc); err != nil {
		t.Fatalf("NodeStageVolume: %v", err)
	}
	f.reset()
	return vc
}

func (f *nodeFixture) publish(target string, vc *csi.VolumeCapability, readonly bool) error {
	_, err := f.d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: f.id, StagingTargetPath: "/staging", TargetPath: target, VolumeCapability: vc, Readonly: readonly})
	return err
}

func (f *nodeFixture) unpublish(target string) error {
	_, err := f.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: target})
	return err
}

func (f *nodeFixture) unstage() error {
	_, err := f.d.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: f.id, StagingTargetPath: "/staging"})
	return err
}

// publishedHere says whether target shows the volume: its filesystem (253:3) or its
// device node bound onto a file.
func (f *nodeFixture) publishedHere(target string) bool {
	mi := mountAt(f.h.mounts, target)
	if mi == nil {
		return false
	}
	if isDevtmpfs(mi) {
		return f.h.devs[target] == [2]uint32{253, 3}
	}
	return mi.Major == 253 && mi.Minor == 3
}

// A second identical NodePublishVolume succeeds without a second bind mount: filesystem
// (the staging mount bound onto a directory) and block (the device node bound onto a file,
// recognised through the file's device number, since mountinfo shows devtmpfs).
func TestNodePublishIdempotent(t *testing.T) {
	for _, tt := range []struct {
		name  string
		block bool
		ro    bool
		calls []string
	}{
		{"filesystem", false, false, []string{"maketarget /target dir=true", "mount /staging /target  [bind]"}},
		{"filesystem read-only", false, true, []string{"maketarget /target dir=true", "mount /staging /target  [bind ro]"}},
		{"block", true, false, []string{"maketarget /target dir=false", "mount {dev} /target  [bind]"}},
		{"block read-only", true, true, []string{"maketarget /target dir=false", "mount {dev} /target  [bind ro]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			vc := f.stageForPublish(t, tt.block)
			if err := f.publish("/target", vc, tt.ro); err != nil {
				t.Fatalf("NodePublishVolume: %v", err)
			}
			f.wantJournal(t, tt.calls)
			if !f.publishedHere("/target") {
				t.Fatalf("/target does not show the volume: %v", f.h.mounts)
			}
			mounts := len(f.h.mounts)
			f.reset()
			if err := f.publish("/target", vc, tt.ro); err != nil {
				t.Fatalf("second NodePublishVolume: %v", err)
			}
			f.wantJournal(t, nil)
			if len(f.h.mounts) != mounts {
				t.Errorf("mounts %v after the second publish", f.h.mounts)
			}
		})
	}
}

// SINGLE_NODE_SINGLE_WRITER: a publish to a second target is refused while the volume is
// published anywhere else (filesystem bind or device-node bind); the same target again is
// idempotent; SINGLE_NODE_MULTI_WRITER lets a second target through.
func TestNodePublishSingleWriter(t *testing.T) {
	for _, block := range []bool{false, true} {
		name := "filesystem"
		if block {
			name = "block"
		}
		t.Run(name, func(t *testing.T) {
			f := newNodeFixture(t)
			vc := f.stageForPublish(t, block)
			rwop := withMode(vc, csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
			multi := withMode(vc, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)
			if err := f.publish("/t1", rwop, false); err != nil {
				t.Fatalf("first publish: %v", err)
			}
			f.reset()
			if err := f.publish("/t1", rwop, false); err != nil {
				t.Errorf("same target again: %v", err)
			}
			err := f.publish("/t2", rwop, false)
			wantCode(t, "publish to a second target", err, codes.FailedPrecondition,
				f.expand("volume {id} has access mode SINGLE_NODE_SINGLE_WRITER and is already published at [/t1]"))
			f.wantJournal(t, nil)
			if f.publishedHere("/t2") {
				t.Error("/t2 was mounted")
			}
			// multi-writer is let through; a single-writer publish then names both
			if err := f.publish("/t2", multi, false); err != nil {
				t.Fatalf("SINGLE_NODE_MULTI_WRITER publish: %v", err)
			}
			f.reset()
			err = f.publish("/t3", rwop, false)
			wantCode(t, "publish to a third target", err, codes.FailedPrecondition, "is already published at [/t1 /t2]")
			f.wantJournal(t, nil)
		})
	}
}

// A filesystem publish needs this volume staged at the staging path.
func TestNodePublishNeedsStaging(t *testing.T) {
	f := newNodeFixture(t)
	err := f.publish("/target", fsCap("ext4"), false)
	wantCode(t, "publish before stage", err, codes.FailedPrecondition, f.expand("volume {id} is not staged at /staging"))
	f.wantJournal(t, nil)
}

// Unpublish and unstage answer from the mount table and the volume ID alone, so a
// restarted driver (nothing in memory, no LVM read) undoes what the previous one did; a
// target that is not mounted is removed if publish made it, and an absent one is success.
func TestNodeUnpublishAfterRestart(t *testing.T) {
	for _, tt := range []struct {
		name      string
		block     bool
		published bool // else /target is an empty directory nothing is mounted on
		calls     []string
	}{
		{"filesystem published", false, true, []string{"unmount /target", "remove /target"}},
		{"block published", true, true, []string{"unmount /target", "remove /target"}},
		{"target not mounted", false, false, []string{"remove /target"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			vc := f.stageForPublish(t, tt.block)
			if tt.published {
				if err := f.publish("/target", vc, false); err != nil {
					t.Fatal(err)
				}
			} else {
				f.h.files["/target"] = Target{Kind: TargetEmptyDir, What: "an empty directory"}
			}
			f.restart(t)
			reports := f.l.reports
			if err := f.unpublish("/target"); err != nil {
				t.Fatalf("NodeUnpublishVolume after a restart: %v", err)
			}
			f.wantJournal(t, tt.calls)
			if f.l.reports != reports {
				t.Errorf("unpublish read LVM %d times, want none", f.l.reports-reports)
			}
			if mountAt(f.h.mounts, "/target") != nil || f.h.files["/target"].Kind != TargetAbsent {
				t.Errorf("/target left: mounts %v, files %v", f.h.mounts, f.h.files)
			}
			if _, still := f.h.devs["/target"]; still {
				t.Error("/target still stands for the device")
			}
			// again: nothing there, success
			f.reset()
			if err := f.unpublish("/target"); err != nil {
				t.Errorf("second NodeUnpublishVolume: %v", err)
			}
			f.wantJournal(t, nil)
			// unstage too, after another restart
			f.restart(t)
			reports2 := f.l.reports
			if err := f.unstage(); err != nil {
				t.Fatalf("NodeUnstageVolume after a restart: %v", err)
			}
			if tt.block {
				f.wantJournal(t, nil) // a block volume is not mounted at staging
			} else {
				f.wantJournal(t, []string{"unmount /staging"})
			}
			if f.l.reports != reports2 {
				t.Errorf("unstage read LVM %d times, want none", f.l.reports-reports2)
			}
		})
	}
}

// NodeUnstageVolume is idempotent: unmounted once, then nothing to do; the staging
// directory is kubelet's and stays.
func TestNodeUnstageIdempotent(t *testing.T) {
	f := newNodeFixture(t)
	f.stageForPublish(t, false)
	if err := f.unstage(); err != nil {
		t.Fatal(err)
	}
	f.wantJournal(t, []string{"unmount /staging"})
	for i := 0; i < 2; i++ {
		f.reset()
		if err := f.unstage(); err != nil {
			t.Errorf("unstage %d: %v", i+2, err)
		}
		f.wantJournal(t, nil)
	}
	if f.h.files["/staging"].Kind != TargetEmptyDir {
		t.Errorf("staging directory: %+v, want it left as an empty directory", f.h.files["/staging"])
	}
	// and with the staging directory gone
	delete(f.h.files, "/staging")
	if err := f.unstage(); err != nil {
		t.Errorf("unstage of an absent staging path: %v", err)
	}
	f.wantJournal(t, nil)
}
