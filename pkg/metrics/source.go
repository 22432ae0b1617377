package metrics

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// ClassStat is one device class as the collector sees it at scrape time.
type ClassStat struct {
	Class, Type, VolumeGroup string
	// Ready: the class can serve volumes. The capacity and volume fields are exported only
	// for ready classes.
	Ready                                 bool
	TotalBytes, FreeBytes, AllocatedBytes uint64
	Volumes, Snapshots                    int
}

// DriveStat is one NVMe namespace a device class selected.
type DriveStat struct {
	Name, Identity, Serial, Model, Class string
	SizeBytes                            uint64
	// Refused: the drive keeps its class from being set up; RefusalReason is a short code
	// ("signature", "partition-table", …) or the problem text.
	Refused       bool
	RefusalReason string
	// Health is nil when no SMART / health log was read.
	Health *DriveHealth
}

// DriveHealth is the drive's NVMe SMART / health information log.
type DriveHealth struct {
	Degraded                                                bool
	CriticalWarning                                         uint8
	TemperatureCelsius                                      int
	AvailableSpare, AvailableSpareThreshold, PercentageUsed uint8 // percent, as the log reports them
	MediaErrors, UnsafeShutdowns, PowerOnHours              uint64
}

// Source is what the collector asks at every scrape. It must be safe for concurrent use
// (scrapes may overlap) and should honour ctx.
type Source interface {
	Classes(ctx context.Context) ([]ClassStat, error)
	Drives(ctx context.Context) ([]DriveStat, error)
}

// SourceTimeout bounds each Source call of a scrape.
const SourceTimeout = 10 * time.Second

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	classLabels = []string{"class", "type", "vg"}
	driveLabels = []string{"drive", "identity"}

	descClassReady    = desc("class_ready", "1 when the device class is set up and can serve volumes, else 0.", classLabels...)
	descClassCapacity = desc("class_capacity_bytes", "Device class capacity: total (thick: VG size; thin: pool data size), free (what can still be provisioned; thin: after overprovisioning), allocated (sum of volume sizes; thin: virtual).", "class", "type", "vg", "kind")
	descClassVolumes  = desc("class_volumes", "Volumes and snapshots in the device class.", "class", "kind")

	descDriveInfo         = desc("drive_info", "NVMe namespace selected by a device class (always 1).", "drive", "identity", "serial", "model", "class")
	descDriveSize         = desc("drive_size_bytes", "Size of the NVMe namespace.", driveLabels...)
	descDriveRefused      = desc("drive_refused", "1 for each drive that keeps its device class from being set up, with the reason.", "drive", "identity", "reason")
	descDriveDegraded     = desc("drive_degraded", "1 when the drive's health log reports it degraded, else 0.", driveLabels...)
	descDriveCritical     = desc("drive_critical_warning", "NVMe SMART critical warning bit field (0 = none).", driveLabels...)
	descDriveTemperature  = desc("drive_temperature_celsius", "Composite temperature of the drive.", driveLabels...)
	descDriveSpare        = desc("drive_available_spare_ratio", "Available spare capacity (0..1).", driveLabels...)
	descDriveSpareThresh  = desc("drive_available_spare_threshold_ratio", "Available spare threshold below which the drive warns (0..1).", driveLabels...)
	descDriveUsed         = desc("drive_percentage_used_ratio", "Vendor estimate of the drive's life used (1 = 100%, may exceed 1).", driveLabels...)
	descDriveMediaErrors  = desc("drive_media_errors_total", "Unrecovered data integrity errors over the drive's life.", driveLabels...)
	descDriveUnsafe       = desc("drive_unsafe_shutdowns_total", "Unsafe shutdowns over the drive's life.", driveLabels...)
	descDrivePowerOnHours = desc("drive_power_on_hours", "Power-on hours of the drive.", driveLabels...)
)

// Register adds the class and drive collector: every scrape calls src (each call bounded by
// SourceTimeout) and exports the localnvme_class_* and localnvme_drive_* series. A failing
// call increments localnvme_scrape_errors_total and leaves its series out of that scrape;
// the scrape itself succeeds. Call it once per Metrics.
func (m *Metrics) Register(src Source) {
	m.reg.MustRegister(&sourceCollector{
		src: src,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "scrape_errors_total",
			Help:      "Errors reading class or drive state while collecting metrics.",
		}),
	})
}

type sourceCollector struct {
	src    Source
	errors prometheus.Counter
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descClassReady, descClassCapacity, descClassVolumes,
		descDriveInfo, descDriveSize, descDriveRefused, descDriveDegraded, descDriveCritical,
		descDriveTemperature, descDriveSpare, descDriveSpareThresh, descDriveUsed,
		descDriveMediaErrors, descDriveUnsafe, descDrivePowerOnHours,
	} {
		ch <- d
	}
	c.errors.Describe(ch)
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if classes, err := c.classes(); err != nil {
		c.fail(err, "classes")
	} else {
		collectClasses(ch, classes)
	}
	if drives, err := c.drives(); err != nil {
		c.fail(err, "drives")
	} else {
		collectDrives(ch, drives)
	}
	// Collected last, so a scrape already counts its own errors.
	c.errors.Collect(ch)
}

func (c *sourceCollector) classes() ([]ClassStat, error) {
	ctx, cancel := context.WithTimeout(context.Background(), SourceTimeout)
	defer cancel()
	return c.src.Classes(ctx)
}

func (c *sourceCollector) drives() ([]DriveStat, error) {
	ctx, cancel := context.WithTimeout(context.Background(), SourceTimeout)
	defer cancel()
	return c.src.Drives(ctx)
}

func (c *sourceCollector) fail(err error, what string) {
	c.errors.Inc()
	klog.Background().Error(err, "Collecting metrics failed", "source", what)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, validLabels(labels)...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, validLabels(labels)...)
}

// validLabels makes every label value valid UTF-8: values come from sysfs and NVMe
// Identify (serial, model, firmware), which a drive may fill with any bytes, and
// MustNewConstMetric panics on invalid UTF-8 — one odd drive must not crash every scrape.
func validLabels(labels []string) []string {
	for i, l := range labels {
		if !utf8.ValidString(l) {
			out := append([]string(nil), labels...)
			for j := i; j < len(out); j++ {
				out[j] = strings.ToValidUTF8(out[j], "\ufffd")
			}
			return out
		}
	}
	return labels
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func collectClasses(ch chan<- prometheus.Metric, classes []ClassStat) {
	seen := map[string]bool{}
	for _, s := range classes {
		if seen[s.Class] { // a duplicate series would fail the whole scrape
			continue
		}
		seen[s.Class] = true
		gauge(ch, descClassReady, boolValue(s.Ready), s.Class, s.Type, s.VolumeGroup)
		if !s.Ready {
			continue
		}
		gauge(ch, descClassCapacity, float64(s.TotalBytes), s.Class, s.Type, s.VolumeGroup, "total")
		gauge(ch, descClassCapacity, float64(s.FreeBytes), s.Class, s.Type, s.VolumeGroup, "free")
		gauge(ch, descClassCapacity, float64(s.AllocatedBytes), s.Class, s.Type, s.VolumeGroup, "allocated")
		gauge(ch, descClassVolumes, float64(s.Volumes), s.Class, "volume")
		gauge(ch, descClassVolumes, float64(s.Snapshots), s.Class, "snapshot")
	}
}

func collectDrives(ch chan<- prometheus.Metric, drives []DriveStat) {
	seen := map[[2]string]bool{}
	for _, d := range drives {
		key := [2]string{d.Name, d.Identity}
		if seen[key] { // a drive selected by two classes: report it once
			continue
		}
		seen[key] = true
		gauge(ch, descDriveInfo, 1, d.Name, d.Identity, d.Serial, d.Model, d.Class)
		gauge(ch, descDriveSize, float64(d.SizeBytes), d.Name, d.Identity)
		if d.Refused {
			gauge(ch, descDriveRefused, 1, d.Name, d.Identity, d.RefusalReason)
		}
		h := d.Health
		if h == nil {
			continue
		}
		gauge(ch, descDriveDegraded, boolValue(h.Degraded), d.Name, d.Identity)
		gauge(ch, descDriveCritical, float64(h.CriticalWarning), d.Name, d.Identity)
		gauge(ch, descDriveTemperature, float64(h.TemperatureCelsius), d.Name, d.Identity)
		gauge(ch, descDriveSpare, float64(h.AvailableSpare)/100, d.Name, d.Identity)
		gauge(ch, descDriveSpareThresh, float64(h.AvailableSpareThreshold)/100, d.Name, d.Identity)
		gauge(ch, descDriveUsed, float64(h.PercentageUsed)/100, d.Name, d.Identity)
		counter(ch, descDriveMediaErrors, float64(h.MediaErrors), d.Name, d.Identity)
		counter(ch, descDriveUnsafe, float64(h.UnsafeShutdowns), d.Name, d.Identity)
		gauge(ch, descDrivePowerOnHours, float64(h.PowerOnHours), d.Name, d.Identity)
	}
}
