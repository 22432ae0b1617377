package volume

import (
	"strings"
	"testing"
)

func TestLVNameDeterministic(t *testing.T) {
	tests := []struct {
		kind Kind
		name string
		want string
	}{
		{KindVolume, "pvc-1", LVName(KindVolume, "pvc-1")},
		{KindSnapshot, "pvc-1", "s" + LVName(KindVolume, "pvc-1")[1:]},
	}
	for _, tt := range tests {
		got := LVName(tt.kind, tt.name)
		if got != tt.want {
			t.Errorf("LVName(%s,%q) = %q, want %q", tt.kind, tt.name, got, tt.want)
		}
		if !lvNameRE.MatchString(got) {
			t.Errorf("LVName(%s,%q) = %q is not a valid generated name", tt.kind, tt.name, got)
		}
	}
	if LVName(KindVolume, "a") == LVName(KindVolume, "b") {
		t.Error("different names map to one LV name")
	}
	// The longest CSI name (128 bytes) and odd characters still give a 25-character LVM-safe name.
	long := strings.Repeat("é", 64)
	if n := LVName(KindVolume, long); len(n) != 25 {
		t.Errorf("LVName of a long name has length %d", len(n))
	}
}

func TestParseID(t *testing.T) {
	vg := "mYrTWN-KOjd-CVdN-3AEh-zyqy-mwlO-Jqzuz2"
	lv := "ka83iu-i682-Is2U-Lygm-widS-K5wr-g8SIqx"
	good := NewID("thick", vg, "v62076645ceeb80779cec104e", lv)
	snap := NewID("thin-1", vg, "s62076645ceeb80779cec104e", lv)
	tests := []struct {
		name    string
		in      string
		want    Kind
		wantErr string
	}{
		{"volume", good.String(), KindVolume, ""},
		{"snapshot", snap.String(), KindSnapshot, ""},
		{"any kind", snap.String(), "", ""},
		{"snapshot as volume", snap.String(), KindVolume, "is a snapshot ID, not a volume ID"},
		{"volume as snapshot", good.String(), KindSnapshot, "is a volume ID, not a snapshot ID"},
		{"empty", "", "", "want 4 dot-separated fields"},
		{"sanity fake", "fake-volume-id", "", "want 4 dot-separated fields"},
		{"bad class", "Thick." + good.VGUUID + "." + good.LVName + "." + good.LVUUID, "", "invalid class"},
		{"dashed vg uuid", "thick." + vg + "." + good.LVName + "." + good.LVUUID, "", "invalid VG UUID"},
		{"short lv uuid", "thick." + good.VGUUID + "." + good.LVName + ".abc", "", "invalid LV UUID"},
		{"foreign lv name", "thick." + good.VGUUID + ".root." + good.LVUUID, "", "invalid LV name"},
		{"five fields", good.String() + ".x", "", "want 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseID(tt.in, tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseID(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if id.String() != tt.in {
				t.Errorf("round trip: %q → %q", tt.in, id.String())
			}
		})
	}
	if got := good.VGUUID; strings.Contains(got, "-") || len(got) != 32 {
		t.Errorf("NewID kept dashes: %q", got)
	}
	// Longest class name keeps IDs within CSI's 128-byte limit.
	longest := NewID(strings.Repeat("a", 20), vg, "v62076645ceeb80779cec104e", lv)
	if n := len(longest.String()); n > 128 {
		t.Errorf("longest ID is %d bytes, over the CSI limit of 128", n)
	}
}

func TestNameEncoding(t *testing.T) {
	for _, name := range []string{"pvc-0b7e", "snap shot/with:odd=chars", strings.Repeat("x", 128), "ünïcødé"} {
		enc := EncodeName(name)
		for _, r := range enc {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", r) {
				t.Errorf("EncodeName(%q) = %q has a character LVM tags reject: %q", name, enc, r)
			}
		}
		if dec, err := DecodeName(enc); err != nil || dec != name {
			t.Errorf("DecodeName(EncodeName(%q)) = %q, %v", name, dec, err)
		}
	}
}
