package node

import (
	"time"

	utilexec "k8s.io/utils/exec"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/nvme"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Parts are the node's OS-facing pieces and the engine over them, before any setup runs.
// The node plugin (Build) and the operator CLI (`localnvme disks`) share them.
type Parts struct {
	Exec   utilexec.Interface
	LVM    *lvm.Client
	Prober *disk.Prober
	Engine *volume.Engine
}

// defaultReportMaxAge bounds how stale the cached LVM report may get.
const defaultReportMaxAge = 30 * time.Second

// NewParts wires the LVM client, disk discovery and the engine. Nothing is touched.
func NewParts(o Options) *Parts {
	ex := o.Exec
	if ex == nil {
		ex = utilexec.New()
	}
	maxAge := o.ReportMaxAge
	if maxAge == 0 {
		maxAge = defaultReportMaxAge
	}
	l := lvm.New(ex, lvm.Options{Config: o.LVMConfig, MaxAge: maxAge, CommandTimeout: o.LVMCommandTimeout, OnCommand: o.LVMOnCommand})
	prober := &disk.Prober{Exec: ex, Timeout: o.BlkidTimeout}
	nv := nvme.Client{} // NVMe admin ioctl: namespace identifiers and SMART health
	discoverer := disk.Discoverer{SysRoot: o.SysRoot, DevRoot: o.DevRoot, IDs: nv}
	eng := volume.New(l, disks{Discoverer: discoverer, Prober: prober}, volume.DeviceIO{}, o.Config)
	eng.SetDriveHealth(nv)
	return &Parts{Exec: ex, LVM: l, Prober: prober, Engine: eng}
}
