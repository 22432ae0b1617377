package volume

// Fuzz targets (go test -fuzz, hack/fuzz.sh). `go test` runs each one on its seed corpus:
// the f.Add seeds below and testdata/fuzz/<target>/, which keeps every input a fuzzing run
// ever failed on.

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/lvm"
)

const (
	fuzzVGUUID = "mYrTWN-KOjd-CVdN-3AEh-zyqy-mwlO-Jqzuz2"
	fuzzLVUUID = "ka83iu-i682-Is2U-Lygm-widS-K5wr-g8SIqx"
)

// dashUUID writes a 32-character UUID the way LVM prints it (6-4-4-4-4-4-6).
func dashUUID(u string) string {
	return u[0:6] + "-" + u[6:10] + "-" + u[10:14] + "-" + u[14:18] + "-" + u[18:22] + "-" + u[22:26] + "-" + u[26:32]
}

// FuzzParseID: ParseID never panics. An ID it accepts is exactly one kind (volume or
// snapshot), has one spelling (String gives back the input), parses again to the same
// value, is the ID NewID builds from LVM's dashed UUIDs, names an LVM-valid LV, and fits
// CSI's 128 bytes whenever its class name fits config.MaxClassNameLen.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		NewID("thick", fuzzVGUUID, "v62076645ceeb80779cec104e", fuzzLVUUID).String(),
		NewID("thin-1", fuzzVGUUID, "s62076645ceeb80779cec104e", fuzzLVUUID).String(),
		NewID(strings.Repeat("c", config.MaxClassNameLen), fuzzVGUUID, "v62076645ceeb80779cec104e", fuzzLVUUID).String(),
		"thick." + fuzzVGUUID + ".v62076645ceeb80779cec104e." + fuzzLVUUID,
		NewID("thick", fuzzVGUUID, "z62076645ceeb80779cec104e", fuzzLVUUID).String(),
		NewID("Thick", fuzzVGUUID, "v62076645ceeb80779cec104e", fuzzLVUUID).String(),
		NewID("thick", fuzzVGUUID, "root", fuzzLVUUID).String(),
		"", ".", "...", "....", "fake-volume-id", "a.b.c.d", "a.b.c.d.e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s, "")
		vol, verr := ParseID(s, KindVolume)
		snap, serr := ParseID(s, KindSnapshot)
		if err != nil {
			if verr == nil || serr == nil {
				t.Fatalf("ParseID(%q) fails (%v) but a kind-restricted parse accepts it", s, err)
			}
			return
		}
		switch {
		case (verr == nil) == (serr == nil):
			t.Fatalf("ParseID(%q): volume parse %v, snapshot parse %v; want exactly one", s, verr, serr)
		case verr == nil && (vol != id || id.Kind() != KindVolume):
			t.Fatalf("ParseID(%q, volume) = %+v, want %+v", s, vol, id)
		case serr == nil && (snap != id || id.Kind() != KindSnapshot):
			t.Fatalf("ParseID(%q, snapshot) = %+v, want %+v", s, snap, id)
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q).String() = %q", s, id.String())
		}
		if again, err := ParseID(id.String(), id.Kind()); err != nil || again != id {
			t.Fatalf("re-parse of %q: %+v, %v", s, again, err)
		}
		if len(id.VGUUID) != uuidLen || len(id.LVUUID) != uuidLen || len(id.LVName) != 1+nameHashHexLen {
			t.Fatalf("ID %q has fields of the wrong length: %+v", s, id)
		}
		if got := NewID(id.Class, dashUUID(id.VGUUID), id.LVName, dashUUID(id.LVUUID)); got != id {
			t.Fatalf("NewID from the dashed UUIDs = %+v, want %+v", got, id)
		}
		if want := "LVM-" + id.VGUUID + id.LVUUID; id.DMUUID() != want || len(want) != 4+2*uuidLen {
			t.Fatalf("DMUUID = %q, want %q", id.DMUUID(), want)
		}
		if !lvm.ValidName(id.LVName) {
			t.Fatalf("ID %q names an LV LVM refuses", s)
		}
		if len(id.Class) <= config.MaxClassNameLen && len(s) > 112 {
			t.Fatalf("ID %q is %d bytes with a %d-character class; the budget is 112", s, len(s), len(id.Class))
		}
	})
}

// lvmReserved reports whether LVM refuses name for a new LV: reserved prefixes and
// substrings of its internal LVs (lib/misc/lvm-string.c, apply_lvname_restrictions).
func lvmReserved(name string) bool {
	if strings.HasPrefix(name, "snapshot") || strings.HasPrefix(name, "pvmove") {
		return true
	}
	for _, s := range []string{"_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog",
		"_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig", "_pmspare", "_vorigin"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// FuzzLVName: for any CSI request name, LVName gives a 25-character name LVM accepts (not
// reserved), which matches the ID grammar, starts with the kind letter and carries the same
// hash for both kinds; the thick expand's scratch name (z + hash) is as valid; an ID built
// on it parses back to itself.
func FuzzLVName(f *testing.F) {
	for _, s := range []string{"pvc-1", "", "snapshot", "pvmove", strings.Repeat("é", 64), "snapshot-" + strings.Repeat("x", MaxRequestNameLen)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, name string, snapshot bool) {
		kind, other := KindVolume, KindSnapshot
		if snapshot {
			kind, other = KindSnapshot, KindVolume
		}
		n := LVName(kind, name)
		if len(n) != 1+nameHashHexLen || !lvNameRE.MatchString(n) || Kind(n[:1]) != kind {
			t.Fatalf("LVName(%s, %q) = %q", kind, name, n)
		}
		if n != LVName(kind, name) {
			t.Fatalf("LVName(%s, %q) is not deterministic", kind, name)
		}
		if o := LVName(other, name); o[1:] != n[1:] {
			t.Fatalf("LVName(%s) = %q and LVName(%s) = %q hash differently", kind, n, other, o)
		}
		z := scratchName(n)
		for _, lv := range []string{n, z} {
			if !lvm.ValidName(lv) || lvmReserved(lv) {
				t.Fatalf("LV name %q (request name %q) is not a name LVM accepts for a new LV", lv, name)
			}
		}
		if z[0] != 'z' || z[1:] != n[1:] {
			t.Fatalf("scratchName(%q) = %q", n, z)
		}
		id := NewID("fast", fuzzVGUUID, n, fuzzLVUUID)
		if got, err := ParseID(id.String(), kind); err != nil || got != id {
			t.Fatalf("ID %q on LV %q: %+v, %v", id, n, got, err)
		}
	})
}

// FuzzVolumeTags: the tags the engine writes at create, snapshot and fence time are valid
// LVM tags whenever the request name fits MaxRequestNameLen (and never when it does not),
// for any fence reason, and they come back through an LVM report (lvm.ParseFullReport, tags
// comma-joined as lvm prints them) and volumeFromLV as the very values written: the CSI
// name, the kind, the snapshot's size and creation time, the zeroing offset and the
// fence reason (cut to maxFenceReason bytes; a fenced LV always reads as fenced).
func FuzzVolumeTags(f *testing.F) {
	f.Add("pvc-6b0f8a6c-0c5e-4b5e-9d0e-1f2a3b4c5d6e", "node lost: node-1 deleted", uint64(1<<30), uint64(0), int64(1715682067000000000), false)
	f.Add("snapshot-1", "", uint64(512<<20), uint64(0), int64(1715682067000000000), true)
	f.Add(strings.Repeat("n", MaxRequestNameLen), strings.Repeat("r", maxFenceReason+1), uint64(0), uint64(1<<40), int64(-1), false)
	f.Add(strings.Repeat("n", MaxRequestNameLen+1), strings.Repeat("é", maxFenceReason), uint64(1), uint64(0), int64(0), true)
	f.Add("a,b=c d", "  \t ", ^uint64(0), ^uint64(0), int64(-1<<63), false)
	f.Add("x", strings.Repeat("\x80", maxFenceReason+2), uint64(0), uint64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, name, reason string, size, zero uint64, created int64, snapshot bool) {
		nameTag := Tag(TagName, EncodeName(name))
		if got, want := lvm.ValidTag(nameTag), len(name) <= MaxRequestNameLen; got != want {
			t.Fatalf("name of %d bytes: tag valid = %v, want %v (MaxRequestNameLen %d)", len(name), got, want, MaxRequestNameLen)
		}
		if len(name) > MaxRequestNameLen {
			return // the controller refuses such a name before anything is created
		}
		if dec, err := DecodeName(EncodeName(name)); err != nil || dec != name {
			t.Fatalf("DecodeName(EncodeName(%q)) = %q, %v", name, dec, err)
		}
		kind := KindVolume
		tags := []string{Tag(TagKind, string(KindVolume)), nameTag, Tag(TagRequested, strconv.FormatUint(size, 10)),
			Tag(TagZero, strconv.FormatUint(zero, 10))}
		if snapshot {
			kind = KindSnapshot
			tags = []string{Tag(TagKind, string(KindSnapshot)), nameTag, Tag(TagRequested, strconv.FormatUint(size, 10)),
				Tag(TagCreated, strconv.FormatInt(created, 10))}
		}
		reason = strings.TrimSpace(reason) // as Fence does; it refuses an empty reason
		var recorded string
		if reason != "" {
			var tag string
			tag, recorded = fenceTag(reason)
			if !strings.HasPrefix(reason, recorded) || len(recorded) > maxFenceReason ||
				(len(reason) <= maxFenceReason && recorded != reason) ||
				(utf8.ValidString(reason) && !utf8.ValidString(recorded)) {
				t.Fatalf("fence reason %q recorded as %q", reason, recorded)
			}
			tags = append(tags, tag)
		}
		for _, tag := range tags {
			if !lvm.ValidTag(tag) {
				t.Fatalf("tag %q (%d characters) is not a valid LVM tag", tag, len(tag))
			}
		}
		lvName := LVName(kind, name)
		doc, err := json.Marshal(map[string]any{"report": []any{map[string]any{
			"vg": []any{map[string]string{"vg_name": "lnv-fast", "vg_uuid": fuzzVGUUID}},
			"lv": []any{map[string]string{"lv_name": lvName, "lv_uuid": fuzzLVUUID, "vg_name": "lnv-fast", "vg_uuid": fuzzVGUUID,
				"lv_size": strconv.FormatUint(size, 10), "lv_tags": strings.Join(tags, ",")}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := lvm.ParseFullReport(doc)
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		c := &Class{DeviceClass: config.DeviceClass{Name: "fast", VolumeGroup: "lnv-fast"}}
		v := (&Engine{}).volumeFromLV(c, &rep.VGs[0], rep.LVs[0])
		if v.Name != name || kindOf(v.LV) != kind || v.ID.Kind() != kind {
			t.Fatalf("volume %+v: name %q kind %s, want %q %s", v.ID, v.Name, kindOf(v.LV), name, kind)
		}
		if id, err := ParseID(v.ID.String(), kind); err != nil || id != v.ID {
			t.Fatalf("ID %q: %+v, %v", v.ID, id, err)
		}
		switch {
		case reason == "" && v.Fenced != "":
			t.Fatalf("unfenced volume reads as fenced: %q", v.Fenced)
		case reason != "" && v.Fenced == "":
			t.Fatalf("fenced volume (reason %q) reads as not fenced", reason)
		case recorded != "" && v.Fenced != recorded:
			t.Fatalf("fence reason %q reads back as %q", recorded, v.Fenced)
		}
		if snapshot {
			if want := time.Unix(0, created); v.Size != size || !v.Created.Equal(want) || v.Zeroing {
				t.Fatalf("snapshot: size %d created %v zeroing %v; want %d %v false", v.Size, v.Created, v.Zeroing, size, want)
			}
		} else if v.Size != size || !v.Zeroing || v.ZeroFrom != zero {
			t.Fatalf("volume: size %d zeroing %v from %d; want %d true %d", v.Size, v.Zeroing, v.ZeroFrom, size, zero)
		}
		if !reflect.DeepEqual(v.LV.Tags, tags) {
			t.Fatalf("tags %q read back as %q", tags, v.LV.Tags)
		}
	})
}
