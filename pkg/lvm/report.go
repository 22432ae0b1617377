package lvm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Columns requested from `lvm fullreport` for each sub-report.
const (
	vgColumns  = "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,vg_missing_pv_count,vg_attr,vg_tags"
	pvColumns  = "pv_name,pv_uuid,vg_name,vg_uuid,pv_size,pv_free,dev_size,pv_attr,pv_missing,pv_mda_size,pv_tags"
	lvColumns  = "lv_uuid,lv_name,vg_name,vg_uuid,lv_size,lv_attr,lv_path,lv_dm_path,lv_active,lv_kernel_major,lv_kernel_minor,pool_lv,origin,data_percent,metadata_percent,lv_tags,lv_time"
	segColumns = "lv_uuid,seg_start,segtype,stripes,stripe_size"
)

// fullReportArgs are the arguments following `fullreport [--config X]`.
// fullreport also emits orphan PVs (as a separate report entry with only a
// "pv" section), so no additional pvs call is needed.
func fullReportArgs() []string {
	return []string{
		"--reportformat", "json",
		"--units", "b",
		"--nosuffix",
		"--configreport", "vg", "-o", vgColumns,
		"--configreport", "pv", "-o", pvColumns,
		"--configreport", "lv", "-o", lvColumns,
		"--configreport", "seg", "-o", segColumns,
		"--configreport", "pvseg", "-o,",
	}
}

// Report is a snapshot of the LVM state.
type Report struct {
	VGs []VG
	PVs []PV // all PVs including orphans (VGName "" for orphans)
	LVs []LV // visible LVs only (no hidden sub-LVs such as pool _tdata/_tmeta)
}

// VG is a volume group.
type VG struct {
	Name, UUID              string
	Size, Free, ExtentSize  uint64 // bytes
	ExtentCount, FreeCount  uint64
	PVCount, MissingPVCount int
	Partial                 bool // vg_attr[3]=='p'
	Tags                    []string
}

// PV is a physical volume.
type PV struct {
	Name                 string // device path, e.g. /dev/nvme0n1; "[unknown]" when missing
	UUID, VGName, VGUUID string
	Size, Free, DevSize  uint64
	Missing              bool // pv_attr[2]=='m' or pv_missing
	MDASize              uint64
	Tags                 []string
}

// LV is a logical volume.
type LV struct {
	Name, UUID, VGName, VGUUID   string
	Size                         uint64
	Attr                         string // lv_attr
	SegType                      string // segtype of the first segment (linear, striped, thin, thin-pool, ...)
	Pool                         string // pool_lv (thin LVs)
	Origin                       string // origin (snapshots)
	Path                         string // lv_path, may be "" (see DevicePath)
	DMPath                       string // lv_dm_path
	Active                       bool
	KernelMajor, KernelMinor     int // -1 when inactive
	DataPercent, MetadataPercent float64
	Stripes                      int // stripes of the first segment
	Tags                         []string
	// Created is lv_time, the LV's creation time recorded in the VG metadata; zero when
	// lvm reports none or in a format other than the default (see parseLVTime).
	Created time.Time
}

func (l LV) attr(i int) byte { //nolint:unparam // lv_attr by position; the callers read position 0 today
	if i < len(l.Attr) {
		return l.Attr[i]
	}
	return 0
}

// IsThinPool reports whether the LV is a thin pool (attr[0]=='t').
func (l LV) IsThinPool() bool { return l.attr(0) == 't' }

// IsThin reports whether the LV is a thin volume (attr[0]=='V').
func (l LV) IsThin() bool { return l.attr(0) == 'V' }

// IsCOWSnapshot reports whether the LV is a (possibly merging) COW snapshot.
func (l LV) IsCOWSnapshot() bool { a := l.attr(0); return a == 's' || a == 'S' }

// IsOrigin reports whether the LV is the origin of COW snapshots.
func (l LV) IsOrigin() bool { a := l.attr(0); return a == 'o' || a == 'O' }

// DevicePath returns lv_path, or /dev/<vg>/<name> when lvm reported none.
func (l LV) DevicePath() string {
	if l.Path != "" {
		return l.Path
	}
	return "/dev/" + l.VGName + "/" + l.Name
}

// Tag returns the value of the first tag "key=value".
func (l LV) Tag(key string) (string, bool) {
	return findTag(l.Tags, key)
}

// Tag returns the value of the first VG tag "key=value".
func (v VG) Tag(key string) (string, bool) {
	return findTag(v.Tags, key)
}

func findTag(tags []string, key string) (string, bool) {
	prefix := key + "="
	for _, t := range tags {
		if strings.HasPrefix(t, prefix) {
			return t[len(prefix):], true
		}
	}
	return "", false
}

// HasTag reports whether the LV carries exactly the tag t.
func (l LV) HasTag(t string) bool { return hasTag(l.Tags, t) }

// HasTag reports whether the VG carries exactly the tag t.
func (v VG) HasTag(t string) bool { return hasTag(v.Tags, t) }

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

// VGByName returns the VG or nil.
func (r *Report) VGByName(name string) *VG {
	for i := range r.VGs {
		if r.VGs[i].Name == name {
			return &r.VGs[i]
		}
	}
	return nil
}

// LVByUUID returns the LV with the given UUID (dashes are ignored) or nil.
func (r *Report) LVByUUID(uuid string) *LV {
	want := strings.ReplaceAll(uuid, "-", "")
	if want == "" {
		return nil
	}
	for i := range r.LVs {
		if strings.ReplaceAll(r.LVs[i].UUID, "-", "") == want {
			return &r.LVs[i]
		}
	}
	return nil
}

// LVByName returns the LV vg/name or nil.
func (r *Report) LVByName(vg, name string) *LV {
	for i := range r.LVs {
		if r.LVs[i].VGName == vg && r.LVs[i].Name == name {
			return &r.LVs[i]
		}
	}
	return nil
}

// LVsInVG returns the LVs of a VG.
func (r *Report) LVsInVG(vg string) []LV {
	var out []LV
	for _, l := range r.LVs {
		if l.VGName == vg {
			out = append(out, l)
		}
	}
	return out
}

// PVsInVG returns the PVs of a VG; PVsInVG("") returns the orphan PVs.
func (r *Report) PVsInVG(vg string) []PV {
	var out []PV
	for _, p := range r.PVs {
		if p.VGName == vg {
			out = append(out, p)
		}
	}
	return out
}

// OnlyVG returns a copy of r reduced to one VG: the VG, its PVs and its LVs (empty when r
// has no VG of that name).
func (r *Report) OnlyVG(vg string) *Report {
	out := &Report{}
	if r == nil {
		return out
	}
	for _, v := range r.VGs {
		if v.Name == vg {
			out.VGs = append(out.VGs, v)
		}
	}
	for _, p := range r.PVs {
		if p.VGName == vg && vg != "" {
			out.PVs = append(out.PVs, p)
		}
	}
	for _, l := range r.LVs {
		if l.VGName == vg {
			out.LVs = append(out.LVs, l)
		}
	}
	return out.Clone()
}

// Clone returns a deep copy of r.
func (r *Report) Clone() *Report {
	if r == nil {
		return nil
	}
	out := &Report{
		VGs: append([]VG(nil), r.VGs...),
		PVs: append([]PV(nil), r.PVs...),
		LVs: append([]LV(nil), r.LVs...),
	}
	for i := range out.VGs {
		out.VGs[i].Tags = append([]string(nil), out.VGs[i].Tags...)
	}
	for i := range out.PVs {
		out.PVs[i].Tags = append([]string(nil), out.PVs[i].Tags...)
	}
	for i := range out.LVs {
		out.LVs[i].Tags = append([]string(nil), out.LVs[i].Tags...)
	}
	return out
}

// field is a JSON report value. lvm's "json" format quotes every value; the
// "json_std" format uses numbers and null. Both are accepted.
type field string

func (f *field) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = field(s)
	default:
		*f = field(b)
	}
	return nil
}

type rawVG struct {
	Name           field `json:"vg_name"`
	UUID           field `json:"vg_uuid"`
	Size           field `json:"vg_size"`
	Free           field `json:"vg_free"`
	ExtentSize     field `json:"vg_extent_size"`
	ExtentCount    field `json:"vg_extent_count"`
	FreeCount      field `json:"vg_free_count"`
	PVCount        field `json:"pv_count"`
	MissingPVCount field `json:"vg_missing_pv_count"`
	Attr           field `json:"vg_attr"`
	Tags           field `json:"vg_tags"`
}

type rawPV struct {
	Name    field `json:"pv_name"`
	UUID    field `json:"pv_uuid"`
	VGName  field `json:"vg_name"`
	VGUUID  field `json:"vg_uuid"`
	Size    field `json:"pv_size"`
	Free    field `json:"pv_free"`
	DevSize field `json:"dev_size"`
	Attr    field `json:"pv_attr"`
	Missing field `json:"pv_missing"`
	MDASize field `json:"pv_mda_size"`
	Tags    field `json:"pv_tags"`
}

type rawLV struct {
	UUID            field `json:"lv_uuid"`
	Name            field `json:"lv_name"`
	VGName          field `json:"vg_name"`
	VGUUID          field `json:"vg_uuid"`
	Size            field `json:"lv_size"`
	Attr            field `json:"lv_attr"`
	Path            field `json:"lv_path"`
	DMPath          field `json:"lv_dm_path"`
	Active          field `json:"lv_active"`
	KernelMajor     field `json:"lv_kernel_major"`
	KernelMinor     field `json:"lv_kernel_minor"`
	Pool            field `json:"pool_lv"`
	Origin          field `json:"origin"`
	DataPercent     field `json:"data_percent"`
	MetadataPercent field `json:"metadata_percent"`
	Tags            field `json:"lv_tags"`
	Time            field `json:"lv_time"`
}

type rawSeg struct {
	LVUUID   field `json:"lv_uuid"`
	SegStart field `json:"seg_start"`
	SegType  field `json:"segtype"`
	Stripes  field `json:"stripes"`
}

type rawFullReport struct {
	Report []struct {
		VG  []rawVG  `json:"vg"`
		PV  []rawPV  `json:"pv"`
		LV  []rawLV  `json:"lv"`
		Seg []rawSeg `json:"seg"`
	} `json:"report"`
}

// fieldParser converts report values, remembering the first error.
type fieldParser struct{ err error }

func (p *fieldParser) fail(name string, v field, err error) {
	if p.err == nil {
		p.err = fmt.Errorf("field %s=%q: %w", name, string(v), err)
	}
}

func (p *fieldParser) u64(name string, v field) uint64 {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		p.fail(name, v, err)
	}
	return n
}

func (p *fieldParser) integer(name string, v field, empty int) int {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return empty
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		p.fail(name, v, err)
	}
	return n
}

func (p *fieldParser) percent(name string, v field) float64 {
	s := strings.TrimSuffix(strings.TrimSpace(string(v)), "%")
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		// ParseFloat takes "NaN" and "Inf": a pool "NaN% full" would never be full.
		err = errors.New("not a finite number")
	}
	if err != nil {
		p.fail(name, v, err)
	}
	return f
}

func splitTags(v field) []string {
	if v == "" {
		return nil
	}
	var out []string
	for _, t := range strings.Split(string(v), ",") {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// lvTimeLayout is lvm's default report/time_format, "%Y-%m-%d %T %z".
const lvTimeLayout = "2006-01-02 15:04:05 -0700"

// parseLVTime reads lv_time in the default format, or as unix seconds (time_format "%s").
// Anything else is the zero time, never an error: an lvm.conf with another time_format must
// not fail every report for an informational column.
func parseLVTime(v field) time.Time {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(lvTimeLayout, s); err == nil {
		return t.UTC()
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0).UTC()
	}
	return time.Time{}
}

type firstSeg struct {
	start   uint64
	segType string
	stripes int
}

// ParseFullReport parses the JSON output of the fullreport command built by
// this package (--units b --nosuffix, the column sets above).
func ParseFullReport(data []byte) (*Report, error) {
	var raw rawFullReport
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	var p fieldParser
	rep := &Report{}
	segs := map[string]firstSeg{}
	for _, r := range raw.Report {
		for _, s := range r.Seg {
			start := p.u64("seg_start", s.SegStart)
			cur, ok := segs[string(s.LVUUID)]
			if ok && cur.start <= start {
				continue
			}
			segs[string(s.LVUUID)] = firstSeg{start: start, segType: string(s.SegType), stripes: p.integer("stripes", s.Stripes, 0)}
		}
	}
	for _, r := range raw.Report {
		for _, v := range r.VG {
			rep.VGs = append(rep.VGs, VG{
				Name:           string(v.Name),
				UUID:           string(v.UUID),
				Size:           p.u64("vg_size", v.Size),
				Free:           p.u64("vg_free", v.Free),
				ExtentSize:     p.u64("vg_extent_size", v.ExtentSize),
				ExtentCount:    p.u64("vg_extent_count", v.ExtentCount),
				FreeCount:      p.u64("vg_free_count", v.FreeCount),
				PVCount:        p.integer("pv_count", v.PVCount, 0),
				MissingPVCount: p.integer("vg_missing_pv_count", v.MissingPVCount, 0),
				Partial:        len(v.Attr) > 3 && v.Attr[3] == 'p',
				Tags:           splitTags(v.Tags),
			})
		}
		for _, v := range r.PV {
			rep.PVs = append(rep.PVs, PV{
				Name:    string(v.Name),
				UUID:    string(v.UUID),
				VGName:  string(v.VGName),
				VGUUID:  string(v.VGUUID),
				Size:    p.u64("pv_size", v.Size),
				Free:    p.u64("pv_free", v.Free),
				DevSize: p.u64("dev_size", v.DevSize),
				Missing: (len(v.Attr) > 2 && v.Attr[2] == 'm') || v.Missing == "missing",
				MDASize: p.u64("pv_mda_size", v.MDASize),
				Tags:    splitTags(v.Tags),
			})
		}
		for _, v := range r.LV {
			l := LV{
				Name:            string(v.Name),
				UUID:            string(v.UUID),
				VGName:          string(v.VGName),
				VGUUID:          string(v.VGUUID),
				Size:            p.u64("lv_size", v.Size),
				Attr:            string(v.Attr),
				Pool:            string(v.Pool),
				Origin:          string(v.Origin),
				Path:            string(v.Path),
				DMPath:          string(v.DMPath),
				Active:          v.Active == "active" || (len(v.Attr) > 4 && v.Attr[4] == 'a'),
				KernelMajor:     p.integer("lv_kernel_major", v.KernelMajor, -1),
				KernelMinor:     p.integer("lv_kernel_minor", v.KernelMinor, -1),
				DataPercent:     p.percent("data_percent", v.DataPercent),
				MetadataPercent: p.percent("metadata_percent", v.MetadataPercent),
				Tags:            splitTags(v.Tags),
				Created:         parseLVTime(v.Time),
			}
			if s, ok := segs[l.UUID]; ok {
				l.SegType, l.Stripes = s.segType, s.stripes
			}
			rep.LVs = append(rep.LVs, l)
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	return rep, nil
}
