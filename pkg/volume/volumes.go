package volume

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/failpoint"
	"github.com/localnvme/localnvme/pkg/lvm"
)

// Volume is a volume or snapshot as LVM describes it.
type Volume struct {
	ID     ID
	Class  *Class
	LV     lvm.LV
	Name   string // CSI request name
	Size   uint64 // LV (virtual) size; for snapshots the size of the source at snapshot time
	Source string // content source ID ("" when none); for snapshots the source volume ID
	FSType string // recorded filesystem type ("" when never formatted)
	FSUUID string // recorded filesystem UUID
	// Formatting is set when a mkfs was started and its UUID not yet recorded.
	Formatting string
	// Copying is set while a thick clone's block copy has not completed.
	Copying bool
	// Zeroing is set while the LV's bytes from ZeroFrom to its end may hold a deleted
	// volume's data (TagZero).
	Zeroing  bool
	ZeroFrom uint64
	// Fenced is the reason recorded by Fence ("" when the LV is not fenced).
	Fenced  string
	Created time.Time
}

// DevicePath is the LV's block device.
func (v *Volume) DevicePath() string { return v.LV.DevicePath() }

// DMUUID is the device-mapper UUID the kernel shows for this LV's device
// (/sys/dev/block/MAJ:MIN/dm/uuid): "LVM-" + VG UUID + LV UUID, without dashes. Comparing it
// with the device node's checks that /dev/<vg>/<lv> really is the LV the ID names.
func (v *Volume) DMUUID() string {
	return NewID("", v.LV.VGUUID, "", v.LV.UUID).DMUUID()
}

func (e *Engine) volumeFromLV(c *Class, vg *lvm.VG, lv lvm.LV) *Volume {
	v := &Volume{ID: NewID(c.Name, vg.UUID, lv.Name, lv.UUID), Class: c, LV: lv, Size: lv.Size}
	if s, ok := lv.Tag(TagName); ok {
		v.Name, _ = DecodeName(s)
	}
	v.Source, _ = lv.Tag(TagSource)
	v.FSType, _ = lv.Tag(TagFSType)
	v.FSUUID, _ = lv.Tag(TagFSUUID)
	v.Formatting, _ = lv.Tag(TagFSIntent)
	_, v.Copying = lv.Tag(TagCopying)
	if z, ok := lv.Tag(TagZero); ok {
		// An unreadable offset zeroes the whole LV.
		v.Zeroing = true
		v.ZeroFrom, _ = strconv.ParseUint(z, 10, 64)
	}
	if s, ok := lv.Tag(TagFenced); ok {
		if v.Fenced, _ = DecodeName(s); v.Fenced == "" {
			v.Fenced = "lnv.fenced=" + s // not ours to decode, still fenced
		}
	}
	if v.ID.Kind() == KindSnapshot {
		if s, ok := lv.Tag(TagRequested); ok {
			v.Size, _ = strconv.ParseUint(s, 10, 64)
		}
		if s, ok := lv.Tag(TagCreated); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				v.Created = time.Unix(0, n)
			}
		}
	}
	return v
}

func kindOf(lv lvm.LV) Kind {
	k, _ := lv.Tag(TagKind)
	return Kind(k)
}

// Resolve finds the LV an ID names and verifies it is the very LV the ID was issued for:
// same class, same VG incarnation (UUID), same LV name and UUID, right kind.
//   - malformed ID, unknown class, different VG incarnation, LV gone: ErrNotFound;
//   - an LV with the ID's name but another UUID (removed and re-created): ErrPrecondition.
func (e *Engine) Resolve(ctx context.Context, id string, want Kind) (*Volume, error) {
	return e.resolve(ctx, id, want, false)
}

// ResolveFresh is Resolve on a report read now, not the cache: the node uses it before it
// mounts or formats, so an LV changed behind the driver's back (removed and re-created by
// hand) is seen.
func (e *Engine) ResolveFresh(ctx context.Context, id string, want Kind) (*Volume, error) {
	return e.resolve(ctx, id, want, true)
}

func (e *Engine) resolve(ctx context.Context, id string, want Kind, fresh bool) (*Volume, error) {
	pid, err := ParseID(id, want)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %v", ErrNotFound, want.Noun(), id, err)
	}
	c, err := e.Class(pid.Class)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: class %q is not configured on this node", ErrNotFound, want.Noun(), id, pid.Class)
	}
	if !c.Ready {
		return nil, fmt.Errorf("%w: device class %q is not ready: %s", ErrUnavailable, c.Name, strings.Join(c.Problems, "; "))
	}
	if fresh {
		e.lvm.InvalidateVG(c.VolumeGroup)
	}
	// Its own VG only: a command hung in another class's VG does not hold it up.
	rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	return c.resolve(e, rep, pid, id)
}

func (c *Class) resolve(e *Engine, rep *lvm.Report, pid ID, id string) (*Volume, error) {
	noun := pid.Kind().Noun()
	// The two "volume lost" cases: the ID's VG incarnation is gone from this node. Their
	// messages start with "volume lost: " (the claim's and pod's events show them).
	vg := rep.VGByName(c.VolumeGroup)
	if vg == nil {
		return nil, errorfKind(ErrNotFound, "volume lost: %s %s names volume group %s with UUID %s, and this node has no volume group %s: the node's disks were replaced, wiped or rebuilt, so its data is not on this node; delete the claim to provision a new volume, or restore it from a backup",
			noun, id, c.VolumeGroup, pid.VGUUID, c.VolumeGroup)
	}
	if StripUUID(vg.UUID) != pid.VGUUID {
		return nil, errorfKind(ErrNotFound, "volume lost: %s %s names volume group %s with UUID %s, this node's %s has UUID %s: the node's disks were replaced, wiped or rebuilt, so its data is not on this node; delete the claim to provision a new volume, or restore it from a backup",
			noun, id, c.VolumeGroup, pid.VGUUID, c.VolumeGroup, StripUUID(vg.UUID))
	}
	byName := rep.LVByName(c.VolumeGroup, pid.LVName)
	if byName == nil {
		return nil, fmt.Errorf("%w: %s %s: LV %s/%s does not exist", ErrNotFound, noun, id, c.VolumeGroup, pid.LVName)
	}
	if StripUUID(byName.UUID) != pid.LVUUID {
		return nil, fmt.Errorf("%w: %s %s: LV %s/%s has UUID %s but the ID names %s: the LV was removed and re-created, refusing to use it",
			ErrPrecondition, noun, id, c.VolumeGroup, pid.LVName, StripUUID(byName.UUID), pid.LVUUID)
	}
	if k := kindOf(*byName); k != pid.Kind() {
		return nil, fmt.Errorf("%w: %s %s: LV %s/%s is tagged kind %q, not %q", ErrPrecondition, noun, id, c.VolumeGroup, pid.LVName, k, pid.Kind())
	}
	return e.volumeFromLV(c, vg, *byName), nil
}

// CreateRequest is a validated CreateVolume.
type CreateRequest struct {
	Name   string
	Class  string // "" = default class
	Size   SizeRequest
	Source string // volume or snapshot ID, "" for an empty volume
	// MinSize is raised by the caller for filesystems with a minimum (xfs: 300 MiB).
	MinSize uint64
}

// Create creates a volume, or returns the one a previous identical request created.
// The same name with another class, size or source is ErrAlreadyExists.
func (e *Engine) Create(ctx context.Context, r CreateRequest) (*Volume, error) {
	c, err := e.readyClass(r.Class)
	if err != nil {
		return nil, err
	}
	name := LVName(KindVolume, r.Name)
	logger := klog.FromContext(ctx).WithValues("class", c.Name, "lv", c.VolumeGroup+"/"+name)
	ctx = klog.NewContext(ctx, logger)
	keys := []string{name}
	var srcID ID
	if r.Source != "" {
		if srcID, err = ParseID(r.Source, ""); err == nil {
			keys = append(keys, srcID.LVName)
		}
	}
	unlock, err := e.locks.Lock(ctx, keys...)
	if err != nil {
		return nil, err
	}
	defer unlock()

	rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	vg := rep.VGByName(c.VolumeGroup)
	if vg == nil {
		return nil, fmt.Errorf("%w: volume group %s is missing", ErrUnavailable, c.VolumeGroup)
	}
	size, ok := Allocate(r.Size, c.unit(vg), r.MinSize)
	if !ok {
		return nil, fmt.Errorf("%w: required %d bytes rounds up to more than the limit %d (allocation unit %d bytes)", ErrOutOfRange, r.Size.Required, r.Size.Limit, c.unit(vg))
	}
	// A retry finds the LV its first attempt created, in whatever class it was.
	if lv := rep.LVByName(c.VolumeGroup, name); lv != nil {
		return e.finishExisting(ctx, c, rep, vg, *lv, r)
	}
	if oc, err := e.classWithLV(ctx, c, name); err != nil {
		return nil, fmt.Errorf("looking for volume %q in the other device classes: %w", r.Name, err)
	} else if oc != nil {
		return nil, fmt.Errorf("%w: volume %q exists in device class %q, the request names %q", ErrAlreadyExists, r.Name, oc.Name, c.Name)
	}

	var src *Volume
	if r.Source != "" {
		if src, err = e.source(ctx, rep, r.Source); err != nil {
			return nil, err
		}
		if src.Class.Name != c.Name {
			return nil, fmt.Errorf("%w: content source %s is in device class %q, the new volume in %q: sources must be in the same class", ErrInvalid, r.Source, src.Class.Name, c.Name)
		}
		if size < src.Size {
			if r.Size.Limit != 0 && r.Size.Limit < src.Size {
				return nil, fmt.Errorf("%w: the source holds %d bytes, more than the limit %d", ErrOutOfRange, src.Size, r.Size.Limit)
			}
			size = RoundUp(src.Size, c.unit(vg))
		}
	}
	capy, err := c.capacity(rep)
	if err != nil {
		return nil, err
	}
	if size > capy.MaxVolume {
		return nil, fmt.Errorf("%w: class %s can provide at most %d bytes in one volume now (%d available), %d requested", ErrNoSpace, c.Name, capy.MaxVolume, capy.Available, size)
	}

	tags := []string{Tag(TagKind, string(KindVolume)), Tag(TagName, EncodeName(r.Name)), Tag(TagRequested, strconv.FormatUint(size, 10))}
	if src != nil {
		tags = append(tags, Tag(TagSource, r.Source))
		if src.FSType != "" && src.FSUUID != "" {
			tags = append(tags, Tag(TagFSType, src.FSType), Tag(TagFSUUID, src.FSUUID))
		}
	}
	unlockAlloc, err := e.lockAllocation(ctx, c.VolumeGroup)
	if err != nil {
		return nil, err
	}
	err = e.createLV(ctx, c, src, name, size, tags)
	unlockAlloc()
	if err != nil {
		return nil, err
	}
	// The tags are part of the lvcreate: a crash from here on leaves an LV the retry finds
	// by name and finishes (zeroing, block copy, growing a thin clone).
	if src != nil {
		failpoint.Hit(failpoint.CloneAfterLVCreate)
	} else {
		failpoint.Hit(failpoint.CreateAfterLVCreate)
	}
	if rep, err = e.lvm.ReportVG(ctx, c.VolumeGroup); err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	lv := rep.LVByName(c.VolumeGroup, name)
	if lv == nil {
		return nil, fmt.Errorf("LV %s/%s missing right after it was created", c.VolumeGroup, name)
	}
	return e.finishExisting(ctx, c, rep, rep.VGByName(c.VolumeGroup), *lv, r)
}

// createLV is Create's lvcreate; the caller holds the VG's allocation lock.
func (e *Engine) createLV(ctx context.Context, c *Class, src *Volume, name string, size uint64, tags []string) error {
	logger := klog.FromContext(ctx)
	switch {
	case src != nil && c.Thin():
		// A thin snapshot of the source: instant, shares blocks, grows on write.
		logger.V(2).Info("Creating thin clone", "source", src.LV.Name)
		if err := e.lvm.CreateSnapshot(ctx, c.VolumeGroup, src.LV.Name, name, 0, tags); err != nil {
			return wrapLVM(err, "creating thin clone of %s", src.LV.Name)
		}
	case src != nil:
		logger.V(2).Info("Creating thick clone (block copy)", "source", src.LV.Name, "bytes", src.Size)
		if err := e.lvm.CreateLV(ctx, lvm.CreateLVOptions{VG: c.VolumeGroup, Name: name, Size: size, Stripes: c.Stripes, StripeSize: uint64(c.StripeSize), Tags: append(tags, Tag(TagCopying, "1"))}); err != nil {
			return wrapLVM(err, "creating LV")
		}
	case c.Thin():
		if err := e.lvm.CreateLV(ctx, lvm.CreateLVOptions{VG: c.VolumeGroup, Name: name, Size: size, ThinPool: c.ThinPool.Name, Tags: tags}); err != nil {
			return wrapLVM(err, "creating thin LV")
		}
	default:
		// Its extents may hold a deleted volume's data: zeroed before it is handed out.
		if err := e.lvm.CreateLV(ctx, lvm.CreateLVOptions{VG: c.VolumeGroup, Name: name, Size: size, Stripes: c.Stripes, StripeSize: uint64(c.StripeSize), Tags: append(tags, Tag(TagZero, "0"))}); err != nil {
			return wrapLVM(err, "creating LV")
		}
	}
	return nil
}

// finishExisting checks that an existing LV answers the request, completes an interrupted
// clone, and grows a thin clone to the requested size.
func (e *Engine) finishExisting(ctx context.Context, c *Class, rep *lvm.Report, vg *lvm.VG, lv lvm.LV, r CreateRequest) (*Volume, error) {
	if kindOf(lv) != KindVolume {
		return nil, fmt.Errorf("%w: LV %s/%s exists but is not a localnvme volume", ErrAlreadyExists, c.VolumeGroup, lv.Name)
	}
	v := e.volumeFromLV(c, vg, lv)
	if v.Name != r.Name {
		return nil, fmt.Errorf("%w: LV %s/%s belongs to request %q (hash collision)", ErrAlreadyExists, c.VolumeGroup, lv.Name, v.Name)
	}
	if v.Source != r.Source {
		return nil, fmt.Errorf("%w: volume %q exists with content source %q, the request names %q", ErrAlreadyExists, r.Name, v.Source, r.Source)
	}
	if v.Copying {
		src, err := e.source(ctx, rep, r.Source)
		if err != nil {
			return nil, err
		}
		if err := e.blockCopy(ctx, c, src, v); err != nil {
			return nil, err
		}
		if v.Size > src.Size {
			// The bytes past the copy lay on extents of whatever was deleted before.
			if err := e.zero(ctx, v, src.Size); err != nil {
				return nil, err
			}
		}
		failpoint.Hit(failpoint.CloneAfterCopy)
		if err := e.lvm.DeleteTags(ctx, c.VolumeGroup, lv.Name, []string{Tag(TagCopying, "1")}); err != nil {
			return nil, wrapLVM(err, "marking the clone complete")
		}
		v.Copying = false
	}
	if err := e.finishZeroing(ctx, v); err != nil {
		return nil, err
	}
	if want, _ := lv.Tag(TagRequested); r.Source != "" {
		// A thin clone starts at its source's size; grow it to the size recorded at creation.
		if n, err := strconv.ParseUint(want, 10, 64); err == nil && v.Size < n {
			if err := e.allocating(ctx, c.VolumeGroup, func() error { return e.lvm.ExtendLV(ctx, c.VolumeGroup, lv.Name, n) }); err != nil {
				return nil, wrapLVM(err, "growing the clone to %d bytes", n)
			}
			v.Size = n
		}
	}
	if !Satisfies(v.Size, r.Size) {
		return nil, fmt.Errorf("%w: volume %q exists with %d bytes, the request asks for %d..%d", ErrAlreadyExists, r.Name, v.Size, r.Size.Required, r.Size.Limit)
	}
	return v, nil
}

// source resolves a content source (volume or snapshot ID).
func (e *Engine) source(ctx context.Context, rep *lvm.Report, id string) (*Volume, error) {
	pid, err := ParseID(id, "")
	if err != nil {
		return nil, fmt.Errorf("%w: content source %q: %v", ErrNotFound, id, err)
	}
	c, err := e.Class(pid.Class)
	if err != nil || !c.Ready {
		return nil, fmt.Errorf("%w: content source %q: class %q is not available on this node", ErrNotFound, id, pid.Class)
	}
	if rep.VGByName(c.VolumeGroup) == nil {
		// rep is another class's VG (the request's): read the source's
		if rep, err = e.lvm.ReportVG(ctx, c.VolumeGroup); err != nil {
			return nil, fmt.Errorf("reading LVM state: %w", err)
		}
	}
	v, err := c.resolve(e, rep, pid, id)
	if err != nil {
		return nil, fmt.Errorf("content source: %w", err)
	}
	if v.Copying {
		return nil, fmt.Errorf("%w: content source %s is itself still being copied", ErrUnavailable, id)
	}
	if v.Zeroing {
		return nil, fmt.Errorf("%w: content source %s is still being zeroed (tag %s): its create or expand has not completed", ErrUnavailable, id, TagZero)
	}
	if err := v.usable(); err != nil {
		return nil, fmt.Errorf("content source %s: %w", id, err)
	}
	return v, nil
}

// blockCopy fills a thick clone from its source. A snapshot source is a COW snapshot LV and
// is read directly; a volume source may be in use, so a temporary COW snapshot of it is taken
// and copied (a crash-consistent image), then removed.
func (e *Engine) blockCopy(ctx context.Context, c *Class, src, dst *Volume) error {
	from := src
	if src.ID.Kind() == KindVolume {
		tmp := "t" + dst.LV.Name[1:]
		if err := e.lvm.RemoveLV(ctx, c.VolumeGroup, tmp); err != nil && !errors.Is(err, lvm.ErrNotFound) {
			return wrapLVM(err, "removing stale temporary snapshot %s", tmp)
		}
		if err := e.allocating(ctx, c.VolumeGroup, func() error {
			return e.lvm.CreateSnapshot(ctx, c.VolumeGroup, src.LV.Name, tmp, cowSize(src.LV.Size), []string{Tag(TagKind, string(kindTemp))})
		}); err != nil {
			return wrapLVM(err, "creating temporary snapshot of %s", src.LV.Name)
		}
		failpoint.Hit(failpoint.CloneTempSnapshot)
		defer func() {
			if err := e.lvm.RemoveLV(context.WithoutCancel(ctx), c.VolumeGroup, tmp); err != nil {
				klog.FromContext(ctx).Error(err, "Removing temporary snapshot", "lv", tmp)
			}
		}()
		from = &Volume{LV: lvm.LV{Name: tmp, VGName: c.VolumeGroup}, Size: src.Size}
	}
	start := time.Now()
	// The copy outlives the RPC: a CO that times out and retries waits on the volume lock
	// and then finds the clone complete, instead of restarting the copy from byte 0.
	if err := e.blockIO.Copy(context.WithoutCancel(ctx), from.DevicePath(), dst.DevicePath(), from.Size); err != nil {
		return fmt.Errorf("copying %s to %s: %w", from.DevicePath(), dst.DevicePath(), err)
	}
	klog.FromContext(ctx).V(2).Info("Block copy done", "bytes", from.Size, "duration", time.Since(start))
	return nil
}

// zero zeroes the LV from offset to its end (the LV must be active). Like the block copy it
// outlives the RPC: a CO that times out and retries waits on the volume lock and finds the
// work done.
func (e *Engine) zero(ctx context.Context, v *Volume, offset uint64) error {
	if offset >= v.Size {
		return nil
	}
	start := time.Now()
	if err := e.blockIO.Zero(context.WithoutCancel(ctx), v.DevicePath(), offset, v.Size-offset); err != nil {
		return fmt.Errorf("zeroing %s from byte %d: %w", v.DevicePath(), offset, err)
	}
	klog.FromContext(ctx).V(2).Info("Zeroed", "lv", v.LV.Name, "offset", offset, "bytes", v.Size-offset, "duration", time.Since(start))
	return nil
}

// finishZeroing completes the zeroing TagZero records (a create or an expand that was
// interrupted, or is being done now) and removes the tag. The caller holds the volume's lock.
func (e *Engine) finishZeroing(ctx context.Context, v *Volume) error {
	if !v.Zeroing {
		return nil
	}
	if err := e.Activate(ctx, v); err != nil {
		return err
	}
	if err := e.zero(ctx, v, v.ZeroFrom); err != nil {
		return err
	}
	tag, _ := v.LV.Tag(TagZero)
	if err := e.lvm.DeleteTags(ctx, v.Class.VolumeGroup, v.LV.Name, []string{Tag(TagZero, tag)}); err != nil {
		return wrapLVM(err, "marking %s/%s zeroed", v.Class.VolumeGroup, v.LV.Name)
	}
	v.Zeroing, v.ZeroFrom = false, 0
	return nil
}

// FinishZeroing is finishZeroing for the node (NodeStageVolume, under the volume's lock):
// a volume whose create or expand was interrupted is zeroed before anything mounts it.
func (e *Engine) FinishZeroing(ctx context.Context, v *Volume) error {
	return e.finishZeroing(ctx, v)
}

// cowSize is the copy-on-write area of a thick snapshot: the origin size plus the exception
// store's overhead, so the snapshot can never overflow and become invalid.
func cowSize(origin uint64) uint64 { return origin + origin/64 + 8<<20 }

// Delete removes a volume. An ID that names nothing on this node is already deleted; an LV
// with the ID's name but another UUID is a different volume and is left alone.
func (e *Engine) Delete(ctx context.Context, id string) error {
	return e.DeleteUnlessInUse(ctx, id, nil)
}

// DeleteUnlessInUse is Delete with a check that runs under the volume's lock, after the
// volume is resolved and before anything is removed: an error from inUse (the node's mount
// table shows the volume, for example a raw block bind mount, which holds no open count)
// refuses the delete.
func (e *Engine) DeleteUnlessInUse(ctx context.Context, id string, inUse func(*Volume) error) error {
	pid, err := ParseID(id, KindVolume)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Delete of an unparsable volume ID: nothing to do", "volumeID", id, "reason", err.Error())
		return nil
	}
	unlock, err := e.locks.Lock(ctx, pid.LVName)
	if err != nil {
		return err
	}
	defer unlock()
	// Fresh state: whether the LV is open changes with mounts, which the cache does not see.
	v, err := e.ResolveFresh(ctx, id, KindVolume)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrPrecondition):
		where, ferr := e.findLV(ctx, pid.LVUUID)
		if ferr != nil {
			// Not knowing is not "deleted": the caller retries.
			return fmt.Errorf("volume %s cannot be resolved (%v), and whether its LV exists elsewhere on the node cannot be read now; not reporting it deleted: %w", id, err, ferr)
		}
		if where != "" {
			// E.g. its class was removed from the configuration: deleting would leak the LV.
			return fmt.Errorf("%w: volume %s cannot be resolved (%v) but its LV exists as %s; refusing to report it deleted", ErrPrecondition, id, err, where)
		}
		klog.FromContext(ctx).V(2).Info("Volume does not exist: nothing to delete", "volumeID", id, "reason", err.Error())
		return nil
	case err != nil:
		return err
	}
	if inUse != nil {
		if err := inUse(v); err != nil {
			return err
		}
	}
	rep, err := e.lvm.ReportVG(ctx, v.Class.VolumeGroup)
	if err != nil {
		return fmt.Errorf("reading LVM state: %w", err)
	}
	var snaps []string
	for _, lv := range rep.LVsInVG(v.Class.VolumeGroup) {
		if lv.Origin != v.LV.Name || !lv.IsCOWSnapshot() {
			continue
		}
		if kindOf(lv) == kindTemp {
			// A thick clone's temporary snapshot left by a crash: clones hold this volume's
			// lock while they copy, so none is running now.
			if err := e.lvm.RemoveLV(ctx, v.Class.VolumeGroup, lv.Name); err != nil && !errors.Is(err, lvm.ErrNotFound) {
				return wrapLVM(err, "removing stale temporary snapshot %s", lv.Name)
			}
			failpoint.Hit(failpoint.DeleteAfterTempCleanup)
			continue
		}
		snaps = append(snaps, lv.Name)
	}
	if len(snaps) > 0 {
		return fmt.Errorf("%w: volume %s has copy-on-write snapshots %v that depend on it; delete them first", ErrPrecondition, id, snaps)
	}
	if len(v.LV.Attr) > 5 && v.LV.Attr[5] == 'o' {
		return fmt.Errorf("%w: volume %s is open (mounted or in use) on this node", ErrPrecondition, id)
	}
	// A scratch LV an interrupted expand left (the expand held this volume's lock, so none
	// is running); an LV that only has its name is not ours and stays.
	if _, err := e.removeScratch(ctx, v.Class, rep, v.LV.Name); errors.Is(err, ErrPrecondition) {
		klog.FromContext(ctx).Info("Not removing an LV named like the volume's scratch LV", "reason", err.Error())
	} else if err != nil {
		return err
	}
	if err := e.lvm.RemoveLV(ctx, v.Class.VolumeGroup, v.LV.Name); err != nil && !errors.Is(err, lvm.ErrNotFound) {
		return wrapLVM(err, "removing %s/%s", v.Class.VolumeGroup, v.LV.Name)
	}
	klog.FromContext(ctx).Info("Volume deleted", "volumeID", id, "lv", v.Class.VolumeGroup+"/"+v.LV.Name)
	return nil
}

// findLV returns "vg/lv" of the LV with that (dashless) UUID anywhere on the node, or "".
// It reads every VG (the LV may be in one no class names), so a VG whose lock a hung
// command holds makes it fail (at the lvm command limit).
func (e *Engine) findLV(ctx context.Context, lvUUID string) (string, error) {
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return "", fmt.Errorf("reading LVM state: %w", err)
	}
	if lv := rep.LVByUUID(lvUUID); lv != nil {
		return lv.VGName + "/" + lv.Name, nil
	}
	return "", nil
}

// classWithLV returns the class other than c whose VG holds an LV named name, or nil. It
// reads each VG's metadata without the VG's lock (PeekVG; a valid cached report answers
// first), so a command hung in another class's VG does not hold up a create in this one.
func (e *Engine) classWithLV(ctx context.Context, c *Class, name string) (*Class, error) {
	for _, oc := range e.Classes() {
		if oc.Name == c.Name || oc.VolumeGroup == c.VolumeGroup {
			continue
		}
		rep, err := e.lvm.PeekVG(ctx, oc.VolumeGroup)
		if err != nil {
			return nil, fmt.Errorf("reading volume group %s of class %s: %w", oc.VolumeGroup, oc.Name, err)
		}
		if rep.LVByName(oc.VolumeGroup, name) != nil {
			return oc, nil
		}
	}
	return nil, nil
}

// Expand grows a volume's LV to at least the requested size (never shrinks) and returns the
// new size. The filesystem is grown by the node (NodeExpandVolume).
func (e *Engine) Expand(ctx context.Context, id string, r SizeRequest) (*Volume, error) {
	pid, err := ParseID(id, KindVolume)
	if err != nil {
		return nil, fmt.Errorf("%w: volume %q: %v", ErrNotFound, id, err)
	}
	unlock, err := e.locks.Lock(ctx, pid.LVName)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return e.ExpandHeld(ctx, id, r)
}

// ExpandHeld is Expand for a caller that holds LockVolume(id) (NodeExpandVolume).
func (e *Engine) ExpandHeld(ctx context.Context, id string, r SizeRequest) (*Volume, error) {
	v, err := e.Resolve(ctx, id, KindVolume)
	if err != nil {
		return nil, err
	}
	if err := v.usable(); err != nil {
		return nil, err
	}
	if err := e.finishZeroing(ctx, v); err != nil {
		return nil, err
	}
	if Satisfies(v.Size, SizeRequest{Required: r.Required}) {
		if r.Limit != 0 && v.Size > r.Limit {
			return nil, fmt.Errorf("%w: volume is already %d bytes, more than the limit %d", ErrOutOfRange, v.Size, r.Limit)
		}
		return v, nil
	}
	// A fresh read, as DeleteVolume and NodeStage do: the capacity check and the leftover
	// scratch LV below must see LVM as it is, not a report up to --lvm-report-max-age old
	// (a scratch LV made or left outside this process's view would otherwise make the
	// lvcreate fail with "already exists" on every retry until the cache expired).
	e.lvm.InvalidateVG(v.Class.VolumeGroup)
	rep, err := e.lvm.ReportVG(ctx, v.Class.VolumeGroup)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	thick := !v.Class.Thin()
	if thick {
		// A scratch LV of an interrupted expand holds extents this expand may need.
		removed, err := e.removeScratch(ctx, v.Class, rep, v.LV.Name)
		if err != nil {
			return nil, err
		}
		if removed {
			if rep, err = e.lvm.ReportVG(ctx, v.Class.VolumeGroup); err != nil {
				return nil, fmt.Errorf("reading LVM state: %w", err)
			}
		}
	}
	vg := rep.VGByName(v.Class.VolumeGroup)
	if vg == nil {
		return nil, fmt.Errorf("%w: volume group %s is missing", ErrUnavailable, v.Class.VolumeGroup)
	}
	size, ok := Allocate(SizeRequest{Required: r.Required, Limit: r.Limit}, v.Class.unit(vg), 0)
	if !ok {
		return nil, fmt.Errorf("%w: %d bytes rounds up past the limit %d", ErrOutOfRange, r.Required, r.Limit)
	}
	capy, err := v.Class.capacity(rep)
	if err != nil {
		return nil, err
	}
	if size-v.Size > capy.Available {
		return nil, fmt.Errorf("%w: growing by %d bytes, class %s has %d available", ErrNoSpace, size-v.Size, v.Class.Name, capy.Available)
	}
	if thick {
		// A thick LV would grow onto extents that may hold a deleted volume's data: they are
		// zeroed through a scratch LV before they join it (scratch.go).
		if err := e.expandThick(ctx, v, vg, size); err != nil {
			return nil, err
		}
	} else {
		// A thin pool zeroes its chunks when it provisions them.
		err := e.allocating(ctx, v.Class.VolumeGroup, func() error { return e.lvm.ExtendLV(ctx, v.Class.VolumeGroup, v.LV.Name, size) })
		if err != nil {
			return nil, wrapLVM(err, "extending %s/%s to %d bytes", v.Class.VolumeGroup, v.LV.Name, size)
		}
		failpoint.Hit(failpoint.ExpandAfterLVExtend)
	}
	klog.FromContext(ctx).Info("Volume extended", "volumeID", id, "from", v.Size, "to", size)
	// The thick part runs on past the caller's cancellation: so does the answer's report.
	return e.Resolve(context.WithoutCancel(ctx), id, KindVolume)
}

// List returns every volume (kind "v") or snapshot ("s") of the ready classes, sorted by ID.
func (e *Engine) List(ctx context.Context, kind Kind) ([]*Volume, error) {
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	var out []*Volume
	for _, c := range e.Classes() {
		if !c.Ready {
			continue
		}
		vg := rep.VGByName(c.VolumeGroup)
		if vg == nil {
			continue
		}
		for _, lv := range rep.LVsInVG(c.VolumeGroup) {
			if kindOf(lv) == kind && len(lv.Name) > 0 && Kind(lv.Name[:1]) == kind {
				out = append(out, e.volumeFromLV(c, vg, lv))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out, nil
}

// Activate makes sure the LV's device node exists (after a reboot or for a thin snapshot).
func (e *Engine) Activate(ctx context.Context, v *Volume) error {
	if v.LV.Active {
		return nil
	}
	if err := e.lvm.Activate(ctx, v.Class.VolumeGroup, v.LV.Name); err != nil {
		return wrapLVM(err, "activating %s/%s", v.Class.VolumeGroup, v.LV.Name)
	}
	return nil
}

// MarkFormatting records, before mkfs runs, that this volume is about to get a filesystem.
// The intent of an earlier attempt that crashed before its mkfs (the device is still blank)
// is kept when it names the same type and replaced when it names another, so the LV never
// carries two.
func (e *Engine) MarkFormatting(ctx context.Context, v *Volume, fsType string) error {
	if v.Formatting == fsType {
		return nil
	}
	var del []string
	if v.Formatting != "" {
		del = []string{Tag(TagFSIntent, v.Formatting)}
	}
	if err := e.lvm.ChangeTags(ctx, v.Class.VolumeGroup, v.LV.Name, []string{Tag(TagFSIntent, fsType)}, del); err != nil {
		return wrapLVM(err, "tagging %s/%s", v.Class.VolumeGroup, v.LV.Name)
	}
	v.Formatting = fsType
	return nil
}

// RecordFilesystem records the filesystem a volume was formatted with; from now on staging
// verifies it and never formats the volume again.
func (e *Engine) RecordFilesystem(ctx context.Context, v *Volume, fsType, fsUUID string) error {
	// one lvchange: the record and the end of the intent land in one metadata commit
	var del []string
	if v.Formatting != "" {
		del = []string{Tag(TagFSIntent, v.Formatting)}
	}
	if err := e.lvm.ChangeTags(ctx, v.Class.VolumeGroup, v.LV.Name, []string{Tag(TagFSType, fsType), Tag(TagFSUUID, fsUUID)}, del); err != nil {
		return wrapLVM(err, "tagging %s/%s", v.Class.VolumeGroup, v.LV.Name)
	}
	v.FSType, v.FSUUID, v.Formatting = fsType, fsUUID, ""
	return nil
}

// wrapLVM classifies an LVM failure for the service layer.
func wrapLVM(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, lvm.ErrInsufficientSpace):
		return fmt.Errorf("%w: %s: %w", ErrNoSpace, msg, err)
	case errors.Is(err, lvm.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, msg, err)
	default:
		return fmt.Errorf("%s: %w", msg, err)
	}
}
