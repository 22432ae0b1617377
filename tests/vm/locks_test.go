//go:build vmtest

package vm

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/localnvme/localnvme/pkg/volume"
)

// TestOneLockPerVolume: on real devices, every operation on a volume waits for the one lock
// of that volume — node RPCs and the engine's snapshot and delete alike — while another
// volume's RPCs go on; a caller whose deadline passes while waiting gets DeadlineExceeded
// and its operation never runs later; and a snapshot racing a first stage (mkfs) sees the
// volume either before the format or after it, never in the middle (e2fsck -fn clean).
func TestOneLockPerVolume(t *testing.T) {
	n, _, conn := startNode(t, classesConfig(t, ""))
	ctl, nodeC := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	create := func(name string, size int64) string { return createVolume(t, ctl, name, "thick", size, capy) }
	lvOf := func(id string, kind volume.Kind) string {
		t.Helper()
		pid, err := volume.ParseID(id, kind)
		if err != nil {
			t.Fatalf("parsing %s: %v", id, err)
		}
		return pid.LVName
	}
	lvExists := func(lv string) bool {
		return exec.Command("lvs", "--noheadings", "lnv-thick/"+lv).Run() == nil
	}
	a := create("lock-a", 512<<20)
	devA := "/dev/lnv-thick/" + lvOf(a, volume.KindVolume)
	dir := t.TempDir()
	stageA := filepath.Join(dir, "stage-a")

	unlock, err := n.Engine.LockVolume(ctx, a)
	if err != nil {
		t.Fatalf("taking a's lock: %v", err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()

	// 1. Callers with a deadline give up waiting, with DeadlineExceeded.
	short := func(what string, call func(context.Context) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		err := call(cctx)
		took := time.Since(start)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s while a's lock is held: got %v, want DeadlineExceeded", what, err)
		}
		if took > 20*time.Second {
			t.Errorf("%s took %s to give up, with a 3 s deadline", what, took)
		}
		t.Logf("%s gave up after %s: %v", what, took.Round(time.Millisecond), err)
	}
	short("NodeStageVolume", func(c context.Context) error {
		_, err := nodeC.NodeStageVolume(c, &csi.NodeStageVolumeRequest{VolumeId: a, StagingTargetPath: stageA, VolumeCapability: capy})
		return err
	})
	short("CreateSnapshot", func(c context.Context) error {
		_, err := ctl.CreateSnapshot(c, &csi.CreateSnapshotRequest{Name: "lock-late-snap", SourceVolumeId: a})
		return err
	})
	short("DeleteVolume", func(c context.Context) error {
		_, err := ctl.DeleteVolume(c, &csi.DeleteVolumeRequest{VolumeId: a})
		return err
	})
	short("ControllerExpandVolume", func(c context.Context) error {
		_, err := ctl.ControllerExpandVolume(c, &csi.ControllerExpandVolumeRequest{VolumeId: a, CapacityRange: &csi.CapacityRange{RequiredBytes: 768 << 20}})
		return err
	})

	// 2. Another volume is not held up by a's lock: create, stage, publish, stats, delete.
	b := create("lock-b", 64<<20)
	stageB, targetB := filepath.Join(dir, "stage-b"), filepath.Join(dir, "target-b")
	bctx, bcancel := context.WithTimeout(ctx, 3*time.Minute)
	if _, err := nodeC.NodeStageVolume(bctx, &csi.NodeStageVolumeRequest{VolumeId: b, StagingTargetPath: stageB, VolumeCapability: capy}); err != nil {
		t.Errorf("NodeStageVolume b while a is locked: %v", err)
	} else if _, err := nodeC.NodePublishVolume(bctx, &csi.NodePublishVolumeRequest{VolumeId: b, StagingTargetPath: stageB, TargetPath: targetB, VolumeCapability: capy}); err != nil {
		t.Errorf("NodePublishVolume b while a is locked: %v", err)
	} else if _, err := nodeC.NodeGetVolumeStats(bctx, &csi.NodeGetVolumeStatsRequest{VolumeId: b, VolumePath: targetB}); err != nil {
		t.Errorf("NodeGetVolumeStats b while a is locked: %v", err)
	} else {
		_, err1 := nodeC.NodeUnpublishVolume(bctx, &csi.NodeUnpublishVolumeRequest{VolumeId: b, TargetPath: targetB})
		_, err2 := nodeC.NodeUnstageVolume(bctx, &csi.NodeUnstageVolumeRequest{VolumeId: b, StagingTargetPath: stageB})
		if err1 != nil || err2 != nil {
			t.Errorf("unpublish/unstage b while a is locked: %v, %v", err1, err2)
		}
	}
	if _, err := ctl.DeleteVolume(bctx, &csi.DeleteVolumeRequest{VolumeId: b}); err != nil {
		t.Errorf("DeleteVolume b while a is locked: %v", err)
	}
	bcancel()

	// 3. A first stage (blkid + mkfs) and a snapshot, both waiting on a's lock.
	type result struct {
		what string
		err  error
		at   time.Time
		snap string
	}
	results := make(chan result, 2)
	go func() {
		_, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: a, StagingTargetPath: stageA, VolumeCapability: capy})
		results <- result{what: "stage", err: err, at: time.Now()}
	}()
	go func() {
		resp, err := ctl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "lock-snap", SourceVolumeId: a})
		results <- result{what: "snapshot", err: err, at: time.Now(), snap: resp.GetSnapshot().GetSnapshotId()}
	}()
	time.Sleep(3 * time.Second)
	select {
	case r := <-results:
		t.Fatalf("%s of a returned while a's lock was held: %v", r.what, r.err)
	default:
	}
	if typ := blkidType(t, devA); typ != "" {
		t.Errorf("a was formatted (%s) while its lock was held", typ)
	}
	released := time.Now()
	unlock()
	locked = false

	var snap string
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("%s of a after its lock was released: %v", r.what, r.err)
			}
			if r.at.Before(released) {
				t.Errorf("%s of a finished before its lock was released", r.what)
			}
			if r.snap != "" {
				snap = r.snap
			}
			t.Logf("%s of a done %s after the lock was released", r.what, r.at.Sub(released).Round(time.Millisecond))
		case <-time.After(5 * time.Minute):
			t.Fatal("stage and snapshot of a did not finish within 5 min of the lock's release")
		}
	}

	// 4. Nothing that gave up ran later: a is still there, staged, unexpanded, and the
	// snapshot whose caller gave up was never taken.
	time.Sleep(3 * time.Second)
	if !lvExists(lvOf(a, volume.KindVolume)) {
		t.Errorf("a's LV is gone: the DeleteVolume whose deadline passed ran later")
	}
	if lvExists(volume.LVName(volume.KindSnapshot, "lock-late-snap")) {
		t.Errorf("snapshot lock-late-snap exists: the CreateSnapshot whose deadline passed ran later")
	}
	if out, err := exec.Command("blockdev", "--getsize64", devA).Output(); err != nil {
		t.Errorf("blockdev %s: %v", devA, err)
	} else if strings.TrimSpace(string(out)) != "536870912" {
		t.Errorf("a is %s bytes, want 536870912: the expand whose deadline passed ran later", strings.TrimSpace(string(out)))
	}
	if typ := blkidType(t, devA); typ != "ext4" {
		t.Errorf("a after its stage: blkid TYPE %q, want ext4", typ)
	}

	// 5. The snapshot holds a before its format or after it, never a half-made filesystem.
	if snap == "" {
		t.Fatal("no snapshot ID")
	}
	snapDev := "/dev/lnv-thick/" + lvOf(snap, volume.KindSnapshot)
	switch typ := blkidType(t, snapDev); typ {
	case "":
		t.Logf("the snapshot was taken before the format: %s is blank", snapDev)
	case "ext4":
		// mke2fs writes the superblock last: a snapshot taken mid-format has none.
		uuid := func(dev string) string {
			out, _ := exec.Command("blkid", "-p", "-s", "UUID", "-o", "value", dev).Output()
			return strings.TrimSpace(string(out))
		}
		if ua, us := uuid(devA), uuid(snapDev); ua == "" || ua != us {
			t.Errorf("the snapshot's ext4 UUID %q differs from a's %q", us, ua)
		} else if out, err := exec.Command("dumpe2fs", "-h", snapDev).CombinedOutput(); err != nil {
			t.Errorf("the snapshot's ext4 superblock does not read: dumpe2fs -h %s: %v\n%s", snapDev, err, out)
		} else {
			t.Logf("the snapshot was taken after the format: ext4 %s, superblock reads", us)
		}
	default:
		t.Errorf("the snapshot holds %q, want blank or ext4", typ)
	}

	if _, err := ctl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap}); err != nil {
		t.Errorf("DeleteSnapshot: %v", err)
	}
	if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: a, StagingTargetPath: stageA}); err != nil {
		t.Errorf("NodeUnstageVolume a: %v", err)
	}
	if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: a}); err != nil {
		t.Errorf("DeleteVolume a: %v", err)
	}
}
