// Command localnvme is the localnvme CSI driver: `localnvme node` serves CSI Identity,
// Controller and Node for the node it runs on; `localnvme controller` runs the cluster's
// node-loss (fencing) controller and the controller socket beside the csi-resizer sidecar.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/driver"
	"github.com/localnvme/localnvme/pkg/events"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/node"
	"github.com/localnvme/localnvme/pkg/nodesync"
	"github.com/localnvme/localnvme/pkg/registration"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func usage() {
	fmt.Fprintf(os.Stderr, `localnvme %s — CSI driver for local NVMe drives

Usage:
  localnvme node [flags]     serve CSI Identity, Controller and Node for this node
  localnvme controller [flags]
                             the cluster's node-loss (fencing) controller, leader-elected,
                             and the controller socket for the csi-resizer sidecar
                             (no LVM, drives or config; expansion runs on the node)
  localnvme disks ...        list NVMe drives with identity, health and class; adopt/release them
  localnvme version          print the version

Run "localnvme node -h" or "localnvme controller -h" for their flags.
`, version)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "node":
		os.Exit(runNode(os.Args[2:]))
	case "controller":
		os.Exit(runController(os.Args[2:]))
	case "disks":
		os.Exit(runDisks(os.Args[2:], os.Stdout))
	case "version", "--version":
		fmt.Println(version)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func runNode(args []string) int {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	endpoint := fs.String("endpoint", "unix:///csi/csi.sock", "CSI endpoint (unix socket)")
	nodeID := fs.String("node-id", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME, else the hostname)")
	cfgPath := fs.String("config", "/etc/localnvme/config.yaml", "device class configuration file")
	lvmConfig := fs.String("lvm-config", "", "extra LVM configuration passed to every lvm command as --config")
	lvmShell := fs.Bool("lvm-shell", true, "run lvm commands in long-lived lvm shells (no process start per command; the profile "+lvm.ShellProfileName+" is written into LVM's profile directory); false: a process per command")
	maxAge := fs.Duration("lvm-report-max-age", 30*time.Second, "serve the cached LVM report at most this long (mutations always refresh it)")
	metricsAddr := fs.String("metrics-address", ":9810", `serve Prometheus /metrics and /healthz on this address ("" disables)`)
	metricsIP := fs.String("metrics-ip", "", `listen for metrics only on this IP (with --metrics-address's port; the manifests pass the node's IP, so a hostNetwork pod does not listen on every interface of the node)`)
	regDir := fs.String("kubelet-registration-dir", registration.DefaultRegistrationDir, `register with kubelet through a socket in this directory ("" disables)`)
	kubeletEndpoint := fs.String("kubelet-csi-endpoint", "", "the CSI socket path as kubelet dials it (default: the --endpoint path)")
	kubeletDir := fs.String("kubelet-dir", "", `refuse staging and target paths that do not resolve (through symlinks) to a path under this directory, kubelet's root ("" disables)`)
	socketGroup := fs.String("csi-socket-group", "", `numeric GID that may connect to the CSI socket besides root: the socket is made 0660 with this group, for sidecars that run as non-root in it ("": 0600, root only)`)
	klog.InitFlags(fs)
	_ = fs.Parse(args)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	logger := klog.Background().WithValues("node", *nodeID)
	ctx = klog.NewContext(ctx, logger)

	sockGID, err := parseSocketGroup(*socketGroup)
	if err != nil {
		logger.Error(err, "Invalid --csi-socket-group")
		return 2
	}
	if *nodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			logger.Error(err, "No --node-id and no hostname")
			return 1
		}
		*nodeID = h
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		logger.Error(err, "Invalid configuration", "path", *cfgPath)
		return 1
	}
	shellMode := node.LVMShellOn
	if !*lvmShell {
		shellMode = node.LVMShellOff
	}
	n, err := node.Build(ctx, node.Options{NodeID: *nodeID, Version: version, Config: cfg, LVMConfig: *lvmConfig, ReportMaxAge: *maxAge, KubeletDir: *kubeletDir, SocketGroup: sockGID, LVMShell: shellMode})
	if err != nil {
		logger.Error(err, "Starting node plugin")
		return 1
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		// In a cluster: report class and drive refusals as Events on this Node, publish the
		// node's incarnation and fence the LVs of released PVs (pkg/nodesync).
		if client, err := events.InClusterClient(); err != nil {
			logger.Error(err, "Not reporting Events, publishing the incarnation or fencing: no API access")
		} else {
			rep, stop := events.New(client, *nodeID)
			defer stop()
			rep.ClassSetup(n.Engine.Classes())
			syncDone, err := startNodeSync(ctx, client, *nodeID, n, rep)
			if err != nil {
				logger.Error(err, "Starting node plugin")
				return 1
			}
			// Runs before stop, so the sync's last Events are flushed; cancel first, since
			// an early return has not cancelled ctx yet.
			defer func() { cancel(); syncDone() }()
		}
	}
	csiSocket := driver.SocketPath(*endpoint)
	ready := n.Ready
	var reg *registration.Server
	if *regDir != "" {
		if *kubeletEndpoint == "" {
			*kubeletEndpoint = csiSocket
		}
		reg, err = registration.New(registration.Options{DriverName: driver.DriverName, RegistrationDir: *regDir, KubeletEndpoint: *kubeletEndpoint})
		if err != nil {
			logger.Error(err, "Starting node plugin")
			return 1
		}
		// Not ready while kubelet reports a failed registration.
		ready = func() error {
			if err := n.Ready(); err != nil {
				return err
			}
			return reg.Status().Err()
		}
	}
	if *metricsAddr != "" {
		addr, err := metricsListenAddr(*metricsAddr, *metricsIP)
		if err != nil {
			logger.Error(err, "Invalid metrics address")
			return 1
		}
		if _, err := serveMetrics(ctx, addr, n.Metrics, ready); err != nil {
			logger.Error(err, "Starting node plugin")
			return 1
		}
	}
	var regDone <-chan error
	if reg != nil {
		regDone = startRegistration(ctx, cancel, reg, csiSocket)
	}
	rc := 0
	if err := n.Driver.Serve(ctx, *endpoint); err != nil {
		logger.Error(err, "Serving CSI")
		rc = 1
	}
	cancel()
	if regDone != nil {
		// Wait, so the registration socket is removed before the process exits.
		if err := <-regDone; err != nil {
			logger.Error(err, "Kubelet plugin registration")
			rc = 1
		}
	}
	return rc
}

// parseSocketGroup parses --csi-socket-group: "" is no group (nil), else a numeric GID. A
// group name is refused: the image has no group database to resolve it against, and the
// GID must match the sidecars' securityContext, which is numeric too.
func parseSocketGroup(s string) (*int, error) {
	if s == "" {
		return nil, nil
	}
	g, err := strconv.ParseUint(s, 10, 32)
	if err != nil || g == math.MaxUint32 { // (uint32)-1 means "leave the group alone" to chown
		return nil, fmt.Errorf("%q is not a numeric GID", s)
	}
	gid := int(g)
	return &gid, nil
}

// startNodeSync publishes the node's incarnation (retrying until it succeeds or ctx ends,
// then keeping it current) and runs the fence and orphan sync until ctx ends. The returned function waits for both.
func startNodeSync(ctx context.Context, client kubernetes.Interface, nodeID string, n *node.Node, rep *events.Reporter) (func(), error) {
	s, err := nodesync.NewSync(nodesync.Options{Client: client, Node: nodeID, Engine: n.Engine, Events: rep, Registerer: n.Metrics.Registry()})
	if err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := nodesync.KeepIncarnation(ctx, client, nodeID, n.Engine, nodesync.DefaultPublishBackoff, nodesync.DefaultRecheck); err != nil && ctx.Err() == nil {
			logger.Error(err, "Publishing the node's incarnation")
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Fence sync stopped")
		}
	}()
	return wg.Wait, nil
}
