package driver

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/volume"
)

// zeroLVM is memLVM with DeleteTags (the zeroing's tag removal).
type zeroLVM struct{ *memLVM }

func (z zeroLVM) DeleteTags(ctx context.Context, vg, name string, tags []string) error {
	return z.ChangeTags(ctx, vg, name, nil, tags)
}

type recordingBlockIO struct{ zeroed []string }

func (b *recordingBlockIO) Copy(context.Context, string, string, uint64) error { return nil }
func (b *recordingBlockIO) Zero(_ context.Context, dev string, offset, length uint64) error {
	b.zeroed = append(b.zeroed, fmt.Sprintf("%s %d+%d", dev, offset, length))
	return nil
}

// TestNodeExpandFinishesAnInterruptedZeroing: an expand killed after its lvextend and
// before it removed lnv.zero leaves an LV that already has the requested size. The retried
// NodeExpandVolume must zero the added range (and remove the tag) before anything can grow
// onto it; skipping the engine because the size is reached would let the filesystem grow
// there and the next NodeStage zero it.
func TestNodeExpandFinishesAnInterruptedZeroing(t *testing.T) {
	cfg, err := config.Parse([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	l := zeroLVM{newMemLVM()}
	bio := &recordingBlockIO{}
	eng := volume.New(l, oneDisk{}, bio, cfg)
	eng.Setup(context.Background())
	h := &fakeHost{}
	d, err := New(Options{NodeID: "n1", Version: "v1", Mode: ModeNode, Engine: eng, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := createReq("pvc-1", map[string]string{ParamDeviceClass: "thin"})
	req.VolumeCapabilities = []*csi.VolumeCapability{blockCap()}
	resp, err := d.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	pid, _ := volume.ParseID(id, volume.KindVolume)
	lv := l.rep.LVByName("vg-thin", pid.LVName)
	// the state the crash leaves: grown to 128 MiB, lnv.zero=<old size> still set
	lv.Size = 128 << 20
	lv.Tags = append(slices.Clone(lv.Tags), volume.Tag(volume.TagZero, fmt.Sprint(64<<20)))
	dev := "/dev/vg-thin/" + pid.LVName
	h.devs = map[string][2]uint32{dev: {253, 3}, "/target": {253, 3}}
	h.dm = map[string]string{"253:3": pid.DMUUID()}

	exp := &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: "/target", CapacityRange: &csi.CapacityRange{RequiredBytes: 128 << 20}, VolumeCapability: blockCap()}
	if _, err := d.NodeExpandVolume(ctx, exp); err != nil {
		t.Fatalf("retried NodeExpandVolume: %v", err)
	}
	if want := []string{fmt.Sprintf("%s %d+%d", dev, 64<<20, 64<<20)}; !slices.Equal(bio.zeroed, want) {
		t.Errorf("zeroed %v, want %v", bio.zeroed, want)
	}
	if _, ok := l.rep.LVByName("vg-thin", pid.LVName).Tag(volume.TagZero); ok {
		t.Errorf("lnv.zero still set: %v", l.rep.LVByName("vg-thin", pid.LVName).Tags)
	}
	// Once finished, a repeat has nothing to zero.
	if _, err := d.NodeExpandVolume(ctx, exp); err != nil || len(bio.zeroed) != 1 {
		t.Errorf("repeated NodeExpandVolume: %v, zeroed %v", err, bio.zeroed)
	}
}
