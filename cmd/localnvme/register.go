package main

import (
	"context"
	"net"
	"time"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/registration"
)

// startRegistration serves kubelet plugin registration once the CSI socket accepts
// connections (kubelet dials it as soon as it sees the registration socket), until ctx
// ends. The returned channel receives the result when it stops; a failure also calls
// cancel, so the node plugin exits instead of serving CSI that kubelet never uses.
func startRegistration(ctx context.Context, cancel context.CancelFunc, reg *registration.Server, csiSocket string) <-chan error {
	done := make(chan error, 1)
	go func() {
		if !waitForSocket(ctx, csiSocket) {
			done <- nil // stopped before the CSI server came up
			return
		}
		err := reg.Serve(ctx)
		if err != nil {
			cancel()
		}
		done <- err
	}()
	return done
}

// waitForSocket polls until a unix socket at path accepts a connection (a stale socket
// left by a previous run refuses it). It is false if ctx ends first.
func waitForSocket(ctx context.Context, path string) bool {
	logger := klog.FromContext(ctx)
	for {
		var d net.Dialer
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "unix", path)
		dcancel()
		if err == nil {
			_ = c.Close() // a probe: the socket answered
			return true
		}
		logger.V(4).Info("Waiting for the CSI socket", "path", path, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
