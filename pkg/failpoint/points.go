// Package failpoint marks the crash points of the node plugin: places where a crash leaves
// work half done on disk, so that a test can kill the process exactly there and check that
// a restarted plugin converges (docs/design.md §10, "Crash points").
//
// Hit(name) does nothing in a normal build: the function is empty and the compiler inlines
// it away, so the shipped binary has no failpoint code and reads no environment variable.
// Built with the tag `failpoints` (only the in-VM test binary is), the process reads
// LOCALNVME_FAILPOINT once at start (a comma-separated list of point names) and, at the
// first armed point it reaches, writes one line naming it to stderr and kills itself with
// SIGKILL: no deferred function runs, no log is flushed, no lvm command is cancelled.
package failpoint

// EnvVar names the armed points in a build with the tag `failpoints`.
const EnvVar = "LOCALNVME_FAILPOINT"

// The crash points. Every one is listed in Points, documented in docs/design.md §10 and
// walked by the VM test TestCrashPoints (tests/vm/crash_test.go).
const (
	// CreateAfterLVCreate: CreateVolume (not a clone), right after lvcreate returned; the
	// tags are part of that lvcreate. A thick volume still has lnv.zero=0 and is not zeroed.
	CreateAfterLVCreate = "create-after-lvcreate"
	// CloneAfterLVCreate: CreateVolume of a clone or restore, right after the lvcreate of
	// the new LV (a thick one tagged lnv.copying=1, nothing copied yet).
	CloneAfterLVCreate = "clone-after-lvcreate"
	// CloneTempSnapshot: a thick clone of a volume, right after its temporary COW snapshot
	// t<hash> of the source was created, before the copy.
	CloneTempSnapshot = "clone-temp-snapshot"
	// CloneCopyChunk: during a thick clone's block copy, after the first 4 MiB chunk.
	CloneCopyChunk = "clone-copy-chunk"
	// CloneAfterCopy: a thick clone whose copy (and tail zeroing) is done and whose
	// temporary snapshot is removed, before lnv.copying is removed.
	CloneAfterCopy = "clone-after-copy"
	// SnapshotAfterLVCreate: CreateSnapshot, right after its lvcreate (tags included).
	SnapshotAfterLVCreate = "snapshot-after-lvcreate"
	// StageMkfsIntent: NodeStageVolume, after the intent tag lnv.mkfs was written, before
	// mkfs runs.
	StageMkfsIntent = "stage-mkfs-intent"
	// StageAfterMkfs: NodeStageVolume, after mkfs, before lnv.fsuuid is recorded.
	StageAfterMkfs = "stage-after-mkfs"
	// StageAfterMount: NodeStageVolume, after the staging mount, before it answers.
	StageAfterMount = "stage-after-mount"
	// PublishAfterMount: NodePublishVolume, after the bind mount, before it answers.
	PublishAfterMount = "publish-after-mount"
	// ExpandScratchCreated: a thick expand, right after its scratch LV z<hash> was created.
	ExpandScratchCreated = "expand-scratch-created"
	// ExpandAfterLVExtend: an expand, right after lvextend returned (thick: before the
	// check that it grew onto the zeroed extents and the removal of lnv.zero).
	ExpandAfterLVExtend = "expand-after-lvextend"
	// ExpandBeforeFSGrow: NodeExpandVolume, the LV grown, before resize2fs / xfs_growfs.
	ExpandBeforeFSGrow = "expand-before-fs-grow"
	// DeleteAfterTempCleanup: DeleteVolume, right after it removed a thick clone's stale
	// temporary snapshot of the volume, before the volume's lvremove.
	DeleteAfterTempCleanup = "delete-after-temp-cleanup"
	// SetupAfterPVCreate: class setup, right after the first pvcreate of a drive being
	// adopted (before vgcreate / vgextend).
	SetupAfterPVCreate = "setup-after-pvcreate"
	// SetupAfterVGCreate: class setup, right after vgcreate or vgextend (a thin class has
	// no pool yet; the VG is not yet activated with vgchange -ay).
	SetupAfterVGCreate = "setup-after-vgcreate"
	// SetupThinPoolCreated: class setup of a thin class, right after the thin pool's
	// lvcreate returned, before vgchange -ay.
	SetupThinPoolCreated = "setup-thinpool-created"
)

// Points lists every crash point.
var Points = []string{
	CreateAfterLVCreate, CloneAfterLVCreate, CloneTempSnapshot, CloneCopyChunk, CloneAfterCopy,
	SnapshotAfterLVCreate, StageMkfsIntent, StageAfterMkfs, StageAfterMount, PublishAfterMount,
	ExpandScratchCreated, ExpandAfterLVExtend, ExpandBeforeFSGrow, DeleteAfterTempCleanup,
	SetupAfterPVCreate, SetupAfterVGCreate, SetupThinPoolCreated,
}

// known reports whether name is a crash point.
func known(name string) bool {
	for _, p := range Points {
		if p == name {
			return true
		}
	}
	return false
}
