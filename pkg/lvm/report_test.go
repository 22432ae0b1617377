package lvm

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestFullReportCommandLine(t *testing.T) {
	f := newFake(t, result{stdout: readTestdata(t, "fullreport_empty.json")})
	c := New(f.fe, Options{Config: testConfig})
	if _, err := c.Report(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"lvm", "fullreport", "--config", testConfig,
		"--reportformat", "json", "--units", "b", "--nosuffix",
		"--configreport", "vg", "-o", "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,vg_missing_pv_count,vg_attr,vg_tags",
		"--configreport", "pv", "-o", "pv_name,pv_uuid,vg_name,vg_uuid,pv_size,pv_free,dev_size,pv_attr,pv_missing,pv_mda_size,pv_tags",
		"--configreport", "lv", "-o", "lv_uuid,lv_name,vg_name,vg_uuid,lv_size,lv_attr,lv_path,lv_dm_path,lv_active,lv_kernel_major,lv_kernel_minor,pool_lv,origin,data_percent,metadata_percent,lv_tags,lv_time",
		"--configreport", "seg", "-o", "lv_uuid,seg_start,segtype,stripes,stripe_size",
		"--configreport", "pvseg", "-o,",
	}
	if got := f.argv(0); !reflect.DeepEqual(got, want) {
		t.Errorf("argv:\n got %q\nwant %q", got, want)
	}
	assertEnv(t, f.env(0))
}

func mustParse(t *testing.T, file string) *Report {
	t.Helper()
	r, err := ParseFullReport([]byte(readTestdata(t, file)))
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return r
}

const testVGUUID = "CTG49g-AMh1-xg9r-wDKc-073H-PRmx-xEZD4M"

func TestParseRealFullReport(t *testing.T) {
	r := mustParse(t, "fullreport.json")

	wantVGs := []VG{{
		Name: "lnvtestvg", UUID: testVGUUID,
		Size: 394264576, Free: 310378496, ExtentSize: 4194304,
		ExtentCount: 94, FreeCount: 74, PVCount: 2,
		Tags: []string{"localnvme", "owner=x"},
	}}
	if !reflect.DeepEqual(r.VGs, wantVGs) {
		t.Errorf("VGs:\n got %+v\nwant %+v", r.VGs, wantVGs)
	}

	wantPVs := []PV{
		{Name: "/dev/loop0", UUID: "v8XB90-RJRu-aUpX-dKe7-VLBX-ZsRV-tdwxHf", VGName: "lnvtestvg", VGUUID: testVGUUID,
			Size: 197132288, Free: 138412032, DevSize: 209715200, MDASize: 9433088},
		{Name: "/dev/loop1", UUID: "rHjHg2-wff3-vBGl-SLV4-5uL8-MihF-apcyus", VGName: "lnvtestvg", VGUUID: testVGUUID,
			Size: 197132288, Free: 171966464, DevSize: 209715200, MDASize: 9433088},
		{Name: "/dev/loop2", UUID: "ZiMuAo-tFkE-N3Nn-mqGi-nur0-X5Lh-p4xYkH",
			Size: 209715200, Free: 209715200, DevSize: 209715200, MDASize: 9433088},
	}
	if !reflect.DeepEqual(r.PVs, wantPVs) {
		t.Errorf("PVs:\n got %+v\nwant %+v", r.PVs, wantPVs)
	}
	if orphans := r.PVsInVG(""); len(orphans) != 1 || orphans[0].Name != "/dev/loop2" {
		t.Errorf("orphans = %+v", orphans)
	}
	if got := len(r.PVsInVG("lnvtestvg")); got != 2 {
		t.Errorf("PVsInVG = %d, want 2", got)
	}

	lv := func(name, uuid string, size uint64, attr, seg string, stripes int) LV {
		return LV{Name: name, UUID: uuid, VGName: "lnvtestvg", VGUUID: testVGUUID, Size: size, Attr: attr,
			SegType: seg, Stripes: stripes, Path: "/dev/lnvtestvg/" + name, DMPath: "/dev/mapper/lnvtestvg-" + name,
			KernelMajor: -1, KernelMinor: -1, Created: time.Date(2024, 5, 14, 10, 21, 7, 0, time.UTC)}
	}
	cow := lv("cow1", "CsMehG-AkWv-j7FA-c9Qe-WJKY-40uv-SwMFLZ", 8388608, "swi-XXs---", "linear", 1)
	cow.Origin = "lv1"
	lv1 := lv("lv1", "2RDXDk-26Kc-YTdi-wVFt-SaFy-Zsqg-l7fkqM", 8388608, "owi-XXs---", "linear", 1)
	lv1.Tags = []string{"a=b", "pvc=ns/name"}
	lv2 := lv("lv2", "NUEfyy-2M2v-9UOe-pzx5-eNMj-QaDP-ikLG9k", 16777216, "-wi-XX----", "striped", 2)
	pool := lv("pool0", "u8jzPd-e0Ig-xLd6-Gncf-BAep-fJBd-0Kh8oO", 41943040, "twi---tz--", "thin-pool", 1)
	pool.Path = ""
	pool.Tags = []string{"localnvme-pool"}
	snap := lv("snap1", "TeKdNn-FRIB-XuDL-7Dxt-pYlS-XpfK-tHF4vU", 104857600, "Vwi-XXtz--", "thin", 0)
	snap.Pool, snap.Origin, snap.Tags = "pool0", "thin1", []string{"snapshot=1"}
	thin := lv("thin1", "OL8dKL-zdoc-J2is-AjIh-KtJ0-RlgL-KOmxgJ", 104857600, "Vwi-XXtz--", "thin", 0)
	thin.Pool, thin.Tags = "pool0", []string{"k=v", "pvc=ns/thin"}
	wantLVs := []LV{cow, lv1, lv2, pool, snap, thin}
	if !reflect.DeepEqual(r.LVs, wantLVs) {
		t.Errorf("LVs:\n got %+v\nwant %+v", r.LVs, wantLVs)
	}
	for _, l := range r.LVs {
		if strings.HasPrefix(l.Name, "[") || strings.Contains(l.Name, "_t") || strings.Contains(l.Name, "pmspare") {
			t.Errorf("hidden LV reported: %s", l.Name)
		}
	}

	// Helpers.
	if p := r.LVByName("lnvtestvg", "pool0"); p == nil || !p.IsThinPool() || p.IsThin() {
		t.Errorf("pool0: %+v", p)
	} else if got := p.DevicePath(); got != "/dev/lnvtestvg/pool0" {
		t.Errorf("pool0 DevicePath = %q", got)
	}
	if s := r.LVByName("lnvtestvg", "snap1"); s == nil || !s.IsThin() || s.Origin != "thin1" {
		t.Errorf("snap1: %+v", s)
	}
	if s := r.LVByName("lnvtestvg", "cow1"); s == nil || !s.IsCOWSnapshot() || s.IsOrigin() {
		t.Errorf("cow1: %+v", s)
	}
	if o := r.LVByName("lnvtestvg", "lv1"); o == nil || !o.IsOrigin() || o.IsCOWSnapshot() {
		t.Errorf("lv1: %+v", o)
	} else if v, ok := o.Tag("pvc"); !ok || v != "ns/name" {
		t.Errorf("lv1 Tag(pvc) = %q %v", v, ok)
	}
	if r.LVByName("lnvtestvg", "nope") != nil || r.LVByName("othervg", "lv1") != nil {
		t.Error("LVByName found a non-existing LV")
	}
	if l := r.LVByUUID("NUEfyy2M2v9UOepzx5eNMjQaDPikLG9k"); l == nil || l.Name != "lv2" {
		t.Errorf("LVByUUID without dashes: %+v", l)
	}
	if l := r.LVByUUID("NUEfyy-2M2v-9UOe-pzx5-eNMj-QaDP-ikLG9k"); l == nil || l.Name != "lv2" {
		t.Errorf("LVByUUID with dashes: %+v", l)
	}
	if r.LVByUUID("") != nil || r.LVByUUID("NUEfyy") != nil {
		t.Error("LVByUUID matched a partial uuid")
	}
	if vg := r.VGByName("lnvtestvg"); vg == nil || !vg.HasTag("localnvme") {
		t.Errorf("VGByName: %+v", vg)
	} else if v, ok := vg.Tag("owner"); !ok || v != "x" {
		t.Errorf("VG Tag(owner) = %q %v", v, ok)
	}
	if r.VGByName("nope") != nil {
		t.Error("VGByName found a non-existing VG")
	}
	if got := len(r.LVsInVG("lnvtestvg")); got != 6 {
		t.Errorf("LVsInVG = %d", got)
	}
	if got := r.LVsInVG("nope"); len(got) != 0 {
		t.Errorf("LVsInVG(nope) = %+v", got)
	}
}

// fullreport must report the same PVs (including orphans) as `lvm pvs`, which
// is why Report does not run pvs.
func TestFullReportIncludesOrphanPVs(t *testing.T) {
	full := mustParse(t, "fullreport.json")
	pvs := mustParse(t, "pvs.json")
	names := func(ps []PV) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name+"@"+p.VGName)
		}
		sort.Strings(out)
		return out
	}
	if !reflect.DeepEqual(names(full.PVs), names(pvs.PVs)) {
		t.Errorf("fullreport PVs %q != pvs PVs %q", names(full.PVs), names(pvs.PVs))
	}
	if !reflect.DeepEqual(full.PVs, pvs.PVs) {
		t.Errorf("PV details differ:\n%+v\n%+v", full.PVs, pvs.PVs)
	}
}

func TestParseMissingPV(t *testing.T) {
	r := mustParse(t, "fullreport_missing_pv.json")
	vg := r.VGByName("lnvtestvg")
	if vg == nil || !vg.Partial || vg.MissingPVCount != 1 || vg.PVCount != 2 {
		t.Fatalf("VG: %+v", vg)
	}
	var missing []PV
	for _, p := range r.PVs {
		if p.Missing {
			missing = append(missing, p)
		}
	}
	if len(missing) != 1 || missing[0].Name != "[unknown]" || missing[0].UUID != "rHjHg2-wff3-vBGl-SLV4-5uL8-MihF-apcyus" || missing[0].DevSize != 0 {
		t.Errorf("missing PVs: %+v", missing)
	}
	if len(r.PVsInVG("")) != 1 {
		t.Errorf("orphans: %+v", r.PVsInVG(""))
	}
}

func TestParseEmpty(t *testing.T) {
	r := mustParse(t, "fullreport_empty.json")
	if len(r.VGs)+len(r.PVs)+len(r.LVs) != 0 {
		t.Errorf("want empty report, got %+v", r)
	}
}

func TestParseActiveThin(t *testing.T) {
	r := mustParse(t, "fullreport_active_thin.json")
	pool := r.LVByName("nvmevg", "pool0")
	if pool == nil || !pool.IsThinPool() || !pool.Active || pool.DataPercent != 12.34 || pool.MetadataPercent != 3.05 ||
		pool.KernelMajor != 253 || pool.KernelMinor != 2 || pool.SegType != "thin-pool" {
		t.Errorf("pool0: %+v", pool)
	}
	thin := r.LVByName("nvmevg", "pvc-0a1b2c3d")
	if thin == nil || !thin.IsThin() || thin.Pool != "pool0" || thin.DataPercent != 41.5 || thin.MetadataPercent != 0 ||
		thin.DevicePath() != "/dev/nvmevg/pvc-0a1b2c3d" || thin.DMPath != "/dev/mapper/nvmevg-pvc--0a1b2c3d" || thin.Stripes != 0 {
		t.Errorf("thin: %+v", thin)
	}
	if v, ok := thin.Tag("pvc"); !ok || v != "default/data" {
		t.Errorf("thin Tag(pvc) = %q %v", v, ok)
	}
	if _, ok := thin.Tag("localnvme"); ok {
		t.Error("Tag matched a tag without '='")
	}
	snap := r.LVByName("nvmevg", "snap-9f8e7d")
	if snap == nil || !snap.IsThin() || snap.Origin != "pvc-0a1b2c3d" || !snap.Active {
		t.Errorf("thin snapshot: %+v", snap)
	}
	origin := r.LVByName("nvmevg", "thick1")
	// Multi-segment LV: first segment is the one at seg_start 0 even when
	// listed later.
	if origin == nil || !origin.IsOrigin() || origin.SegType != "striped" || origin.Stripes != 2 {
		t.Errorf("origin: %+v", origin)
	}
	if want := time.Date(2025, 11, 3, 8, 15, 42, 0, time.UTC); !origin.Created.Equal(want) {
		t.Errorf("origin lv_time = %v, want %v (the +0100 offset applied)", origin.Created, want)
	}
	cow := r.LVByName("nvmevg", "thick1-snap")
	if cow == nil || !cow.IsCOWSnapshot() || cow.Origin != "thick1" || cow.DataPercent != 0.01 || cow.KernelMinor != 9 {
		t.Errorf("cow: %+v", cow)
	}
	inactive := r.LVByName("nvmevg", "inactive1")
	if inactive == nil || inactive.Active || inactive.KernelMajor != -1 || inactive.Path != "" ||
		inactive.DevicePath() != "/dev/nvmevg/inactive1" {
		t.Errorf("inactive: %+v", inactive)
	}
	if vg := r.VGByName("nvmevg"); vg == nil || vg.Partial || vg.Free != 1073741824 {
		t.Errorf("vg: %+v", vg)
	} else if v, ok := vg.Tag("localnvme.io/node"); !ok || v != "node-a" {
		t.Errorf("vg tag: %q %v", v, ok)
	}
}

func TestParseVariants(t *testing.T) {
	t.Run("json_std numbers and null", func(t *testing.T) {
		r, err := ParseFullReport([]byte(`{"report":[{"vg":[{"vg_name":"vg","vg_size":1024,"vg_free":0,"pv_count":1,"vg_attr":"wz--n-","vg_tags":""}],
			"lv":[{"lv_name":"lv","vg_name":"vg","lv_size":512,"lv_attr":"-wi-a-----","lv_active":"active","lv_kernel_major":253,"lv_kernel_minor":0,"data_percent":null,"lv_tags":null}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.VGs[0].Size != 1024 || r.VGs[0].PVCount != 1 || r.LVs[0].Size != 512 || r.LVs[0].KernelMajor != 253 ||
			!r.LVs[0].Active || r.LVs[0].DataPercent != 0 || r.LVs[0].Tags != nil {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("active from attr", func(t *testing.T) {
		r, err := ParseFullReport([]byte(`{"report":[{"lv":[{"lv_name":"lv","lv_attr":"-wi-a-----","lv_active":"local exclusive"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if !r.LVs[0].Active {
			t.Error("want active")
		}
	})
	t.Run("lv_time formats", func(t *testing.T) {
		r, err := ParseFullReport([]byte(`{"report":[{"lv":[{"lv_name":"a","lv_time":"1700000000"},{"lv_name":"b","lv_time":"Tue Nov 14 2023"},{"lv_name":"c","lv_time":""},{"lv_name":"d"}]}]}`))
		if err != nil {
			t.Fatalf("an unknown lv_time format must not fail the report: %v", err)
		}
		if !r.LVs[0].Created.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("unix seconds: %v", r.LVs[0].Created)
		}
		for _, l := range r.LVs[1:] {
			if !l.Created.IsZero() {
				t.Errorf("%s: Created = %v, want zero (unknown)", l.Name, l.Created)
			}
		}
	})
	for _, bad := range []string{
		`{"report":[{"vg":[{"vg_name":"vg","vg_size":"12.5MiB"}]}]}`,
		`{"report":[{"pv":[{"pv_name":"/dev/x","pv_free":"-1"}]}]}`,
		`{"report":[{"lv":[{"lv_name":"x","data_percent":"abc"}]}]}`,
		`{"report":[{"lv":[{"lv_name":"x","lv_kernel_major":"x"}]}]}`,
		`{"report":[{"seg":[{"lv_uuid":"x","stripes":"two"}]}]}`,
		`not json`,
	} {
		if _, err := ParseFullReport([]byte(bad)); err == nil {
			t.Errorf("ParseFullReport(%s): want error", bad)
		}
	}
}

func TestLVAttrHelpersShortAttr(t *testing.T) {
	var l LV
	if l.IsThinPool() || l.IsThin() || l.IsCOWSnapshot() || l.IsOrigin() {
		t.Error("empty attr must not match")
	}
	for attr, want := range map[string]string{"twi-aotz--": "pool", "Vwi-a-tz--": "thin", "swi-a-s---": "cow", "Swi-a-s---": "cow", "owi-a-s---": "origin", "Owi-a-s---": "origin", "-wi-a-----": ""} {
		l := LV{Attr: attr}
		got := ""
		switch {
		case l.IsThinPool():
			got = "pool"
		case l.IsThin():
			got = "thin"
		case l.IsCOWSnapshot():
			got = "cow"
		case l.IsOrigin():
			got = "origin"
		}
		if got != want {
			t.Errorf("%s: got %q want %q", attr, got, want)
		}
	}
}
