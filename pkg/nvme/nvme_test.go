package nvme

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// reply is what the fake device answers to one command.
type reply struct {
	data   []byte // copied into the caller's buffer
	status uint32
	err    error
}

// fakeAdmin records every command and answers by key(cmd).
type fakeAdmin struct {
	replies map[string]reply
	calls   []call
}

type call struct {
	path    string
	cmd     Command
	dataLen int
}

// key identifies a command by opcode and, for Identify, its CNS.
func key(c *Command) string {
	switch c.Opcode {
	case OpIdentify:
		return map[uint32]string{CNSNamespace: "id-ns", CNSController: "id-ctrl", CNSNSDescriptorList: "ns-descs"}[c.CDW10&0xff]
	case OpGetLogPage:
		return "log"
	}
	return "?"
}

func (f *fakeAdmin) AdminCmd(path string, cmd *Command, data []byte) (uint32, error) {
	f.calls = append(f.calls, call{path: path, cmd: *cmd, dataLen: len(data)})
	r, ok := f.replies[key(cmd)]
	if !ok {
		return 0x4002, nil // Invalid Field in Command, DNR
	}
	copy(data, r.data)
	return r.status, r.err
}

func (f *fakeAdmin) keys() []string {
	var ks []string
	for _, c := range f.calls {
		ks = append(ks, key(&c.cmd))
	}
	return ks
}

func padded(s string, n int) []byte {
	if len(s) > n {
		panic("field too long: " + s)
	}
	return []byte(s + strings.Repeat(" ", n-len(s)))
}

func identifyCtrl(vid uint16, sn, mn, fr string) []byte {
	b := make([]byte, IdentifySize)
	binary.LittleEndian.PutUint16(b[0:], vid)
	copy(b[4:24], padded(sn, 20))
	copy(b[24:64], padded(mn, 40))
	copy(b[64:72], padded(fr, 8))
	return b
}

func identifyNS(nguid, eui64 []byte) []byte {
	b := make([]byte, IdentifySize)
	copy(b[104:120], nguid)
	copy(b[120:128], eui64)
	return b
}

type desc struct {
	nidt byte
	nid  []byte
}

func descList(ds ...desc) []byte {
	var b []byte
	for _, d := range ds {
		b = append(b, d.nidt, byte(len(d.nid)), 0, 0)
		b = append(b, d.nid...)
	}
	return append(b, make([]byte, IdentifySize-len(b))...)
}

var (
	eui   = []byte{0x00, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x01}
	nguid = []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00}
	uuid  = []byte{0x6c, 0x6e, 0x76, 0x6d, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x01}
	zero8 = make([]byte, 8)
)

func TestIdentifyController(t *testing.T) {
	tests := []struct {
		name    string
		reply   reply
		want    *Controller
		wantErr string
	}{
		{
			name:  "qemu",
			reply: reply{data: identifyCtrl(0x1b36, "LNVTHICK0", "QEMU NVMe Ctrl", "7.2.22")},
			want:  &Controller{VID: 0x1b36, Serial: "LNVTHICK0", Model: "QEMU NVMe Ctrl", Firmware: "7.2.22"},
		},
		{
			name:  "full-width fields, leading blanks and NULs",
			reply: reply{data: identifyCtrl(0x144d, "  S4EWNX0R12345678AB", "Samsung SSD 980 PRO 1TB\x00\x00", "5B2QGXA7")},
			want:  &Controller{VID: 0x144d, Serial: "S4EWNX0R12345678AB", Model: "Samsung SSD 980 PRO 1TB", Firmware: "5B2QGXA7"},
		},
		{name: "nvme status", reply: reply{status: 0x4002}, wantErr: "NVMe status 0x4002 (sct 0x0, sc 0x02)"},
		{name: "ioctl error", reply: reply{err: errors.New("permission denied")}, wantErr: "identify controller on /dev/nvme0: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{replies: map[string]reply{"id-ctrl": tt.reply}}
			got, err := Client{Admin: f}.IdentifyController("/dev/nvme0")
			if len(f.calls) != 1 {
				t.Fatalf("calls = %d, want 1", len(f.calls))
			}
			c := f.calls[0]
			if c.path != "/dev/nvme0" || c.cmd != (Command{Opcode: 0x06, NSID: 0, CDW10: 0x01}) || c.dataLen != 4096 {
				t.Errorf("command = %+v (path %s, %d bytes), want opcode 0x06 nsid 0 cdw10 0x01, 4096 bytes", c.cmd, c.path, c.dataLen)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatusErrorUnwrap(t *testing.T) {
	f := &fakeAdmin{replies: map[string]reply{"id-ctrl": {status: 0x0181}}}
	_, err := Client{Admin: f}.IdentifyController("/dev/nvme1")
	var se *StatusError
	if !errors.As(err, &se) || se.SCT() != 1 || se.SC() != 0x81 || se.Path != "/dev/nvme1" {
		t.Fatalf("err = %#v, want a *StatusError sct 1 sc 0x81", err)
	}
}

func TestNamespaceIDs(t *testing.T) {
	tests := []struct {
		name      string
		replies   map[string]reply
		want      NamespaceIDs
		wantCalls []string
		wantErr   string
	}{
		{
			name: "descriptors: eui64, uuid and csi (qemu nvme-ns)",
			replies: map[string]reply{"ns-descs": {data: descList(
				desc{nidtEUI64, eui}, desc{nidtUUID, uuid}, desc{nidtCSI, []byte{0}})}},
			want:      NamespaceIDs{EUI64: "00a0b0c0d0e0f001", UUID: "6c6e766d-0000-4000-8000-000000000001"},
			wantCalls: []string{"ns-descs"},
		},
		{
			name: "descriptors: all three, any order, unknown type skipped",
			replies: map[string]reply{"ns-descs": {data: descList(
				desc{nidtUUID, uuid}, desc{9, []byte{1, 2, 3}}, desc{nidtNGUID, nguid}, desc{nidtEUI64, eui})}},
			want:      NamespaceIDs{EUI64: "00a0b0c0d0e0f001", NGUID: "112233445566778899aabbccddeeff00", UUID: "6c6e766d-0000-4000-8000-000000000001"},
			wantCalls: []string{"ns-descs"},
		},
		{
			name: "descriptors: zero-valued ids are absent",
			replies: map[string]reply{
				"ns-descs": {data: descList(desc{nidtEUI64, zero8}, desc{nidtUUID, make([]byte, 16)}, desc{nidtNGUID, nguid})},
			},
			want:      NamespaceIDs{NGUID: "112233445566778899aabbccddeeff00"},
			wantCalls: []string{"ns-descs"},
		},
		{
			name: "descriptor list unsupported: Identify Namespace fallback",
			replies: map[string]reply{
				"ns-descs": {status: 0x4002},
				"id-ns":    {data: identifyNS(nguid, eui)},
			},
			want:      NamespaceIDs{EUI64: "00a0b0c0d0e0f001", NGUID: "112233445566778899aabbccddeeff00"},
			wantCalls: []string{"ns-descs", "id-ns"},
		},
		{
			name: "descriptor list empty (only CSI): fallback",
			replies: map[string]reply{
				"ns-descs": {data: descList(desc{nidtCSI, []byte{0}})},
				"id-ns":    {data: identifyNS(nil, eui)},
			},
			want:      NamespaceIDs{EUI64: "00a0b0c0d0e0f001"},
			wantCalls: []string{"ns-descs", "id-ns"},
		},
		{
			name: "no identifiers anywhere",
			replies: map[string]reply{
				"ns-descs": {data: descList()},
				"id-ns":    {data: identifyNS(nil, nil)},
			},
			want:      NamespaceIDs{},
			wantCalls: []string{"ns-descs", "id-ns"},
		},
		{
			name:      "both fail",
			replies:   map[string]reply{"ns-descs": {status: 0x4002}, "id-ns": {status: 0x400b}},
			wantCalls: []string{"ns-descs", "id-ns"},
			wantErr:   "identify namespace on /dev/nvme0n1: NVMe status 0x400b",
		},
		{
			name:      "ioctl error on descriptors is not a fallback",
			replies:   map[string]reply{"ns-descs": {err: errors.New("no such device")}},
			wantCalls: []string{"ns-descs"},
			wantErr:   "no such device",
		},
		{
			name:      "descriptor with a wrong length",
			replies:   map[string]reply{"ns-descs": {data: descList(desc{nidtEUI64, eui[:4]})}},
			wantCalls: []string{"ns-descs"},
			wantErr:   "type 1 has length 4, want 8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{replies: tt.replies}
			got, err := Client{Admin: f}.NamespaceIDs("/dev/nvme0n1", 1)
			if !reflect.DeepEqual(f.keys(), tt.wantCalls) {
				t.Errorf("commands = %v, want %v", f.keys(), tt.wantCalls)
			}
			for _, c := range f.calls {
				wantCDW10 := map[string]uint32{"ns-descs": 0x03, "id-ns": 0x00}[key(&c.cmd)]
				if c.cmd.Opcode != 0x06 || c.cmd.NSID != 1 || c.cmd.CDW10 != wantCDW10 || c.dataLen != 4096 || c.path != "/dev/nvme0n1" {
					t.Errorf("command %+v (%d bytes, %s): want opcode 0x06 nsid 1 cdw10 0x%02x, 4096 bytes", c.cmd, c.dataLen, c.path, wantCDW10)
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseDescriptorsBounds(t *testing.T) {
	// An entry whose NID runs past the end of the buffer.
	b := []byte{nidtNGUID, 16, 0, 0, 1, 2, 3}
	if _, err := parseDescriptors(b); err == nil || !strings.Contains(err.Error(), "runs past") {
		t.Fatalf("err = %v, want a runs-past error", err)
	}
	// A list that fills the buffer without a terminator is fine.
	b = append([]byte{nidtEUI64, 8, 0, 0}, eui...)
	if ids, err := parseDescriptors(b); err != nil || ids.EUI64 != "00a0b0c0d0e0f001" {
		t.Fatalf("got %+v, %v", ids, err)
	}
}
