// Package disk discovers local NVMe namespaces through sysfs and decides whether a
// namespace is provably empty (safe to adopt) without ever writing to it.
package disk

import (
	"strconv"
	"strings"
)

// Namespace is one NVMe namespace block device found in sysfs.
type Namespace struct {
	Name             string // "nvme0n1"
	DevPath          string // "/dev/nvme0n1"
	Controller       string // "nvme0"
	Serial           string // trimmed (qemu pads with spaces)
	Model            string // trimmed
	Firmware         string // trimmed
	NSID             int
	SizeBytes        int64 // /sys/block/X/size * 512
	LogicalBlockSize int   // queue/logical_block_size

	// Identifiers from /sys/block/X/{eui,nguid,uuid,wwid}; "" when absent or all-zero.
	// EUI64 is 16 lower-case hex digits and NGUID 32 lower-case hex digits, both without
	// separators (sysfs prints eui as "00 a0 b0 ..." and nguid as a dashed UUID). UUID is
	// the canonical lower-case 8-4-4-4-12 form. The kernel's uuid attribute falls back to
	// printing the NGUID when the namespace has no UUID; that fallback is not a UUID, so
	// UUID is left empty when it equals NGUID. WWID is the trimmed attribute as printed
	// ("eui.…", "uuid.…" or "nvme.…").
	EUI64, NGUID, UUID, WWID string

	ReadOnly   bool     // /sys/block/X/ro
	Removable  bool     // /sys/block/X/removable
	Holders    []string // /sys/block/X/holders/*
	Partitions []string // child partitions e.g. nvme0n1p1 (dirs under /sys/block/X/ that have a "partition" file)
	MajorMinor string   // /sys/block/X/dev, e.g. "259:0"

	// PartitionMajorMinor maps each entry of Partitions to its "major:minor"
	// (/sys/block/X/<part>/dev), so mounts of partitions can be matched by device number.
	PartitionMajorMinor map[string]string
}

// Identity is the stable identity: "nguid:<hex>" / "eui64:<hex>" / "uuid:<uuid>" (first
// present, in that order), else "serial:<serial>/ns<nsid>". Lower-case.
func (n Namespace) Identity() string {
	return n.Identities()[0]
}

// Identities returns all identity forms this namespace answers to (all of the above that
// exist, plus the serial form), for matching config selectors. The preferred one
// (Identity) comes first.
func (n Namespace) Identities() []string {
	var ids []string
	if v := normalizeHexID(n.NGUID); v != "" {
		ids = append(ids, "nguid:"+v)
	}
	if v := normalizeHexID(n.EUI64); v != "" {
		ids = append(ids, "eui64:"+v)
	}
	if v := normalizeUUID(n.UUID); v != "" {
		ids = append(ids, "uuid:"+v)
	}
	return append(ids, n.serialIdentity())
}

func (n Namespace) serialIdentity() string {
	return "serial:" + strings.ToLower(strings.TrimSpace(n.Serial)) + "/ns" + strconv.Itoa(n.NSID)
}

// SharedIdentities returns, for each namespace (by Name), the namespaces that answer to one
// of its device identities (nguid/eui64/uuid; the serial form is per namespace ID and not
// counted) besides itself. A controller with bogus identifiers — what the kernel's
// NVME_QUIRK_BOGUS_NID is for — makes two drives answer to one identity: such a drive can
// never be selected, adopted or released by that identity.
func SharedIdentities(nss []Namespace) map[string][]string {
	by := map[string][]string{}
	for _, ns := range nss {
		ids := ns.Identities()
		for _, id := range ids[:len(ids)-1] { // the last one is the serial form
			by[id] = append(by[id], ns.Name)
		}
	}
	out := map[string][]string{}
	for _, ns := range nss {
		seen := map[string]bool{ns.Name: true}
		ids := ns.Identities()
		for _, id := range ids[:len(ids)-1] {
			for _, other := range by[id] {
				if !seen[other] {
					seen[other] = true
					out[ns.Name] = append(out[ns.Name], other)
				}
			}
		}
	}
	return out
}

// Matches reports whether selector (an identity string in any of the accepted spellings,
// see NormalizeIdentity) names this namespace.
func (n Namespace) Matches(selector string) bool {
	want := NormalizeIdentity(selector)
	if want == "" {
		return false
	}
	for _, id := range n.Identities() {
		if id == want {
			return true
		}
	}
	return false
}

// NormalizeIdentity canonicalises a user-written identity so it compares equal to the
// forms Identities returns: it trims and lower-cases, strips separators from nguid/eui64
// hex ("nguid:0011…-…", "eui64:00 a0 b0 …" are accepted) and re-dashes uuid values.
// Unknown prefixes are only trimmed and lower-cased. It returns "" for an empty input.
func NormalizeIdentity(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	kind, val, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	val = strings.TrimSpace(val)
	switch kind {
	case "nguid", "eui64":
		if h := stripHexSeparators(val); isHex(h) {
			return kind + ":" + h
		}
	case "uuid":
		if u := normalizeUUID(val); u != "" {
			return kind + ":" + u
		}
	}
	return kind + ":" + val
}

// normalizeHexID turns a sysfs identifier ("00 a0 b0 c0", "0011-2233-…", "00:a0:…" or
// plain hex) into lower-case hex without separators; all-zero values become "".
// Values that are not hex are returned lower-cased with separators removed.
func normalizeHexID(s string) string {
	h := stripHexSeparators(strings.ToLower(strings.TrimSpace(s)))
	if h == "" || (isHex(h) && strings.Trim(h, "0") == "") {
		return ""
	}
	return h
}

// normalizeUUID returns the canonical 8-4-4-4-12 lower-case form, "" for empty or nil
// UUIDs. Input that is not 32 hex digits is returned trimmed and lower-cased.
func normalizeUUID(s string) string {
	h := normalizeHexID(s)
	if h == "" {
		return ""
	}
	if len(h) != 32 || !isHex(h) {
		return strings.ToLower(strings.TrimSpace(s))
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func stripHexSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', ':', '.':
			return -1
		}
		return r
	}, s)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}
