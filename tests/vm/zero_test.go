//go:build vmtest

package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// TestNoStaleDataInNewVolumes: on real LVM over emulated NVMe, extents that held a deleted
// volume's data read as zeros in the next thick volume carved from them, in the tail of a
// thick clone larger than its source, and in the range a thick expand adds; the data a clone
// copies is intact. It also measures what the zeroing costs (BLKZEROOUT through the driver
// against `blkdiscard -z` and a dd of zeros on a bare LV, in this run).
func TestNoStaleDataInNewVolumes(t *testing.T) {
	_, _, conn := startNode(t, classesConfig(t, ""))
	ctl := csi.NewControllerClient(conn)
	ctx := context.Background()
	block := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
	create := func(name string, size int64, src string) (string, time.Duration) {
		t.Helper()
		req := &csi.CreateVolumeRequest{
			Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
			Parameters:         map[string]string{"localnvme.io/device-class": "thick"},
			VolumeCapabilities: []*csi.VolumeCapability{block},
		}
		if src != "" {
			req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src}}}
		}
		start := time.Now()
		resp, err := ctl.CreateVolume(ctx, req)
		if err != nil {
			t.Fatalf("CreateVolume %s: %v", name, err)
		}
		return resp.GetVolume().GetVolumeId(), time.Since(start)
	}
	del := func(id string) {
		t.Helper()
		if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("DeleteVolume %s: %v", id, err)
		}
	}
	lvOf := func(id string) string { return strings.Split(id, ".")[2] }
	dev := func(id string) string { return "/dev/lnv-thick/" + lvOf(id) }
	// extents: the LV's physical extents as "pv:pe" (lvs seg_pe_ranges).
	extents := func(id string) map[string]bool {
		t.Helper()
		out := run(t, "lvm", "lvs", "--noheadings", "--segments", "-o", "seg_pe_ranges", "lnv-thick/"+lvOf(id))
		set := map[string]bool{}
		for _, r := range strings.Fields(out) {
			i := strings.LastIndex(r, ":")
			lo, hi, ok := strings.Cut(r[i+1:], "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if i < 0 || !ok || err1 != nil || err2 != nil {
				t.Fatalf("seg_pe_ranges %q: cannot parse %q", out, r)
			}
			for pe := a; pe <= b; pe++ {
				set[fmt.Sprintf("%s:%d", r[:i], pe)] = true
			}
		}
		return set
	}
	overlap := func(a, b map[string]bool) int {
		n := 0
		for k := range a {
			if b[k] {
				n++
			}
		}
		return n
	}
	pattern := func(seed byte) []byte {
		p := make([]byte, 1<<20)
		for i := range p {
			p[i] = seed ^ byte(i*7)
		}
		return p
	}
	// fill writes the pattern over [off, off+n) of the device and syncs.
	fill := func(path string, off, n int64, p []byte) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for o := off; o < off+n; o += int64(len(p)) {
			if _, err := f.WriteAt(p[:min(int64(len(p)), off+n-o)], o); err != nil {
				t.Fatalf("writing %s at %d: %v", path, o, err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	// nonZero returns the offset of the first non-zero byte in [off, off+n), or -1.
	nonZero := func(path string, off, n int64) int64 {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		zero := make([]byte, len(buf))
		for o := off; o < off+n; o += int64(len(buf)) {
			b := buf[:min(int64(len(buf)), off+n-o)]
			if _, err := io.ReadFull(io.NewSectionReader(f, o, int64(len(b))), b); err != nil {
				t.Fatalf("reading %s at %d: %v", path, o, err)
			}
			if !bytes.Equal(b, zero[:len(b)]) {
				return o + int64(bytes.IndexFunc(b, func(r rune) bool { return r != 0 }))
			}
		}
		return -1
	}
	sizeOf := func(path string) int64 {
		t.Helper()
		n, err := strconv.ParseInt(strings.TrimSpace(run(t, "blockdev", "--getsize64", path)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// dirty creates a volume of size, fills it with the pattern, deletes it, and returns its
	// extents: the next allocation in the class lands on them.
	dirty := func(name string, size int64, seed byte) map[string]bool {
		t.Helper()
		id, _ := create(name, size, "")
		ext := extents(id)
		fill(dev(id), 0, size, pattern(seed))
		del(id)
		return ext
	}
	const mib = 1 << 20
	// headSum hashes the device's first n bytes.
	headSum := func(path string, n int64) string {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, io.LimitReader(f, n)); err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}

	// 1. A new volume on a deleted one's extents.
	old := dirty("zero-old", 64*mib, 0xa5)
	a, _ := create("zero-new", 64*mib, "")
	if n := overlap(old, extents(a)); n == 0 {
		t.Fatalf("the new volume got none of the deleted volume's %d extents: the test proves nothing (allocation changed?)", len(old))
	} else {
		t.Logf("new volume on %d of the deleted volume's %d extents", n, len(old))
	}
	if o := nonZero(dev(a), 0, sizeOf(dev(a))); o >= 0 {
		t.Errorf("new volume %s: non-zero byte at offset %d (the deleted volume's data)", dev(a), o)
	} else {
		t.Logf("new volume reads zeros over all %d bytes", sizeOf(dev(a)))
	}

	// 2. A thick clone larger than its source.
	src, _ := create("zero-src", 32*mib, "")
	fill(dev(src), 0, 32*mib, pattern(0x3c))
	wantHead := headSum(dev(src), 32*mib)
	old = dirty("zero-old2", 64*mib, 0x5a)
	clone, _ := create("zero-clone", 64*mib, src)
	if n := overlap(old, extents(clone)); n == 0 {
		t.Fatalf("the clone got none of the deleted volume's extents: the test proves nothing")
	}
	if got := headSum(dev(clone), 32*mib); got != wantHead {
		t.Errorf("the clone's first 32 MiB differ from its source: %s, want %s", got, wantHead)
	}
	if o := nonZero(dev(clone), 32*mib, sizeOf(dev(clone))-32*mib); o >= 0 {
		t.Errorf("clone %s: non-zero byte at offset %d, past the copied 32 MiB", dev(clone), o)
	} else {
		t.Logf("clone: source bytes intact, the %d bytes past them read zeros", sizeOf(dev(clone))-32*mib)
	}

	// 3. A thick expand onto a deleted volume's extents, watched by a raw-block tenant that
	// reads past the old end the moment the device grows: the added extents are zeroed
	// through a scratch LV before lvextend adds them, so the tenant never sees the deleted
	// volume's data, not even before the expand answers.
	x, _ := create("zero-expand", 32*mib, "")
	fill(dev(x), 0, 32*mib, pattern(0x11))
	before := headSum(dev(x), 32*mib)
	extBefore := extents(x)
	old = dirty("zero-old3", 64*mib, 0x77)
	stop := make(chan struct{})
	seen := make(chan tenantView, 1)
	go func() { seen <- watchGrowth(dev(x), 32*mib, stop) }()
	if _, err := ctl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: x, CapacityRange: &csi.CapacityRange{RequiredBytes: 96 * mib}, VolumeCapability: block}); err != nil {
		close(stop)
		<-seen
		t.Fatalf("ControllerExpandVolume: %v", err)
	}
	close(stop)
	if v := <-seen; v.err != nil {
		t.Errorf("the tenant's reads past the old end: %v", v.err)
	} else {
		t.Logf("tenant: %d reads past the old end while the expand ran (grown at %d of %d polls), all zeros", v.grownReads, v.firstGrown, v.polls)
	}
	extAfter := extents(x)
	if n := overlap(old, extAfter); n == 0 {
		t.Fatalf("the expand got none of the deleted volume's extents: the test proves nothing")
	}
	if added := len(extAfter) - overlap(extBefore, extAfter); added*int(extentBytes(t)) != 64*mib {
		t.Errorf("the expand added %d extents of %d bytes, want 64 MiB", added, extentBytes(t))
	}
	noScratch := func(when string) {
		t.Helper()
		out := run(t, "lvm", "lvs", "--noheadings", "-a", "-o", "lv_name,lv_tags", "lnv-thick")
		if strings.Contains(out, "lnv.kind=z") || strings.Contains(out, scratchOf(x)) {
			t.Errorf("%s: a scratch LV is left:\n%s", when, out)
		}
	}
	noScratch("after the expand")
	if got := headSum(dev(x), 32*mib); got != before {
		t.Errorf("the expanded volume's first 32 MiB changed: %s, want %s", got, before)
	}
	if o := nonZero(dev(x), 32*mib, sizeOf(dev(x))-32*mib); o >= 0 {
		t.Errorf("expanded %s: non-zero byte at offset %d in the added range", dev(x), o)
	} else {
		t.Logf("expand: the %d added bytes read zeros, the old 32 MiB intact", sizeOf(dev(x))-32*mib)
	}
	// 3b. A scratch LV a crash left (tagged as the driver's, on dirty extents): the next
	// expand removes it first, and so does DeleteVolume.
	leaveScratch := func(id string) {
		t.Helper()
		run(t, "lvm", "lvcreate", "--yes", "-ay", "-Zn", "-Wn", "-i", "2", "-L", "16m", "--addtag", "lnv.kind=z", "--addtag", "lnv.scratch="+lvOf(id), "-n", scratchOf(id), "lnv-thick")
	}
	leaveScratch(x)
	if _, err := ctl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: x, CapacityRange: &csi.CapacityRange{RequiredBytes: 128 * mib}, VolumeCapability: block}); err != nil {
		t.Fatalf("ControllerExpandVolume with a leftover scratch LV: %v", err)
	}
	noScratch("after the expand that found a leftover scratch LV")
	if got := headSum(dev(x), 32*mib); got != before {
		t.Errorf("the expanded volume's first 32 MiB changed: %s, want %s", got, before)
	}
	if o := nonZero(dev(x), 32*mib, sizeOf(dev(x))-32*mib); o >= 0 {
		t.Errorf("expanded %s: non-zero byte at offset %d past the first 32 MiB", dev(x), o)
	}
	leaveScratch(x)
	for _, id := range []string{a, src, clone, x} {
		if tags := run(t, "lvm", "lvs", "--noheadings", "-o", "lv_tags", "lnv-thick/"+lvOf(id)); strings.Contains(tags, "lnv.zero") {
			t.Errorf("LV %s still carries lnv.zero: %s", lvOf(id), strings.TrimSpace(tags))
		}
		del(id)
	}
	noScratch("after DeleteVolume of a volume with a leftover scratch LV")

	// 4. The cost, in this run: CreateVolume (lvcreate, zeroing, tag removal) against the bare
	// lvcreate, and BLKZEROOUT (blkdiscard -z) against writing zeros (buffered, then fsync).
	for _, q := range []string{"/sys/block/nvme0n1/queue/write_zeroes_max_bytes", "/sys/block/nvme0n1/queue/discard_max_bytes"} {
		if b, err := os.ReadFile(q); err == nil {
			t.Logf("zeroing: %s = %s", q, strings.TrimSpace(string(b)))
		}
	}
	const costSize = 512 * mib
	var drv, bare, zout, dd []time.Duration
	timed := func(name string, args ...string) time.Duration {
		t.Helper()
		start := time.Now()
		run(t, name, args...)
		return time.Since(start)
	}
	for i := 0; i < 3; i++ {
		id, d := create(fmt.Sprintf("zero-cost-%d", i), costSize, "")
		drv = append(drv, d)
		del(id)
		bare = append(bare, timed("lvm", "lvcreate", "-y", "-ay", "-Zy", "-Wy", "-i", "2", "-L", "512m", "-n", "zcost", "lnv-thick"))
		zout = append(zout, timed("blkdiscard", "-z", "/dev/lnv-thick/zcost"))
		start := time.Now()
		fill("/dev/lnv-thick/zcost", 0, costSize, make([]byte, mib))
		dd = append(dd, time.Since(start))
		run(t, "lvm", "lvremove", "-y", "lnv-thick/zcost")
	}
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	t.Logf("zeroing: 512 MiB thick, median of 3: CreateVolume %v (bare lvcreate %v); blkdiscard -z %v; writing zeros %v",
		med(drv).Round(time.Millisecond), med(bare).Round(time.Millisecond), med(zout).Round(time.Millisecond), med(dd).Round(time.Millisecond))
}

// scratchOf is the scratch LV a thick expand of the volume creates: z<hash> for v<hash>.
func scratchOf(id string) string { return "z" + strings.Split(id, ".")[2][1:] }

// extentBytes is lnv-thick's extent size.
func extentBytes(t *testing.T) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(run(t, "lvm", "vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size", "lnv-thick")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tenantView is what watchGrowth saw.
type tenantView struct {
	polls, firstGrown, grownReads int
	err                           error
}

// watchGrowth is a raw-block tenant: until stop, it reopens dev, and once the device is
// larger than oldSize it reads the first and the last MiB past oldSize; any non-zero byte
// there is an error (a deleted volume's data shown before it was zeroed).
func watchGrowth(dev string, oldSize int64, stop <-chan struct{}) tenantView {
	var v tenantView
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-stop:
			return v
		default:
		}
		v.polls++
		f, err := os.Open(dev)
		if err != nil {
			v.err = err
			return v
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err == nil && size > oldSize {
			if v.firstGrown == 0 {
				v.firstGrown = v.polls
			}
			for _, off := range []int64{oldSize, size - int64(len(buf))} {
				if _, err := f.ReadAt(buf, off); err != nil {
					v.err = fmt.Errorf("reading %s at %d: %w", dev, off, err)
					break
				}
				v.grownReads++
				if i := bytes.IndexFunc(buf, func(r rune) bool { return r != 0 }); i >= 0 {
					v.err = fmt.Errorf("%s grown to %d bytes: non-zero byte at offset %d (poll %d)", dev, size, off+int64(i), v.polls)
					break
				}
			}
		}
		f.Close()
		if v.err != nil {
			return v
		}
		time.Sleep(time.Millisecond)
	}
}
