// Package registration registers the CSI driver with kubelet through the kubelet plugin
// registration API (k8s.io/kubelet/pkg/apis/pluginregistration/v1), the job the
// node-driver-registrar sidecar does otherwise.
//
// Kubelet watches its plugin registration directory for new unix sockets. For each it
// calls GetInfo, dials the CSI endpoint named there (NodeGetInfo), and reports the outcome
// with NotifyRegistrationStatus. Removing the socket deregisters the plugin.
package registration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// DefaultRegistrationDir is where kubelet watches for plugin registration sockets.
const DefaultRegistrationDir = "/var/lib/kubelet/plugins_registry"

// DefaultSupportedVersions are the CSI versions offered to kubelet.
var DefaultSupportedVersions = []string{"1.0.0"}

// Options configure a registration server.
type Options struct {
	// DriverName is the CSI driver name; the socket is RegistrationDir/<DriverName>-reg.sock.
	DriverName string
	// RegistrationDir is kubelet's plugin registration directory (default
	// DefaultRegistrationDir), as this process sees it.
	RegistrationDir string
	// KubeletEndpoint is the CSI socket path as kubelet must dial it, e.g.
	// /var/lib/kubelet/plugins/localnvme.io/csi.sock (a unix:// prefix is accepted and
	// stripped: kubelet expects a plain path).
	KubeletEndpoint string
	// SupportedVersions are the CSI versions offered (default DefaultSupportedVersions).
	SupportedVersions []string
}

// Status is the last registration outcome kubelet reported.
type Status struct {
	Notified   bool   // kubelet has called NotifyRegistrationStatus at least once
	Registered bool   // the last call said the plugin is registered
	Error      string // the last call's error text, if any
}

// Err is nil unless kubelet reported a failed registration. Not having heard from kubelet
// yet is not an error: kubelet may not be watching the directory yet.
func (s Status) Err() error {
	if !s.Notified || s.Registered {
		return nil
	}
	if s.Error == "" {
		return errors.New("kubelet plugin registration failed")
	}
	return fmt.Errorf("kubelet plugin registration failed: %s", s.Error)
}

// Server answers kubelet's registration calls and records their outcome.
type Server struct {
	registerapi.UnimplementedRegistrationServer

	info   *registerapi.PluginInfo
	socket string
	logger klog.Logger

	mu     sync.Mutex
	status Status
}

// New checks o, applies defaults and returns a server that is not serving yet.
func New(o Options) (*Server, error) {
	if o.DriverName == "" || strings.ContainsAny(o.DriverName, "/\x00") {
		return nil, fmt.Errorf("registration: invalid driver name %q", o.DriverName)
	}
	endpoint := strings.TrimPrefix(o.KubeletEndpoint, "unix://")
	if endpoint == "" {
		return nil, errors.New("registration: the kubelet CSI endpoint must be set")
	}
	if o.RegistrationDir == "" {
		o.RegistrationDir = DefaultRegistrationDir
	}
	if len(o.SupportedVersions) == 0 {
		o.SupportedVersions = DefaultSupportedVersions
	}
	return &Server{
		info: &registerapi.PluginInfo{
			Type:              registerapi.CSIPlugin,
			Name:              o.DriverName,
			Endpoint:          endpoint,
			SupportedVersions: slices.Clone(o.SupportedVersions),
		},
		socket: filepath.Join(o.RegistrationDir, o.DriverName+"-reg.sock"),
		logger: klog.Background(),
	}, nil
}

// Serve is New followed by Server.Serve, for callers that do not need the status.
func Serve(ctx context.Context, o Options) error {
	s, err := New(o)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Socket is the registration socket's path.
func (s *Server) Socket() string { return s.socket }

// Status returns the last outcome kubelet reported.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Serve listens on the registration socket and answers kubelet until ctx ends, then stops
// and removes the socket (deregistering the plugin). A stale socket at the path is
// replaced; any other file there is left alone and Serve fails.
//
// OS calls: one lstat of the socket path, unlink of a stale socket, and the listening
// socket itself (created by listen, unlinked when the listener closes).
func (s *Server) Serve(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("registration").WithValues("socket", s.socket)
	s.logger = logger
	if fi, err := os.Lstat(s.socket); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("registration: %s exists and is not a socket; refusing to remove it", s.socket)
		}
		if err := os.Remove(s.socket); err != nil {
			return fmt.Errorf("registration: removing stale socket: %w", err)
		}
		logger.V(2).Info("Removed stale registration socket")
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("registration: %w", err)
	}
	lis, err := net.Listen("unix", s.socket)
	if err != nil {
		return fmt.Errorf("registration: listening on %s: %w", s.socket, err)
	}
	// Closing the listener (srv.Stop) unlinks the socket file; this is net's default for
	// listeners it created, set explicitly because removal is what deregisters the plugin.
	lis.(*net.UnixListener).SetUnlinkOnClose(true)

	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, s)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Registration calls are short; there is nothing to drain.
		srv.Stop()
	}()
	logger.Info("Serving kubelet plugin registration", "driver", s.info.Name, "endpoint", s.info.Endpoint, "versions", s.info.SupportedVersions)
	err = srv.Serve(lis)
	if ctx.Err() != nil {
		<-stopped // the listener is closed and the socket unlinked
		logger.V(2).Info("Stopped kubelet plugin registration")
		return nil //nolint:nilerr // Serve's error is its answer to our Stop on ctx's end
	}
	srv.Stop()
	return fmt.Errorf("registration: serving %s: %w", s.socket, err)
}

// GetInfo tells kubelet the plugin type, name, CSI endpoint and versions.
func (s *Server) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	s.logger.V(2).Info("Kubelet asked for plugin info")
	return &registerapi.PluginInfo{
		Type:              s.info.Type,
		Name:              s.info.Name,
		Endpoint:          s.info.Endpoint,
		SupportedVersions: slices.Clone(s.info.SupportedVersions),
	}, nil
}

// NotifyRegistrationStatus records kubelet's verdict.
func (s *Server) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	s.mu.Lock()
	s.status = Status{Notified: true, Registered: st.GetPluginRegistered(), Error: st.GetError()}
	s.mu.Unlock()
	if st.GetPluginRegistered() {
		s.logger.Info("Registered with kubelet")
	} else {
		s.logger.Error(errors.New(st.GetError()), "Kubelet refused the plugin registration")
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
