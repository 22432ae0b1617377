// Package volume is the volume engine: it turns CSI-level requests (create, delete, expand,
// snapshot, resolve an ID) into LVM operations on the node's device classes. It holds no
// state of its own: everything is read back from LVM (one cached report) and LV tags, so a
// restarted node answers exactly as before.
package volume

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/failpoint"
	"github.com/localnvme/localnvme/pkg/lvm"
)

// LVM is the part of *lvm.Client the engine uses.
type LVM interface {
	// Report reads every VG (each one's lock in turn); ReportVG one VG (its lock only);
	// PeekVG one VG's metadata (no lock, no device-mapper state: for existence checks).
	Report(ctx context.Context) (*lvm.Report, error)
	ReportVG(ctx context.Context, vg string) (*lvm.Report, error)
	PeekVG(ctx context.Context, vg string) (*lvm.Report, error)
	Invalidate()
	InvalidateVG(vg string)
	PVCreate(ctx context.Context, dev string, metadataSize uint64, uuid string) error
	VGCreate(ctx context.Context, name string, devs []string, tags []string) error
	VGExtend(ctx context.Context, name string, devs []string) error
	VGChangeActivate(ctx context.Context, vg string) error
	CreateLV(ctx context.Context, o lvm.CreateLVOptions) error
	CreateThinPool(ctx context.Context, vg, name string, extentsPercentFree int, tags []string) error
	CreateSnapshot(ctx context.Context, vg, origin, name string, cowSize uint64, tags []string) error
	RemoveLV(ctx context.Context, vg, name string) error
	ExtendLV(ctx context.Context, vg, name string, size uint64) error
	ExtendLVOnto(ctx context.Context, o lvm.ExtendLVOptions) error
	Segments(ctx context.Context, vg, lv string) ([]lvm.Segment, error)
	AddTags(ctx context.Context, vg, name string, tags []string) error
	DeleteTags(ctx context.Context, vg, name string, tags []string) error
	ChangeTags(ctx context.Context, vg, name string, add, del []string) error
	Activate(ctx context.Context, vg, name string) error
	VGReduce(ctx context.Context, name string, devs []string) error
	VGRemove(ctx context.Context, name string) error
	PVRemove(ctx context.Context, dev string) error
}

// Disks finds NVMe namespaces and proves them empty.
type Disks interface {
	List() ([]disk.Namespace, error)
	Check(ctx context.Context, ns disk.Namespace) disk.Verdict
}

// BlockIO writes the LVs' block devices: copies (thick clones and restores) and zeroing
// (new thick extents, which may hold a deleted volume's data).
type BlockIO interface {
	// Copy copies size bytes from one block device to another and syncs.
	Copy(ctx context.Context, src, dst string, size uint64) error
	// Zero makes length bytes from offset read as zeros and syncs.
	Zero(ctx context.Context, dev string, offset, length uint64) error
}

// Class is a configured device class and what the node found when it set it up.
type Class struct {
	config.DeviceClass
	// Ready is true when the VG (and pool) exist and every selected device is a member.
	Ready bool
	// Problems says why the class is not ready (each refused device with its reason).
	Problems []string
	// Members are the namespaces the class uses (selected, and members or adoptable).
	Members []disk.Namespace
	// Refused are the drives the class selected but did not take, with why.
	Refused []RefusedDrive
}

// RefusedDrive is a drive a class selected but did not take.
type RefusedDrive struct {
	disk.Namespace
	// Codes are machine-readable reasons: disk.Reason values ("signature",
	// "partition-table", "mounted", …, "lvm-member" for a PV of another or no VG).
	Codes  []string
	Reason string // human-readable, names the device and identity
	// BlocksClass: an exact selector named the drive, so the whole class is refused;
	// a drive matched only by a rule is just skipped.
	BlocksClass bool
}

// Thin reports whether the class uses a thin pool.
func (c *Class) Thin() bool { return c.Type == config.TypeThin }

// Engine implements volume operations for one node.
type Engine struct {
	lvm     LVM
	disks   Disks
	blockIO BlockIO
	health  DriveHealthReader
	cfg     *config.Config
	locks   KeyLocks
	classMu sync.RWMutex
	classes map[string]*Class
}

// New returns an engine; call Setup before serving.
func New(l LVM, d Disks, b BlockIO, cfg *config.Config) *Engine {
	e := &Engine{lvm: l, disks: d, blockIO: b, cfg: cfg, classes: map[string]*Class{}}
	for _, dc := range cfg.DeviceClasses {
		e.classes[dc.Name] = &Class{DeviceClass: dc, Problems: []string{"not set up yet"}}
	}
	return e
}

// Classes returns the classes sorted by name.
func (e *Engine) Classes() []*Class {
	e.classMu.RLock()
	defer e.classMu.RUnlock()
	out := make([]*Class, 0, len(e.classes))
	for _, c := range e.classes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Class resolves a class by name; "" is the default class.
func (e *Engine) Class(name string) (*Class, error) {
	dc, ok := e.cfg.Class(name)
	if !ok {
		if name == "" {
			return nil, fmt.Errorf("%w: no device class named and no default class configured", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: device class %q is not configured on this node", ErrInvalid, name)
	}
	e.classMu.RLock()
	defer e.classMu.RUnlock()
	return e.classes[dc.Name], nil
}

func (e *Engine) readyClass(name string) (*Class, error) {
	c, err := e.Class(name)
	if err != nil {
		return nil, err
	}
	if !c.Ready {
		return nil, fmt.Errorf("%w: device class %q is not ready: %s", ErrUnavailable, c.Name, strings.Join(c.Problems, "; "))
	}
	return c, nil
}

// Setup builds or verifies every class's VG (and thin pool). A class is built only from
// devices that are provably empty or already members of that exact VG; if any selected
// device is neither, the class is refused with the reasons and no device is touched.
func (e *Engine) Setup(ctx context.Context) {
	logger := klog.FromContext(ctx)
	nss, err := e.disks.List()
	// Drives named by any class's exact selectors are never taken by another class's rule.
	named := map[string]bool{}
	for _, dc := range e.cfg.DeviceClasses {
		for _, sel := range dc.Devices {
			if !sel.IsRule() {
				for _, ns := range match(sel, nss) {
					named[ns.Name] = true
				}
			}
		}
	}
	claimed := map[string]string{} // drives taken by a rule, in config order
	for _, dc := range e.cfg.DeviceClasses {
		c := e.classes[dc.Name]
		var problems []string
		var refused []RefusedDrive
		var devs []disk.Namespace
		if err != nil {
			problems = []string{fmt.Sprintf("listing NVMe namespaces: %v", err)}
		} else {
			devs, problems, refused = e.setupClass(ctx, c, nss, named, claimed)
		}
		e.classMu.Lock()
		c.Members, c.Problems, c.Refused, c.Ready = devs, problems, refused, len(problems) == 0
		e.classMu.Unlock()
		for _, r := range refused {
			if !r.BlocksClass {
				logger.Info("Drive matched by a rule but not adopted", "class", c.Name, "reason", r.Reason)
			}
		}
		if len(problems) > 0 {
			logger.Error(nil, "Device class refused", "class", c.Name, "vg", c.VolumeGroup, "reasons", problems)
		} else {
			logger.Info("Device class ready", "class", c.Name, "vg", c.VolumeGroup, "type", c.Type, "devices", len(devs))
		}
	}
}

// match returns the namespaces a selector picks (exact or rule conditions; a rule's
// emptiness is checked later).
func match(sel config.DeviceSelector, nss []disk.Namespace) []disk.Namespace {
	var out []disk.Namespace
	for _, ns := range nss {
		switch {
		case sel.Identity != "":
			if ns.Matches(sel.Identity) {
				out = append(out, ns)
			}
		case sel.Serial != "":
			if ns.Serial == sel.Serial {
				out = append(out, ns)
			}
		case sel.Path != "":
			if ns.DevPath == sel.Path {
				out = append(out, ns)
			}
		default:
			if ruleMatches(sel, ns) {
				out = append(out, ns)
			}
		}
	}
	return out
}

// namesOf lists namespaces for messages: "/dev/nvme0n1 (serial:a/ns1) and /dev/nvme1n1 (…)".
func namesOf(nss []disk.Namespace) string {
	parts := make([]string, len(nss))
	for i, ns := range nss {
		parts[i] = fmt.Sprintf("%s (%s)", ns.DevPath, ns.Identities()[len(ns.Identities())-1])
	}
	return strings.Join(parts, " and ")
}

func ruleMatches(sel config.DeviceSelector, ns disk.Namespace) bool {
	if ok, _ := path.Match(sel.ModelPattern, ns.Model); sel.ModelPattern != "" && !ok {
		return false
	}
	if ok, _ := path.Match(sel.SerialPattern, ns.Serial); sel.SerialPattern != "" && !ok {
		return false
	}
	size := uint64(ns.SizeBytes)
	if sel.MinSize != 0 && size < uint64(sel.MinSize) {
		return false
	}
	if sel.MaxSize != 0 && size > uint64(sel.MaxSize) {
		return false
	}
	return true
}

// setupClass selects the class's drives, verifies them and builds or extends its VG and
// pool. It returns the members, the problems that refuse the class, and the drives it
// selected but did not take (not empty, or a PV elsewhere).
func (e *Engine) setupClass(ctx context.Context, c *Class, nss []disk.Namespace, named map[string]bool, claimed map[string]string) ([]disk.Namespace, []string, []RefusedDrive) {
	var problems []string
	var skipped []RefusedDrive
	var devs []disk.Namespace
	fromRule := map[string]bool{}
	seen := map[string]bool{}
	for _, sel := range c.DeviceClass.Devices {
		m := match(sel, nss)
		if len(m) == 0 && !sel.IsRule() {
			problems = append(problems, fmt.Sprintf("device %s: not found on this node", sel))
		}
		if len(m) > 1 && sel.Identity != "" {
			// never "the first match": nothing of the class is touched
			problems = append(problems, fmt.Sprintf("device %s: ambiguous: %s all answer to this identity (bogus EUI-64/NGUID/UUID); select the drive by serial and namespace instead (identity serial:<serial>/ns<n>)", sel, namesOf(m)))
			continue
		}
		for _, ns := range m {
			if seen[ns.Name] {
				continue
			}
			if sel.IsRule() {
				if named[ns.Name] || (claimed[ns.Name] != "" && claimed[ns.Name] != c.Name) {
					continue
				}
				fromRule[ns.Name] = true
			}
			seen[ns.Name] = true
			devs = append(devs, ns)
		}
	}
	if len(problems) > 0 {
		return devs, problems, nil
	}
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return devs, []string{fmt.Sprintf("reading LVM state: %v", err)}, nil
	}
	pvs := map[string]lvm.PV{}
	for _, pv := range rep.PVs {
		pvs[pv.Name] = pv
	}
	var members []string
	var adopt []adoptee
	var kept []disk.Namespace
	for _, ns := range devs {
		refuse := func(msg string, codes ...string) {
			skipped = append(skipped, RefusedDrive{Namespace: ns, Codes: codes, Reason: msg, BlocksClass: !fromRule[ns.Name]})
			if !fromRule[ns.Name] {
				problems = append(problems, msg)
			}
		}
		if pv, ok := pvs[ns.DevPath]; ok {
			switch {
			case pv.VGName == c.VolumeGroup:
				members = append(members, ns.DevPath)
				kept = append(kept, ns)
			case pv.VGName == "" && isAdoptionPV(pv, c.VolumeGroup, ns):
				// Labelled by an adoption into this class that stopped before vgcreate or
				// vgextend (a crash): resumed, as long as the PV label is all it holds.
				if v := e.disks.Check(ctx, ns); !onlyLVMLabel(v) {
					refuse(fmt.Sprintf("device %s (%s): an LVM PV left by an interrupted adoption into %s, but %s", ns.DevPath, ns.Identity(), c.VolumeGroup, v), verdictCodes(v)...)
					continue
				}
				klog.FromContext(ctx).Info("Resuming an interrupted adoption: the drive carries this class's PV label and nothing else", "class", c.Name, "device", ns.DevPath, "pvUUID", pv.UUID)
				adopt = append(adopt, adoptee{ns: ns, labelled: true})
				kept = append(kept, ns)
				if fromRule[ns.Name] {
					claimed[ns.Name] = c.Name
				}
			case pv.VGName == "":
				refuse(fmt.Sprintf("device %s (%s): an LVM PV that belongs to no volume group; refusing to adopt it (pvremove it if it is not in use)", ns.DevPath, ns.Identity()), string(disk.ReasonLVMMember))
			default:
				refuse(fmt.Sprintf("device %s (%s): a PV of another volume group %q", ns.DevPath, ns.Identity(), pv.VGName), string(disk.ReasonLVMMember))
			}
			continue
		}
		v := e.disks.Check(ctx, ns)
		if !v.Empty {
			refuse(fmt.Sprintf("device %s (%s): %s", ns.DevPath, ns.Identity(), v), verdictCodes(v)...)
			continue
		}
		adopt = append(adopt, adoptee{ns: ns})
		kept = append(kept, ns)
		if fromRule[ns.Name] {
			claimed[ns.Name] = c.Name
		}
	}
	devs = kept
	if len(devs) == 0 && len(problems) == 0 && rep.VGByName(c.VolumeGroup) == nil {
		problems = append(problems, "no drive matched the class's selectors and was adoptable")
	}
	vg := rep.VGByName(c.VolumeGroup)
	if vg != nil && vg.Partial {
		problems = append(problems, fmt.Sprintf("volume group %s is partial: %d PV(s) missing", c.VolumeGroup, vg.MissingPVCount))
	}
	if vg == nil && len(members) > 0 {
		problems = append(problems, fmt.Sprintf("volume group %s not found although %v claim to be its PVs", c.VolumeGroup, members))
	}
	if len(problems) > 0 {
		return devs, problems, skipped
	}
	if err := e.build(ctx, c, vg != nil, adopt); err != nil {
		return devs, []string{err.Error()}, skipped
	}
	return devs, nil, skipped
}

// adoptee is a drive being adopted: provably empty, or labelled (an orphan PV that an
// interrupted adoption into this class created: isAdoptionPV).
type adoptee struct {
	ns       disk.Namespace
	labelled bool
}

// adoptionPVUUID is the PV UUID an adoption into volume group vg gives the drive ns: derived
// from both (SHA-256 of the VG name and every identity of the drive), so an orphan PV with
// this UUID was labelled by localnvme for this very class and drive, and by nothing else
// (pvcreate picks random UUIDs). The adoption survives a crash between pvcreate and
// vgcreate / vgextend that way: the next setup recognises its own label and resumes.
func adoptionPVUUID(vg string, ns disk.Namespace) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	sum := sha256.Sum256([]byte("localnvme.io/adopted-pv\x00" + vg + "\x00" + strings.Join(ns.Identities(), "\x00")))
	var b strings.Builder
	for i, c := range sum[:32] {
		switch i {
		case 6, 10, 14, 18, 22, 26:
			b.WriteByte('-')
		}
		b.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return b.String()
}

// isAdoptionPV reports whether pv carries the label an adoption of ns into vg writes.
func isAdoptionPV(pv lvm.PV, vg string, ns disk.Namespace) bool {
	return pv.UUID != "" && StripUUID(pv.UUID) == StripUUID(adoptionPVUUID(vg, ns))
}

// onlyLVMLabel reports whether the emptiness check found nothing but an LVM PV label (which
// blkid reports as TYPE=LVM2_member): no partitions, holders, mounts, swap, other signature,
// read-only flag, or failed probe.
func onlyLVMLabel(v disk.Verdict) bool {
	if v.Empty || len(v.Refusals) == 0 {
		return false // blkid does not see the label: not the state an adoption leaves
	}
	for _, r := range v.Refusals {
		if r.Reason != disk.ReasonLVMMember {
			return false
		}
	}
	return true
}

func verdictCodes(v disk.Verdict) []string {
	codes := make([]string, 0, len(v.Refusals))
	for _, r := range v.Refusals {
		codes = append(codes, string(r.Reason))
	}
	return codes
}

// build adopts proven-empty devices (and devices an interrupted adoption already labelled)
// into the class's VG, creating it when it does not exist yet, creates a thin class's pool
// when missing and activates the VG. Every step finds what an interrupted earlier run left
// (a labelled PV, the VG, the pool) and goes on from there.
func (e *Engine) build(ctx context.Context, c *Class, vgExists bool, adopt []adoptee) error {
	logger := klog.FromContext(ctx).WithValues("class", c.Name, "vg", c.VolumeGroup)
	devs := make([]string, 0, len(adopt))
	for _, a := range adopt {
		devs = append(devs, a.ns.DevPath)
		if a.labelled {
			continue
		}
		uuid := adoptionPVUUID(c.VolumeGroup, a.ns)
		logger.Info("Adopting empty device", "device", a.ns.DevPath, "metadataSize", uint64(c.MetadataSize), "pvUUID", uuid)
		if err := e.lvm.PVCreate(ctx, a.ns.DevPath, uint64(c.MetadataSize), uuid); err != nil {
			return fmt.Errorf("pvcreate %s: %w", a.ns.DevPath, err)
		}
		failpoint.Hit(failpoint.SetupAfterPVCreate)
	}
	if len(adopt) > 0 {
		var err error
		if !vgExists {
			err = e.lvm.VGCreate(ctx, c.VolumeGroup, devs, []string{Tag(TagClass, c.Name)})
		} else {
			err = e.lvm.VGExtend(ctx, c.VolumeGroup, devs)
		}
		if err != nil {
			return fmt.Errorf("building volume group %s from %v: %w", c.VolumeGroup, devs, err)
		}
		failpoint.Hit(failpoint.SetupAfterVGCreate)
	}
	if c.Thin() {
		rep, err := e.lvm.Report(ctx)
		if err != nil {
			return fmt.Errorf("reading LVM state: %w", err)
		}
		if pool := rep.LVByName(c.VolumeGroup, c.ThinPool.Name); pool == nil {
			logger.Info("Creating thin pool", "pool", c.ThinPool.Name, "percentOfFree", c.ThinPool.SizePercent)
			if err := e.lvm.CreateThinPool(ctx, c.VolumeGroup, c.ThinPool.Name, c.ThinPool.SizePercent, nil); err != nil {
				return fmt.Errorf("creating thin pool %s/%s: %w", c.VolumeGroup, c.ThinPool.Name, err)
			}
			failpoint.Hit(failpoint.SetupThinPoolCreated)
		} else if !pool.IsThinPool() {
			return fmt.Errorf("%s/%s exists but is not a thin pool", c.VolumeGroup, c.ThinPool.Name)
		}
	}
	if err := e.lvm.VGChangeActivate(ctx, c.VolumeGroup); err != nil {
		return fmt.Errorf("activating volume group %s: %w", c.VolumeGroup, err)
	}
	return nil
}

// unit is the allocation unit of a class: the extent size times the stripe count.
func (c *Class) unit(vg *lvm.VG) uint64 {
	ext := vg.ExtentSize
	if ext == 0 {
		ext = 4 << 20
	}
	if !c.Thin() && c.Stripes > 1 {
		return ext * uint64(c.Stripes)
	}
	return ext
}

// Capacity is what a class can still hand out on this node.
type Capacity struct {
	Available, MaxVolume uint64
}

// Capacity computes a class's capacity from one LVM report.
func (e *Engine) Capacity(ctx context.Context, className string) (Capacity, error) {
	c, err := e.readyClass(className)
	if err != nil {
		return Capacity{}, err
	}
	rep, err := e.lvm.ReportVG(ctx, c.VolumeGroup)
	if err != nil {
		return Capacity{}, fmt.Errorf("reading LVM state: %w", err)
	}
	return c.capacity(rep)
}

func (c *Class) capacity(rep *lvm.Report) (Capacity, error) {
	vg := rep.VGByName(c.VolumeGroup)
	if vg == nil {
		return Capacity{}, fmt.Errorf("%w: volume group %s of class %s is missing", ErrUnavailable, c.VolumeGroup, c.Name)
	}
	if c.Thin() {
		pool := rep.LVByName(c.VolumeGroup, c.ThinPool.Name)
		if pool == nil {
			return Capacity{}, fmt.Errorf("%w: thin pool %s/%s is missing", ErrUnavailable, c.VolumeGroup, c.ThinPool.Name)
		}
		st := ThinPoolState{PoolSize: pool.Size, DataPercent: pool.DataPercent, MetadataPercent: pool.MetadataPercent}
		for _, lv := range rep.LVsInVG(c.VolumeGroup) {
			if lv.Pool == pool.Name {
				st.VirtualUsed += lv.Size
			}
		}
		avail := ThinCapacity(st, c.ThinPool.OverprovisionRatio, c.unit(vg))
		return Capacity{Available: avail, MaxVolume: avail}, nil
	}
	var free []uint64
	for _, pv := range rep.PVsInVG(c.VolumeGroup) {
		if !pv.Missing {
			free = append(free, pv.Free)
		}
	}
	avail, max := ThickCapacity(free, uint64(c.Reserve), vg.ExtentSize, c.Stripes)
	return Capacity{Available: avail, MaxVolume: max}, nil
}

// KeyLocks is a set of per-key locks (per volume, never one global lock), created on
// demand and dropped when unused. The zero value is ready to use. Waiting honours the
// caller's context: a caller whose deadline passes gets its error and never runs later.
type KeyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while the key is locked
	refs int
}

// Lock locks every key (in sorted order, so two callers never deadlock) and returns the
// unlock. If ctx ends first, it releases what it took and returns ctx's error, wrapped.
func (k *KeyLocks) Lock(ctx context.Context, keys ...string) (func(), error) {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	var held []*keyLock
	var names []string
	unlock := func() {
		for i := len(held) - 1; i >= 0; i-- {
			<-held[i].ch
			k.release(names[i], held[i])
		}
	}
	for i, key := range keys {
		if i > 0 && key == keys[i-1] {
			continue
		}
		k.mu.Lock()
		if k.locks == nil {
			k.locks = map[string]*keyLock{}
		}
		l := k.locks[key]
		if l == nil {
			l = &keyLock{ch: make(chan struct{}, 1)}
			k.locks[key] = l
		}
		l.refs++
		k.mu.Unlock()
		select {
		case l.ch <- struct{}{}:
			held = append(held, l)
			names = append(names, key)
		case <-ctx.Done():
			k.release(key, l)
			unlock()
			return nil, fmt.Errorf("waiting for another operation on %s: %w", key, ctx.Err())
		}
	}
	return unlock, nil
}

// release drops a reference to key's lock.
func (k *KeyLocks) release(key string, l *keyLock) {
	k.mu.Lock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
	k.mu.Unlock()
}

// LockVolume takes the one lock of a volume or snapshot ID that every operation on it holds:
// node RPCs (stage, publish, unpublish, unstage, expand) and the engine's own create, clone,
// snapshot, expand, fence and delete. The key is the ID's LV name (an unparsable ID locks
// only itself).
func (e *Engine) LockVolume(ctx context.Context, id string) (func(), error) {
	key := "id:" + id
	if pid, err := ParseID(id, ""); err == nil {
		key = pid.LVName
	}
	return e.locks.Lock(ctx, key)
}
