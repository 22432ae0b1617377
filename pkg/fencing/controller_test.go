package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/localnvme/localnvme/pkg/fenceapi"
)

// env is a controller on a fake clientset whose tracker enforces what the real API server
// does for these tests: delete preconditions (UID) and the resourceVersion in a merge patch.
type env struct {
	t      *testing.T
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	rec    *record.FakeRecorder
	c      *Controller
	ctx    context.Context
}

var (
	pvcGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	podGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	pvGVR  = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
)

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{t: t, client: fake.NewClientset(objs...), clock: clocktesting.NewFakeClock(t0), rec: record.NewFakeRecorder(100)}
	tr := e.client.Tracker()
	e.client.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		pre := d.GetDeleteOptions().Preconditions
		if pre == nil || pre.UID == nil {
			return false, nil, nil
		}
		obj, err := tr.Get(d.GetResource(), d.GetNamespace(), d.GetName())
		if err != nil {
			return false, nil, nil // the tracker answers NotFound
		}
		if m, _ := obj.(metav1.Object); m.GetUID() != *pre.UID {
			return true, nil, apierrors.NewConflict(d.GetResource().GroupResource(), d.GetName(),
				fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", *pre.UID, m.GetUID()))
		}
		return false, nil, nil
	})
	e.client.PrependReactor("patch", "persistentvolumes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		var body struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(p.GetPatch(), &body)
		obj, err := tr.Get(pvGVR, "", p.GetName())
		if err != nil || body.Metadata.ResourceVersion == "" {
			return false, nil, nil
		}
		rv := obj.(metav1.Object).GetResourceVersion()
		if rv != body.Metadata.ResourceVersion {
			return true, nil, apierrors.NewConflict(pvGVR.GroupResource(), p.GetName(), fmt.Errorf("resourceVersion %s, patch names %s", rv, body.Metadata.ResourceVersion))
		}
		// Bump the resourceVersion, as the API server does (the fake tracker does not).
		m := obj.DeepCopyObject().(*corev1.PersistentVolume)
		patched, err := applyMergePatch(m, p.GetPatch())
		if err != nil {
			return true, nil, err
		}
		patched.ResourceVersion = fmt.Sprint(atoi(rv) + 1)
		return true, patched, tr.Update(pvGVR, patched, "")
	})
	c, err := New(Options{Client: e.client, Recorder: e.rec, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.ctx = ctx
	return e
}

func atoi(s string) int {
	n := 0
	_, _ = fmt.Sscan(s, &n) // not a number: 0
	return n
}

func applyMergePatch(pv *corev1.PersistentVolume, patch []byte) (*corev1.PersistentVolume, error) {
	var body struct {
		Metadata struct {
			Annotations map[string]*string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(patch, &body); err != nil {
		return nil, err
	}
	if pv.Annotations == nil {
		pv.Annotations = map[string]string{}
	}
	for k, v := range body.Metadata.Annotations {
		if v == nil {
			delete(pv.Annotations, k)
		} else {
			pv.Annotations[k] = *v
		}
	}
	return pv, nil
}

func (e *env) start() {
	e.t.Helper()
	if !e.c.Start(e.ctx) {
		e.t.Fatal("informers did not sync")
	}
}

// waitView waits until the controller's informers show cond (writes reach them by watch).
func (e *env) waitView(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("informers never showed %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) pvAnnotation(k string) string {
	pv, err := e.client.CoreV1().PersistentVolumes().Get(e.ctx, "pv", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return pv.Annotations[k]
}

// syncSeen syncs once the informers have the PV at the tracker's current resourceVersion.
func (e *env) syncSeen() (time.Duration, error) {
	e.t.Helper()
	pv, err := e.client.CoreV1().PersistentVolumes().Get(e.ctx, "pv", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitView("the PV at rv "+pv.ResourceVersion, func() bool {
		got, err := e.c.pvs.Get("pv")
		return err == nil && got.ResourceVersion == pv.ResourceVersion
	})
	return e.c.Sync(e.ctx, "pv")
}

func (e *env) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func (e *env) deletes() []k8stesting.DeleteAction {
	var out []k8stesting.DeleteAction
	for _, a := range e.client.Actions() {
		if d, ok := a.(k8stesting.DeleteAction); ok {
			out = append(out, d)
		}
	}
	return out
}

func pod(name, node, claim string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: node, Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
	}
}

func releaseAttrs() map[string]string {
	return map[string]string{fenceapi.ParamOnNodeLoss: "release", fenceapi.ParamNodeLossDelay: "1m"}
}

func countReason(evs []string, reason string) int {
	n := 0
	for _, ev := range evs {
		if strings.Contains(ev, " "+reason+" ") {
			n++
		}
	}
	return n
}

func TestNoDecisionBeforeSync(t *testing.T) {
	e := newEnv(t, testPV("pv", "c", "u1", releaseAttrs()), testClaim("c", "u1", "pv"))
	if _, err := e.c.Sync(e.ctx, "pv"); !errors.Is(err, errNotSynced) {
		t.Fatalf("Sync before the informers synced: %v, want errNotSynced", err)
	}
	if n := len(e.client.Actions()); n != 0 {
		t.Errorf("%d API actions before sync: %v", n, e.client.Actions())
	}
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("events before sync: %v", evs)
	}
}

func TestReleaseAfterNodeDeleted(t *testing.T) {
	e := newEnv(t, testPV("pv", "c", "u1", releaseAttrs()), testClaim("c", "u1", "pv"),
		pod("db-0", node1, "c"), pod("pending", "", "c"), pod("elsewhere", "n2", "c"), pod("other", node1, "other-claim"))
	e.start()
	after, err := e.syncSeen()
	if err != nil || after != time.Minute {
		t.Fatalf("first sync: after %v err %v; want 1m, nil", after, err)
	}
	if got := e.pvAnnotation(fenceapi.AnnotationDecision); got != fenceapi.DecisionWaiting {
		t.Errorf("decision %q, want waiting", got)
	}
	evs := e.events()
	if countReason(evs, fenceapi.ReasonNodeLost) != 2 || countReason(evs, fenceapi.ReasonWaiting) != 2 {
		t.Errorf("events %v: want NodeLost and NodeLossWaiting on PV and claim", evs)
	}
	if d := e.deletes(); len(d) != 0 {
		t.Fatalf("deleted before the delay: %v", d)
	}
	e.clock.Step(30 * time.Second)
	if after, err := e.syncSeen(); err != nil || after != 30*time.Second || len(e.deletes()) != 0 || len(e.events()) != 0 {
		t.Fatalf("half way: after %v err %v deletes %v", after, err, e.deletes())
	}
	e.clock.Step(30 * time.Second)
	if _, err := e.syncSeen(); err != nil {
		t.Fatal(err)
	}
	if f := e.pvAnnotation(fenceapi.AnnotationFenced); !strings.Contains(f, "node n1 was deleted") {
		t.Errorf("fenced annotation %q", f)
	}
	var deleted []string
	for _, d := range e.deletes() {
		deleted = append(deleted, d.GetResource().Resource+"/"+d.GetName())
		if pre := d.GetDeleteOptions().Preconditions; pre == nil || pre.UID == nil {
			t.Errorf("delete %s/%s without a UID precondition", d.GetResource().Resource, d.GetName())
		}
		if d.GetResource() == podGVR {
			if g := d.GetDeleteOptions().GracePeriodSeconds; g == nil || *g != 0 {
				t.Errorf("pod %s of a deleted node deleted with grace %v, want 0", d.GetName(), g)
			}
		}
	}
	if got := strings.Join(deleted, " "); got != "persistentvolumeclaims/c pods/db-0 pods/pending" {
		t.Errorf("deleted %q, want the claim, then its pod on the lost node and its unscheduled pod", got)
	}
	evs = e.events()
	if countReason(evs, fenceapi.ReasonReleased) != 2 || countReason(evs, fenceapi.ReasonPodDeleted) != 2 {
		t.Errorf("events %v", evs)
	}
	// Looked at again (the claim is gone): nothing more.
	e.client.ClearActions()
	e.waitView("the claim gone", func() bool { _, err := e.c.pvcs.PersistentVolumeClaims("db").Get("c"); return err != nil })
	if _, err := e.syncSeen(); err != nil || len(e.deletes()) != 0 || len(e.events()) != 0 {
		t.Errorf("after the release: err %v deletes %v", err, e.deletes())
	}
}

func TestKeepOnlyMarks(t *testing.T) {
	e := newEnv(t, testPV("pv", "c", "u1", nil), testClaim("c", "u1", "pv"), pod("db-0", node1, "c"))
	e.start()
	for i := 0; i < 3; i++ {
		if _, err := e.syncSeen(); err != nil {
			t.Fatal(err)
		}
		e.clock.Step(time.Hour)
	}
	if d := e.deletes(); len(d) != 0 {
		t.Fatalf("keep deleted %v", d)
	}
	if got := e.pvAnnotation(fenceapi.AnnotationDecision); got != fenceapi.DecisionKept {
		t.Errorf("decision %q", got)
	}
	if evs := e.events(); countReason(evs, fenceapi.ReasonKept) != 2 || len(evs) != 4 {
		t.Errorf("events %v: want NodeLost and NodeLossKept once each on PV and claim", evs)
	}
}

// dueReleasePV is a release PV whose node was deleted an hour ago: its release is due.
func dueReleasePV() *corev1.PersistentVolume {
	pv := testPV("pv", "c", "u1", releaseAttrs())
	pv.Annotations = map[string]string{fenceapi.AnnotationTrigger: "node-deleted", fenceapi.AnnotationTriggerSince: t0.Add(-time.Hour).Format(time.RFC3339), fenceapi.AnnotationDecision: "waiting"}
	return pv
}

// The claim is swapped for a new one (same name, new UID) between the decision and the
// delete: the delete's UID precondition fails and the new claim survives.
func TestReleasePreconditionConflict(t *testing.T) {
	e := newEnv(t, dueReleasePV(), testClaim("c", "u1", "pv"), pod("db-0", node1, "c"))
	e.start()
	tr := e.client.Tracker()
	swapped := false
	e.client.PrependReactor("delete", "persistentvolumeclaims", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !swapped {
			swapped = true
			if err := tr.Delete(pvcGVR, "db", "c"); err != nil {
				return true, nil, err
			}
			if err := tr.Add(testClaim("c", "u2", "")); err != nil {
				return true, nil, err
			}
		}
		return false, nil, nil // on to the precondition reactor
	})
	if _, err := e.syncSeen(); err != nil {
		t.Fatal(err)
	}
	c, err := e.client.CoreV1().PersistentVolumeClaims("db").Get(e.ctx, "c", metav1.GetOptions{})
	if err != nil || c.UID != "u2" {
		t.Fatalf("the new claim: %v, err %v; want it to survive", c, err)
	}
	for _, d := range e.deletes() {
		if d.GetResource() == podGVR {
			t.Errorf("pod %s deleted although the claim delete failed", d.GetName())
		}
	}
	if evs := e.events(); countReason(evs, fenceapi.ReasonSkipped) != 1 || countReason(evs, fenceapi.ReasonReleased) != 0 {
		t.Errorf("events %v: want one NodeLossSkipped (on the PV), no NodeLossReleased", evs)
	}
}

// API errors: nothing is deleted on a failed write, and the work is retried.
func TestAPIErrors(t *testing.T) {
	e := newEnv(t, dueReleasePV(), testClaim("c", "u1", "pv"), pod("db-0", node1, "c"))
	e.start()
	fail := map[string]bool{"patch": true}
	for _, verb := range []string{"patch", "delete"} {
		e.client.PrependReactor(verb, "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if fail[verb] && (verb == "patch" || a.GetResource() == pvcGVR) {
				return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
			}
			return false, nil, nil
		})
	}
	if _, err := e.syncSeen(); err == nil {
		t.Fatal("patch failed but Sync reported no error")
	}
	if d := e.deletes(); len(d) != 0 || len(e.events()) != 0 {
		t.Fatalf("after a failed PV patch: deletes %v, events; want none", d)
	}
	// The patch goes through, the claim delete fails: the PV is fenced, the error retried.
	fail["patch"], fail["delete"] = false, true
	if _, err := e.syncSeen(); err == nil {
		t.Fatal("claim delete failed but Sync reported no error")
	}
	if e.pvAnnotation(fenceapi.AnnotationFenced) == "" {
		t.Error("PV not fenced before the claim delete")
	}
	for _, d := range e.deletes() {
		if d.GetResource() == podGVR {
			t.Errorf("pod %s deleted although the claim delete failed", d.GetName())
		}
	}
	if evs := e.events(); countReason(evs, fenceapi.ReasonReleased) != 0 {
		t.Errorf("NodeLossReleased recorded although nothing was released: %v", evs)
	}
	// Retried with the API back: the release completes (resumed from the fenced PV).
	fail["delete"] = false
	e.client.ClearActions()
	if _, err := e.syncSeen(); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, d := range e.deletes() {
		deleted = append(deleted, d.GetResource().Resource+"/"+d.GetName())
	}
	if got := strings.Join(deleted, " "); got != "persistentvolumeclaims/c pods/db-0" {
		t.Errorf("resumed release deleted %q", got)
	}
	if evs := e.events(); countReason(evs, fenceapi.ReasonReleased) != 2 {
		t.Errorf("events %v", evs)
	}
}

// A stale view (the PV changed since the informer saw it) fails the patch with Conflict:
// no events, no deletes.
func TestStaleViewConflicts(t *testing.T) {
	e := newEnv(t, testPV("pv", "c", "u1", releaseAttrs()), testClaim("c", "u1", "pv"))
	e.start()
	e.waitView("the PV", func() bool { _, err := e.c.pvs.Get("pv"); return err == nil })
	stale, _ := e.c.pvs.Get("pv")
	// Someone else changes the PV after the view was taken.
	if _, err := e.client.CoreV1().PersistentVolumes().Patch(e.ctx, "pv", types.MergePatchType,
		[]byte(`{"metadata":{"resourceVersion":"1","annotations":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _, _ := ParseVolume(stale)
	plan := Decide(Input{PV: stale, Claim: testClaim("c", "u1", "pv"), Policy: release1m, Now: t0.Add(time.Hour)}, v)
	e.client.ClearActions()
	err := e.c.execute(e.ctx, stale, v, testClaim("c", "u1", "pv"), plan)
	if !apierrors.IsConflict(errors.Unwrap(err)) {
		t.Fatalf("execute on a stale view: %v, want a Conflict", err)
	}
	if d := e.deletes(); len(d) != 0 {
		t.Errorf("deletes on a stale view: %v", d)
	}
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("events on a stale view: %v", evs)
	}
}

func collect(t *testing.T, c *Controller) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			out[mf.GetName()+"{"+strings.Join(l, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestLostVolumeMetric(t *testing.T) {
	node := testNode(newVG)
	e := newEnv(t, testPV("pv", "c", "u1", nil), testClaim("c", "u1", "pv"), node)
	e.start()
	if _, err := e.syncSeen(); err != nil {
		t.Fatal(err)
	}
	if got := e.pvAnnotation(fenceapi.AnnotationTrigger); got != string(fenceapi.TriggerVolumeLost) {
		t.Fatalf("trigger %q", got)
	}
	pvAfter, _ := e.client.CoreV1().PersistentVolumes().Get(e.ctx, "pv", metav1.GetOptions{})
	e.waitView("the marked PV", func() bool {
		got, err := e.c.pvs.Get("pv")
		return err == nil && got.ResourceVersion == pvAfter.ResourceVersion
	})
	got := collect(t, e.c)
	if got[`localnvme_lost_volumes{class="fast",node="n1"}`] != 1 ||
		got[`localnvme_node_loss_volumes{decision="kept",node="n1",trigger="volume-lost"}`] != 1 {
		t.Errorf("metrics %v", got)
	}
	if pod := e.events(); countReason(pod, fenceapi.ReasonVolumeLost) != 2 {
		t.Errorf("events %v", pod)
	}
}
