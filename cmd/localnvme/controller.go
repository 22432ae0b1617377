package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/driver"
	"github.com/localnvme/localnvme/pkg/metrics"
)

// controllerFlags are the flags of `localnvme controller`.
type controllerFlags struct {
	endpoint    string
	metricsAddr string
}

func controllerFlagSet(f *controllerFlags, onError flag.ErrorHandling) *flag.FlagSet {
	fs := flag.NewFlagSet("controller", onError)
	fs.StringVar(&f.endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint (unix socket) the csi-resizer sidecar dials")
	fs.StringVar(&f.metricsAddr, "metrics-address", ":9811", `serve Prometheus /metrics and /healthz on this address ("" disables)`)
	klog.InitFlags(fs)
	return fs
}

// runController runs the controller Deployment's driver container. It needs no LVM, drives
// or device-class configuration: it serves a ModeController CSI socket for the csi-resizer
// sidecar, which then takes its trivial (node-only) path — it updates the PV size and
// kubelet's NodeExpandVolume on the volume's node grows the LV and the filesystem.
//
// There is no leader election: the Deployment runs one replica, and this mode holds no
// state. Running more replicas needs csi-resizer's own --leader-election, not ours.
func runController(args []string) int {
	var f controllerFlags
	fs := controllerFlagSet(&f, flag.ExitOnError)
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "localnvme controller takes no arguments, got %q\n", fs.Args())
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	logger := klog.Background().WithValues("mode", driver.ModeController)
	ctx = klog.NewContext(ctx, logger)

	p, err := startController(ctx, version, f.metricsAddr)
	if err != nil {
		logger.Error(err, "Starting controller")
		return 1
	}
	if err := p.driver.Serve(ctx, f.endpoint); err != nil {
		logger.Error(err, "Serving CSI")
		return 1
	}
	return 0
}

// controllerPlugin is a started controller: metrics are served, the CSI socket is not yet
// (driver.Serve does that).
type controllerPlugin struct {
	driver      *driver.Driver
	metricsAddr net.Addr // nil when metrics are disabled
}

// startController builds the controller-mode driver, with RPC metrics, and serves /metrics
// and /healthz on metricsAddr ("" disables) until ctx ends.
func startController(ctx context.Context, version, metricsAddr string) (*controllerPlugin, error) {
	m := metrics.New()
	d, err := driver.New(driver.Options{
		Version:      version,
		Mode:         driver.ModeController,
		Interceptors: []grpc.UnaryServerInterceptor{m.UnaryServerInterceptor()},
	})
	if err != nil {
		return nil, fmt.Errorf("creating driver: %w", err)
	}
	d.SetReady(true) // nothing to set up
	p := &controllerPlugin{driver: d}
	if metricsAddr != "" {
		// No readiness condition beyond the process serving: /healthz answers 200.
		if p.metricsAddr, err = serveMetrics(ctx, metricsAddr, m, nil); err != nil {
			return nil, err
		}
	}
	klog.FromContext(ctx).Info("Controller built", "version", version)
	return p, nil
}
