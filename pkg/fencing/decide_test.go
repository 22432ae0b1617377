package fencing

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/localnvme/localnvme/pkg/fenceapi"
)

const (
	oldVG = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	newVG = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	lvU   = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
	node1 = "n1"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func handle(vg string) string { return "fast." + vg + ".v0123456789abcdef01234567." + lvU }

func testPV(name, claim string, claimUID types.UID, attrs map[string]string) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: DriverName, VolumeHandle: handle(oldVG), VolumeAttributes: attrs,
			}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: TopologyKey, Operator: corev1.NodeSelectorOpIn, Values: []string{node1}}},
			}}}},
		},
	}
	if claim != "" {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "db", Name: claim, UID: claimUID}
	}
	return pv
}

func testClaim(name string, uid types.UID, volume string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name, UID: uid},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: volume},
	}
}

func testNode(vg string, taints ...corev1.Taint) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node1}, Spec: corev1.NodeSpec{Taints: taints}}
	if vg != "-" {
		in := fenceapi.Incarnation{Published: t0, Classes: map[string]fenceapi.ClassVersion{"fast": {VGUUID: vg, Ready: vg != ""}}}
		s, _ := in.Encode()
		n.Annotations = map[string]string{fenceapi.AnnotationIncarnation: s}
	}
	return n
}

var (
	release1m = fenceapi.Policy{Action: fenceapi.ActionRelease, Delay: time.Minute}
	keep      = fenceapi.DefaultPolicy
)

// apply writes a plan's annotations on pv, as the API would.
func apply(pv *corev1.PersistentVolume, p Plan) {
	if pv.Annotations == nil {
		pv.Annotations = map[string]string{}
	}
	for k, v := range p.Annotations {
		if v == nil {
			delete(pv.Annotations, k)
		} else {
			pv.Annotations[k] = *v
		}
	}
}

func decide(t *testing.T, in Input) Plan {
	t.Helper()
	v, ours, err := ParseVolume(in.PV)
	if !ours || err != nil {
		t.Fatalf("ParseVolume: ours %v, err %v", ours, err)
	}
	return Decide(in, v)
}

func reasons(p Plan) string {
	var r []string
	for _, e := range p.Events {
		r = append(r, e.Reason)
	}
	return strings.Join(r, ",")
}

func TestParseVolume(t *testing.T) {
	pv := testPV("pv", "", "", nil)
	v, ours, err := ParseVolume(pv)
	if !ours || err != nil || v.Node != node1 || v.ID.Class != "fast" || v.ID.VGUUID != oldVG {
		t.Fatalf("ParseVolume = %+v, %v, %v", v, ours, err)
	}
	other := testPV("pv", "", "", nil)
	other.Spec.CSI.Driver = "other.csi"
	if _, ours, _ := ParseVolume(other); ours {
		t.Error("a PV of another driver counts as ours")
	}
	bad := testPV("pv", "", "", nil)
	bad.Spec.CSI.VolumeHandle = "nope"
	if _, ours, err := ParseVolume(bad); !ours || err == nil {
		t.Errorf("bad handle: ours %v err %v; want ours and an error", ours, err)
	}
	noNode := testPV("pv", "", "", nil)
	noNode.Spec.NodeAffinity = nil
	if _, _, err := ParseVolume(noNode); err == nil {
		t.Error("no node affinity: no error")
	}
}

func TestDecideHealthyNode(t *testing.T) {
	for name, n := range map[string]*corev1.Node{
		"same VG":              testNode(oldVG),
		"no incarnation yet":   testNode("-"),
		"class VG not visible": testNode(""),
	} {
		p := decide(t, Input{PV: testPV("pv", "c", "u1", nil), Node: n, Claim: testClaim("c", "u1", "pv"), Policy: release1m, Now: t0})
		if len(p.Annotations) != 0 || len(p.Events) != 0 || p.Release || p.RequeueAfter != 0 {
			t.Errorf("%s: plan %+v, want nothing", name, p)
		}
	}
}

func TestDecideVolumeLostKeep(t *testing.T) {
	pv := testPV("pv", "c", "u1", nil)
	p := decide(t, Input{PV: pv, Node: testNode(newVG), Claim: testClaim("c", "u1", "pv"), Policy: keep, Now: t0})
	if p.Release || *p.Annotations[fenceapi.AnnotationTrigger] != string(fenceapi.TriggerVolumeLost) ||
		*p.Annotations[fenceapi.AnnotationDecision] != fenceapi.DecisionKept {
		t.Fatalf("plan %+v", p)
	}
	lost := *p.Annotations[fenceapi.AnnotationLost]
	if !strings.Contains(lost, oldVG) || !strings.Contains(lost, newVG) || !strings.Contains(lost, node1) {
		t.Errorf("lost annotation %q must name node, old and new VG UUID", lost)
	}
	if got := reasons(p); got != "VolumeLost,NodeLossKept" {
		t.Errorf("events %s", got)
	}
	if !strings.HasPrefix(p.Events[0].Message, "volume lost: ") || p.Events[0].Type != corev1.EventTypeWarning {
		t.Errorf("event %+v", p.Events[0])
	}
	// Seen again with the annotations written: nothing new.
	apply(pv, p)
	p = decide(t, Input{PV: pv, Node: testNode(newVG), Claim: testClaim("c", "u1", "pv"), Policy: keep, Now: t0.Add(time.Hour)})
	if len(p.Annotations) != 0 || len(p.Events) != 0 || p.Release {
		t.Errorf("second look: plan %+v, want nothing", p)
	}
}

func TestDecideReleaseAfterDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want fenceapi.Trigger
	}{
		{"node deleted", nil, fenceapi.TriggerNodeDeleted},
		{"out-of-service", testNode(oldVG, corev1.Taint{Key: fenceapi.TaintOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute}), fenceapi.TriggerOutOfService},
		{"volume lost", testNode(newVG), fenceapi.TriggerVolumeLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := testPV("pv", "c", "u1", nil)
			claim := testClaim("c", "u1", "pv")
			in := Input{PV: pv, Node: tc.node, Claim: claim, Policy: release1m, Now: t0}
			p := decide(t, in)
			if p.Release || p.RequeueAfter != time.Minute || *p.Annotations[fenceapi.AnnotationTrigger] != string(tc.want) ||
				*p.Annotations[fenceapi.AnnotationTriggerSince] != t0.Format(time.RFC3339) ||
				*p.Annotations[fenceapi.AnnotationDecision] != fenceapi.DecisionWaiting {
				t.Fatalf("t0: plan %+v", p)
			}
			if got := reasons(p); !strings.HasSuffix(got, ","+fenceapi.ReasonWaiting) {
				t.Errorf("t0 events %s", got)
			}
			apply(pv, p)
			// 59 s later: still waiting, no new event, look again in 1 s.
			in.Now = t0.Add(59 * time.Second)
			p = decide(t, in)
			if p.Release || len(p.Events) != 0 || len(p.Annotations) != 0 || p.RequeueAfter != time.Second {
				t.Fatalf("t0+59s: plan %+v", p)
			}
			// At the delay: released.
			in.Now = t0.Add(time.Minute)
			p = decide(t, in)
			if !p.Release || p.Trigger != tc.want || *p.Annotations[fenceapi.AnnotationDecision] != fenceapi.DecisionReleased {
				t.Fatalf("t0+1m: plan %+v", p)
			}
			if f := *p.Annotations[fenceapi.AnnotationFenced]; !strings.HasPrefix(f, "released by node-loss policy at 2026-12-01T12:01:00Z: ") {
				t.Errorf("fenced %q", f)
			}
			// Fenced, claim gone: nothing more, ever.
			apply(pv, p)
			in.Claim = nil
			if p = decide(t, in); p.Release || len(p.Annotations) != 0 || len(p.Events) != 0 {
				t.Errorf("after release: plan %+v", p)
			}
			// Fenced, the claim still there with the old UID (delete interrupted): resume.
			in.Claim = claim
			if p = decide(t, in); !p.Release || len(p.Annotations) != 0 || len(p.Events) != 0 {
				t.Errorf("interrupted release: plan %+v, want a resumed release without annotations or events", p)
			}
			// Fenced, a claim bound to the fenced PV by hand later (claimRef names it): not
			// the released claim, never touched.
			bound := testPV("pv", "probe", "u9", nil)
			apply(bound, Plan{Annotations: map[string]*string{}})
			bound.Annotations = pv.Annotations
			if p = decide(t, Input{PV: bound, Node: tc.node, Claim: testClaim("probe", "u9", "pv"), Policy: release1m, Now: in.Now}); p.Release {
				t.Errorf("claim bound to the fenced PV later: plan %+v releases it", p)
			}
			// Fenced, the claim re-created by its StatefulSet: never touched.
			in.Claim = testClaim("c", "u2", "pv-new")
			if p = decide(t, in); p.Release {
				t.Errorf("re-created claim: plan %+v releases it", p)
			}
		})
	}
}

func TestDecideClaimMismatchSkips(t *testing.T) {
	for name, claim := range map[string]*corev1.PersistentVolumeClaim{
		"claim gone":        nil,
		"claim re-created":  testClaim("c", "u2", "pv"),
		"claim rebound":     testClaim("c", "u1", "other-pv"),
		"claim of same UID": nil,
	} {
		pv := testPV("pv", "c", "u1", nil)
		pv.Annotations = map[string]string{
			fenceapi.AnnotationTrigger: string(fenceapi.TriggerNodeDeleted), fenceapi.AnnotationTriggerSince: t0.Format(time.RFC3339),
			fenceapi.AnnotationDecision: fenceapi.DecisionWaiting,
		}
		if name == "claim of same UID" {
			pv.Spec.ClaimRef = nil
		}
		p := decide(t, Input{PV: pv, Node: nil, Claim: claim, Policy: release1m, Now: t0.Add(2 * time.Minute)})
		if p.Release || *p.Annotations[fenceapi.AnnotationDecision] != fenceapi.DecisionSkipped || reasons(p) != fenceapi.ReasonSkipped {
			t.Errorf("%s: plan %+v, want skipped", name, p)
		}
	}
}

func TestDecideTriggerClears(t *testing.T) {
	pv := testPV("pv", "c", "u1", nil)
	p := decide(t, Input{PV: pv, Node: nil, Claim: testClaim("c", "u1", "pv"), Policy: release1m, Now: t0})
	apply(pv, p)
	p = decide(t, Input{PV: pv, Node: testNode(oldVG), Claim: testClaim("c", "u1", "pv"), Policy: release1m, Now: t0.Add(30 * time.Second)})
	if p.Release || reasons(p) != fenceapi.ReasonCleared {
		t.Fatalf("plan %+v", p)
	}
	for _, k := range []string{fenceapi.AnnotationTrigger, fenceapi.AnnotationTriggerSince, fenceapi.AnnotationDecision, fenceapi.AnnotationLost} {
		if v, ok := p.Annotations[k]; !ok || v != nil {
			t.Errorf("annotation %s not removed", k)
		}
	}
}

func TestDecideTriggerChangeKeepsSince(t *testing.T) {
	pv := testPV("pv", "c", "u1", nil)
	apply(pv, decide(t, Input{PV: pv, Node: nil, Claim: testClaim("c", "u1", "pv"), Policy: release1m, Now: t0}))
	// The node comes back rebuilt: the trigger changes, the delay still counts from t0.
	p := decide(t, Input{PV: pv, Node: testNode(newVG), Claim: testClaim("c", "u1", "pv"), Policy: release1m, Now: t0.Add(time.Minute)})
	if !p.Release || *p.Annotations[fenceapi.AnnotationTrigger] != string(fenceapi.TriggerVolumeLost) {
		t.Fatalf("plan %+v", p)
	}
	if _, ok := p.Annotations[fenceapi.AnnotationTriggerSince]; ok {
		t.Error("since was reset")
	}
	if got := reasons(p); got != fenceapi.ReasonVolumeLost {
		t.Errorf("events %s", got)
	}
}

func TestDecideUnreadablePolicySkips(t *testing.T) {
	p := decide(t, Input{PV: testPV("pv", "c", "u1", nil), Node: nil, Claim: testClaim("c", "u1", "pv"),
		PolicyErr: errors.New("bad"), Now: t0})
	if p.Release || *p.Annotations[fenceapi.AnnotationDecision] != fenceapi.DecisionSkipped {
		t.Fatalf("plan %+v", p)
	}
}
