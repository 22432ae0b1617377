package fencing

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/volume"
)

// DriverName is the CSI driver whose PVs the controller looks after.
const DriverName = "localnvme.io"

// TopologyKey is the node topology key in this driver's PV node affinity.
const TopologyKey = "localnvme.io/node"

// Volume is what the controller reads from one of the driver's PVs.
type Volume struct {
	ID   volume.ID
	Node string
}

// ParseVolume reads a PV of this driver: its volume handle and the node its node affinity
// names. ok is false for PVs of other drivers; err is set for one of ours that cannot be
// read (the controller then takes no decision on it).
func ParseVolume(pv *corev1.PersistentVolume) (v Volume, ok bool, err error) {
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != DriverName {
		return v, false, nil
	}
	id, err := volume.ParseID(pv.Spec.CSI.VolumeHandle, volume.KindVolume)
	if err != nil {
		return v, true, fmt.Errorf("PV %s: %w", pv.Name, err)
	}
	v.ID = id
	v.Node = pvNode(pv)
	if v.Node == "" {
		return v, true, fmt.Errorf("PV %s: no %s in its node affinity", pv.Name, TopologyKey)
	}
	return v, true, nil
}

// pvNode is the value of the topology key in the PV's required node affinity ("" if none,
// or if the terms name more than one node).
func pvNode(pv *corev1.PersistentVolume) string {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	node := ""
	for _, t := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range t.MatchExpressions {
			if e.Key != TopologyKey || e.Operator != corev1.NodeSelectorOpIn || len(e.Values) != 1 {
				continue
			}
			if node != "" && node != e.Values[0] {
				return ""
			}
			node = e.Values[0]
		}
	}
	return node
}

// Input is everything one decision about one PV depends on: the controller's synced view.
type Input struct {
	PV *corev1.PersistentVolume
	// Node is the PV's node; nil when the Node object does not exist.
	Node *corev1.Node
	// Claim is the claim named by the PV's claimRef (by namespace and name); nil if none.
	Claim *corev1.PersistentVolumeClaim
	// Policy is the PV's node-loss policy; PolicyErr is set when it cannot be read.
	Policy    fenceapi.Policy
	PolicyErr error
	Now       time.Time
}

// Event is one Event the plan records, on the PV and on its claim when it has one.
type Event struct {
	Type, Reason, Message string
}

// Plan is what the controller does for one PV.
type Plan struct {
	// Annotations to set on the PV (nil value: remove). Empty: no patch.
	Annotations map[string]*string
	// Events recorded once the annotations are written.
	Events []Event
	// Release: delete the claim (UID precondition) and the pods that hold it and cannot
	// run, after the annotations (which fence the PV) are written.
	Release bool
	// Trigger of the release (for pod deletion: a deleted or out-of-service node's pods are
	// deleted without grace, since no kubelet will confirm).
	Trigger fenceapi.Trigger
	// Why is a one-line description of the trigger for messages.
	Why string
	// RequeueAfter asks for another look at this PV then (the delay running out).
	RequeueAfter time.Duration
}

func str(s string) *string { return &s }

// trigger tells whether the volume's node counts as lost, and why.
func trigger(v Volume, node *corev1.Node) (t fenceapi.Trigger, why, lost string) {
	if node == nil {
		return fenceapi.TriggerNodeDeleted, fmt.Sprintf("node %s was deleted", v.Node), ""
	}
	for _, taint := range node.Spec.Taints {
		if taint.Key == fenceapi.TaintOutOfService {
			return fenceapi.TriggerOutOfService, fmt.Sprintf("node %s carries the taint %s (%s)", v.Node, fenceapi.TaintOutOfService, taint.Effect), ""
		}
	}
	raw, ok := node.Annotations[fenceapi.AnnotationIncarnation]
	if !ok {
		return "", "", ""
	}
	in, err := fenceapi.ParseIncarnation(raw)
	if err != nil {
		return "", "", ""
	}
	cv, ok := in.Classes[v.ID.Class]
	// Lost needs positive evidence: the node has a volume group of the class's name with
	// another UUID. A class the node does not configure, or whose VG it does not see at all
	// (a drive missing at boot), may still come back: not lost.
	if !ok || cv.VGUUID == "" || cv.VGUUID == v.ID.VGUUID {
		return "", "", ""
	}
	lost = fmt.Sprintf("device class %s on node %s: the volume's volume group UUID is %s, the node now has %s (its disks were wiped, replaced or rebuilt)",
		v.ID.Class, v.Node, v.ID.VGUUID, cv.VGUUID)
	return fenceapi.TriggerVolumeLost, "volume lost: " + lost, lost
}

// Decide is the decision table: pure, from the controller's view of one PV of this driver.
// v is the PV parsed by ParseVolume.
func Decide(in Input, v Volume) Plan {
	pv := in.PV
	ann := pv.Annotations
	p := Plan{Annotations: map[string]*string{}}
	if fenceapi.IsFenced(ann) {
		// Released before. Finish an interrupted release (the claim with the old UID still
		// there), else nothing: the PV waits for its reclaim.
		if ann[fenceapi.AnnotationDecision] == fenceapi.DecisionReleased && claimMatches(pv, in.Claim) == "" &&
			ann[fenceapi.AnnotationReleasedClaim] == releasedClaim(in.Claim) {
			p.Release = true
			p.Trigger = fenceapi.Trigger(ann[fenceapi.AnnotationTrigger])
			p.Why = ann[fenceapi.AnnotationFenced]
		}
		return p
	}
	t, why, lost := trigger(v, in.Node)
	prev := fenceapi.Trigger(ann[fenceapi.AnnotationTrigger])
	if t == "" {
		if prev != "" {
			for _, k := range []string{fenceapi.AnnotationTrigger, fenceapi.AnnotationTriggerSince, fenceapi.AnnotationLost, fenceapi.AnnotationDecision} {
				p.Annotations[k] = nil
			}
			p.Events = append(p.Events, Event{corev1.EventTypeNormal, fenceapi.ReasonCleared,
				fmt.Sprintf("trigger %s no longer holds for node %s (the Node exists, has no %s taint and does not report another volume group for class %s) before any release: nothing was done", prev, v.Node, fenceapi.TaintOutOfService, v.ID.Class)})
		}
		return p
	}
	p.Trigger, p.Why = t, why

	since, err := time.Parse(time.RFC3339, ann[fenceapi.AnnotationTriggerSince])
	if prev == "" || err != nil {
		since = in.Now
		p.Annotations[fenceapi.AnnotationTriggerSince] = str(since.UTC().Format(time.RFC3339))
	}
	if prev != t {
		p.Annotations[fenceapi.AnnotationTrigger] = str(string(t))
		reason := fenceapi.ReasonNodeLost
		if t == fenceapi.TriggerVolumeLost {
			reason = fenceapi.ReasonVolumeLost
		}
		p.Events = append(p.Events, Event{corev1.EventTypeWarning, reason, why + "; " + policyLine(in)})
	}
	if lost != "" && ann[fenceapi.AnnotationLost] != lost {
		p.Annotations[fenceapi.AnnotationLost] = str(lost)
	}

	decision := func(d string, e Event) {
		if ann[fenceapi.AnnotationDecision] != d {
			p.Annotations[fenceapi.AnnotationDecision] = str(d)
			p.Events = append(p.Events, e)
		}
	}
	if in.PolicyErr != nil {
		decision(fenceapi.DecisionSkipped, Event{corev1.EventTypeWarning, fenceapi.ReasonSkipped,
			fmt.Sprintf("not releasing: the volume's node-loss policy cannot be read (%v); it is treated as keep. Fix the PV's volumeAttributes or release the claim by hand", in.PolicyErr)})
		return p
	}
	if in.Policy.Action != fenceapi.ActionRelease {
		decision(fenceapi.DecisionKept, Event{corev1.EventTypeWarning, fenceapi.ReasonKept,
			fmt.Sprintf("kept: %s; policy %s=keep leaves the claim bound to this volume, its pods wait for node %s. If the node will not come back with this volume, delete the claim (and its pods) so its workload can re-create it elsewhere",
				why, fenceapi.ParamOnNodeLoss, v.Node)})
		return p
	}
	due := since.Add(in.Policy.Delay)
	if in.Now.Before(due) {
		decision(fenceapi.DecisionWaiting, Event{corev1.EventTypeNormal, fenceapi.ReasonWaiting,
			fmt.Sprintf("waiting: %s; policy release will delete the claim at %s (delay %s) unless the node recovers first",
				why, due.UTC().Format(time.RFC3339), in.Policy.Delay)})
		p.RequeueAfter = due.Sub(in.Now)
		return p
	}
	if skip := claimMatches(pv, in.Claim); skip != "" {
		decision(fenceapi.DecisionSkipped, Event{corev1.EventTypeWarning, fenceapi.ReasonSkipped,
			fmt.Sprintf("not releasing: %s (%s)", skip, why)})
		return p
	}
	p.Annotations[fenceapi.AnnotationDecision] = str(fenceapi.DecisionReleased)
	p.Annotations[fenceapi.AnnotationFenced] = str(fenceapi.FenceReason(in.Now, why))
	p.Annotations[fenceapi.AnnotationReleasedClaim] = str(releasedClaim(in.Claim))
	p.Release = true
	return p
}

// claimMatches returns "" when the PV and its claim still reference each other (the claim
// of claimRef's namespace, name and UID, bound to this PV), else why not.
func claimMatches(pv *corev1.PersistentVolume, c *corev1.PersistentVolumeClaim) string {
	ref := pv.Spec.ClaimRef
	switch {
	case ref == nil:
		return "the PV has no claim"
	case c == nil:
		return fmt.Sprintf("claim %s/%s does not exist", ref.Namespace, ref.Name)
	case c.UID != ref.UID:
		return fmt.Sprintf("claim %s/%s was re-created (UID %s, the PV names %s): the new claim is not touched", ref.Namespace, ref.Name, c.UID, ref.UID)
	case c.Spec.VolumeName != pv.Name:
		return fmt.Sprintf("claim %s/%s is not bound to this PV (volumeName %q)", ref.Namespace, ref.Name, c.Spec.VolumeName)
	}
	return ""
}

func releasedClaim(c *corev1.PersistentVolumeClaim) string {
	return fenceapi.ReleasedClaim(c.Namespace, c.Name, string(c.UID))
}

func policyLine(in Input) string {
	if in.PolicyErr != nil {
		return "node-loss policy unreadable: " + in.PolicyErr.Error()
	}
	if in.Policy.Action == fenceapi.ActionRelease {
		return fmt.Sprintf("node-loss policy release after %s", in.Policy.Delay)
	}
	return "node-loss policy keep"
}
