// Package nvme talks to NVMe controllers through the kernel's admin passthrough ioctl
// (NVME_IOCTL_ADMIN_CMD): Identify Controller, the namespace identifiers (EUI-64, NGUID,
// UUID) and the SMART / Health Information log page. The raw ioctl sits behind the Admin
// interface so that everything that decodes the answers is unit-testable with hand-built
// buffers.
//
// Byte offsets follow the NVMe Base Specification (2.0): Identify Controller (CNS 01h),
// Identify Namespace (CNS 00h), Namespace Identification Descriptor list (CNS 03h) and
// Get Log Page 02h (SMART / Health Information).
package nvme

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Admin command opcodes, Identify CNS values and log page identifiers used here.
const (
	OpGetLogPage uint8 = 0x02
	OpIdentify   uint8 = 0x06

	CNSNamespace        uint32 = 0x00
	CNSController       uint32 = 0x01
	CNSNSDescriptorList uint32 = 0x03

	LogSMART uint32 = 0x02

	// NSIDAll addresses the controller as a whole (e.g. the controller-wide SMART log).
	NSIDAll uint32 = 0xFFFFFFFF

	// IdentifySize is the size of every Identify data structure.
	IdentifySize = 4096
	// SMARTLogSize is the size of the SMART / Health Information log page.
	SMARTLogSize = 512
)

// Namespace Identifier Types in the descriptor list (CNS 03h).
const (
	nidtEUI64 = 0x1
	nidtNGUID = 0x2
	nidtUUID  = 0x3
	nidtCSI   = 0x4
)

// Admin sends one admin command to a controller or namespace device node and returns the
// NVMe status (0 = success). err is for failures to deliver the command at all (open,
// ioctl errno); a command the device rejected is a non-zero status with a nil err.
type Admin interface {
	AdminCmd(path string, cmd *Command, data []byte) (status uint32, err error)
}

// Command is an admin command. The data buffer (its length is the transfer length) is
// passed to Admin.AdminCmd separately. TimeoutMS 0 means the kernel's default.
type Command struct {
	Opcode                                   uint8
	NSID                                     uint32
	CDW10, CDW11, CDW12, CDW13, CDW14, CDW15 uint32
	TimeoutMS                                uint32
}

// StatusError is a command the device completed with a non-zero NVMe status.
type StatusError struct {
	Op     string // e.g. "identify controller"
	Path   string
	Status uint32 // as returned by the ioctl: (SCT << 8) | SC, plus the More/DNR bits
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("nvme %s on %s: NVMe status 0x%x (sct 0x%x, sc 0x%02x)", e.Op, e.Path, e.Status, e.SCT(), e.SC())
}

// SCT is the Status Code Type (0 generic, 1 command specific, 2 media/data integrity, …).
func (e *StatusError) SCT() uint8 { return uint8(e.Status>>8) & 0x7 }

// SC is the Status Code within its type.
func (e *StatusError) SC() uint8 { return uint8(e.Status) }

// Controller is the part of Identify Controller we use. Strings are trimmed of the
// space (and NUL) padding.
type Controller struct {
	VID                     uint16
	Serial, Model, Firmware string
}

// NamespaceIDs are a namespace's globally unique identifiers: lower-case hex, EUI64 16
// digits and NGUID 32 digits without separators, UUID canonical 8-4-4-4-12; "" when the
// namespace does not have one (all zero or absent). This matches disk.Namespace.
type NamespaceIDs struct {
	EUI64, NGUID, UUID string
}

// Client issues admin commands through Admin (IoctlAdmin{} for real devices).
type Client struct{ Admin Admin }

func (c Client) admin() Admin {
	if c.Admin == nil {
		return IoctlAdmin{}
	}
	return c.Admin
}

// exec runs cmd with a buffer of size bytes and turns a non-zero status into *StatusError.
func (c Client) exec(op, path string, cmd *Command, size int) ([]byte, error) {
	data := make([]byte, size)
	status, err := c.admin().AdminCmd(path, cmd, data)
	if err != nil {
		return nil, fmt.Errorf("nvme %s on %s: %w", op, path, err)
	}
	if status != 0 {
		return nil, &StatusError{Op: op, Path: path, Status: status}
	}
	return data, nil
}

func identifyCmd(cns, nsid uint32) *Command {
	return &Command{Opcode: OpIdentify, NSID: nsid, CDW10: cns}
}

// IdentifyController sends Identify (CNS 01h) to path (a controller /dev/nvmeX or any of
// its namespaces) and decodes VID (bytes 0-1), SN (4-23), MN (24-63) and FR (64-71).
func (c Client) IdentifyController(path string) (*Controller, error) {
	b, err := c.exec("identify controller", path, identifyCmd(CNSController, 0), IdentifySize)
	if err != nil {
		return nil, err
	}
	return &Controller{
		VID:      binary.LittleEndian.Uint16(b[0:2]),
		Serial:   trimASCII(b[4:24]),
		Model:    trimASCII(b[24:64]),
		Firmware: trimASCII(b[64:72]),
	}, nil
}

// NamespaceIDs reads the identifiers of namespace nsid through path (the controller or
// the namespace device). It uses the Namespace Identification Descriptor list (CNS 03h)
// and falls back to the NGUID (bytes 104-119) and EUI64 (120-127) fields of Identify
// Namespace (CNS 00h) when the controller rejects CNS 03h (NVMe < 1.3) or the list holds
// no identifier. The fallback cannot yield a UUID (Identify Namespace has no such field).
func (c Client) NamespaceIDs(path string, nsid uint32) (NamespaceIDs, error) {
	var ids NamespaceIDs
	b, err := c.exec("identify ns descriptors", path, identifyCmd(CNSNSDescriptorList, nsid), IdentifySize)
	var se *StatusError
	switch {
	case err == nil:
		if ids, err = parseDescriptors(b); err != nil {
			return NamespaceIDs{}, fmt.Errorf("nvme identify ns descriptors on %s (nsid %d): %w", path, nsid, err)
		}
		if ids != (NamespaceIDs{}) {
			return ids, nil
		}
	case errors.As(err, &se):
		// Not supported (or not for this namespace): try the older Identify Namespace.
	default:
		return NamespaceIDs{}, err
	}
	b, err = c.exec("identify namespace", path, identifyCmd(CNSNamespace, nsid), IdentifySize)
	if err != nil {
		return NamespaceIDs{}, err
	}
	return NamespaceIDs{
		NGUID: hexID(b[104:120]),
		EUI64: hexID(b[120:128]),
	}, nil
}

// parseDescriptors decodes a Namespace Identification Descriptor list: entries of
// NIDT (1 byte), NIDL (1), reserved (2), NID (NIDL bytes), ended by NIDT 0 or the end of
// the buffer. Unknown types (CSI, future ones) are skipped by their length; a known type
// with the wrong length or an entry running past the buffer is an error.
func parseDescriptors(b []byte) (NamespaceIDs, error) {
	var ids NamespaceIDs
	for off := 0; off+4 <= len(b); {
		nidt, nidl := b[off], int(b[off+1])
		if nidt == 0 {
			break
		}
		start, end := off+4, off+4+nidl
		if end > len(b) {
			return NamespaceIDs{}, fmt.Errorf("descriptor at offset %d (type %d, length %d) runs past the %d-byte list", off, nidt, nidl, len(b))
		}
		nid := b[start:end]
		want := map[byte]int{nidtEUI64: 8, nidtNGUID: 16, nidtUUID: 16, nidtCSI: 1}[nidt]
		if want != 0 && nidl != want {
			return NamespaceIDs{}, fmt.Errorf("descriptor at offset %d: type %d has length %d, want %d", off, nidt, nidl, want)
		}
		switch nidt {
		case nidtEUI64:
			ids.EUI64 = hexID(nid)
		case nidtNGUID:
			ids.NGUID = hexID(nid)
		case nidtUUID:
			ids.UUID = uuidString(nid)
		}
		off = end
	}
	return ids, nil
}

// hexID is lower-case hex of b, "" when b is all zero.
func hexID(b []byte) string {
	for _, x := range b {
		if x != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// uuidString is the canonical 8-4-4-4-12 form of a 16-byte UUID, "" for the nil UUID.
func uuidString(b []byte) string {
	h := hexID(b)
	if h == "" {
		return ""
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// trimASCII trims the space/NUL padding of an Identify string field.
func trimASCII(b []byte) string {
	return strings.Trim(string(b), " \t\x00")
}
