package nvme

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Critical Warning bits of the SMART / Health Information log (byte 0).
const (
	WarnSpare          uint8 = 1 << 0 // available spare below its threshold
	WarnTemperature    uint8 = 1 << 1 // temperature above an over- or below an under-temperature threshold
	WarnReliability    uint8 = 1 << 2 // NVM subsystem reliability degraded (media errors, internal errors)
	WarnReadOnly       uint8 = 1 << 3 // media placed in read-only mode
	WarnVolatileBackup uint8 = 1 << 4 // volatile memory backup device failed
	WarnPMRReadOnly    uint8 = 1 << 5 // persistent memory region became read-only or unreliable
)

var warningNames = [8]string{
	"spare-below-threshold",
	"temperature",
	"reliability-degraded",
	"read-only",
	"volatile-backup-failed",
	"pmr-read-only",
	"warning-bit6", // reserved
	"warning-bit7", // reserved
}

// HealthLog is the decoded SMART / Health Information log page (log identifier 02h).
// The 128-bit counters are little-endian in the page and saturate at math.MaxUint64 here.
type HealthLog struct {
	CriticalWarning   uint8  // WarnSpare | WarnTemperature | …
	TemperatureKelvin uint16 // composite temperature; 0 = not reported

	AvailableSpare, AvailableSpareThreshold, PercentageUsed uint8 // percent; PercentageUsed may exceed 100

	DataUnitsRead, DataUnitsWritten     uint64 // in thousands of 512-byte units
	HostReadCommands, HostWriteCommands uint64
	ControllerBusyTime                  uint64 // minutes
	PowerCycles, PowerOnHours           uint64
	UnsafeShutdowns, MediaErrors        uint64
	ErrorLogEntries                     uint64
}

func healthCmd() *Command {
	numdl := uint32(SMARTLogSize/4 - 1)
	return &Command{Opcode: OpGetLogPage, NSID: NSIDAll, CDW10: LogSMART | numdl<<16}
}

// Health reads the controller-wide SMART / Health Information log page through path (the
// controller /dev/nvmeX or one of its namespaces): Get Log Page, LID 02h, 512 bytes,
// NSID FFFFFFFFh.
func (c Client) Health(path string) (*HealthLog, error) {
	b, err := c.exec("get log page smart", path, healthCmd(), SMARTLogSize)
	if err != nil {
		return nil, err
	}
	return ParseHealthLog(b)
}

// ParseHealthLog decodes a SMART / Health Information log page (at least 192 bytes; the
// page is 512).
func ParseHealthLog(b []byte) (*HealthLog, error) {
	if len(b) < 192 {
		return nil, fmt.Errorf("SMART log is %d bytes, want at least 192", len(b))
	}
	return &HealthLog{
		CriticalWarning:         b[0],
		TemperatureKelvin:       binary.LittleEndian.Uint16(b[1:3]),
		AvailableSpare:          b[3],
		AvailableSpareThreshold: b[4],
		PercentageUsed:          b[5],
		DataUnitsRead:           u128(b[32:48]),
		DataUnitsWritten:        u128(b[48:64]),
		HostReadCommands:        u128(b[64:80]),
		HostWriteCommands:       u128(b[80:96]),
		ControllerBusyTime:      u128(b[96:112]),
		PowerCycles:             u128(b[112:128]),
		PowerOnHours:            u128(b[128:144]),
		UnsafeShutdowns:         u128(b[144:160]),
		MediaErrors:             u128(b[160:176]),
		ErrorLogEntries:         u128(b[176:192]),
	}, nil
}

// u128 reads a 16-byte little-endian counter, saturating at math.MaxUint64.
func u128(b []byte) uint64 {
	if binary.LittleEndian.Uint64(b[8:16]) != 0 {
		return math.MaxUint64
	}
	return binary.LittleEndian.Uint64(b[0:8])
}

// TemperatureCelsius is the composite temperature in °C (Kelvin − 273, rounded down from
// 273.15). A controller that reports no temperature (0 K) gives −273.
func (h *HealthLog) TemperatureCelsius() int {
	return int(h.TemperatureKelvin) - 273
}

// WarningNames names the set Critical Warning bits, lowest bit first, e.g.
// ["spare-below-threshold","read-only"]; nil when none is set. Reserved bits 6-7 are
// named "warning-bit6"/"warning-bit7".
func (h *HealthLog) WarningNames() []string {
	var names []string
	for i, name := range warningNames {
		if h.CriticalWarning&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return names
}

// Degraded reports whether the drive needs attention: any Critical Warning bit, available
// spare below its threshold, or percentage used at or above 100 (rated endurance
// consumed). The reasons are human-readable, one per finding.
func (h *HealthLog) Degraded() (bool, []string) {
	var reasons []string
	if h.CriticalWarning != 0 {
		reasons = append(reasons, fmt.Sprintf("critical warning 0x%02x: %v", h.CriticalWarning, h.WarningNames()))
	}
	if h.AvailableSpare < h.AvailableSpareThreshold {
		reasons = append(reasons, fmt.Sprintf("available spare %d%% is below its threshold %d%%", h.AvailableSpare, h.AvailableSpareThreshold))
	}
	if h.PercentageUsed >= 100 {
		reasons = append(reasons, fmt.Sprintf("percentage used %d%%: rated endurance consumed", h.PercentageUsed))
	}
	return len(reasons) > 0, reasons
}
