package disk

import (
	"reflect"
	"testing"
)

func TestIdentityPreference(t *testing.T) {
	const (
		nguid = "00112233445566778899aabbccddeeff"
		eui   = "00a0b0c0d0e0f001"
		uuid  = "6f1d2e3c-0000-4000-8000-000000000001"
	)
	tests := []struct {
		name     string
		ns       Namespace
		identity string
		all      []string
	}{
		{
			name:     "nguid wins over eui64 and uuid",
			ns:       Namespace{Serial: "LNVTHICK0", NSID: 1, NGUID: nguid, EUI64: eui, UUID: uuid},
			identity: "nguid:" + nguid,
			all:      []string{"nguid:" + nguid, "eui64:" + eui, "uuid:" + uuid, "serial:lnvthick0/ns1"},
		},
		{
			name:     "eui64 wins over uuid",
			ns:       Namespace{Serial: "LNVTHICK0", NSID: 1, EUI64: eui, UUID: uuid},
			identity: "eui64:" + eui,
			all:      []string{"eui64:" + eui, "uuid:" + uuid, "serial:lnvthick0/ns1"},
		},
		{
			name:     "uuid",
			ns:       Namespace{Serial: "LNVTHICK0", NSID: 2, UUID: uuid},
			identity: "uuid:" + uuid,
			all:      []string{"uuid:" + uuid, "serial:lnvthick0/ns2"},
		},
		{
			name:     "serial fallback, trimmed and lower-cased",
			ns:       Namespace{Serial: "  LNVThick0   ", NSID: 3, WWID: "nvme.1b36-00-00-00000003"},
			identity: "serial:lnvthick0/ns3",
			all:      []string{"serial:lnvthick0/ns3"},
		},
		{
			name:     "hand-built namespace with sysfs spellings and upper case",
			ns:       Namespace{Serial: "S", NSID: 1, NGUID: "00112233-4455-6677-8899-AABBCCDDEEFF", EUI64: "00 A0 B0 C0 D0 E0 F0 01", UUID: "6F1D2E3C000040008000000000000001"},
			identity: "nguid:" + nguid,
			all:      []string{"nguid:" + nguid, "eui64:" + eui, "uuid:" + uuid, "serial:s/ns1"},
		},
		{
			name:     "all-zero ids are ignored",
			ns:       Namespace{Serial: "S", NSID: 1, NGUID: "00000000000000000000000000000000", EUI64: "0000000000000000", UUID: "00000000-0000-0000-0000-000000000000"},
			identity: "serial:s/ns1",
			all:      []string{"serial:s/ns1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ns.Identity(); got != tc.identity {
				t.Errorf("Identity() = %q, want %q", got, tc.identity)
			}
			if got := tc.ns.Identities(); !reflect.DeepEqual(got, tc.all) {
				t.Errorf("Identities() = %q, want %q", got, tc.all)
			}
		})
	}
}

func TestNormalizeIdentityAndMatches(t *testing.T) {
	ns := Namespace{
		Serial: "LNVTHICK0", NSID: 1,
		NGUID: "00112233445566778899aabbccddeeff",
		EUI64: "00a0b0c0d0e0f001",
		UUID:  "6f1d2e3c-0000-4000-8000-000000000001",
	}
	tests := []struct {
		selector string
		norm     string
		match    bool
	}{
		{"nguid:00112233445566778899aabbccddeeff", "nguid:00112233445566778899aabbccddeeff", true},
		{" NGUID:00112233-4455-6677-8899-AABBCCDDEEFF ", "nguid:00112233445566778899aabbccddeeff", true},
		{"eui64:00 a0 b0 c0 d0 e0 f0 01", "eui64:00a0b0c0d0e0f001", true},
		{"uuid:6F1D2E3C000040008000000000000001", "uuid:6f1d2e3c-0000-4000-8000-000000000001", true},
		{"serial:LNVTHICK0/ns1", "serial:lnvthick0/ns1", true},
		{"serial:LNVTHICK0/ns2", "serial:lnvthick0/ns2", false},
		{"eui64:00a0b0c0d0e0f002", "eui64:00a0b0c0d0e0f002", false},
		{"", "", false},
	}
	for _, tc := range tests {
		if got := NormalizeIdentity(tc.selector); got != tc.norm {
			t.Errorf("NormalizeIdentity(%q) = %q, want %q", tc.selector, got, tc.norm)
		}
		if got := ns.Matches(tc.selector); got != tc.match {
			t.Errorf("Matches(%q) = %v, want %v", tc.selector, got, tc.match)
		}
	}
}
