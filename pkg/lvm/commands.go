package lvm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Mutations that reach lvm invalidate the report cache when they return,
// successful or not (arguments rejected up front return ErrInvalidArgument
// without running anything).
// They are not interrupted when ctx is cancelled: killing lvm in the middle
// of a metadata update is worse than waiting for it. ctx only carries the
// logger.

func bytesArg(n uint64) string { return strconv.FormatUint(n, 10) + "b" }

// mutate runs a mutation of VG vg ("" for one of devices outside any VG, or of several)
// in vg's shell, and invalidates what it may have changed.
func (c *Client) mutate(ctx context.Context, vg, sub string, args ...string) error {
	defer c.InvalidateVG(vg)
	_, err := c.run(ctx, true, vg, sub, args...)
	return err
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, a...))
}

func checkName(kind, name string) error {
	if !ValidName(name) {
		return invalidf("invalid %s name %q", kind, name)
	}
	return nil
}

func checkDevs(devs []string) error {
	if len(devs) == 0 {
		return invalidf("no devices given")
	}
	for _, d := range devs {
		if !strings.HasPrefix(d, "/") {
			return invalidf("device %q is not an absolute path", d)
		}
	}
	return nil
}

func addTagArgs(args []string, tags []string) ([]string, error) {
	for _, t := range tags {
		if !ValidTag(t) {
			return nil, invalidf("invalid tag %q", t)
		}
		args = append(args, "--addtag", t)
	}
	return args, nil
}

func lvRef(vg, name string) (string, error) {
	if err := checkName("VG", vg); err != nil {
		return "", err
	}
	if err := checkName("LV", name); err != nil {
		return "", err
	}
	return vg + "/" + name, nil
}

// PVCreate initializes dev as a PV:
// `pvcreate [--metadatasize <n>b] [--uuid <uuid> --norestorefile] dev`.
// uuid "" lets lvm pick a random PV UUID; otherwise it is the PV's UUID (32 letters and
// digits, dashes anywhere), which the caller derives to recognise its own PV later.
// It never forces: lvm refuses (stdin is not a terminal, so prompts are
// answered "no") when dev carries a signature or belongs to a VG.
func (c *Client) PVCreate(ctx context.Context, dev string, metadataSize uint64, uuid string) error {
	if err := checkDevs([]string{dev}); err != nil {
		return err
	}
	var args []string
	if metadataSize > 0 {
		args = append(args, "--metadatasize", bytesArg(metadataSize))
	}
	if uuid != "" {
		if !ValidUUID(uuid) {
			return invalidf("invalid PV UUID %q", uuid)
		}
		args = append(args, "--uuid", uuid, "--norestorefile")
	}
	return c.mutate(ctx, "", "pvcreate", append(args, dev)...)
}

// VGCreate creates a VG: `vgcreate [--addtag t]... name devs...`.
func (c *Client) VGCreate(ctx context.Context, name string, devs []string, tags []string) error {
	if err := checkName("VG", name); err != nil {
		return err
	}
	if err := checkDevs(devs); err != nil {
		return err
	}
	args, err := addTagArgs(nil, tags)
	if err != nil {
		return err
	}
	args = append(args, name)
	return c.mutate(ctx, "", "vgcreate", append(args, devs...)...)
}

// VGExtend adds PVs to a VG: `vgextend name devs...`.
func (c *Client) VGExtend(ctx context.Context, name string, devs []string) error {
	if err := checkName("VG", name); err != nil {
		return err
	}
	if err := checkDevs(devs); err != nil {
		return err
	}
	return c.mutate(ctx, "", "vgextend", append([]string{name}, devs...)...)
}

// CreateLVOptions describe a new thick or thin LV.
type CreateLVOptions struct {
	VG, Name   string
	Size       uint64   // bytes (thick LV); for thin LVs the virtual size
	ThinPool   string   // non-empty: create a thin LV in this pool
	Stripes    int      // >1: striped thick LV (-i N)
	StripeSize uint64   // bytes (-I <n>b), only used with Stripes > 1
	Tags       []string // --addtag each
}

// CreateLV creates and activates an LV.
//
// Thick: `lvcreate --yes -ay -Zy -Wy [--addtag t]... [-i N [-I <n>b]] -L <n>b -n name vg`
// (zeroes the start of the LV and wipes signatures).
// Thin:  `lvcreate --yes -ay [--addtag t]... -V <n>b --thinpool pool -n name vg`
// (thin pools created by CreateThinPool zero newly provisioned chunks).
func (c *Client) CreateLV(ctx context.Context, o CreateLVOptions) error {
	if err := checkName("VG", o.VG); err != nil {
		return err
	}
	if err := checkName("LV", o.Name); err != nil {
		return err
	}
	if o.Size == 0 {
		return invalidf("LV size must be > 0")
	}
	args := []string{"--yes", "-ay"}
	if o.ThinPool == "" {
		args = append(args, "-Zy", "-Wy")
	}
	args, err := addTagArgs(args, o.Tags)
	if err != nil {
		return err
	}
	if o.ThinPool != "" {
		if err := checkName("thin pool", o.ThinPool); err != nil {
			return err
		}
		if o.Stripes > 1 {
			return invalidf("stripes cannot be set for thin LVs")
		}
		args = append(args, "-V", bytesArg(o.Size), "--thinpool", o.ThinPool)
	} else {
		if o.Stripes > 1 {
			args = append(args, "-i", strconv.Itoa(o.Stripes))
			if o.StripeSize > 0 {
				args = append(args, "-I", bytesArg(o.StripeSize))
			}
		}
		args = append(args, "-L", bytesArg(o.Size))
	}
	args = append(args, "-n", o.Name, o.VG)
	return c.mutate(ctx, o.VG, "lvcreate", args...)
}

// CreateThinPool creates a thin pool using extentsPercentFree percent of the
// VG's free space, zeroing newly provisioned chunks so thin LVs read zeros:
// `lvcreate --yes --type thin-pool -l <p>%FREE --zero y [--addtag t]... -n name vg`.
func (c *Client) CreateThinPool(ctx context.Context, vg, name string, extentsPercentFree int, tags []string) error {
	if err := checkName("VG", vg); err != nil {
		return err
	}
	if err := checkName("LV", name); err != nil {
		return err
	}
	if extentsPercentFree < 1 || extentsPercentFree > 100 {
		return invalidf("percent of free space must be within 1..100, got %d", extentsPercentFree)
	}
	args := []string{"--yes", "--type", "thin-pool", "-l", strconv.Itoa(extentsPercentFree) + "%FREE", "--zero", "y"}
	args, err := addTagArgs(args, tags)
	if err != nil {
		return err
	}
	args = append(args, "-n", name, vg)
	return c.mutate(ctx, vg, "lvcreate", args...)
}

// CreateSnapshot snapshots vg/origin.
//
// cowSize == 0: thin snapshot, activated:
// `lvcreate -s -kn -ay [--addtag t]... -n name vg/origin`.
// Otherwise a COW snapshot with cowSize bytes of exception store:
// `lvcreate -s -L <n>b [--addtag t]... -n name vg/origin`.
func (c *Client) CreateSnapshot(ctx context.Context, vg, origin, name string, cowSize uint64, tags []string) error {
	ref, err := lvRef(vg, origin)
	if err != nil {
		return err
	}
	if err := checkName("LV", name); err != nil {
		return err
	}
	args := []string{"-s"}
	if cowSize == 0 {
		args = append(args, "-kn", "-ay")
	} else {
		args = append(args, "-L", bytesArg(cowSize))
	}
	args, err = addTagArgs(args, tags)
	if err != nil {
		return err
	}
	args = append(args, "-n", name, ref)
	return c.mutate(ctx, vg, "lvcreate", args...)
}

// RemoveLV removes vg/name without prompting: `lvremove -f vg/name`.
// Note that lvm then also removes dependent LVs (thin LVs of a pool, COW
// snapshots of an origin). A missing LV yields an *Error with Kind
// ErrNotFound.
func (c *Client) RemoveLV(ctx context.Context, vg, name string) error {
	ref, err := lvRef(vg, name)
	if err != nil {
		return err
	}
	return c.mutate(ctx, vg, "lvremove", "-f", ref)
}

// ExtendLV grows vg/name to size bytes: `lvextend -L <n>b vg/name`.
func (c *Client) ExtendLV(ctx context.Context, vg, name string, size uint64) error {
	ref, err := lvRef(vg, name)
	if err != nil {
		return err
	}
	if size == 0 {
		return invalidf("LV size must be > 0")
	}
	return c.mutate(ctx, vg, "lvextend", "-L", bytesArg(size), ref)
}

// ChangeTags adds and removes tags of vg/name in one command:
// `lvchange [--addtag t]... [--deltag t]... vg/name`. No-op without tags. A change that
// lvm confirms is applied to the cached reports that hold the LV (a tag change alters
// nothing else), so the next read needs no fullreport; a failed one invalidates the VG.
func (c *Client) ChangeTags(ctx context.Context, vg, name string, add, del []string) error {
	ref, err := lvRef(vg, name)
	if err != nil {
		return err
	}
	if len(add)+len(del) == 0 {
		return nil
	}
	var args []string
	for _, t := range add {
		if !ValidTag(t) {
			return invalidf("invalid tag %q", t)
		}
		args = append(args, "--addtag", t)
	}
	for _, t := range del {
		if !ValidTag(t) {
			return invalidf("invalid tag %q", t)
		}
		args = append(args, "--deltag", t)
	}
	if _, err := c.run(ctx, true, vg, "lvchange", append(args, ref)...); err != nil {
		c.InvalidateVG(vg)
		return err
	}
	c.patchTags(vg, name, add, del)
	return nil
}

// AddTags adds tags to vg/name: ChangeTags with add only.
func (c *Client) AddTags(ctx context.Context, vg, name string, tags []string) error {
	return c.ChangeTags(ctx, vg, name, tags, nil)
}

// DeleteTags removes tags from vg/name: ChangeTags with del only.
func (c *Client) DeleteTags(ctx context.Context, vg, name string, tags []string) error {
	return c.ChangeTags(ctx, vg, name, nil, tags)
}

// Activate activates vg/name, ignoring the activation skip flag:
// `lvchange -ay -K vg/name`.
func (c *Client) Activate(ctx context.Context, vg, name string) error {
	ref, err := lvRef(vg, name)
	if err != nil {
		return err
	}
	return c.mutate(ctx, vg, "lvchange", "-ay", "-K", ref)
}

// Deactivate deactivates vg/name: `lvchange -an vg/name`.
func (c *Client) Deactivate(ctx context.Context, vg, name string) error {
	ref, err := lvRef(vg, name)
	if err != nil {
		return err
	}
	return c.mutate(ctx, vg, "lvchange", "-an", ref)
}

// VGChangeActivate activates all LVs of vg: `vgchange -ay -K vg`.
func (c *Client) VGChangeActivate(ctx context.Context, vg string) error {
	if err := checkName("VG", vg); err != nil {
		return err
	}
	return c.mutate(ctx, vg, "vgchange", "-ay", "-K", vg)
}

// VGReduce removes unused PVs from a VG: vgreduce name devs...
func (c *Client) VGReduce(ctx context.Context, name string, devs []string) error {
	if err := checkName("VG", name); err != nil {
		return err
	}
	if err := checkDevs(devs); err != nil {
		return err
	}
	return c.mutate(ctx, "", "vgreduce", append([]string{name}, devs...)...)
}

// VGRemove removes an empty VG: vgremove name (no -f: it refuses while LVs exist).
func (c *Client) VGRemove(ctx context.Context, name string) error {
	if err := checkName("VG", name); err != nil {
		return err
	}
	return c.mutate(ctx, "", "vgremove", name)
}

// PVRemove removes the PV label from a device that is in no VG: pvremove dev (no -f).
func (c *Client) PVRemove(ctx context.Context, dev string) error {
	if err := checkDevs([]string{dev}); err != nil {
		return err
	}
	return c.mutate(ctx, "", "pvremove", dev)
}

// ExtendLVOptions grow an LV onto exactly the physical extents named.
type ExtendLVOptions struct {
	VG, Name   string
	Size       uint64    // the new size, bytes
	Stripes    int       // stripes of the new segment(s) (-i N; 0 means 1)
	StripeSize uint64    // bytes (-I <n>b), only used with Stripes > 1
	Ranges     []PERange // the only extents lvm may allocate from (PV:first-last)
}

// ExtendLVOnto grows vg/name to o.Size bytes, allocating only from o.Ranges:
// `lvextend -i N [-I <n>b] -L <n>b vg/name pv:first-last...`. lvm refuses (and changes
// nothing) when the ranges do not hold enough free extents for the new segment(s), for
// example because another LV took some of them: "Insufficient free space: …" or "No
// specified PVs have space available".
func (c *Client) ExtendLVOnto(ctx context.Context, o ExtendLVOptions) error {
	ref, err := lvRef(o.VG, o.Name)
	if err != nil {
		return err
	}
	if o.Size == 0 {
		return invalidf("LV size must be > 0")
	}
	if len(o.Ranges) == 0 {
		return invalidf("no physical extent ranges given")
	}
	stripes := max(o.Stripes, 1)
	args := []string{"-i", strconv.Itoa(stripes)}
	if stripes > 1 && o.StripeSize > 0 {
		args = append(args, "-I", bytesArg(o.StripeSize))
	}
	args = append(args, "-L", bytesArg(o.Size), ref)
	for _, r := range o.Ranges {
		if !strings.HasPrefix(r.PV, "/") || strings.ContainsAny(r.PV, ": \t,") || r.First > r.Last {
			return invalidf("invalid physical extent range %q", r.String())
		}
		args = append(args, r.String())
	}
	return c.mutate(ctx, o.VG, "lvextend", args...)
}
