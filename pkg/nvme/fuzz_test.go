package nvme

// Fuzz targets (go test -fuzz, hack/fuzz.sh). `go test` runs each one on its seed corpus:
// the f.Add seeds below and testdata/fuzz/<target>/, which keeps every input a fuzzing run
// ever failed on.

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/bits"
	"regexp"
	"strings"
	"testing"
)

var (
	eui64RE = regexp.MustCompile(`^[0-9a-f]{16}$`)
	nguidRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// checkIDs asserts the form NamespaceIDs promises: lower-case hex of the right length (UUID
// canonical 8-4-4-4-12), never an all-zero identifier, or "".
func checkIDs(t *testing.T, ids NamespaceIDs) {
	t.Helper()
	zero := func(s string) bool { return strings.Trim(s, "0-") == "" }
	if (ids.EUI64 != "" && (!eui64RE.MatchString(ids.EUI64) || zero(ids.EUI64))) ||
		(ids.NGUID != "" && (!nguidRE.MatchString(ids.NGUID) || zero(ids.NGUID))) ||
		(ids.UUID != "" && (!uuidRE.MatchString(ids.UUID) || zero(ids.UUID))) {
		t.Fatalf("identifiers out of form: %+v", ids)
	}
}

// idOf is what an identifier field of raw bytes must read as (independently of hexID).
func idOf(b []byte) string {
	for _, x := range b {
		if x != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// FuzzIdentify: the Identify decoders never panic, whatever the device returns (ctrl, descs
// and ns are the data of Identify Controller, the Namespace Identification Descriptor list
// and Identify Namespace; the device fills at most the 4096-byte buffer, the rest stays
// zero; descStatus is the descriptor list's NVMe status). IdentifyController's strings are
// its fields without padding; NamespaceIDs' identifiers have their documented form, come
// from the descriptor list when it holds any, else from Identify Namespace bytes 104-127;
// a malformed list is an error, never a guess. parseDescriptors also runs on descs unpadded.
func FuzzIdentify(f *testing.F) {
	f.Add(identifyCtrl(0x1b36, "LNVTHICK0", "QEMU NVMe Ctrl", "7.2.22"),
		descList(desc{nidtEUI64, eui}, desc{nidtUUID, uuid}, desc{nidtCSI, []byte{0}}), identifyNS(nil, nil), uint16(0))
	f.Add(identifyCtrl(0x144d, "  S4EWNX0R12345678AB", "Samsung SSD 980 PRO 1TB\x00\x00", "5B2QGXA7"),
		descList(desc{nidtUUID, uuid}, desc{9, []byte{1, 2, 3}}, desc{nidtNGUID, nguid}, desc{nidtEUI64, eui}), identifyNS(nguid, eui), uint16(0))
	f.Add([]byte{}, descList(desc{nidtEUI64, zero8}, desc{nidtUUID, make([]byte, 16)}, desc{nidtCSI, []byte{0}}), identifyNS(nguid, eui), uint16(0))
	f.Add([]byte{0x36}, []byte{}, identifyNS(nguid, eui), uint16(0x4002))
	f.Add([]byte{}, []byte{nidtNGUID, 16, 0, 0, 1}, []byte{}, uint16(0))
	f.Add([]byte{}, []byte{nidtEUI64, 7, 0, 0, 1, 2, 3, 4, 5, 6, 7}, []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, ctrl, descs, ns []byte, descStatus uint16) {
		fa := &fakeAdmin{replies: map[string]reply{
			"id-ctrl":  {data: ctrl},
			"ns-descs": {data: descs, status: uint32(descStatus)},
			"id-ns":    {data: ns},
		}}
		cl := Client{Admin: fa}
		c, err := cl.IdentifyController("/dev/nvme0")
		if err != nil {
			t.Fatalf("IdentifyController: %v", err)
		}
		buf := make([]byte, IdentifySize)
		copy(buf, ctrl)
		if c.VID != binary.LittleEndian.Uint16(buf) {
			t.Fatalf("VID %#x from %x", c.VID, buf[:2])
		}
		for _, fl := range []struct {
			name, got string
			raw       []byte
		}{{"serial", c.Serial, buf[4:24]}, {"model", c.Model, buf[24:64]}, {"firmware", c.Firmware, buf[64:72]}} {
			if !strings.Contains(string(fl.raw), fl.got) || strings.Trim(fl.got, " \t\x00") != fl.got ||
				strings.Trim(string(fl.raw), " \t\x00") != fl.got {
				t.Fatalf("%s %q from field %q", fl.name, fl.got, fl.raw)
			}
		}

		fa.calls = nil
		ids, err := cl.NamespaceIDs("/dev/nvme0n1", 1)
		dbuf := make([]byte, IdentifySize)
		copy(dbuf, descs)
		fromList, listErr := parseDescriptors(dbuf)
		switch {
		case descStatus == 0 && listErr != nil:
			if err == nil {
				t.Fatalf("malformed descriptor list (%v) gave %+v", listErr, ids)
			}
			return
		case err != nil:
			t.Fatalf("NamespaceIDs: %v", err)
		}
		checkIDs(t, ids)
		switch {
		case descStatus == 0 && fromList != (NamespaceIDs{}):
			if ids != fromList || len(fa.calls) != 1 {
				t.Fatalf("descriptor list gave %+v, NamespaceIDs %+v after %d commands", fromList, ids, len(fa.calls))
			}
		default:
			nbuf := make([]byte, IdentifySize)
			copy(nbuf, ns)
			if want := (NamespaceIDs{NGUID: idOf(nbuf[104:120]), EUI64: idOf(nbuf[120:128])}); ids != want || len(fa.calls) != 2 {
				t.Fatalf("fallback gave %+v after %d commands, want %+v", ids, len(fa.calls), want)
			}
		}

		if raw, err := parseDescriptors(descs); err == nil {
			checkIDs(t, raw)
		}
	})
}

// FuzzHealthLog: ParseHealthLog never panics; a page shorter than 192 bytes is an error,
// anything longer decodes field by field as the NVMe specification places them (128-bit
// counters saturating at MaxUint64), and the derived views agree with the fields: Celsius
// is Kelvin - 273, one warning name per set bit in bit order, and Degraded exactly when a
// warning bit is set, the spare is below its threshold or 100% of the endurance is used,
// with one reason per finding.
func FuzzHealthLog(f *testing.F) {
	for _, s := range []smartLog{
		{kelvin: 323, spare: 100, thresh: 10, counters: [10]uint64{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, highCounter: -1},
		{warn: 0x05, kelvin: 323, spare: 100, thresh: 10, highCounter: -1},
		{warn: 0xff, kelvin: 273, spare: 50, thresh: 10, highCounter: -1},
		{kelvin: 300, spare: 5, thresh: 10, used: 255, highCounter: 9},
	} {
		f.Add(s.bytes())
	}
	f.Add(make([]byte, 191))
	f.Add(make([]byte, 192))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHealthLog(b)
		if len(b) < 192 {
			if err == nil || h != nil {
				t.Fatalf("%d-byte page: %+v, %v; want an error", len(b), h, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%d-byte page: %v", len(b), err)
		}
		if h.CriticalWarning != b[0] || h.TemperatureKelvin != uint16(b[1])|uint16(b[2])<<8 ||
			h.AvailableSpare != b[3] || h.AvailableSpareThreshold != b[4] || h.PercentageUsed != b[5] {
			t.Fatalf("header fields %+v from %x", h, b[:6])
		}
		counters := []uint64{h.DataUnitsRead, h.DataUnitsWritten, h.HostReadCommands, h.HostWriteCommands,
			h.ControllerBusyTime, h.PowerCycles, h.PowerOnHours, h.UnsafeShutdowns, h.MediaErrors, h.ErrorLogEntries}
		for i, got := range counters {
			off := 32 + 16*i
			want := binary.LittleEndian.Uint64(b[off:])
			if binary.LittleEndian.Uint64(b[off+8:]) != 0 {
				want = math.MaxUint64
			}
			if got != want {
				t.Fatalf("counter %d at offset %d = %d, want %d", i, off, got, want)
			}
		}
		if h.TemperatureCelsius() != int(h.TemperatureKelvin)-273 {
			t.Fatalf("%d K is %d °C", h.TemperatureKelvin, h.TemperatureCelsius())
		}
		names := h.WarningNames()
		if len(names) != bits.OnesCount8(h.CriticalWarning) {
			t.Fatalf("warning 0x%02x named %v", h.CriticalWarning, names)
		}
		i := 0
		for bit := 0; bit < 8; bit++ {
			if h.CriticalWarning&(1<<bit) != 0 {
				if names[i] != warningNames[bit] {
					t.Fatalf("warning 0x%02x named %v", h.CriticalWarning, names)
				}
				i++
			}
		}
		findings := 0
		for _, c := range []bool{h.CriticalWarning != 0, h.AvailableSpare < h.AvailableSpareThreshold, h.PercentageUsed >= 100} {
			if c {
				findings++
			}
		}
		if degraded, reasons := h.Degraded(); degraded != (findings > 0) || len(reasons) != findings {
			t.Fatalf("%+v: Degraded() = %v, %q; want %d findings", h, degraded, reasons, findings)
		}
	})
}
