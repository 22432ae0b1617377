package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/driver"
	"github.com/localnvme/localnvme/pkg/fencing"
	"github.com/localnvme/localnvme/pkg/metrics"
)

// controllerFlags are the flags of `localnvme controller`.
type controllerFlags struct {
	endpoint    string
	metricsAddr string
	// fencing: run the node-loss controller (needs API access).
	fencing       bool
	kubeconfig    string
	leaseNS       string
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
	workers       int
}

func controllerFlagSet(f *controllerFlags, onError flag.ErrorHandling) *flag.FlagSet {
	fs := flag.NewFlagSet("controller", onError)
	fs.StringVar(&f.endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint (unix socket) the csi-resizer sidecar dials")
	fs.StringVar(&f.metricsAddr, "metrics-address", ":9811", `serve Prometheus /metrics and /healthz on this address ("" disables)`)
	fs.BoolVar(&f.fencing, "fencing", true, "run the node-loss (fencing) controller, elected leader among the replicas; needs API access (in-cluster, or --kubeconfig)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for the API (default: the pod's service account)")
	fs.StringVar(&f.leaseNS, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease "+fencing.LeaseName+" (default $POD_NAMESPACE)")
	fs.DurationVar(&f.leaseDuration, "leader-election-lease-duration", 15*time.Second, "a killed leader is replaced at most this long after its last renew")
	fs.DurationVar(&f.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "the leader gives up (and exits) when it cannot renew for this long")
	fs.DurationVar(&f.retryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.IntVar(&f.workers, "workers", 2, "PVs decided in parallel")
	klog.InitFlags(fs)
	return fs
}

// runController runs the controller Deployment's driver container. It needs no LVM, drives
// or device-class configuration: it serves a ModeController CSI socket for the csi-resizer
// sidecar, which then takes its trivial (node-only) path — it updates the PV size and
// kubelet's NodeExpandVolume on the volume's node grows the LV and the filesystem — and
// (--fencing) runs the node-loss controller (pkg/fencing) on the replica that holds the
// Lease. Every replica serves the CSI socket (csi-resizer elects its own leader). A replica
// that loses the Lease exits, so it never acts on a view it no longer owns.
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
	var fenced chan error
	if f.fencing {
		elected, err := startFencing(ctx, f, p)
		if err != nil {
			logger.Error(err, "Starting the fencing controller")
			return 1
		}
		fenced = make(chan error, 1)
		go func() {
			err := <-elected
			fenced <- err
			cancel() // a lost lease ends the process (and the CSI socket with it)
		}()
	}
	rc := 0
	if err := p.driver.Serve(ctx, f.endpoint); err != nil {
		logger.Error(err, "Serving CSI")
		rc = 1
	}
	cancel()
	if fenced != nil {
		// Wait: the Lease is released on the way out, so a follower takes over at once.
		if err := <-fenced; err != nil {
			logger.Error(err, "Fencing controller stopped")
			rc = 1
		}
	}
	return rc
}

// startFencing runs the fencing controller under leader election until ctx ends; the
// channel reports why it stopped (nil: ctx ended).
func startFencing(ctx context.Context, f controllerFlags, p *controllerPlugin) (<-chan error, error) {
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "localnvme-controller/" + version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	id := os.Getenv("POD_NAME")
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("no $POD_NAME and no hostname for the leader election identity: %w", err)
		}
	}
	if f.leaseNS == "" {
		return nil, fmt.Errorf("no --leader-election-namespace and no $POD_NAMESPACE")
	}
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "localnvme-controller"})
	c, err := fencing.New(fencing.Options{Client: client, Recorder: rec})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		defer b.Shutdown()
		done <- fencing.RunElected(ctx, fencing.Election{
			Client: client, Namespace: f.leaseNS, Identity: id,
			LeaseDuration: f.leaseDuration, RenewDeadline: f.renewDeadline, RetryPeriod: f.retryPeriod,
		}, func(ctx context.Context) {
			// Only the leader has a synced view: only it exports the fencing metrics.
			if p.metrics != nil {
				if err := p.metrics.Registry().Register(c.Collector()); err != nil {
					klog.FromContext(ctx).Error(err, "Registering the fencing metrics")
				}
			}
			c.Run(ctx, f.workers)
		})
	}()
	return done, nil
}

// restConfig is the kubeconfig's, or the pod's service account's.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster API config (outside a cluster pass --kubeconfig, or --fencing=false): %w", err)
	}
	return cfg, nil
}

// controllerPlugin is a started controller: metrics are served, the CSI socket is not yet
// (driver.Serve does that).
type controllerPlugin struct {
	driver      *driver.Driver
	metrics     *metrics.Metrics
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
	p := &controllerPlugin{driver: d, metrics: m}
	if metricsAddr != "" {
		// No readiness condition beyond the process serving: /healthz answers 200.
		if p.metricsAddr, err = serveMetrics(ctx, metricsAddr, m, nil); err != nil {
			return nil, err
		}
	}
	klog.FromContext(ctx).Info("Controller built", "version", version)
	return p, nil
}
