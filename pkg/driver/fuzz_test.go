package driver

// Fuzz target (go test -fuzz, hack/fuzz.sh). `go test` runs it on its seed corpus: the
// f.Add seeds below and testdata/fuzz/FuzzMountInfo/, which keeps every input a fuzzing
// run ever failed on.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	mount "k8s.io/mount-utils"
)

// nodeMountInfo is a kubelet node's mount table in the kernel's format (written after
// one on a localnvme node: a staged ext4 volume published to a pod, and a raw block volume
// whose device node kubelet bind-mounted, so the entry is devtmpfs).
const nodeMountInfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4041600k,nr_inodes=1010400,mode=755
24 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:25 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=812000k,mode=755
40 22 259:9 / /var/lib/other rw,relatime shared:30 - xfs /dev/nvme1n1 rw,attr2,inode64,noquota
310 22 253:3 / /var/lib/kubelet/plugins/kubernetes.io/csi/localnvme.io/6a9e1c5d0f3b2a7e8d4c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e/globalmount rw,relatime shared:160 - ext4 /dev/mapper/localnvme--fast-vadf91ae1203b501c0ca18fd9 rw
315 22 253:3 / /var/lib/kubelet/pods/0b2f6a9e-1c5d-4f3b-8a7e-2d4c1b0a9f8e/volumes/kubernetes.io~csi/pvc-5a0c9d3e-7b1f-4e2a-9c8d-6f5e4d3c2b1a/mount rw,relatime shared:160 - ext4 /dev/mapper/localnvme--fast-vadf91ae1203b501c0ca18fd9 rw
320 22 0:5 /dm-4 /var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b/0b2f6a9e-1c5d-4f3b-8a7e-2d4c1b0a9f8e rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4041600k,nr_inodes=1010400,mode=755
`

// kernelEscape writes s as the kernel writes paths and sources in mountinfo
// (fs/proc_namespace.c: seq_escape with " \t\n\\", each as \ooo).
func kernelEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; strings.IndexByte(" \t\n\\", c) >= 0 {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitsFields reports whether s holds white space the kernel does not escape but
// mount-utils' parser splits fields at (strings.Fields: \v, \f, \r and Unicode spaces).
func splitsFields(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) && r != ' ' && r != '\t' && r != '\n' })
}

func parseTable(t *testing.T, table string) ([]mount.MountInfo, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	return readMountInfo(p)
}

// FuzzMountInfo: the node's mount-table reading (readMountInfo, over mount-utils' parser)
// never panics, and the decisions built on it hold: mountAt finds the last entry whose
// mount point is the path (or none). Round trip: when the kernel shows a mount of device
// major:minor from source at path (any absolute, clean path kubelet could send, written
// with the kernel's escapes), mountAt(path) finds that device and source there, and
// publishedAt lists path for that device unless path is the staging path it excludes.
func FuzzMountInfo(f *testing.F) {
	kubelet := "/var/lib/kubelet/pods/0b2f6a9e-1c5d-4f3b-8a7e-2d4c1b0a9f8e/volumes/kubernetes.io~csi/pvc-1/mount"
	f.Add(nodeMountInfo, kubelet, uint16(253), uint16(7), "/dev/mapper/localnvme--fast-v62076645ceeb80779cec104e")
	f.Add(nodeMountInfo, "/var/lib/other", uint16(259), uint16(9), "/dev/nvme1n1")
	f.Add("", "/", uint16(0), uint16(0), "none")
	f.Add("1 2 3:4 / /x rw - ext4 /dev/x rw\n1 2 3:4\n", "/x", uint16(3), uint16(4), "")
	f.Add("a b c\n", "relative/path", uint16(1), uint16(1), "udev")
	f.Fuzz(func(t *testing.T, table, path string, major, minor uint16, source string) {
		if mis, err := parseTable(t, table); err == nil {
			for _, p := range []string{path, filepath.Clean(path)} {
				var want *mount.MountInfo
				for i := range mis {
					if mis[i].MountPoint == filepath.Clean(p) {
						want = &mis[i]
					}
				}
				if got := mountAt(mis, p); got != want {
					t.Fatalf("mountAt(%q) = %+v, want %+v", p, got, want)
				}
			}
		}

		if checkPath("target_path", path) != nil || strings.ContainsRune(path, 0) || splitsFields(path) {
			return // kubelet sends absolute, clean paths; the rest is mount-utils' limit (above)
		}
		if source == "" || strings.ContainsRune(source, 0) || splitsFields(source) {
			source = "none"
		}
		line := fmt.Sprintf("900 22 %d:%d / %s rw,relatime shared:901 - ext4 %s rw\n", major, minor, kernelEscape(path), kernelEscape(source))
		mis, err := parseTable(t, nodeMountInfo+line)
		if err != nil {
			t.Fatalf("the kernel's line %q does not parse: %v", line, err)
		}
		mi := mountAt(mis, path)
		if mi == nil || mi.Major != int(major) || mi.Minor != int(minor) || mi.Source != source || mi.FsType != "ext4" {
			t.Fatalf("mount of %d:%d from %q at %q (line %q): mountAt found %+v", major, minor, source, path, line, mi)
		}
		d := &Driver{host: &fakeHost{}}
		dev := devString(int(major), int(minor))
		if at := d.publishedAt(mis, dev, ""); !slices.Contains(at, path) {
			t.Fatalf("publishedAt(%s) = %q, misses %q", dev, at, path)
		}
		if at := d.publishedAt(mis, dev, path); slices.Contains(at, path) {
			t.Fatalf("publishedAt(%s, staging %q) = %q lists the staging path", dev, path, at)
		}
	})
}
