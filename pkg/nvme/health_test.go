package nvme

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
)

// smartLog builds a 512-byte SMART / Health Information page.
type smartLog struct {
	warn                uint8
	kelvin              uint16
	spare, thresh, used uint8
	counters            [10]uint64 // offsets 32, 48, … 176 (low 8 bytes)
	highCounter         int        // index into counters whose high 8 bytes are set; -1 none
}

func (s smartLog) bytes() []byte {
	b := make([]byte, SMARTLogSize)
	b[0] = s.warn
	binary.LittleEndian.PutUint16(b[1:3], s.kelvin)
	b[3], b[4], b[5] = s.spare, s.thresh, s.used
	for i, v := range s.counters {
		off := 32 + 16*i
		binary.LittleEndian.PutUint64(b[off:], v)
		if i == s.highCounter {
			binary.LittleEndian.PutUint64(b[off+8:], 1)
		}
	}
	return b
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name         string
		log          smartLog
		want         HealthLog
		celsius      int
		names        []string
		degraded     bool
		reasonsMatch []string // substrings, one per reason, in order
	}{
		{
			name: "healthy qemu drive",
			log:  smartLog{kelvin: 323, spare: 100, thresh: 10, counters: [10]uint64{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, highCounter: -1},
			want: HealthLog{TemperatureKelvin: 323, AvailableSpare: 100, AvailableSpareThreshold: 10,
				DataUnitsRead: 5, DataUnitsWritten: 6, HostReadCommands: 7, HostWriteCommands: 8, ControllerBusyTime: 9,
				PowerCycles: 10, PowerOnHours: 11, UnsafeShutdowns: 12, MediaErrors: 13, ErrorLogEntries: 14},
			celsius: 50,
		},
		{
			name:    "spare and reliability warnings (qemu crit=0x05)",
			log:     smartLog{warn: 0x05, kelvin: 323, spare: 100, thresh: 10, highCounter: -1},
			want:    HealthLog{CriticalWarning: 0x05, TemperatureKelvin: 323, AvailableSpare: 100, AvailableSpareThreshold: 10},
			celsius: 50, names: []string{"spare-below-threshold", "reliability-degraded"},
			degraded: true, reasonsMatch: []string{"critical warning 0x05: [spare-below-threshold reliability-degraded]"},
		},
		{
			name: "every bit",
			log:  smartLog{warn: 0xff, kelvin: 273, spare: 50, thresh: 10, highCounter: -1},
			want: HealthLog{CriticalWarning: 0xff, TemperatureKelvin: 273, AvailableSpare: 50, AvailableSpareThreshold: 10},
			names: []string{"spare-below-threshold", "temperature", "reliability-degraded", "read-only",
				"volatile-backup-failed", "pmr-read-only", "warning-bit6", "warning-bit7"},
			degraded: true, reasonsMatch: []string{"critical warning 0xff"},
		},
		{
			name:    "spare below threshold without the warning bit",
			log:     smartLog{kelvin: 300, spare: 5, thresh: 10, highCounter: -1},
			want:    HealthLog{TemperatureKelvin: 300, AvailableSpare: 5, AvailableSpareThreshold: 10},
			celsius: 27, degraded: true, reasonsMatch: []string{"available spare 5% is below its threshold 10%"},
		},
		{
			name:    "spare equal to threshold is fine",
			log:     smartLog{kelvin: 300, spare: 10, thresh: 10, highCounter: -1},
			want:    HealthLog{TemperatureKelvin: 300, AvailableSpare: 10, AvailableSpareThreshold: 10},
			celsius: 27,
		},
		{
			name:    "worn out, read-only",
			log:     smartLog{warn: 0x08, kelvin: 310, spare: 0, thresh: 10, used: 255, highCounter: -1},
			want:    HealthLog{CriticalWarning: 0x08, TemperatureKelvin: 310, AvailableSpareThreshold: 10, PercentageUsed: 255},
			celsius: 37, names: []string{"read-only"}, degraded: true,
			reasonsMatch: []string{"critical warning 0x08: [read-only]", "available spare 0% is below its threshold 10%", "percentage used 255%"},
		},
		{
			name:    "percentage used exactly 100",
			log:     smartLog{kelvin: 300, spare: 100, thresh: 10, used: 100, highCounter: -1},
			want:    HealthLog{TemperatureKelvin: 300, AvailableSpare: 100, AvailableSpareThreshold: 10, PercentageUsed: 100},
			celsius: 27, degraded: true, reasonsMatch: []string{"percentage used 100%"},
		},
		{
			name:    "percentage used 99 is fine",
			log:     smartLog{kelvin: 300, spare: 100, thresh: 10, used: 99, highCounter: -1},
			want:    HealthLog{TemperatureKelvin: 300, AvailableSpare: 100, AvailableSpareThreshold: 10, PercentageUsed: 99},
			celsius: 27,
		},
		{
			name:    "128-bit counter saturates",
			log:     smartLog{kelvin: 300, spare: 100, counters: [10]uint64{1: 42, 9: math.MaxUint64}, highCounter: 1},
			want:    HealthLog{TemperatureKelvin: 300, AvailableSpare: 100, DataUnitsWritten: math.MaxUint64, ErrorLogEntries: math.MaxUint64},
			celsius: 27,
		},
		{
			name:    "no temperature reported",
			log:     smartLog{spare: 100, highCounter: -1},
			want:    HealthLog{AvailableSpare: 100},
			celsius: -273,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{replies: map[string]reply{"log": {data: tt.log.bytes()}}}
			h, err := Client{Admin: f}.Health("/dev/nvme2")
			if err != nil {
				t.Fatal(err)
			}
			if len(f.calls) != 1 {
				t.Fatalf("calls = %d, want 1", len(f.calls))
			}
			c := f.calls[0]
			// Get Log Page, LID 02h, NUMDL = 512/4 - 1 = 127 (0x7f) in cdw10[31:16].
			wantCmd := Command{Opcode: 0x02, NSID: 0xFFFFFFFF, CDW10: 0x007f0002}
			if c.cmd != wantCmd || c.dataLen != 512 || c.path != "/dev/nvme2" {
				t.Errorf("command %+v (%d bytes, %s), want %+v, 512 bytes", c.cmd, c.dataLen, c.path, wantCmd)
			}
			if !reflect.DeepEqual(*h, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *h, tt.want)
			}
			if got := h.TemperatureCelsius(); got != tt.celsius {
				t.Errorf("TemperatureCelsius = %d, want %d", got, tt.celsius)
			}
			if got := h.WarningNames(); !reflect.DeepEqual(got, tt.names) {
				t.Errorf("WarningNames = %q, want %q", got, tt.names)
			}
			deg, reasons := h.Degraded()
			if deg != tt.degraded || len(reasons) != len(tt.reasonsMatch) {
				t.Fatalf("Degraded = %v %q, want %v with %d reasons", deg, reasons, tt.degraded, len(tt.reasonsMatch))
			}
			for i, sub := range tt.reasonsMatch {
				if !strings.Contains(reasons[i], sub) {
					t.Errorf("reason %d = %q, want it to contain %q", i, reasons[i], sub)
				}
			}
		})
	}
}

func TestHealthErrors(t *testing.T) {
	f := &fakeAdmin{replies: map[string]reply{"log": {status: 0x4109}}} // Invalid Log Page
	if _, err := (Client{Admin: f}).Health("/dev/nvme0"); err == nil || !strings.Contains(err.Error(), "sct 0x1, sc 0x09") {
		t.Fatalf("err = %v, want the NVMe status", err)
	}
	if _, err := ParseHealthLog(make([]byte, 100)); err == nil {
		t.Fatal("a 100-byte log parsed")
	}
}
