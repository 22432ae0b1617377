// Package fenceapi is the contract between the node plugin, the CSI controller service and
// the fencing controller (pkg/fencing): the StorageClass parameters of the node-loss policy,
// the Node annotation in which each node plugin publishes its incarnation, and the PV
// annotations the fencing controller writes. It holds formats and parsing only: no API
// calls, so every side can import it.
package fenceapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// StorageClass parameters (also copied into the PV's volumeAttributes by CreateVolume, so a
// PV describes its own policy even after its StorageClass is gone).
const (
	// ParamOnNodeLoss is "keep" (default) or "release".
	ParamOnNodeLoss = "localnvme.io/on-node-loss"
	// ParamNodeLossDelay is how long a trigger must hold before "release" acts: a Go
	// duration ("5m", "90s"); default 5m.
	ParamNodeLossDelay = "localnvme.io/node-loss-delay"
)

// Action is what the node-loss policy does once a trigger has held for the delay.
type Action string

// Actions.
const (
	ActionKeep    Action = "keep"
	ActionRelease Action = "release"
)

// Defaults and bounds of the policy.
const (
	DefaultDelay = 5 * time.Minute
	// MaxDelay bounds the delay so that a typo ("5000h") does not silently mean "never".
	MaxDelay = 30 * 24 * time.Hour
)

// Policy is a parsed node-loss policy.
type Policy struct {
	Action Action
	Delay  time.Duration
}

// DefaultPolicy is keep, 5m.
var DefaultPolicy = Policy{Action: ActionKeep, Delay: DefaultDelay}

// ParsePolicy reads the policy from StorageClass parameters or PV volumeAttributes. Absent
// keys take the defaults; a present but unknown value is an error (so a typo never silently
// means keep).
func ParsePolicy(params map[string]string) (Policy, error) {
	p := DefaultPolicy
	if v, ok := params[ParamOnNodeLoss]; ok {
		switch Action(v) {
		case ActionKeep, ActionRelease:
			p.Action = Action(v)
		default:
			return p, fmt.Errorf("parameter %s=%q: want %q or %q", ParamOnNodeLoss, v, ActionKeep, ActionRelease)
		}
	}
	if v, ok := params[ParamNodeLossDelay]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return p, fmt.Errorf("parameter %s=%q: not a duration (for example 5m, 90s): %v", ParamNodeLossDelay, v, err)
		}
		if d < 0 || d > MaxDelay {
			return p, fmt.Errorf("parameter %s=%q: must be between 0s and %s", ParamNodeLossDelay, v, MaxDelay)
		}
		p.Delay = d
	}
	return p, nil
}

// Attributes is the policy in its normalised volumeAttributes form.
func (p Policy) Attributes() map[string]string {
	return map[string]string{ParamOnNodeLoss: string(p.Action), ParamNodeLossDelay: p.Delay.String()}
}

// The Node annotation: each `localnvme node` writes its incarnation there (merge patch of
// this one key), at start once its device classes are set up.
const AnnotationIncarnation = "localnvme.io/incarnation"

// IncarnationVersion is the format version of the annotation.
const IncarnationVersion = 1

// Incarnation is what a node plugin publishes: for every configured device class, the UUID
// of the volume group of the class's name as LVM sees it on the node ("" when no such VG
// exists), and whether the class is ready.
type Incarnation struct {
	Version int `json:"version"`
	// Published is when the plugin wrote it (RFC 3339).
	Published time.Time               `json:"published"`
	Classes   map[string]ClassVersion `json:"classes"`
}

// ClassVersion is one class in an Incarnation.
type ClassVersion struct {
	// VGUUID is the VG's UUID without dashes (as in volume IDs); "" when the node has no VG
	// of the class's name.
	VGUUID string `json:"vgUUID"`
	Ready  bool   `json:"ready"`
	// Problem says why the class is not ready.
	Problem string `json:"problem,omitempty"`
}

// Encode returns the annotation value.
func (in Incarnation) Encode() (string, error) {
	if in.Version == 0 {
		in.Version = IncarnationVersion
	}
	b, err := json.Marshal(in)
	return string(b), err
}

// ParseIncarnation parses the Node annotation value.
func ParseIncarnation(s string) (Incarnation, error) {
	var in Incarnation
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return in, fmt.Errorf("annotation %s: %w", AnnotationIncarnation, err)
	}
	if in.Version != IncarnationVersion {
		return in, fmt.Errorf("annotation %s: version %d, this controller reads version %d", AnnotationIncarnation, in.Version, IncarnationVersion)
	}
	return in, nil
}

// ClassNames lists the classes in a stable order.
func (in Incarnation) ClassNames() []string {
	names := make([]string, 0, len(in.Classes))
	for n := range in.Classes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PV annotations written by the fencing controller. They are its only memory: every
// decision is recomputed from them, the Nodes and the claims.
const (
	// AnnotationTrigger is the node-loss trigger seen for the PV's node: one of the Trigger
	// values. Removed when the trigger clears before a release.
	AnnotationTrigger = "localnvme.io/node-loss"
	// AnnotationTriggerSince is when the controller first saw the trigger (RFC 3339): the
	// delay counts from here.
	AnnotationTriggerSince = "localnvme.io/node-loss-since"
	// AnnotationLost says why the volume is lost ("class fast on node n1: volume group
	// UUID was X, the node now has Y"); set with TriggerVolumeLost.
	AnnotationLost = "localnvme.io/lost"
	// AnnotationDecision is the policy's decision: waiting, kept, released or skipped.
	AnnotationDecision = "localnvme.io/node-loss-decision"
	// AnnotationFenced marks a released PV: its LV must never be staged or published again
	// and is removed only by DeleteVolume. The value says why and when ("released by
	// node-loss policy at <RFC 3339>: node n1 deleted"). Never removed by the controller.
	AnnotationFenced = "localnvme.io/fenced"
	// AnnotationReleasedClaim names the claim a release deleted: "<namespace>/<name>
	// <UID>". Only that claim is ever deleted for this PV (an interrupted release is
	// finished for it); a claim later bound to the fenced PV by hand is left alone.
	AnnotationReleasedClaim = "localnvme.io/released-claim"
)

// ReleasedClaim formats the AnnotationReleasedClaim value.
func ReleasedClaim(namespace, name, uid string) string {
	return namespace + "/" + name + " " + uid
}

// Trigger is why a volume's node counts as lost.
type Trigger string

// Triggers.
const (
	TriggerNodeDeleted  Trigger = "node-deleted"
	TriggerOutOfService Trigger = "out-of-service"
	TriggerVolumeLost   Trigger = "volume-lost"
)

// Decisions (AnnotationDecision values).
const (
	DecisionWaiting  = "waiting"
	DecisionKept     = "kept"
	DecisionReleased = "released"
	DecisionSkipped  = "skipped"
)

// TaintOutOfService is the taint an operator sets on a node that is shut down for good.
const TaintOutOfService = "node.kubernetes.io/out-of-service"

// FenceReason formats the AnnotationFenced value.
func FenceReason(at time.Time, why string) string {
	return fmt.Sprintf("released by node-loss policy at %s: %s", at.UTC().Format(time.RFC3339), why)
}

// IsFenced reports whether PV annotations carry the fence mark.
func IsFenced(annotations map[string]string) bool {
	return strings.TrimSpace(annotations[AnnotationFenced]) != ""
}

// Event reasons. The fencing controller records them on the PV and its claim (and
// PodDeleted on the pod); the node plugin records VolumeFenced and OrphanVolume on its Node.
const (
	// ReasonVolumeLost (Warning): the PV's node no longer has its volume group.
	ReasonVolumeLost = "VolumeLost"
	// ReasonNodeLost (Warning): the PV's node was deleted or tainted out-of-service.
	ReasonNodeLost = "NodeLost"
	// ReasonWaiting (Normal): policy release, the delay has not passed yet.
	ReasonWaiting = "NodeLossWaiting"
	// ReasonKept (Warning): policy keep: only marked and reported.
	ReasonKept = "NodeLossKept"
	// ReasonReleased (Warning): the claim was deleted (and its stuck pods) so that its
	// workload re-creates it on a healthy node; the PV is fenced.
	ReasonReleased = "NodeLossReleased"
	// ReasonSkipped (Warning): release was due but not done; the message says why.
	ReasonSkipped = "NodeLossSkipped"
	// ReasonCleared (Normal): the trigger went away before a release.
	ReasonCleared = "NodeLossCleared"
	// ReasonPodDeleted (Normal, on the pod): a pod of a released claim that could not run.
	ReasonPodDeleted = "NodeLossPodDeleted"
	// ReasonVolumeFenced (Warning, on the Node): the node tagged the LV of a fenced PV.
	ReasonVolumeFenced = "VolumeFenced"
	// ReasonOrphanVolume (Warning, on the Node): an LV of this driver that no PV names.
	ReasonOrphanVolume = "OrphanVolume"
)
