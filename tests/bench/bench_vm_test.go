//go:build vmbench

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/driver"
	"github.com/localnvme/localnvme/pkg/node"
	"github.com/localnvme/localnvme/pkg/volume"
)

// The bench drives (hack/bench.sh --drives): one device class per kind, and a raw namespace
// no class touches for fio's baseline.
const (
	serialThick = "LNVBTHICK0"
	serialStr0  = "LNVBSTR0"
	serialStr1  = "LNVBSTR1"
	serialThin  = "LNVBTHIN0"
	serialRaw   = "LNVBRAW0"

	paramClass = "localnvme.io/device-class"
	mib        = 1 << 20
	// fillerBytes: one 4 MiB extent per filler LV, so 1,000 of them fit anywhere.
	fillerBytes = 4 * mib
)

var benchConfig = fmt.Sprintf(`deviceClasses:
- name: thick
  volumeGroup: bench-thick
  type: thick
  default: true
  fsType: ext4
  devices:
  - serial: %s
- name: striped
  volumeGroup: bench-striped
  type: thick
  fsType: ext4
  stripes: 2
  devices:
  - serial: %s
  - serial: %s
- name: thin
  volumeGroup: bench-thin
  type: thin
  fsType: xfs
  thinPool:
    sizePercent: 90
    overprovisionRatio: 10
  devices:
  - serial: %s
`, serialThick, serialStr0, serialStr1, serialThin)

// classInfo: the VG and how the bare tools create an LV of the same kind there.
type classInfo struct {
	name, vg string
	thin     bool
	stripes  int
}

var classes = []classInfo{
	{name: "thick", vg: "bench-thick"},
	{name: "striped", vg: "bench-striped", stripes: 2},
	{name: "thin", vg: "bench-thin", thin: true},
}

func classByName(n string) classInfo {
	for _, c := range classes {
		if c.name == n {
			return c
		}
	}
	panic("no class " + n)
}

// knobs are the BENCH_* environment variables (hack/bench.sh passes them into the VM).
type knobs struct {
	levels       []int
	n, nSlow     int
	sizeMiB      int // create/delete/snapshot/clone(thin) volumes
	stageMiB     int // staged volumes (xfs needs 300 MiB)
	cloneMiB     int // thick clone source
	conc         int // concurrent CreateVolume calls
	page         int // ListVolumes page size
	fioSecs      int
	fioN         int
	fioMiB       int
	fio          string // fio binary ("" or missing: fio rows skipped)
	bin          string // localnvme binary for restart → serving
	lvmConfig    string // --config for the driver and the bare lvm commands alike
	lvmShell     bool   // the driver runs lvm in lvm shells (its default; BENCH_LVM_SHELL=0: a process per command)
	fillActive   bool
	only         *regexp.Regexp // measurement names to run (default all)
	out, version string
}

// shellMode is node.Options.LVMShell for the driver under test.
func (k *knobs) shellMode() string {
	if k.lvmShell {
		return node.LVMShellOn
	}
	return node.LVMShellOff
}

func envInt(k string, def int) int {
	if v := os.Getenv(k); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			panic(fmt.Sprintf("%s=%q: want a non-negative integer", k, v))
		}
		return n
	}
	return def
}

func envStr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

func loadKnobs() knobs {
	k := knobs{
		n: envInt("BENCH_N", 20), nSlow: envInt("BENCH_N_SLOW", 3),
		sizeMiB: envInt("BENCH_SIZE_MIB", 256), stageMiB: envInt("BENCH_STAGE_MIB", 512), cloneMiB: envInt("BENCH_CLONE_MIB", 1024),
		conc: envInt("BENCH_CONCURRENCY", 50), page: envInt("BENCH_PAGE", 100),
		fioSecs: envInt("BENCH_FIO_SECONDS", 10), fioN: envInt("BENCH_FIO_N", 3), fioMiB: envInt("BENCH_FIO_MIB", 256),
		fio: envStr("BENCH_FIO", "/payload/fio/fio"), bin: envStr("BENCH_BIN", "/payload/localnvme"),
		lvmConfig: envStr("BENCH_LVM_CONFIG", ""), lvmShell: envStr("BENCH_LVM_SHELL", "1") != "0", fillActive: envStr("BENCH_FILL_ACTIVE", "1") != "0",
		out: envStr("BENCH_OUT", "/results"), version: envStr("BENCH_VERSION", "dev"),
	}
	for _, s := range strings.Split(envStr("BENCH_LEVELS", "10,100,500,1000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			panic(fmt.Sprintf("BENCH_LEVELS: %q is not a count", s))
		}
		k.levels = append(k.levels, n)
	}
	if re := envStr("BENCH_ONLY", ""); re != "" {
		k.only = regexp.MustCompile(re)
	}
	if k.n < 1 || k.nSlow < 1 {
		panic("BENCH_N and BENCH_N_SLOW must be at least 1")
	}
	return k
}

// countingHost counts the mount(8) and umount(8) runs of the driver (mount-utils executes
// them itself, not through the exec interface).
type countingHost struct {
	driver.Host
	c *ExecCounter
}

func (h countingHost) Mount(source, target, fstype string, options []string) error {
	h.c.Add("mount")
	return h.Host.Mount(source, target, fstype, options)
}

func (h countingHost) Unmount(target string) error {
	h.c.Add("umount")
	return h.Host.Unmount(target)
}

type bench struct {
	k       knobs
	ctx     context.Context
	node    *node.Node
	counter *ExecCounter
	ctl     csi.ControllerClient
	nod     csi.NodeClient
	ident   csi.IdentityClient
	dir     string
	start   time.Time
	res     Results
	filled  map[string]int
	level   int
	failed  []string
}

// benchFailure is a failed step: the measurement is abandoned, the run goes on.
type benchFailure struct{ msg string }

func failf(format string, a ...any) { panic(benchFailure{fmt.Sprintf(format, a...)}) }

func (b *bench) logf(format string, a ...any) {
	fmt.Printf("[bench %6.0fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, a...))
}

// want reports whether measurement name is selected (BENCH_ONLY).
func (b *bench) want(name string) bool { return b.k.only == nil || b.k.only.MatchString(name) }

// section runs one group of measurements; a failure is logged, noted in the results and
// the run continues with the next group. Results are written after every group.
func (b *bench) section(name string, f func()) {
	if !b.want(name) {
		return
	}
	t0 := time.Now()
	b.logf("level %d: %s ...", b.level, name)
	func() {
		defer func() {
			if r := recover(); r != nil {
				msg := fmt.Sprint(r)
				if bf, ok := r.(benchFailure); ok {
					msg = bf.msg
				} else {
					msg += "\n" + string(debug.Stack())
				}
				b.logf("level %d: %s FAILED: %s", b.level, name, msg)
				b.failed = append(b.failed, fmt.Sprintf("%s at %d LVs", name, b.level))
				b.res.Meta.Notes = append(b.res.Meta.Notes, fmt.Sprintf("FAILED: %s at %d LVs: %s", name, b.level, firstLine(msg)))
			}
		}()
		f()
	}()
	b.logf("level %d: %s done in %.1fs", b.level, name, time.Since(t0).Seconds())
	b.write()
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func (b *bench) write() {
	b.res.Meta.WallSecs = time.Since(b.start).Seconds()
	if err := b.res.WriteFiles(b.k.out); err != nil {
		b.logf("writing results: %v", err)
	}
}

func (b *bench) add(r Record) {
	b.res.Records = append(b.res.Records, r)
	b.logf("  %-34s lvs=%-4d n=%-3d driver p50 %8s p90 %8s | bare p50 %8s p90 %8s | ratio %s | execs/op %s",
		r.Name, r.LVs, r.N, fmtNum(r.DriverP50), fmtNum(r.DriverP90), fmtNum(r.BareP50), fmtNum(r.BareP90), fmtRatio(r.Ratio), fmtNum(r.ExecsPerOp))
}

// ------------------------------------------------------------------ the two sides

// measure collects one measurement's samples: the driver's (timed, execs counted) and the
// bare tools' (timed).
type measure struct {
	b          *bench
	name, unit string
	drv, bare  []time.Duration
	execs      Counts
	ops        int
	driverDesc string
	bareDesc   string
	note       string
	scale      float64 // divide ms by this (ms/GiB)
}

func (b *bench) measure(name, driverDesc, bareDesc string) *measure {
	return &measure{b: b, name: name, unit: "ms", execs: Counts{}, driverDesc: driverDesc, bareDesc: bareDesc, scale: 1}
}

// driver times f and counts the commands the driver started meanwhile (the bench runs
// nothing through the counter itself, and nothing else runs during f).
func (m *measure) driver(f func()) {
	before := m.b.counter.Snapshot()
	t0 := time.Now()
	f()
	m.drv = append(m.drv, time.Since(t0))
	m.execs.Add(m.b.counter.Snapshot().Sub(before))
	m.ops++
}

func (m *measure) bareSide(f func()) {
	t0 := time.Now()
	f()
	m.bare = append(m.bare, time.Since(t0))
}

func (m *measure) done() {
	scale := func(ds []time.Duration) []float64 {
		xs := Millis(ds)
		for i := range xs {
			xs[i] /= m.scale
		}
		return xs
	}
	r := Sample(m.name, m.b.level, m.unit, scale(m.drv), scale(m.bare)).WithExecs(m.execs, m.ops)
	r.Driver, r.Bare, r.Note = m.driverDesc, m.bareDesc, m.note
	m.b.add(r)
}

// alt runs the two sides of iteration i, the driver first on even i and the bare tools
// first on odd i, so neither side always runs on a warmer (or colder) system.
func alt(i int, driverSide, bareSide func()) {
	if i%2 == 0 {
		driverSide()
		bareSide()
	} else {
		bareSide()
		driverSide()
	}
}

// ------------------------------------------------------------------ bare tools

var cmdEnv = append(os.Environ(), "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1")

// sh runs a command like the driver does (LC_ALL=C), failing the measurement on error.
func sh(name string, args ...string) string {
	out, err := shErr(name, args...)
	if err != nil {
		failf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func shErr(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = cmdEnv
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// lvm runs `lvm sub [--config X] args...`, as pkg/lvm does.
func (b *bench) lvm(sub string, args ...string) string {
	a := []string{sub}
	if b.k.lvmConfig != "" {
		a = append(a, "--config", b.k.lvmConfig)
	}
	return sh("lvm", append(a, args...)...)
}

func bytesArg(n uint64) string { return strconv.FormatUint(n, 10) + "b" }

// bareCreate creates an LV the way the driver's CreateVolume does, without tags: thick
// LVs zeroed (-Zy -Wy and then BLKZEROOUT over the whole LV, as blkdiscard -z), thin LVs
// from the pool (which zeroes on provisioning).
func (b *bench) bareCreate(c classInfo, name string, size uint64) {
	if c.thin {
		b.lvm("lvcreate", "--yes", "-ay", "-V", bytesArg(size), "--thinpool", "pool", "-n", name, c.vg)
		return
	}
	args := []string{"--yes", "-ay", "-Zy", "-Wy"}
	if c.stripes > 1 {
		args = append(args, "-i", strconv.Itoa(c.stripes))
	}
	b.lvm("lvcreate", append(args, "-L", bytesArg(size), "-n", name, c.vg)...)
	sh("blkdiscard", "-z", "/dev/"+c.vg+"/"+name)
}

func bareCreateDesc(c classInfo) string {
	if c.thin {
		return "lvcreate -ay -V S --thinpool pool"
	}
	s := "lvcreate -ay -Zy -Wy -L S"
	if c.stripes > 1 {
		s = fmt.Sprintf("lvcreate -ay -Zy -Wy -i %d -L S", c.stripes)
	}
	return s + " + blkdiscard -z (the driver zeroes a new thick LV with BLKZEROOUT)"
}

// ------------------------------------------------------------------ driver calls

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
}

func fsCap(fs string) *csi.VolumeCapability {
	if fs == "block" {
		return blockCap()
	}
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}},
	}
}

func (b *bench) create(name, class string, size uint64, vc *csi.VolumeCapability, src *csi.VolumeContentSource) string {
	resp, err := b.ctl.CreateVolume(b.ctx, &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: int64(size)},
		Parameters: map[string]string{paramClass: class}, VolumeCapabilities: []*csi.VolumeCapability{vc},
		VolumeContentSource: src,
	})
	if err != nil {
		failf("CreateVolume %s (class %s): %v", name, class, err)
	}
	return resp.GetVolume().GetVolumeId()
}

func (b *bench) deleteVolume(id string) {
	if _, err := b.ctl.DeleteVolume(b.ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		failf("DeleteVolume %s: %v", id, err)
	}
}

func volumeSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
}

func (b *bench) stage(id, staging, target, fs string) {
	vc := fsCap(fs)
	if _, err := b.nod.NodeStageVolume(b.ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: vc}); err != nil {
		failf("NodeStageVolume %s: %v", id, err)
	}
	if _, err := b.nod.NodePublishVolume(b.ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: vc}); err != nil {
		failf("NodePublishVolume %s: %v", id, err)
	}
}

func (b *bench) unstage(id, staging, target string) {
	if _, err := b.nod.NodeUnpublishVolume(b.ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		failf("NodeUnpublishVolume %s: %v", id, err)
	}
	if _, err := b.nod.NodeUnstageVolume(b.ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
		failf("NodeUnstageVolume %s: %v", id, err)
	}
}

// ------------------------------------------------------------------ setup

func requireVM(t *testing.T) {
	if os.Getenv("LOCALNVME_IN_VM") != "1" {
		t.Fatal("the benchmark needs the VM harness (hack/bench.sh): LOCALNVME_IN_VM is not set; refusing to touch this machine's devices")
	}
}

func TestMain(m *testing.M) {
	klog.InitFlags(nil)
	flag.Parse()
	os.Exit(m.Run())
}

func (b *bench) startNode(t *testing.T) {
	cfg, err := config.Parse([]byte(benchConfig))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	b.counter = NewExecCounter(utilexec.New())
	n, err := node.Build(b.ctx, node.Options{
		NodeID: "bench-node", Version: b.k.version, Config: cfg, LVMConfig: b.k.lvmConfig,
		Exec: b.counter, Host: countingHost{Host: driver.NewOSHost(nil), c: b.counter},
		LVMShell: b.k.shellMode(), LVMOnCommand: b.counter.OnLVMCommand,
	})
	if err != nil {
		t.Fatalf("building node: %v", err)
	}
	for _, c := range n.Engine.Classes() {
		if !c.Ready {
			t.Fatalf("class %s is not ready: %v", c.Name, c.Problems)
		}
	}
	b.node = n
	sock := filepath.Join(b.dir, "csi.sock")
	go func() {
		if err := n.Driver.Serve(b.ctx, "unix://"+sock); err != nil {
			fmt.Printf("serve: %v\n", err)
		}
	}()
	waitSocket(t, sock)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	b.ctl, b.nod, b.ident = csi.NewControllerClient(conn), csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	if err := os.WriteFile(filepath.Join(b.dir, "config.yaml"), []byte(benchConfig), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitSocket(t *testing.T, sock string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s did not come up", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBench is the benchmark (hack/bench.sh runs it in the VM; docs/performance.md).
func TestBench(t *testing.T) {
	requireVM(t)
	k := loadKnobs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &bench{k: k, ctx: ctx, dir: "/run/bench", start: time.Now(), filled: map[string]int{}}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	b.res.Meta = Meta{Started: b.start, Version: k.version, Kernel: strings.TrimSpace(string(kernel)), Levels: k.levels, N: k.n, NSlow: k.nSlow,
		Notes: []string{
			"TCG (no KVM): device-mapper, syscalls and fork/exec are far slower than on hardware; compare ratios, not milliseconds.",
			"Each row alternates driver and bare iterations in one run (driver first on even iterations). The driver is called over its gRPC socket; bare tools run with the same LVM configuration.",
			fmt.Sprintf("Driver's lvm commands in lvm shells: %v (execs/op counts them as lvm <subcommand> either way).", k.lvmShell),
		}}
	b.logf("knobs: levels %v, n %d, n_slow %d, size %d MiB, stage %d MiB, clone %d MiB, concurrency %d, page %d", k.levels, k.n, k.nSlow, k.sizeMiB, k.stageMiB, k.cloneMiB, k.conc, k.page)
	b.startNode(t)
	b.logf("driver up: %d classes", len(b.node.Engine.Classes()))
	b.section("fio", b.fio)
	for _, lvl := range k.levels {
		b.fill(lvl)
		b.level = lvl
		for _, c := range classes {
			b.section("create+delete/"+c.name, func() { b.createDelete(c) })
		}
		b.section("snapshot/thin", func() { b.snapshot(classByName("thin")) })
		b.section("snapshot/thick", func() { b.snapshot(classByName("thick")) })
		b.section("clone/thin", b.cloneThin)
		b.section("clone/thick", b.cloneThick)
		b.section("expand/thick-ext4", func() { b.expand(classByName("thick"), "ext4") })
		b.section("expand/thin-xfs", func() { b.expand(classByName("thin"), "xfs") })
		for _, fs := range []string{"ext4", "xfs", "block"} {
			b.section("stage+publish/"+fs, func() { b.stageMeasure(fs) })
		}
		b.section("list", b.list)
		b.section("capacity", b.capacity)
		b.section("concurrent-create", b.concurrent)
		b.section("restart", b.restart)
	}
	b.level = 0
	b.write()
	b.logf("done in %s; results in %s/results.{json,md}", time.Since(b.start).Round(time.Second), k.out)
	if len(b.failed) > 0 {
		t.Errorf("measurements failed: %s", strings.Join(b.failed, "; "))
	}
}

// fill brings every class to lvl LVs that look like the driver's volumes (kind and name
// tags, 4 MiB each), created with bare lvcreate; they stay for the rest of the run.
func (b *bench) fill(lvl int) {
	for _, c := range classes {
		have := b.filled[c.name]
		if have >= lvl {
			continue
		}
		t0 := time.Now()
		b.logf("filling %s to %d LVs (from %d)", c.vg, lvl, have)
		act := "-an"
		if b.k.fillActive {
			act = "-ay"
		}
		for i := have; i < lvl; i++ {
			req := fmt.Sprintf("bench-fill-%s-%d", c.name, i)
			args := []string{"--yes", act}
			for _, tag := range []string{volume.Tag(volume.TagKind, string(volume.KindVolume)), volume.Tag(volume.TagName, volume.EncodeName(req)), volume.Tag(volume.TagRequested, strconv.Itoa(fillerBytes))} {
				args = append(args, "--addtag", tag)
			}
			if c.thin {
				args = append(args, "-V", bytesArg(fillerBytes), "--thinpool", "pool")
			} else {
				args = append(args, "-Zn", "-Wn", "-L", bytesArg(fillerBytes))
			}
			b.lvm("lvcreate", append(args, "-n", volume.LVName(volume.KindVolume, req), c.vg)...)
			if (i+1)%50 == 0 {
				b.logf("  %s: %d/%d LVs (%.1f s)", c.vg, i+1, lvl, time.Since(t0).Seconds())
			}
		}
		b.filled[c.name] = lvl
		b.logf("filled %s to %d LVs in %.1f s", c.vg, lvl, time.Since(t0).Seconds())
	}
	b.node.LVM.Invalidate()
}

// ------------------------------------------------------------------ measurements

func (b *bench) size() uint64 { return uint64(b.k.sizeMiB) * mib }

func (b *bench) createDelete(c classInfo) {
	cm := b.measure("create/"+c.name, "CreateVolume (block)", bareCreateDesc(c))
	dm := b.measure("delete/"+c.name, "DeleteVolume", "lvremove -f")
	for i := 0; i < b.k.n; i++ {
		var id string
		bare := fmt.Sprintf("bare%s%d", c.name, i)
		alt(i, func() {
			cm.driver(func() {
				id = b.create(fmt.Sprintf("bench-%s-%d-%d", c.name, b.level, i), c.name, b.size(), blockCap(), nil)
			})
		},
			func() { cm.bareSide(func() { b.bareCreate(c, bare, b.size()) }) })
		alt(i, func() { dm.driver(func() { b.deleteVolume(id) }) },
			func() { dm.bareSide(func() { b.lvm("lvremove", "-f", c.vg+"/"+bare) }) })
	}
	cm.done()
	dm.done()
}

func (b *bench) snapshot(c classInfo) {
	src := b.create(fmt.Sprintf("bench-snapsrc-%s-%d", c.name, b.level), c.name, b.size(), blockCap(), nil)
	bareSrc := fmt.Sprintf("baresnapsrc%d", b.level)
	b.bareCreate(c, bareSrc, b.size())
	desc := "lvcreate -s -kn -ay (thin snapshot)"
	var cow uint64
	if !c.thin {
		cow = b.size() + b.size()/64 + 8*mib // the driver's COW size (volume.cowSize)
		desc = "lvcreate -s -L <origin + 1/64 + 8 MiB> (COW snapshot)"
	}
	sm := b.measure("snapshot/"+c.name, "CreateSnapshot", desc)
	dm := b.measure("delete-snapshot/"+c.name, "DeleteSnapshot", "lvremove -f")
	for i := 0; i < b.k.n; i++ {
		var sid string
		bare := fmt.Sprintf("baresnap%d", i)
		alt(i, func() {
			sm.driver(func() {
				resp, err := b.ctl.CreateSnapshot(b.ctx, &csi.CreateSnapshotRequest{SourceVolumeId: src, Name: fmt.Sprintf("bench-snap-%s-%d-%d", c.name, b.level, i)})
				if err != nil {
					failf("CreateSnapshot: %v", err)
				}
				sid = resp.GetSnapshot().GetSnapshotId()
			})
		}, func() {
			sm.bareSide(func() {
				if c.thin {
					b.lvm("lvcreate", "-s", "-kn", "-ay", "-n", bare, c.vg+"/"+bareSrc)
				} else {
					b.lvm("lvcreate", "-s", "-L", bytesArg(cow), "-n", bare, c.vg+"/"+bareSrc)
				}
			})
		})
		alt(i, func() {
			dm.driver(func() {
				if _, err := b.ctl.DeleteSnapshot(b.ctx, &csi.DeleteSnapshotRequest{SnapshotId: sid}); err != nil {
					failf("DeleteSnapshot: %v", err)
				}
			})
		}, func() { dm.bareSide(func() { b.lvm("lvremove", "-f", c.vg+"/"+bare) }) })
	}
	sm.done()
	dm.done()
	b.deleteVolume(src)
	b.lvm("lvremove", "-f", c.vg+"/"+bareSrc)
}

func (b *bench) cloneThin() {
	c := classByName("thin")
	src := b.create(fmt.Sprintf("bench-clonesrc-thin-%d", b.level), c.name, b.size(), blockCap(), nil)
	bareSrc := fmt.Sprintf("bareclonesrc%d", b.level)
	b.bareCreate(c, bareSrc, b.size())
	m := b.measure("clone/thin", "CreateVolume from a volume (block)", "lvcreate -s -kn -ay (thin snapshot as a volume)")
	for i := 0; i < b.k.n; i++ {
		var id string
		bare := fmt.Sprintf("bareclone%d", i)
		alt(i, func() {
			m.driver(func() {
				id = b.create(fmt.Sprintf("bench-clone-thin-%d-%d", b.level, i), c.name, b.size(), blockCap(), volumeSource(src))
			})
		}, func() { m.bareSide(func() { b.lvm("lvcreate", "-s", "-kn", "-ay", "-n", bare, c.vg+"/"+bareSrc) }) })
		b.deleteVolume(id)
		b.lvm("lvremove", "-f", c.vg+"/"+bare)
	}
	m.done()
	b.deleteVolume(src)
	b.lvm("lvremove", "-f", c.vg+"/"+bareSrc)
}

func (b *bench) cloneThick() {
	c := classByName("thick")
	size := uint64(b.k.cloneMiB) * mib
	cow := size + size/64 + 8*mib
	src := b.create(fmt.Sprintf("bench-clonesrc-thick-%d", b.level), c.name, size, blockCap(), nil)
	bareSrc := fmt.Sprintf("bareclonesrc%d", b.level)
	b.bareCreate(c, bareSrc, size)
	m := b.measure("clone/thick", "CreateVolume from a volume (block): lvcreate, COW snapshot, copy, lvremove",
		"lvcreate -Zy -Wy -L S + lvcreate -s -L cow + dd bs=4M conv=fsync + lvremove -f")
	m.unit, m.scale = "ms/GiB", float64(size)/float64(1<<30)
	m.note = fmt.Sprintf("source %d MiB", b.k.cloneMiB)
	for i := 0; i < b.k.nSlow; i++ {
		var id string
		bare, tmp := fmt.Sprintf("bareclone%d", i), fmt.Sprintf("baretmp%d", i)
		alt(i, func() {
			m.driver(func() {
				id = b.create(fmt.Sprintf("bench-clone-thick-%d-%d", b.level, i), c.name, size, blockCap(), volumeSource(src))
			})
		}, func() {
			m.bareSide(func() {
				b.lvm("lvcreate", "--yes", "-ay", "-Zy", "-Wy", "-L", bytesArg(size), "-n", bare, c.vg)
				b.lvm("lvcreate", "-s", "-L", bytesArg(cow), "-n", tmp, c.vg+"/"+bareSrc)
				sh("dd", "if=/dev/"+c.vg+"/"+tmp, "of=/dev/"+c.vg+"/"+bare, "bs=4M", "conv=fsync")
				b.lvm("lvremove", "-f", c.vg+"/"+tmp)
			})
		})
		b.deleteVolume(id)
		b.lvm("lvremove", "-f", c.vg+"/"+bare)
	}
	m.done()
	b.deleteVolume(src)
	b.lvm("lvremove", "-f", c.vg+"/"+bareSrc)
}

func mkfsArgs(fs, dev string) (string, []string) {
	if fs == "xfs" {
		return "mkfs.xfs", []string{"-q", dev}
	}
	return "mkfs.ext4", []string{"-q", "-m", "0", dev}
}

func mountArgs(fs, dev, dir string) []string {
	if fs == "xfs" {
		return []string{"-t", fs, "-o", "nouuid", dev, dir}
	}
	return []string{"-t", fs, dev, dir}
}

func mkdirs(ps ...string) {
	for _, p := range ps {
		if err := os.MkdirAll(p, 0o750); err != nil {
			failf("mkdir %s: %v", p, err)
		}
	}
}

// expand grows a staged, published volume by 64 MiB per iteration: ControllerExpandVolume
// then NodeExpandVolume, as external-resizer and kubelet call them.
func (b *bench) expand(c classInfo, fs string) {
	base := uint64(b.k.stageMiB) * mib
	const step = 64 * mib
	d := filepath.Join(b.dir, fmt.Sprintf("expand-%s-%d", c.name, b.level))
	dStage, dTarget, bStage, bTarget := d+"/d-stage", d+"/d-target", d+"/b-stage", d+"/b-target"
	mkdirs(dStage, bStage, bTarget)
	bare := fmt.Sprintf("bareexpand%d", b.level)
	dev := "/dev/" + c.vg + "/" + bare
	var id string
	// Cleanup also after a failure, so the next group starts from a clean node.
	defer func() {
		if id != "" {
			quietly(func() { b.unstage(id, dStage, dTarget) })
			quietly(func() { b.deleteVolume(id) })
		}
		quietly(func() { sh("umount", bTarget) })
		quietly(func() { sh("umount", bStage) })
		quietly(func() { b.lvm("lvremove", "-f", c.vg+"/"+bare) })
	}()
	id = b.create(fmt.Sprintf("bench-expand-%s-%d", c.name, b.level), c.name, base, fsCap(fs), nil)
	b.stage(id, dStage, dTarget, fs)
	b.bareCreate(c, bare, base)
	mk, mkArgs := mkfsArgs(fs, dev)
	sh(mk, mkArgs...)
	sh("mount", mountArgs(fs, dev, bStage)...)
	sh("mount", "--bind", bStage, bTarget)
	bareDesc := "lvextend -L + blkdiscard -f -z of the added range + resize2fs (online)"
	if c.thin {
		bareDesc = "lvextend -L + xfs_growfs (online)"
		if fs == "ext4" {
			bareDesc = "lvextend -L + resize2fs (online)"
		}
	} else if fs == "xfs" {
		bareDesc = "lvextend -L + blkdiscard -f -z of the added range + xfs_growfs (online)"
	}
	m := b.measure("expand/"+c.name+"-"+fs, "ControllerExpandVolume + NodeExpandVolume", bareDesc)
	m.note = "+64 MiB per iteration"
	for i := 0; i < b.k.n; i++ {
		old, size := base+uint64(i)*step, base+uint64(i+1)*step
		alt(i, func() {
			m.driver(func() {
				cr := &csi.CapacityRange{RequiredBytes: int64(size)}
				if _, err := b.ctl.ControllerExpandVolume(b.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: cr, VolumeCapability: fsCap(fs)}); err != nil {
					failf("ControllerExpandVolume: %v", err)
				}
				if _, err := b.nod.NodeExpandVolume(b.ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: dTarget, StagingTargetPath: dStage, CapacityRange: cr, VolumeCapability: fsCap(fs)}); err != nil {
					failf("NodeExpandVolume: %v", err)
				}
			})
		}, func() {
			m.bareSide(func() {
				b.lvm("lvextend", "-L", bytesArg(size), c.vg+"/"+bare)
				if !c.thin {
					// -f: the LV is mounted (blkdiscard refuses a busy device otherwise); the
					// range is past the filesystem's end until resize2fs runs.
					sh("blkdiscard", "-f", "-z", "-o", strconv.FormatUint(old, 10), "-l", strconv.FormatUint(size-old, 10), dev)
				}
				if fs == "xfs" {
					sh("xfs_growfs", bTarget)
				} else {
					sh("resize2fs", dev)
				}
			})
		})
	}
	m.done()
}

// quietly runs a cleanup step, ignoring its failure.
func quietly(f func()) {
	defer func() { _ = recover() }()
	f()
}

// stageMeasure: kubelet's NodeStage + NodePublish of a new (never formatted) volume, the
// unpublish/unstage pair, and the restage of the now formatted volume; thin volumes.
func (b *bench) stageMeasure(fs string) {
	c := classByName("thin")
	size := uint64(b.k.stageMiB) * mib
	first := b.measure("stage+publish/"+fs, "NodeStageVolume + NodePublishVolume (new volume)",
		"blkid -p + mkfs + mount + mount --bind")
	again := b.measure("restage+publish/"+fs, "NodeStageVolume + NodePublishVolume (formatted volume)", "blkid -p + mount + mount --bind")
	un := b.measure("unpublish+unstage/"+fs, "NodeUnpublishVolume + NodeUnstageVolume", "umount + umount")
	if fs == "block" {
		first.bareDesc, first.driverDesc = "mount --bind of the device node onto a file", "NodeStageVolume + NodePublishVolume"
		un.bareDesc = "umount"
	} else {
		mk, _ := mkfsArgs(fs, "")
		first.bareDesc = "blkid -p + " + mk + " + mount + mount --bind"
	}
	for i := 0; i < b.k.n; i++ {
		d := filepath.Join(b.dir, fmt.Sprintf("stage-%s-%d", fs, i))
		dStage, dTarget, bStage, bTarget := d+"/d-stage", d+"/d-target", d+"/b-stage", d+"/b-target"
		mkdirs(dStage, bStage)
		id := b.create(fmt.Sprintf("bench-stage-%s-%d-%d", fs, b.level, i), c.name, size, fsCap(fs), nil)
		bare := fmt.Sprintf("barestage%d", i)
		dev := "/dev/" + c.vg + "/" + bare
		b.bareCreate(c, bare, size)
		bareStage := func(format bool) {
			if fs == "block" {
				if f, err := os.OpenFile(bTarget, os.O_CREATE|os.O_RDONLY, 0o640); err != nil {
					failf("%v", err)
				} else {
					f.Close()
				}
				sh("mount", "--bind", dev, bTarget)
				return
			}
			if _, err := shErr("blkid", "-p", dev); format && err == nil {
				failf("blkid -p %s: a new LV shows a signature", dev)
			}
			if format {
				mk, args := mkfsArgs(fs, dev)
				sh(mk, args...)
			}
			sh("mount", mountArgs(fs, dev, bStage)...)
			mkdirs(bTarget)
			sh("mount", "--bind", bStage, bTarget)
		}
		bareUnstage := func() {
			sh("umount", bTarget)
			if fs != "block" {
				sh("umount", bStage)
			}
		}
		alt(i, func() { first.driver(func() { b.stage(id, dStage, dTarget, fs) }) }, func() { first.bareSide(func() { bareStage(true) }) })
		alt(i, func() { un.driver(func() { b.unstage(id, dStage, dTarget) }) }, func() { un.bareSide(bareUnstage) })
		if fs != "block" {
			alt(i, func() { again.driver(func() { b.stage(id, dStage, dTarget, fs) }) }, func() { again.bareSide(func() { bareStage(false) }) })
			b.unstage(id, dStage, dTarget)
			bareUnstage()
		}
		b.deleteVolume(id)
		b.lvm("lvremove", "-f", c.vg+"/"+bare)
		os.RemoveAll(d)
	}
	first.done()
	un.done()
	if fs != "block" {
		again.done()
	}
}

func (b *bench) vgs() []string {
	var out []string
	for _, c := range classes {
		out = append(out, c.vg)
	}
	return out
}

func (b *bench) list() {
	bareList := func() {
		b.lvm("lvs", append([]string{"--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,vg_uuid,lv_name,lv_uuid,lv_size,lv_attr,lv_tags"}, b.vgs()...)...)
	}
	bareDesc := "lvs --reportformat json -o vg_name,vg_uuid,lv_name,lv_uuid,lv_size,lv_attr,lv_tags (all classes)"
	listAll := func(page int) int {
		n, token := 0, ""
		for {
			resp, err := b.ctl.ListVolumes(b.ctx, &csi.ListVolumesRequest{MaxEntries: int32(page), StartingToken: token})
			if err != nil {
				failf("ListVolumes: %v", err)
			}
			n += len(resp.GetEntries())
			if token = resp.GetNextToken(); token == "" || page == 0 {
				return n
			}
		}
	}
	full := b.measure("list/full", "ListVolumes (one call, report cached)", bareDesc)
	fresh := b.measure("list/full-fresh", "ListVolumes (one call) after the cached report is dropped", bareDesc)
	paged := b.measure("list/paged", fmt.Sprintf("ListVolumes, every page of %d (report cached)", b.k.page), bareDesc)
	var entries int
	for i := 0; i < b.k.n; i++ {
		alt(i, func() { full.driver(func() { entries = listAll(0) }) }, func() { full.bareSide(bareList) })
		alt(i, func() {
			b.node.LVM.Invalidate()
			fresh.driver(func() { listAll(0) })
		}, func() { fresh.bareSide(bareList) })
		alt(i, func() { paged.driver(func() { listAll(b.k.page) }) }, func() { paged.bareSide(bareList) })
	}
	full.note = fmt.Sprintf("%d volumes listed", entries)
	for _, m := range []*measure{full, fresh, paged} {
		m.done()
	}
}

func (b *bench) capacity() {
	for _, name := range []string{"thick", "thin"} {
		c := classByName(name)
		bareDesc := "vgs --units b -o vg_size,vg_free,vg_extent_size"
		bare := func() { b.lvm("vgs", "--units", "b", "--nosuffix", "-o", "vg_size,vg_free,vg_extent_size", c.vg) }
		if c.thin {
			bareDesc = "lvs --units b -o lv_size,data_percent,metadata_percent <pool>"
			bare = func() {
				b.lvm("lvs", "--units", "b", "--nosuffix", "-o", "lv_size,data_percent,metadata_percent", c.vg+"/pool")
			}
		}
		m := b.measure("capacity/"+name, "GetCapacity (report cached)", bareDesc)
		for i := 0; i < b.k.n; i++ {
			alt(i, func() {
				m.driver(func() {
					if _, err := b.ctl.GetCapacity(b.ctx, &csi.GetCapacityRequest{Parameters: map[string]string{paramClass: name}}); err != nil {
						failf("GetCapacity: %v", err)
					}
				})
			}, func() { m.bareSide(bare) })
		}
		m.done()
	}
}

// concurrent: conc CreateVolume calls at once (thin, block) against conc bare lvcreates one
// after the other; the wall time of each batch is one sample.
func (b *bench) concurrent() {
	c := classByName("thin")
	m := b.measure(fmt.Sprintf("create/thin ×%d concurrent", b.k.conc), fmt.Sprintf("%d CreateVolume at once (wall)", b.k.conc),
		fmt.Sprintf("%d lvcreate -V one after the other (wall)", b.k.conc))
	m.note = "acceptance: ratio ≤ 0.8"
	for r := 0; r < b.k.nSlow; r++ {
		ids := make([]string, b.k.conc)
		alt(r, func() {
			m.driver(func() {
				var wg sync.WaitGroup
				errs := make(chan error, b.k.conc)
				for i := 0; i < b.k.conc; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, err := b.ctl.CreateVolume(b.ctx, &csi.CreateVolumeRequest{
							Name: fmt.Sprintf("bench-conc-%d-%d-%d", b.level, r, i), CapacityRange: &csi.CapacityRange{RequiredBytes: int64(b.size())},
							Parameters: map[string]string{paramClass: c.name}, VolumeCapabilities: []*csi.VolumeCapability{blockCap()},
						})
						if err != nil {
							errs <- err
							return
						}
						ids[i] = resp.GetVolume().GetVolumeId()
					}()
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					failf("concurrent CreateVolume: %v", err)
				}
			})
		}, func() {
			m.bareSide(func() {
				for i := 0; i < b.k.conc; i++ {
					b.bareCreate(c, fmt.Sprintf("bareconc%d", i), b.size())
				}
			})
		})
		for _, id := range ids {
			b.deleteVolume(id)
		}
		var refs []string
		for i := 0; i < b.k.conc; i++ {
			refs = append(refs, fmt.Sprintf("%s/bareconc%d", c.vg, i))
		}
		b.lvm("lvremove", append([]string{"-f"}, refs...)...)
	}
	m.ops = m.ops * b.k.conc // execs per CreateVolume
	m.done()
}

// restart: the localnvme binary started as the node plugin is, timed from exec to the first
// Probe that answers ready over its socket; against activating the VGs and reading the
// full report with the bare tools. Its execs are counted on an in-process node.Build.
func (b *bench) restart() {
	if _, err := os.Stat(b.k.bin); err != nil {
		failf("no localnvme binary at %s (BENCH_BIN): %v", b.k.bin, err)
	}
	m := b.measure("restart→serving", "localnvme node: exec → Probe ready", "lvm vgchange -ay -K <class VGs> + lvm fullreport")
	m.note = "acceptance: driver < 1 s"
	sock := filepath.Join(b.dir, "restart.sock")
	for i := 0; i < b.k.nSlow; i++ {
		alt(i, func() {
			os.Remove(sock)
			var cmd *exec.Cmd
			t0 := time.Now()
			cmd = exec.Command(b.k.bin, "node", "--endpoint", "unix://"+sock, "--config", filepath.Join(b.dir, "config.yaml"),
				"--node-id", "bench-restart", "--metrics-address", "", "--kubelet-registration-dir", "", "--logtostderr=false",
				"--log_file", filepath.Join(b.k.out, "driver-restart.log"), "--lvm-shell="+strconv.FormatBool(b.k.lvmShell))
			if err := cmd.Start(); err != nil {
				failf("starting %s: %v", b.k.bin, err)
			}
			defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
			if err := probeReady(sock, 2*time.Minute); err != nil {
				failf("restart: %v", err)
			}
			m.drv = append(m.drv, time.Since(t0))
		}, func() {
			m.bareSide(func() {
				b.lvm("vgchange", append([]string{"-ay", "-K"}, b.vgs()...)...)
				b.lvm("fullreport", "--reportformat", "json")
			})
		})
	}
	// The execs of one start, counted on an in-process build (not served, not timed).
	cfg, err := config.Parse([]byte(benchConfig))
	if err != nil {
		failf("%v", err)
	}
	ctr := NewExecCounter(utilexec.New())
	if _, err := node.Build(b.ctx, node.Options{NodeID: "bench-count", Version: b.k.version, Config: cfg, LVMConfig: b.k.lvmConfig, Exec: ctr,
		LVMShell: b.k.shellMode(), LVMOnCommand: ctr.OnLVMCommand}); err != nil {
		failf("counting build: %v", err)
	}
	m.execs, m.ops = ctr.Snapshot(), 1
	m.done()
}

func probeReady(sock string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{})
			cancel()
			conn.Close()
			if err == nil && resp.GetReady().GetValue() {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s: no ready Probe within %s", sock, limit)
}

// ------------------------------------------------------------------ fio

type fioJob struct {
	name, rw, bs string
	qd           int
	unit         string
}

// fio: reads on a linear LV (thick class) against the raw namespace, alternating; in TCG
// device-mapper's per-I/O cost is inflated, so the ratio overstates it.
func (b *bench) fio() {
	if _, err := os.Stat(b.k.fio); err != nil {
		b.res.Meta.Notes = append(b.res.Meta.Notes, fmt.Sprintf("fio rows skipped: no fio at %s (BENCH_FIO)", b.k.fio))
		b.logf("fio: skipped (no %s)", b.k.fio)
		return
	}
	raw := ""
	nss, err := disk.Discoverer{}.List()
	if err != nil {
		failf("listing namespaces: %v", err)
	}
	for _, ns := range nss {
		if ns.Serial == serialRaw {
			raw = ns.DevPath
		}
	}
	if raw == "" {
		failf("no namespace with serial %s for fio's baseline", serialRaw)
	}
	c := classByName("thick")
	size := uint64(b.k.fioMiB) * mib
	b.lvm("lvcreate", "--yes", "-ay", "-Zn", "-Wn", "-L", bytesArg(size), "-n", "benchfio", c.vg)
	defer b.lvm("lvremove", "-f", c.vg+"/benchfio")
	lv := "/dev/" + c.vg + "/benchfio"
	// Written once, so both read allocated blocks of the backing image.
	for _, dev := range []string{lv, raw} {
		b.runFio(dev, "write", "1M", 8, size, 0)
	}
	jobs := []fioJob{
		{"fio/randread-4k-qd1", "randread", "4k", 1, "IOPS"},
		{"fio/randread-4k-qd32", "randread", "4k", 32, "IOPS"},
		{"fio/seqread-1m-qd8", "read", "1M", 8, "MiB/s"},
	}
	for _, j := range jobs {
		var onLV, onRaw []float64
		for i := 0; i < b.k.fioN; i++ {
			alt(i, func() { onLV = append(onLV, b.runFio(lv, j.rw, j.bs, j.qd, size, b.k.fioSecs)[j.unit]) },
				func() { onRaw = append(onRaw, b.runFio(raw, j.rw, j.bs, j.qd, size, b.k.fioSecs)[j.unit]) })
		}
		r := Sample(j.name, 0, j.unit, onLV, onRaw)
		r.Driver = "linear LV (dm-linear) " + lv
		r.Bare = "raw namespace " + raw
		r.Note = fmt.Sprintf("fio libaio direct, %d s per run, %d MiB", b.k.fioSecs, b.k.fioMiB)
		b.add(r)
	}
}

// runFio runs one fio job and returns its IOPS and MiB/s.
func (b *bench) runFio(dev, rw, bs string, qd int, size uint64, secs int) map[string]float64 {
	args := []string{"--name=bench", "--filename=" + dev, "--direct=1", "--ioengine=libaio", "--rw=" + rw, "--bs=" + bs,
		"--iodepth=" + strconv.Itoa(qd), "--size=" + strconv.FormatUint(size, 10), "--output-format=json"}
	if secs > 0 {
		args = append(args, "--time_based", "--runtime="+strconv.Itoa(secs))
	}
	cmd := exec.Command(b.k.fio, args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(filepath.Dir(b.k.fio), "lib"))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			failf("fio %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		failf("fio: %v", err)
	}
	// fio may print warnings before the JSON.
	if i := strings.Index(string(out), "{"); i > 0 {
		out = out[i:]
	}
	var res struct {
		Jobs []struct {
			Read, Write struct {
				IOPS    float64 `json:"iops"`
				BwBytes float64 `json:"bw_bytes"`
			}
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) == 0 {
		failf("fio output: %v\n%s", err, out)
	}
	st := res.Jobs[0].Read
	if rw == "write" {
		st = res.Jobs[0].Write
	}
	return map[string]float64{"IOPS": st.IOPS, "MiB/s": st.BwBytes / mib}
}
