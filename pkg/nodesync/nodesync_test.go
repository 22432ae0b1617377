package nodesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/lvm"
	"github.com/localnvme/localnvme/pkg/volume"
)

// fakeEngine resolves the volumes in vols (by ID); Fence tags them.
type fakeEngine struct {
	mu        sync.Mutex
	classes   []*volume.Class
	classVGs  []volume.ClassVG
	vols      map[string]*volume.Volume
	fenceErrs []error // returned by the next Fence calls, in order
	fenced    []string
	lists     int
}

var (
	fast = &volume.Class{DeviceClass: config.DeviceClass{Name: "fast", VolumeGroup: "vg-fast"}, Ready: true}
	thin = &volume.Class{DeviceClass: config.DeviceClass{Name: "thin", VolumeGroup: "vg-thin"}, Ready: true}
)

func newFakeEngine(vols ...*volume.Volume) *fakeEngine {
	e := &fakeEngine{classes: []*volume.Class{fast, thin}, vols: map[string]*volume.Volume{}}
	for _, v := range vols {
		e.vols[v.ID.String()] = v
	}
	return e
}

// vol is a volume of class c with LV v<n>; created is its lv_time (zero: unknown).
func vol(c *volume.Class, n int, created time.Time) *volume.Volume {
	lv := fmt.Sprintf("v%024d", n)
	return &volume.Volume{
		ID:    volume.ID{Class: c.Name, VGUUID: strings.Repeat("a", 32), LVName: lv, LVUUID: fmt.Sprintf("%032d", n)},
		Class: c, LV: lvm.LV{Name: lv, VGName: c.VolumeGroup, Created: created},
	}
}

func (e *fakeEngine) Classes() []*volume.Class { return e.classes }
func (e *fakeEngine) ClassVGs(context.Context) ([]volume.ClassVG, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.classVGs), nil
}
func (e *fakeEngine) Resolve(_ context.Context, id string, _ volume.Kind) (*volume.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.vols[id]
	if !ok {
		return nil, fmt.Errorf("%w: volume %s: no such LV here", volume.ErrNotFound, id)
	}
	c := *v
	return &c, nil
}
func (e *fakeEngine) Fence(_ context.Context, id, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.fenceErrs) > 0 {
		err := e.fenceErrs[0]
		e.fenceErrs = e.fenceErrs[1:]
		return err
	}
	e.fenced = append(e.fenced, id)
	e.vols[id].Fenced = reason
	return nil
}
func (e *fakeEngine) List(context.Context, volume.Kind) ([]*volume.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lists++
	var out []*volume.Volume
	for _, v := range e.vols {
		c := *v
		out = append(out, &c)
	}
	return out, nil
}
func (e *fakeEngine) fencedIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.fenced)
}

type fakeRecorder struct {
	mu     sync.Mutex
	events []string
}

func (r *fakeRecorder) VolumeFenced(pv, claim, lv, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("VolumeFenced pv=%s claim=%s lv=%s reason=%s", pv, claim, lv, reason))
}
func (r *fakeRecorder) OrphanVolume(id, lv string, age time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("OrphanVolume id=%s lv=%s age=%s", id, lv, age))
}
func (r *fakeRecorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// pv is a PV of driver drv for volume id on node, fenced with reason ("" = not fenced).
func pv(name, drv, node, id, reason string) *corev1.PersistentVolume {
	p := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: drv, VolumeHandle: id}},
			ClaimRef:               &corev1.ObjectReference{Namespace: "ns", Name: "claim-" + name},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "localnvme.io/node", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	if reason != "" {
		p.Annotations = map[string]string{fenceapi.AnnotationFenced: reason}
	}
	return p
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBuildIncarnation(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	in := BuildIncarnation([]volume.ClassVG{
		{Class: "fast", VGUUID: "CTG49gAMh1xg9rwDKc073HPRmxxEZD4M", Ready: true},
		{Class: "thin", Ready: false, Problems: []string{"device serial T0: not found on this node", "no drive matched"}},
	}, now)
	want := fenceapi.Incarnation{Version: fenceapi.IncarnationVersion, Published: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Classes: map[string]fenceapi.ClassVersion{
		"fast": {VGUUID: "CTG49gAMh1xg9rwDKc073HPRmxxEZD4M", Ready: true},
		"thin": {Ready: false, Problem: "device serial T0: not found on this node; no drive matched"},
	}}
	if !in.Published.Equal(want.Published) || in.Version != want.Version || !maps.Equal(in.Classes, want.Classes) {
		t.Errorf("incarnation = %+v, want %+v", in, want)
	}
	s, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := fenceapi.ParseIncarnation(s)
	if err != nil || !maps.Equal(back.Classes, want.Classes) {
		t.Errorf("the controller's parse of %s = %+v, %v", s, back, err)
	}
}

func TestPublishIncarnationPatchesOnlyItsAnnotation(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1",
		Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"other.io/keep": "x"}}})
	eng := newFakeEngine()
	eng.classVGs = []volume.ClassVG{{Class: "fast", VGUUID: strings.Repeat("F", 32), Ready: true}}
	if err := PublishIncarnation(ctx, client, "n1", eng, wait.Backoff{Duration: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var patches []k8stesting.PatchAction
	for _, a := range client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			patches = append(patches, p)
		} else if a.GetVerb() != "get" {
			t.Errorf("unexpected API call %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	if len(patches) != 1 || patches[0].GetName() != "n1" || patches[0].GetPatchType() != types.MergePatchType {
		t.Fatalf("patches = %+v, want one merge patch of Node n1", patches)
	}
	var body map[string]map[string]map[string]string
	if err := json.Unmarshal(patches[0].GetPatch(), &body); err != nil {
		t.Fatalf("patch %s: %v", patches[0].GetPatch(), err)
	}
	if len(body) != 1 || len(body["metadata"]) != 1 || len(body["metadata"]["annotations"]) != 1 {
		t.Fatalf("patch %s touches more than the annotation %s", patches[0].GetPatch(), fenceapi.AnnotationIncarnation)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := fenceapi.ParseIncarnation(n.Annotations[fenceapi.AnnotationIncarnation])
	if err != nil || in.Classes["fast"].VGUUID != strings.Repeat("F", 32) || !in.Classes["fast"].Ready {
		t.Errorf("annotation = %q (%v)", n.Annotations[fenceapi.AnnotationIncarnation], err)
	}
	if n.Annotations["other.io/keep"] != "x" || n.Labels["a"] != "b" {
		t.Errorf("other metadata changed: %v %v", n.Annotations, n.Labels)
	}
}

func TestPublishIncarnationRetries(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	failures := 3
	client.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failures > 0 {
			failures--
			return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
		}
		return false, nil, nil
	})
	eng := newFakeEngine()
	eng.classVGs = []volume.ClassVG{{Class: "fast", VGUUID: strings.Repeat("F", 32), Ready: true}}
	if err := PublishIncarnation(ctx, client, "n1", eng, wait.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 10}); err != nil {
		t.Fatal(err)
	}
	if n, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); n.Annotations[fenceapi.AnnotationIncarnation] == "" || failures != 0 {
		t.Errorf("after 3 failures: annotation %q, %d failures left", n.Annotations[fenceapi.AnnotationIncarnation], failures)
	}

	// A Node that never appears: retried until ctx ends.
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := PublishIncarnation(ctx, client, "missing", eng, wait.Backoff{Duration: time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("publish to a missing Node = %v, want the context's error", err)
	}
	patches := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" && a.(k8stesting.PatchAction).GetName() == "missing" {
			patches++
		}
	}
	if patches < 2 {
		t.Errorf("%d attempts on the missing Node, want retries", patches)
	}
}

// KeepIncarnation publishes again when the Node loses the annotation (deleted and
// re-registered) and when a class's VG changes; an unchanged Node gets no patch.
func TestKeepIncarnationRepublishes(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	eng := newFakeEngine()
	eng.classVGs = []volume.ClassVG{{Class: "fast", VGUUID: strings.Repeat("F", 32), Ready: true}}
	done := make(chan error, 1)
	go func() {
		done <- KeepIncarnation(ctx, client, "n1", eng, wait.Backoff{Duration: time.Millisecond}, 5*time.Millisecond)
	}()
	vgOf := func() string {
		n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return "error: " + err.Error()
		}
		in, err := fenceapi.ParseIncarnation(n.Annotations[fenceapi.AnnotationIncarnation])
		if err != nil {
			return "unreadable"
		}
		return in.Classes["fast"].VGUUID
	}
	patches := func() int {
		c := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "patch" {
				c++
			}
		}
		return c
	}
	eventually(t, "the first publish", func() bool { return vgOf() == strings.Repeat("F", 32) })
	time.Sleep(50 * time.Millisecond) // ~10 rechecks of an unchanged Node
	if n := patches(); n != 1 {
		t.Errorf("%d patches of an unchanged Node, want 1", n)
	}

	// The Node deleted and registered again by its kubelet, without the annotation.
	if err := client.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a publish on the re-created Node", func() bool { return vgOf() == strings.Repeat("F", 32) })

	// The class's VG replaced (drives wiped and set up again).
	eng.mu.Lock()
	eng.classVGs = []volume.ClassVG{{Class: "fast", VGUUID: strings.Repeat("E", 32), Ready: true}}
	eng.mu.Unlock()
	eventually(t, "a publish of the new VG UUID", func() bool { return vgOf() == strings.Repeat("E", 32) })

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("KeepIncarnation after cancel = %v", err)
	}
}

func newSync(t *testing.T, client *fake.Clientset, eng Engine, rec Recorder, reg prometheus.Registerer) *Sync {
	t.Helper()
	s, err := NewSync(Options{Client: client, Node: "n1", Engine: eng, Events: rec, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, s *Sync) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

func TestFenceSyncFencesExactlyOurFencedResolvingPVs(t *testing.T) {
	const why = "released by node-loss policy at 2026-01-02T03:04:05Z: node n1 deleted"
	a, b, c, d, e, f := vol(fast, 1, time.Time{}), vol(fast, 2, time.Time{}), vol(fast, 3, time.Time{}), vol(fast, 4, time.Time{}), vol(fast, 5, time.Time{}), vol(thin, 6, time.Time{})
	f.Fenced = "fenced before"
	eng := newFakeEngine(a, b, c, d, f) // e does not resolve here
	client := fake.NewClientset(
		pv("pv-a", "localnvme.io", "n1", a.ID.String(), why),             // fenced, ours, resolves: fenced
		pv("pv-b", "localnvme.io", "n1", b.ID.String(), ""),              // not fenced (yet)
		pv("pv-c", "localnvme.io", "n2", c.ID.String(), why),             // another node's
		pv("pv-d", "other.csi.io", "n1", d.ID.String(), why),             // another driver's
		pv("pv-e", "localnvme.io", "n1", e.ID.String(), why),             // not on this node's disks
		pv("pv-f", "localnvme.io", "n1", f.ID.String(), "fenced before"), // already tagged
	)
	rec := &fakeRecorder{}
	s := newSync(t, client, eng, rec, nil)
	run(t, s)
	eventually(t, "pv-a fenced", func() bool { return len(eng.fencedIDs()) >= 1 })

	// Mark pv-b fenced: the update is fenced too.
	_, ctx := ktesting.NewTestContext(t)
	pvb, _ := client.CoreV1().PersistentVolumes().Get(ctx, "pv-b", metav1.GetOptions{})
	pvb.Annotations = map[string]string{fenceapi.AnnotationFenced: why}
	if _, err := client.CoreV1().PersistentVolumes().Update(ctx, pvb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pv-b fenced", func() bool { return len(eng.fencedIDs()) >= 2 })
	time.Sleep(200 * time.Millisecond) // nothing else may follow
	if got, want := eng.fencedIDs(), []string{a.ID.String(), b.ID.String()}; !slices.Equal(got, want) {
		t.Errorf("fenced %v, want %v", got, want)
	}
	want := []string{
		"VolumeFenced pv=pv-a claim=ns/claim-pv-a lv=vg-fast/" + a.LV.Name + " reason=" + why,
		"VolumeFenced pv=pv-b claim=ns/claim-pv-b lv=vg-fast/" + b.LV.Name + " reason=" + why,
	}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFenceSyncRetriesFailures(t *testing.T) {
	a := vol(fast, 1, time.Time{})
	eng := newFakeEngine(a)
	eng.fenceErrs = []error{errors.New("lvm lvchange failed with exit code 5"), errors.New("again")}
	client := fake.NewClientset(pv("pv-a", "localnvme.io", "n1", a.ID.String(), "released"))
	rec := &fakeRecorder{}
	run(t, newSync(t, client, eng, rec, nil))
	eventually(t, "pv-a fenced after two failures", func() bool { return len(eng.fencedIDs()) == 1 })
	eventually(t, "one event", func() bool { return len(rec.list()) == 1 })
}

func TestFenceSyncDoesNothingBeforeSync(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	a, orphan := vol(fast, 1, old), vol(fast, 2, old)
	eng := newFakeEngine(a, orphan)
	client := fake.NewClientset(pv("pv-a", "localnvme.io", "n1", a.ID.String(), "released"))
	release := make(chan struct{})
	var once sync.Once
	client.PrependReactor("list", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release // the informer's initial list hangs until released
		return false, nil, nil
	})
	rec := &fakeRecorder{}
	run(t, newSync(t, client, eng, rec, nil))
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	time.Sleep(300 * time.Millisecond)
	eng.mu.Lock()
	lists := eng.lists
	eng.mu.Unlock()
	if len(eng.fencedIDs()) != 0 || len(rec.list()) != 0 || lists != 0 {
		t.Fatalf("before the informer synced: fenced %v, events %v, %d volume lists; want nothing", eng.fencedIDs(), rec.list(), lists)
	}
	once.Do(func() { close(release) })
	eventually(t, "fence and orphan report after sync", func() bool { return len(eng.fencedIDs()) == 1 && len(rec.list()) == 2 })
}

// syncWithPVs is a Sync whose informer has synced with these PVs, for direct scans.
func syncWithPVs(t *testing.T, eng Engine, rec Recorder, reg prometheus.Registerer, now func() time.Time, pvs ...*corev1.PersistentVolume) *Sync {
	t.Helper()
	s, err := NewSync(Options{Client: fake.NewClientset(), Node: "n1", Engine: eng, Events: rec, Registerer: reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, p := range pvs {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	s.lister = corelisters.NewPersistentVolumeLister(idx)
	return s
}

func TestOrphanScan(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	named := vol(fast, 1, now.Add(-time.Hour))     // has a PV (on another node, even)
	old := vol(fast, 2, now.Add(-time.Hour))       // orphan
	young := vol(fast, 3, now.Add(-5*time.Minute)) // may still be provisioning
	unknown := vol(thin, 4, time.Time{})           // no lv_time: counted from first sight
	copying := vol(fast, 5, now.Add(-time.Hour))   // a thick clone still copying
	copying.Copying = true
	eng := newFakeEngine(named, old, young, unknown, copying)
	rec := &fakeRecorder{}
	reg := prometheus.NewRegistry()
	s := syncWithPVs(t, eng, rec, reg, clock,
		pv("pv-named", "localnvme.io", "n2", named.ID.String(), ""),
		pv("pv-other", "other.csi.io", "n1", old.ID.String(), "")) // another driver's PV naming the same handle does not count

	s.scanOrphans(ctx)
	if got, want := rec.list(), []string{"OrphanVolume id=" + old.ID.String() + " lv=vg-fast/" + old.LV.Name + " age=1h0m0s"}; !slices.Equal(got, want) {
		t.Errorf("first scan events %v, want %v", got, want)
	}
	if f, th := testutil.ToFloat64(s.orphans.WithLabelValues("fast")), testutil.ToFloat64(s.orphans.WithLabelValues("thin")); f != 1 || th != 0 {
		t.Errorf("localnvme_orphan_volumes fast=%v thin=%v, want 1 and 0", f, th)
	}

	now = now.Add(11 * time.Minute)
	s.scanOrphans(ctx)
	got := rec.list()
	want := []string{
		"OrphanVolume id=" + old.ID.String() + " lv=vg-fast/" + old.LV.Name + " age=1h0m0s",
		"OrphanVolume id=" + young.ID.String() + " lv=vg-fast/" + young.LV.Name + " age=16m0s",
		"OrphanVolume id=" + unknown.ID.String() + " lv=vg-thin/" + unknown.LV.Name + " age=11m0s",
	}
	slices.Sort(got[1:])
	slices.Sort(want[1:])
	if !slices.Equal(got, want) {
		t.Errorf("second scan events (one per LV, once):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n, err := testutil.GatherAndCount(reg, "localnvme_orphan_volumes"); err != nil || n != 2 {
		t.Errorf("localnvme_orphan_volumes series = %d (%v), want one per ready class", n, err)
	}
	if f, th := testutil.ToFloat64(s.orphans.WithLabelValues("fast")), testutil.ToFloat64(s.orphans.WithLabelValues("thin")); f != 2 || th != 1 {
		t.Errorf("localnvme_orphan_volumes fast=%v thin=%v, want 2 and 1", f, th)
	}

	// Nothing is ever deleted or fenced by the scan.
	if len(eng.fencedIDs()) != 0 {
		t.Errorf("the orphan scan fenced %v", eng.fencedIDs())
	}
}

func TestOrphanScanWaitsForSync(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	eng := newFakeEngine(vol(fast, 1, time.Now().Add(-time.Hour)))
	rec := &fakeRecorder{}
	s, err := NewSync(Options{Client: fake.NewClientset(), Node: "n1", Engine: eng, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	s.scanOrphans(ctx) // no lister: the informer has not synced
	if len(rec.list()) != 0 || eng.lists != 0 {
		t.Errorf("scan before sync: events %v, %d lists", rec.list(), eng.lists)
	}
}
