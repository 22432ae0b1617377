//go:build vmtest

package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRefusesNonEmptyDrives: a drive holding a filesystem and one holding a partition
// table are refused as class members, with the reason, and stay byte-for-byte unchanged.
func TestRefusesNonEmptyDrives(t *testing.T) {
	requireVM(t)
	withFS := namespaceBySerial(t, serialSpare0)
	withPT := namespaceBySerial(t, serialSpare1)
	run(t, "mkfs.ext4", "-q", "-F", withFS.DevPath)
	run(t, "sh", "-c", "echo 'label: gpt' | sfdisk -q "+withPT.DevPath)
	before := map[string]string{withFS.DevPath: sha256Device(t, withFS.DevPath), withPT.DevPath: sha256Device(t, withPT.DevPath)}

	cfg := classesConfig(t, refusedSparesClasses())
	n, _, conn := startNode(t, cfg)

	want := map[string]string{"has-fs": `signature: blkid -p found TYPE="ext4"`, "has-pt": "partition-table"}
	for _, c := range n.Engine.Classes() {
		switch c.Name {
		case "thick", "thin":
			if !c.Ready {
				t.Errorf("class %s should be ready: %v", c.Name, c.Problems)
			}
		default:
			msg := strings.Join(c.Problems, "; ")
			t.Logf("class %s refused: %s", c.Name, msg)
			if c.Ready {
				t.Errorf("class %s was built on a non-empty drive", c.Name)
			} else if !strings.Contains(msg, want[c.Name]) {
				t.Errorf("class %s refusal %q does not name %q", c.Name, msg, want[c.Name])
			}
		}
	}
	// Provisioning in a refused class is refused too, with a precise code.
	_, err := csi.NewControllerClient(conn).CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name:               "refused-class-volume",
		Parameters:         map[string]string{"localnvme.io/device-class": "has-fs"},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)},
	})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("CreateVolume in a refused class: got %v, want Unavailable", err)
	}
	rep, err := n.LVM.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, pv := range rep.PVs {
		if pv.Name == withFS.DevPath || pv.Name == withPT.DevPath {
			t.Errorf("refused drive %s became an LVM PV", pv.Name)
		}
	}
	for dev, h := range before {
		if got := sha256Device(t, dev); got != h {
			t.Errorf("refused drive %s changed: sha256 %s → %s", dev, h, got)
		} else {
			t.Logf("refused drive %s unchanged (sha256 %s…)", dev, h[:16])
		}
	}
}

// TestStageRefusesRecreatedLV: a volume whose LV was removed and re-created under the same
// name is refused at NodeStage with FailedPrecondition, and nothing is formatted. A volume
// whose recorded filesystem vanished is refused too and not formatted again.
func TestStageRefusesRecreatedLV(t *testing.T) {
	_, _, conn := startNode(t, classesConfig(t, ""))
	ctl, nodeC := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	create := func(name string) *csi.Volume {
		resp, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: 64 << 20},
			Parameters:         map[string]string{"localnvme.io/device-class": "thick"},
			VolumeCapabilities: []*csi.VolumeCapability{capy},
		})
		if err != nil {
			t.Fatalf("CreateVolume %s: %v", name, err)
		}
		return resp.GetVolume()
	}
	staging := filepath.Join(t.TempDir(), "staging")

	// 1. Removed and re-created under the same name.
	vol := create("recreated-lv")
	parts := strings.Split(vol.GetVolumeId(), ".")
	lvPath := "/dev/lnv-thick/" + parts[2]
	run(t, "lvm", "lvremove", "-f", "lnv-thick/"+parts[2])
	run(t, "lvm", "lvcreate", "-y", "-L", "64m", "-i", "2", "-n", parts[2], "lnv-thick")
	_, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: capy})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("NodeStage of a re-created LV: got %v, want FailedPrecondition", err)
	}
	t.Logf("refused as expected: %v", status.Convert(err).Message())
	if !strings.Contains(status.Convert(err).Message(), "re-created") {
		t.Errorf("message does not say what differs: %s", status.Convert(err).Message())
	}
	if typ := blkidType(t, lvPath); typ != "" {
		t.Errorf("the re-created LV was formatted: blkid finds %s", typ)
	}
	if _, err := os.Stat(staging); err == nil {
		if out := run(t, "cat", "/proc/self/mountinfo"); strings.Contains(out, staging) {
			t.Errorf("staging path was mounted")
		}
	}
	run(t, "lvm", "lvremove", "-f", "lnv-thick/"+parts[2])

	// 2. Formatted once, then the filesystem vanished: refused, never re-formatted.
	vol = create("wiped-fs")
	if _, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: capy}); err != nil {
		t.Fatalf("first NodeStage: %v", err)
	}
	if _, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging}); err != nil {
		t.Fatalf("NodeUnstage: %v", err)
	}
	dev := "/dev/lnv-thick/" + strings.Split(vol.GetVolumeId(), ".")[2]
	if typ := blkidType(t, dev); typ != "ext4" {
		t.Fatalf("after staging, %s holds %q, want ext4", dev, typ)
	}
	run(t, "wipefs", "-q", "-a", dev)
	_, err = nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: capy})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("NodeStage after the filesystem vanished: got %v, want FailedPrecondition", err)
	}
	t.Logf("refused as expected: %v", status.Convert(err).Message())
	if typ := blkidType(t, dev); typ != "" {
		t.Errorf("the wiped volume was formatted again: blkid finds %s", typ)
	}
	if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Errorf("DeleteVolume: %v", err)
	}
}
