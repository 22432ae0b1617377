package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/nvme"
)

// Discoverer reads sysfs. SysRoot defaults to "/sys"; DevRoot "/dev".
type Discoverer struct {
	SysRoot, DevRoot string
	// IDs, when set, asks the device for a namespace's identifiers (NVMe Identify) when
	// sysfs shows none: some kernels hide them for controllers they distrust (Linux applies
	// NVME_QUIRK_BOGUS_NID to qemu's controller, for example).
	IDs NamespaceIDReader
}

// NamespaceIDReader returns a namespace's EUI-64, NGUID and UUID in the forms Namespace
// uses ("" when absent); pkg/nvme's Client implements it through the admin ioctl.
type NamespaceIDReader interface {
	NamespaceIDs(devPath string, nsid uint32) (nvme.NamespaceIDs, error)
}

var (
	// nsNameRE matches namespace block devices (nvme0n1) but not the hidden per-path
	// devices of native multipath (nvme0c1n1) nor partitions (nvme0n1p1).
	nsNameRE   = regexp.MustCompile(`^nvme([0-9]+)n([0-9]+)$`)
	ctrlNameRE = regexp.MustCompile(`^nvme[0-9]+$`)
)

func (d Discoverer) sysRoot() string {
	if d.SysRoot == "" {
		return "/sys"
	}
	return d.SysRoot
}

func (d Discoverer) devRoot() string {
	if d.DevRoot == "" {
		return "/dev"
	}
	return d.DevRoot
}

// List returns every NVMe namespace block device (nvmeXnY; skip nvmeXcYnZ multipath hidden
// paths and partitions), sorted by Name.
// Controller is found via the /sys/block/X/device symlink (-> .../nvme0) or
// /sys/class/nvme/nvmeX/nvmeXnY; serial/model/firmware_rev come from
// /sys/class/nvme/<ctrl>/ (or, failing that, from /sys/block/X/device/, which for a
// native-multipath head is the nvme-subsystem and carries the same attributes).
// A namespace that disappears while it is being read is skipped.
func (d Discoverer) List() ([]Namespace, error) {
	blockDir := filepath.Join(d.sysRoot(), "block")
	entries, err := os.ReadDir(blockDir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", blockDir, err)
	}
	var out []Namespace
	for _, e := range entries {
		name := e.Name()
		if !nsNameRE.MatchString(name) {
			continue
		}
		ns, err := d.read(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Stat(filepath.Join(blockDir, name)); errors.Is(serr, fs.ErrNotExist) {
					klog.V(2).InfoS("NVMe namespace vanished during discovery", "name", name)
					continue
				}
			}
			return nil, err
		}
		if ns.EUI64 == "" && ns.NGUID == "" && ns.UUID == "" && d.IDs != nil && ns.NSID > 0 {
			ids, err := d.IDs.NamespaceIDs(ns.DevPath, uint32(ns.NSID))
			if err != nil {
				klog.V(2).InfoS("NVMe Identify for namespace identifiers failed; identity falls back to serial", "name", name, "err", err)
			} else {
				ns.EUI64, ns.NGUID, ns.UUID = ids.EUI64, ids.NGUID, ids.UUID
			}
		}
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// read collects one namespace's attributes from /sys/block/<name>.
func (d Discoverer) read(name string) (Namespace, error) {
	dir := filepath.Join(d.sysRoot(), "block", name)
	ns := Namespace{
		Name:    name,
		DevPath: filepath.Join(d.devRoot(), name),
	}

	var err error
	if ns.MajorMinor, err = readAttr(dir, "dev"); err != nil {
		return ns, err
	}
	sectors, err := readInt(dir, "size")
	if err != nil {
		return ns, err
	}
	ns.SizeBytes = sectors * 512
	if lbs, err := readInt(dir, "queue/logical_block_size"); err == nil {
		ns.LogicalBlockSize = int(lbs)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return ns, err
	}
	if ns.ReadOnly, err = readBool(dir, "ro"); err != nil {
		return ns, err
	}
	if ns.Removable, err = readBool(dir, "removable"); err != nil {
		return ns, err
	}

	if nsid, err := readInt(dir, "nsid"); err == nil {
		ns.NSID = int(nsid)
	} else if errors.Is(err, fs.ErrNotExist) {
		// Kernels before 4.5 have no nsid attribute; the name's nY is the best guess.
		m := nsNameRE.FindStringSubmatch(name)
		ns.NSID, _ = strconv.Atoi(m[2])
		klog.V(2).InfoS("no nsid attribute, deriving NSID from the device name", "name", name, "nsid", ns.NSID)
	} else {
		return ns, err
	}

	ns.EUI64 = readOptional(dir, "eui", normalizeHexID)
	ns.NGUID = readOptional(dir, "nguid", normalizeHexID)
	ns.UUID = readOptional(dir, "uuid", normalizeUUID)
	if ns.UUID != "" && ns.NGUID != "" && normalizeHexID(ns.UUID) == ns.NGUID {
		// uuid_show prints the NGUID when the namespace has no UUID (backward compatibility).
		ns.UUID = ""
	}
	ns.WWID = readOptional(dir, "wwid", strings.TrimSpace)

	if ns.Holders, err = listDir(filepath.Join(dir, "holders")); err != nil {
		return ns, err
	}
	if err := d.readPartitions(dir, &ns); err != nil {
		return ns, err
	}

	ns.Controller = d.controller(dir, name)
	attrDirs := []string{filepath.Join(dir, "device")}
	if ns.Controller != "" {
		attrDirs = append([]string{filepath.Join(d.sysRoot(), "class", "nvme", ns.Controller)}, attrDirs...)
	}
	ns.Serial = firstAttr(attrDirs, "serial")
	ns.Model = firstAttr(attrDirs, "model")
	ns.Firmware = firstAttr(attrDirs, "firmware_rev")
	return ns, nil
}

func (d Discoverer) readPartitions(dir string, ns *Namespace) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		pdir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(pdir, "partition")); err != nil {
			continue
		}
		ns.Partitions = append(ns.Partitions, e.Name())
		if mm, err := readAttr(pdir, "dev"); err == nil {
			if ns.PartitionMajorMinor == nil {
				ns.PartitionMajorMinor = map[string]string{}
			}
			ns.PartitionMajorMinor[e.Name()] = mm
		}
	}
	sort.Strings(ns.Partitions)
	return nil
}

// controller finds the nvmeN controller a namespace belongs to: first via the device
// symlink (which points at the controller for non-multipath namespaces), then by looking
// for the namespace (or, for a multipath head nvmeXnY, a path nvmeXcZnY) under
// /sys/class/nvme/*. Returns "" when none is found.
func (d Discoverer) controller(dir, name string) string {
	if target, err := os.Readlink(filepath.Join(dir, "device")); err == nil {
		if base := filepath.Base(target); ctrlNameRE.MatchString(base) {
			return base
		}
	}
	classDir := filepath.Join(d.sysRoot(), "class", "nvme")
	ctrls, err := listDir(classDir)
	if err != nil {
		return ""
	}
	for _, c := range ctrls {
		if _, err := os.Stat(filepath.Join(classDir, c, name)); err == nil {
			return c
		}
	}
	m := nsNameRE.FindStringSubmatch(name)
	pathRE := regexp.MustCompile(`^nvme` + m[1] + `c[0-9]+n` + m[2] + `$`)
	for _, c := range ctrls {
		children, _ := listDir(filepath.Join(classDir, c))
		for _, child := range children {
			if pathRE.MatchString(child) {
				return c
			}
		}
	}
	return ""
}

func readAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func readInt(dir, name string) (int64, error) {
	s, err := readAttr(dir, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", filepath.Join(dir, name), err)
	}
	return v, nil
}

// readBool reads a 0/1 attribute; a missing file reads as false.
func readBool(dir, name string) (bool, error) {
	v, err := readInt(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return v != 0, err
}

// readOptional returns norm(content) or "" if the attribute cannot be read (the kernel
// hides eui/nguid/uuid when they are all zero).
func readOptional(dir, name string, norm func(string) string) string {
	s, err := readAttr(dir, name)
	if err != nil {
		return ""
	}
	return norm(s)
}

func firstAttr(dirs []string, name string) string {
	for _, dir := range dirs {
		if s, err := readAttr(dir, name); err == nil {
			return s
		}
	}
	return ""
}

// listDir returns the sorted names in dir; a missing dir is empty.
func listDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}
