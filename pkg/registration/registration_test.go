package registration

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2/ktesting"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const endpoint = "/var/lib/kubelet/plugins/localnvme.io/csi.sock"

// start runs s.Serve in the background and waits until its socket answers. The returned
// function cancels Serve and returns its error.
func start(t *testing.T, s *Server) func() error {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", s.Socket())
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("Serve returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("registration socket never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	var serveErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after cancel")
			}
		}
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// dial connects to the registration socket the way kubelet does.
func dial(t *testing.T, socket string) registerapi.RegistrationClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return registerapi.NewRegistrationClient(conn)
}

func newServer(t *testing.T, dir string, versions []string) *Server {
	t.Helper()
	s, err := New(Options{DriverName: "localnvme.io", RegistrationDir: dir, KubeletEndpoint: "unix://" + endpoint, SupportedVersions: versions})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGetInfo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		versions []string
		want     []string
	}{
		{"default versions", nil, []string{"1.0.0"}},
		{"explicit versions", []string{"1.0.0", "0.3.0"}, []string{"1.0.0", "0.3.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newServer(t, dir, tc.versions)
			if want := filepath.Join(dir, "localnvme.io-reg.sock"); s.Socket() != want {
				t.Fatalf("socket = %s, want %s", s.Socket(), want)
			}
			start(t, s)
			info, err := dial(t, s.Socket()).GetInfo(context.Background(), &registerapi.InfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != "CSIPlugin" || info.Name != "localnvme.io" || info.Endpoint != endpoint || !slices.Equal(info.SupportedVersions, tc.want) {
				t.Fatalf("GetInfo = %+v", info)
			}
		})
	}
}

func TestNotifyRegistrationStatus(t *testing.T) {
	s := newServer(t, t.TempDir(), nil)
	start(t, s)
	c := dial(t, s.Socket())
	if st := s.Status(); st.Notified || st.Err() != nil {
		t.Fatalf("before any notification: %+v, err %v", st, st.Err())
	}
	for _, tc := range []struct {
		name    string
		req     *registerapi.RegistrationStatus
		wantErr string // "" = healthy
	}{
		{"refused", &registerapi.RegistrationStatus{PluginRegistered: false, Error: "no version supported"}, "no version supported"},
		{"registered", &registerapi.RegistrationStatus{PluginRegistered: true}, ""},
		{"refused without text", &registerapi.RegistrationStatus{}, "registration failed"},
		{"registered again", &registerapi.RegistrationStatus{PluginRegistered: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.NotifyRegistrationStatus(context.Background(), tc.req); err != nil {
				t.Fatal(err)
			}
			st := s.Status()
			if !st.Notified || st.Registered != tc.req.PluginRegistered || st.Error != tc.req.Error {
				t.Fatalf("Status = %+v after %v", st, tc.req)
			}
			err := st.Err()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Err = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, dir, nil)
	// A socket left behind by a dead process: bound, then the listener forgets to unlink.
	old, err := net.Listen("unix", s.Socket())
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if fi, err := os.Lstat(s.Socket()); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("setup: no stale socket: %v", err)
	}
	start(t, s)
	if _, err := dial(t, s.Socket()).GetInfo(context.Background(), &registerapi.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesNonSocket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create func(path string) error
	}{
		{"regular file", func(p string) error { return os.WriteFile(p, []byte("keep me"), 0o600) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"symlink to a socket path", func(p string) error { return os.Symlink(p+".target", p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newServer(t, dir, nil)
			if err := tc.create(s.Socket()); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(s.Socket())
			_, ctx := ktesting.NewTestContext(t)
			err := s.Serve(ctx)
			if err == nil || !strings.Contains(err.Error(), "not a socket") {
				t.Fatalf("Serve = %v, want a refusal", err)
			}
			after, err := os.Lstat(s.Socket())
			if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
				t.Fatalf("the file at the socket path was touched: %v", err)
			}
		})
	}
}

func TestSocketRemovedOnCancel(t *testing.T) {
	s := newServer(t, t.TempDir(), nil)
	stop := start(t, s)
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v after cancel, want nil", err)
	}
	if _, err := os.Lstat(s.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still present after cancel: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no driver name", Options{KubeletEndpoint: endpoint}},
		{"slash in driver name", Options{DriverName: "a/b", KubeletEndpoint: endpoint}},
		{"no endpoint", Options{DriverName: "localnvme.io"}},
		{"bare unix scheme", Options{DriverName: "localnvme.io", KubeletEndpoint: "unix://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil {
				t.Fatal("New accepted invalid options")
			}
		})
	}
	s, err := New(Options{DriverName: "localnvme.io", KubeletEndpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/var/lib/kubelet/plugins_registry/localnvme.io-reg.sock"; s.Socket() != want {
		t.Fatalf("default socket = %s, want %s", s.Socket(), want)
	}
}
