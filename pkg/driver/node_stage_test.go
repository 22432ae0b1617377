package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/volume"
)

// nodeFixture is a node-mode driver with one 64 MiB thin volume whose device node
// /dev/vg-thin/<lv> is 253:3 with the volume's device-mapper UUID (253:9 is another LV's).
// Every mutation of LVM and the host, every command (blkid, mkfs) and every zeroing lands
// in journal, in order; reads are not recorded.
type nodeFixture struct {
	t       *testing.T
	d       *Driver
	h       *fakeHost
	l       *memLVM
	x       *scriptedExec
	prober  *disk.Prober
	journal []string
	id      string
	pid     volume.ID
	dev     string
	// statErr is what the prober's stat of the device node answers (blkid exits 2 without
	// a word for a path that does not exist, so a silent exit 2 is checked with a stat)
	statErr error
}

func newNodeFixture(t *testing.T) *nodeFixture {
	t.Helper()
	f := &nodeFixture{t: t, l: newMemLVM(), h: &fakeHost{files: map[string]Target{}}}
	f.x = &scriptedExec{journal: &f.journal, script: map[string][]execResult{}}
	f.prober = &disk.Prober{Exec: f.x, StatDevice: func(string) (string, error) { return "253:3", f.statErr }}
	f.d = newNodeDriver(t, f.l, f.h, f.x, f.prober, fakeBlockIO{&f.journal})
	resp, err := f.d.CreateVolume(context.Background(), createReq("pvc-node", map[string]string{ParamDeviceClass: "thin"}))
	if err != nil {
		t.Fatal(err)
	}
	f.id = resp.GetVolume().GetVolumeId()
	if f.pid, err = volume.ParseID(f.id, volume.KindVolume); err != nil {
		t.Fatal(err)
	}
	f.dev = "/dev/vg-thin/" + f.pid.LVName
	f.h.dm = map[string]string{"253:3": f.pid.DMUUID(), "253:9": "LVM-someoneelsesvolumegroupanditslv"}
	f.h.devs = map[string][2]uint32{f.dev: {253, 3}}
	f.l.journal, f.h.journal = &f.journal, &f.journal
	f.reset()
	return f
}

// reset forgets what was recorded so far.
func (f *nodeFixture) reset() { f.journal, f.h.calls, f.l.calls = nil, nil, nil }

// restart replaces the driver by a new instance over the same LVM and host: nothing of
// the old one is left in memory (engine, caches, locks).
func (f *nodeFixture) restart(t *testing.T) {
	t.Helper()
	f.d = newNodeDriver(t, f.l, f.h, f.x, f.prober, fakeBlockIO{&f.journal})
	f.reset()
}

func (f *nodeFixture) lv() *lvm.LV { return f.l.rep.LVByName("vg-thin", f.pid.LVName) }

func (f *nodeFixture) addTags(tags ...string) { f.lv().Tags = append(f.lv().Tags, tags...) }

// fsTags are the LV's filesystem tags (record and intent), sorted.
func (f *nodeFixture) fsTags() []string {
	var out []string
	if f.lv() == nil {
		return nil
	}
	for _, t := range f.lv().Tags {
		for _, k := range []string{volume.TagFSType, volume.TagFSUUID, volume.TagFSIntent} {
			if strings.HasPrefix(t, k+"=") {
				out = append(out, t)
			}
		}
	}
	slices.Sort(out)
	return out
}

// expand replaces {dev}, {lv} and {id} in expected calls and messages.
func (f *nodeFixture) expand(s string) string {
	return strings.NewReplacer("{dev}", f.dev, "{lv}", f.pid.LVName, "{id}", f.id).Replace(s)
}

// wantJournal compares the journal with want ({dev}, {lv} expanded) and says which
// commands must not have run.
func (f *nodeFixture) wantJournal(t *testing.T, want []string) {
	t.Helper()
	exp := make([]string, len(want))
	for i, w := range want {
		exp[i] = f.expand(w)
	}
	if !slices.Equal(f.journal, exp) {
		t.Errorf("calls:\n\t%s\nwant:\n\t%s", strings.Join(f.journal, "\n\t"), strings.Join(exp, "\n\t"))
	}
}

// mkfsRan says whether any mkfs ran.
func (f *nodeFixture) mkfsRan() bool {
	return slices.ContainsFunc(f.journal, func(c string) bool { return strings.HasPrefix(c, "mkfs") })
}

func (f *nodeFixture) stage(vc *csi.VolumeCapability) error {
	_, err := f.d.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{VolumeId: f.id, StagingTargetPath: "/staging", VolumeCapability: vc})
	return err
}

// blkid answers: a filesystem, a partition table, nothing (exit 2, provably blank).
func fsSig(typ, uuid string) execResult {
	out := "DEVNAME=/dev/vg-thin/lv\n"
	if uuid != "" {
		out += "UUID=" + uuid + "\n"
	}
	return execResult{stdout: out + "BLOCK_SIZE=4096\nTYPE=" + typ + "\nUSAGE=filesystem\n"}
}

var (
	blank    = execResult{exit: 2}
	gptLabel = execResult{stdout: "DEVNAME=/dev/vg-thin/lv\nPTUUID=3f0c7d1c\nPTTYPE=gpt\n"}
)

func fsCap(fsType string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// The calls staging makes, as the journal shows them.
const (
	blkidCall = "blkid -p -o export {dev}"
	mkfsExt4  = "mkfs.ext4 -q -m 0 {dev}"
	markExt4  = "lvm lvchange {lv} --addtag lnv.mkfs=ext4"
	mkdirStg  = "maketarget /staging dir=true"
	mountExt4 = "mount {dev} /staging ext4 []"
)

// recordCall is the one lvchange that records a filesystem and ends its intent.
func recordCall(fsType, uuid string) string {
	return "lvm lvchange {lv} --addtag lnv.fstype=" + fsType + " --addtag lnv.fsuuid=" + uuid + " --deltag lnv.mkfs=" + fsType
}

// TestStagingDecisionTable is docs/design.md §6, NodeStageVolume and ensureFilesystem: one
// case per row of the table, in its order. Each case checks the code, the message's key
// phrase, the exact calls (LVM mutations, blkid, mkfs, zeroing, mkdir, mount) and the
// filesystem tags left on the LV; whether mkfs ran (mkfsRan) is checked on its own, not
// only through the calls.
func TestStagingDecisionTable(t *testing.T) {
	const (
		uuid  = "0b9e7f02-1c1e-4a39-9b4e-4f4c2c1d7a11" // recorded
		other = "5d3c1b2a-0000-4000-8000-00000000beef" // another filesystem's
		fresh = "77777777-aaaa-4bbb-8ccc-dddddddddddd" // what a new mkfs gives
	)
	recorded := []string{"lnv.fstype=ext4", "lnv.fsuuid=" + uuid}
	tests := []struct {
		name  string
		setup func(f *nodeFixture)
		vc    *csi.VolumeCapability // nil: ext4 mount
		blkid []execResult
		mkfs  []execResult // answers of mkfs.<the capability's fs type>
		// the outcome
		code    codes.Code
		msg     string
		calls   []string
		mkfsRan bool
		tags    []string // the LV's filesystem tags afterwards
		staged  bool     // /staging shows the device afterwards
	}{
		// ResolveFresh(id): NotFound / FailedPrecondition / Unavailable as in §2
		{name: "LV re-created under the volume's name",
			setup: func(f *nodeFixture) { f.lv().UUID = "zzzzzz-aaaa-bbbb-cccc-dddd-eeee-ffffff" },
			code:  codes.FailedPrecondition, msg: "the LV was removed and re-created, refusing to use it"},
		{name: "LV gone",
			setup: func(f *nodeFixture) {
				f.l.rep.LVs = slices.DeleteFunc(f.l.rep.LVs, func(l lvm.LV) bool { return l.Name == f.pid.LVName })
			},
			code: codes.NotFound, msg: "does not exist"},
		{name: "volume lost: the VG is another incarnation",
			setup: func(f *nodeFixture) { f.l.rep.VGs[0].UUID = "newvg0-aaaa-bbbb-cccc-dddd-eeee-ffffff" },
			code:  codes.NotFound, msg: "volume lost: volume {id} names volume group vg-thin with UUID"},
		{name: "class not ready",
			setup: func(f *nodeFixture) {
				c, _ := f.d.engine.Class("thin")
				c.Ready, c.Problems = false, []string{"PV /dev/nvme0n1 missing"}
			},
			code: codes.Unavailable, msg: `device class "thin" is not ready: PV /dev/nvme0n1 missing`},
		// lnv.fenced set? → FailedPrecondition "fenced: …"
		{name: "fenced",
			setup: func(f *nodeFixture) {
				if err := f.d.engine.Fence(context.Background(), f.id, "released: node lost"); err != nil {
					f.t.Fatal(err)
				}
			},
			code: codes.FailedPrecondition, msg: "fenced: released: node lost"},
		// lnv.copying set? → Unavailable
		{name: "clone whose copy has not completed",
			setup: func(f *nodeFixture) { f.addTags("lnv.copying=1") },
			code:  codes.Unavailable, msg: "block copy has not completed"},
		// Activate if inactive: lvchange -ay -K
		{name: "inactive LV is activated first",
			setup: func(f *nodeFixture) { f.lv().Active = false; f.addTags(recorded...) },
			blkid: []execResult{fsSig("ext4", uuid)},
			calls: []string{"lvm lvchange -ay {lv}", blkidCall, mkdirStg, mountExt4}, tags: recorded, staged: true},
		// lnv.zero set? → BLKZEROOUT from its offset, then lvchange --deltag
		{name: "interrupted zeroing is finished before anything else",
			setup: func(f *nodeFixture) { f.addTags("lnv.zero=1048576") },
			blkid: []execResult{blank, fsSig("ext4", fresh)}, mkfs: []execResult{{}},
			calls: []string{"zero {dev} 1048576 66060288", "lvm lvchange {lv} --deltag lnv.zero=1048576",
				blkidCall, markExt4, mkfsExt4, blkidCall, recordCall("ext4", fresh), mkdirStg, mountExt4},
			mkfsRan: true, tags: []string{"lnv.fstype=ext4", "lnv.fsuuid=" + fresh}, staged: true},
		// device(): the device node's dm UUID must be the volume's, else FailedPrecondition
		{name: "device node is another LV",
			setup: func(f *nodeFixture) { f.h.dm["253:3"] = "LVM-someoneelsesvolumegroupanditslv" },
			code:  codes.FailedPrecondition, msg: `has device-mapper UUID "LVM-someoneelsesvolumegroupanditslv"`},
		{name: "device node missing",
			setup: func(f *nodeFixture) { delete(f.h.devs, f.dev) },
			code:  codes.FailedPrecondition, msg: "is not available"},
		// block capability → done (publish bind-mounts the device node)
		{name: "block: nothing probed, formatted or mounted", vc: blockCap()},
		// fs type = capability | recorded | class; recorded ≠ requested → FailedPrecondition
		{name: "capability asks for another filesystem than the recorded one",
			setup: func(f *nodeFixture) { f.addTags(recorded...) }, vc: fsCap("xfs"),
			code: codes.FailedPrecondition, msg: "holds a ext4 filesystem, the capability asks for xfs", tags: recorded},
		{name: "capability names no filesystem: the recorded one",
			setup: func(f *nodeFixture) { f.addTags("lnv.fstype=xfs", "lnv.fsuuid="+uuid) }, vc: fsCap(""),
			blkid: []execResult{fsSig("xfs", uuid)},
			calls: []string{blkidCall, mkdirStg, "mount {dev} /staging xfs [nouuid]"},
			tags:  []string{"lnv.fstype=xfs", "lnv.fsuuid=" + uuid}, staged: true},
		// staging path already mounted? same maj:min → OK; other → FailedPrecondition
		{name: "already staged with this device: nothing probed or mounted",
			setup: func(f *nodeFixture) {
				f.addTags(recorded...)
				f.h.mounts = []mount.MountInfo{{MountPoint: "/staging", Major: 253, Minor: 3, FsType: "ext4"}}
			},
			tags: recorded, staged: true},
		{name: "staging path has another device mounted",
			setup: func(f *nodeFixture) {
				f.h.mounts = []mount.MountInfo{{MountPoint: "/staging", Major: 253, Minor: 9, FsType: "ext4"}}
			},
			code: codes.FailedPrecondition, msg: "staging path /staging already has device 253:9 mounted, not volume {id} (253:3)"},
		{name: "mount table unreadable",
			setup: func(f *nodeFixture) { f.h.mountInfoErr = errors.New("open /proc/self/mountinfo: too many open files") },
			code:  codes.Internal, msg: "reading mount table: open /proc/self/mountinfo: too many open files"},
		// (§6 Paths) a staging path holding data: refused before the probe
		{name: "staging path holds data",
			setup: func(f *nodeFixture) {
				f.h.files["/staging"] = Target{Kind: TargetOther, What: "a directory with entries"}
			},
			code: codes.FailedPrecondition, msg: "is a directory with entries, not absent or an empty directory: refusing to mount over it"},

		// ensureFilesystem: blkid error (exit ≠ 0/2, exit 2 with stderr, device missing,
		// ctx) → refuse, never mkfs
		{name: "probe failed: blkid exit 4",
			blkid: []execResult{{exit: 4, stderr: "blkid: error: /dev/vg-thin/lv: Input/output error"}},
			code:  codes.Internal, msg: "probing {dev} for a filesystem failed, refusing to format it: blkid -p -o export {dev}: exit 4: blkid: error",
			calls: []string{blkidCall}},
		{name: "probe failed: ambivalent result (exit 8)",
			blkid: []execResult{{exit: 8}},
			code:  codes.Internal, msg: "refusing to format it: blkid -p -o export {dev}: ambivalent probing result (exit 8)",
			calls: []string{blkidCall}},
		{name: "probe failed: exit 2 with a message (device could not be opened)",
			blkid: []execResult{{exit: 2, stderr: "blkid: error: /dev/vg-thin/lv: No such device or address"}},
			code:  codes.Internal, msg: "refusing to format it: blkid -p -o export {dev}: exit 2 (nothing found) but the device could not be probed",
			calls: []string{blkidCall}},
		{name: "probe failed: silent exit 2 but the device node is gone",
			setup: func(f *nodeFixture) { f.statErr = errors.New("stat /dev/vg-thin/lv: no such file or directory") },
			blkid: []execResult{blank},
			code:  codes.Internal, msg: "refusing to format it: blkid -p -o export {dev}: exit 2 (nothing found) but the device could not be probed",
			calls: []string{blkidCall}},
		{name: "probe failed: blkid killed at its limit (device does not answer)",
			setup: func(f *nodeFixture) { f.prober.Timeout = 20 * time.Millisecond },
			blkid: []execResult{{hang: true}},
			code:  codes.Unavailable, msg: "refusing to format it: blkid -p -o export {dev}: did not complete: killed after",
			calls: []string{blkidCall}},
		// recorded lnv.fsuuid, found TYPE == lnv.fstype && UUID == lnv.fsuuid → OK
		{name: "formatted before: the filesystem is the recorded one",
			setup: func(f *nodeFixture) { f.addTags(recorded...) },
			blkid: []execResult{fsSig("ext4", uuid)},
			calls: []string{blkidCall, mkdirStg, mountExt4}, tags: recorded, staged: true},
		// recorded, nothing found → FailedPrecondition "… now shows no filesystem"
		{name: "formatted before, now blank",
			setup: func(f *nodeFixture) { f.addTags(recorded...) },
			blkid: []execResult{blank},
			code:  codes.FailedPrecondition, msg: "was formatted ext4 (UUID " + uuid + ") but {dev} now shows no filesystem; refusing to format it again",
			calls: []string{blkidCall}, tags: recorded},
		// recorded, other fs/UUID → FailedPrecondition "refusing to mount a different filesystem"
		{name: "formatted before, wrong filesystem UUID",
			setup: func(f *nodeFixture) { f.addTags(recorded...) },
			blkid: []execResult{fsSig("ext4", other)},
			code:  codes.FailedPrecondition, msg: "was formatted ext4 (UUID " + uuid + ") but {dev} shows ext4 (UUID " + other + "); refusing to mount a different filesystem",
			calls: []string{blkidCall}, tags: recorded},
		{name: "formatted before, other filesystem type",
			setup: func(f *nodeFixture) { f.addTags(recorded...) },
			blkid: []execResult{fsSig("xfs", uuid)},
			code:  codes.FailedPrecondition, msg: "but {dev} shows xfs (UUID " + uuid + "); refusing to mount a different filesystem",
			calls: []string{blkidCall}, tags: recorded},
		// not recorded, signature found: lnv.mkfs == fs && TYPE == fs && UUID → record it
		{name: "interrupted mkfs: our filesystem, not yet recorded",
			setup: func(f *nodeFixture) { f.addTags("lnv.mkfs=ext4") },
			blkid: []execResult{fsSig("ext4", fresh)},
			calls: []string{blkidCall, recordCall("ext4", fresh), mkdirStg, mountExt4},
			tags:  []string{"lnv.fstype=ext4", "lnv.fsuuid=" + fresh}, staged: true},
		// … else → FailedPrecondition "never formatted by localnvme but holds a signature"
		{name: "intent for another filesystem type, a signature found",
			setup: func(f *nodeFixture) { f.addTags("lnv.mkfs=xfs") },
			blkid: []execResult{fsSig("ext4", fresh)},
			code:  codes.FailedPrecondition, msg: `was never formatted by localnvme but {dev} holds a signature (TYPE="ext4" UUID="` + fresh + `"); refusing to format or mount it`,
			calls: []string{blkidCall}, tags: []string{"lnv.mkfs=xfs"}},
		{name: "intent, a signature without a UUID",
			setup: func(f *nodeFixture) { f.addTags("lnv.mkfs=ext4") },
			blkid: []execResult{fsSig("ext4", "")},
			code:  codes.FailedPrecondition, msg: `never formatted by localnvme but {dev} holds a signature (TYPE="ext4")`,
			calls: []string{blkidCall}, tags: []string{"lnv.mkfs=ext4"}},
		{name: "foreign filesystem",
			blkid: []execResult{fsSig("ext4", other)},
			code:  codes.FailedPrecondition, msg: `was never formatted by localnvme but {dev} holds a signature (TYPE="ext4" UUID="` + other + `"); refusing to format or mount it`,
			calls: []string{blkidCall}},
		{name: "foreign partition table",
			blkid: []execResult{gptLabel},
			code:  codes.FailedPrecondition, msg: `holds a signature (PTTYPE="gpt"); refusing to format or mount it`,
			calls: []string{blkidCall}},
		// not recorded, blkid exit 2 (provably blank): tag lnv.mkfs → mkfs → blkid again →
		// tag lnv.fstype, lnv.fsuuid, remove lnv.mkfs
		{name: "never formatted, provably blank",
			blkid: []execResult{blank, fsSig("ext4", fresh)}, mkfs: []execResult{{}},
			calls:   []string{blkidCall, markExt4, mkfsExt4, blkidCall, recordCall("ext4", fresh), mkdirStg, mountExt4},
			mkfsRan: true, tags: []string{"lnv.fstype=ext4", "lnv.fsuuid=" + fresh}, staged: true},
		{name: "never formatted, provably blank, xfs", vc: fsCap("xfs"),
			blkid: []execResult{blank, fsSig("xfs", fresh)}, mkfs: []execResult{{}},
			calls: []string{blkidCall, "lvm lvchange {lv} --addtag lnv.mkfs=xfs", "mkfs.xfs -q {dev}", blkidCall, recordCall("xfs", fresh),
				mkdirStg, "mount {dev} /staging xfs [nouuid]"},
			mkfsRan: true, tags: []string{"lnv.fstype=xfs", "lnv.fsuuid=" + fresh}, staged: true},
		{name: "interrupted mkfs before its superblock: intent, provably blank",
			setup: func(f *nodeFixture) { f.addTags("lnv.mkfs=ext4") },
			blkid: []execResult{blank, fsSig("ext4", fresh)}, mkfs: []execResult{{}},
			// The intent tag is already there: MarkFormatting keeps it (no lvchange).
			calls:   []string{blkidCall, mkfsExt4, blkidCall, recordCall("ext4", fresh), mkdirStg, mountExt4},
			mkfsRan: true, tags: []string{"lnv.fstype=ext4", "lnv.fsuuid=" + fresh}, staged: true},
		{name: "mkfs fails: the intent stays, nothing recorded or mounted",
			blkid: []execResult{blank}, mkfs: []execResult{{exit: 1, stderr: "mkfs.ext4: Device size reported to be zero."}},
			code: codes.Internal, msg: "mkfs.ext4 -q -m 0 {dev}: exit 1: mkfs.ext4: Device size reported to be zero.",
			calls: []string{blkidCall, markExt4, mkfsExt4}, mkfsRan: true, tags: []string{"lnv.mkfs=ext4"}},
		{name: "mkfs ran but the probe after it shows no filesystem",
			blkid: []execResult{blank, blank}, mkfs: []execResult{{}},
			code: codes.Internal, msg: "after mkfs.ext4, {dev} shows no signature (found=false, err=<nil>)",
			calls: []string{blkidCall, markExt4, mkfsExt4, blkidCall}, mkfsRan: true, tags: []string{"lnv.mkfs=ext4"}},
		// mkdir staging; mount dev staging -t <fs> -o <mount flags>
		{name: "mount fails",
			setup: func(f *nodeFixture) {
				f.addTags(recorded...)
				f.h.mountErr = errors.New("mount: /staging: wrong fs type, bad option, bad superblock")
			},
			blkid: []execResult{fsSig("ext4", uuid)},
			code:  codes.Internal, msg: "mounting {dev} at /staging: mount: /staging: wrong fs type",
			calls: []string{blkidCall, mkdirStg, mountExt4}, tags: recorded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			f.reset()
			vc := tt.vc
			if vc == nil {
				vc = fsCap("ext4")
			}
			f.x.script["blkid"] = tt.blkid
			if fs := vc.GetMount().GetFsType(); fs != "" {
				f.x.script["mkfs."+fs] = tt.mkfs
			}
			err := f.stage(vc)
			if tt.code == codes.OK {
				if err != nil {
					t.Errorf("NodeStageVolume = %v, want success", err)
				}
			} else {
				wantCode(t, "NodeStageVolume", err, tt.code, f.expand(tt.msg))
			}
			f.wantJournal(t, tt.calls)
			if f.mkfsRan() != tt.mkfsRan {
				t.Errorf("mkfs ran: %v, want %v", f.mkfsRan(), tt.mkfsRan)
			}
			if got := f.fsTags(); !slices.Equal(got, tt.tags) {
				t.Errorf("filesystem tags %q, want %q", got, tt.tags)
			}
			mi := mountAt(f.h.mounts, "/staging")
			if staged := mi != nil && mi.Major == 253 && mi.Minor == 3; staged != tt.staged {
				t.Errorf("staged: %v (mounts %v), want %v", staged, f.h.mounts, tt.staged)
			}
			for cmd, left := range f.x.script {
				if len(left) > 0 {
					t.Errorf("%s: %d scripted answers not used", cmd, len(left))
				}
			}
		})
	}
}

// A volume is formatted at most once: staged, unstaged and staged again (also by a
// restarted driver), the second and third stage probe and mount, and never run mkfs.
func TestStageFormatsOnce(t *testing.T) {
	f := newNodeFixture(t)
	const uuid = "0b9e7f02-1c1e-4a39-9b4e-4f4c2c1d7a11"
	f.x.script["blkid"] = []execResult{blank, fsSig("ext4", uuid), fsSig("ext4", uuid), fsSig("ext4", uuid)}
	f.x.script["mkfs.ext4"] = []execResult{{}}
	if err := f.stage(fsCap("ext4")); err != nil {
		t.Fatal(err)
	}
	if !f.mkfsRan() {
		t.Fatalf("first stage did not format: %q", f.journal)
	}
	for i, restart := range []bool{false, true} {
		if _, err := f.d.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: f.id, StagingTargetPath: "/staging"}); err != nil {
			t.Fatal(err)
		}
		if restart {
			f.restart(t)
		}
		f.reset()
		if err := f.stage(fsCap("ext4")); err != nil {
			t.Fatalf("stage %d: %v", i+2, err)
		}
		f.wantJournal(t, []string{blkidCall, mkdirStg, mountExt4})
	}
	// and a repeated stage while staged is answered from the mount table alone
	f.reset()
	if err := f.stage(fsCap("ext4")); err != nil {
		t.Fatal(err)
	}
	f.wantJournal(t, nil)
}
