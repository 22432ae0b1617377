package lvm

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestSegments(t *testing.T) {
	f := newFake(t, result{stdout: readTestdata(t, "segments.json")})
	c := New(f.fe, Options{Config: testConfig})
	segs, err := c.Segments(context.Background(), "vgt", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lvs", "--config", testConfig, "--reportformat", "json", "--units", "b", "--nosuffix", "-a", "--segments", "-o", segmentColumns, "vgt"}
	if got := f.argv(0)[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("argv %q, want %q", got, want)
	}
	var v []Segment
	for _, s := range segs {
		if s.LV == "v" {
			v = append(v, s)
		}
	}
	if len(segs) != 13 || len(v) != 6 {
		t.Fatalf("%d segments, %d of v: %+v", len(segs), len(v), segs)
	}
	if want := (Segment{LV: "v", StartPE: 16, SizePE: 4, Stripes: 2, StripeSize: 65536, SegType: "striped",
		Ranges: []PERange{{PV: "/dev/loop0", First: 5, Last: 6}, {PV: "/dev/loop1", First: 5, Last: 6}}}); !reflect.DeepEqual(v[2], want) {
		t.Errorf("segment %+v, want %+v", v[2], want)
	}
	if got := v[3].Ranges[0]; got.String() != "/dev/loop0:12-12" || got.Len() != 1 {
		t.Errorf("single-extent range %v (len %d)", got, got.Len())
	}
	if v[5].SegType != "linear" || v[5].Stripes != 1 || v[5].StripeSize != 0 || v[5].Ranges[0].String() != "/dev/loop0:50-51" {
		t.Errorf("linear segment %+v", v[5])
	}
}

func TestSegmentsOfOneLV(t *testing.T) {
	f := newFake(t, result{stdout: `{"report":[{"seg":[{"lv_name":"[lvol0_pmspare]","seg_start_pe":"0","seg_size_pe":"1","stripes":"1","stripe_size":"0","segtype":"linear","seg_pe_ranges":"/dev/nvme0n1:7"}]}]}`},
		result{stderr: `  Failed to find logical volume "vg/nope"`, exit: 5})
	c := New(f.fe, Options{})
	segs, err := c.Segments(context.Background(), "vg", "lv")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.argv(0)[len(f.argv(0))-1]; got != "vg/lv" {
		t.Errorf("named %q, want vg/lv", got)
	}
	if len(segs) != 1 || segs[0].LV != "lvol0_pmspare" || !reflect.DeepEqual(segs[0].Ranges, []PERange{{PV: "/dev/nvme0n1", First: 7, Last: 7}}) {
		t.Errorf("segments %+v", segs)
	}
	if _, err := c.Segments(context.Background(), "vg", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("segments of a missing LV: %v, want ErrNotFound", err)
	}
}

func TestParsePERanges(t *testing.T) {
	for in, want := range map[string][]PERange{
		"":                            nil,
		"/dev/a:0-4 /dev/b:0-4":       {{"/dev/a", 0, 4}, {"/dev/b", 0, 4}},
		"/dev/a:0-4,/dev/b:10-14":     {{"/dev/a", 0, 4}, {"/dev/b", 10, 14}},
		"/dev/disk/by-id/x:part1:3-3": {{"/dev/disk/by-id/x:part1", 3, 3}},
		"/dev/mapper/crypt-a:9":       {{"/dev/mapper/crypt-a", 9, 9}},
	} {
		got, err := ParsePERanges(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParsePERanges(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"/dev/a", "/dev/a:4-2", "/dev/a:x-1", ":1-2"} {
		if got, err := ParsePERanges(bad); err == nil {
			t.Errorf("ParsePERanges(%q) = %v, want an error", bad, got)
		}
	}
}
