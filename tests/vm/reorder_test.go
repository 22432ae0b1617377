//go:build vmtest

package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/localnvme/localnvme/pkg/disk"
)

// The reorder test spans two VM boots over the same drive images (hack/test-vm.sh runs
// them): phase 1 creates and fills volumes; phase 2 boots with the drives attached in the
// reverse order, so every /dev/nvmeXn1 names a different drive, and checks that the classes
// find their drives by identity and the volumes stage with their data intact.
const reorderState = "reorder.json"

type reorderRecord struct {
	Paths   map[string]string // serial → /dev path in phase 1
	Volumes []reorderVolume
}

type reorderVolume struct {
	ID, FS, SHA256 string
}

func reorderCaps(fs string) *csi.VolumeCapability {
	return mountCap(fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
}

func serialPaths(t *testing.T) map[string]string {
	nss, err := disk.Discoverer{}.List()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, ns := range nss {
		m[ns.Serial] = ns.DevPath
	}
	return m
}

func TestReorderPhase1(t *testing.T) {
	_, _, conn := startNode(t, classesConfig(t, ""))
	ctl, nodeC := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	rec := reorderRecord{Paths: serialPaths(t)}
	for _, c := range []struct{ class, fs string }{{"thick", "ext4"}, {"thin", "xfs"}} {
		vr, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: "reorder-" + c.class, CapacityRange: &csi.CapacityRange{RequiredBytes: 320 << 20},
			Parameters:         map[string]string{"localnvme.io/device-class": c.class},
			VolumeCapabilities: []*csi.VolumeCapability{reorderCaps(c.fs)},
		})
		if err != nil {
			t.Fatal(err)
		}
		id := vr.GetVolume().GetVolumeId()
		stage := filepath.Join(t.TempDir(), "stage")
		if _, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: stage, VolumeCapability: reorderCaps(c.fs)}); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 4<<20)
		for i := range data {
			data[i] = byte(i*7 + len(c.class))
		}
		if err := os.WriteFile(filepath.Join(stage, "data"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		unix.Sync()
		if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: stage}); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		rec.Volumes = append(rec.Volumes, reorderVolume{ID: id, FS: c.fs, SHA256: hex.EncodeToString(sum[:])})
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(filepath.Join("/results", reorderState), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("phase 1: drives %v, %d volumes written", rec.Paths, len(rec.Volumes))
}

func TestReorderPhase2(t *testing.T) {
	requireVM(t)
	b, err := os.ReadFile(filepath.Join("/payload", reorderState))
	if err != nil {
		t.Fatalf("phase 1 state: %v", err)
	}
	var rec reorderRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	now := serialPaths(t)
	moved := 0
	for serial, p := range rec.Paths {
		if now[serial] != p {
			moved++
		}
		t.Logf("drive %s: %s in phase 1, %s now", serial, p, now[serial])
	}
	if moved < 2 {
		t.Fatalf("the drives did not change /dev paths between boots (%d moved): the test proves nothing", moved)
	}
	n, _, conn := startNode(t, classesConfig(t, ""))
	for _, c := range n.Engine.Classes() {
		if !c.Ready {
			t.Fatalf("class %s not ready after reordering: %v", c.Name, c.Problems)
		}
	}
	nodeC := csi.NewNodeClient(conn)
	ctx := context.Background()
	for _, v := range rec.Volumes {
		stage := filepath.Join(t.TempDir(), "stage")
		if _, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.ID, StagingTargetPath: stage, VolumeCapability: reorderCaps(v.FS)}); err != nil {
			t.Fatalf("staging %s after reordering: %v", v.ID, err)
		}
		data, err := os.ReadFile(filepath.Join(stage, "data"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != v.SHA256 {
			t.Errorf("volume %s: data changed across the reboot", v.ID)
		} else {
			t.Logf("volume %s (%s): data intact after reordering", v.ID, v.FS)
		}
		if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.ID, StagingTargetPath: stage}); err != nil {
			t.Fatal(err)
		}
	}
}
