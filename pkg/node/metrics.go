package node

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/metrics"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Ready is nil when at least one device class is ready, else an error naming the refused
// classes (the health endpoint's answer).
func (n *Node) Ready() error {
	var refused []string
	for _, c := range n.Engine.Classes() {
		if c.Ready {
			return nil
		}
		refused = append(refused, c.Name)
	}
	if len(refused) == 0 {
		return fmt.Errorf("no device class is configured")
	}
	// Names only: /healthz is unauthenticated; the probe details (devices, signatures) are
	// in the log of the class setup and in `localnvme disks list`.
	return fmt.Errorf("no device class is ready: %s refused (why: the node plugin's log or `localnvme disks list`)", strings.Join(refused, ", "))
}

// driveCacheTTL: how long one read of the drives' NVMe health logs answers scrapes.
const driveCacheTTL = 5 * time.Second

// metricsSource answers the metrics collector from the engine: class state from one LVM
// report, drives from the classes' members and refusals (recorded at setup), health from
// the NVMe health log (one ioctl per drive, shared by the scrapes of driveCacheTTL:
// concurrent scrapes wait for the one read in progress instead of issuing their own).
type metricsSource struct {
	eng *volume.Engine
	now func() time.Time // time.Now unless a test sets it

	mu     sync.Mutex // held while reading, so concurrent scrapes share one read
	at     time.Time
	drives []metrics.DriveStat
}

func newMetricsSource(eng *volume.Engine) *metricsSource {
	return &metricsSource{eng: eng, now: time.Now}
}

func (s *metricsSource) Classes(ctx context.Context) ([]metrics.ClassStat, error) {
	stats, err := s.eng.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.ClassStat, 0, len(stats))
	for _, st := range stats {
		out = append(out, metrics.ClassStat{
			Class: st.Class, Type: st.Type, VolumeGroup: st.VolumeGroup, Ready: st.Ready,
			TotalBytes: st.Total, FreeBytes: st.Free, AllocatedBytes: st.Allocated,
			Volumes: st.Volumes, Snapshots: st.Snapshots,
		})
	}
	return out, nil
}

// Drives lists each class's members and the drives it refused (the first reason code as
// the label), sorted by class and name, each with its NVMe health when it can be read.
func (s *metricsSource) Drives(context.Context) ([]metrics.DriveStat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drives != nil && s.now().Sub(s.at) < driveCacheTTL {
		return append([]metrics.DriveStat(nil), s.drives...), nil
	}
	out := s.readDrives()
	s.drives, s.at = out, s.now()
	return append([]metrics.DriveStat(nil), out...), nil
}

func (s *metricsSource) readDrives() []metrics.DriveStat {
	out := []metrics.DriveStat{}
	add := func(c *volume.Class, ns disk.Namespace, reason string) {
		d := metrics.DriveStat{
			Name: ns.Name, Identity: ns.Identity(), Serial: ns.Serial, Model: ns.Model,
			Class: c.Name, SizeBytes: uint64(max(ns.SizeBytes, 0)), Refused: reason != "", RefusalReason: reason,
		}
		if h, err := s.eng.DriveHealth(ns); err == nil && h != nil {
			bad, _ := h.Degraded()
			d.Health = &metrics.DriveHealth{
				Degraded: bad, CriticalWarning: h.CriticalWarning, TemperatureCelsius: h.TemperatureCelsius(),
				AvailableSpare: h.AvailableSpare, AvailableSpareThreshold: h.AvailableSpareThreshold,
				PercentageUsed: h.PercentageUsed, MediaErrors: h.MediaErrors, UnsafeShutdowns: h.UnsafeShutdowns,
				PowerOnHours: h.PowerOnHours,
			}
		}
		out = append(out, d)
	}
	for _, c := range s.eng.Classes() {
		for _, ns := range c.Members {
			add(c, ns, "")
		}
		for _, r := range c.Refused {
			reason := "refused"
			if len(r.Codes) > 0 {
				reason = r.Codes[0]
			}
			add(c, r.Namespace, reason)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Class != out[j].Class {
			return out[i].Class < out[j].Class
		}
		return out[i].Name < out[j].Name
	})
	return out
}
