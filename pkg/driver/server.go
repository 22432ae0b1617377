// Package driver is the CSI gRPC service layer: one file per CSI service (identity.go,
// controller.go, node.go). It validates requests, calls the volume engine and the node's
// mount/format helpers, and picks gRPC codes in one place (errors.go).
package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Names the driver answers to.
const (
	DriverName  = "localnvme.io"
	TopologyKey = "localnvme.io/node"
	// ParamDeviceClass selects the device class in StorageClass parameters.
	ParamDeviceClass = "localnvme.io/device-class"
)

// Mode selects which services the socket serves.
type Mode string

// Modes.
const (
	// ModeNode serves Identity, Controller (with EXPAND_VOLUME) and Node for the local node.
	ModeNode Mode = "node"
	// ModeController is the cluster-wide controller beside external-resizer. It has no
	// volume engine and touches no device: it answers Identity, ControllerGetCapabilities
	// (no RPC capabilities, so no EXPAND_VOLUME) and NodeGetCapabilities (EXPAND_VOLUME
	// only), so external-resizer takes its trivial path and kubelet's NodeExpandVolume on
	// the owning node grows the volume. Every other RPC answers Unimplemented.
	ModeController Mode = "controller"
)

// controllerModeRPCs are the only RPCs a ModeController driver lets through to a handler.
var controllerModeRPCs = map[string]bool{
	csi.Identity_GetPluginInfo_FullMethodName:               true,
	csi.Identity_GetPluginCapabilities_FullMethodName:       true,
	csi.Identity_Probe_FullMethodName:                       true,
	csi.Controller_ControllerGetCapabilities_FullMethodName: true,
	csi.Node_NodeGetCapabilities_FullMethodName:             true,
}

// Options configure a Driver.
type Options struct {
	NodeID  string
	Version string
	Mode    Mode
	Engine  *volume.Engine
	Host    Host
	Exec    utilexec.Interface
	Prober  *disk.Prober
	// Interceptors run on every unary call after the logging interceptor (e.g. metrics).
	Interceptors []grpc.UnaryServerInterceptor
	// KubeletDir, when set, is kubelet's root directory: every staging and target path must
	// resolve (through symlinks) to a path under its resolved form.
	KubeletDir string
	// SocketGroup, when set, is the GID that may connect to the CSI socket besides its
	// owner (mode 0660 with that group; non-root sidecars run in it). nil: mode 0600.
	SocketGroup *int
}

// Driver implements the CSI services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	nodeID  string
	version string
	mode    Mode
	engine  *volume.Engine
	host    Host
	exec    utilexec.Interface
	prober  *disk.Prober
	fs      *filesystems
	ready   atomic.Bool
	icpts   []grpc.UnaryServerInterceptor
	// kubeletDir: Options.KubeletDir with its symlinks resolved ("": no such check)
	kubeletDir string
	// socketGroup: Options.SocketGroup; sockFS restricts the socket (osSocketFS)
	socketGroup *int
	sockFS      socketFS
}

// New returns a driver.
func New(o Options) (*Driver, error) {
	if o.Version == "" {
		return nil, errors.New("driver version must be set (build with -ldflags -X)")
	}
	switch o.Mode {
	case ModeNode:
		if o.NodeID == "" {
			return nil, errors.New("node ID must be set")
		}
	case ModeController:
		// No engine, host, exec or prober: nothing in this mode may reach a device.
		if o.Engine != nil || o.Host != nil || o.Exec != nil || o.Prober != nil {
			return nil, errors.New("a controller-mode driver takes no volume engine, host, exec or prober")
		}
		o.NodeID = "" // serves no node
	default:
		return nil, fmt.Errorf("unknown driver mode %q (want %q or %q)", o.Mode, ModeNode, ModeController)
	}
	d := &Driver{nodeID: o.NodeID, version: o.Version, mode: o.Mode, engine: o.Engine, host: o.Host, exec: o.Exec, prober: o.Prober, icpts: o.Interceptors}
	d.fs = &filesystems{exec: o.Exec}
	d.sockFS = osSocketFS{}
	if o.SocketGroup != nil {
		if *o.SocketGroup < 0 || int64(*o.SocketGroup) >= 1<<32-1 {
			return nil, fmt.Errorf("CSI socket group %d is not a valid GID", *o.SocketGroup)
		}
		g := *o.SocketGroup
		d.socketGroup = &g
	}
	if o.KubeletDir != "" {
		if !filepath.IsAbs(o.KubeletDir) {
			return nil, fmt.Errorf("kubelet directory %q is not an absolute path", o.KubeletDir)
		}
		r, err := filepath.EvalSymlinks(o.KubeletDir)
		if err != nil {
			return nil, fmt.Errorf("kubelet directory: %w", err)
		}
		d.kubeletDir = r
	}
	return d, nil
}

// SetReady marks the driver ready for Probe.
func (d *Driver) SetReady(r bool) { d.ready.Store(r) }

// SocketPath is the file path of a CSI endpoint given as unix:///path or a path.
func SocketPath(endpoint string) string {
	path := strings.TrimPrefix(endpoint, "unix://")
	if u, err := url.Parse(endpoint); err == nil && u.Scheme == "unix" {
		path = u.Path
	}
	return path
}

// Serve listens on endpoint (unix:///path or a path) until ctx ends. A stale socket at the
// path (left by a process that did not stop cleanly) is replaced; the new socket gets its
// mode and group (Options.SocketGroup) before anything is served on it.
func (d *Driver) Serve(ctx context.Context, endpoint string) error {
	path, err := filepath.Abs(SocketPath(endpoint))
	if err != nil {
		return fmt.Errorf("CSI socket path: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%s exists and is not a socket; refusing to remove it", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing stale socket: %w", err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	// Only the owner (root in the node plugin: kubelet, root sidecars) and, when set, the
	// socket group (non-root sidecars) may connect: the socket can stage, format and delete.
	if err := restrictSocket(d.sockFS, path, d.socketGroup); err != nil {
		_ = lis.Close() // unlinks the socket: listeners made by net.Listen unlink on close
		return err
	}
	srv := d.GRPCServer(klog.FromContext(ctx))
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	logger := klog.FromContext(ctx).WithValues("endpoint", path, "mode", d.mode, "version", d.version)
	if d.mode == ModeNode {
		logger = logger.WithValues("node", d.nodeID)
	}
	logger.Info("Serving CSI")
	return srv.Serve(lis)
}

// GRPCServer returns a server with the services for the driver's mode registered. The
// logging interceptor runs first, then Options.Interceptors in order; in controller mode
// the controller-mode guard runs last, so refused calls are logged and counted too.
func (d *Driver) GRPCServer(logger klog.Logger) *grpc.Server {
	icpts := append([]grpc.UnaryServerInterceptor{logInterceptor(logger)}, d.icpts...)
	if d.mode == ModeController {
		icpts = append(icpts, controllerModeGuard)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(icpts...))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	return srv
}

// logInterceptor gives every call a contextual logger and logs request (secrets stripped),
// outcome and duration.
func logInterceptor(base klog.Logger) grpc.UnaryServerInterceptor {
	var seq atomic.Uint64
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		logger := base.WithValues("rpc", method, "call", seq.Add(1))
		ctx = klog.NewContext(ctx, logger)
		start := time.Now()
		logger.V(4).Info("Request", "request", protosanitizer.StripSecrets(req))
		resp, err := handler(ctx, req)
		if err != nil {
			st, _ := status.FromError(err)
			logger.Info("Failed", "code", st.Code().String(), "error", st.Message(), "duration", time.Since(start))
		} else {
			logger.V(2).Info("Done", "duration", time.Since(start))
			logger.V(5).Info("Response", "response", protosanitizer.StripSecrets(resp))
		}
		return resp, err
	}
}

// controllerModeGuard refuses, before any handler runs, every RPC a controller-mode driver
// does not serve: volumes are served by the node plugin on the node that holds them.
func controllerModeGuard(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !controllerModeRPCs[info.FullMethod] {
		return nil, notInControllerMode(info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:])
	}
	return handler(ctx, req)
}
