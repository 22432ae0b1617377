package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2/ktesting"
)

// fakeSocketFS is a socketFS that records its calls. dirs gives Stat's answer per path
// (a missing path is fs.ErrNotExist); errs fails the call named "lchown"/"chmod"/"stat <path>".
type fakeSocketFS struct {
	dirs  map[string]fakeDir
	errs  map[string]error
	calls []string
}

type fakeDir struct {
	perm fs.FileMode
	gid  int
}

func (f *fakeSocketFS) Lchown(path string, uid, gid int) error {
	f.calls = append(f.calls, fmt.Sprintf("lchown %s %d %d", path, uid, gid))
	return f.errs["lchown"]
}

func (f *fakeSocketFS) Chmod(path string, mode fs.FileMode) error {
	f.calls = append(f.calls, fmt.Sprintf("chmod %s %04o", path, mode))
	return f.errs["chmod"]
}

func (f *fakeSocketFS) Stat(path string) (fs.FileMode, int, error) {
	f.calls = append(f.calls, "stat "+path)
	if err := f.errs["stat "+path]; err != nil {
		return 0, 0, err
	}
	d, ok := f.dirs[path]
	if !ok {
		return 0, 0, fs.ErrNotExist
	}
	return d.perm, d.gid, nil
}

func TestRestrictSocket(t *testing.T) {
	const sock = "/var/lib/plug/csi.sock"
	gid := 65532
	open := map[string]fakeDir{"/var/lib/plug": {0o755, 0}, "/var/lib": {0o755, 0}, "/var": {0o755, 0}, "/": {0o755, 0}}
	with := func(path string, d fakeDir) map[string]fakeDir {
		m := map[string]fakeDir{}
		for k, v := range open {
			m[k] = v
		}
		m[path] = d
		return m
	}
	stats := []string{"stat /var/lib/plug", "stat /var/lib", "stat /var", "stat /"}
	granted := append(slices.Clone(stats), "lchown "+sock+" -1 65532", "chmod "+sock+" 0660")
	boom := errors.New("boom")
	tests := []struct {
		name    string
		group   *int
		dirs    map[string]fakeDir
		errs    map[string]error
		calls   []string
		wantErr string // substring; "" = success
		wantIs  error  // errors.Is on the returned error
	}{
		{name: "no group: owner only, nothing else looked at", calls: []string{"chmod " + sock + " 0600"}},
		{name: "group, every directory o+x: group first, then mode", group: &gid, dirs: open, calls: granted},
		{name: "directory g+x owned by the group", group: &gid, dirs: with("/var/lib/plug", fakeDir{0o750, gid}), calls: granted},
		{name: "directory o+x only (kubelet-style 0711)", group: &gid, dirs: with("/var/lib", fakeDir{0o711, 0}), calls: granted},
		{name: "directory g+x of another group", group: &gid, dirs: with("/var/lib/plug", fakeDir{0o750, 0}),
			calls: stats[:1], wantErr: "directory /var/lib/plug (mode 0750, group 0) is not searchable"},
		{name: "directory of the group without g+x", group: &gid, dirs: with("/var/lib", fakeDir{0o700, gid}),
			calls: stats[:2], wantErr: "directory /var/lib (mode 0700, group 65532) is not searchable"},
		{name: "root directory closed", group: &gid, dirs: with("/", fakeDir{0o700, 0}),
			calls: stats, wantErr: "directory / (mode 0700, group 0)"},
		{name: "stat fails", group: &gid, dirs: open, errs: map[string]error{"stat /var": boom},
			calls: stats[:3], wantErr: "checking that group 65532 can reach " + sock, wantIs: boom},
		{name: "chown fails: mode left alone", group: &gid, dirs: open, errs: map[string]error{"lchown": boom},
			calls: granted[:5], wantErr: "giving " + sock + " to group 65532", wantIs: boom},
		{name: "chmod fails", group: &gid, dirs: open, errs: map[string]error{"chmod": boom},
			calls: granted, wantErr: "restricting " + sock + " to its owner and group 65532", wantIs: boom},
		{name: "no group, chmod fails", errs: map[string]error{"chmod": boom},
			calls: []string{"chmod " + sock + " 0600"}, wantErr: "restricting " + sock + " to its owner", wantIs: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSocketFS{dirs: tt.dirs, errs: tt.errs}
			err := restrictSocket(f, sock, tt.group)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if !slices.Equal(f.calls, tt.calls) {
				t.Errorf("calls\n  %s\nwant\n  %s", strings.Join(f.calls, "\n  "), strings.Join(tt.calls, "\n  "))
			}
		})
	}
}

// socketTestGroup is a GID this process may give a file to that differs from the group a new
// file gets anyway, when there is one: any GID as root, else a supplementary group. Otherwise
// the process's own GID (then only the mode shows the group setting worked).
func socketTestGroup(t *testing.T) int {
	if os.Geteuid() == 0 {
		return 65532
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g != os.Getegid() {
			return g
		}
	}
	t.Logf("no supplementary group: the socket's group is the process's own, %d", os.Getegid())
	return os.Getegid()
}

// startServe runs d.Serve on sock until stop is called or the test ends; the channel reports
// Serve's result.
func startServe(t *testing.T, d *Driver, sock string) (done <-chan error, stop func()) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan error, 1)
	go func() { ch <- d.Serve(ctx, "unix://"+sock) }()
	t.Cleanup(cancel)
	return ch, cancel
}

// TestServeGivesTheSocketToItsGroup: a real socket, replacing a stale one with mode 0777,
// ends up 0660 with the configured group and answers CSI.
func TestServeGivesTheSocketToItsGroup(t *testing.T) {
	dir, err := os.MkdirTemp("", "lnvsock") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // MkdirTemp makes 0700: unreachable for the group
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	// A stale socket from an earlier run that did not clean up, open to everyone.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	// (Probe answering shows it was replaced: nothing listens on the stale one.)
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}

	gid := socketTestGroup(t)
	d, err := New(Options{Version: "v1", Mode: ModeController, SocketGroup: &gid})
	if err != nil {
		t.Fatal(err)
	}
	d.SetReady(true)
	done, stop := startServe(t, d, sock)

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Serve ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Probe on the socket: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Serving has started, so the socket's permissions are final.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != SocketModeGroup {
		t.Errorf("CSI socket mode %v, want a socket with %v", fi.Mode(), SocketModeGroup)
	}
	if _, g, err := (osSocketFS{}).Stat(sock); err != nil || g != gid {
		t.Errorf("CSI socket group %d (%v), want %d", g, err, gid)
	}
	conn.Close()
	stop()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestServeRefusesAnUnreachableSocket: with a socket group, a directory the group cannot
// search fails Serve before anything is served, and leaves no socket behind.
func TestServeRefusesAnUnreachableSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "lnvsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	gid := socketTestGroup(t)
	d, err := New(Options{Version: "v1", Mode: ModeController, SocketGroup: &gid})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := startServe(t, d, sock)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "directory "+dir+" (mode 0700") {
			t.Errorf("Serve: %v, want the unsearchable directory %s named", err, dir)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not fail")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind after the failed start: %v", err)
	}
}

func TestNewRefusesInvalidSocketGroup(t *testing.T) {
	for _, g := range []int{-1, 1<<32 - 1, 1 << 40} {
		if _, err := New(Options{Version: "v1", Mode: ModeController, SocketGroup: &g}); err == nil {
			t.Errorf("SocketGroup %d accepted", g)
		}
	}
	g := 65532
	d, err := New(Options{Version: "v1", Mode: ModeController, SocketGroup: &g})
	if err != nil {
		t.Fatal(err)
	}
	g = 1 // the driver keeps its own copy
	if d.socketGroup == nil || *d.socketGroup != 65532 {
		t.Errorf("socket group %v, want 65532", d.socketGroup)
	}
}
