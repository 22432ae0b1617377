package volume

import (
	"context"
	"fmt"
)

// ClassStats is a device class's state for monitoring.
type ClassStats struct {
	Class, Type, VolumeGroup string
	// Ready: set up at start and its VG (and thin pool) are present now. The fields below
	// are zero when it is not.
	Ready bool
	// Total: thick, the VG size; thin, the pool's data size.
	Total uint64
	// Free is what the class can still hand out (Capacity.Available: thick, after the
	// reserve; thin, pool size × overprovision ratio minus the virtual sizes handed out).
	Free uint64
	// Allocated is the sum of the volumes' sizes (thin: virtual sizes); snapshots and the
	// temporary snapshots of thick clones are not included.
	Allocated uint64
	// Volumes and Snapshots count the LVs tagged lnv.kind v and s.
	Volumes, Snapshots int
}

// Stats reports every class (sorted by name) from one LVM report. It changes nothing.
func (e *Engine) Stats(ctx context.Context) ([]ClassStats, error) {
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	classes := e.Classes()
	out := make([]ClassStats, 0, len(classes))
	for _, c := range classes {
		e.classMu.RLock()
		ready := c.Ready
		e.classMu.RUnlock()
		s := ClassStats{Class: c.Name, Type: c.Type, VolumeGroup: c.VolumeGroup}
		vg := rep.VGByName(c.VolumeGroup)
		if !ready || vg == nil {
			out = append(out, s)
			continue
		}
		cp, err := c.capacity(rep) // fails only when the VG or the pool is gone
		if err != nil {
			out = append(out, s)
			continue
		}
		s.Ready, s.Free, s.Total = true, cp.Available, vg.Size
		if c.Thin() {
			s.Total = rep.LVByName(c.VolumeGroup, c.ThinPool.Name).Size
		}
		for _, lv := range rep.LVsInVG(c.VolumeGroup) {
			if lv.Name == "" || Kind(lv.Name[:1]) != kindOf(lv) { // as List: the name's letter and the tag agree
				continue
			}
			switch kindOf(lv) {
			case KindVolume:
				s.Volumes++
				s.Allocated += lv.Size
			case KindSnapshot:
				s.Snapshots++
			}
		}
		out = append(out, s)
	}
	return out, nil
}
