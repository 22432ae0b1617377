package main

import "testing"

func TestParseSocketGroup(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int // -1: no group
		ok   bool
	}{
		{"", -1, true},
		{"0", 0, true},
		{"65532", 65532, true},
		{"4294967294", 4294967294, true},
		{"4294967295", 0, false}, // (uint32)-1: chown's "leave alone"
		{"4294967296", 0, false},
		{"-1", 0, false},
		{"csi", 0, false}, // names are not resolved
		{" 65532", 0, false},
	} {
		got, err := parseSocketGroup(tt.in)
		switch {
		case (err == nil) != tt.ok:
			t.Errorf("parseSocketGroup(%q) error %v, want ok=%v", tt.in, err, tt.ok)
		case !tt.ok:
		case tt.want == -1 && got != nil:
			t.Errorf("parseSocketGroup(%q) = %d, want no group", tt.in, *got)
		case tt.want != -1 && (got == nil || *got != tt.want):
			t.Errorf("parseSocketGroup(%q) = %v, want %d", tt.in, got, tt.want)
		}
	}
}
