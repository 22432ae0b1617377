package volume

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/nvme"
)

// DriveState says what the node does with a drive.
type DriveState string

// Drive states.
const (
	DriveMember    DriveState = "member"    // a PV of a class's VG
	DriveAdoptable DriveState = "adoptable" // provably empty and selected by a class
	DriveUnclaimed DriveState = "unclaimed" // provably empty, no class selects it
	DriveRefused   DriveState = "refused"   // not provably empty (reasons say why)
	DriveForeign   DriveState = "foreign"   // an LVM PV of a VG no class owns, or of none
)

// Drive is one NVMe namespace as the node sees it.
type Drive struct {
	disk.Namespace
	Class   string // class that uses or selects it ("" none)
	VG      string // VG it is a PV of ("" none)
	State   DriveState
	Reasons []string // refusal reasons (disk.Verdict refusals) or what makes it foreign
	// Codes are the machine-readable refusal reasons (disk.Reason values).
	Codes []string
	// SharesIdentityWith names the other namespaces that answer to one of its device
	// identities (disk.SharedIdentities): it can be named only by serial and namespace.
	SharesIdentityWith []string
	// Health is the drive's NVMe health log (nil when not read); HealthErr why it is not.
	Health    *nvme.HealthLog
	HealthErr error
}

// selectingClass returns the first class (exact selectors first, then rules in config
// order) that selects ns.
func (e *Engine) selectingClass(ns disk.Namespace, nss []disk.Namespace) string {
	for _, rules := range []bool{false, true} {
		for _, dc := range e.cfg.DeviceClasses {
			for _, sel := range dc.Devices {
				if sel.IsRule() != rules {
					continue
				}
				for _, m := range match(sel, nss) {
					if m.Name == ns.Name {
						return dc.Name
					}
				}
			}
		}
	}
	return ""
}

// Drives inspects every NVMe namespace without changing anything: class membership from
// LVM, emptiness from the probe.
func (e *Engine) Drives(ctx context.Context) ([]Drive, error) {
	nss, err := e.disks.List()
	if err != nil {
		return nil, fmt.Errorf("listing NVMe namespaces: %w", err)
	}
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	classOfVG := map[string]string{}
	for _, dc := range e.cfg.DeviceClasses {
		classOfVG[dc.VolumeGroup] = dc.Name
	}
	shared := disk.SharedIdentities(nss)
	out := make([]Drive, 0, len(nss))
	for _, ns := range nss {
		d := Drive{Namespace: ns, SharesIdentityWith: shared[ns.Name]}
		d.Health, d.HealthErr = e.DriveHealth(ns)
		if pv := pvOf(rep, ns); pv != nil && pv.VGName == "" && e.isInterruptedAdoption(*pv, ns, nss) {
			// labelled by an adoption into its class that a crash interrupted: the next
			// setup (or disks adopt) finishes it
			d.Class, d.State = e.selectingClass(ns, nss), DriveAdoptable
			d.Reasons = []string{"an LVM PV left by an interrupted adoption into this class; the next start resumes it"}
			out = append(out, d)
			continue
		}
		if pv := pvOf(rep, ns); pv != nil {
			d.VG = pv.VGName
			if c, ok := classOfVG[pv.VGName]; ok && pv.VGName != "" {
				d.Class, d.State = c, DriveMember
			} else {
				d.State = DriveForeign
				d.Codes = []string{string(disk.ReasonLVMMember)}
				if pv.VGName == "" {
					d.Reasons = []string{"an LVM PV that belongs to no volume group"}
				} else {
					d.Reasons = []string{fmt.Sprintf("a PV of volume group %q, which no device class owns", pv.VGName)}
				}
			}
			out = append(out, d)
			continue
		}
		d.Class = e.selectingClass(ns, nss)
		v := e.disks.Check(ctx, ns)
		switch {
		case !v.Empty:
			d.State = DriveRefused
			for _, r := range v.Refusals {
				d.Reasons = append(d.Reasons, string(r.Reason)+": "+r.Detail)
				d.Codes = append(d.Codes, string(r.Reason))
			}
		case d.Class != "":
			d.State = DriveAdoptable
		default:
			d.State = DriveUnclaimed
		}
		out = append(out, d)
	}
	return out, nil
}

// isInterruptedAdoption reports whether the orphan PV pv on ns carries the label an
// adoption into the class that selects ns writes (adoptionPVUUID).
func (e *Engine) isInterruptedAdoption(pv lvm.PV, ns disk.Namespace, nss []disk.Namespace) bool {
	name := e.selectingClass(ns, nss)
	if name == "" {
		return false
	}
	dc, ok := e.cfg.Class(name)
	return ok && isAdoptionPV(pv, dc.VolumeGroup, ns)
}

func pvOf(rep *lvm.Report, ns disk.Namespace) *lvm.PV {
	for i := range rep.PVs {
		if rep.PVs[i].Name == ns.DevPath {
			return &rep.PVs[i]
		}
	}
	return nil
}

func (e *Engine) findDrive(identity string) (disk.Namespace, error) {
	nss, err := e.disks.List()
	if err != nil {
		return disk.Namespace{}, fmt.Errorf("listing NVMe namespaces: %w", err)
	}
	var found []disk.Namespace
	for _, ns := range nss {
		if ns.Matches(identity) {
			found = append(found, ns)
		}
	}
	switch len(found) {
	case 0:
		return disk.Namespace{}, fmt.Errorf("%w: no NVMe namespace with identity %q on this node", ErrNotFound, identity)
	case 1:
		return found[0], nil
	}
	return disk.Namespace{}, fmt.Errorf("%w: identity %q is ambiguous: %s all answer to it (bogus EUI-64/NGUID/UUID); name the drive by serial and namespace (serial:<serial>/ns<n>) instead", ErrPrecondition, identity, namesOf(found))
}

// uniqueIdentity is the first identity of ns that names no other namespace on this node
// (the serial form when its device identities are shared).
func (e *Engine) uniqueIdentity(ns disk.Namespace) string {
	nss, err := e.disks.List()
	if err != nil {
		return ns.Identity()
	}
	for _, id := range ns.Identities() {
		n := 0
		for _, o := range nss {
			if o.Matches(id) {
				n++
			}
		}
		if n == 1 {
			return id
		}
	}
	return ns.Identity()
}

// wipeable are the refusals an operator may override by naming the drive's identity:
// on-disk content. Being mounted, held, swap, read-only, or a probe that failed never is.
var wipeable = []disk.Reason{disk.ReasonSignature, disk.ReasonPartitionTable, disk.ReasonLVMMember, disk.ReasonPartitions}

// Wiper erases signatures for a forced adoption.
type Wiper interface {
	Wipe(ctx context.Context, devPath string) error
}

// Adopt adds the drive with that identity to a class's VG (creating the VG and pool if
// needed). A drive that is not provably empty is refused, unless forceWipe names the same
// drive and every refusal is about on-disk content: then its signatures are wiped first.
// Adopting a drive that is already a member of the class is a no-op.
func (e *Engine) Adopt(ctx context.Context, className, identity, forceWipe string, w Wiper) (*Drive, error) {
	c, err := e.Class(className)
	if err != nil || className == "" {
		return nil, fmt.Errorf("%w: device class %q is not configured", ErrInvalid, className)
	}
	ns, err := e.findDrive(identity)
	if err != nil {
		return nil, err
	}
	unlock, err := e.locks.Lock(ctx, "vg:"+c.VolumeGroup)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	if pv := pvOf(rep, ns); pv != nil && pv.VGName != "" {
		if pv.VGName == c.VolumeGroup {
			return &Drive{Namespace: ns, Class: c.Name, VG: pv.VGName, State: DriveMember}, nil
		}
		return nil, fmt.Errorf("%w: %s (%s) is a PV of volume group %q; release it there first", ErrPrecondition, ns.DevPath, ns.Identity(), pv.VGName)
	}
	v := e.disks.Check(ctx, ns)
	if pv := pvOf(rep, ns); pv != nil && isAdoptionPV(*pv, c.VolumeGroup, ns) && onlyLVMLabel(v) {
		// an adoption into this class interrupted after pvcreate: resumed
		if err := e.build(ctx, c, rep.VGByName(c.VolumeGroup) != nil, []adoptee{{ns: ns, labelled: true}}); err != nil {
			return nil, err
		}
		return &Drive{Namespace: ns, Class: c.Name, VG: c.VolumeGroup, State: DriveMember}, nil
	}
	if !v.Empty {
		id := e.uniqueIdentity(ns)
		if forceWipe == "" {
			return nil, fmt.Errorf("%w: %s (%s) is not provably empty: %s; to erase it, repeat its identity: --force-wipe %s", ErrPrecondition, ns.DevPath, id, v, id)
		}
		// the confirmation must name this drive and no other
		if fw, err := e.findDrive(forceWipe); err != nil || fw.Name != ns.Name {
			why := "it names another drive"
			if err != nil {
				why = err.Error()
			}
			return nil, fmt.Errorf("%w: %s (%s) is not provably empty: %s; --force-wipe %q does not name it and only it (%s); to erase it, repeat its identity: --force-wipe %s", ErrPrecondition, ns.DevPath, id, v, forceWipe, why, id)
		}
		for _, r := range v.Refusals {
			if !slices.Contains(wipeable, r.Reason) {
				return nil, fmt.Errorf("%w: %s (%s) cannot be wiped: %s: %s", ErrPrecondition, ns.DevPath, ns.Identity(), r.Reason, r.Detail)
			}
		}
		klog.FromContext(ctx).Info("Wiping drive on the operator's explicit request", "device", ns.DevPath, "identity", ns.Identity(), "was", v.String())
		if err := w.Wipe(ctx, ns.DevPath); err != nil {
			return nil, err
		}
		if v := e.disks.Check(ctx, ns); !v.Empty {
			return nil, fmt.Errorf("%w: %s still not empty after wipefs: %s", ErrPrecondition, ns.DevPath, v)
		}
	}
	if err := e.build(ctx, c, rep.VGByName(c.VolumeGroup) != nil, []adoptee{{ns: ns}}); err != nil {
		return nil, err
	}
	return &Drive{Namespace: ns, Class: c.Name, VG: c.VolumeGroup, State: DriveMember}, nil
}

// Release takes a drive out of its class's VG and removes its PV label, only when no
// extent of it is allocated (no volume, snapshot or thin pool uses it). Releasing the last
// drive of a VG removes the (then empty) VG.
func (e *Engine) Release(ctx context.Context, identity string) (*Drive, error) {
	ns, err := e.findDrive(identity)
	if err != nil {
		return nil, err
	}
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	pv := pvOf(rep, ns)
	if pv == nil || pv.VGName == "" {
		return nil, fmt.Errorf("%w: %s (%s) is not in any volume group; nothing to release", ErrPrecondition, ns.DevPath, ns.Identity())
	}
	var c *Class
	for _, dc := range e.cfg.DeviceClasses {
		if dc.VolumeGroup == pv.VGName {
			c, _ = e.Class(dc.Name)
		}
	}
	if c == nil {
		return nil, fmt.Errorf("%w: %s is a PV of volume group %q, which no device class owns; not touching it", ErrPrecondition, ns.DevPath, pv.VGName)
	}
	unlock, err := e.locks.Lock(ctx, "vg:"+c.VolumeGroup)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if used := pv.Size - pv.Free; used > 0 {
		var lvs []string
		for _, lv := range rep.LVsInVG(c.VolumeGroup) {
			lvs = append(lvs, lv.Name)
		}
		return nil, fmt.Errorf("%w: %d bytes of %s are allocated in volume group %s (LVs: %s); delete or move them first", ErrPrecondition, used, ns.DevPath, c.VolumeGroup, strings.Join(lvs, ", "))
	}
	if n := len(rep.PVsInVG(c.VolumeGroup)); n > 1 {
		if err := e.lvm.VGReduce(ctx, c.VolumeGroup, []string{ns.DevPath}); err != nil {
			return nil, wrapLVM(err, "vgreduce %s %s", c.VolumeGroup, ns.DevPath)
		}
	} else if err := e.lvm.VGRemove(ctx, c.VolumeGroup); err != nil {
		return nil, wrapLVM(err, "removing the emptied volume group %s", c.VolumeGroup)
	}
	if err := e.lvm.PVRemove(ctx, ns.DevPath); err != nil {
		return nil, wrapLVM(err, "pvremove %s", ns.DevPath)
	}
	klog.FromContext(ctx).Info("Drive released", "device", ns.DevPath, "identity", ns.Identity(), "class", c.Name)
	return &Drive{Namespace: ns, State: DriveUnclaimed}, nil
}
