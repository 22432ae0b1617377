package volume

import "sort"

// RoundUp rounds n up to a multiple of unit (unit > 0).
func RoundUp(n, unit uint64) uint64 {
	if n%unit == 0 {
		return n
	}
	return (n/unit + 1) * unit
}

// RoundDown rounds n down to a multiple of unit (unit > 0).
func RoundDown(n, unit uint64) uint64 { return n / unit * unit }

// ThickCapacity is what a thick class can still hand out: the VG's free bytes minus the
// reserve, and the largest single volume. A linear LV may span PVs, so its maximum is all
// of that; a striped LV needs size/stripes on each of `stripes` distinct PVs, so its maximum
// is stripes × the stripes-th largest PV free space (itself capped by the total).
// Results are multiples of the allocation unit (extent × stripes).
func ThickCapacity(pvFree []uint64, reserve, extent uint64, stripes int) (available, maxVolume uint64) {
	var total uint64
	for _, f := range pvFree {
		total += f
	}
	if total <= reserve {
		return 0, 0
	}
	available = RoundDown(total-reserve, extent)
	if stripes <= 1 {
		return available, available
	}
	if len(pvFree) < stripes {
		return available, 0
	}
	sorted := append([]uint64(nil), pvFree...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
	maxVolume = RoundDown(sorted[stripes-1], extent) * uint64(stripes)
	if maxVolume > available {
		maxVolume = RoundDown(available, extent*uint64(stripes))
	}
	return available, maxVolume
}

// ThinPoolState is what capacity needs to know about a thin pool.
type ThinPoolState struct {
	PoolSize        uint64  // bytes of data space
	DataPercent     float64 // used data, 0..100
	MetadataPercent float64 // used metadata, 0..100
	VirtualUsed     uint64  // sum of the virtual sizes of the thin volumes and snapshots in it
}

// Headroom thresholds above which a thin class reports no capacity: a pool that runs out
// of data or metadata space stalls every volume in it, so new volumes are refused first.
const (
	ThinDataFullPercent     = 95.0
	ThinMetadataFullPercent = 90.0
)

// ThinCapacity is pool size × overprovision ratio minus the virtual sizes already handed
// out, and zero when the pool's real data or metadata usage passed the headroom thresholds.
func ThinCapacity(p ThinPoolState, ratio float64, extent uint64) uint64 {
	if p.DataPercent >= ThinDataFullPercent || p.MetadataPercent >= ThinMetadataFullPercent {
		return 0
	}
	virt := uint64(float64(p.PoolSize) * ratio)
	if virt <= p.VirtualUsed {
		return 0
	}
	return RoundDown(virt-p.VirtualUsed, extent)
}

// SizeRequest is a CSI capacity range after validation.
type SizeRequest struct {
	Required, Limit uint64 // 0 = unset
}

// DefaultVolumeSize is used when CreateVolume names no size.
const DefaultVolumeSize = 1 << 30

// Allocate picks the LV size for a request: the required size (or the default, or the limit
// if smaller) rounded up to the allocation unit and at least min. It fails when the rounded
// size exceeds the limit.
func Allocate(r SizeRequest, unit, min uint64) (uint64, bool) {
	size := r.Required
	if size == 0 {
		size = DefaultVolumeSize
		if r.Limit != 0 && r.Limit < size {
			size = r.Limit
		}
	}
	if size < min {
		size = min
	}
	size = RoundUp(size, unit)
	if r.Limit != 0 && size > r.Limit {
		return 0, false
	}
	return size, true
}

// Satisfies reports whether an existing size answers a request (for idempotent retries).
func Satisfies(size uint64, r SizeRequest) bool {
	return size >= r.Required && (r.Limit == 0 || size <= r.Limit)
}
