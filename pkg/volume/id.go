package volume

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/localnvme/localnvme/pkg/lvm"
)

// Kind of object an ID or LV stands for.
type Kind string

// Kinds. The kind is the first letter of the LV name, so it is part of every ID.
const (
	KindVolume   Kind = "v"
	KindSnapshot Kind = "s"
	// kindTemp tags the temporary COW snapshot a thick clone copies from.
	kindTemp Kind = "t"
	// kindScratch tags the scratch LV a thick expand zeroes the volume's new extents through
	// before they join the volume (TagScratchFor names the volume's LV).
	kindScratch Kind = "z"
)

const (
	nameHashHexLen = 24 // 96 bits of SHA-256 of the CSI request name
	uuidLen        = 32 // LVM UUID without its dashes
)

var (
	lvNameRE = regexp.MustCompile(`^[vs][0-9a-f]{24}$`)
	uuidRE   = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)
	classRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// LVName derives the LV name from a CSI request name: the kind letter and 24 hex digits of
// SHA-256(name). A retried CreateVolume/CreateSnapshot computes the same name and finds its LV.
func LVName(kind Kind, requestName string) string {
	sum := sha256.Sum256([]byte(requestName))
	return string(kind) + hex.EncodeToString(sum[:])[:nameHashHexLen]
}

// ID is a parsed volume or snapshot ID: "<class>.<vg uuid>.<lv name>.<lv uuid>" with the
// LVM UUIDs written without dashes. It names the exact LV on the exact VG incarnation: a VG
// or LV re-created under the same name has a new UUID, so an old ID never resolves to it.
type ID struct {
	Class  string
	VGUUID string
	LVName string
	LVUUID string
}

// Kind is derived from the LV name.
func (id ID) Kind() Kind { return Kind(id.LVName[:1]) }

func (id ID) String() string {
	return strings.Join([]string{id.Class, id.VGUUID, id.LVName, id.LVUUID}, ".")
}

// DMUUID is the device-mapper UUID of the LV the ID names ("LVM-" + VG UUID + LV UUID):
// what a mount of this volume must show, without asking LVM.
func (id ID) DMUUID() string { return "LVM-" + id.VGUUID + id.LVUUID }

// MaxRequestNameLen is the longest CSI request name (CreateVolume, CreateSnapshot) whose
// tag lnv.name=<base64url(name)> fits LVM's tag limit (lvm.MaxTagLen, 1024): 761 bytes.
const MaxRequestNameLen = (lvm.MaxTagLen - len(TagName) - 1) * 3 / 4

// NewID builds an ID from LVM's dashed UUIDs.
func NewID(class, vgUUID, lvName, lvUUID string) ID {
	return ID{Class: class, VGUUID: StripUUID(vgUUID), LVName: lvName, LVUUID: StripUUID(lvUUID)}
}

// StripUUID removes the dashes LVM prints in UUIDs.
func StripUUID(u string) string { return strings.ReplaceAll(u, "-", "") }

// ParseID parses and validates an ID. want restricts the kind ("" accepts both).
func ParseID(s string, want Kind) (ID, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return ID{}, fmt.Errorf("id %q: want 4 dot-separated fields, got %d", s, len(parts))
	}
	id := ID{Class: parts[0], VGUUID: parts[1], LVName: parts[2], LVUUID: parts[3]}
	switch {
	case !classRE.MatchString(id.Class):
		return ID{}, fmt.Errorf("id %q: invalid class %q", s, id.Class)
	case !uuidRE.MatchString(id.VGUUID):
		return ID{}, fmt.Errorf("id %q: invalid VG UUID", s)
	case !lvNameRE.MatchString(id.LVName):
		return ID{}, fmt.Errorf("id %q: invalid LV name", s)
	case !uuidRE.MatchString(id.LVUUID):
		return ID{}, fmt.Errorf("id %q: invalid LV UUID", s)
	}
	if want != "" && id.Kind() != want {
		return ID{}, fmt.Errorf("id %q is a %s ID, not a %s ID", s, id.Kind().Noun(), want.Noun())
	}
	return id, nil
}

// Noun names the kind in messages.
func (k Kind) Noun() string {
	if k == KindSnapshot {
		return "snapshot"
	}
	return "volume"
}

// Tag keys stored on LVs. Values that may hold arbitrary text are base64url-encoded, since LVM
// tags only allow [A-Za-z0-9_+.-/=!:&#].
const (
	TagKind      = "lnv.kind"   // v or s
	TagName      = "lnv.name"   // base64url(CSI request name)
	TagRequested = "lnv.req"    // requested size in bytes
	TagSource    = "lnv.src"    // content source ID (volume or snapshot ID)
	TagFSType    = "lnv.fstype" // filesystem created by NodeStage
	TagFSUUID    = "lnv.fsuuid" // its UUID, recorded right after mkfs
	TagFSIntent  = "lnv.mkfs"   // set before mkfs runs; see node staging
	TagCopying   = "lnv.copying"
	// TagZero: the bytes from this offset (decimal) to the LV's end may still hold a deleted
	// volume's data. Set by lvcreate of a thick volume (0) and before a thick expand (the old
	// size); removed once BLKZEROOUT has covered the range. No volume with it is staged.
	TagZero    = "lnv.zero"
	TagCreated = "lnv.created" // unix nanoseconds (snapshots)
	// TagScratchFor, on a scratch LV (lnv.kind=z): the LV name of the volume whose expand
	// created it. Only an LV with both tags is ever removed as a leftover scratch.
	TagScratchFor = "lnv.scratch"
	// TagFenced marks the LV of a PV the fencing controller released: base64url(reason).
	// A fenced volume is never staged, published, expanded, cloned or snapshotted again;
	// only DeleteVolume removes it.
	TagFenced = "lnv.fenced"
	TagClass  = "lnv.class" // on the VG
)

// Tag formats a key=value tag.
func Tag(key, value string) string { return key + "=" + value }

// EncodeName encodes a CSI name for a tag.
func EncodeName(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// DecodeName reverses EncodeName.
func DecodeName(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}
