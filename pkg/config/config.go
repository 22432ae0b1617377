// Package config parses the node's device-class configuration (a YAML file, normally
// mounted from a ConfigMap) and validates it before the node touches any device.
package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Class types.
const (
	TypeThick = "thick"
	TypeThin  = "thin"
)

// Defaults applied by Parse.
const (
	DefaultMetadataSize       = 64 << 20 // per-PV LVM metadata area, sized for >80,000 LVs
	DefaultThinPoolPercent    = 90
	DefaultOverprovisionRatio = 1.0
	DefaultFSType             = "ext4"
	DefaultThinPoolName       = "pool"
	// MaxClassNameLen keeps volume IDs under the CSI limit of 128 bytes.
	MaxClassNameLen = 20
)

var (
	classNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	// lvmNameRE is what LVM accepts for VG and LV names (minus the reserved prefixes it also rejects).
	lvmNameRE = regexp.MustCompile(`^[A-Za-z0-9+_][A-Za-z0-9+_.-]*$`)
	sizeRE    = regexp.MustCompile(`^([0-9]+)\s*(|k|Ki|K|M|Mi|G|Gi|T|Ti)$`)
)

// Config is the whole file.
type Config struct {
	DeviceClasses []DeviceClass `json:"deviceClasses"`
}

// Size is a byte count that accepts "64Mi", "3Gi", "1048576" in YAML.
type Size uint64

// UnmarshalJSON accepts a number or a string with a binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffix.
func (s *Size) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(b), `"`)
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// ParseSize parses "64Mi", "2G" or a plain number of bytes.
func ParseSize(str string) (uint64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(str))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (want e.g. 64Mi, 2Gi or bytes)", str)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", str, err)
	}
	mult := map[string]uint64{"": 1, "k": 1000, "K": 1000, "Ki": 1 << 10, "M": 1000 * 1000, "Mi": 1 << 20,
		"G": 1000 * 1000 * 1000, "Gi": 1 << 30, "T": 1000 * 1000 * 1000 * 1000, "Ti": 1 << 40}[m[2]]
	if n > ^uint64(0)/mult {
		return 0, fmt.Errorf("size %q overflows", str)
	}
	return n * mult, nil
}

// DeviceSelector picks NVMe namespaces for a class. It is either exact or a rule.
//
// Exact (exactly one field): Identity is one of the forms disk.Namespace.Identities()
// yields ("eui64:…", "nguid:…", "uuid:…", "serial:<serial>/ns<nsid>"); Serial matches the
// namespaces of the controller with that serial; Path (a /dev path) is accepted but
// discouraged because paths are not stable across boots. An exact selector must match a
// present drive, and a drive it names that is not provably empty refuses the whole class:
// the operator named that drive.
//
// Rule (AllEmpty and/or ModelPattern/SerialPattern, optionally with MinSize/MaxSize, all
// conditions must hold): it matches any number of drives; a matched drive that is not
// provably empty is skipped (reported as refused) without refusing the class, and drives
// named by another class's exact selector are never taken by a rule.
type DeviceSelector struct {
	Identity string `json:"identity,omitempty"`
	Serial   string `json:"serial,omitempty"`
	Path     string `json:"path,omitempty"`

	AllEmpty      bool   `json:"allEmpty,omitempty"`
	ModelPattern  string `json:"modelPattern,omitempty"`  // shell glob (path.Match) on the trimmed model
	SerialPattern string `json:"serialPattern,omitempty"` // shell glob on the trimmed serial
	MinSize       Size   `json:"minSize,omitempty"`
	MaxSize       Size   `json:"maxSize,omitempty"`
}

// IsRule reports whether the selector is a rule rather than an exact name.
func (d DeviceSelector) IsRule() bool {
	return d.AllEmpty || d.ModelPattern != "" || d.SerialPattern != "" || d.MinSize != 0 || d.MaxSize != 0
}

func (d DeviceSelector) String() string {
	switch {
	case d.Identity != "":
		return d.Identity
	case d.Serial != "":
		return "serial:" + d.Serial
	case d.Path != "":
		return "path:" + d.Path
	}
	var parts []string
	if d.AllEmpty {
		parts = append(parts, "all empty")
	}
	if d.ModelPattern != "" {
		parts = append(parts, "model="+d.ModelPattern)
	}
	if d.SerialPattern != "" {
		parts = append(parts, "serial="+d.SerialPattern)
	}
	if d.MinSize != 0 {
		parts = append(parts, fmt.Sprintf("size>=%d", uint64(d.MinSize)))
	}
	if d.MaxSize != 0 {
		parts = append(parts, fmt.Sprintf("size<=%d", uint64(d.MaxSize)))
	}
	return "rule(" + strings.Join(parts, ",") + ")"
}

// ThinPool configures the pool of a thin class.
type ThinPool struct {
	Name string `json:"name,omitempty"`
	// SizePercent of the VG's free extents given to the pool when it is created.
	SizePercent int `json:"sizePercent,omitempty"`
	// OverprovisionRatio: the class may hand out virtual sizes up to pool size × ratio.
	OverprovisionRatio float64 `json:"overprovisionRatio,omitempty"`
}

// DeviceClass maps to one volume group built from the listed NVMe namespaces.
type DeviceClass struct {
	Name        string           `json:"name"`
	VolumeGroup string           `json:"volumeGroup"`
	Type        string           `json:"type"`
	Default     bool             `json:"default,omitempty"`
	Devices     []DeviceSelector `json:"devices"`
	// Stripes > 1 stripes every thick volume over that many PVs (thin pools are linear).
	Stripes    int  `json:"stripes,omitempty"`
	StripeSize Size `json:"stripeSize,omitempty"`
	// Reserve is kept free in the VG and never handed out (thick classes).
	Reserve Size `json:"reserve,omitempty"`
	// MetadataSize of each PV's LVM metadata area, fixed when a device is adopted.
	MetadataSize Size      `json:"metadataSize,omitempty"`
	ThinPool     *ThinPool `json:"thinPool,omitempty"`
	// FSType used when a volume capability names none.
	FSType string `json:"fsType,omitempty"`
}

// Load reads and parses a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(b)
}

// Parse parses YAML (or JSON), applies defaults and validates.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	for i := range c.DeviceClasses {
		c.DeviceClasses[i].applyDefaults()
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (d *DeviceClass) applyDefaults() {
	if d.MetadataSize == 0 {
		d.MetadataSize = DefaultMetadataSize
	}
	if d.FSType == "" {
		d.FSType = DefaultFSType
	}
	if d.Stripes == 0 {
		d.Stripes = 1
	}
	if d.Type == TypeThin {
		if d.ThinPool == nil {
			d.ThinPool = &ThinPool{}
		}
		if d.ThinPool.Name == "" {
			d.ThinPool.Name = DefaultThinPoolName
		}
		if d.ThinPool.SizePercent == 0 {
			d.ThinPool.SizePercent = DefaultThinPoolPercent
		}
		if d.ThinPool.OverprovisionRatio == 0 {
			d.ThinPool.OverprovisionRatio = DefaultOverprovisionRatio
		}
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.DeviceClasses) == 0 {
		errs = append(errs, errors.New("no deviceClasses configured"))
	}
	names, vgs, devs := map[string]bool{}, map[string]bool{}, map[string]string{}
	defaults := 0
	for i, d := range c.DeviceClasses {
		where := fmt.Sprintf("deviceClasses[%d] (%s)", i, d.Name)
		if !classNameRE.MatchString(d.Name) || len(d.Name) > MaxClassNameLen {
			errs = append(errs, fmt.Errorf("%s: name must match %s and be at most %d characters", where, classNameRE, MaxClassNameLen))
		}
		if names[d.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate class name", where))
		}
		names[d.Name] = true
		if !lvmNameRE.MatchString(d.VolumeGroup) || len(d.VolumeGroup) > 64 {
			errs = append(errs, fmt.Errorf("%s: volumeGroup %q is not a valid LVM name", where, d.VolumeGroup))
		}
		if vgs[d.VolumeGroup] {
			errs = append(errs, fmt.Errorf("%s: volumeGroup %q used by two classes", where, d.VolumeGroup))
		}
		vgs[d.VolumeGroup] = true
		switch d.Type {
		case TypeThick:
			if d.ThinPool != nil {
				errs = append(errs, fmt.Errorf("%s: thinPool is only valid for type thin", where))
			}
		case TypeThin:
			if !lvmNameRE.MatchString(d.ThinPool.Name) {
				errs = append(errs, fmt.Errorf("%s: thinPool.name %q is not a valid LVM name", where, d.ThinPool.Name))
			}
			if d.ThinPool.SizePercent < 1 || d.ThinPool.SizePercent > 100 {
				errs = append(errs, fmt.Errorf("%s: thinPool.sizePercent must be 1..100", where))
			}
			if d.ThinPool.OverprovisionRatio < 1 {
				errs = append(errs, fmt.Errorf("%s: thinPool.overprovisionRatio must be >= 1", where))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: type must be %q or %q, not %q", where, TypeThick, TypeThin, d.Type))
		}
		if d.Default {
			defaults++
		}
		if len(d.Devices) == 0 {
			errs = append(errs, fmt.Errorf("%s: no devices listed", where))
		}
		for j, s := range d.Devices {
			set := 0
			for _, v := range []string{s.Identity, s.Serial, s.Path} {
				if v != "" {
					set++
				}
			}
			switch {
			case set > 1 || (set == 1 && s.IsRule()):
				errs = append(errs, fmt.Errorf("%s: devices[%d] must be either exactly one of identity, serial, path or a rule (allEmpty, modelPattern, serialPattern, minSize, maxSize)", where, j))
				continue
			case set == 0 && !s.IsRule():
				errs = append(errs, fmt.Errorf("%s: devices[%d] selects nothing", where, j))
				continue
			case s.IsRule():
				for _, pat := range []string{s.ModelPattern, s.SerialPattern} {
					if _, err := path.Match(pat, ""); err != nil {
						errs = append(errs, fmt.Errorf("%s: devices[%d]: bad pattern %q: %w", where, j, pat, err))
					}
				}
				if s.MaxSize != 0 && s.MinSize > s.MaxSize {
					errs = append(errs, fmt.Errorf("%s: devices[%d]: minSize > maxSize", where, j))
				}
				continue
			}
			key := strings.ToLower(s.String())
			if other, ok := devs[key]; ok {
				errs = append(errs, fmt.Errorf("%s: device %s is also listed by class %s", where, s, other))
			}
			devs[key] = d.Name
		}
		if d.Stripes < 1 || d.Stripes > 64 {
			errs = append(errs, fmt.Errorf("%s: stripes must be 1..64", where))
		} else if d.Stripes > len(d.Devices) && !hasRule(d.Devices) {
			errs = append(errs, fmt.Errorf("%s: stripes=%d needs at least that many devices (%d listed)", where, d.Stripes, len(d.Devices)))
		}
		if d.StripeSize != 0 && (d.StripeSize&(d.StripeSize-1) != 0 || d.StripeSize < 4096) {
			errs = append(errs, fmt.Errorf("%s: stripeSize must be a power of two >= 4Ki", where))
		}
		if d.MetadataSize < 1<<20 {
			errs = append(errs, fmt.Errorf("%s: metadataSize must be at least 1Mi", where))
		}
		switch d.FSType {
		case "ext4", "xfs":
		default:
			errs = append(errs, fmt.Errorf("%s: fsType must be ext4 or xfs, not %q", where, d.FSType))
		}
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("%d classes are marked default; at most one may be", defaults))
	}
	return errors.Join(errs...)
}

func hasRule(sels []DeviceSelector) bool {
	for _, s := range sels {
		if s.IsRule() {
			return true
		}
	}
	return false
}

// Class returns the class with that name, or the default class for name "" (the only
// class when there is just one).
func (c *Config) Class(name string) (*DeviceClass, bool) {
	for i := range c.DeviceClasses {
		d := &c.DeviceClasses[i]
		if d.Name == name || (name == "" && (d.Default || len(c.DeviceClasses) == 1)) {
			return d, true
		}
	}
	return nil, false
}
