package lvm

// Fuzz targets (go test -fuzz, hack/fuzz.sh). `go test` runs each one on its seed corpus:
// the f.Add seeds below and testdata/fuzz/<target>/, which keeps every input a fuzzing run
// ever failed on.

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// addTestdata seeds f with every report captured in testdata/.
func addTestdata(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata reports: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseFullReport: ParseFullReport (and shellResult, which reads the same documents in
// an lvm shell) never panics, whatever the input. A report it accepts has LVM-shaped tags
// (non-empty, no ',' — the report's list separator), finite percentages, UTC creation
// times, consistent Clone/OnlyVG/LVByUUID views, and re-encoded in lvm's JSON format it
// parses to the very same Report.
func FuzzParseFullReport(f *testing.F) {
	addTestdata(f)
	for _, s := range []string{
		`{"report":[{"vg":[{"vg_name":"vg","vg_size":"1","vg_attr":"wz-pn-"}],"lv":[{"lv_name":"a","lv_uuid":"u","data_percent":"12.5%","lv_kernel_major":"-1","lv_time":"1700000000"}],"seg":[{"lv_uuid":"u","seg_start":"0","segtype":"thin","stripes":"1"}]}]}`,
		`{"report":[{"vg":[{"vg_name":"vg","vg_size":1,"vg_free":null,"pv_count":2}]}]}`,
		`{"report":[{"lv":[{"lv_tags":"a,,b=c,#d"}]}]}`,
		`{"report":[{"vg":[{"vg_size":"-1"}]}]}`,
		`{"report":[{"vg":[{"vg_size":{"a":1}}]}]}`,
		`{"report":[]}`, `{}`, `null`, `[]`, ``, `{"report":`,
		shellDoc(1, `[{"vg":[{"vg_name":"vg"}]}]`),
		shellDoc(5, "", `Volume group "vg" not found`),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := shellResult([]string{"fullreport"}, data); err != nil {
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("shellResult error %v is not an *Error", err)
			}
		}
		rep, err := ParseFullReport(data)
		if err != nil {
			if rep != nil {
				t.Fatalf("ParseFullReport returned a report with its error %v", err)
			}
			return
		}
		checkReport(t, rep)
		enc := encodeReport(t, rep)
		again, err := ParseFullReport(enc)
		if err != nil {
			t.Fatalf("re-encoded report does not parse: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(again, rep) {
			t.Fatalf("round trip changed the report:\n got %+v\nwant %+v\nvia %s", again, rep, enc)
		}
	})
}

func checkTags(t *testing.T, what string, tags []string) {
	t.Helper()
	for _, tag := range tags {
		if tag == "" || strings.Contains(tag, ",") {
			t.Fatalf("%s tag %q: empty or holds the list separator", what, tag)
		}
	}
}

// checkReport asserts the invariants of any report ParseFullReport accepts.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	for _, v := range rep.VGs {
		checkTags(t, "VG "+v.Name, v.Tags)
	}
	for _, p := range rep.PVs {
		checkTags(t, "PV "+p.Name, p.Tags)
	}
	for _, l := range rep.LVs {
		checkTags(t, "LV "+l.Name, l.Tags)
		for _, pc := range []float64{l.DataPercent, l.MetadataPercent} {
			if math.IsNaN(pc) || math.IsInf(pc, 0) {
				t.Fatalf("LV %s: percentage %v is not a finite number", l.Name, pc)
			}
		}
		if !l.Created.IsZero() && l.Created.Location() != time.UTC {
			t.Fatalf("LV %s: created %v is not in UTC", l.Name, l.Created)
		}
		if u := strings.ReplaceAll(l.UUID, "-", ""); u != "" {
			if got := rep.LVByUUID(l.UUID); got == nil || strings.ReplaceAll(got.UUID, "-", "") != u {
				t.Fatalf("LVByUUID(%q) = %+v", l.UUID, got)
			}
		}
	}
	c := rep.Clone()
	if !reflect.DeepEqual(c, rep) {
		t.Fatalf("Clone differs:\n got %+v\nwant %+v", c, rep)
	}
	for i := range c.LVs {
		if len(c.LVs[i].Tags) > 0 {
			c.LVs[i].Tags[0] = "changed-in-the-clone"
			if rep.LVs[i].Tags[0] == "changed-in-the-clone" {
				t.Fatal("Clone shares the LV tag slices")
			}
		}
	}
	for _, v := range rep.VGs {
		o := rep.OnlyVG(v.Name)
		if len(o.VGs) == 0 || len(o.LVs) != len(rep.LVsInVG(v.Name)) {
			t.Fatalf("OnlyVG(%q) = %+v", v.Name, o)
		}
		for _, l := range o.LVs {
			if l.VGName != v.Name {
				t.Fatalf("OnlyVG(%q) holds LV %s of VG %q", v.Name, l.Name, l.VGName)
			}
		}
		for _, p := range o.PVs {
			if p.VGName != v.Name || v.Name == "" {
				t.Fatalf("OnlyVG(%q) holds PV %s of VG %q", v.Name, p.Name, p.VGName)
			}
		}
	}
}

// encodeReport writes rep the way `lvm fullreport --reportformat json` would (every value
// a string), one value per field; attributes the parser reads (partial, missing, active)
// are expressed in the columns it reads them from.
func encodeReport(t *testing.T, rep *Report) []byte {
	t.Helper()
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	type obj = map[string]string
	var vgs, pvs, lvs, segs []obj
	for _, v := range rep.VGs {
		attr := "wz--n-"
		if v.Partial {
			attr = "wz-pn-"
		}
		vgs = append(vgs, obj{"vg_name": v.Name, "vg_uuid": v.UUID, "vg_size": u(v.Size), "vg_free": u(v.Free),
			"vg_extent_size": u(v.ExtentSize), "vg_extent_count": u(v.ExtentCount), "vg_free_count": u(v.FreeCount),
			"pv_count": strconv.Itoa(v.PVCount), "vg_missing_pv_count": strconv.Itoa(v.MissingPVCount),
			"vg_attr": attr, "vg_tags": strings.Join(v.Tags, ",")})
	}
	for _, p := range rep.PVs {
		missing := ""
		if p.Missing {
			missing = "missing"
		}
		pvs = append(pvs, obj{"pv_name": p.Name, "pv_uuid": p.UUID, "vg_name": p.VGName, "vg_uuid": p.VGUUID,
			"pv_size": u(p.Size), "pv_free": u(p.Free), "dev_size": u(p.DevSize), "pv_attr": "a--",
			"pv_missing": missing, "pv_mda_size": u(p.MDASize), "pv_tags": strings.Join(p.Tags, ",")})
	}
	seen := map[string]bool{}
	for _, l := range rep.LVs {
		active := ""
		if l.Active {
			active = "active"
		}
		created := ""
		if !l.Created.IsZero() {
			if y := l.Created.Year(); y >= 0 && y <= 9999 {
				created = l.Created.Format(lvTimeLayout)
			} else {
				created = strconv.FormatInt(l.Created.Unix(), 10)
			}
		}
		lvs = append(lvs, obj{"lv_uuid": l.UUID, "lv_name": l.Name, "vg_name": l.VGName, "vg_uuid": l.VGUUID,
			"lv_size": u(l.Size), "lv_attr": l.Attr, "lv_path": l.Path, "lv_dm_path": l.DMPath, "lv_active": active,
			"lv_kernel_major": strconv.Itoa(l.KernelMajor), "lv_kernel_minor": strconv.Itoa(l.KernelMinor),
			"pool_lv": l.Pool, "origin": l.Origin,
			"data_percent":     strconv.FormatFloat(l.DataPercent, 'g', -1, 64),
			"metadata_percent": strconv.FormatFloat(l.MetadataPercent, 'g', -1, 64),
			"lv_tags":          strings.Join(l.Tags, ","), "lv_time": created})
		if !seen[l.UUID] && (l.SegType != "" || l.Stripes != 0) {
			seen[l.UUID] = true
			segs = append(segs, obj{"lv_uuid": l.UUID, "seg_start": "0", "segtype": l.SegType, "stripes": strconv.Itoa(l.Stripes)})
		}
	}
	b, err := json.Marshal(map[string][]map[string][]obj{"report": {{"vg": vgs, "pv": pvs, "lv": lvs, "seg": segs}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseSegments: ParseSegments and ParsePERanges (both on the input) never panic. Every
// range they accept has First <= Last and a PV name, and PERange.String — what
// ExtendLVOnto passes to lvextend — parses back to the same range.
func FuzzParseSegments(f *testing.F) {
	addTestdata(f)
	for _, s := range []string{
		"/dev/nvme0n1:0-9 /dev/nvme1n1:0-9", "/dev/loop0:5", "/dev/loop0:5-4", "pv:1-2,pv2:3-4",
		"a:b:1-2", ":1-2", "pv:-1", "pv:18446744073709551615",
		`{"report":[{"seg":[{"lv_name":"[pool_tdata]","seg_start_pe":"0","seg_size_pe":"10","stripes":"2","stripe_size":"65536","segtype":"striped","seg_pe_ranges":"/dev/a:0-4 /dev/b:0-4"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if segs, err := ParseSegments(data); err == nil {
			for _, s := range segs {
				if strings.HasPrefix(s.LV, "[") || strings.HasSuffix(s.LV, "]") {
					t.Fatalf("LV name %q keeps lvm's brackets", s.LV)
				}
				checkRanges(t, s.Ranges)
			}
		}
		if rs, err := ParsePERanges(string(data)); err == nil {
			checkRanges(t, rs)
		}
	})
}

func checkRanges(t *testing.T, rs []PERange) {
	t.Helper()
	var words []string
	for _, r := range rs {
		if r.PV == "" || r.First > r.Last || r.Len() == 0 {
			t.Fatalf("range %+v: no PV, or an empty or inverted extent range (Len %d)", r, r.Len())
		}
		again, err := ParsePERanges(r.String())
		if err != nil || len(again) != 1 || again[0] != r {
			t.Fatalf("range %+v: String %q parses to %+v, %v", r, r.String(), again, err)
		}
		words = append(words, r.String())
	}
	if len(rs) > 0 {
		again, err := ParsePERanges(strings.Join(words, " "))
		if err != nil || !reflect.DeepEqual(again, rs) {
			t.Fatalf("ranges %+v: %q parses to %+v, %v", rs, strings.Join(words, " "), again, err)
		}
	}
}

// LVM's own rules (lib/misc/lvm-string.c: _validate_name, validate_tag; NAME_LEN 128 with
// the NUL; tags up to 1024 characters, lvm(8)), written independently of names.go.
var (
	specNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$`)
	specTagRE  = regexp.MustCompile(`^[A-Za-z0-9_+./=!:&#-]+$`)
)

// FuzzNames: ValidName and ValidTag agree with LVM's rules, and every valid tag survives
// the trip through a report (comma-joined lv_tags/vg_tags, split by the parser) and
// LV.Tag/VG.Tag lookups by key.
func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"localnvme-fast", "v62076645ceeb80779cec104e", "pool", "-x", ".", "..", "...", "a b", "é",
		"lnv.name=cHZjLTE", "lnv.fenced=bm9kZSBsb3N0", "localnvme.io/node=node-a", "#tag", "a,b",
		strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen+1),
		"lnv.name=" + strings.Repeat("A", MaxTagLen-len("lnv.name=")), strings.Repeat("t", MaxTagLen+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		wantName := specNameRE.MatchString(s) && len(s) <= MaxNameLen && s != "." && s != ".."
		if got := ValidName(s); got != wantName {
			t.Fatalf("ValidName(%q) = %v, LVM says %v", s, got, wantName)
		}
		if ValidName(s) {
			if err := checkName("LV", s); err != nil {
				t.Fatalf("checkName(%q): %v", s, err)
			}
			if _, ok := shellLine([]string{"lvs", s}); !ok {
				t.Fatalf("valid name %q cannot go to an lvm shell", s)
			}
		}
		wantTag := specTagRE.MatchString(s) && len(s) <= MaxTagLen
		if got := ValidTag(s); got != wantTag {
			t.Fatalf("ValidTag(%q) = %v, LVM says %v", s, got, wantTag)
		}
		if !ValidTag(s) {
			if _, err := addTagArgs(nil, []string{s}); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("addTagArgs(%q) = %v, want ErrInvalidArgument", s, err)
			}
			return
		}
		if args, err := addTagArgs(nil, []string{s}); err != nil || !reflect.DeepEqual(args, []string{"--addtag", s}) {
			t.Fatalf("addTagArgs(%q) = %q, %v", s, args, err)
		}
		if line, ok := shellLine([]string{"lvchange", "--addtag", s, "vg/lv"}); !ok || !reflect.DeepEqual(lvmSplit(line, 64), []string{"lvchange", "--addtag", s, "vg/lv"}) {
			t.Fatalf("tag %q: shell line %q, %v does not carry it", s, line, ok)
		}
		tags := []string{"first", s, "k=v", s}
		doc, err := json.Marshal(map[string]any{"report": []any{map[string]any{
			"vg": []any{map[string]string{"vg_name": "vg", "vg_tags": strings.Join(tags, ",")}},
			"lv": []any{map[string]string{"lv_name": "lv", "vg_name": "vg", "lv_tags": strings.Join(tags, ",")}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ParseFullReport(doc)
		if err != nil {
			t.Fatalf("report with tag %q: %v", s, err)
		}
		if !reflect.DeepEqual(rep.LVs[0].Tags, tags) || !reflect.DeepEqual(rep.VGs[0].Tags, tags) {
			t.Fatalf("tags %q came back as LV %q, VG %q", tags, rep.LVs[0].Tags, rep.VGs[0].Tags)
		}
		if !rep.LVs[0].HasTag(s) || !rep.VGs[0].HasTag(s) {
			t.Fatalf("HasTag(%q) is false", s)
		}
		if key, value, ok := strings.Cut(s, "="); ok {
			if got, found := rep.LVs[0].Tag(key); !found || got != value {
				t.Fatalf("LV.Tag(%q) = %q, %v; want %q", key, got, found, value)
			}
			if got, found := rep.VGs[0].Tag(key); !found || got != value {
				t.Fatalf("VG.Tag(%q) = %q, %v; want %q", key, got, found, value)
			}
		}
	})
}

// lvmSplit is lvm's lvm_split (tools/lvmcmdline.c, lvm 2.03) in Go: it splits a shell line
// at C-locale white space, takes a word that starts with ' or " up to the next same quote
// (no escapes), stops at a word that starts with #, and at max words.
func lvmSplit(line string, max int) []string {
	isSpace := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
	var argv []string
	b := 0
	for b < len(line) {
		for b < len(line) && isSpace(line[b]) {
			b++
		}
		if b == len(line) || line[b] == '#' {
			break
		}
		var quote byte
		if line[b] == '\'' || line[b] == '"' {
			quote = line[b]
			b++
		}
		e := b
		for e < len(line) && ((quote != 0 && line[e] != quote) || (quote == 0 && !isSpace(line[e]))) {
			e++
		}
		argv = append(argv, line[b:e])
		if e == len(line) {
			break
		}
		b = e + 1
		if len(argv) == max {
			break
		}
	}
	return argv
}

// FuzzShellLine: a command line shellLine builds for the lvm shell splits (as lvm_split
// does) into exactly the argv it was built from, with fewer than lvm's MAX_ARGS (64) words;
// shellLine refuses only what the shell cannot carry (a newline, CR or NUL, a word with
// both quote kinds, more than 63 words). The fuzzer's argv is the input split at NUL bytes.
func FuzzShellLine(f *testing.F) {
	for _, s := range []string{
		"lvs\x00-o\x00lv_name\x00vg/lv",
		"lvs\x00--config\x00a/b=\"x y\"",
		"lvs\x00it's", "lvs\x00#tag", "lvs\x00", "lvs\x00'\"", "lvs\x00a\nb", "lvs\x00a\rb",
		"lvchange\x00--addtag\x00lnv.name=cHZjLTE\x00--deltag\x00lnv.mkfs=ext4\x00localnvme-fast/v62076645ceeb80779cec104e",
		"lvs\x00\v\f", "lvs\x00'", "lvs\x00\"", "lvs\x00a'b\"c",
		strings.Repeat("x\x00", 62) + "x", strings.Repeat("x\x00", 63) + "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv := strings.Split(s, "\x00")
		line, ok := shellLine(argv)
		if !ok {
			carriable := len(argv) <= maxShellArgs
			for _, a := range argv {
				if strings.ContainsAny(a, "\n\r") || (strings.Contains(a, "'") && strings.Contains(a, `"`)) {
					carriable = false
				}
			}
			if carriable {
				t.Fatalf("shellLine refused %q, which the shell can carry", argv)
			}
			return
		}
		if len(argv) > maxShellArgs {
			t.Fatalf("shellLine took %d words; the shell refuses 64 or more", len(argv))
		}
		if strings.ContainsAny(line, "\n\r\x00") {
			t.Fatalf("line %q holds a line end or NUL", line)
		}
		if got := lvmSplit(line, 64); !reflect.DeepEqual(got, argv) {
			t.Fatalf("shellLine(%q) = %q, which lvm splits into %q", argv, line, got)
		}
	})
}
