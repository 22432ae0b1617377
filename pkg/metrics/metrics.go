// Package metrics exports the node plugin's Prometheus metrics: CSI RPC latencies (a gRPC
// interceptor), and device class and drive state read from a Source at scrape time. It owns
// its own registry (never the global one) and knows nothing of the volume engine: the node
// wiring implements Source.
package metrics

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Namespace prefixes every metric name.
const Namespace = "localnvme"

// RPCBuckets are the histogram buckets of localnvme_rpc_duration_seconds: from 1 ms (a
// cached report answer) to 120 s (a thick clone's block copy, a slow mkfs).
var RPCBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120}

// Metrics owns a prometheus.Registry (not the global one) with the node's metrics.
type Metrics struct {
	reg         *prometheus.Registry
	rpcDuration *prometheus.HistogramVec
}

// New returns the node's metrics with the RPC histogram and the standard Go and process
// collectors registered. Call Register to add the class and drive collector.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "rpc_duration_seconds",
			Help:      "Duration of CSI RPCs served by this node, by method and gRPC status code.",
			Buckets:   RPCBuckets,
		}, []string{"method", "code"}),
	}
	m.reg.MustRegister(
		m.rpcDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry every metric of this node is registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// UnaryServerInterceptor records every CSI RPC in localnvme_rpc_duration_seconds
// {method, code}: method is the short name ("CreateVolume"), code the gRPC code string
// ("OK", "NotFound", …; an error that carries no status counts as "Unknown").
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.rpcDuration.WithLabelValues(shortMethod(info.FullMethod), status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// shortMethod turns "/csi.v1.Controller/CreateVolume" into "CreateVolume".
func shortMethod(full string) string {
	return full[strings.LastIndex(full, "/")+1:]
}

// Handler serves /metrics (the registry; a failing collector does not fail the scrape),
// /healthz: 200 "ok" when ready returns nil (or is nil), else 503 with the error text (a
// readiness signal: a node with no usable device class is alive but not ready), and
// /livez: 200 "ok" whenever the process answers (a liveness signal: restarting the plugin
// does not make a missing drive appear).
func (m *Metrics) Handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // promhttp_metric_handler_errors_total
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ready != nil {
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(err.Error()))
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}
