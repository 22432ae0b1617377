package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/metrics"
)

// serveMetrics serves m's /metrics and /healthz (answered by ready) on addr until ctx ends.
// It listens before returning, so a bad or busy address fails the start; it returns the
// address it listens on.
func serveMetrics(ctx context.Context, addr string, m *metrics.Metrics, ready func() error) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listening on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           m.Handler(ready),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // a scrape may wait up to 10 s per source call
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	logger := klog.FromContext(ctx)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second) // ctx is done: shutdown gets 5 s of its own
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Error(err, "Shutting down the metrics server")
		}
	}()
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Serving metrics", "address", addr)
		}
	}()
	logger.Info("Serving metrics", "address", lis.Addr().String(), "paths", "/metrics /healthz")
	return lis.Addr(), nil
}

// metricsListenAddr is addr, or with ip set, ip and addr's port (IPv6 bracketed).
func metricsListenAddr(addr, ip string) (string, error) {
	if ip == "" {
		return addr, nil
	}
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("--metrics-ip %q is not an IP address", ip)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-address %q: %w", addr, err)
	}
	return net.JoinHostPort(ip, port), nil
}
