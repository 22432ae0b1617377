package driver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"
)

// Host is the node's OS surface the node service uses: the mount table, mount/unmount,
// device numbers and filesystem statistics. Contract: every method is safe for concurrent use;
// paths are absolute; nothing here creates or removes anything except the named mount point
// (Mount/Unmount) and the empty target created by MakeTarget.
type Host interface {
	// MountInfo returns the current mount table (/proc/self/mountinfo).
	MountInfo() ([]mount.MountInfo, error)
	// Mount mounts source at target (fstype "" with "bind" in options for bind mounts).
	Mount(source, target, fstype string, options []string) error
	// Unmount unmounts target.
	Unmount(target string) error
	// DevNumber returns the device number a block device node (or a file bind-mounted from
	// one) stands for; ok is false when path is not a block device.
	DevNumber(path string) (major, minor uint32, ok bool, err error)
	// DMUUID returns the device-mapper UUID of a block device (/sys/dev/block/M:m/dm/uuid),
	// "" when it is not a device-mapper device.
	DMUUID(major, minor uint32) (string, error)
	// Statfs returns filesystem usage at path.
	Statfs(path string) (FSStats, error)
	// MakeTarget creates a directory (dir=true) or an empty file at path, with parents.
	MakeTarget(path string, dir bool) error
	// RemoveTarget removes path only when it is an empty directory or an empty regular
	// file (what MakeTarget makes); anything else is left and reported as an error.
	RemoveTarget(path string) error
	// Inspect resolves every symlink in path and says what is there (see Target).
	Inspect(path string) (Target, error)
}

// TargetKind is what Inspect found at a path.
type TargetKind int

// Target kinds.
const (
	// TargetAbsent: nothing at the path; the driver may create it.
	TargetAbsent TargetKind = iota
	// TargetEmptyDir: an empty directory.
	TargetEmptyDir
	// TargetEmptyFile: an empty regular file.
	TargetEmptyFile
	// TargetOther: anything else (entries, bytes, a device, a dangling symlink, …).
	TargetOther
)

// Target is a path as Inspect resolved it.
type Target struct {
	// Path is the path with every symlink resolved; for an absent path, its deepest
	// existing parent resolved plus the rest. Mount tables show this path.
	Path string
	Kind TargetKind
	// What describes it for messages ("a directory with entries", "a 12-byte regular file").
	What string
}

// FSStats is what NodeGetVolumeStats reports for a mounted filesystem.
type FSStats struct {
	TotalBytes, AvailableBytes, UsedBytes int64
	TotalInodes, FreeInodes, UsedInodes   int64
}

// OSHost is the real Host.
type OSHost struct {
	mounter mount.Interface
}

// NewOSHost returns a Host backed by the kernel and util-linux mount.
func NewOSHost(ex utilexec.Interface) *OSHost {
	_ = ex
	return &OSHost{mounter: mount.New("")}
}

// MountInfo implements Host.
func (h *OSHost) MountInfo() ([]mount.MountInfo, error) {
	return readMountInfo("/proc/self/mountinfo")
}

// readMountInfo reads a mountinfo file with mount-utils' parser and undoes the kernel's
// escapes, which that parser leaves in place: the kernel writes ' ', '\t', '\n' and '\\' in
// roots, mount points, types and sources as \040, \011, \012 and \134
// (fs/proc_namespace.c), so a mount point with a space would never equal the path kubelet
// sends. (mount-utils splits fields at any white space, so a path holding white space the
// kernel does not escape, such as \r or U+00A0, still reads wrong.)
func readMountInfo(path string) ([]mount.MountInfo, error) {
	mis, err := mount.ParseMountInfo(path)
	if err != nil {
		return nil, err
	}
	for i := range mis {
		mi := &mis[i]
		mi.Root, mi.MountPoint = unescapeMountInfo(mi.Root), unescapeMountInfo(mi.MountPoint)
		mi.FsType, mi.Source = unescapeMountInfo(mi.FsType), unescapeMountInfo(mi.Source)
	}
	return mis, nil
}

// unescapeMountInfo replaces every \ooo (three octal digits, at most \377) by the byte it
// stands for, as util-linux does when it reads mountinfo.
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	isOctal := func(c byte) bool { return c >= '0' && c <= '7' }
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] <= '3' && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mount implements Host.
func (h *OSHost) Mount(source, target, fstype string, options []string) error {
	return h.mounter.Mount(source, target, fstype, options)
}

// Unmount implements Host.
func (h *OSHost) Unmount(target string) error { return h.mounter.Unmount(target) }

// DevNumber implements Host.
func (h *OSHost) DevNumber(path string) (uint32, uint32, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, false, nil
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev), true, nil
}

// DMUUID implements Host.
func (h *OSHost) DMUUID(major, minor uint32) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/dm/uuid", major, minor))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// Statfs implements Host.
func (h *OSHost) Statfs(path string) (FSStats, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return FSStats{}, err
	}
	bs := int64(s.Bsize)
	return FSStats{
		TotalBytes:     int64(s.Blocks) * bs,
		AvailableBytes: int64(s.Bavail) * bs,
		UsedBytes:      int64(s.Blocks-s.Bfree) * bs,
		TotalInodes:    int64(s.Files),
		FreeInodes:     int64(s.Ffree),
		UsedInodes:     int64(s.Files - s.Ffree),
	}, nil
}

// MakeTarget implements Host.
func (h *OSHost) MakeTarget(path string, dir bool) error {
	if dir {
		return os.MkdirAll(path, 0o750)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o640) //nolint:gosec // G302: a mount point for a block volume's bind mount; the device node's mode applies
	if err != nil {
		return err
	}
	return f.Close()
}

// RemoveTarget implements Host.
func (h *OSHost) RemoveTarget(path string) error {
	t, err := h.Inspect(path)
	if err != nil {
		return err
	}
	switch t.Kind {
	case TargetAbsent:
		return nil
	case TargetEmptyDir, TargetEmptyFile:
		// os.Remove of a directory fails if an entry appeared meanwhile
		if err := os.Remove(t.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return fmt.Errorf("%s is %s, not an empty directory or empty file: left alone", t.Path, t.What)
}

// Inspect implements Host.
func (h *OSHost) Inspect(path string) (Target, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if errors.Is(err, os.ErrNotExist) {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return Target{Path: path, Kind: TargetOther, What: "a symlink to a missing path"}, nil
		}
		// absent: resolve the deepest parent that exists
		dir, rest := path, ""
		for dir != "/" && dir != "." {
			rest = filepath.Join(filepath.Base(dir), rest)
			dir = filepath.Dir(dir)
			r, err := filepath.EvalSymlinks(dir)
			if err == nil {
				return Target{Path: filepath.Join(r, rest), Kind: TargetAbsent, What: "absent"}, nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return Target{}, err
			}
		}
		return Target{Path: path, Kind: TargetAbsent, What: "absent"}, nil
	}
	if err != nil {
		return Target{}, err
	}
	t := Target{Path: resolved, Kind: TargetOther}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return Target{}, err
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		f, err := os.Open(resolved)
		if err != nil {
			return Target{}, err
		}
		defer func() { _ = f.Close() }() // read only
		if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
			t.Kind, t.What = TargetEmptyDir, "an empty directory"
		} else if err != nil {
			return Target{}, err
		} else {
			t.What = "a directory with entries"
		}
	case m.IsRegular():
		if fi.Size() == 0 {
			t.Kind, t.What = TargetEmptyFile, "an empty regular file"
		} else {
			t.What = fmt.Sprintf("a %d-byte regular file", fi.Size())
		}
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		t.What = "a block device node"
	case m&os.ModeCharDevice != 0:
		t.What = "a character device node"
	case m&os.ModeSocket != 0:
		t.What = "a socket"
	case m&os.ModeNamedPipe != 0:
		t.What = "a named pipe"
	default:
		t.What = "a " + m.Type().String() + " file"
	}
	return t, nil
}

// mountAt returns the mount table entry whose mount point is path (the last one wins, as
// in the kernel), or nil.
func mountAt(mis []mount.MountInfo, path string) *mount.MountInfo {
	clean := filepath.Clean(path)
	var found *mount.MountInfo
	for i := range mis {
		if mis[i].MountPoint == clean {
			found = &mis[i]
		}
	}
	return found
}

// devString formats a device number as in mountinfo.
func devString(major, minor int) string { return fmt.Sprintf("%d:%d", major, minor) }

// isDevtmpfs reports whether a mount entry is a bind mount of a device node.
func isDevtmpfs(mi *mount.MountInfo) bool {
	return mi.FsType == "devtmpfs" || (mi.FsType == "tmpfs" && strings.HasPrefix(mi.Source, "udev"))
}
