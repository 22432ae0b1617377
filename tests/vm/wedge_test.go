//go:build vmtest

package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/localnvme/localnvme/pkg/node"
)

// TestWedgedVolumeLeavesOthersAnswering: with the lvm and blkid limits shortened, one class's
// volume group is wedged at the LVM level (the test holds its VG lock, as an lvm command
// hung on a device does), and then one volume's LV is wedged at the device level (suspended
// with dmsetup, so reads of it queue). Each time the wedged volume's RPCs come back within the
// limit with Unavailable naming what hung, never formatting it; the other class's volume (and,
// for the device wedge, the same class) keeps answering: stage, publish, stats, create,
// expand, delete, capacity, with its data intact; after the wedge ends everything answers
// again.
func TestWedgedVolumeLeavesOthersAnswering(t *testing.T) {
	const (
		lvmLimit   = 30 * time.Second // one lvm command (default 3 min)
		blkidLimit = 15 * time.Second // one blkid probe (default 2 min)
		slack      = 20 * time.Second // a killed RPC's return past its limit (TCG)
		answers    = lvmLimit / 2     // an RPC that answers, not waits for a kill
	)
	_, sock, _ := startNodeWith(t, node.Options{
		Config: classesConfig(t, ""), LVMCommandTimeout: lvmLimit, BlkidTimeout: blkidLimit,
		ReportMaxAge: time.Millisecond, // every read asks LVM: nothing is answered from before a wedge
	})
	// Every RPC gets a deadline, so a handler that never returns (a process stuck in
	// uninterruptible I/O) fails the test instead of hanging the VM; the cleanups resume the
	// device and release the lock.
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx, cancel := context.WithTimeout(ctx, 3*lvmLimit)
			defer cancel()
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctl, nodeC := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	ext4 := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	xfs := mountCap("xfs", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	block := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
	create := func(name, class string, size int64, capy *csi.VolumeCapability) (string, error) {
		resp, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
			Parameters:         map[string]string{"localnvme.io/device-class": class},
			VolumeCapabilities: []*csi.VolumeCapability{capy},
		})
		return resp.GetVolume().GetVolumeId(), err
	}
	lvOf := func(id string) string { return strings.Split(id, ".")[2] }
	// answer runs one RPC that must answer during a wedge: no error, well within the limit.
	answer := func(what string, f func() error) {
		t.Helper()
		start := time.Now()
		err := f()
		d := time.Since(start)
		if err != nil {
			t.Errorf("%s during the wedge: %v (after %s)", what, err, d.Round(time.Millisecond))
			return
		}
		if d > answers {
			t.Errorf("%s during the wedge took %s: it waited (limit %s)", what, d.Round(time.Millisecond), lvmLimit)
			return
		}
		t.Logf("%s answered in %s", what, d.Round(time.Millisecond))
	}
	// killed checks a wedged RPC's outcome: Unavailable, naming what hung, at its limit.
	killed := func(what string, r wedged, limit time.Duration, mentions ...string) {
		t.Helper()
		st := status.Convert(r.err)
		if st.Code() != codes.Unavailable {
			t.Errorf("%s: %v after %s, want Unavailable", what, r.err, r.took.Round(time.Millisecond))
			return
		}
		for _, m := range mentions {
			if !strings.Contains(st.Message(), m) {
				t.Errorf("%s: message %q does not name %q", what, st.Message(), m)
			}
		}
		if r.took < limit-time.Second || r.took > limit+slack {
			t.Errorf("%s came back after %s, want the %s limit (+%s)", what, r.took.Round(time.Millisecond), limit, slack)
		}
		t.Logf("%s: Unavailable after %s: %s", what, r.took.Round(time.Millisecond), st.Message())
	}

	// A: a thick volume, never staged (so blank: staging would format it). B: a thin volume,
	// staged and published, with data.
	a, err := create("wedge-a", "thick", 64<<20, ext4)
	if err != nil {
		t.Fatalf("CreateVolume a: %v", err)
	}
	b, err := create("wedge-b", "thin", 320<<20, xfs)
	if err != nil {
		t.Fatalf("CreateVolume b: %v", err)
	}
	devA := "/dev/lnv-thick/" + lvOf(a)
	dir := t.TempDir()
	stageA, stageB, targetB := filepath.Join(dir, "stage-a"), filepath.Join(dir, "stage-b"), filepath.Join(dir, "target-b")
	if err := os.Mkdir(stageA, 0o750); err != nil {
		t.Fatal(err)
	}
	stageB2 := func() error {
		_, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: b, StagingTargetPath: stageB, VolumeCapability: xfs})
		return err
	}
	publishB := func() error {
		_, err := nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: b, StagingTargetPath: stageB, TargetPath: targetB, VolumeCapability: xfs})
		return err
	}
	if err := stageB2(); err != nil {
		t.Fatalf("NodeStageVolume b: %v", err)
	}
	if err := publishB(); err != nil {
		t.Fatalf("NodePublishVolume b: %v", err)
	}
	data := make([]byte, 4<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	wantB := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(targetB, "b-data"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "sync")
	checkB := func() error {
		got, err := os.ReadFile(filepath.Join(targetB, "b-data"))
		if err != nil {
			return err
		}
		if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != wantB {
			return errors.New("b-data's checksum changed")
		}
		return nil
	}
	statsB := func() error {
		resp, err := nodeC.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: b, VolumePath: targetB})
		if err == nil && len(resp.GetUsage()) == 0 {
			err = errors.New("no usage reported")
		}
		return err
	}
	t.Cleanup(func() {
		_, _ = nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: b, TargetPath: targetB})
		_, _ = nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: b, StagingTargetPath: stageB})
		_, _ = nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: a, StagingTargetPath: stageA})
		for _, id := range []string{a, b} {
			if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
				t.Errorf("cleanup: DeleteVolume %s: %v", id, err)
			}
		}
	})
	// otherClass is what must keep answering during a wedge: B's node RPCs (a full
	// unpublish/unstage/stage/publish cycle, which probes and mounts), its data, and a thin
	// volume's create, expand and delete, and the thin class's capacity.
	otherClass := func(prefix string) {
		t.Helper()
		answer("NodeGetVolumeStats(b)", statsB)
		answer("NodeUnpublishVolume(b)", func() error {
			_, err := nodeC.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: b, TargetPath: targetB})
			return err
		})
		answer("NodeUnstageVolume(b)", func() error {
			_, err := nodeC.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: b, StagingTargetPath: stageB})
			return err
		})
		answer("NodeStageVolume(b)", stageB2)
		answer("NodePublishVolume(b)", publishB)
		answer("b's data", checkB)
		var c string
		answer("CreateVolume(thin)", func() (err error) { c, err = create(prefix+"-c", "thin", 64<<20, block); return err })
		if c != "" {
			answer("ControllerExpandVolume(thin)", func() error {
				_, err := ctl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: c, CapacityRange: &csi.CapacityRange{RequiredBytes: 128 << 20}, VolumeCapability: block})
				return err
			})
			answer("DeleteVolume(thin)", func() error {
				_, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: c})
				return err
			})
		}
		answer("GetCapacity(thin)", func() error {
			_, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"localnvme.io/device-class": "thin"}})
			return err
		})
	}
	aUntouched := func(when string) {
		t.Helper()
		if typ := blkidType(t, devA); typ != "" {
			t.Errorf("%s: a was formatted (%s)", when, typ)
		}
		tags := run(t, "lvm", "lvs", "--noheadings", "-o", "lv_tags", "lnv-thick/"+lvOf(a))
		if strings.Contains(tags, "lnv.mkfs") || strings.Contains(tags, "lnv.fstype") {
			t.Errorf("%s: a carries format tags: %s", when, strings.TrimSpace(tags))
		}
		if mounted(t, stageA) {
			t.Errorf("%s: a is mounted at %s", when, stageA)
		}
	}

	// 1. LVM level: lnv-thick's lock held, as by an lvm command hung on its device.
	release := holdVGLock(t, "lnv-thick")
	t.Cleanup(release)
	// the assumption: lvm commands on lnv-thick wait, on lnv-thin they do not
	if err := runFor(3*time.Second, "lvm", "vgs", "lnv-thick"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lvm vgs lnv-thick with its VG lock held: %v, want it to wait (the wedge does not work)", err)
	}
	if err := runFor(lvmLimit, "lvm", "vgs", "lnv-thin"); err != nil {
		t.Fatalf("lvm vgs lnv-thin with lnv-thick's lock held: %v", err)
	}
	createA2 := goRPC(func() error { _, err := create("wedge-a2", "thick", 64<<20, ext4); return err })
	stageAWedged := goRPC(func() error {
		_, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: a, StagingTargetPath: stageA, VolumeCapability: ext4})
		return err
	})
	list := goRPC(func() error { _, err := ctl.ListVolumes(ctx, &csi.ListVolumesRequest{}); return err })
	otherClass("wedge-lvm")
	pending := 0
	for _, ch := range []chan wedged{createA2, stageAWedged, list} {
		if len(ch) == 0 {
			pending++
		}
	}
	t.Logf("the other class answered everything while %d of the 3 wedged RPCs were still waiting", pending)
	killed("CreateVolume(thick) with lnv-thick's lock held", <-createA2, lvmLimit, "killed after", "lnv-thick")
	killed("NodeStageVolume(a) with lnv-thick's lock held", <-stageAWedged, lvmLimit, "killed after", "lnv-thick")
	// ListVolumes reads every VG (one fullreport), so it waits for the wedged one too.
	killed("ListVolumes with lnv-thick's lock held", <-list, lvmLimit, "killed after")

	release()
	aUntouched("after the LVM wedge") // (its lvs needs the lock)
	answer("CreateVolume(thick) after the lock is released", func() error {
		id, err := create("wedge-a2", "thick", 64<<20, ext4)
		if err == nil {
			_, err = ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		}
		return err
	})
	answer("ListVolumes after the lock is released", func() error {
		resp, err := ctl.ListVolumes(ctx, &csi.ListVolumesRequest{})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range resp.GetEntries() {
			seen[e.GetVolume().GetVolumeId()] = true
		}
		if !seen[a] || !seen[b] {
			return errors.New("a or b missing from ListVolumes")
		}
		return nil
	})

	// 2. Device level: a's LV suspended; reads of it queue in device-mapper.
	dm := strings.TrimSpace(run(t, "lvm", "lvs", "--noheadings", "-o", "lv_dm_path", "lnv-thick/"+lvOf(a)))
	dmName := filepath.Base(dm)
	run(t, "dmsetup", "suspend", dmName)
	resume := func() { _ = exec.Command("dmsetup", "resume", dmName).Run() }
	t.Cleanup(resume) // before anything else cleans up: nothing may stay queued
	if info := run(t, "dmsetup", "info", dmName); !strings.Contains(info, "SUSPENDED") {
		t.Fatalf("dmsetup info %s after suspend:\n%s", dmName, info)
	}
	// the assumption: a blkid of it does not return. Measured: it takes the kill but does not
	// exit (its exit's last close of the device waits for the queued read, and holds the
	// device's open mutex, so the next open of it waits too) until the device is resumed;
	// the driver therefore stops waiting for a killed blkid after a grace period.
	switch err := runFor(3*time.Second, "blkid", "-p", devA); {
	case errors.Is(err, errNotExited):
		t.Logf("blkid -p %s while suspended: killed at 3s, not exited 5s later (uninterruptible)", devA)
	case errors.Is(err, context.DeadlineExceeded):
		t.Logf("blkid -p %s while suspended: killed at 3s, and exited", devA)
	default:
		t.Fatalf("blkid -p %s while suspended: %v, want it to wait", devA, err)
	}
	stageASuspended := goRPC(func() error {
		_, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: a, StagingTargetPath: stageA, VolumeCapability: ext4})
		return err
	})
	otherClass("wedge-dm")
	answer("CreateVolume and DeleteVolume in a's own class (lnv-thick)", func() error {
		id, err := create("wedge-d", "thick", 64<<20, block)
		if err == nil {
			_, err = ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		}
		return err
	})
	// blkid killed at its limit; if it does not exit, the driver stops waiting a grace
	// period (execwait.DefaultGrace, 10 s) later
	killed("NodeStageVolume(a) with a suspended", <-stageASuspended, blkidLimit, "blkid", devA, "limit for one blkid probe", "refusing to format")
	if info := run(t, "dmsetup", "info", dmName); !strings.Contains(info, "SUSPENDED") {
		t.Errorf("a was resumed behind the test's back:\n%s", info)
	}
	run(t, "dmsetup", "resume", dmName)
	aUntouched("after the device wedge")
	answer("NodeStageVolume(a) after resume", func() error {
		_, err := nodeC.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: a, StagingTargetPath: stageA, VolumeCapability: ext4})
		if err == nil && !mounted(t, stageA) {
			err = errors.New("not mounted")
		}
		return err
	})
	if typ := blkidType(t, devA); typ != "ext4" {
		t.Errorf("a after staging: %q, want ext4", typ)
	}
	if err := checkB(); err != nil {
		t.Errorf("b's data at the end: %v", err)
	}
}

// wedged is the outcome of an RPC started in the background.
type wedged struct {
	err  error
	took time.Duration
}

func goRPC(f func() error) chan wedged {
	ch := make(chan wedged, 1)
	start := time.Now()
	go func() {
		err := f()
		ch <- wedged{err: err, took: time.Since(start)}
	}()
	return ch
}

// errNotExited: a command killed by runFor had not exited 5 s later (uninterruptible I/O).
var errNotExited = errors.New("killed, but not exited 5s later")

// runFor runs a command for at most d: context.DeadlineExceeded when it was still running
// then and was killed and exited, errNotExited when it did not exit (its Wait goes on in
// the background) instead of hanging the test.
func runFor(d time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return errors.New(err.Error() + ": " + strings.TrimSpace(out.String()))
		}
		return nil
	case <-time.After(d + 5*time.Second):
		return errNotExited
	}
}

// holdVGLock takes LVM's lock of a VG (flock on <locking_dir>/V_<vg>, exclusive) the way an
// lvm command changing it does, and returns its release (idempotent). lvm removes a lock
// file it can take when it unlocks, so the lock is taken on the file the path names then.
func holdVGLock(t *testing.T, vg string) func() {
	t.Helper()
	dir := "/run/lock/lvm"
	out := run(t, "lvm", "config", "--typeconfig", "full", "global/locking_dir")
	if v, ok := strings.CutPrefix(strings.TrimSpace(out), "locking_dir="); ok {
		dir = strings.Trim(v, `"`)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "V_"+vg)
	for i := 0; i < 20; i++ {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatalf("flock %s: %v", path, err)
		}
		var held, named syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &named) == nil && held.Ino == named.Ino && held.Dev == named.Dev {
			t.Logf("holding LVM's lock of %s (%s)", vg, path)
			released := false
			return func() {
				if !released {
					released = true
					_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
					_ = f.Close()
					t.Logf("released LVM's lock of %s", vg)
				}
			}
		}
		f.Close()
	}
	t.Fatalf("could not hold %s: lvm kept replacing it", path)
	return nil
}
