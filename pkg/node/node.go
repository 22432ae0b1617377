// Package node wires the node plugin together: config → LVM client, disk discovery → volume
// engine → CSI driver. The command and the in-VM tests build the node the same way.
package node

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/driver"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/metrics"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Options configure a node plugin.
type Options struct {
	NodeID  string
	Version string
	Config  *config.Config
	// LVMConfig is passed to every lvm command as --config (e.g. to turn udev sync off
	// inside a container).
	LVMConfig string
	// ReportMaxAge bounds how long the cached LVM report is served (default 30s): changes
	// made outside the driver are seen at the latest after that.
	ReportMaxAge time.Duration
	// LVMCommandTimeout bounds every lvm command (default lvm.DefaultCommandTimeout, 3 min);
	// BlkidTimeout every blkid probe (default disk.DefaultBlkidTimeout, 2 min). The VM tests
	// shorten them to wedge a device and wait for the kill.
	LVMCommandTimeout, BlkidTimeout time.Duration
	// SysRoot and DevRoot default to /sys and /dev.
	SysRoot, DevRoot string
	// KubeletDir, when set, confines staging and target paths to kubelet's directory
	// (driver.Options.KubeletDir).
	KubeletDir string
	// SocketGroup, when set, may connect to the CSI socket besides root
	// (driver.Options.SocketGroup).
	SocketGroup *int
	// Exec runs every external command of the node (lvm, blkid, mkfs, the filesystem grow
	// tools); nil is the real one (k8s.io/utils/exec). The benchmark (tests/bench) passes a
	// wrapper that counts the commands each RPC runs.
	Exec utilexec.Interface
	// Host is the node's mount surface; nil is driver.NewOSHost (the benchmark wraps it to
	// count mounts).
	Host driver.Host
	// LVMShell runs lvm commands in long-lived lvm shells (lvm.Client.EnableShell) instead
	// of a process each: "" (auto) uses them when Exec is the real one, "on" always, "off"
	// never. A shell that cannot be set up leaves every command a process.
	LVMShell string
	// LVMOnCommand, when set, sees every lvm command (lvm.Options.OnCommand).
	LVMOnCommand func(sub string, shell bool)
}

// LVMShell values.
const (
	LVMShellAuto = ""
	LVMShellOn   = "on"
	LVMShellOff  = "off"
)

// disks joins discovery and the emptiness probe.
type disks struct {
	disk.Discoverer
	*disk.Prober
}

// Node is a built node plugin.
type Node struct {
	Driver  *driver.Driver
	Engine  *volume.Engine
	LVM     *lvm.Client
	Metrics *metrics.Metrics
}

// Build creates the node plugin and sets up its device classes (adopting provably empty
// devices, refusing classes whose devices are not). The driver is marked ready.
func Build(ctx context.Context, o Options) (*Node, error) {
	p := NewParts(o)
	if o.LVMShell == LVMShellOn || (o.LVMShell == LVMShellAuto && o.Exec == nil) {
		start := time.Now()
		if err := p.LVM.EnableShell(ctx, lvm.OSShellStarter{}); err != nil {
			klog.FromContext(ctx).Error(err, "lvm commands run as processes: the lvm shell could not be set up")
		} else {
			klog.FromContext(ctx).Info("lvm commands run in lvm shells", "profile", lvm.ShellProfileName, "duration", time.Since(start))
		}
	}
	eng := p.Engine
	eng.Setup(ctx)
	host := o.Host
	if host == nil {
		host = driver.NewOSHost(p.Exec)
	}
	m := metrics.New()
	m.Register(newMetricsSource(eng))
	d, err := driver.New(driver.Options{
		NodeID: o.NodeID, Version: o.Version, Mode: driver.ModeNode,
		Engine: eng, Host: host, Exec: p.Exec, Prober: p.Prober,
		Interceptors: []grpc.UnaryServerInterceptor{m.UnaryServerInterceptor()},
		KubeletDir:   o.KubeletDir,
		SocketGroup:  o.SocketGroup,
	})
	if err != nil {
		return nil, fmt.Errorf("creating driver: %w", err)
	}
	ready := 0
	for _, c := range eng.Classes() {
		if c.Ready {
			ready++
		}
	}
	klog.FromContext(ctx).Info("Node plugin built", "node", o.NodeID, "classes", len(eng.Classes()), "ready", ready)
	d.SetReady(true)
	return &Node{Driver: d, Engine: eng, LVM: p.LVM, Metrics: m}, nil
}
