//go:build vmtest

package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/localnvme/localnvme/pkg/failpoint"
	"github.com/localnvme/localnvme/pkg/volume"
)

// TestCrashPoints walks every crash point of pkg/failpoint on real LVM: the node plugin runs
// as a child process armed at the point (LOCALNVME_FAILPOINT), the request that reaches the
// point kills it with SIGKILL, and a restarted, unarmed plugin gets what kubelet and the
// sidecars would send again (the same request, then the rest of the volume's life). Each
// point checks that the request converges to the answer of an uncrashed run (same IDs, same
// LV: nothing created twice), that no LV is leaked or left behind (lvs before and after),
// that data written before the crash is intact (SHA-256), that nothing is formatted twice
// (the filesystem UUID), and, for class setup, that the class comes up.
//
// The binary must be built with -tags vmtest,failpoints (hack/test-vm.sh does). It prints
// one line "crashpoints: N passed, N failed".
func TestCrashPoints(t *testing.T) {
	requireVM(t)
	passed, failed := 0, 0
	defer func() { fmt.Printf("crashpoints: %d passed, %d failed\n", passed, failed) }()
	if !failpoint.Enabled {
		failed = len(failpoint.Points)
		t.Fatal("the test binary was built without the failpoints tag (go test -c -tags vmtest,failpoints): no crash point can fire")
	}
	cases := []struct {
		point string
		run   func(t *testing.T, h *crashHarness)
	}{
		{failpoint.CreateAfterLVCreate, crashCreate},
		{failpoint.CloneAfterLVCreate, crashClone},
		{failpoint.CloneTempSnapshot, crashClone},
		{failpoint.CloneCopyChunk, crashClone},
		{failpoint.CloneAfterCopy, crashClone},
		{failpoint.SnapshotAfterLVCreate, crashSnapshot},
		{failpoint.StageMkfsIntent, crashStage},
		{failpoint.StageAfterMkfs, crashStage},
		{failpoint.StageAfterMount, crashStage},
		{failpoint.PublishAfterMount, crashPublish},
		{failpoint.ExpandScratchCreated, crashExpand},
		{failpoint.ExpandAfterLVExtend, crashExpand},
		{failpoint.ExpandBeforeFSGrow, crashExpand},
		{failpoint.DeleteAfterTempCleanup, crashDeleteAfterTempCleanup},
		// class setup last: they use the spare drives and leave them blank
		{failpoint.SetupAfterPVCreate, crashSetup},
		{failpoint.SetupAfterVGCreate, crashSetup},
		{failpoint.SetupThinPoolCreated, crashSetup},
	}
	walked := map[string]bool{}
	for _, c := range cases {
		walked[c.point] = true
	}
	for _, p := range failpoint.Points {
		if !walked[p] {
			failed++
			t.Errorf("crash point %s has no case here", p)
		}
	}
	dir := t.TempDir()
	std := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(std, []byte(classesYAML("")), 0o644); err != nil {
		t.Fatal(err)
	}
	// One uncrashed start first: on fresh drives it creates the standard classes' VGs and
	// thin pool, which the cases' before/after LV comparisons then count as already there.
	if !t.Run("start", func(t *testing.T) {
		h := &crashHarness{t: t, point: "start", dir: t.TempDir(), config: std}
		h.stop(h.start(""))
	}) {
		failed = len(cases)
		t.Fatal("the node plugin does not start unarmed")
	}
	for _, c := range cases {
		start := time.Now()
		ok := t.Run(c.point, func(t *testing.T) {
			h := &crashHarness{t: t, point: c.point, dir: t.TempDir(), config: std}
			t.Cleanup(func() { unmountUnder(t, h.dir) }) // a failed case's mounts, before TempDir's removal
			h.lvsBefore = lvSnapshot(t)
			c.run(t, h)
		})
		if ok {
			passed++
		} else {
			failed++
		}
		t.Logf("crash point %s: ok=%v in %s", c.point, ok, time.Since(start).Round(time.Millisecond))
	}
}

// crashHarness runs the node plugin as a child process of this test binary.
type crashHarness struct {
	t      *testing.T
	point  string
	dir    string // the case's own directory (staging and target paths)
	config string // the child's configuration file
	// lvsBefore: every LV (vg/name → UUID) before the case; the case ends with the same set
	lvsBefore map[string]string
	starts    int
}

// crashChildProc is one run of the node plugin.
type crashChildProc struct {
	cmd    *exec.Cmd
	log    string
	armed  string
	exited chan struct{}
	state  *os.ProcessState
	conn   *grpc.ClientConn
	ctl    csi.ControllerClient
	node   csi.NodeClient
}

func (h *crashHarness) socket() string { return filepath.Join(h.dir, "csi.sock") }

// logDir is where the children's logs are kept: the VM's results disk when there is one.
func crashLogDir(t *testing.T) string {
	if fi, err := os.Stat("/results"); err == nil && fi.IsDir() {
		d := "/results/crashpoints"
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// start runs the node plugin with the case's configuration, armed at armed ("" = unarmed),
// and waits until it serves CSI or exits (a child armed at a setup point dies while it
// builds the node).
func (h *crashHarness) start(armed string) *crashChildProc {
	t := h.t
	t.Helper()
	h.starts++
	logPath := filepath.Join(crashLogDir(t), fmt.Sprintf("%s-%d-%s.log", h.point, h.starts, map[bool]string{true: "armed", false: "unarmed"}[armed != ""]))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	//nolint:gosec // G702: re-runs this very test binary as the crash child; the node name is the test's own flag
	cmd := exec.Command(os.Args[0], "-logtostderr=true", "-v=4", "-node-name="+*nodeName)
	cmd.Env = append(os.Environ(), crashChildConfigEnv+"="+h.config, crashChildSocketEnv+"="+h.socket(), failpoint.EnvVar+"="+armed)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting the node plugin: %v", err)
	}
	c := &crashChildProc{cmd: cmd, log: logPath, armed: armed, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		logf.Close()
		close(c.exited)
	}()
	t.Cleanup(func() { h.stop(c) })
	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case <-c.exited:
			if !strings.HasPrefix(armed, "setup-") { // only class setup runs before serving
				t.Fatalf("the node plugin (armed at %q) exited (%v) before serving; log %s:\n%s", armed, c.state, logPath, tail(logPath, 30))
			}
			return c
		default:
		}
		if conn, err := net.Dial("unix", h.socket()); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node plugin did not serve on %s within 3 minutes; log %s:\n%s", h.socket(), logPath, tail(logPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+h.socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing the node plugin: %v", err)
	}
	c.conn, c.ctl, c.node = conn, csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	t.Logf("node plugin pid %d serving (armed at %q), log %s", cmd.Process.Pid, armed, logPath)
	return c
}

// stop ends an unarmed child with SIGTERM (SIGKILL after 30 s).
func (h *crashHarness) stop(c *crashChildProc) {
	if c.conn != nil {
		c.conn.Close()
	}
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// expectCrash checks that the child died of SIGKILL at the armed point: the request failed
// with Unavailable (the connection went away), the process ended by signal 9, and the last
// line of its log is the failpoint's.
func (h *crashHarness) expectCrash(c *crashChildProc, rpcErr error) {
	t := h.t
	t.Helper()
	if c.conn != nil && status.Code(rpcErr) != codes.Unavailable {
		t.Fatalf("the request at crash point %s answered %v, want the connection lost (Unavailable); log %s", c.armed, rpcErr, c.log)
	}
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		t.Fatalf("the node plugin armed at %s is still running a minute after the request; log %s", c.armed, c.log)
	}
	ws, ok := c.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the node plugin armed at %s ended with %v, want killed by SIGKILL; log %s:\n%s", c.armed, c.state, c.log, tail(c.log, 30))
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, c.log)), "\n")
	if last := lines[len(lines)-1]; last != failpoint.Message(c.armed) {
		t.Fatalf("the node plugin was killed, but its last log line is %q, not %q; log %s", last, failpoint.Message(c.armed), c.log)
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	t.Logf("killed at %s (signal %d), as armed", c.armed, ws.Signal())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// unmountUnder unmounts whatever a failed case left mounted under dir (deepest first).
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", mps[i]).CombinedOutput(); err != nil {
			t.Logf("cleanup: umount %s: %v: %s", mps[i], err, out)
		}
	}
}

// ---- LVM and device state ----

// lvInfo is an LV as `lvm lvs` shows it.
type lvInfo struct {
	VG, Name, UUID, Origin string
	Size                   int64
	Tags                   []string
}

func (l lvInfo) tag(key string) (string, bool) {
	for _, t := range l.Tags {
		if k, v, ok := strings.Cut(t, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// listLVs lists every LV (hidden ones too) of the volume groups on the node.
func listLVs(t *testing.T) map[string]lvInfo {
	t.Helper()
	out := run(t, "lvm", "lvs", "-a", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|",
		"-o", "vg_name,lv_name,lv_uuid,origin,lv_size,lv_tags")
	lvs := map[string]lvInfo{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(l), "|")
		if len(f) != 6 {
			continue
		}
		size, _ := strconv.ParseInt(f[4], 10, 64)
		var tags []string
		if f[5] != "" {
			tags = strings.Split(f[5], ",")
		}
		lv := lvInfo{VG: f[0], Name: f[1], UUID: f[2], Origin: f[3], Size: size, Tags: tags}
		lvs[lv.VG+"/"+lv.Name] = lv
	}
	return lvs
}

// lvSnapshot is every LV as vg/name → UUID.
func lvSnapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, lv := range listLVs(t) {
		out[k] = lv.UUID
	}
	return out
}

// lvOfID is the LV a volume or snapshot ID names: its name and UUID (in any VG).
func lvOfID(t *testing.T, id string) lvInfo {
	t.Helper()
	f := strings.Split(id, ".")
	if len(f) != 4 {
		t.Fatalf("malformed ID %q", id)
	}
	var found []lvInfo
	for _, lv := range listLVs(t) {
		if lv.Name == f[2] {
			found = append(found, lv)
		}
	}
	if len(found) != 1 {
		t.Fatalf("ID %s: %d LVs named %s (%+v), want exactly one", id, len(found), f[2], found)
	}
	if lv := found[0]; strings.ReplaceAll(lv.UUID, "-", "") != f[3] {
		t.Fatalf("LV %s/%s has UUID %s, the ID %s names %s", lv.VG, lv.Name, lv.UUID, id, f[3])
	}
	return found[0]
}

// lvNamed returns vg/name's LV, if it exists.
func lvNamed(t *testing.T, vg, name string) (lvInfo, bool) {
	t.Helper()
	lv, ok := listLVs(t)[vg+"/"+name]
	return lv, ok
}

// lvName is the LV a CSI name gives.
func lvName(kind, name string) string { return volume.LVName(volume.Kind(kind), name) }

// checkLVsAsBefore checks that the case left exactly the LVs it found (same names, same UUIDs).
func (h *crashHarness) checkLVsAsBefore() {
	t := h.t
	t.Helper()
	now := lvSnapshot(t)
	var diff []string
	for k, u := range now {
		if b, ok := h.lvsBefore[k]; !ok {
			diff = append(diff, "left behind: "+k+" "+u)
		} else if b != u {
			diff = append(diff, "re-created: "+k)
		}
	}
	for k := range h.lvsBefore {
		if _, ok := now[k]; !ok {
			diff = append(diff, "removed: "+k)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("LVs after the case differ from before it: %s", strings.Join(diff, "; "))
	}
}

// fsUUID is blkid -p's UUID of dev ("" when blkid finds nothing).
func fsUUID(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-s", "UUID", "-o", "value", dev).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return ""
	}
	if err != nil {
		t.Fatalf("blkid -p %s: %v", dev, err)
	}
	return strings.TrimSpace(string(out))
}

// mountCount is how many mounts mountinfo shows at path.
func mountCount(t *testing.T, path string) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}

// fsBytes is the size of the filesystem mounted at path.
func fsBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(st.Blocks) * st.Bsize
}

// writeData writes 4 MiB of random bytes to path (a file in a mounted volume, or a block
// target) and syncs; it returns their SHA-256.
func writeData(t *testing.T, path string, create bool) string {
	t.Helper()
	b := make([]byte, 4<<20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	flags := os.O_WRONLY
	if create {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readData is the SHA-256 of the first 4 MiB of path.
func readData(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, 4<<20); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// zeroFrom checks that dev reads zeros from offset to its end.
func zeroFrom(t *testing.T, dev string, offset int64) {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	pos := offset
	for {
		n, err := f.Read(buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			t.Fatalf("%s holds non-zero bytes at %d..%d (past the clone's source)", dev, pos, pos+int64(n))
		}
		pos += int64(n)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// ---- CSI helpers ----

func blockCapability() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
}

func createReq(name, class string, size int64, capy *csi.VolumeCapability, src string) *csi.CreateVolumeRequest {
	r := &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		Parameters:         map[string]string{"localnvme.io/device-class": class},
		VolumeCapabilities: []*csi.VolumeCapability{capy},
	}
	if f := strings.Split(src, "."); len(f) == 4 && strings.HasPrefix(f[2], "s") {
		r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: src}}}
	} else if src != "" {
		r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src}}}
	}
	return r
}

var rpcTimeout = 5 * time.Minute

func rpcCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), rpcTimeout)
}

// create sends a CreateVolume that must succeed.
func (c *crashChildProc) create(t *testing.T, r *csi.CreateVolumeRequest) *csi.Volume {
	t.Helper()
	ctx, cancel := rpcCtx()
	defer cancel()
	resp, err := c.ctl.CreateVolume(ctx, r)
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", r.GetName(), err)
	}
	return resp.GetVolume()
}

func (c *crashChildProc) delete(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := c.ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatalf("DeleteVolume %s: %v", id, err)
	}
}

// vol is a volume's paths in a case.
type vol struct {
	id, stage, target string
	capy              *csi.VolumeCapability
}

func (h *crashHarness) vol(id, name string, capy *csi.VolumeCapability) *vol {
	return &vol{id: id, stage: filepath.Join(h.dir, name, "stage"), target: filepath.Join(h.dir, name, "target"), capy: capy}
}

func (v *vol) block() bool { return v.capy.GetBlock() != nil }

func (v *vol) stageReq() *csi.NodeStageVolumeRequest {
	return &csi.NodeStageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.stage, VolumeCapability: v.capy}
}

func (v *vol) publishReq() *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{VolumeId: v.id, StagingTargetPath: v.stage, TargetPath: v.target, VolumeCapability: v.capy}
}

// dataPath is where a case writes its data: a file in the filesystem, or the block target.
func (v *vol) dataPath() string {
	if v.block() {
		return v.target
	}
	return filepath.Join(v.target, "data")
}

func (c *crashChildProc) stage(t *testing.T, v *vol) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(v.stage), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := c.node.NodeStageVolume(ctx, v.stageReq()); err != nil {
		t.Fatalf("NodeStageVolume %s: %v", v.id, err)
	}
}

func (c *crashChildProc) publish(t *testing.T, v *vol) {
	t.Helper()
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := c.node.NodePublishVolume(ctx, v.publishReq()); err != nil {
		t.Fatalf("NodePublishVolume %s: %v", v.id, err)
	}
}

func (c *crashChildProc) unpublish(t *testing.T, v *vol) {
	t.Helper()
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := c.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target}); err != nil {
		t.Fatalf("NodeUnpublishVolume %s: %v", v.id, err)
	}
}

func (c *crashChildProc) unstage(t *testing.T, v *vol) {
	t.Helper()
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := c.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.stage}); err != nil {
		t.Fatalf("NodeUnstageVolume %s: %v", v.id, err)
	}
}

// up stages and publishes v and writes data to it; it returns the data's SHA-256.
func (c *crashChildProc) up(t *testing.T, v *vol) string {
	t.Helper()
	c.stage(t, v)
	c.publish(t, v)
	return writeData(t, v.dataPath(), !v.block())
}

// finish is the rest of a volume's life after the crash and the replay: its data is
// intact, it survives an unpublish, unstage, stage and publish with the same filesystem
// (not formatted again), new data can be written, and it is torn down and deleted.
func (c *crashChildProc) finish(t *testing.T, v *vol, sum string) {
	t.Helper()
	if sum != "" {
		if got := readData(t, v.dataPath()); got != sum {
			t.Fatalf("volume %s: data %s, written before the crash %s", v.id, got, sum)
		}
	}
	sum = writeData(t, v.dataPath(), !v.block())
	lv := lvOfID(t, v.id)
	uuid := ""
	if !v.block() {
		uuid = fsUUID(t, "/dev/"+lv.VG+"/"+lv.Name)
		if rec, _ := lv.tag("lnv.fsuuid"); rec != uuid || uuid == "" {
			t.Fatalf("volume %s: filesystem UUID %q, recorded lnv.fsuuid %q", v.id, uuid, rec)
		}
	}
	for _, k := range []string{"lnv.mkfs", "lnv.copying", "lnv.zero"} {
		if val, ok := lv.tag(k); ok {
			t.Errorf("volume %s still carries %s=%s", v.id, k, val)
		}
	}
	c.unpublish(t, v)
	c.unstage(t, v)
	c.stage(t, v)
	c.publish(t, v)
	if got := readData(t, v.dataPath()); got != sum {
		t.Fatalf("volume %s: data after unstage and stage %s, written %s", v.id, got, sum)
	}
	if !v.block() {
		if now := fsUUID(t, "/dev/"+lv.VG+"/"+lv.Name); now != uuid {
			t.Fatalf("volume %s was formatted again: UUID %s → %s", v.id, uuid, now)
		}
	}
	c.unpublish(t, v)
	c.unstage(t, v)
	if n := mountCount(t, v.stage) + mountCount(t, v.target); n != 0 {
		t.Fatalf("volume %s: %d mounts left after unpublish and unstage", v.id, n)
	}
	c.delete(t, v.id)
}

// sameVolume checks that two CreateVolume answers agree on everything but the ID.
func sameVolume(t *testing.T, got, ref *csi.Volume) {
	t.Helper()
	a, b := proto.Clone(got).(*csi.Volume), proto.Clone(ref).(*csi.Volume)
	a.VolumeId, b.VolumeId = "", ""
	if !proto.Equal(a, b) {
		t.Errorf("the replayed request's answer differs from an uncrashed run's:\n got %v\nwant %v", a, b)
	}
}

// ---- the cases ----

// crashCreate: CreateVolume (thick, so the zeroing is pending) killed after lvcreate.
func crashCreate(t *testing.T, h *crashHarness) {
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	req := createReq("crash-create", "thick", 64<<20, capy, "")
	c := h.start(h.point)
	_, err := c.ctl.CreateVolume(context.Background(), req)
	h.expectCrash(c, err)
	lv, ok := lvNamed(t, "lnv-thick", lvName("v", req.Name))
	if !ok {
		t.Fatal("no LV after a crash past lvcreate")
	}
	if z, ok := lv.tag("lnv.zero"); !ok || z != "0" {
		t.Fatalf("LV after the crash: tags %v, want lnv.zero=0 (not zeroed yet)", lv.Tags)
	}

	c = h.start("")
	got := c.create(t, req)
	if again := c.create(t, req); again.GetVolumeId() != got.GetVolumeId() {
		t.Fatalf("CreateVolume answers %s, then %s", got.GetVolumeId(), again.GetVolumeId())
	}
	if now := lvOfID(t, got.GetVolumeId()); now.UUID != lv.UUID {
		t.Fatalf("the replay made LV %s, the crashed attempt %s", now.UUID, lv.UUID)
	}
	ref := c.create(t, createReq("crash-create-ref", "thick", 64<<20, capy, ""))
	sameVolume(t, got, ref)
	c.delete(t, ref.GetVolumeId())
	v := h.vol(got.GetVolumeId(), "v", capy)
	c.finish(t, v, c.up(t, v))
	h.stop(c)
	h.checkLVsAsBefore()
}

// crashClone: a thick clone (twice its source's size) of a volume in use, killed at one of
// the clone's points. The replay completes it: the source's data, zeros past it, the source's
// filesystem (same UUID), no temporary snapshot left.
func crashClone(t *testing.T, h *crashHarness) {
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	c := h.start(h.point)
	src := h.vol(c.create(t, createReq("crash-src-"+h.point, "thick", 64<<20, capy, "")).GetVolumeId(), "src", capy)
	sum := c.up(t, src)
	srcLV := lvOfID(t, src.id)
	req := createReq("crash-clone-"+h.point, "thick", 128<<20, capy, src.id)
	_, err := c.ctl.CreateVolume(context.Background(), req)
	h.expectCrash(c, err)
	name := lvName("v", req.Name)
	lv, ok := lvNamed(t, "lnv-thick", name)
	if !ok {
		t.Fatal("no clone LV after a crash past its lvcreate")
	}
	if _, ok := lv.tag("lnv.copying"); !ok {
		t.Fatalf("clone LV after the crash: tags %v, want lnv.copying", lv.Tags)
	}
	tmp, tmpExists := lvNamed(t, "lnv-thick", "t"+name[1:])
	switch h.point {
	case failpoint.CloneTempSnapshot, failpoint.CloneCopyChunk:
		if !tmpExists || tmp.Origin != srcLV.Name {
			t.Fatalf("after a crash at %s: temporary snapshot %+v (exists=%v), want one of %s", h.point, tmp, tmpExists, srcLV.Name)
		}
	default:
		if tmpExists {
			t.Fatalf("after a crash at %s: a temporary snapshot %s exists", h.point, tmp.Name)
		}
	}

	c = h.start("")
	got := c.create(t, req)
	if again := c.create(t, req); again.GetVolumeId() != got.GetVolumeId() {
		t.Fatalf("CreateVolume answers %s, then %s", got.GetVolumeId(), again.GetVolumeId())
	}
	now := lvOfID(t, got.GetVolumeId())
	if now.UUID != lv.UUID {
		t.Fatalf("the replay made clone LV %s, the crashed attempt %s", now.UUID, lv.UUID)
	}
	if _, ok := lvNamed(t, "lnv-thick", "t"+name[1:]); ok {
		t.Fatal("the temporary snapshot is still there after the clone completed")
	}
	if a, b := tagOf(now, "lnv.fsuuid"), tagOf(srcLV, "lnv.fsuuid"); a != b || a == "" {
		t.Fatalf("clone lnv.fsuuid %q, source %q", a, b)
	}
	zeroFrom(t, "/dev/lnv-thick/"+name, 64<<20)
	if h.point == failpoint.CloneAfterLVCreate { // one uncrashed clone to compare with
		ref := c.create(t, createReq("crash-clone-ref", "thick", 128<<20, capy, src.id))
		sameVolume(t, got, ref)
		c.delete(t, ref.GetVolumeId())
	}
	clone := h.vol(got.GetVolumeId(), "clone", capy)
	c.stage(t, clone)
	c.publish(t, clone)
	if fsUUID(t, "/dev/lnv-thick/"+name) != tagOf(srcLV, "lnv.fsuuid") {
		t.Fatal("the clone was formatted")
	}
	c.finish(t, clone, sum)
	c.finish(t, src, sum)
	h.stop(c)
	h.checkLVsAsBefore()
}

func tagOf(lv lvInfo, key string) string { v, _ := lv.tag(key); return v }

// crashSnapshot: CreateSnapshot (thin, xfs) killed after its lvcreate; the replay returns the
// same snapshot, which restores the data.
func crashSnapshot(t *testing.T, h *crashHarness) {
	capy := mountCap("xfs", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	c := h.start(h.point)
	src := h.vol(c.create(t, createReq("crash-snapsrc", "thin", 320<<20, capy, "")).GetVolumeId(), "src", capy)
	sum := c.up(t, src)
	req := &csi.CreateSnapshotRequest{Name: "crash-snap", SourceVolumeId: src.id}
	_, err := c.ctl.CreateSnapshot(context.Background(), req)
	h.expectCrash(c, err)
	lv, ok := lvNamed(t, "lnv-thin", lvName("s", req.Name))
	if !ok || tagOf(lv, "lnv.kind") != "s" || tagOf(lv, "lnv.src") != src.id {
		t.Fatalf("snapshot LV after the crash: %+v (exists=%v), want one tagged kind s, source %s", lv, ok, src.id)
	}

	c = h.start("")
	ctx, cancel := rpcCtx()
	defer cancel()
	got, err := c.ctl.CreateSnapshot(ctx, req)
	if err != nil {
		t.Fatalf("replayed CreateSnapshot: %v", err)
	}
	again, err := c.ctl.CreateSnapshot(ctx, req)
	if err != nil || again.GetSnapshot().GetSnapshotId() != got.GetSnapshot().GetSnapshotId() {
		t.Fatalf("CreateSnapshot answers %s, then %v %v", got.GetSnapshot().GetSnapshotId(), again, err)
	}
	if now := lvOfID(t, got.GetSnapshot().GetSnapshotId()); now.UUID != lv.UUID {
		t.Fatalf("the replay made snapshot LV %s, the crashed attempt %s", now.UUID, lv.UUID)
	}
	ref, err := c.ctl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "crash-snap-ref", SourceVolumeId: src.id})
	if err != nil {
		t.Fatal(err)
	}
	a, b := proto.Clone(got.GetSnapshot()).(*csi.Snapshot), proto.Clone(ref.GetSnapshot()).(*csi.Snapshot)
	a.SnapshotId, b.SnapshotId, a.CreationTime, b.CreationTime = "", "", nil, nil
	if !proto.Equal(a, b) {
		t.Errorf("the replayed snapshot's answer differs from an uncrashed run's:\n got %v\nwant %v", a, b)
	}
	if _, err := c.ctl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: ref.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	restored := h.vol(c.create(t, createReq("crash-restored", "thin", 320<<20, capy, got.GetSnapshot().GetSnapshotId())).GetVolumeId(), "restored", capy)
	c.stage(t, restored)
	c.publish(t, restored)
	c.finish(t, restored, sum)
	if _, err := c.ctl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: got.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	c.finish(t, src, sum)
	h.stop(c)
	h.checkLVsAsBefore()
}

// crashStage: the first NodeStageVolume (the format) killed at one of its points.
func crashStage(t *testing.T, h *crashHarness) {
	class, fs, size := "thick", "ext4", int64(64<<20)
	if h.point != failpoint.StageMkfsIntent {
		class, fs, size = "thin", "xfs", 320<<20
	}
	capy := mountCap(fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	c := h.start(h.point)
	v := h.vol(c.create(t, createReq("crash-stage-"+h.point, class, size, capy, "")).GetVolumeId(), "v", capy)
	if err := os.MkdirAll(filepath.Dir(v.stage), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := c.node.NodeStageVolume(context.Background(), v.stageReq())
	h.expectCrash(c, err)
	lv := lvOfID(t, v.id)
	dev := "/dev/" + lv.VG + "/" + lv.Name
	found := fsUUID(t, dev)
	switch h.point {
	case failpoint.StageMkfsIntent:
		if tagOf(lv, "lnv.mkfs") != fs || found != "" || mountCount(t, v.stage) != 0 {
			t.Fatalf("after a crash before mkfs: tags %v, blkid UUID %q, %d mounts; want lnv.mkfs=%s, a blank device, no mount", lv.Tags, found, mountCount(t, v.stage), fs)
		}
	case failpoint.StageAfterMkfs:
		if tagOf(lv, "lnv.mkfs") != fs || found == "" || tagOf(lv, "lnv.fsuuid") != "" {
			t.Fatalf("after a crash after mkfs: tags %v, blkid UUID %q; want lnv.mkfs=%s, a filesystem, no lnv.fsuuid", lv.Tags, found, fs)
		}
	case failpoint.StageAfterMount:
		if tagOf(lv, "lnv.fsuuid") != found || found == "" || mountCount(t, v.stage) != 1 {
			t.Fatalf("after a crash after the mount: tags %v, blkid UUID %q, %d mounts; want the UUID recorded and one mount", lv.Tags, found, mountCount(t, v.stage))
		}
	}

	c = h.start("")
	c.stage(t, v)
	c.stage(t, v) // and kubelet's next repeat
	if n := mountCount(t, v.stage); n != 1 {
		t.Fatalf("staging path mounted %d times after the replays, want 1", n)
	}
	lv = lvOfID(t, v.id)
	if found != "" && tagOf(lv, "lnv.fsuuid") != found {
		t.Fatalf("the interrupted format (UUID %s) was redone: lnv.fsuuid %q", found, tagOf(lv, "lnv.fsuuid"))
	}
	c.publish(t, v)
	c.finish(t, v, writeData(t, v.dataPath(), true))
	h.stop(c)
	h.checkLVsAsBefore()
}

// crashPublish: NodePublishVolume of a raw block volume killed after its bind mount.
func crashPublish(t *testing.T, h *crashHarness) {
	capy := blockCapability()
	c := h.start(h.point)
	v := h.vol(c.create(t, createReq("crash-publish", "thick", 64<<20, capy, "")).GetVolumeId(), "v", capy)
	c.stage(t, v)
	_, err := c.node.NodePublishVolume(context.Background(), v.publishReq())
	h.expectCrash(c, err)
	if n := mountCount(t, v.target); n != 1 {
		t.Fatalf("target mounted %d times after a crash past the bind mount, want 1", n)
	}
	sum := writeData(t, v.dataPath(), false) // the pod may already be using it

	c = h.start("")
	c.publish(t, v)
	c.publish(t, v)
	if n := mountCount(t, v.target); n != 1 {
		t.Fatalf("target mounted %d times after the replays, want 1", n)
	}
	c.finish(t, v, sum)
	h.stop(c)
	h.checkLVsAsBefore()
}

// crashExpand: NodeExpandVolume of a published volume with data killed at one of the
// expand's points (thick ext4 for the scratch LV and lvextend, thin xfs before the grow).
func crashExpand(t *testing.T, h *crashHarness) {
	class, fs, size := "thick", "ext4", int64(64<<20)
	if h.point == failpoint.ExpandBeforeFSGrow {
		class, fs, size = "thin", "xfs", 320<<20
	}
	capy := mountCap(fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	c := h.start(h.point)
	v := h.vol(c.create(t, createReq("crash-expand-"+h.point, class, size, capy, "")).GetVolumeId(), "v", capy)
	sum := c.up(t, v)
	lv := lvOfID(t, v.id)
	uuid := fsUUID(t, "/dev/"+lv.VG+"/"+lv.Name)
	before := fsBytes(t, v.target)
	req := &csi.NodeExpandVolumeRequest{VolumeId: v.id, VolumePath: v.target, StagingTargetPath: v.stage,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * size}, VolumeCapability: capy}
	_, err := c.node.NodeExpandVolume(context.Background(), req)
	h.expectCrash(c, err)
	lv = lvOfID(t, v.id)
	scratch, scratchExists := lvNamed(t, lv.VG, "z"+lv.Name[1:])
	switch h.point {
	case failpoint.ExpandScratchCreated:
		if lv.Size != size || !scratchExists || tagOf(scratch, "lnv.scratch") != lv.Name {
			t.Fatalf("after a crash past the scratch lvcreate: LV %d bytes, scratch %+v (exists=%v); want the old size and a tagged scratch LV", lv.Size, scratch, scratchExists)
		}
	case failpoint.ExpandAfterLVExtend:
		if lv.Size != 2*size || scratchExists || tagOf(lv, "lnv.zero") != strconv.FormatInt(size, 10) {
			t.Fatalf("after a crash past lvextend: LV %d bytes, tags %v, scratch exists=%v; want %d bytes, lnv.zero=%d, no scratch", lv.Size, lv.Tags, scratchExists, 2*size, size)
		}
	case failpoint.ExpandBeforeFSGrow:
		if lv.Size != 2*size {
			t.Fatalf("after a crash before the filesystem grow: LV %d bytes, want %d", lv.Size, 2*size)
		}
	}
	if fsBytes(t, v.target) != before {
		t.Fatalf("the filesystem grew (%d → %d bytes) before the crash point", before, fsBytes(t, v.target))
	}

	c = h.start("")
	ctx, cancel := rpcCtx()
	defer cancel()
	resp, err := c.node.NodeExpandVolume(ctx, req)
	if err != nil {
		t.Fatalf("replayed NodeExpandVolume: %v", err)
	}
	if resp.GetCapacityBytes() != 2*size {
		t.Fatalf("replayed NodeExpandVolume: %d bytes, want %d", resp.GetCapacityBytes(), 2*size)
	}
	lv = lvOfID(t, v.id)
	if _, ok := lvNamed(t, lv.VG, "z"+lv.Name[1:]); ok {
		t.Fatal("the scratch LV is still there after the expand")
	}
	if z, ok := lv.tag("lnv.zero"); ok {
		t.Fatalf("lnv.zero=%s still set after the replayed expand: the filesystem grew onto a range the next NodeStage zeroes", z)
	}
	if after := fsBytes(t, v.target); after < before+size*3/4 {
		t.Fatalf("filesystem %d bytes after the replayed expand (before %d): not grown", after, before)
	}
	if now := fsUUID(t, "/dev/"+lv.VG+"/"+lv.Name); now != uuid {
		t.Fatalf("filesystem UUID %s → %s", uuid, now)
	}
	c.finish(t, v, sum)
	h.stop(c)
	h.checkLVsAsBefore()
}

// crashDeleteAfterTempCleanup: a thick clone killed after taking its temporary snapshot of
// the source; then DeleteVolume of the source, killed right after it removed that snapshot.
// The replayed DeleteVolume deletes the source. The clone can no longer complete (its source
// is gone: NotFound) and stays, tagged lnv.copying, until DeleteVolume of its ID.
func crashDeleteAfterTempCleanup(t *testing.T, h *crashHarness) {
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	c := h.start(failpoint.CloneTempSnapshot)
	srcVol := c.create(t, createReq("crash-delsrc", "thick", 64<<20, capy, ""))
	srcLV := lvOfID(t, srcVol.GetVolumeId())
	req := createReq("crash-delclone", "thick", 64<<20, capy, srcVol.GetVolumeId())
	_, err := c.ctl.CreateVolume(context.Background(), req)
	h.expectCrash(c, err)
	name := lvName("v", req.Name)
	if tmp, ok := lvNamed(t, "lnv-thick", "t"+name[1:]); !ok || tmp.Origin != srcLV.Name {
		t.Fatalf("no temporary snapshot of the source after the clone's crash (%+v, %v)", tmp, ok)
	}

	c = h.start(h.point)
	_, err = c.ctl.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: srcVol.GetVolumeId()})
	h.expectCrash(c, err)
	if _, ok := lvNamed(t, "lnv-thick", "t"+name[1:]); ok {
		t.Fatal("the temporary snapshot is still there after the crash past its removal")
	}
	if _, ok := lvNamed(t, "lnv-thick", srcLV.Name); !ok {
		t.Fatal("the source is gone although the crash came before its lvremove")
	}

	c = h.start("")
	c.delete(t, srcVol.GetVolumeId())
	c.delete(t, srcVol.GetVolumeId()) // a repeat is success too
	if _, ok := lvNamed(t, "lnv-thick", srcLV.Name); ok {
		t.Fatal("the source LV is still there after the replayed DeleteVolume")
	}
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := c.ctl.CreateVolume(ctx, req); status.Code(err) != codes.NotFound {
		t.Fatalf("replayed clone of the deleted source: %v, want NotFound", err)
	}
	clone, ok := lvNamed(t, "lnv-thick", name)
	if !ok || tagOf(clone, "lnv.copying") != "1" {
		t.Fatalf("the incomplete clone: %+v (exists=%v), want it kept with lnv.copying", clone, ok)
	}
	// Its ID, as an operator composes it from LVM (class.vg uuid.lv name.lv uuid); staging
	// refuses it, DeleteVolume removes it.
	vgUUID := strings.TrimSpace(run(t, "lvm", "vgs", "--noheadings", "-o", "vg_uuid", "lnv-thick"))
	cloneID := strings.Join([]string{"thick", strings.ReplaceAll(vgUUID, "-", ""), name, strings.ReplaceAll(clone.UUID, "-", "")}, ".")
	cv := h.vol(cloneID, "clone", capy)
	if err := os.MkdirAll(filepath.Dir(cv.stage), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.node.NodeStageVolume(ctx, cv.stageReq()); status.Code(err) != codes.Unavailable {
		t.Fatalf("NodeStage of the incomplete clone: %v, want Unavailable", err)
	}
	c.delete(t, cloneID)
	h.stop(c)
	h.checkLVsAsBefore()
}

// crashSetup: class setup on spare drives killed after pvcreate (a thick class on two
// drives: one labelled, one still blank), after vgcreate (a thin class without its pool)
// or after the thin pool's lvcreate. The restarted node finishes the class, which then
// serves a volume's whole life. The spares are left blank.
func crashSetup(t *testing.T, h *crashHarness) {
	var class, vg, typ string
	var serials []string
	switch h.point {
	case failpoint.SetupAfterPVCreate:
		class, vg, typ, serials = "crash-pv", "lnv-crash-pv", "thick", []string{"LNVSPARE0", "LNVSPARE1"}
	case failpoint.SetupAfterVGCreate:
		class, vg, typ, serials = "crash-vg", "lnv-crash-vg", "thin", []string{"LNVSPARE2"}
	default:
		class, vg, typ, serials = "crash-pool", "lnv-crash-pool", "thin", []string{"LNVSPARE3"}
	}
	var devs []string
	for _, s := range serials {
		devs = append(devs, namespaceBySerial(t, s).DevPath)
	}
	// the spares are the test's: blank them (earlier tests may have written to them)
	run(t, "wipefs", append([]string{"-q", "-a"}, devs...)...)
	for _, d := range devs {
		if typ := blkidType(t, d); typ != "" {
			t.Fatalf("%s shows %s after wipefs", d, typ)
		}
	}
	t.Cleanup(func() { cleanSpareClass(t, vg, devs) })
	extra := fmt.Sprintf("- name: %s\n  volumeGroup: %s\n  type: %s\n  fsType: ext4\n  devices:\n", class, vg, typ)
	for _, s := range serials {
		extra += "  - serial: " + s + "\n"
	}
	h.config = filepath.Join(h.dir, "config.yaml")
	if err := os.WriteFile(h.config, []byte(classesYAML(extra)), 0o644); err != nil {
		t.Fatal(err)
	}

	c := h.start(h.point)
	h.expectCrash(c, nil)
	pvs := pvState(t)
	var labelled string
	switch h.point {
	case failpoint.SetupAfterPVCreate:
		first, second := pvs[devs[0]], pvs[devs[1]]
		if first.uuid == "" || first.vg != "" || second.uuid != "" {
			t.Fatalf("after a crash past the first pvcreate: %s %+v, %s %+v; want an orphan PV and a blank drive", devs[0], first, devs[1], second)
		}
		labelled = first.uuid
	case failpoint.SetupAfterVGCreate:
		if pvs[devs[0]].vg != vg {
			t.Fatalf("after a crash past vgcreate: %s %+v, want a PV of %s", devs[0], pvs[devs[0]], vg)
		}
		if _, ok := lvNamed(t, vg, "pool"); ok {
			t.Fatal("a thin pool exists after a crash before its creation")
		}
	default:
		if lv, ok := lvNamed(t, vg, "pool"); !ok {
			t.Fatalf("no thin pool after a crash past its lvcreate (%+v)", lv)
		}
	}

	c = h.start("")
	pvs = pvState(t)
	for _, d := range devs {
		if pvs[d].vg != vg {
			t.Fatalf("after the restart %s is %+v, want a PV of %s", d, pvs[d], vg)
		}
	}
	if labelled != "" && pvs[devs[0]].uuid != labelled {
		t.Fatalf("the labelled drive was labelled again: PV UUID %s → %s", labelled, pvs[devs[0]].uuid)
	}
	if typ == "thin" {
		pool, ok := lvNamed(t, vg, "pool")
		if !ok {
			t.Fatal("no thin pool after the restart")
		}
		attr := strings.TrimSpace(run(t, "lvm", "lvs", "--noheadings", "-o", "lv_attr", vg+"/pool"))
		if !strings.HasPrefix(attr, "t") {
			t.Fatalf("%s/pool has attributes %s: not a thin pool (%+v)", vg, attr, pool)
		}
	}
	ctx, cancel := rpcCtx()
	defer cancel()
	capResp, err := c.ctl.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"localnvme.io/device-class": class}})
	if err != nil || capResp.GetAvailableCapacity() == 0 {
		t.Fatalf("GetCapacity of class %s after the restart: %v, %v; want it ready with space", class, capResp, err)
	}
	capy := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	v := h.vol(c.create(t, createReq("crash-setup-"+h.point, class, 32<<20, capy, "")).GetVolumeId(), "v", capy)
	c.finish(t, v, c.up(t, v))
	h.stop(c)
	cleanSpareClass(t, vg, devs)
	h.checkLVsAsBefore()
	for _, d := range devs {
		if typ := blkidType(t, d); typ != "" {
			t.Errorf("spare %s shows %s after the cleanup, want it blank", d, typ)
		}
	}
}

type pvInfo struct{ uuid, vg string }

// pvState is every PV: device → UUID and VG.
func pvState(t *testing.T) map[string]pvInfo {
	t.Helper()
	out := map[string]pvInfo{}
	for _, l := range strings.Split(run(t, "lvm", "pvs", "--noheadings", "--separator", "|", "-o", "pv_name,pv_uuid,vg_name"), "\n") {
		f := strings.Split(strings.TrimSpace(l), "|")
		if len(f) == 3 {
			out[f[0]] = pvInfo{uuid: f[1], vg: f[2]}
		}
	}
	return out
}

// cleanSpareClass removes a setup case's VG and PV labels and leaves the spares blank.
func cleanSpareClass(t *testing.T, vg string, devs []string) {
	var errs []error
	if err := exec.Command("lvm", "vgs", vg).Run(); err == nil {
		if out, err := exec.Command("lvm", "vgremove", "-f", vg).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("vgremove %s: %v: %s", vg, err, out))
		}
	}
	for _, d := range devs {
		if exec.Command("lvm", "pvs", d).Run() == nil {
			if out, err := exec.Command("lvm", "pvremove", "-y", d).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("pvremove %s: %v: %s", d, err, out))
			}
		}
		if out, err := exec.Command("wipefs", "-q", "-a", d).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("wipefs %s: %v: %s", d, err, out))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("cleaning up the spare drives: %v", err)
	}
}
