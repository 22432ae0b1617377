package lvm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// segmentColumns are the columns Segments asks for.
const segmentColumns = "lv_name,seg_start_pe,seg_size_pe,stripes,stripe_size,segtype,seg_pe_ranges"

// PERange is a run of physical extents on one PV, in lvm's command-line form
// "PV:first-last" (both ends included).
type PERange struct {
	PV          string
	First, Last uint64
}

func (r PERange) String() string { return fmt.Sprintf("%s:%d-%d", r.PV, r.First, r.Last) }

// Len is the number of extents in the range.
func (r PERange) Len() uint64 { return r.Last - r.First + 1 }

// Segment is one segment of an LV as `lvs --segments` reports it.
type Segment struct {
	LV         string
	StartPE    uint64 // first logical extent of the segment
	SizePE     uint64 // its length in logical extents
	Stripes    int
	StripeSize uint64 // bytes; 0 when not striped
	SegType    string // linear, striped, thin, ...
	// Ranges is seg_pe_ranges: the physical extents under the segment, one range per stripe
	// (or area). Empty for segments that map no PV directly (thin, snapshot, ...).
	Ranges []PERange
}

type rawSegment struct {
	LVName     field `json:"lv_name"`
	StartPE    field `json:"seg_start_pe"`
	SizePE     field `json:"seg_size_pe"`
	Stripes    field `json:"stripes"`
	StripeSize field `json:"stripe_size"`
	SegType    field `json:"segtype"`
	PERanges   field `json:"seg_pe_ranges"`
}

// Segments reads the segments of vg/lv, or of every LV of vg (hidden ones included) when
// lv is "", with a command of its own (never the cached report):
// `lvs --reportformat json --units b --nosuffix -a --segments -o <columns> vg[/lv]`.
// A missing VG or LV is an *Error with Kind ErrNotFound.
func (c *Client) Segments(ctx context.Context, vg, lv string) ([]Segment, error) {
	ref := vg
	if lv != "" {
		var err error
		if ref, err = lvRef(vg, lv); err != nil {
			return nil, err
		}
	} else if err := checkName("VG", vg); err != nil {
		return nil, err
	}
	out, err := c.run(ctx, false, vg, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-a", "--segments", "-o", segmentColumns, ref)
	if err != nil {
		return nil, err
	}
	segs, err := ParseSegments(out)
	if err != nil {
		return nil, fmt.Errorf("parse lvm lvs --segments output: %w", err)
	}
	return segs, nil
}

// ParseSegments parses the JSON output of the command Segments runs.
func ParseSegments(data []byte) ([]Segment, error) {
	var raw struct {
		Report []struct {
			Seg []rawSegment `json:"seg"`
		} `json:"report"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	var p fieldParser
	var out []Segment
	for _, r := range raw.Report {
		for _, s := range r.Seg {
			seg := Segment{
				LV:         strings.Trim(string(s.LVName), "[]"),
				StartPE:    p.u64("seg_start_pe", s.StartPE),
				SizePE:     p.u64("seg_size_pe", s.SizePE),
				Stripes:    p.integer("stripes", s.Stripes, 0),
				StripeSize: p.u64("stripe_size", s.StripeSize),
				SegType:    string(s.SegType),
			}
			ranges, err := ParsePERanges(string(s.PERanges))
			if err != nil && p.err == nil {
				p.err = fmt.Errorf("field seg_pe_ranges=%q: %w", string(s.PERanges), err)
			}
			seg.Ranges = ranges
			out = append(out, seg)
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	return out, nil
}

// ParsePERanges parses seg_pe_ranges: "PV:first-last" items separated by spaces (lvm
// 2.03) or the report's list separator (","). A single extent may read "PV:n".
func ParsePERanges(s string) ([]PERange, error) {
	var out []PERange
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		i := strings.LastIndex(item, ":")
		if i <= 0 {
			return nil, fmt.Errorf("range %q: no PV:extents", item)
		}
		lo, hi, ok := strings.Cut(item[i+1:], "-")
		if !ok {
			hi = lo
		}
		first, err1 := strconv.ParseUint(lo, 10, 64)
		last, err2 := strconv.ParseUint(hi, 10, 64)
		// first-last must hold 1 to 2^64-1 extents, so that Len does not wrap to 0.
		if err1 != nil || err2 != nil || first > last || last-first == math.MaxUint64 {
			return nil, fmt.Errorf("range %q: bad extents", item)
		}
		out = append(out, PERange{PV: item[:i], First: first, Last: last})
	}
	return out, nil
}
