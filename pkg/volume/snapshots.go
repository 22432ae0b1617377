package volume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/failpoint"
)

// CreateSnapshot snapshots a volume: a thin snapshot in thin classes (instant, shares
// blocks), a copy-on-write snapshot in thick classes (its COW area is sized to the origin so
// it can never overflow). The same name for the same source returns the existing snapshot;
// for another source it is ErrAlreadyExists.
func (e *Engine) CreateSnapshot(ctx context.Context, name, sourceID string) (*Volume, error) {
	lvName := LVName(KindSnapshot, name)
	keys := []string{lvName}
	if pid, err := ParseID(sourceID, KindVolume); err == nil {
		keys = append(keys, pid.LVName)
	}
	unlock, err := e.locks.Lock(ctx, keys...)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// A retry finds the snapshot its first attempt created, in whatever class it is. Each
	// class's VG is peeked at without its lock (a command hung in another class's VG does
	// not hold this one up), then the one holding the name is read properly.
	for _, c := range e.Classes() {
		peek, err := e.lvm.PeekVG(ctx, c.VolumeGroup)
		if err != nil {
			return nil, fmt.Errorf("looking for snapshot %q in volume group %s of class %s: %w", name, c.VolumeGroup, c.Name, err)
		}
		if peek.LVByName(c.VolumeGroup, lvName) == nil {
			continue
		}
		rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
		if err != nil {
			return nil, fmt.Errorf("reading LVM state: %w", err)
		}
		lv := rep.LVByName(c.VolumeGroup, lvName)
		if lv == nil {
			return nil, fmt.Errorf("%w: LV %s/%s showed in the volume group's metadata but not in its report; retry", ErrUnavailable, c.VolumeGroup, lvName)
		}
		s := e.volumeFromLV(c, rep.VGByName(c.VolumeGroup), *lv)
		if kindOf(*lv) != KindSnapshot || s.Name != name {
			return nil, fmt.Errorf("%w: LV %s/%s exists but is not snapshot %q", ErrAlreadyExists, c.VolumeGroup, lvName, name)
		}
		if s.Source != sourceID {
			return nil, fmt.Errorf("%w: snapshot %q exists for source volume %s, not %s", ErrAlreadyExists, name, s.Source, sourceID)
		}
		return s, nil
	}
	src, err := e.Resolve(ctx, sourceID, KindVolume)
	if err != nil {
		return nil, fmt.Errorf("source volume: %w", err)
	}
	if src.Copying {
		return nil, fmt.Errorf("%w: source volume %s is still being copied", ErrUnavailable, sourceID)
	}
	if src.Zeroing {
		return nil, fmt.Errorf("%w: source volume %s is still being zeroed (tag %s): its create or expand has not completed", ErrUnavailable, sourceID, TagZero)
	}
	if err := src.usable(); err != nil {
		return nil, fmt.Errorf("source volume %s: %w", sourceID, err)
	}
	c := src.Class
	tags := []string{
		Tag(TagKind, string(KindSnapshot)), Tag(TagName, EncodeName(name)), Tag(TagSource, sourceID),
		Tag(TagRequested, strconv.FormatUint(src.Size, 10)), Tag(TagCreated, strconv.FormatInt(time.Now().UnixNano(), 10)),
	}
	if src.FSType != "" && src.FSUUID != "" {
		tags = append(tags, Tag(TagFSType, src.FSType), Tag(TagFSUUID, src.FSUUID))
	}
	var cow uint64
	if !c.Thin() {
		cow = cowSize(src.Size)
		rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
		if err != nil {
			return nil, fmt.Errorf("reading LVM state: %w", err)
		}
		capy, err := c.capacity(rep)
		if err != nil {
			return nil, err
		}
		if cow > capy.Available {
			return nil, fmt.Errorf("%w: a snapshot of %s in thick class %s needs %d bytes of copy-on-write space, %d available", ErrNoSpace, sourceID, c.Name, cow, capy.Available)
		}
	}
	if err := e.allocating(ctx, c.VolumeGroup, func() error { return e.lvm.CreateSnapshot(ctx, c.VolumeGroup, src.LV.Name, lvName, cow, tags) }); err != nil {
		return nil, wrapLVM(err, "snapshotting %s/%s", c.VolumeGroup, src.LV.Name)
	}
	failpoint.Hit(failpoint.SnapshotAfterLVCreate) // the tags are part of the lvcreate
	rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	lv := rep.LVByName(c.VolumeGroup, lvName)
	if lv == nil {
		return nil, fmt.Errorf("snapshot LV %s/%s missing right after it was created", c.VolumeGroup, lvName)
	}
	klog.FromContext(ctx).Info("Snapshot created", "source", sourceID, "lv", c.VolumeGroup+"/"+lvName, "thin", c.Thin())
	return e.volumeFromLV(c, rep.VGByName(c.VolumeGroup), *lv), nil
}

// DeleteSnapshot removes a snapshot; an ID that names nothing here is already deleted.
func (e *Engine) DeleteSnapshot(ctx context.Context, id string) error {
	pid, err := ParseID(id, KindSnapshot)
	if err != nil {
		return nil
	}
	unlock, err := e.locks.Lock(ctx, pid.LVName)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := e.Resolve(ctx, id, KindSnapshot)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrPrecondition):
		return nil
	case err != nil:
		return err
	}
	if err := e.lvm.RemoveLV(ctx, s.Class.VolumeGroup, s.LV.Name); err != nil {
		return wrapLVM(err, "removing snapshot %s/%s", s.Class.VolumeGroup, s.LV.Name)
	}
	klog.FromContext(ctx).Info("Snapshot deleted", "snapshotID", id)
	return nil
}
