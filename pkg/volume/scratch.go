package volume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/failpoint"
	"github.com/localnvme/localnvme/pkg/lvm"
)

// A thick expand never shows its tenant a deleted volume's data, not even for a moment: the
// extents it adds are zeroed before they join the volume. They are allocated first as a
// scratch LV z<hash> (tags lnv.kind=z, lnv.scratch=<volume LV>) of exactly the added size and
// the class's stripes, zeroed through the scratch's own device, read back as PV:PE ranges,
// and the scratch is removed; lvextend then allocates from exactly those ranges and nothing
// else. The VG's allocation lock is held from the scratch's removal to lvextend, so no
// allocation of this driver can take the freed extents in between; anything else that does
// makes lvextend fail (it cannot reach the size on the ranges given), which is answered as
// Unavailable, never with an extend onto other extents.

// allocationWait bounds the wait for a VG's allocation lock in the part of a thick expand
// that runs detached from the caller's cancellation. Holders hold it for one or two lvm
// commands, each bounded by the lvm client's command timeout.
const allocationWait = 5 * time.Minute

// lockAllocation takes a VG's allocation lock: every lvcreate and lvextend of the engine
// holds it, and a thick expand holds it from its scratch LV's removal to its lvextend. It is
// the key Adopt and Release take for the VG, so releasing a drive does not race an
// allocation either. Taken last (after volume locks) and held only around lvm commands, it
// cannot deadlock. Waiting honours ctx, like every KeyLocks wait.
func (e *Engine) lockAllocation(ctx context.Context, vg string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("waiting for the allocation lock of volume group %s: %w", vg, err)
	}
	return e.locks.Lock(ctx, "vg:"+vg)
}

// allocating runs an lvm allocation (lvcreate, lvextend) under the VG's allocation lock.
func (e *Engine) allocating(ctx context.Context, vg string, f func() error) error {
	unlock, err := e.lockAllocation(ctx, vg)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// scratchName is the scratch LV of a volume's LV: v<hash> → z<hash>.
func scratchName(lvName string) string { return string(kindScratch) + lvName[1:] }

// isScratchOf reports whether lv is the driver's scratch LV for the volume LV owner.
func isScratchOf(lv lvm.LV, owner string) bool {
	f, _ := lv.Tag(TagScratchFor)
	return kindOf(lv) == kindScratch && f == owner && lv.Name == scratchName(owner)
}

// removeScratch removes the scratch LV an interrupted expand of owner left behind, if any.
// The caller holds owner's lock (every expand does), so no expand is using it. An LV with
// the scratch's name but without the scratch's tags is not ours: ErrPrecondition, untouched.
func (e *Engine) removeScratch(ctx context.Context, c *Class, rep *lvm.Report, owner string) (bool, error) {
	name := scratchName(owner)
	lv := rep.LVByName(c.VolumeGroup, name)
	if lv == nil {
		return false, nil
	}
	if !isScratchOf(*lv, owner) {
		return false, fmt.Errorf("%w: LV %s/%s has the name of volume LV %s's scratch LV but not its tags (%s, %s); not touching it",
			ErrPrecondition, c.VolumeGroup, name, owner, Tag(TagKind, string(kindScratch)), Tag(TagScratchFor, owner))
	}
	klog.FromContext(ctx).Info("Removing the scratch LV of an interrupted expand", "lv", c.VolumeGroup+"/"+name, "bytes", lv.Size)
	if err := e.lvm.RemoveLV(ctx, c.VolumeGroup, name); err != nil && !errors.Is(err, lvm.ErrNotFound) {
		return false, wrapLVM(err, "removing the scratch LV %s/%s left by an interrupted expand", c.VolumeGroup, name)
	}
	return true, nil
}

// dropScratch removes a scratch LV on a failure path; a failure is logged (the next expand or
// the volume's deletion removes it).
func (e *Engine) dropScratch(ctx context.Context, c *Class, name string) {
	if err := e.lvm.RemoveLV(ctx, c.VolumeGroup, name); err != nil && !errors.Is(err, lvm.ErrNotFound) {
		klog.FromContext(ctx).Error(err, "Removing the scratch LV after a failed expand; the next expand or the volume's deletion removes it", "lv", c.VolumeGroup+"/"+name)
	}
}

// expandThick grows thick volume v to size bytes onto extents zeroed before they join it (see
// the comment at the top of this file). The caller holds the volume's lock, has removed a
// leftover scratch LV and checked the capacity; vg is the volume's VG from that report.
//
// The caller's context bounds everything up to the scratch LV's creation. From there on the
// work runs detached from its cancellation, like the block copy and the zeroing of a create:
// a CO that times out and retries waits on the volume's lock and finds the volume grown,
// instead of throwing away a long zeroing and starting it again, forever.
//
// lnv.zero=<old size> is set before lvextend, as before the scratch existed: a crash between
// lvextend and the tag's removal leaves it, and the next expand or NodeStage zeroes the added
// range through the volume (redundant then, but never proven otherwise after a crash). After a
// successful lvextend the tag is removed without zeroing again once the volume's segments show
// it grew onto exactly the zeroed extents; if they do not (never seen), the range is zeroed
// through the volume, as before the scratch existed.
func (e *Engine) expandThick(ctx context.Context, v *Volume, vg *lvm.VG, size uint64) error {
	c, owner := v.Class, v.LV.Name
	name := scratchName(owner)
	logger := klog.FromContext(ctx).WithValues("lv", c.VolumeGroup+"/"+owner, "scratch", name)
	added := size - v.Size
	if vg.ExtentSize == 0 || added%vg.ExtentSize != 0 {
		return fmt.Errorf("expanding %s/%s by %d bytes: not a multiple of the extent size %d", c.VolumeGroup, owner, added, vg.ExtentSize)
	}

	// 1. The scratch LV, on extents that may hold a deleted volume's data.
	unlock, err := e.lockAllocation(ctx, c.VolumeGroup)
	if err != nil {
		return err
	}
	err = e.lvm.CreateLV(ctx, lvm.CreateLVOptions{VG: c.VolumeGroup, Name: name, Size: added, Stripes: c.Stripes, StripeSize: uint64(c.StripeSize),
		Tags: []string{Tag(TagKind, string(kindScratch)), Tag(TagScratchFor, owner)}})
	unlock()
	dctx := context.WithoutCancel(ctx)
	if err != nil {
		// An lvcreate cut short may still have committed; an LV of that name that is not
		// tagged as this volume's scratch (lvcreate: "already exists") stays.
		e.lvm.InvalidateVG(c.VolumeGroup)
		if rep, rerr := e.lvm.ReportVG(dctx, c.VolumeGroup); rerr == nil {
			if _, rerr := e.removeScratch(dctx, c, rep, owner); rerr != nil {
				logger.Error(rerr, "After a failed lvcreate of the scratch LV")
			}
		}
		return wrapLVM(err, "creating the scratch LV %s/%s (%d bytes) to zero the extents the expand adds", c.VolumeGroup, name, added)
	}
	failpoint.Hit(failpoint.ExpandScratchCreated)
	removed := false
	defer func() {
		if !removed {
			e.dropScratch(dctx, c, name)
		}
	}()

	// 2. Zeroed through its own device, then its extents read back.
	dev := (&lvm.LV{Name: name, VGName: c.VolumeGroup}).DevicePath()
	start := time.Now()
	if err := e.blockIO.Zero(dctx, dev, 0, added); err != nil {
		return fmt.Errorf("zeroing the scratch LV %s (%d bytes) for the expand of %s/%s: %w", dev, added, c.VolumeGroup, owner, err)
	}
	logger.V(2).Info("Scratch LV zeroed", "bytes", added, "duration", time.Since(start))
	segs, err := e.lvm.Segments(dctx, c.VolumeGroup, name)
	if err != nil {
		return wrapLVM(err, "reading the extents of the scratch LV %s/%s", c.VolumeGroup, name)
	}
	ranges, err := scratchRanges(segs, name, added/vg.ExtentSize)
	if err != nil {
		return fmt.Errorf("scratch LV %s/%s: %w", c.VolumeGroup, name, err)
	}

	// 3. Under the allocation lock: tag, remove the scratch, lvextend onto its extents.
	lctx, cancel := context.WithTimeout(dctx, allocationWait)
	unlock, err = e.lockAllocation(lctx, c.VolumeGroup)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: expanding %s/%s: %w", ErrUnavailable, c.VolumeGroup, owner, err)
	}
	tag := Tag(TagZero, strconv.FormatUint(v.Size, 10))
	if err := e.lvm.AddTags(dctx, c.VolumeGroup, owner, []string{tag}); err != nil {
		unlock()
		return wrapLVM(err, "tagging %s/%s before extending it", c.VolumeGroup, owner)
	}
	if err := e.lvm.RemoveLV(dctx, c.VolumeGroup, name); err != nil && !errors.Is(err, lvm.ErrNotFound) {
		unlock()
		e.untagUnlessGrown(dctx, v, tag)
		return wrapLVM(err, "removing the scratch LV %s/%s before extending %s onto its extents", c.VolumeGroup, name, owner)
	}
	removed = true
	err = e.lvm.ExtendLVOnto(dctx, lvm.ExtendLVOptions{VG: c.VolumeGroup, Name: owner, Size: size, Stripes: c.Stripes, StripeSize: uint64(c.StripeSize), Ranges: ranges})
	unlock()
	if err != nil {
		e.untagUnlessGrown(dctx, v, tag)
		if errors.Is(err, lvm.ErrInsufficientSpace) {
			return fmt.Errorf("%w: expanding %s/%s: the zeroed extents %s were allocated by something else (%s) between the scratch LV's removal and lvextend; nothing was extended, a retry zeroes new extents: %w",
				ErrUnavailable, c.VolumeGroup, owner, rangesString(ranges), e.holders(dctx, c.VolumeGroup, ranges), err)
		}
		return wrapLVM(err, "extending %s/%s to %d bytes onto the zeroed extents %s", c.VolumeGroup, owner, size, rangesString(ranges))
	}

	failpoint.Hit(failpoint.ExpandAfterLVExtend)
	// 4. Proven: the volume grew onto exactly the zeroed extents.
	if err := e.grewOnto(dctx, c, owner, ranges); err != nil {
		logger.Error(err, "The expand is not proven to have used the zeroed extents; zeroing the added range through the volume")
		grown, err := e.Resolve(dctx, v.ID.String(), KindVolume)
		if err != nil {
			return err
		}
		return e.finishZeroing(dctx, grown)
	}
	if err := e.lvm.DeleteTags(dctx, c.VolumeGroup, owner, []string{tag}); err != nil {
		return wrapLVM(err, "marking %s/%s zeroed", c.VolumeGroup, owner)
	}
	return nil
}

// scratchRanges returns the scratch LV's PE ranges, checking that they hold exactly the
// scratch's extents on named PVs of plain (linear or striped) segments.
func scratchRanges(segs []lvm.Segment, name string, extents uint64) ([]lvm.PERange, error) {
	var out []lvm.PERange
	var n uint64
	for _, s := range segs {
		if s.LV != name {
			continue
		}
		if s.SegType != "linear" && s.SegType != "striped" {
			return nil, fmt.Errorf("segment at extent %d is %q, not linear or striped", s.StartPE, s.SegType)
		}
		for _, r := range s.Ranges {
			if !strings.HasPrefix(r.PV, "/") {
				return nil, fmt.Errorf("segment at extent %d lies on PV %q, which has no device", s.StartPE, r.PV)
			}
			n += r.Len()
			out = append(out, r)
		}
	}
	if n != extents {
		return nil, fmt.Errorf("its PE ranges %s hold %d extents, the expand adds %d", rangesString(out), n, extents)
	}
	return out, nil
}

// grewOnto checks that every zeroed extent now belongs to the volume owner. lvextend only
// adds extents, as many as the scratch had, and those were the scratch's (not the volume's)
// before: so the added extents are exactly the zeroed ones.
func (e *Engine) grewOnto(ctx context.Context, c *Class, owner string, zeroed []lvm.PERange) error {
	segs, err := e.lvm.Segments(ctx, c.VolumeGroup, owner)
	if err != nil {
		return wrapLVM(err, "reading the extents of %s/%s", c.VolumeGroup, owner)
	}
	var have []lvm.PERange
	for _, s := range segs {
		if s.LV == owner {
			have = append(have, s.Ranges...)
		}
	}
	for _, z := range zeroed {
		var covered uint64
		for _, h := range have {
			if h.PV != z.PV || h.Last < z.First || h.First > z.Last {
				continue
			}
			covered += min(h.Last, z.Last) - max(h.First, z.First) + 1
		}
		if covered != z.Len() {
			return fmt.Errorf("%s/%s lies on %s: %d of the %d zeroed extents of %s are not in it", c.VolumeGroup, owner, rangesString(have), z.Len()-covered, z.Len(), z)
		}
	}
	return nil
}

// untagUnlessGrown removes the lnv.zero tag an expand set before an lvextend that failed,
// when a fresh report shows the volume still at its old size (nothing to zero). Otherwise
// the tag stays for the next expand or NodeStage.
func (e *Engine) untagUnlessGrown(ctx context.Context, v *Volume, tag string) {
	e.lvm.InvalidateVG(v.Class.VolumeGroup)
	rep, err := e.lvm.ReportVG(ctx, v.Class.VolumeGroup)
	if err != nil {
		return
	}
	if lv := rep.LVByName(v.Class.VolumeGroup, v.LV.Name); lv == nil || lv.Size != v.Size {
		return
	}
	if err := e.lvm.DeleteTags(ctx, v.Class.VolumeGroup, v.LV.Name, []string{tag}); err != nil {
		klog.FromContext(ctx).Error(err, "Removing the zero tag after a failed expand; the next expand or NodeStage removes it", "lv", v.Class.VolumeGroup+"/"+v.LV.Name)
	}
}

// holders names the LVs that hold any of the ranges now (for the lost-race message).
func (e *Engine) holders(ctx context.Context, vg string, ranges []lvm.PERange) string {
	segs, err := e.lvm.Segments(ctx, vg, "")
	if err != nil {
		return "could not read which: " + err.Error()
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range segs {
		for _, h := range s.Ranges {
			for _, z := range ranges {
				if h.PV == z.PV && h.First <= z.Last && z.First <= h.Last && !seen[s.LV] {
					seen[s.LV] = true
					out = append(out, vg+"/"+s.LV)
				}
			}
		}
	}
	if len(out) == 0 {
		return "no LV holds them now"
	}
	return "now held by " + strings.Join(out, ", ")
}

func rangesString(rs []lvm.PERange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, " ")
}
