//go:build vmtest

package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestNodeTouchesOnlyItsOwnVolume: on real mounts, unstage and unpublish of one volume's ID
// leave another volume's mounts, a foreign mount and a plain file alone; stage and publish
// never mount over a path that holds data (through a symlink either), and a path with ".."
// is refused before anything happens.
func TestNodeTouchesOnlyItsOwnVolume(t *testing.T) {
	_, _, conn := startNode(t, classesConfig(t, ""))
	ctl, nodeC := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	create := func(name string) string { return createVolume(t, ctl, name, "thick", 64<<20, capy) }
	refused := func(what string, err error, code codes.Code, msg string) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != code || !strings.Contains(st.Message(), msg) {
			t.Errorf("%s: got %v, want %s containing %q", what, err, code, msg)
			return
		}
		t.Logf("%s: refused as expected: %s", what, st.Message())
	}
	readFile := func(path, want string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", path, b, err, want)
		}
	}
	a, b := create("own-a"), create("own-b")
	dir := t.TempDir()
	stageA, targetA := filepath.Join(dir, "stage-a"), filepath.Join(dir, "target-a")
	if _, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: a, StagingTargetPath: stageA, VolumeCapability: capy}); err != nil {
		t.Fatalf("NodeStageVolume a: %v", err)
	}
	if _, err := nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: a, StagingTargetPath: stageA, TargetPath: targetA, VolumeCapability: capy}); err != nil {
		t.Fatalf("NodePublishVolume a: %v", err)
	}
	if err := os.WriteFile(filepath.Join(targetA, "a-data"), []byte("volume a"), 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. b's ID on a's mounts.
	_, err := nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: b, TargetPath: targetA})
	refused("NodeUnpublishVolume of b at a's target", err, codes.FailedPrecondition, "not volume "+b)
	_, err = nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: b, StagingTargetPath: stageA})
	refused("NodeUnstageVolume of b at a's staging path", err, codes.FailedPrecondition, "not volume "+b)
	if !mounted(t, targetA) || !mounted(t, stageA) {
		t.Errorf("a is no longer mounted: target %v, staging %v", mounted(t, targetA), mounted(t, stageA))
	}
	readFile(filepath.Join(targetA, "a-data"), "volume a")

	// 2. A foreign mount (tmpfs) at a path.
	foreign := filepath.Join(dir, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", foreign)
	defer func() { _ = exec.Command("umount", foreign).Run() }()
	if err := os.WriteFile(filepath.Join(foreign, "data"), []byte("foreign"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: a, TargetPath: foreign})
	refused("NodeUnpublishVolume at a tmpfs", err, codes.FailedPrecondition, "not a device-mapper device")
	_, err = nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: a, StagingTargetPath: foreign})
	refused("NodeUnstageVolume at a tmpfs", err, codes.FailedPrecondition, "left alone")
	if !mounted(t, foreign) {
		t.Errorf("the foreign tmpfs was unmounted")
	}
	readFile(filepath.Join(foreign, "data"), "foreign")

	// 3. A plain file with data at a target path.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: b, TargetPath: plain})
	refused("NodeUnpublishVolume at a plain file", err, codes.FailedPrecondition, "a 7-byte regular file")
	_, err = nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: a, StagingTargetPath: stageA, TargetPath: plain, VolumeCapability: capy})
	refused("NodePublishVolume onto a plain file", err, codes.FailedPrecondition, "a 7-byte regular file")
	readFile(plain, "keep me")
	if mounted(t, plain) {
		t.Errorf("something was mounted on %s", plain)
	}

	// 4. A directory with entries, and a symlink to /etc: never mounted over; b is not
	// formatted for a staging path it cannot use.
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "to-etc")
	if err := os.Symlink("/etc", link); err != nil {
		t.Fatal(err)
	}
	_, err = nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: a, StagingTargetPath: stageA, TargetPath: full, VolumeCapability: capy})
	refused("NodePublishVolume onto a directory with entries", err, codes.FailedPrecondition, "a directory with entries")
	_, err = nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: a, StagingTargetPath: stageA, TargetPath: link, VolumeCapability: capy})
	refused("NodePublishVolume through a symlink to /etc", err, codes.FailedPrecondition, "/etc is a directory with entries")
	_, err = nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: b, StagingTargetPath: full, VolumeCapability: capy})
	refused("NodeStageVolume of b onto a directory with entries", err, codes.FailedPrecondition, "a directory with entries")
	if mounted(t, full) || mounted(t, "/etc") {
		t.Errorf("something was mounted on %s or /etc", full)
	}
	if typ := blkidType(t, "/dev/lnv-thick/"+strings.Split(b, ".")[2]); typ != "" {
		t.Errorf("b was formatted (%s) although its staging was refused", typ)
	}

	// 5. Traversal and relative paths: refused before anything is looked at.
	_, err = nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: a, StagingTargetPath: stageA, TargetPath: dir + "/x/../target-b", VolumeCapability: capy})
	refused("NodePublishVolume with ..", err, codes.InvalidArgument, "not a clean path")
	_, err = nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: a, StagingTargetPath: "stage-a"})
	refused("NodeUnstageVolume with a relative path", err, codes.InvalidArgument, "not an absolute path")
	if _, err := os.Lstat(filepath.Join(dir, "target-b")); err == nil {
		t.Errorf("%s/target-b was created", dir)
	}

	// 6. a's own calls still work: its target goes, its staging directory stays.
	if _, err := nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: a, TargetPath: targetA}); err != nil {
		t.Fatalf("NodeUnpublishVolume a: %v", err)
	}
	if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: a, StagingTargetPath: stageA}); err != nil {
		t.Fatalf("NodeUnstageVolume a: %v", err)
	}
	if mounted(t, targetA) || mounted(t, stageA) {
		t.Errorf("a still mounted after its own unpublish/unstage")
	}
	if _, err := os.Lstat(targetA); !os.IsNotExist(err) {
		t.Errorf("target %s not removed: %v", targetA, err)
	}
	if fi, err := os.Stat(stageA); err != nil || !fi.IsDir() {
		t.Errorf("staging directory %s: %v", stageA, err)
	}
	for _, id := range []string{a, b} {
		if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Errorf("DeleteVolume %s: %v", id, err)
		}
	}
}
