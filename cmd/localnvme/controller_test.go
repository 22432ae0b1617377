package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	csirpc "github.com/kubernetes-csi/csi-lib-utils/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2/ktesting"
)

func TestControllerFlagDefaults(t *testing.T) {
	var f controllerFlags
	fs := controllerFlagSet(&f, flag.ContinueOnError)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if f.endpoint != "unix:///csi/csi.sock" || f.metricsAddr != ":9811" {
		t.Errorf("defaults: endpoint %q, metrics-address %q; want unix:///csi/csi.sock and :9811", f.endpoint, f.metricsAddr)
	}
	if fs.Lookup("v") == nil {
		t.Error("klog flags (-v) are not registered")
	}
	if err := fs.Parse([]string{"--endpoint", "unix:///run/x.sock", "--metrics-address", ""}); err != nil {
		t.Fatal(err)
	}
	if f.endpoint != "unix:///run/x.sock" || f.metricsAddr != "" {
		t.Errorf("parsed: endpoint %q, metrics-address %q", f.endpoint, f.metricsAddr)
	}
}

// startTestController runs `localnvme controller` on a temporary socket with metrics on a
// free local port and returns a connection to the socket and the metrics base URL.
func startTestController(t *testing.T) (*grpc.ClientConn, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "lnvctl") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "csi.sock")
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	p, err := startController(ctx, version, "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.driver.Serve(ctx, "unix://"+sock) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	if !waitForSocket(ctx, sock) {
		t.Fatal("CSI socket never accepted connections")
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, "http://" + p.metricsAddr.String()
}

func TestControllerServesResizerContract(t *testing.T) {
	conn, metricsURL := startTestController(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// What external-resizer's main and csi.New do first: probe, then GetPluginInfo.
	if err := csirpc.ProbeForever(ctx, conn, 5*time.Second); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	info, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "localnvme.io" || info.GetVendorVersion() == "" || info.GetVendorVersion() != version {
		t.Errorf("GetPluginInfo = %q %q, want localnvme.io and the build version %q", info.GetName(), info.GetVendorVersion(), version)
	}

	// NewResizerFromClient: CONTROLLER_SERVICE required; no controller EXPAND_VOLUME and a
	// node EXPAND_VOLUME select the trivial resizer.
	pcaps, err := csirpc.GetPluginCapabilities(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !pcaps[csi.PluginCapability_Service_CONTROLLER_SERVICE] || !pcaps[csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS] || len(pcaps) != 2 {
		t.Errorf("plugin services = %v, want CONTROLLER_SERVICE and VOLUME_ACCESSIBILITY_CONSTRAINTS", pcaps)
	}
	praw, err := csi.NewIdentityClient(conn).GetPluginCapabilities(ctx, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	online := false
	for _, c := range praw.GetCapabilities() {
		if c.GetVolumeExpansion().GetType() == csi.PluginCapability_VolumeExpansion_ONLINE {
			online = true
		}
	}
	if !online {
		t.Errorf("plugin capabilities %v lack VolumeExpansion ONLINE", praw.GetCapabilities())
	}
	ccaps, err := csirpc.GetControllerCapabilities(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if ccaps[csi.ControllerServiceCapability_RPC_EXPAND_VOLUME] {
		t.Errorf("controller capabilities %v include EXPAND_VOLUME: external-resizer would call ControllerExpandVolume", ccaps)
	}
	ncaps, err := csi.NewNodeClient(conn).NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nodeResize := false
	for _, c := range ncaps.GetCapabilities() {
		if c.GetRpc().GetType() == csi.NodeServiceCapability_RPC_EXPAND_VOLUME {
			nodeResize = true
		}
	}
	if !nodeResize {
		t.Errorf("node capabilities %v lack EXPAND_VOLUME: external-resizer would refuse to start", ncaps.GetCapabilities())
	}

	// Volume RPCs are refused: volumes are served by the node plugin.
	_, err = csi.NewControllerClient(conn).CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "pvc-1",
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30},
	})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "node plugin") {
		t.Errorf("CreateVolume = %v %q, want Unimplemented naming the node plugin", st.Code(), st.Message())
	}
	_, err = csi.NewNodeClient(conn).NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "x", VolumePath: "/p"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("NodeExpandVolume = %v, want Unimplemented", err)
	}

	// /healthz and /metrics (the refused CreateVolume is counted).
	body := func(path string) string {
		resp, err := http.Get(metricsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if got := body("/healthz"); got != "ok" {
		t.Errorf("/healthz body = %q, want ok", got)
	}
	if m := body("/metrics"); !strings.Contains(m, `localnvme_rpc_duration_seconds_count{code="Unimplemented",method="CreateVolume"} 1`) {
		t.Errorf("/metrics lacks the refused CreateVolume:\n%s", m)
	}
}
