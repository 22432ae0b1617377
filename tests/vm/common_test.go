//go:build vmtest

// Package vm holds the tests that need real devices: they are compiled with `go test -c
// -tags vmtest` and run inside the qemu VM (hack/vm) that has emulated NVMe drives. Run
// anywhere else they fail loudly rather than skip.
package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/node"
)

// Drive serials and identities the harness gives the VM (hack/vm/run.sh --drives).
const (
	serialThick0 = "LNVTHICK0"
	serialThick1 = "LNVTHICK1"
	serialThin0  = "LNVTHIN0"
	serialSpare0 = "LNVSPARE0"
	serialSpare1 = "LNVSPARE1"
)

var nodeName = flag.String("node-name", "vm-node-1", "node ID the driver uses")

func requireVM(t testing.TB) {
	t.Helper()
	if os.Getenv("LOCALNVME_IN_VM") != "1" {
		t.Fatal("this test needs the VM harness (hack/vm/run.sh): LOCALNVME_IN_VM is not set; refusing to touch this machine's devices")
	}
}

// namespaceBySerial finds a drive by its serial, never by /dev path.
func namespaceBySerial(t testing.TB, serial string) disk.Namespace {
	t.Helper()
	nss, err := disk.Discoverer{}.List()
	if err != nil {
		t.Fatalf("listing NVMe namespaces: %v", err)
	}
	for _, ns := range nss {
		if ns.Serial == serial {
			return ns
		}
	}
	t.Fatalf("no NVMe namespace with serial %s (have %d namespaces)", serial, len(nss))
	return disk.Namespace{}
}

// classesConfig is the standard test configuration: a thick class striped over two drives
// (selected by serial) and a thin class on the nvme-ns drive, selected by its EUI-64. The
// Debian 6.1 kernel hides qemu's namespace identifiers from sysfs, so this also proves that
// discovery reads them from the device (NVMe Identify).
func classesConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	y := classesYAML(extra)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

// classesYAML is classesConfig's configuration as YAML.
func classesYAML(extra string) string {
	return fmt.Sprintf(`
deviceClasses:
- name: thick
  volumeGroup: lnv-thick
  type: thick
  default: true
  fsType: ext4
  stripes: 2
  devices:
  - serial: %s
  - serial: %s
- name: thin
  volumeGroup: lnv-thin
  type: thin
  fsType: xfs
  thinPool:
    sizePercent: 90
    overprovisionRatio: 10
  devices:
  - identity: eui64:00a0b0c0d0e0f001
%s`, serialThick0, serialThick1, extra)
}

// startNode builds the node plugin on the real devices and serves it on a unix socket.
func startNode(t testing.TB, cfg *config.Config) (*node.Node, string, *grpc.ClientConn) {
	t.Helper()
	return startNodeWith(t, node.Options{Config: cfg})
}

// startNodeWith is startNode with more options (NodeID and Version are set here).
func startNodeWith(t testing.TB, o node.Options) (*node.Node, string, *grpc.ClientConn) {
	t.Helper()
	requireVM(t)
	ctx, cancel := context.WithCancel(context.Background())
	ctx = klog.NewContext(ctx, klog.Background().WithValues("test", t.Name()))
	o.NodeID, o.Version = *nodeName, "vmtest"
	n, err := node.Build(ctx, o)
	if err != nil {
		t.Fatalf("building node: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "csi.sock")
	done := make(chan error, 1)
	go func() { done <- n.Driver.Serve(ctx, "unix://"+sock) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("driver socket %s did not come up", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing driver: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Logf("driver Serve: %v", err)
		}
	})
	return n, sock, conn
}

// sha256Device hashes a whole block device.
func sha256Device(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// blkidType returns blkid -p's TYPE for a device ("" when blkid finds nothing, exit 2).
func blkidType(t testing.TB, dev string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 2 {
		return ""
	}
	if err != nil {
		t.Fatalf("blkid -p %s: %v", dev, err)
	}
	return strings.TrimSpace(string(out))
}

func mountCap(fs string, mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}},
	}
}

func TestMain(m *testing.M) {
	klog.InitFlags(nil)
	flag.Parse()
	if crashChildRequested() { // TestCrashPoints runs the node as a child (crashchild_test.go)
		os.Exit(runCrashChild())
	}
	os.Exit(m.Run())
}

// refusedSparesClasses adds two classes on the spare drives (has-fs on LNVSPARE0, has-pt on
// LNVSPARE1) for tests that put a filesystem and a partition table there first.
func refusedSparesClasses() string {
	return fmt.Sprintf(`- name: has-fs
  volumeGroup: lnv-hasfs
  type: thick
  devices:
  - serial: %s
- name: has-pt
  volumeGroup: lnv-haspt
  type: thin
  devices:
  - serial: %s
`, serialSpare0, serialSpare1)
}

// mounted reports whether something is mounted at path (the mount point, as mountinfo shows it).
func mounted(t testing.TB, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// createVolume creates a volume of class with the given size and capability and returns its ID.
func createVolume(t testing.TB, ctl csi.ControllerClient, name, class string, size int64, capy *csi.VolumeCapability) string {
	t.Helper()
	resp, err := ctl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		Parameters:         map[string]string{"localnvme.io/device-class": class},
		VolumeCapabilities: []*csi.VolumeCapability{capy},
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume().GetVolumeId()
}
