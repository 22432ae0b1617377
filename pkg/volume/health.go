package volume

import (
	"context"
	"fmt"
	"strings"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/nvme"
)

// DriveHealthReader reads a drive's NVMe SMART / health log (pkg/nvme.Client).
type DriveHealthReader interface {
	Health(devPath string) (*nvme.HealthLog, error)
}

// SetDriveHealth makes health reports include the drives' NVMe health.
func (e *Engine) SetDriveHealth(h DriveHealthReader) { e.health = h }

// DriveHealth reads one drive's NVMe health log; nil, nil without a reader.
func (e *Engine) DriveHealth(ns disk.Namespace) (*nvme.HealthLog, error) {
	if e.health == nil {
		return nil, nil
	}
	return e.health.Health(ns.DevPath)
}

// Condition is one adverse health condition.
type Condition struct {
	Reason  string // CamelCase, machine-readable
	Message string
	// Unreachable: the class (or volume) cannot be used at all, as opposed to degraded.
	Unreachable bool
}

// ClassHealth reports the adverse conditions of a class from one LVM report: class not set
// up, VG missing or partial (a PV missing), thin pool data or metadata near full.
func (e *Engine) ClassHealth(ctx context.Context, c *Class) []Condition {
	if !c.Ready {
		return []Condition{{Reason: "DeviceClassNotReady", Message: strings.Join(c.Problems, "; "), Unreachable: true}}
	}
	rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
	if err != nil {
		return []Condition{{Reason: "LVMReportFailed", Message: err.Error(), Unreachable: true}}
	}
	vg := rep.VGByName(c.VolumeGroup)
	if vg == nil {
		return []Condition{{Reason: "VolumeGroupMissing", Message: fmt.Sprintf("volume group %s is gone", c.VolumeGroup), Unreachable: true}}
	}
	var out []Condition
	var missing []string
	for _, pv := range rep.PVsInVG(c.VolumeGroup) {
		if pv.Missing {
			missing = append(missing, pv.UUID)
		}
	}
	if vg.Partial || vg.MissingPVCount > 0 || len(missing) > 0 {
		out = append(out, Condition{Reason: "PhysicalVolumeMissing", Message: fmt.Sprintf("volume group %s is missing %d PV(s) %v", c.VolumeGroup, max(vg.MissingPVCount, len(missing)), missing)})
	}
	for _, ns := range c.Members {
		h, err := e.DriveHealth(ns)
		switch {
		case err != nil:
			out = append(out, Condition{Reason: "DriveHealthUnreadable", Message: fmt.Sprintf("drive %s (%s): reading the NVMe health log: %v", ns.DevPath, ns.Identity(), err)})
		case h != nil:
			if bad, why := h.Degraded(); bad {
				out = append(out, Condition{Reason: "DriveDegraded", Message: fmt.Sprintf("drive %s (%s): %s", ns.DevPath, ns.Identity(), strings.Join(why, "; "))})
			}
		}
	}
	if c.Thin() {
		pool := rep.LVByName(c.VolumeGroup, c.ThinPool.Name)
		switch {
		case pool == nil:
			out = append(out, Condition{Reason: "ThinPoolMissing", Message: fmt.Sprintf("thin pool %s/%s is gone", c.VolumeGroup, c.ThinPool.Name), Unreachable: true})
		case pool.DataPercent >= ThinDataFullPercent || pool.MetadataPercent >= ThinMetadataFullPercent:
			out = append(out, Condition{Reason: "ThinPoolNearlyFull", Message: fmt.Sprintf("thin pool %s/%s data %.1f%%, metadata %.1f%%", c.VolumeGroup, c.ThinPool.Name, pool.DataPercent, pool.MetadataPercent)})
		}
	}
	return out
}

// VolumeHealth reports a volume's adverse conditions: its LV missing or replaced, its
// class's conditions, its own LV partial (a PV under it missing).
func (e *Engine) VolumeHealth(ctx context.Context, id string) ([]Condition, error) {
	pid, err := ParseID(id, KindVolume)
	if err != nil {
		return nil, fmt.Errorf("%w: volume %q: %v", ErrNotFound, id, err)
	}
	c, err := e.Class(pid.Class)
	if err != nil {
		return nil, fmt.Errorf("%w: volume %q: class %q is not configured on this node", ErrNotFound, id, pid.Class)
	}
	conds := e.ClassHealth(ctx, c)
	v, err := e.Resolve(ctx, id, KindVolume)
	switch {
	case err == nil:
		if len(v.LV.Attr) > 8 && v.LV.Attr[8] == 'p' {
			conds = append(conds, Condition{Reason: "LogicalVolumePartial", Message: "a PV under this LV is missing", Unreachable: true})
		}
		if v.Copying {
			conds = append(conds, Condition{Reason: "CloneIncomplete", Message: "the block copy of this clone has not completed", Unreachable: true})
		}
		if v.Zeroing {
			conds = append(conds, Condition{Reason: "ZeroingIncomplete", Message: fmt.Sprintf("bytes from %d on are not zeroed yet (an interrupted create or expand; the next stage or expand completes it)", v.ZeroFrom)})
		}
		if err := v.usable(); err != nil {
			conds = append(conds, Condition{Reason: "VolumeFenced", Message: err.Error(), Unreachable: true})
		}
	case isKind(err, ErrPrecondition):
		conds = append(conds, Condition{Reason: "LogicalVolumeReplaced", Message: err.Error(), Unreachable: true})
	case isKind(err, ErrNotFound):
		conds = append(conds, Condition{Reason: "LogicalVolumeMissing", Message: err.Error(), Unreachable: true})
	case isKind(err, ErrUnavailable):
		// already covered by the class condition
	default:
		return nil, err
	}
	return conds, nil
}
