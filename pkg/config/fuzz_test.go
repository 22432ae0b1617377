package config

// Fuzz target (go test -fuzz, hack/fuzz.sh). `go test` runs it on its seed corpus: the
// f.Add seeds below and testdata/fuzz/FuzzParse/, which keeps every input a fuzzing run
// ever failed on.

import (
	"encoding/json"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics. A configuration it accepts satisfies everything Validate
// promises (checked here field by field, after defaults), validates again, has a class for
// Class("") when it has one class or a default, and written back out as JSON it parses to
// the same configuration (defaults are idempotent, sizes and ratios survive the trip).
func FuzzParse(f *testing.F) {
	for _, file := range []string{"deploy/config/device-classes.yaml", "deploy/base/device-classes.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(file)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		valid,
		"deviceClasses: []",
		"deviceClasses:\n- name: a\n  volumeGroup: vg\n  type: thin\n  devices: [{allEmpty: true, minSize: 1Gi, maxSize: 2T}]\n",
		"deviceClasses:\n- name: a\n  volumeGroup: vg\n  type: thick\n  stripes: 3\n  devices: [{modelPattern: 'QEMU*'}, {serialPattern: '[a-'}]\n",
		"deviceClasses:\n- name: a\n  volumeGroup: vg\n  type: thin\n  thinPool: {overprovisionRatio: 1.5, sizePercent: 100}\n  devices: [{identity: 'nguid:00'}]\n",
		`{"deviceClasses":[{"name":"a","volumeGroup":"vg","type":"thick","reserve":"18446744073709551615","devices":[{"serial":"S"}]}]}`,
		"deviceClasses:\n- name: a\n  volumeGroup: vg\n  type: thick\n  reserve: 99999999999999Ti\n  devices: [{serial: S}]\n",
		"deviceClasses:\n- {name: a, volumeGroup: vg, type: thick, devices: [{serial: S}], metadataSize: 1Mi, stripeSize: 4Ki}\n",
		"- not a map", "deviceClasses: {a: 1}", "", "{}", "null", "\t",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a configuration with its error %v", err)
			}
			return
		}
		checkConfig(t, c)
		if err := c.Validate(); err != nil {
			t.Fatalf("an accepted configuration does not validate again: %v", err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted configuration cannot be written out: %v\n%+v", err, c)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("written out, an accepted configuration no longer parses: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the configuration:\n got %+v\nwant %+v\nvia %s", again, c, out)
		}
	})
}

// checkConfig asserts, independently of Validate's code, what a parsed configuration holds.
func checkConfig(t *testing.T, c *Config) {
	t.Helper()
	if len(c.DeviceClasses) == 0 {
		t.Fatal("accepted a configuration without classes")
	}
	names, vgs, defaults := map[string]bool{}, map[string]bool{}, 0
	for _, d := range c.DeviceClasses {
		switch {
		case !classNameRE.MatchString(d.Name) || len(d.Name) > MaxClassNameLen || names[d.Name]:
			t.Fatalf("class name %q: invalid, too long or duplicate", d.Name)
		case !lvmNameRE.MatchString(d.VolumeGroup) || len(d.VolumeGroup) > 64 || vgs[d.VolumeGroup]:
			t.Fatalf("class %s: volume group %q invalid or shared", d.Name, d.VolumeGroup)
		case len(d.Devices) == 0:
			t.Fatalf("class %s: no devices", d.Name)
		case d.Stripes < 1 || d.Stripes > 64:
			t.Fatalf("class %s: stripes %d", d.Name, d.Stripes)
		case d.StripeSize != 0 && (d.StripeSize < 4096 || d.StripeSize&(d.StripeSize-1) != 0):
			t.Fatalf("class %s: stripe size %d", d.Name, d.StripeSize)
		case d.MetadataSize < 1<<20:
			t.Fatalf("class %s: metadata size %d", d.Name, d.MetadataSize)
		case d.FSType != "ext4" && d.FSType != "xfs":
			t.Fatalf("class %s: fs type %q", d.Name, d.FSType)
		}
		names[d.Name], vgs[d.VolumeGroup] = true, true
		if d.Default {
			defaults++
		}
		switch d.Type {
		case TypeThick:
			if d.ThinPool != nil {
				t.Fatalf("thick class %s has a thin pool", d.Name)
			}
		case TypeThin:
			p := d.ThinPool
			if p == nil {
				t.Fatalf("thin class %s has no pool", d.Name)
			}
			r := p.OverprovisionRatio
			if !lvmNameRE.MatchString(p.Name) || p.SizePercent < 1 || p.SizePercent > 100 ||
				math.IsNaN(r) || math.IsInf(r, 0) || r < 1 {
				t.Fatalf("thin class %s: pool %+v", d.Name, p)
			}
		default:
			t.Fatalf("class %s: type %q", d.Name, d.Type)
		}
		for _, s := range d.Devices {
			set := 0
			for _, v := range []string{s.Identity, s.Serial, s.Path} {
				if v != "" {
					set++
				}
			}
			if s.IsRule() == (set == 1) || set > 1 {
				t.Fatalf("class %s: selector %+v is neither exactly one name nor a rule", d.Name, s)
			}
			for _, pat := range []string{s.ModelPattern, s.SerialPattern} {
				if _, err := path.Match(pat, ""); err != nil {
					t.Fatalf("class %s: pattern %q: %v", d.Name, pat, err)
				}
			}
			if s.MaxSize != 0 && s.MinSize > s.MaxSize {
				t.Fatalf("class %s: minSize %d > maxSize %d", d.Name, s.MinSize, s.MaxSize)
			}
		}
	}
	if defaults > 1 {
		t.Fatalf("%d default classes", defaults)
	}
	if d, ok := c.Class(""); (defaults == 1 || len(c.DeviceClasses) == 1) != ok || (ok && !d.Default && len(c.DeviceClasses) != 1) {
		t.Fatalf("Class(\"\") = %+v, %v with %d classes, %d default", d, ok, len(c.DeviceClasses), defaults)
	}
}
