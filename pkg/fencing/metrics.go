package fencing

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/localnvme/localnvme/pkg/fenceapi"
)

var (
	lostDesc = prometheus.NewDesc("localnvme_lost_volumes",
		"PVs of this driver marked lost: their node has a volume group of their device class with another UUID (disks wiped, replaced or rebuilt).",
		[]string{"node", "class"}, nil)
	nodeLossDesc = prometheus.NewDesc("localnvme_node_loss_volumes",
		"PVs of this driver whose node counts as lost, by trigger (node-deleted, out-of-service, volume-lost) and decision (waiting, kept, released, skipped).",
		[]string{"node", "trigger", "decision"}, nil)
	fencedDesc = prometheus.NewDesc("localnvme_fenced_volumes",
		"PVs of this driver fenced by a release (never staged again; removed by their reclaim).",
		[]string{"node"}, nil)
)

// Collector exports the controller's view at scrape time, from its informer cache (no API
// call). Register it on the leader only: a follower has no synced view.
type Collector struct{ c *Controller }

// Collector returns the controller's metrics collector.
func (c *Controller) Collector() prometheus.Collector { return Collector{c} }

// Describe implements prometheus.Collector.
func (Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lostDesc
	ch <- nodeLossDesc
	ch <- fencedDesc
}

// Collect implements prometheus.Collector.
func (m Collector) Collect(ch chan<- prometheus.Metric) {
	if !m.c.Synced() {
		return
	}
	pvs, err := m.c.pvs.List(labels.Everything())
	if err != nil {
		return
	}
	type lossKey struct{ node, trigger, decision string }
	lost := map[[2]string]int{}
	loss := map[lossKey]int{}
	fenced := map[string]int{}
	for _, pv := range pvs {
		v, ours, err := ParseVolume(pv)
		if !ours || err != nil {
			continue
		}
		a := pv.Annotations
		if t := a[fenceapi.AnnotationTrigger]; t != "" {
			loss[lossKey{v.Node, t, a[fenceapi.AnnotationDecision]}]++
			if t == string(fenceapi.TriggerVolumeLost) {
				lost[[2]string{v.Node, v.ID.Class}]++
			}
		}
		if fenceapi.IsFenced(a) {
			fenced[v.Node]++
		}
	}
	for k, n := range lost {
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	for k, n := range loss {
		ch <- prometheus.MustNewConstMetric(nodeLossDesc, prometheus.GaugeValue, float64(n), k.node, k.trigger, k.decision)
	}
	for k, n := range fenced {
		ch <- prometheus.MustNewConstMetric(fencedDesc, prometheus.GaugeValue, float64(n), k)
	}
}
