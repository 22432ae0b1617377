package volume

import "testing"

const mi = 1 << 20

func TestThickCapacity(t *testing.T) {
	tests := []struct {
		name               string
		free               []uint64
		reserve, extent    uint64
		stripes            int
		wantAvail, wantMax uint64
	}{
		{"linear spans PVs", []uint64{100 * mi, 60 * mi}, 0, 4 * mi, 1, 160 * mi, 160 * mi},
		{"reserve subtracted", []uint64{100 * mi, 60 * mi}, 40 * mi, 4 * mi, 1, 120 * mi, 120 * mi},
		{"reserve exceeds free", []uint64{8 * mi}, 16 * mi, 4 * mi, 1, 0, 0},
		{"rounded down to extents", []uint64{10 * mi}, 0, 4 * mi, 1, 8 * mi, 8 * mi},
		{"striped limited by smaller PV", []uint64{100 * mi, 60 * mi}, 0, 4 * mi, 2, 160 * mi, 120 * mi},
		{"striped uses 2nd largest of 3", []uint64{100 * mi, 20 * mi, 80 * mi}, 0, 4 * mi, 2, 200 * mi, 160 * mi},
		{"striped needs enough PVs", []uint64{100 * mi}, 0, 4 * mi, 2, 100 * mi, 0},
		{"striped capped by reserve", []uint64{100 * mi, 100 * mi}, 120 * mi, 4 * mi, 2, 80 * mi, 80 * mi},
		{"empty VG", nil, 0, 4 * mi, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			avail, max := ThickCapacity(tt.free, tt.reserve, tt.extent, tt.stripes)
			if avail != tt.wantAvail || max != tt.wantMax {
				t.Errorf("ThickCapacity = (%d, %d) MiB, want (%d, %d) MiB", avail/mi, max/mi, tt.wantAvail/mi, tt.wantMax/mi)
			}
			if max > avail {
				t.Errorf("max volume %d exceeds available %d", max, avail)
			}
		})
	}
}

func TestThinCapacity(t *testing.T) {
	tests := []struct {
		name  string
		st    ThinPoolState
		ratio float64
		want  uint64
	}{
		{"no overprovision", ThinPoolState{PoolSize: 1000 * mi}, 1, 1000 * mi},
		{"overprovision x5", ThinPoolState{PoolSize: 1000 * mi, VirtualUsed: 1000 * mi}, 5, 4000 * mi},
		{"fully handed out", ThinPoolState{PoolSize: 1000 * mi, VirtualUsed: 1000 * mi}, 1, 0},
		{"over-handed (ratio lowered)", ThinPoolState{PoolSize: 1000 * mi, VirtualUsed: 3000 * mi}, 2, 0},
		{"data nearly full", ThinPoolState{PoolSize: 1000 * mi, DataPercent: 95}, 10, 0},
		{"metadata nearly full", ThinPoolState{PoolSize: 1000 * mi, MetadataPercent: 90.5}, 10, 0},
		{"busy but below thresholds", ThinPoolState{PoolSize: 1000 * mi, DataPercent: 94.9, MetadataPercent: 89}, 1, 1000 * mi},
		{"rounded to extent", ThinPoolState{PoolSize: 1002 * mi}, 1, 1000 * mi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ThinCapacity(tt.st, tt.ratio, 4*mi); got != tt.want {
				t.Errorf("ThinCapacity = %d MiB, want %d MiB", got/mi, tt.want/mi)
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name      string
		req       SizeRequest
		unit, min uint64
		want      uint64
		ok        bool
	}{
		{"exact", SizeRequest{Required: 64 * mi}, 4 * mi, 0, 64 * mi, true},
		{"rounded up to extent", SizeRequest{Required: 65 * mi}, 4 * mi, 0, 68 * mi, true},
		{"rounded up to stripes x extent", SizeRequest{Required: 65 * mi}, 8 * mi, 0, 72 * mi, true},
		{"default size", SizeRequest{}, 4 * mi, 0, DefaultVolumeSize, true},
		{"default capped by limit", SizeRequest{Limit: 100 * mi}, 4 * mi, 0, 100 * mi, true},
		{"rounding exceeds limit", SizeRequest{Required: 65 * mi, Limit: 66 * mi}, 4 * mi, 0, 0, false},
		{"xfs minimum raises size", SizeRequest{Required: 64 * mi}, 4 * mi, 300 * mi, 300 * mi, true},
		{"xfs minimum over limit", SizeRequest{Required: 64 * mi, Limit: 128 * mi}, 4 * mi, 300 * mi, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Allocate(tt.req, tt.unit, tt.min)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Allocate = (%d, %v), want (%d, %v)", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSatisfies(t *testing.T) {
	tests := []struct {
		size uint64
		r    SizeRequest
		want bool
	}{
		{64 * mi, SizeRequest{Required: 64 * mi}, true},
		{68 * mi, SizeRequest{Required: 65 * mi}, true},
		{64 * mi, SizeRequest{Required: 128 * mi, Limit: 128 * mi}, false},
		{128 * mi, SizeRequest{Required: 64 * mi, Limit: 100 * mi}, false},
		{64 * mi, SizeRequest{}, true},
	}
	for _, tt := range tests {
		if got := Satisfies(tt.size, tt.r); got != tt.want {
			t.Errorf("Satisfies(%d, %+v) = %v, want %v", tt.size, tt.r, got, tt.want)
		}
	}
}
