// Package volume is the volume engine: it turns CSI-level requests (create, delete, expand,
// snapshot, resolve an ID) into LVM operations on the node's device classes. It holds no
// state of its own: everything is read back from LVM (one cached report) and LV tags, so a
// restarted node answers exactly as before.
package volume

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
)

// LVM is the part of *lvm.Client the engine uses.
type LVM interface {
	Report(ctx context.Context) (*lvm.Report, error)
	Invalidate()
	PVCreate(ctx context.Context, dev string, metadataSize uint64) error
	VGCreate(ctx context.Context, name string, devs []string, tags []string) error
	VGExtend(ctx context.Context, name string, devs []string) error
	VGChangeActivate(ctx context.Context, vg string) error
	CreateLV(ctx context.Context, o lvm.CreateLVOptions) error
	CreateThinPool(ctx context.Context, vg, name string, extentsPercentFree int, tags []string) error
	CreateSnapshot(ctx context.Context, vg, origin, name string, cowSize uint64, tags []string) error
	RemoveLV(ctx context.Context, vg, name string) error
	ExtendLV(ctx context.Context, vg, name string, size uint64) error
	AddTags(ctx context.Context, vg, name string, tags []string) error
	DeleteTags(ctx context.Context, vg, name string, tags []string) error
	Activate(ctx context.Context, vg, name string) error
}

// Disks finds NVMe namespaces and proves them empty.
type Disks interface {
	List() ([]disk.Namespace, error)
	Check(ctx context.Context, ns disk.Namespace) disk.Verdict
}

// Copier copies size bytes from one block device to another (thick clones and restores).
type Copier interface {
	Copy(ctx context.Context, src, dst string, size uint64) error
}

// Class is a configured device class and what the node found when it set it up.
type Class struct {
	config.DeviceClass
	// Ready is true when the VG (and pool) exist and every selected device is a member.
	Ready bool
	// Problems says why the class is not ready (each refused device with its reason).
	Problems []string
	// Members are the namespaces the class's selectors matched.
	Members []disk.Namespace
}

// Thin reports whether the class uses a thin pool.
func (c *Class) Thin() bool { return c.Type == config.TypeThin }

// Engine implements volume operations for one node.
type Engine struct {
	lvm     LVM
	disks   Disks
	copier  Copier
	cfg     *config.Config
	locks   KeyLocks
	classMu sync.RWMutex
	classes map[string]*Class
}

// New returns an engine; call Setup before serving.
func New(l LVM, d Disks, c Copier, cfg *config.Config) *Engine {
	e := &Engine{lvm: l, disks: d, copier: c, cfg: cfg, classes: map[string]*Class{}}
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
	for _, c := range e.Classes() {
		var problems []string
		var devs []disk.Namespace
		if err != nil {
			problems = []string{fmt.Sprintf("listing NVMe namespaces: %v", err)}
		} else {
			devs, problems = e.setupClass(ctx, c, nss)
		}
		e.classMu.Lock()
		c.Members, c.Problems, c.Ready = devs, problems, len(problems) == 0
		e.classMu.Unlock()
		if len(problems) > 0 {
			logger.Error(nil, "Device class refused", "class", c.Name, "vg", c.VolumeGroup, "reasons", problems)
		} else {
			logger.Info("Device class ready", "class", c.Name, "vg", c.VolumeGroup, "type", c.Type, "devices", len(devs))
		}
	}
}

// match returns the namespaces a selector names.
func match(sel config.DeviceSelector, nss []disk.Namespace) []disk.Namespace {
	var out []disk.Namespace
	for _, ns := range nss {
		switch {
		case sel.Identity != "":
			for _, id := range ns.Identities() {
				if strings.EqualFold(id, sel.Identity) {
					out = append(out, ns)
					break
				}
			}
		case sel.Serial != "":
			if ns.Serial == sel.Serial {
				out = append(out, ns)
			}
		case sel.Path != "":
			if ns.DevPath == sel.Path {
				out = append(out, ns)
			}
		}
	}
	return out
}

func (e *Engine) setupClass(ctx context.Context, c *Class, nss []disk.Namespace) ([]disk.Namespace, []string) {
	var problems []string
	var devs []disk.Namespace
	seen := map[string]bool{}
	for _, sel := range c.DeviceClass.Devices {
		m := match(sel, nss)
		if len(m) == 0 {
			problems = append(problems, fmt.Sprintf("device %s: not found on this node", sel))
		}
		for _, ns := range m {
			if !seen[ns.Name] {
				seen[ns.Name] = true
				devs = append(devs, ns)
			}
		}
	}
	if len(problems) > 0 {
		return devs, problems
	}
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return devs, []string{fmt.Sprintf("reading LVM state: %v", err)}
	}
	pvs := map[string]lvm.PV{}
	for _, pv := range rep.PVs {
		pvs[pv.Name] = pv
	}
	var members, adopt []string
	for _, ns := range devs {
		if pv, ok := pvs[ns.DevPath]; ok {
			switch pv.VGName {
			case c.VolumeGroup:
				members = append(members, ns.DevPath)
			case "":
				problems = append(problems, fmt.Sprintf("device %s (%s): an LVM PV that belongs to no volume group; refusing to adopt it (pvremove it if it is not in use)", ns.DevPath, ns.Identity()))
			default:
				problems = append(problems, fmt.Sprintf("device %s (%s): a PV of another volume group %q", ns.DevPath, ns.Identity(), pv.VGName))
			}
			continue
		}
		v := e.disks.Check(ctx, ns)
		if !v.Empty {
			problems = append(problems, fmt.Sprintf("device %s (%s): %s", ns.DevPath, ns.Identity(), v))
			continue
		}
		adopt = append(adopt, ns.DevPath)
	}
	vg := rep.VGByName(c.VolumeGroup)
	if vg != nil && vg.Partial {
		problems = append(problems, fmt.Sprintf("volume group %s is partial: %d PV(s) missing", c.VolumeGroup, vg.MissingPVCount))
	}
	if vg == nil && len(members) > 0 {
		problems = append(problems, fmt.Sprintf("volume group %s not found although %v claim to be its PVs", c.VolumeGroup, members))
	}
	if len(problems) > 0 {
		return devs, problems
	}
	logger := klog.FromContext(ctx).WithValues("class", c.Name, "vg", c.VolumeGroup)
	for _, dev := range adopt {
		logger.Info("Adopting empty device", "device", dev, "metadataSize", uint64(c.MetadataSize))
		if err := e.lvm.PVCreate(ctx, dev, uint64(c.MetadataSize)); err != nil {
			return devs, []string{fmt.Sprintf("pvcreate %s: %v", dev, err)}
		}
	}
	if len(adopt) > 0 {
		if vg == nil {
			err = e.lvm.VGCreate(ctx, c.VolumeGroup, adopt, []string{Tag(TagClass, c.Name)})
		} else {
			err = e.lvm.VGExtend(ctx, c.VolumeGroup, adopt)
		}
		if err != nil {
			return devs, []string{fmt.Sprintf("building volume group %s from %v: %v", c.VolumeGroup, adopt, err)}
		}
	}
	if c.Thin() {
		if rep, err = e.lvm.Report(ctx); err != nil {
			return devs, []string{fmt.Sprintf("reading LVM state: %v", err)}
		}
		if pool := rep.LVByName(c.VolumeGroup, c.ThinPool.Name); pool == nil {
			logger.Info("Creating thin pool", "pool", c.ThinPool.Name, "percentOfFree", c.ThinPool.SizePercent)
			if err := e.lvm.CreateThinPool(ctx, c.VolumeGroup, c.ThinPool.Name, c.ThinPool.SizePercent, nil); err != nil {
				return devs, []string{fmt.Sprintf("creating thin pool %s/%s: %v", c.VolumeGroup, c.ThinPool.Name, err)}
			}
		} else if !pool.IsThinPool() {
			return devs, []string{fmt.Sprintf("%s/%s exists but is not a thin pool", c.VolumeGroup, c.ThinPool.Name)}
		}
	}
	if err := e.lvm.VGChangeActivate(ctx, c.VolumeGroup); err != nil {
		return devs, []string{fmt.Sprintf("activating volume group %s: %v", c.VolumeGroup, err)}
	}
	return devs, nil
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
	rep, err := e.lvm.Report(ctx)
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

// KeyLocks is a set of per-key mutexes (per volume, never one global lock), created on
// demand and dropped when unused. The zero value is ready to use.
type KeyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

// Lock locks every key (in sorted order, so two callers never deadlock) and returns the unlock.
func (k *KeyLocks) Lock(keys ...string) func() {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	var held []*keyLock
	var names []string
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
			l = &keyLock{}
			k.locks[key] = l
		}
		l.refs++
		k.mu.Unlock()
		l.Lock()
		held = append(held, l)
		names = append(names, key)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
			k.mu.Lock()
			held[i].refs--
			if held[i].refs == 0 {
				delete(k.locks, names[i])
			}
			k.mu.Unlock()
		}
	}
}
