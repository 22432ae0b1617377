//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30

	workContainer = "work"
	podTimeout    = 5 * time.Minute // pod start on TCG nodes, including provisioning
	pollInterval  = 2 * time.Second
)

var (
	gvrSnapshot        = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}
	gvrSnapshotContent = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}
	gvrSnapshotClass   = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}
)

// ---------------------------------------------------------------- output and results

func logf(format string, args ...any) {
	fmt.Printf("%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

type result struct {
	name string
	pass bool
}

var (
	resultsMu sync.Mutex
	results   []result
)

func failedCount() int {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	n := 0
	for _, r := range results {
		if !r.pass {
			n++
		}
	}
	return n
}

func printSummary() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	pass, fail := 0, 0
	for _, r := range results {
		if r.pass {
			pass++
		} else {
			fail++
		}
	}
	fmt.Printf("e2e: %d passed, %d failed\n", pass, fail)
}

// oneLine flattens a message for the result line.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// ---------------------------------------------------------------- scenario environment

// E is one scenario's environment: its namespace and context, and the failure and notes
// that make up its result line. Scenario code and helpers fail through E, so the first
// failure message lands in the result line.
type E struct {
	t       *testing.T
	ctx     context.Context
	name    string
	ns      string
	start   time.Time
	mu      sync.Mutex
	failure string
	notes   []string
}

func (e *E) record(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failure == "" {
		e.failure = msg
	}
}

// Fatalf fails the scenario and stops it.
func (e *E) Fatalf(format string, args ...any) {
	e.t.Helper()
	msg := fmt.Sprintf(format, args...)
	e.record(msg)
	e.logf("FATAL: %s", msg)
	e.t.Fatal(msg)
}

// Errorf fails the scenario and goes on.
func (e *E) Errorf(format string, args ...any) {
	e.t.Helper()
	msg := fmt.Sprintf(format, args...)
	e.record(msg)
	e.logf("ERROR: %s", msg)
	e.t.Error(msg)
}

// Note adds a fact to the result line.
func (e *E) Note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.notes = append(e.notes, msg)
	e.mu.Unlock()
	e.logf("%s", msg)
}

func (e *E) logf(format string, args ...any) {
	logf("[%s +%ds] %s", e.name, int(time.Since(e.start).Seconds()), fmt.Sprintf(format, args...))
}

// must stops the scenario on err.
func (e *E) must(err error, format string, args ...any) {
	e.t.Helper()
	if err != nil {
		e.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

func (e *E) report(d time.Duration) {
	pass := !e.t.Failed()
	e.mu.Lock()
	detail := strings.Join(e.notes, "; ")
	if !pass {
		f := e.failure
		if f == "" {
			f = "failed (see the test log)"
		}
		detail = f + " | " + detail
	}
	e.mu.Unlock()
	resultsMu.Lock()
	results = append(results, result{name: e.name, pass: pass})
	resultsMu.Unlock()
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Printf("E2E RESULT %s: %s (%ds) %s\n", e.name, verdict, int(d.Round(time.Second).Seconds()), oneLine(detail, 600))
}

// scenario runs fn as a subtest in a fresh namespace that is torn down afterwards (pods,
// snapshots, claims, and then the PVs, so the LVs are gone before the next scenario).
func scenario(t *testing.T, name string, timeout time.Duration, fn func(e *E)) {
	scenarioWith(t, name, timeout, scenarioOptions{}, fn)
}

// scenarioOptions let scenarios that continue each other's work share a namespace.
type scenarioOptions struct {
	// adoptNamespace returns a namespace an earlier scenario handed over, or "": the
	// scenario runs there instead of in a new one (and tears it down unless keepNamespace).
	adoptNamespace func() string
	// keepNamespace is asked at the end: true hands the namespace over to a later
	// scenario (no teardown now).
	keepNamespace func(e *E) bool
	// beforeTeardown runs right before the teardown (after the scenario's own cleanups).
	beforeTeardown func(e *E)
	// parallel: the scenario runs alongside the other parallel ones of its group (t.Parallel).
	parallel bool
}

// scenarioWith is scenario with options.
func scenarioWith(t *testing.T, name string, timeout time.Duration, opts scenarioOptions, fn func(e *E)) {
	t.Run(name, func(t *testing.T) {
		if opts.parallel {
			t.Parallel()
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		e := &E{t: t, ctx: ctx, name: name, start: start}
		// Cleanups run last-in first-out: the result line is printed after the teardown.
		t.Cleanup(func() {
			cancel()
			e.report(time.Since(start))
		})
		if opts.adoptNamespace != nil {
			e.ns = opts.adoptNamespace()
		}
		adopted := e.ns != ""
		if !adopted {
			e.ns = e.createNamespace()
		}
		t.Cleanup(func() {
			if opts.keepNamespace != nil && opts.keepNamespace(e) {
				e.logf("namespace %s is handed over to a later scenario: no teardown now", e.ns)
				return
			}
			if opts.beforeTeardown != nil {
				opts.beforeTeardown(e)
			}
			e.teardown()
		})
		if adopted {
			e.logf("=== scenario %s in namespace %s, handed over by an earlier scenario (timeout %s)", name, e.ns, timeout)
		} else {
			e.logf("=== scenario %s in namespace %s (timeout %s)", name, e.ns, timeout)
		}
		e.waitServiceAccount()
		fn(e)
		if ctx.Err() != nil {
			e.Errorf("scenario ran out of its %s budget", timeout)
		}
	})
}

func randomSuffix(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// randomToken is random content to write and read back.
func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (e *E) createNamespace() string {
	name := "e2e-" + e.name + "-" + randomSuffix(5)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{namespaceLabel: e.name}}}
	_, err := kube.CoreV1().Namespaces().Create(e.ctx, ns, metav1.CreateOptions{})
	e.must(err, "creating namespace %s", name)
	return name
}

// waitServiceAccount waits for the namespace's default ServiceAccount: the ServiceAccount
// admission plugin refuses pods until the controller has created it.
func (e *E) waitServiceAccount() {
	e.t.Helper()
	e.waitFor("the default ServiceAccount in "+e.ns, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().ServiceAccounts(e.ns).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
}

// teardown deletes everything in the namespace in an order that lets every volume go:
// workloads, then snapshots (a thick COW snapshot holds its origin), then claims; it waits
// for their PVs to be deleted (DeleteVolume done, LV removed) and for the namespace to go.
func (e *E) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := e.ns
	e.logf("teardown of namespace %s", ns)
	fg := metav1.DeletePropagationForeground

	if err := kube.AppsV1().StatefulSets(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &fg}, metav1.ListOptions{}); err != nil {
		e.Errorf("teardown: deleting statefulsets: %v", err)
	}
	if err := kube.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		e.Errorf("teardown: deleting pods: %v", err)
	}
	if err := waitFor(ctx, e, "pods of "+ns+" to be gone", 4*time.Minute, pollInterval, func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		sts, err := kube.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return len(pods.Items) == 0 && len(sts.Items) == 0, fmt.Sprintf("%d pods, %d statefulsets", len(pods.Items), len(sts.Items)), nil
	}); err != nil {
		e.Errorf("teardown: %v", err)
	}

	// Snapshots and their contents.
	var contents []string
	if snaps, err := dyn.Resource(gvrSnapshot).Namespace(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range snaps.Items {
			if c, _, _ := unstructured.NestedString(s.Object, "status", "boundVolumeSnapshotContentName"); c != "" {
				contents = append(contents, c)
			}
		}
		if len(snaps.Items) > 0 {
			if err := dyn.Resource(gvrSnapshot).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				e.Errorf("teardown: deleting volumesnapshots: %v", err)
			}
		}
	} else if !apierrors.IsNotFound(err) {
		e.Errorf("teardown: listing volumesnapshots: %v", err)
	}
	if len(contents) > 0 {
		if err := waitFor(ctx, e, "volumesnapshotcontents "+strings.Join(contents, ",")+" to be gone", 4*time.Minute, pollInterval, func(ctx context.Context) (bool, string, error) {
			left := 0
			for _, c := range contents {
				obj, err := dyn.Resource(gvrSnapshotContent).Get(ctx, c, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					continue
				}
				left++
				if err == nil {
					if p, _, _ := unstructured.NestedString(obj.Object, "spec", "deletionPolicy"); p == "Retain" {
						return false, "", fmt.Errorf("volumesnapshotcontent %s has deletionPolicy Retain: its snapshot LV stays", c)
					}
				}
			}
			return left == 0, fmt.Sprintf("%d left", left), nil
		}); err != nil {
			e.Errorf("teardown: %v", err)
		}
	}

	// Claims, then every PV that was bound to a claim of this namespace.
	if err := kube.CoreV1().PersistentVolumeClaims(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		e.Errorf("teardown: deleting claims: %v", err)
	}
	if err := waitFor(ctx, e, "claims and PVs of "+ns+" to be gone", 5*time.Minute, pollInterval, func(ctx context.Context) (bool, string, error) {
		pvcs, err := kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		pvs, err := namespacePVs(ctx, ns)
		if err != nil {
			return false, err.Error(), nil
		}
		var names []string
		for _, pv := range pvs {
			if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
				return false, "", fmt.Errorf("PV %s has reclaim policy %s: it and its LV stay", pv.Name, pv.Spec.PersistentVolumeReclaimPolicy)
			}
			names = append(names, pv.Name+"("+string(pv.Status.Phase)+")")
		}
		return len(pvcs.Items) == 0 && len(pvs) == 0, fmt.Sprintf("%d claims; PVs %v", len(pvcs.Items), names), nil
	}); err != nil {
		e.Errorf("teardown: %v", err)
	}

	if err := kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.Errorf("teardown: deleting namespace: %v", err)
	}
	if err := waitFor(ctx, e, "namespace "+ns+" to be gone", 3*time.Minute, pollInterval, func(ctx context.Context) (bool, string, error) {
		n, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, string(n.Status.Phase), nil
	}); err != nil {
		e.Errorf("teardown: %v", err)
	}
}

// namespacePVs lists the localnvme PVs bound (or last bound) to a claim in ns.
func namespacePVs(ctx context.Context, ns string) ([]corev1.PersistentVolume, error) {
	pvs, err := kube.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []corev1.PersistentVolume
	for _, pv := range pvs.Items {
		if pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == ns {
			out = append(out, pv)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------- waiting

// waitFor polls cond every interval until it is done, timeout passes or ctx ends. cond
// returns done, a short status (printed when it changes and every 20 s) and an error that
// ends the wait at once (a state the wait can no longer leave).
func waitFor(ctx context.Context, e *E, what string, timeout, interval time.Duration, cond func(ctx context.Context) (bool, string, error)) error {
	start := time.Now()
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	say := logf
	if e != nil {
		say = e.logf
	}
	say("waiting up to %s for %s", time.Until(deadline).Round(time.Second), what)
	last, lastAt := "", time.Time{}
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		done, status, err := cond(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			say("  done after %s: %s%s", time.Since(start).Round(time.Second), what, optional(status))
			return nil
		}
		if status != last || time.Since(lastAt) > 20*time.Second {
			say("  … %s (%s)%s", what, time.Since(start).Round(time.Second), optional(status))
			last, lastAt = status, time.Now()
		}
		if time.Now().Add(interval).After(deadline) {
			why := "timed out"
			if ctx.Err() != nil {
				why = "scenario deadline reached"
			}
			return fmt.Errorf("%s after %s waiting for %s (last: %s)", why, time.Since(start).Round(time.Second), what, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("scenario deadline reached after %s waiting for %s (last: %s)", time.Since(start).Round(time.Second), what, last)
		case <-time.After(interval):
		}
	}
}

func optional(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// waitFor, failing the scenario on timeout.
func (e *E) waitFor(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	e.t.Helper()
	if err := waitFor(e.ctx, e, what, timeout, pollInterval, cond); err != nil {
		e.Fatalf("%v", err)
	}
}

// ---------------------------------------------------------------- object builders

func qty(bytes int64) resource.Quantity { return *resource.NewQuantity(bytes, resource.BinarySI) }

func newPVC(name, sc string, size int64, mode corev1.PersistentVolumeMode, access corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &sc,
			AccessModes:      []corev1.PersistentVolumeAccessMode{access},
			VolumeMode:       &mode,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: qty(size)},
			},
		},
	}
}

// fsPVC is a ReadWriteOnce filesystem claim.
func fsPVC(name, sc string, size int64) *corev1.PersistentVolumeClaim {
	return newPVC(name, sc, size, corev1.PersistentVolumeFilesystem, corev1.ReadWriteOnce)
}

type podOpt func(*corev1.Pod)

// withMount mounts claim at path.
func withMount(claim, path string) podOpt {
	return func(p *corev1.Pod) {
		vol := "v-" + claim
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}})
		c := &p.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: path})
	}
}

// withDevice gives the container the block claim at devicePath.
func withDevice(claim, devicePath string) podOpt {
	return func(p *corev1.Pod) {
		vol := "v-" + claim
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}})
		c := &p.Spec.Containers[0]
		c.VolumeDevices = append(c.VolumeDevices, corev1.VolumeDevice{Name: vol, DevicePath: devicePath})
	}
}

// onNodeName binds the pod to a node directly (no scheduler).
func onNodeName(node string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

// onHost lets the scheduler place the pod, on this node only (nodeSelector on the node's
// kubernetes.io/hostname label).
func onHost(hostLabelValue string) podOpt {
	return func(p *corev1.Pod) {
		if p.Spec.NodeSelector == nil {
			p.Spec.NodeSelector = map[string]string{}
		}
		p.Spec.NodeSelector[hostnameLabel] = hostLabelValue
	}
}

func withLabels(l map[string]string) podOpt {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for k, v := range l {
			p.Labels[k] = v
		}
	}
}

// newPod is a busybox pod that sleeps until it is told to stop (and stops at once then).
func newPod(name string, opts ...podOpt) *corev1.Pod {
	grace := int64(5)
	noToken := false // no API access needed, and no wait for the root CA ConfigMap
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyAlways,
			AutomountServiceAccountToken:  &noToken,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            workContainer,
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"},
			}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// newStatefulSet has replicas pods mounting a claim "data" (from sc) at /data.
func newStatefulSet(name string, replicas int32, sc string, size int64, opts ...podOpt) *appsv1.StatefulSet {
	pod := newPod(name, append([]podOpt{withLabels(map[string]string{"app": name})}, opts...)...)
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
	claim := fsPVC("data", sc, size)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name, // no Service exists or is needed: nothing resolves pod DNS
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       pod.Spec,
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{*claim},
		},
	}
}

// ---------------------------------------------------------------- object helpers

func (e *E) createPVC(pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolumeClaim {
	e.t.Helper()
	out, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Create(e.ctx, pvc, metav1.CreateOptions{})
	e.must(err, "creating claim %s", pvc.Name)
	return out
}

func (e *E) createPod(p *corev1.Pod) *corev1.Pod {
	e.t.Helper()
	out, err := kube.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{})
	e.must(err, "creating pod %s", p.Name)
	return out
}

func (e *E) getPod(name string) *corev1.Pod {
	e.t.Helper()
	p, err := kube.CoreV1().Pods(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	e.must(err, "getting pod %s", name)
	return p
}

func (e *E) getPVC(name string) *corev1.PersistentVolumeClaim {
	e.t.Helper()
	p, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	e.must(err, "getting claim %s", name)
	return p
}

func (e *E) getPV(name string) *corev1.PersistentVolume {
	e.t.Helper()
	p, err := kube.CoreV1().PersistentVolumes().Get(e.ctx, name, metav1.GetOptions{})
	e.must(err, "getting PV %s", name)
	return p
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func containerStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == workContainer {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// podStatusLine summarizes where a pod is stuck.
func podStatusLine(p *corev1.Pod) string {
	parts := []string{string(p.Status.Phase)}
	if p.Spec.NodeName != "" {
		parts = append(parts, "node="+p.Spec.NodeName)
	}
	if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status != corev1.ConditionTrue {
		parts = append(parts, fmt.Sprintf("unscheduled: %s %s", c.Reason, c.Message))
	}
	if cs := containerStatus(p); cs != nil {
		switch {
		case cs.State.Waiting != nil:
			parts = append(parts, fmt.Sprintf("waiting: %s %s", cs.State.Waiting.Reason, cs.State.Waiting.Message))
		case cs.State.Terminated != nil:
			parts = append(parts, fmt.Sprintf("terminated: %s exit %d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode))
		}
		if cs.RestartCount > 0 {
			parts = append(parts, fmt.Sprintf("restarts=%d", cs.RestartCount))
		}
	}
	return strings.Join(parts, ", ")
}

// events lists the events about one object, oldest first.
func (e *E) events(kind, name string) []corev1.Event {
	evs, err := kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name,
	})
	if err != nil {
		e.logf("listing events of %s %s: %v", kind, name, err)
		return nil
	}
	out := evs.Items
	sort.Slice(out, func(i, j int) bool { return eventTime(out[i]).Before(eventTime(out[j])) })
	return out
}

func eventTime(ev corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

func eventsLine(evs []corev1.Event, last int) string {
	if len(evs) > last {
		evs = evs[len(evs)-last:]
	}
	var parts []string
	for _, ev := range evs {
		parts = append(parts, fmt.Sprintf("%s %s: %s", ev.Type, ev.Reason, oneLine(ev.Message, 200)))
	}
	return strings.Join(parts, " / ")
}

// podDiagnostics is the pod's state and recent events, and its claims' events.
func (e *E) podDiagnostics(name string) string {
	p, err := kube.CoreV1().Pods(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("pod %s: %v", name, err)
	}
	out := fmt.Sprintf("pod %s: %s; events: %s", name, podStatusLine(p), eventsLine(e.events("Pod", name), 6))
	// A container that ended or restarted: what it said (its previous run's log first).
	if cs := containerStatus(p); cs != nil && (cs.RestartCount > 0 || cs.State.Terminated != nil) {
		for _, prev := range []bool{true, false} {
			if prev && cs.RestartCount == 0 {
				continue
			}
			tail := int64(25)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			b, err := kube.CoreV1().Pods(e.ns).GetLogs(name, &corev1.PodLogOptions{Container: cs.Name, Previous: prev, TailLines: &tail}).DoRaw(ctx)
			cancel()
			which := "log"
			if prev {
				which = "previous run's log"
			}
			if err != nil {
				out += fmt.Sprintf("; container %s %s: %v", cs.Name, which, err)
			} else {
				out += fmt.Sprintf("; container %s %s (last %d lines): %s", cs.Name, which, tail, strings.Join(strings.Split(strings.TrimSpace(string(b)), "\n"), " | "))
			}
		}
	}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			c := v.PersistentVolumeClaim.ClaimName
			out += fmt.Sprintf("; claim %s events: %s", c, eventsLine(e.events("PersistentVolumeClaim", c), 4))
		}
	}
	return out
}

// waitPodRunning waits for the pod to run with its container ready. A pod that fails, or
// whose image cannot be had, stops the wait at once.
func (e *E) waitPodRunning(name string, timeout time.Duration) *corev1.Pod {
	e.t.Helper()
	var pod *corev1.Pod
	err := waitFor(e.ctx, e, "pod "+name+" to run", timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "not created yet", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		pod = p
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, "", fmt.Errorf("pod %s ended: %s", name, podStatusLine(p))
		}
		if cs := containerStatus(p); cs != nil && cs.State.Waiting != nil {
			switch cs.State.Waiting.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CrashLoopBackOff":
				return false, "", fmt.Errorf("pod %s cannot start: %s (image %s)", name, podStatusLine(p), image)
			}
		}
		cs := containerStatus(p)
		return p.Status.Phase == corev1.PodRunning && cs != nil && cs.Ready, podStatusLine(p), nil
	})
	if err != nil {
		e.Fatalf("%v; %s", err, e.podDiagnostics(name))
	}
	return pod
}

// waitPVCBound waits for the claim to be bound and returns it with its PV.
func (e *E) waitPVCBound(name string, timeout time.Duration) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	e.t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	e.waitFor("claim "+name+" to be Bound", timeout, func(ctx context.Context) (bool, string, error) {
		c, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		pvc = c
		if c.Status.Phase == corev1.ClaimLost {
			return false, "", fmt.Errorf("claim %s is Lost", name)
		}
		return c.Status.Phase == corev1.ClaimBound && c.Spec.VolumeName != "", string(c.Status.Phase) + " " + eventsLine(e.events("PersistentVolumeClaim", name), 1), nil
	})
	pv := e.getPV(pvc.Spec.VolumeName)
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driverName {
		e.Fatalf("PV %s of claim %s is not a %s CSI volume: %+v", pv.Name, name, driverName, pv.Spec.PersistentVolumeSource)
	}
	return pvc, pv
}

// pvNode is the node named by the PV's required node affinity on the driver's topology key.
func pvNode(pv *corev1.PersistentVolume) (string, error) {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return "", fmt.Errorf("PV %s has no required node affinity", pv.Name)
	}
	nodes := map[string]bool{}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, ex := range term.MatchExpressions {
			if ex.Key == topologyKey && ex.Operator == corev1.NodeSelectorOpIn {
				for _, v := range ex.Values {
					nodes[v] = true
				}
			}
		}
	}
	if len(nodes) != 1 {
		return "", fmt.Errorf("PV %s: want one node for key %s in its node affinity, got %v (affinity %+v)", pv.Name, topologyKey, nodes, pv.Spec.NodeAffinity.Required.NodeSelectorTerms)
	}
	for n := range nodes {
		return n, nil
	}
	return "", nil
}

// mustPVNode checks that the PV is pinned to node (and only to it).
func (e *E) mustPVNode(pv *corev1.PersistentVolume, node string) {
	e.t.Helper()
	got, err := pvNode(pv)
	if err != nil {
		e.Fatalf("%v", err)
	}
	if got != node {
		e.Fatalf("PV %s has node affinity %s=%s, but its pod runs on %s", pv.Name, topologyKey, got, node)
	}
}

// hostLabel is the node's kubernetes.io/hostname label value (for nodeSelectors).
func (e *E) hostLabel(node string) string {
	e.t.Helper()
	n, err := kube.CoreV1().Nodes().Get(e.ctx, node, metav1.GetOptions{})
	e.must(err, "getting node %s", node)
	v := n.Labels[hostnameLabel]
	if v == "" {
		e.Fatalf("node %s has no %s label", node, hostnameLabel)
	}
	return v
}

// deletePod deletes a pod and waits until it is gone (its volumes unpublished).
func (e *E) deletePod(name string) {
	e.t.Helper()
	err := kube.CoreV1().Pods(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	e.must(err, "deleting pod %s", name)
	e.waitFor("pod "+name+" to be deleted", 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, podStatusLine(p), nil
	})
}

// deleteClaim deletes a claim and waits for it and its PV to be gone.
func (e *E) deleteClaim(name string) {
	e.t.Helper()
	pvc, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	e.must(err, "getting claim %s", name)
	pvName := pvc.Spec.VolumeName
	e.must(kube.CoreV1().PersistentVolumeClaims(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{}), "deleting claim %s", name)
	e.waitFor("claim "+name+" and PV "+pvName+" to be deleted", 4*time.Minute, func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, name, metav1.GetOptions{})
		claimGone := apierrors.IsNotFound(err)
		pvGone := pvName == ""
		status := "claim exists"
		if claimGone {
			status = "claim gone"
		}
		if pvName != "" {
			pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				pvGone = true
			case err == nil:
				status += ", PV " + string(pv.Status.Phase)
			}
		}
		return claimGone && pvGone, status, nil
	})
}

// ---------------------------------------------------------------- exec

// sh runs a shell script in the pod's work container (args are $1, $2, …) and returns its
// stdout with surrounding space trimmed.
func (e *E) sh(pod, script string, args ...string) string {
	e.t.Helper()
	out, err := e.trySh(pod, script, args...)
	if err != nil {
		e.Fatalf("%v", err)
	}
	return out
}

func (e *E) trySh(pod, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Minute)
	defer cancel()
	cmd := append([]string{"sh", "-c", script, "sh"}, args...)
	stdout, stderr, err := execPod(ctx, e.ns, pod, workContainer, cmd)
	if err != nil {
		return "", fmt.Errorf("in pod %s: `%s`: %v (stderr: %s)", pod, oneLine(script, 160), err, oneLine(stderr, 300))
	}
	return strings.TrimSpace(stdout), nil
}

// writeRandom writes size MiB of random data to path in the pod, syncs, and returns its SHA-256.
func (e *E) writeRandom(pod, path string, mib int) string {
	e.t.Helper()
	out := e.sh(pod, `dd if=/dev/urandom of="$1" bs=1048576 count="$2" 2>/dev/null && sync && sha256sum "$1"`, path, strconv.Itoa(mib))
	return firstField(out)
}

func (e *E) sha256(pod, path string) string {
	e.t.Helper()
	return firstField(e.sh(pod, `sha256sum "$1"`, path))
}

func firstField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// dfBytes is the size of the filesystem at path in the pod (df -B1: total 1-byte blocks).
func (e *E) dfBytes(pod, path string) (int64, error) {
	out, err := e.trySh(pod, `df -B1 "$1"`, path)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// busybox may wrap a long device name onto its own line; the numbers are on the last line.
	f := strings.Fields(lines[len(lines)-1])
	for i, tok := range f {
		if n, err := strconv.ParseInt(tok, 10, 64); err == nil && i+1 < len(f) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("cannot read the size from df output %q", out)
}

// ---------------------------------------------------------------- node plugin and LVs

func csiNodeHasDriver(ds []storagev1.CSINodeDriver) bool {
	for _, d := range ds {
		if d.Name == driverName {
			return true
		}
	}
	return false
}

// nodePluginPod is the one Running and Ready localnvme node pod on node.
func nodePluginPod(ctx context.Context, node string) (string, error) {
	pods, err := kube.CoreV1().Pods(driverNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: nodePodSelector,
		FieldSelector: "spec.nodeName=" + node,
	})
	if err != nil {
		return "", fmt.Errorf("listing localnvme node pods on %s: %w", node, err)
	}
	var running []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		ready := false
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == nodePodContainer {
				ready = cs.Ready
			}
		}
		if ready {
			running = append(running, p.Name)
		}
	}
	if len(running) != 1 {
		return "", fmt.Errorf("want one Running, Ready localnvme node pod (%s) in %s on node %s, found %d of %d", nodePodSelector, driverNamespace, node, len(running), len(pods.Items))
	}
	return running[0], nil
}

// LV is one line of `lvm lvs` on a node.
type LV struct {
	Name, VG, UUID, VGUUID string
	Size                   int64
	Tags                   []string
}

func (l LV) String() string { return l.VG + "/" + l.Name }

// HasTag reports whether the LV carries tag (key=value).
func (l LV) HasTag(tag string) bool {
	for _, t := range l.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// listLVs runs lvs in the node's localnvme container.
func listLVs(ctx context.Context, node string) ([]LV, error) {
	pod, err := nodePluginPod(ctx, node)
	if err != nil {
		return nil, err
	}
	cmd := []string{"lvm", "lvs", "--reportformat", "json", "-o", "lv_name,vg_name,lv_size,lv_tags,lv_uuid,vg_uuid", "--units", "b"}
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stdout, stderr, err := execPod(ectx, driverNamespace, pod, nodePodContainer, cmd)
	if err != nil {
		return nil, fmt.Errorf("lvs on %s (pod %s): %v (stderr: %s)", node, pod, err, oneLine(stderr, 300))
	}
	var rep struct {
		Report []struct {
			LV []map[string]string `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		return nil, fmt.Errorf("lvs on %s: parsing %q: %v", node, oneLine(stdout, 300), err)
	}
	var out []LV
	for _, r := range rep.Report {
		for _, m := range r.LV {
			size, err := strconv.ParseInt(strings.TrimRight(m["lv_size"], "Bb "), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("lvs on %s: size %q of %s/%s: %v", node, m["lv_size"], m["vg_name"], m["lv_name"], err)
			}
			lv := LV{Name: m["lv_name"], VG: m["vg_name"], UUID: m["lv_uuid"], VGUUID: m["vg_uuid"], Size: size}
			if t := m["lv_tags"]; t != "" {
				lv.Tags = strings.Split(t, ",")
			}
			out = append(out, lv)
		}
	}
	return out, nil
}

func (e *E) listLVs(node string) []LV {
	e.t.Helper()
	lvs, err := listLVs(e.ctx, node)
	if err != nil {
		e.Fatalf("%v", err)
	}
	return lvs
}

// ---------------------------------------------------------------- storage capacity

// capInfo is one CSIStorageCapacity object.
type capInfo struct {
	Object    string // namespace/name
	Capacity  int64  // -1: not set
	MaxVolume int64  // -1: not set
}

// Limit is what the scheduler compares a claim's size with: maximumVolumeSize when it is set,
// else capacity.
func (c capInfo) Limit() int64 {
	if c.MaxVolume >= 0 {
		return c.MaxVolume
	}
	return c.Capacity
}

func (c capInfo) String() string {
	return fmt.Sprintf("capacity=%s maximumVolumeSize=%s (%s)", fmtBytes(c.Capacity), fmtBytes(c.MaxVolume), c.Object)
}

func fmtBytes(n int64) string {
	switch {
	case n < 0:
		return "unset"
	case n >= GiB:
		return fmt.Sprintf("%.2fGiB", float64(n)/float64(GiB))
	default:
		return fmt.Sprintf("%.1fMiB", float64(n)/float64(MiB))
	}
}

// capacityNode is the node of a CSIStorageCapacity's topology ("" if it names none).
func capacityNode(c *storagev1.CSIStorageCapacity) string {
	if c.NodeTopology == nil {
		return ""
	}
	if v := c.NodeTopology.MatchLabels[topologyKey]; v != "" {
		return v
	}
	for _, ex := range c.NodeTopology.MatchExpressions {
		if ex.Key == topologyKey && ex.Operator == metav1.LabelSelectorOpIn && len(ex.Values) == 1 {
			return ex.Values[0]
		}
	}
	return ""
}

// capacities maps storage class → node → capacity for the localnvme classes, from the
// CSIStorageCapacity objects in all namespaces. If there are several for one pair, the
// newest wins.
func capacities(ctx context.Context) (map[string]map[string]capInfo, error) {
	list, err := kube.StorageV1().CSIStorageCapacities("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing CSIStorageCapacity: %w", err)
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return items[i].CreationTimestamp.Before(&items[j].CreationTimestamp) })
	out := map[string]map[string]capInfo{}
	for i := range items {
		c := &items[i]
		node := capacityNode(c)
		if node == "" {
			continue
		}
		ci := capInfo{Object: c.Namespace + "/" + c.Name, Capacity: -1, MaxVolume: -1}
		if c.Capacity != nil {
			ci.Capacity = c.Capacity.Value()
		}
		if c.MaximumVolumeSize != nil {
			ci.MaxVolume = c.MaximumVolumeSize.Value()
		}
		if out[c.StorageClassName] == nil {
			out[c.StorageClassName] = map[string]capInfo{}
		}
		out[c.StorageClassName][node] = ci
	}
	return out, nil
}

// ---------------------------------------------------------------- snapshots (dynamic client)

func (e *E) createSnapshot(name, claim string) {
	e.t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "snapshot.storage.k8s.io/v1",
		"kind":       "VolumeSnapshot",
		"metadata":   map[string]any{"name": name, "namespace": e.ns},
		"spec": map[string]any{
			"volumeSnapshotClassName": snapshotClassName,
			"source":                  map[string]any{"persistentVolumeClaimName": claim},
		},
	}}
	_, err := dyn.Resource(gvrSnapshot).Namespace(e.ns).Create(e.ctx, obj, metav1.CreateOptions{})
	e.must(err, "creating VolumeSnapshot %s of claim %s", name, claim)
}

// waitSnapshotReady waits for readyToUse and returns the snapshot's restoreSize (-1 if unset)
// and its content's snapshot handle.
func (e *E) waitSnapshotReady(name string, timeout time.Duration) (int64, string) {
	e.t.Helper()
	var restore int64 = -1
	var content string
	e.waitFor("VolumeSnapshot "+name+" to be readyToUse", timeout, func(ctx context.Context) (bool, string, error) {
		s, err := dyn.Resource(gvrSnapshot).Namespace(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		ready, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse")
		msg, _, _ := unstructured.NestedString(s.Object, "status", "error", "message")
		content, _, _ = unstructured.NestedString(s.Object, "status", "boundVolumeSnapshotContentName")
		if rs, ok, _ := unstructured.NestedString(s.Object, "status", "restoreSize"); ok {
			if q, err := resource.ParseQuantity(rs); err == nil {
				restore = q.Value()
			}
		} else if rs, ok, _ := unstructured.NestedInt64(s.Object, "status", "restoreSize"); ok {
			restore = rs
		}
		status := fmt.Sprintf("readyToUse=%v content=%s", ready, content)
		if msg != "" {
			status += " error: " + msg
		}
		return ready, status, nil
	})
	handle := ""
	if content != "" {
		c, err := dyn.Resource(gvrSnapshotContent).Get(e.ctx, content, metav1.GetOptions{})
		e.must(err, "getting VolumeSnapshotContent %s", content)
		handle, _, _ = unstructured.NestedString(c.Object, "status", "snapshotHandle")
	}
	return restore, handle
}

// ---------------------------------------------------------------- small utilities

func mergePatch(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
