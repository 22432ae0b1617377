package driver

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Modes of the CSI socket.
const (
	// SocketModeOwner: only the socket's owner may connect (the default: root in the node
	// plugin, kubelet and root sidecars connect; the controller's UID, shared with
	// csi-resizer, in the controller pod).
	SocketModeOwner fs.FileMode = 0o600
	// SocketModeGroup: the owner and Options.SocketGroup may connect (non-root sidecars in
	// that group).
	SocketModeGroup fs.FileMode = 0o660
)

// socketFS is the file-system surface Serve uses to restrict the CSI socket once listen has
// created it: the socket's group and mode, and the permissions of the directories above it.
// osSocketFS is the real one; tests use a fake that records the calls. Paths are absolute.
type socketFS interface {
	// Lchown sets path's owner and group (-1 leaves either alone), not following a symlink.
	Lchown(path string, uid, gid int) error
	// Chmod sets path's permission bits.
	Chmod(path string, mode fs.FileMode) error
	// Stat returns the permission bits and the group of path (symlinks followed).
	Stat(path string) (perm fs.FileMode, gid int, err error)
}

// osSocketFS is socketFS on the real file system.
type osSocketFS struct{}

func (osSocketFS) Lchown(path string, uid, gid int) error    { return os.Lchown(path, uid, gid) }
func (osSocketFS) Chmod(path string, mode fs.FileMode) error { return os.Chmod(path, mode) }
func (osSocketFS) Stat(path string) (fs.FileMode, int, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: no owner information (%T)", path, fi.Sys())
	}
	return fi.Mode().Perm(), int(st.Gid), nil
}

// restrictSocket sets who may connect to the unix socket at path (absolute), which listen
// has just created (with 0777 minus the umask) and nobody has been served on yet.
//
// group nil: mode 0600, only the owner. Otherwise the socket gets that group and mode 0660,
// after a check that every directory above it is searchable by the group (o+x, or g+x and
// owned by the group) as this process sees the path: the sidecars mount the same directory,
// and a socket they cannot reach would leave them retrying forever with no clear cause. The
// group is set before the mode, so the group never has more than the listen-time bits.
func restrictSocket(sfs socketFS, path string, group *int) error {
	if group == nil {
		if err := sfs.Chmod(path, SocketModeOwner); err != nil {
			return fmt.Errorf("restricting %s to its owner: %w", path, err)
		}
		return nil
	}
	gid := *group
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		perm, dgid, err := sfs.Stat(dir)
		if err != nil {
			return fmt.Errorf("checking that group %d can reach %s: %w", gid, path, err)
		}
		if perm&0o001 == 0 && (dgid != gid || perm&0o010 == 0) {
			return fmt.Errorf("group %d cannot reach %s: directory %s (mode %04o, group %d) is not searchable by it (it needs o+x, or g+x and group %d)",
				gid, path, dir, perm, dgid, gid)
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	if err := sfs.Lchown(path, -1, gid); err != nil {
		return fmt.Errorf("giving %s to group %d: %w", path, gid, err)
	}
	if err := sfs.Chmod(path, SocketModeGroup); err != nil {
		return fmt.Errorf("restricting %s to its owner and group %d: %w", path, gid, err)
	}
	return nil
}
