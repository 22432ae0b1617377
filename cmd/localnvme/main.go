// Command localnvme is the localnvme CSI driver: `localnvme node` serves CSI Identity,
// Controller and Node for the node it runs on.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/node"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func usage() {
	fmt.Fprintf(os.Stderr, `localnvme %s — CSI driver for local NVMe drives

Usage:
  localnvme node [flags]     serve CSI Identity, Controller and Node for this node
  localnvme disks ...        list NVMe drives with identity, health and class; adopt/release them
  localnvme version          print the version

Run "localnvme node -h" for the node flags.
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
	maxAge := fs.Duration("lvm-report-max-age", 30*time.Second, "serve the cached LVM report at most this long (mutations always refresh it)")
	metricsAddr := fs.String("metrics-address", ":9810", `serve Prometheus /metrics and /healthz on this address ("" disables)`)
	klog.InitFlags(fs)
	_ = fs.Parse(args)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	logger := klog.Background().WithValues("node", *nodeID)
	ctx = klog.NewContext(ctx, logger)

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
	n, err := node.Build(ctx, node.Options{NodeID: *nodeID, Version: version, Config: cfg, LVMConfig: *lvmConfig, ReportMaxAge: *maxAge})
	if err != nil {
		logger.Error(err, "Starting node plugin")
		return 1
	}
	if *metricsAddr != "" {
		if err := serveMetrics(ctx, *metricsAddr, n); err != nil {
			logger.Error(err, "Starting node plugin")
			return 1
		}
	}
	if err := n.Driver.Serve(ctx, *endpoint); err != nil {
		logger.Error(err, "Serving CSI")
		return 1
	}
	return 0
}
