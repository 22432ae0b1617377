// Package nodesync is the node plugin's side of the node-loss contract (pkg/fenceapi),
// running only in a cluster: it publishes the node's incarnation (the VG UUID of every
// device class) in a Node annotation, fences the LVs of PVs the fencing controller
// released, and reports LVs of this driver that no PV names (orphans). It never deletes
// anything.
package nodesync

import (
	"context"
	"time"

	"github.com/localnvme/localnvme/pkg/volume"
)

// Engine is the part of *volume.Engine the node sync uses.
type Engine interface {
	Classes() []*volume.Class
	ClassVGs(ctx context.Context) ([]volume.ClassVG, error)
	Resolve(ctx context.Context, id string, want volume.Kind) (*volume.Volume, error)
	Fence(ctx context.Context, id, reason string) error
	List(ctx context.Context, kind volume.Kind) ([]*volume.Volume, error)
}

// Recorder records Events on this node's Node object (*events.Reporter).
type Recorder interface {
	VolumeFenced(pv, claim, lv, reason string)
	OrphanVolume(volumeID, lv string, age time.Duration)
}

var _ Engine = (*volume.Engine)(nil)
