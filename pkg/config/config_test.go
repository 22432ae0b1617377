package config

import (
	"strings"
	"testing"
)

const valid = `
deviceClasses:
- name: fast
  volumeGroup: lnv-fast
  type: thick
  default: true
  stripes: 2
  stripeSize: 64Ki
  reserve: 1Gi
  devices:
  - serial: S1
  - identity: eui64:00a0b0c0d0e0f001
- name: thin
  volumeGroup: lnv-thin
  type: thin
  fsType: xfs
  thinPool:
    overprovisionRatio: 4
  devices:
  - path: /dev/nvme2n1
`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	fast, ok := c.Class("")
	if !ok || fast.Name != "fast" {
		t.Fatalf("default class = %v, %v", fast, ok)
	}
	if fast.StripeSize != 64<<10 || fast.Reserve != 1<<30 || fast.MetadataSize != DefaultMetadataSize || fast.FSType != "ext4" {
		t.Errorf("fast class parsed as %+v", fast)
	}
	thin, _ := c.Class("thin")
	if thin.ThinPool.Name != DefaultThinPoolName || thin.ThinPool.SizePercent != DefaultThinPoolPercent || thin.ThinPool.OverprovisionRatio != 4 || thin.Stripes != 1 {
		t.Errorf("thin defaults: %+v %+v", thin, thin.ThinPool)
	}
	if _, ok := c.Class("nope"); ok {
		t.Error("unknown class found")
	}
}

func TestParseInvalid(t *testing.T) {
	base := func(class string) string { return "deviceClasses:\n" + class }
	tests := []struct {
		name, yaml, want string
	}{
		{"no classes", "deviceClasses: []", "no deviceClasses"},
		{"unknown field", base("- name: a\n  volumeGroup: vg\n  type: thick\n  devicez: []\n"), "unknown field"},
		{"bad type", base("- name: a\n  volumeGroup: vg\n  type: raid\n  devices: [{serial: S}]\n"), `type must be "thick" or "thin"`},
		{"bad class name", base("- name: A_b\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: S}]\n"), "name must match"},
		{"long class name", base("- name: " + strings.Repeat("a", 21) + "\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: S}]\n"), "at most 20"},
		{"bad vg", base("- name: a\n  volumeGroup: 'vg/x'\n  type: thick\n  devices: [{serial: S}]\n"), "not a valid LVM name"},
		{"no devices", base("- name: a\n  volumeGroup: vg\n  type: thick\n"), "no devices listed"},
		{"two selector fields", base("- name: a\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: S, path: /dev/x}]\n"), "exactly one of"},
		{"stripes > devices", base("- name: a\n  volumeGroup: vg\n  type: thick\n  stripes: 3\n  devices: [{serial: S}]\n"), "stripes=3 needs"},
		{"stripe size not power of two", base("- name: a\n  volumeGroup: vg\n  type: thick\n  stripeSize: 3Ki\n  devices: [{serial: S}]\n"), "power of two"},
		{"bad size", base("- name: a\n  volumeGroup: vg\n  type: thick\n  reserve: lots\n  devices: [{serial: S}]\n"), "invalid size"},
		{"thinPool on thick", base("- name: a\n  volumeGroup: vg\n  type: thick\n  thinPool: {name: p}\n  devices: [{serial: S}]\n"), "only valid for type thin"},
		{"ratio below 1", base("- name: a\n  volumeGroup: vg\n  type: thin\n  thinPool: {overprovisionRatio: 0.5}\n  devices: [{serial: S}]\n"), "overprovisionRatio must be >= 1"},
		{"bad fs", base("- name: a\n  volumeGroup: vg\n  type: thick\n  fsType: btrfs\n  devices: [{serial: S}]\n"), "fsType must be ext4 or xfs"},
		{"duplicate", base("- name: a\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: S}]\n- name: a\n  volumeGroup: vg2\n  type: thick\n  devices: [{serial: T}]\n"), "duplicate class name"},
		{"shared vg", base("- name: a\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: S}]\n- name: b\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: T}]\n"), "used by two classes"},
		{"shared device", base("- name: a\n  volumeGroup: vg\n  type: thick\n  devices: [{serial: S}]\n- name: b\n  volumeGroup: vg2\n  type: thick\n  devices: [{serial: S}]\n"), "also listed by class a"},
		{"two defaults", base("- name: a\n  volumeGroup: vg\n  type: thick\n  default: true\n  devices: [{serial: S}]\n- name: b\n  volumeGroup: vg2\n  type: thick\n  default: true\n  devices: [{serial: T}]\n"), "2 classes are marked default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"64Mi", 64 << 20, true}, {"3Gi", 3 << 30, true}, {"2G", 2e9, true},
		{"1Ti", 1 << 40, true}, {"10k", 10000, true}, {"", 0, false}, {"-1", 0, false}, {"1.5Gi", 0, false},
		{"99999999999999Ti", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
