package driver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"k8s.io/klog/v2/ktesting"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/localnvme/localnvme/pkg/volume"
)

func TestNewModes(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"node", Options{Version: "v1", Mode: ModeNode, NodeID: "n1"}, true},
		{"node without node ID", Options{Version: "v1", Mode: ModeNode}, false},
		{"controller", Options{Version: "v1", Mode: ModeController}, true},
		{"controller ignores a node ID", Options{Version: "v1", Mode: ModeController, NodeID: "n1"}, true},
		{"controller with an engine", Options{Version: "v1", Mode: ModeController, Engine: &volume.Engine{}}, false},
		{"controller with exec", Options{Version: "v1", Mode: ModeController, Exec: &testingexec.FakeExec{}}, false},
		{"controller without version", Options{Mode: ModeController}, false},
		{"no mode", Options{Version: "v1", NodeID: "n1"}, false},
		{"unknown mode", Options{Version: "v1", NodeID: "n1", Mode: "both"}, false},
	}
	for _, tt := range tests {
		d, err := New(tt.o)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New error = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err == nil && tt.o.Mode == ModeController && d.nodeID != "" {
			t.Errorf("%s: controller-mode driver has node ID %q", tt.name, d.nodeID)
		}
	}
}

// serve starts d on a unix socket and returns a client connection to it.
func serve(t *testing.T, d *Driver) *grpc.ClientConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "lnvmode") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "csi.sock")
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, "unix://"+sock) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("CSI socket did not appear")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for { // Serve restricts the socket to its owner right after listening
		fi, err := os.Stat(sock)
		if err == nil && fi.Mode().Perm() == 0o600 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("CSI socket: %v", err)
			}
			t.Fatalf("CSI socket mode %v, want 0600", fi.Mode().Perm())
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestControllerModeRefusesEverythingElse calls every RPC of the Identity, Controller and
// Node services (from the generated service descriptors, so RPCs added to the spec are
// covered too) on a controller-mode driver without engine or host: only the five it serves
// may answer, everything else must be Unimplemented naming the node plugin — before any
// handler runs (a handler would dereference the nil engine and crash the test).
func TestControllerModeRefusesEverythingElse(t *testing.T) {
	d, err := New(Options{Version: "v1.2.3", Mode: ModeController})
	if err != nil {
		t.Fatal(err)
	}
	d.SetReady(true)
	conn := serve(t, d)
	served := []string{"GetPluginInfo", "GetPluginCapabilities", "Probe", "ControllerGetCapabilities", "NodeGetCapabilities"}
	var seen []string
	for _, sd := range []grpc.ServiceDesc{csi.Identity_ServiceDesc, csi.Controller_ServiceDesc, csi.Node_ServiceDesc} {
		if len(sd.Streams) != 0 {
			t.Errorf("%s has streaming RPCs: the controller-mode guard covers unary RPCs only", sd.ServiceName)
		}
		for _, m := range sd.Methods {
			full := "/" + sd.ServiceName + "/" + m.MethodName
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			// An empty message decodes as any request type.
			err := conn.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
			cancel()
			if slices.Contains(served, m.MethodName) {
				seen = append(seen, m.MethodName)
				if err != nil {
					t.Errorf("%s: %v, want it served", m.MethodName, err)
				}
				continue
			}
			st := status.Convert(err)
			if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "node plugin") || !strings.Contains(st.Message(), m.MethodName) {
				t.Errorf("%s = %v %q, want Unimplemented naming the RPC and the node plugin", m.MethodName, st.Code(), st.Message())
			}
		}
	}
	slices.Sort(seen)
	slices.Sort(served)
	if !slices.Equal(seen, served) {
		t.Errorf("served RPCs found in the service descriptors = %v, want %v", seen, served)
	}
}

func pluginCaps(r *csi.GetPluginCapabilitiesResponse) (svc []csi.PluginCapability_Service_Type, exp []csi.PluginCapability_VolumeExpansion_Type) {
	for _, c := range r.GetCapabilities() {
		if s := c.GetService(); s != nil {
			svc = append(svc, s.GetType())
		}
		if e := c.GetVolumeExpansion(); e != nil {
			exp = append(exp, e.GetType())
		}
	}
	return svc, exp
}

func controllerCaps(r *csi.ControllerGetCapabilitiesResponse) []csi.ControllerServiceCapability_RPC_Type {
	var out []csi.ControllerServiceCapability_RPC_Type
	for _, c := range r.GetCapabilities() {
		out = append(out, c.GetRpc().GetType())
	}
	return out
}

func nodeCaps(r *csi.NodeGetCapabilitiesResponse) []csi.NodeServiceCapability_RPC_Type {
	var out []csi.NodeServiceCapability_RPC_Type
	for _, c := range r.GetCapabilities() {
		out = append(out, c.GetRpc().GetType())
	}
	return out
}

// TestCapabilitiesByMode pins the capability sets external-resizer decides on: in controller
// mode no controller EXPAND_VOLUME and a node EXPAND_VOLUME (its trivial resizer); the node
// plugin keeps controller expansion.
func TestCapabilitiesByMode(t *testing.T) {
	ctx := context.Background()
	ctl, err := New(Options{Version: "v1", Mode: ModeController})
	if err != nil {
		t.Fatal(err)
	}
	node, err := New(Options{Version: "v1", Mode: ModeNode, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}

	pr, _ := ctl.GetPluginCapabilities(ctx, nil)
	svc, exp := pluginCaps(pr)
	if want := []csi.PluginCapability_Service_Type{csi.PluginCapability_Service_CONTROLLER_SERVICE, csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS}; !slices.Equal(svc, want) {
		t.Errorf("controller plugin services = %v, want %v", svc, want)
	}
	if want := []csi.PluginCapability_VolumeExpansion_Type{csi.PluginCapability_VolumeExpansion_ONLINE}; !slices.Equal(exp, want) {
		t.Errorf("controller volume expansion = %v, want %v", exp, want)
	}
	cr, _ := ctl.ControllerGetCapabilities(ctx, nil)
	if got := controllerCaps(cr); len(got) != 0 {
		t.Errorf("controller-mode controller capabilities = %v, want none (it serves no controller RPC)", got)
	}
	nr, _ := ctl.NodeGetCapabilities(ctx, nil)
	if got, want := nodeCaps(nr), []csi.NodeServiceCapability_RPC_Type{csi.NodeServiceCapability_RPC_EXPAND_VOLUME}; !slices.Equal(got, want) {
		t.Errorf("controller-mode node capabilities = %v, want %v", got, want)
	}

	pr, _ = node.GetPluginCapabilities(ctx, nil)
	if svc, _ := pluginCaps(pr); !slices.Contains(svc, csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS) || !slices.Contains(svc, csi.PluginCapability_Service_CONTROLLER_SERVICE) {
		t.Errorf("node plugin services = %v", svc)
	}
	cr, _ = node.ControllerGetCapabilities(ctx, nil)
	if got := controllerCaps(cr); !slices.Contains(got, csi.ControllerServiceCapability_RPC_EXPAND_VOLUME) || !slices.Contains(got, csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME) {
		t.Errorf("node-mode controller capabilities = %v, want CREATE_DELETE_VOLUME and EXPAND_VOLUME among them", got)
	}
	nr, _ = node.NodeGetCapabilities(ctx, nil)
	if got := nodeCaps(nr); !slices.Contains(got, csi.NodeServiceCapability_RPC_EXPAND_VOLUME) || !slices.Contains(got, csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		t.Errorf("node-mode node capabilities = %v", got)
	}
}
