//go:build e2e

package e2e

// Failure scenarios: the fencing controller's leader election, and node loss (pkg/fenceapi:
// a deleted Node, the out-of-service taint, a node rebuilt with blank disks) with the
// node-loss policies keep and release, on PostgreSQL StatefulSets. Node VMs are powered off
// and on with hack/cluster/node-vm.sh (E2E_NODE_VM overrides the path). The four node-loss
// scenarios are one chain, so that each node restarts once: node-deleted loses node 2 and
// node-returns brings it back with its disks; out-of-service loses node 1 and rebuilt-node
// brings it back with blank ones. A scenario that passes hands its namespace and claims to
// the next one; one that fails restores the cluster (every node VM running, no taint, no
// cordon) before its teardown, and the next one that needs its state fails.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/volume"
)

const (
	scLossKeep        = "e2e-nodeloss-keep"         // thick class fast, ext4, on-node-loss keep, reclaim Delete
	scLossRelease     = "e2e-nodeloss-release"      // the same with release, reclaim Retain
	scLossReleaseSlow = "e2e-nodeloss-release-slow" // release after lossSlowDelay, reclaim Retain
	lossDelayParam    = "30s"
	lossDelay         = 30 * time.Second
	// lossSlowDelay outlasts out-of-service (its claim is still on node 1 when rebuilt-node
	// rebuilds it) and is the delay rebuilt-node waits for before its release.
	lossSlowDelayParam = "150s"
	lossSlowDelay      = 150 * time.Second
	// lossBound: once the delay is over, the release (claim re-created, its pod running on
	// the other node) or, after a rebuilt node is back, the lost mark must come within this.
	lossBound = 2 * time.Minute
	// clockSlack: node-loss-since is the controller's clock (in a node VM), in seconds.
	clockSlack = 5 * time.Second

	controllerPodSelector = "app.kubernetes.io/name=localnvme,app.kubernetes.io/component=controller"
	fencingLease          = "localnvme-fencing"
	// nodeReadyTimeout: a node VM start to Ready (its images kept on its containerd disk).
	nodeReadyTimeout = 8 * time.Minute
	// fencedTag is the LV tag key a node sets on the LV of a fenced PV (volume.TagFenced).
	fencedTag = "lnv.fenced"
	// outOfServiceValue is the taint value of the non-graceful node shutdown docs.
	outOfServiceValue = "nodeshutdown"
)

// nodeLoss is what the node-loss scenarios share: the namespace and claims a passed
// scenario hands over to the next one, namespaces handed over that no scenario adopted,
// and whether the StorageClasses exist.
var nodeLoss struct {
	mu       sync.Mutex
	ns       string                // handed over by the scenario `passed`
	passed   string                //
	claims   map[string]*lossClaim // what it handed over, by role
	adopted  map[string]*lossClaim // what the running scenario adopted
	leftover []string              // handed over, never adopted: finishNodeLoss tears them down
	classes  bool
}

// nodeLossEnabled: the node-loss chain runs unless E2E_NODELOSS=0 (each node VM restarts
// once and seven PostgreSQL pods start: it is the largest part of `make e2e`).
var nodeLossEnabled = os.Getenv("E2E_NODELOSS") != "0"

// nodeLossScenarios registers the node-loss chain (TestE2E, after the others; the failure
// scenario leader-election runs in the group "cluster").
func nodeLossScenarios(t *testing.T) {
	if !nodeLossEnabled {
		logf("e2e: the node-loss scenarios (node-deleted, node-returns, out-of-service, rebuilt-node) are not run: E2E_NODELOSS=0")
		return
	}
	lossScenario(t, "node-deleted", "", 20*time.Minute, testNodeDeleted)
	lossScenario(t, "node-returns", "node-deleted", 20*time.Minute, testNodeReturns)
	lossScenario(t, "out-of-service", "node-returns", 20*time.Minute, testOutOfService)
	lossScenario(t, "rebuilt-node", "out-of-service", 20*time.Minute, testRebuiltNode)
	finishNodeLoss(t)
}

// lossScenario runs a node-loss scenario that continues the one named after (adopting its
// namespace and claims if it passed) and, when it passes and handed claims over
// (e.handOver), leaves its own namespace to the next one. On failure it restores the
// cluster before the teardown.
func lossScenario(t *testing.T, name, after string, timeout time.Duration, fn func(e *E)) {
	scenarioWith(t, name, timeout, scenarioOptions{
		adoptNamespace: func() string {
			nodeLoss.mu.Lock()
			defer nodeLoss.mu.Unlock()
			nodeLoss.adopted = nil
			if nodeLoss.ns == "" || after == "" || nodeLoss.passed != after {
				return ""
			}
			ns := nodeLoss.ns
			nodeLoss.adopted, nodeLoss.claims, nodeLoss.ns, nodeLoss.passed = nodeLoss.claims, nil, "", ""
			return ns
		},
		keepNamespace: func(e *E) bool {
			nodeLoss.mu.Lock()
			defer nodeLoss.mu.Unlock()
			if e.t.Failed() || nodeLoss.claims == nil {
				nodeLoss.claims = nil
				return false
			}
			if nodeLoss.ns != "" {
				nodeLoss.leftover = append(nodeLoss.leftover, nodeLoss.ns)
			}
			nodeLoss.ns, nodeLoss.passed = e.ns, name
			return true
		},
		beforeTeardown: retainToDelete,
	}, func(e *E) {
		e.t.Cleanup(func() {
			if e.t.Failed() {
				restoreCluster(e)
			}
		})
		e.ensureNodeLossClasses()
		fn(e)
	})
}

// handOver leaves claims (by role) to the next node-loss scenario, with the namespace.
func (e *E) handOver(claims map[string]*lossClaim) {
	nodeLoss.mu.Lock()
	defer nodeLoss.mu.Unlock()
	nodeLoss.claims = claims
}

// adoptedClaims is what the previous scenario handed over (nil if this one did not adopt).
func (e *E) adoptedClaims() map[string]*lossClaim {
	nodeLoss.mu.Lock()
	defer nodeLoss.mu.Unlock()
	return nodeLoss.adopted
}

// mustAdopt is adoptedClaims for a scenario that continues the state of `after`.
func (e *E) mustAdopt(after string, roles ...string) map[string]*lossClaim {
	e.t.Helper()
	cl := e.adoptedClaims()
	for _, r := range roles {
		if cl[r] == nil {
			e.Fatalf("this scenario continues %s, which did not pass (or did not run): no claim %q handed over", after, r)
		}
	}
	return cl
}

// ---------------------------------------------------------------- node VMs

func nodeVMPath() (string, error) {
	if p := os.Getenv("E2E_NODE_VM"); p != "" {
		return p, nil
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "hack", "cluster", "node-vm.sh"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the node VM script: %w (set E2E_NODE_VM)", err)
	}
	return p, nil
}

// lineLog logs a command's output line by line and keeps the last lines.
type lineLog struct {
	mu   sync.Mutex
	say  func(string, ...any)
	buf  []byte
	last []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) line(s string) {
	l.say("  | %s", s)
	l.last = append(l.last, s)
	if len(l.last) > 12 {
		l.last = l.last[1:]
	}
}

func (l *lineLog) output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
	return strings.Join(l.last, "\n")
}

// nodeVM runs hack/cluster/node-vm.sh with args, logging its output, and returns the last
// lines of it.
func nodeVM(ctx context.Context, say func(string, ...any), args ...string) (string, error) {
	script, err := nodeVMPath()
	if err != nil {
		return "", err
	}
	say("$ node-vm.sh %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, script, args...)
	out := &lineLog{say: say}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err = cmd.Run()
	text := out.output()
	if err != nil {
		return text, fmt.Errorf("node-vm.sh %s failed after %s: %v: %s", strings.Join(args, " "), time.Since(t0).Round(time.Second), err, oneLine(text, 400))
	}
	return text, nil
}

func nodeVMRunning(ctx context.Context, say func(string, ...any), node string) (bool, error) {
	out, err := nodeVM(ctx, say, "status", node)
	if err != nil {
		return false, err
	}
	return strings.Contains(out, node+" running"), nil
}

func (e *E) stopNodeVM(node string) {
	e.t.Helper()
	_, err := nodeVM(e.ctx, e.logf, "stop", node)
	e.must(err, "stopping the VM of node %s", node)
}

// startNodeVM starts the node's VM (blank: with new empty drives) and waits until the node
// is usable again.
func (e *E) startNodeVM(node string, blank bool) {
	e.t.Helper()
	t0 := time.Now()
	args := []string{"start", node}
	if blank {
		args = append(args, "--blank-drives")
	}
	_, err := nodeVM(e.ctx, e.logf, args...)
	e.must(err, "starting the VM of node %s", node)
	ctx, cancel := context.WithTimeout(e.ctx, nodeReadyTimeout+time.Minute)
	defer cancel()
	_, err = nodeVM(ctx, e.logf, "wait-ready", node, strconv.Itoa(int(nodeReadyTimeout.Seconds())))
	e.must(err, "node %s did not become Ready", node)
	if err := waitNodeUsable(e.ctx, e, node, 5*time.Minute); err != nil {
		e.Fatalf("%v", err)
	}
	e.logf("node %s usable %s after its VM start", node, time.Since(t0).Round(time.Second))
}

// waitNodeUsable waits for the node to be Ready with one Ready localnvme node pod and the
// driver in its CSINode.
func waitNodeUsable(ctx context.Context, e *E, node string, timeout time.Duration) error {
	return waitFor(ctx, e, "node "+node+" to be usable (Ready, its localnvme node pod Ready, the driver registered)", timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if !nodeReady(n) {
			return false, "not Ready", nil
		}
		if _, err := nodePluginPod(ctx, node); err != nil {
			return false, err.Error(), nil
		}
		cn, err := kube.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, "CSINode: " + err.Error(), nil
		}
		if !csiNodeHasDriver(cn.Spec.Drivers) {
			return false, "CSINode does not list " + driverName + " yet", nil
		}
		return true, "", nil
	})
}

// setOutOfService adds or removes the taint node.kubernetes.io/out-of-service=nodeshutdown:NoExecute.
func setOutOfService(ctx context.Context, node string, on bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var taints []corev1.Taint
		had := false
		for _, t := range n.Spec.Taints {
			if t.Key == fenceapi.TaintOutOfService {
				had = true
				continue
			}
			taints = append(taints, t)
		}
		if on {
			taints = append(taints, corev1.Taint{Key: fenceapi.TaintOutOfService, Value: outOfServiceValue, Effect: corev1.TaintEffectNoExecute})
		} else if !had {
			return nil
		}
		n.Spec.Taints = taints
		_, err = kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// restoreCluster is every node-loss scenario's cleanup: no out-of-service taint, no cordon of
// these tests, every node VM running (started with its drives as they are if it is not;
// stopped and started again if its VM runs without a Node, which a kubelet does not
// re-create), and every node usable. Failures fail the scenario but do not stop the cleanup.
func restoreCluster(e *E) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	e.logf("cleanup: restoring the nodes (VMs running, no taint, no cordon)")
	var started []string
	for _, n := range expectedNodes {
		if err := setOutOfService(ctx, n, false); err != nil && !apierrors.IsNotFound(err) {
			e.Errorf("cleanup: removing the out-of-service taint from %s: %v", n, err)
		}
		node, err := kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		nodeGone := apierrors.IsNotFound(err)
		if err == nil && node.Annotations[cordonAnnotation] != "" {
			if err := setCordon(ctx, n, false); err != nil {
				e.Errorf("cleanup: uncordoning %s: %v", n, err)
			}
		}
		running, err := nodeVMRunning(ctx, e.logf, n)
		if err != nil {
			e.Errorf("cleanup: %v", err)
			continue
		}
		if running && nodeGone {
			e.logf("cleanup: the VM of %s runs but its Node is gone: restarting the VM so that its kubelet registers it", n)
			if _, err := nodeVM(ctx, e.logf, "stop", n); err != nil {
				e.Errorf("cleanup: %v", err)
				continue
			}
			running = false
		}
		if !running {
			if _, err := nodeVM(ctx, e.logf, "start", n); err != nil {
				e.Errorf("cleanup: %v", err)
				continue
			}
			started = append(started, n)
		}
	}
	for _, n := range expectedNodes {
		for _, s := range started {
			if s == n {
				if _, err := nodeVM(ctx, e.logf, "wait-ready", n, strconv.Itoa(int(nodeReadyTimeout.Seconds()))); err != nil {
					e.Errorf("cleanup: %v", err)
				}
			}
		}
		if err := waitNodeUsable(ctx, e, n, 6*time.Minute); err != nil {
			e.Errorf("cleanup: %v", err)
		}
	}
	// A re-registered Node carries neither; an old one may still.
	for _, n := range expectedNodes {
		if err := setOutOfService(ctx, n, false); err != nil && !apierrors.IsNotFound(err) {
			e.Errorf("cleanup: removing the out-of-service taint from %s: %v", n, err)
		}
	}
}

// retainToDelete flips the namespace's Retain PVs (the release class's, bound or released)
// to Delete, so that the teardown removes them and their LVs.
func retainToDelete(e *E) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pvs, err := namespacePVs(ctx, e.ns)
	if err != nil {
		e.Errorf("cleanup: %v", err)
		return
	}
	for _, pv := range pvs {
		if pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
			continue
		}
		if err := setReclaimDelete(ctx, pv.Name); err != nil {
			e.Errorf("cleanup: PV %s reclaim policy to Delete: %v", pv.Name, err)
		} else {
			e.logf("cleanup: PV %s (%s, claim %s) reclaim policy Retain → Delete", pv.Name, pv.Status.Phase, pv.Spec.ClaimRef.Name)
		}
	}
}

func setReclaimDelete(ctx context.Context, pv string) error {
	_, err := kube.CoreV1().PersistentVolumes().Patch(ctx, pv, types.MergePatchType,
		[]byte(`{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}`), metav1.PatchOptions{})
	return err
}

// finishNodeLoss runs in TestE2E after the scenarios: it tears down the namespaces handed
// over that no scenario adopted (a -run filter, or the last scenario did not run), and
// deletes the StorageClasses. Failures fail TestE2E.
func finishNodeLoss(t *testing.T) {
	nodeLoss.mu.Lock()
	nss, classes := nodeLoss.leftover, nodeLoss.classes
	if nodeLoss.ns != "" {
		nss = append(nss, nodeLoss.ns)
	}
	nodeLoss.ns, nodeLoss.passed, nodeLoss.claims, nodeLoss.leftover, nodeLoss.classes = "", "", nil, nil, false
	nodeLoss.mu.Unlock()
	if len(nss) == 0 && !classes {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for i, ns := range nss {
		e := &E{t: t, ctx: ctx, name: "node-loss-cleanup", ns: ns, start: time.Now()}
		if i == 0 {
			restoreCluster(e)
		}
		retainToDelete(e)
		e.teardown()
	}
	if classes {
		e := &E{t: t, ctx: ctx, name: "node-loss-cleanup", start: time.Now()}
		for _, sc := range []string{scLossKeep, scLossRelease, scLossReleaseSlow} {
			err := kube.StorageV1().StorageClasses().Delete(ctx, sc, metav1.DeleteOptions{})
			switch {
			case err == nil:
				e.logf("deleted StorageClass %s", sc)
			case !apierrors.IsNotFound(err):
				e.Errorf("deleting StorageClass %s: %v", sc, err)
			}
		}
	}
}

// ---------------------------------------------------------------- StorageClasses

func nodeLossClass(name string, action fenceapi.Action, delay string) *storagev1.StorageClass {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if action == fenceapi.ActionRelease {
		reclaim = corev1.PersistentVolumeReclaimRetain // the released PV and its LV stay until the test flips it
	}
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	return &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{namespaceLabel: "node-loss"}},
		Provisioner: driverName,
		Parameters: map[string]string{
			"localnvme.io/device-class": "fast",
			"csi.storage.k8s.io/fstype": "ext4",
			fenceapi.ParamOnNodeLoss:    string(action),
			fenceapi.ParamNodeLossDelay: delay,
		},
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &mode,
	}
}

// ensureNodeLossClasses creates the three StorageClasses (again, if one exists with other settings:
// their parameters are immutable).
func (e *E) ensureNodeLossClasses() {
	e.t.Helper()
	nodeLoss.mu.Lock()
	nodeLoss.classes = true // finishNodeLoss deletes them
	nodeLoss.mu.Unlock()
	for _, want := range []*storagev1.StorageClass{
		nodeLossClass(scLossKeep, fenceapi.ActionKeep, lossDelayParam),
		nodeLossClass(scLossRelease, fenceapi.ActionRelease, lossDelayParam),
		nodeLossClass(scLossReleaseSlow, fenceapi.ActionRelease, lossSlowDelayParam),
	} {
		have, err := kube.StorageV1().StorageClasses().Get(e.ctx, want.Name, metav1.GetOptions{})
		if err == nil {
			same := have.Provisioner == want.Provisioner && len(have.Parameters) == len(want.Parameters) &&
				have.ReclaimPolicy != nil && *have.ReclaimPolicy == *want.ReclaimPolicy &&
				have.VolumeBindingMode != nil && *have.VolumeBindingMode == *want.VolumeBindingMode
			for k, v := range want.Parameters {
				same = same && have.Parameters[k] == v
			}
			if same {
				continue
			}
			e.logf("StorageClass %s exists with other settings: re-creating it", want.Name)
			e.must(kube.StorageV1().StorageClasses().Delete(e.ctx, want.Name, metav1.DeleteOptions{}), "deleting StorageClass %s", want.Name)
		} else if !apierrors.IsNotFound(err) {
			e.must(err, "getting StorageClass %s", want.Name)
		}
		_, err = kube.StorageV1().StorageClasses().Create(e.ctx, want, metav1.CreateOptions{})
		e.must(err, "creating StorageClass %s", want.Name)
		e.logf("created StorageClass %s (%s=%s, %s=%s, reclaim %s)", want.Name, fenceapi.ParamOnNodeLoss, want.Parameters[fenceapi.ParamOnNodeLoss],
			fenceapi.ParamNodeLossDelay, want.Parameters[fenceapi.ParamNodeLossDelay], *want.ReclaimPolicy)
	}
}

// ---------------------------------------------------------------- leader election

func controllerPods(ctx context.Context) ([]corev1.Pod, error) {
	list, err := kube.CoreV1().Pods(driverNamespace).List(ctx, metav1.ListOptions{LabelSelector: controllerPodSelector})
	if err != nil {
		return nil, fmt.Errorf("listing controller pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return p.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue
}

func podsLine(pods []corev1.Pod) string {
	var parts []string
	for i := range pods {
		p := &pods[i]
		parts = append(parts, fmt.Sprintf("%s(%s ready=%v node=%s)", p.Name, p.Status.Phase, podReady(p), p.Spec.NodeName))
	}
	return strings.Join(parts, ", ")
}

// holderPod is the pod whose name the Lease holder identity is (the controller uses
// $POD_NAME; client-go style "<name>_<uuid>" is accepted too), or "".
func holderPod(holder string, pods []corev1.Pod) string {
	for _, p := range pods {
		if holder != "" && (holder == p.Name || strings.HasPrefix(holder, p.Name+"_")) {
			return p.Name
		}
	}
	return ""
}

// Both controller replicas run; the one holding the Lease is deleted with grace period 0,
// and the other one (or the replacement) holds the Lease within leaseDurationSeconds + 5 s.
func testLeaderElection(e *E) {
	waitTwo := func(what string) []corev1.Pod {
		var pods []corev1.Pod
		e.waitFor(what, 5*time.Minute, func(ctx context.Context) (bool, string, error) {
			ps, err := controllerPods(ctx)
			if err != nil {
				return false, err.Error(), nil
			}
			pods = nil
			for i := range ps {
				if podReady(&ps[i]) {
					pods = append(pods, ps[i])
				}
			}
			return len(pods) >= 2, podsLine(ps), nil
		})
		return pods
	}
	pods := waitTwo("2 Ready localnvme controller pods")
	lease, err := kube.CoordinationV1().Leases(driverNamespace).Get(e.ctx, fencingLease, metav1.GetOptions{})
	e.must(err, "getting the fencing Lease %s/%s", driverNamespace, fencingLease)
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	leader := holderPod(holder, pods)
	if leader == "" {
		e.Fatalf("Lease %s/%s is held by %q, none of the Ready controller pods (%s)", driverNamespace, fencingLease, holder, podsLine(pods))
	}
	if lease.Spec.LeaseDurationSeconds == nil || *lease.Spec.LeaseDurationSeconds <= 0 {
		e.Fatalf("Lease %s/%s has no leaseDurationSeconds", driverNamespace, fencingLease)
	}
	dur := time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	transitions := int32(0)
	if lease.Spec.LeaseTransitions != nil {
		transitions = *lease.Spec.LeaseTransitions
	}
	e.logf("Lease %s held by %s (pod %s), leaseDurationSeconds %d, transitions %d", fencingLease, holder, leader, *lease.Spec.LeaseDurationSeconds, transitions)

	// A pod deleted with grace 0 is gone from the API at once, but its container runs (and
	// renews the Lease) until the kubelet has killed it, which takes seconds under TCG. So
	// the hand-over is measured from the old holder's last renew, as this host saw it (the
	// Lease's own timestamps come from two VMs' clocks). client-go's follower counts the
	// lease duration from when it observed the last renew, and it looks every retry period
	// (2 s) with a jitter factor of 1.2, i.e. up to 4.4 s apart: so it takes the Lease at
	// most leaseDurationSeconds + 2 × 4.4 s after the last renew, plus 2 s of API and
	// polling slack.
	zero := int64(0)
	killed := time.Now()
	e.must(kube.CoreV1().Pods(driverNamespace).Delete(e.ctx, leader, metav1.DeleteOptions{GracePeriodSeconds: &zero}), "deleting the leader pod %s", leader)
	const retryPeriod, jitter = 2 * time.Second, 1.2
	bound := dur + 2*time.Duration(float64(retryPeriod)*(1+jitter)) + 2*time.Second
	lastRenew, lastSeen := killed, ""
	if lease.Spec.RenewTime != nil {
		lastSeen = lease.Spec.RenewTime.String()
	}
	var newHolder, newPod string
	var changed time.Time
	err = waitFor(e.ctx, e, "another controller pod to hold Lease "+fencingLease, 3*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		l, err := kube.CoordinationV1().Leases(driverNamespace).Get(ctx, fencingLease, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		h := ""
		if l.Spec.HolderIdentity != nil {
			h = *l.Spec.HolderIdentity
		}
		if h == "" || h == holder {
			if l.Spec.RenewTime != nil && l.Spec.RenewTime.String() != lastSeen {
				lastSeen, lastRenew = l.Spec.RenewTime.String(), time.Now()
			}
			return false, fmt.Sprintf("holder %q, last renew seen %.1f s after the kill", h, lastRenew.Sub(killed).Seconds()), nil
		}
		ps, err := controllerPods(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		var others []corev1.Pod
		for _, p := range ps {
			if p.Name != leader {
				others = append(others, p)
			}
		}
		p := holderPod(h, others)
		if p == "" {
			return false, fmt.Sprintf("holder %q is no controller pod (%s)", h, podsLine(ps)), nil
		}
		newHolder, newPod, changed = h, p, time.Now()
		return true, "holder " + h, nil
	})
	if err != nil {
		ps, _ := controllerPods(context.Background())
		e.Fatalf("%v; controller pods: %s", err, podsLine(ps))
	}
	gap := changed.Sub(lastRenew)
	if gap > bound {
		e.Fatalf("%s (holder %s) took Lease %s %.1f s after the old leader's last renew (%.1f s after the kill): more than leaseDurationSeconds %d + 2 jittered retry periods (8.8 s) + 2 s",
			newPod, newHolder, fencingLease, gap.Seconds(), lastRenew.Sub(killed).Seconds(), *lease.Spec.LeaseDurationSeconds)
	}
	e.Note("leader %s deleted with grace period 0, its last renew seen %.1f s later; %s (holder %s) took Lease %s %.1f s after that (bound %s), %.1f s after the kill",
		leader, lastRenew.Sub(killed).Seconds(), newPod, newHolder, fencingLease, gap.Seconds(), bound, changed.Sub(killed).Seconds())
	pods = waitTwo("2 Ready controller pods again (the Deployment replaces the deleted one)")
	e.Note("2 Ready controller pods again: %s", podsLine(pods))
}

// ---------------------------------------------------------------- node-loss helpers

// lossClaim is a PostgreSQL StatefulSet's claim in a node-loss scenario.
type lossClaim struct {
	set, claim, pod string // the StatefulSet, its claim data-<set>-0 and its pod <set>-0
	uid             types.UID
	pv, handle      string
	node            string // the PV's node
	id              volume.ID
	data            pgData
}

func (c *lossClaim) String() string { return c.claim + " (PV " + c.pv + " on " + c.node + ")" }

func (e *E) lossClaimOf(set string) *lossClaim {
	e.t.Helper()
	c := &lossClaim{set: set, claim: "data-" + set + "-0", pod: set + "-0"}
	pvc, pv := e.waitPVCBound(c.claim, time.Minute)
	c.uid, c.pv, c.handle = pvc.UID, pv.Name, pv.Spec.CSI.VolumeHandle
	n, err := pvNode(pv)
	e.must(err, "claim %s", c.claim)
	c.node = n
	c.id, err = volume.ParseID(c.handle, volume.KindVolume)
	e.must(err, "PV %s volume handle", pv.Name)
	return c
}

// createPostgresOn creates the StatefulSets (name, class) with their pods on node, the other
// node cordoned until they are scheduled, and returns their claims.
func (e *E) createPostgresOn(node string, sets [][2]string) []*lossClaim {
	e.t.Helper()
	return e.createPostgresPlaced(pgPlacement{node, sets})[0]
}

// pgPlacement: StatefulSets (name, class) whose pods must run on node.
type pgPlacement struct {
	node string
	sets [][2]string
}

// createPostgresPlaced creates the StatefulSets of each placement, one node at a time with
// the other node cordoned until its pods are scheduled (their claims provisioned there, so
// the PV's node affinity keeps them there), then waits until every pod runs. The pods of
// both nodes start at once: a PostgreSQL start costs minutes of a node's one vCPU, and the
// nodes have one each. It returns the claims per placement.
func (e *E) createPostgresPlaced(places ...pgPlacement) [][]*lossClaim {
	e.t.Helper()
	for _, pl := range places {
		other := otherNode(pl.node)
		e.must(setCordon(e.ctx, other, true), "cordoning %s", other)
		e.logf("cordoned %s so that the new PostgreSQL pods %v land on %s", other, pl.sets, pl.node)
		for _, s := range pl.sets {
			e.createPostgres(s[0], s[1])
		}
		for _, s := range pl.sets {
			pod := s[0] + "-0"
			e.waitFor("pod "+pod+" to be scheduled", 3*time.Minute, func(ctx context.Context) (bool, string, error) {
				p, err := kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
				if err != nil {
					return false, err.Error(), nil
				}
				if p.Spec.NodeName != "" && p.Spec.NodeName != pl.node {
					return false, "", fmt.Errorf("pod %s was scheduled onto %s, want %s (%s was cordoned)", pod, p.Spec.NodeName, pl.node, other)
				}
				return p.Spec.NodeName == pl.node, podStatusLine(p), nil
			})
		}
		e.must(setCordon(e.ctx, other, false), "uncordoning %s", other)
		e.logf("uncordoned %s", other)
	}
	out := make([][]*lossClaim, len(places))
	for i, pl := range places {
		for _, s := range pl.sets {
			p := e.waitPodRunning(s[0]+"-0", pgTimeout)
			if p.Spec.NodeName != pl.node {
				e.Fatalf("pod %s runs on %s, want %s", p.Name, p.Spec.NodeName, pl.node)
			}
			c := e.lossClaimOf(s[0])
			if c.node != pl.node {
				e.Fatalf("claim %s: PV %s is on %s, its pod on %s", c.claim, c.pv, c.node, pl.node)
			}
			out[i] = append(out[i], c)
		}
	}
	return out
}

func lossAnnotations(pv *corev1.PersistentVolume) string {
	var parts []string
	for _, k := range []string{fenceapi.AnnotationTrigger, fenceapi.AnnotationTriggerSince, fenceapi.AnnotationDecision, fenceapi.AnnotationLost, fenceapi.AnnotationFenced} {
		if v, ok := pv.Annotations[k]; ok {
			parts = append(parts, strings.TrimPrefix(k, "localnvme.io/")+"="+oneLine(v, 160))
		}
	}
	if len(parts) == 0 {
		return "no node-loss annotations"
	}
	return strings.Join(parts, " ")
}

// lossDiag is the state of the claims, their PVs and pods, with recent events.
func (e *E) lossDiag(claims ...*lossClaim) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	for _, c := range claims {
		s := "claim " + c.claim + ": "
		if pvc, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, c.claim, metav1.GetOptions{}); err != nil {
			s += err.Error()
		} else {
			s += fmt.Sprintf("%s uid %s (first %s) volume %s", pvc.Status.Phase, pvc.UID, c.uid, pvc.Spec.VolumeName)
		}
		if pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, c.pv, metav1.GetOptions{}); err != nil {
			s += "; PV " + c.pv + ": " + err.Error()
		} else {
			s += fmt.Sprintf("; PV %s %s %s", c.pv, pv.Status.Phase, lossAnnotations(pv))
		}
		if evs, err := objectEvents(ctx, "", "PersistentVolume", c.pv, ""); err == nil {
			s += "; PV events: " + eventsLine(evs, 4)
		}
		s += "; " + e.podDiagnostics(c.pod)
		out = append(out, s)
	}
	return strings.Join(out, " || ")
}

// waitTrigger waits until the PV is marked with the trigger, and returns node-loss-since.
func (e *E) waitTrigger(c *lossClaim, t fenceapi.Trigger, timeout time.Duration) time.Time {
	e.t.Helper()
	var since time.Time
	err := waitFor(e.ctx, e, fmt.Sprintf("PV %s of claim %s to be marked %s=%s", c.pv, c.claim, fenceapi.AnnotationTrigger, t), timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, c.pv, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if pv.Annotations[fenceapi.AnnotationTrigger] != string(t) {
			return false, lossAnnotations(pv), nil
		}
		s, err := time.Parse(time.RFC3339, pv.Annotations[fenceapi.AnnotationTriggerSince])
		if err != nil {
			return false, "", fmt.Errorf("PV %s: %s=%q: %v", c.pv, fenceapi.AnnotationTriggerSince, pv.Annotations[fenceapi.AnnotationTriggerSince], err)
		}
		since = s
		return true, lossAnnotations(pv), nil
	})
	if err != nil {
		e.Fatalf("%v; %s", err, e.lossDiag(c))
	}
	return since
}

// holdNotReleased checks until `until` that no claim is released: same UID, not being
// deleted, its PV neither fenced nor decided released.
func (e *E) holdNotReleased(until time.Time, claims ...*lossClaim) {
	e.t.Helper()
	d := time.Until(until)
	if d <= 0 {
		e.Errorf("the trigger was seen %s after the end of the check before the delay: nothing checked", (-d).Round(time.Second))
		return
	}
	var names []string
	for _, c := range claims {
		names = append(names, c.claim)
	}
	e.holdFor(fmt.Sprintf("%s are not released before the delay (until %s)", strings.Join(names, " and "), until.Format("15:04:05")), d, func(ctx context.Context) (bool, string, error) {
		var st []string
		for _, c := range claims {
			pvc, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, c.claim, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				return false, "claim " + c.claim + " was deleted; " + e.lossDiag(c), nil
			case err != nil:
				st = append(st, c.claim+": "+err.Error()) // an API hiccup: look again
				continue
			case pvc.UID != c.uid:
				return false, fmt.Sprintf("claim %s was re-created (UID %s, was %s); %s", c.claim, pvc.UID, c.uid, e.lossDiag(c)), nil
			case pvc.DeletionTimestamp != nil:
				return false, "claim " + c.claim + " is being deleted; " + e.lossDiag(c), nil
			}
			pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, c.pv, metav1.GetOptions{})
			if err != nil {
				st = append(st, c.pv+": "+err.Error())
				continue
			}
			if fenceapi.IsFenced(pv.Annotations) || pv.Annotations[fenceapi.AnnotationDecision] == fenceapi.DecisionReleased {
				return false, fmt.Sprintf("PV %s is already released: %s", c.pv, lossAnnotations(pv)), nil
			}
			st = append(st, c.claim+": "+pv.Annotations[fenceapi.AnnotationDecision])
		}
		return true, strings.Join(st, "; "), nil
	})
}

// waitReleased waits until the claim was deleted and re-created by its StatefulSet (another
// UID) and its pod runs (phase Running) on node ("": any node), by deadline; then until
// PostgreSQL in it is ready. It returns the new claim.
func (e *E) waitReleased(c *lossClaim, deadline time.Time, node string) *lossClaim {
	e.t.Helper()
	what := fmt.Sprintf("claim %s to be released and re-created, and pod %s to run on %s", c.claim, c.pod, node)
	err := waitFor(e.ctx, e, what, time.Until(deadline), pollInterval, func(ctx context.Context) (bool, string, error) {
		var st []string
		if pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, c.pv, metav1.GetOptions{}); err == nil {
			st = append(st, fmt.Sprintf("old PV %s %s", pv.Status.Phase, lossAnnotations(pv)))
		}
		recreated := false
		pvc, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, c.claim, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			st = append(st, "claim deleted, not re-created yet")
		case err != nil:
			st = append(st, err.Error())
		case pvc.UID == c.uid:
			st = append(st, "claim not released yet")
		default:
			recreated = true
			st = append(st, fmt.Sprintf("claim re-created (UID %s, %s)", pvc.UID, pvc.Status.Phase))
		}
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, c.pod, metav1.GetOptions{})
		if err != nil {
			return false, strings.Join(append(st, "pod: "+err.Error()), "; "), nil
		}
		st = append(st, "pod "+podStatusLine(p))
		if p.DeletionTimestamp != nil {
			return false, strings.Join(append(st, "(being deleted)"), "; "), nil
		}
		if recreated && p.Status.Phase == corev1.PodRunning && node != "" && p.Spec.NodeName != node {
			return false, "", fmt.Errorf("pod %s runs on %s, want %s", c.pod, p.Spec.NodeName, node)
		}
		return recreated && p.Status.Phase == corev1.PodRunning, strings.Join(st, "; "), nil
	})
	if err != nil {
		e.Fatalf("%v; %s", err, e.lossDiag(c))
	}
	e.waitPodRunning(c.pod, pgTimeout)
	n := e.lossClaimOf(c.set)
	if n.uid == c.uid || (node != "" && n.node != node) || n.pv == c.pv {
		e.Fatalf("claim %s after the release: UID %s (was %s), PV %s (was %s) on %s (want %q)", c.claim, n.uid, c.uid, n.pv, c.pv, n.node, node)
	}
	return n
}

// waitPV waits until the PV satisfies ok and returns it.
func (e *E) waitPV(name, what string, timeout time.Duration, ok func(pv *corev1.PersistentVolume) bool) *corev1.PersistentVolume {
	e.t.Helper()
	var last *corev1.PersistentVolume
	e.waitFor("PV "+name+" to be "+what, timeout, func(ctx context.Context) (bool, string, error) {
		pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		last = pv
		return ok(pv), string(pv.Status.Phase) + " " + lossAnnotations(pv), nil
	})
	return last
}

// checkReleased checks, once the release happened, the released claim's old PV (Released,
// decided released, fenced, with the trigger) and the Events on the old claim and the PV.
func (e *E) checkReleased(rel *lossClaim, t fenceapi.Trigger, first string) {
	e.t.Helper()
	pv := e.waitPV(rel.pv, "Released, decided released and fenced", 2*time.Minute, func(pv *corev1.PersistentVolume) bool {
		return pv.Status.Phase == corev1.VolumeReleased && pv.Annotations[fenceapi.AnnotationDecision] == fenceapi.DecisionReleased &&
			fenceapi.IsFenced(pv.Annotations) && pv.Annotations[fenceapi.AnnotationTrigger] == string(t)
	})
	e.Note("old PV %s of %s: Released, %s", rel.pv, rel.claim, oneLine(lossAnnotations(pv), 200))
	reasons := []string{first, fenceapi.ReasonWaiting, fenceapi.ReasonReleased}
	e.waitEvents(e.ns, "PersistentVolumeClaim", rel.claim, rel.uid, 90*time.Second, reasons...)
	e.waitEvents("", "PersistentVolume", rel.pv, "", 90*time.Second, reasons...)
	e.Note("Events %s on the old claim and PV of %s", strings.Join(reasons, ","), rel.claim)
	// Pods of the released claim the controller deleted (a pod may also have gone by
	// pod garbage collection first: not required).
	if evs, err := kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "reason=" + fenceapi.ReasonPodDeleted}); err == nil && len(evs.Items) > 0 {
		e.logf("%s events: %s", fenceapi.ReasonPodDeleted, eventsLine(evs.Items, 3))
	}
}

// checkKept checks that the kept claim was only marked: decided kept with the trigger, the
// same claim bound to it, its pod not running, and the Events first,NodeLossKept on both.
func (e *E) checkKept(keep *lossClaim, t fenceapi.Trigger, first string) {
	e.t.Helper()
	kpv := e.waitPV(keep.pv, "decided kept", time.Minute, func(pv *corev1.PersistentVolume) bool {
		return pv.Annotations[fenceapi.AnnotationDecision] == fenceapi.DecisionKept && pv.Annotations[fenceapi.AnnotationTrigger] == string(t)
	})
	e.sameClaim(keep)
	podState := "no pod"
	if p, err := kube.CoreV1().Pods(e.ns).Get(e.ctx, keep.pod, metav1.GetOptions{}); err == nil && p.DeletionTimestamp != nil {
		podState = "the pod of before the loss, being deleted: " + podStatusLine(p)
	} else if err == nil {
		podState = podStatusLine(p)
		if p.Status.Phase == corev1.PodRunning {
			n, nerr := kube.CoreV1().Nodes().Get(e.ctx, p.Spec.NodeName, metav1.GetOptions{})
			if p.Spec.NodeName != keep.node || (nerr == nil && nodeReady(n)) {
				e.Fatalf("pod %s of the kept claim runs while its node is lost: %s", keep.pod, podStatusLine(p))
			}
			podState = "the pod of before the loss, whose status its lost node cannot update: " + podState
		}
	}
	reasons := []string{first, fenceapi.ReasonKept}
	e.waitEvents(e.ns, "PersistentVolumeClaim", keep.claim, keep.uid, 90*time.Second, reasons...)
	e.waitEvents("", "PersistentVolume", keep.pv, "", 90*time.Second, reasons...)
	e.Note("kept claim %s: same UID, PV %s, pod %s; Events %s", keep.claim, oneLine(lossAnnotations(kpv), 120), oneLine(podState, 120), strings.Join(reasons, ","))
}

// sameClaim fails unless the claim still has its UID, is not being deleted and is bound to its PV.
func (e *E) sameClaim(c *lossClaim) {
	e.t.Helper()
	pvc := e.getPVC(c.claim)
	if pvc.UID != c.uid || pvc.DeletionTimestamp != nil || pvc.Spec.VolumeName != c.pv {
		e.Fatalf("claim %s changed: UID %s (was %s), deleting=%v, volume %s (was %s)", c.claim, pvc.UID, c.uid, pvc.DeletionTimestamp != nil, pvc.Spec.VolumeName, c.pv)
	}
}

// waitClaimGone waits until the claim with c's UID is deleted (gone, being deleted, or
// replaced by another UID) by deadline, and returns when that was seen.
func (e *E) waitClaimGone(c *lossClaim, deadline time.Time) time.Time {
	e.t.Helper()
	err := waitFor(e.ctx, e, "claim "+c.claim+" (UID "+string(c.uid)+") to be released", time.Until(deadline), time.Second, func(ctx context.Context) (bool, string, error) {
		pvc, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, c.claim, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, "", nil
		case err != nil:
			return false, err.Error(), nil
		}
		return pvc.UID != c.uid || pvc.DeletionTimestamp != nil, string(pvc.Status.Phase), nil
	})
	if err != nil {
		e.Fatalf("%v; %s", err, e.lossDiag(c))
	}
	return time.Now()
}

// checkNoDoubleRelease: over the whole run (every namespace; PV events are in "default"),
// no claim and no PV has more than one NodeLossReleased event.
func (e *E) checkNoDoubleRelease() {
	e.t.Helper()
	evs, err := kube.CoreV1().Events("").List(e.ctx, metav1.ListOptions{FieldSelector: "reason=" + fenceapi.ReasonReleased})
	e.must(err, "listing %s events", fenceapi.ReasonReleased)
	type obj struct{ kind, ns, name, uid string }
	count := map[obj]int32{}
	for _, ev := range evs.Items {
		n := ev.Count
		if ev.Series != nil && ev.Series.Count > n {
			n = ev.Series.Count
		}
		if n < 1 {
			n = 1
		}
		o := ev.InvolvedObject
		count[obj{o.Kind, o.Namespace, o.Name, string(o.UID)}] += n
	}
	claims, pvs := 0, 0
	var dup []string
	for o, n := range count {
		switch o.kind {
		case "PersistentVolumeClaim":
			claims++
		case "PersistentVolume":
			pvs++
		}
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s %s/%s (uid %s) %d times", o.kind, o.ns, o.name, o.uid, n))
		}
	}
	sort.Strings(dup)
	if len(dup) > 0 {
		e.Errorf("%s more than once: %s", fenceapi.ReasonReleased, strings.Join(dup, "; "))
		return
	}
	e.Note("no claim or PV released twice over the run (%d claims, %d PVs with %s)", claims, pvs, fenceapi.ReasonReleased)
}

func lvTag(lv LV, key string) (string, bool) {
	for _, t := range lv.Tags {
		if strings.HasPrefix(t, key+"=") {
			return strings.TrimPrefix(t, key+"="), true
		}
	}
	return "", false
}

func (e *E) findLV(node, name string) (*LV, error) {
	lvs, err := listLVs(e.ctx, node)
	if err != nil {
		return nil, err
	}
	for i := range lvs {
		if lvs[i].Name == name {
			return &lvs[i], nil
		}
	}
	return nil, nil
}

var fencedRE = regexp.MustCompile(`(?i)fenced:`)
var volumeLostRE = regexp.MustCompile(`(?i)volume lost:`)

// waitFailedMount waits for a FailedMount event of the pod whose message matches re; the pod
// must not run meanwhile, and stopIf may end the wait with an error.
func (e *E) waitFailedMount(pod string, re *regexp.Regexp, timeout time.Duration, stopIf func(ctx context.Context) error) corev1.Event {
	e.t.Helper()
	var found corev1.Event
	err := waitFor(e.ctx, e, fmt.Sprintf("a FailedMount event of pod %s matching %q", pod, re), timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		if stopIf != nil {
			if err := stopIf(ctx); err != nil {
				return false, "", err
			}
		}
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if p.DeletionTimestamp != nil {
			// the pod of before the loss, not deleted yet (its node was down)
			return false, "an earlier pod " + pod + " is being deleted: " + podStatusLine(p), nil
		}
		if p.Status.Phase == corev1.PodRunning || !neverStarted(p) {
			return false, "", fmt.Errorf("pod %s started a container: %s", pod, podStatusLine(p))
		}
		evs, err := objectEvents(ctx, e.ns, "Pod", pod, p.UID)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, ev := range evs {
			if ev.Reason == "FailedMount" && re.MatchString(ev.Message) {
				found = ev
				return true, oneLine(ev.Message, 200), nil
			}
		}
		return false, podStatusLine(p) + "; " + eventsLine(evs, 2), nil
	})
	if err != nil {
		e.Fatalf("%v; %s", err, e.podDiagnostics(pod))
	}
	// in full: docs/operations.md quotes it
	e.logf("event on Pod %s: %s %s: %s", pod, found.Type, found.Reason, found.Message)
	return found
}

// holdNeverRuns checks for d that the pod runs no container.
func (e *E) holdNeverRuns(pod string, d time.Duration) {
	e.t.Helper()
	e.holdFor("pod "+pod+" never starts a container", d, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodRunning || !neverStarted(p) {
			return false, podStatusLine(p) + fmt.Sprintf(" (deleting=%v)", p.DeletionTimestamp != nil), nil
		}
		return true, podStatusLine(p), nil
	})
}

// ---------------------------------------------------------------- node-deleted, node-returns

// node-deleted: node 2 is lost (VM powered off, Node deleted) with a keep and a release
// PostgreSQL claim on it. Nothing is released before the delay; after it the release claim
// is, and its StatefulSet runs a fresh database on node 1; the keep claim is only marked.
// Node 2 stays down for node-returns.
func testNodeDeleted(e *E) {
	survivor, lost := expectedNodes[0], expectedNodes[1]
	// out-of-service's pg-keep2 and pg-slow start here too, on the survivor, at the same time.
	e.logf("--- PostgreSQL on %s: pg-keep (%s) and pg-release (%s); on %s for out-of-service: pg-keep2 (%s) and pg-slow (%s)",
		lost, scLossKeep, scLossRelease, survivor, scLossKeep, scLossReleaseSlow)
	placed := e.createPostgresPlaced(
		pgPlacement{lost, [][2]string{{"pg-keep", scLossKeep}, {"pg-release", scLossRelease}}},
		pgPlacement{survivor, outOfServiceSets})
	keep, rel := placed[0][0], placed[0][1]
	keep2, slow := placed[1][0], placed[1][1]
	for _, c := range []*lossClaim{keep, rel, keep2, slow} {
		c.data = e.pgWrite(c.pod, pgRows)
	}
	e.Note("pg-keep and pg-release on %s, %d rows each (checksums %s, %s); pg-keep2 and pg-slow on %s",
		lost, pgRows, keep.data.Checksum()[:14], rel.data.Checksum()[:14], survivor)
	if lv, err := e.findLV(lost, rel.id.LVName); err != nil || lv == nil {
		e.Fatalf("LV %s of %s not found on %s (%v)", rel.id.LVName, rel, lost, err)
	}

	e.logf("--- %s lost: VM powered off, Node deleted", lost)
	e.stopNodeVM(lost)
	e.must(kube.CoreV1().Nodes().Delete(e.ctx, lost, metav1.DeleteOptions{}), "deleting Node %s", lost)
	deleted := time.Now()
	sinceKeep := e.waitTrigger(keep, fenceapi.TriggerNodeDeleted, 3*time.Minute)
	since := e.waitTrigger(rel, fenceapi.TriggerNodeDeleted, 3*time.Minute)
	e.logf("node-loss-since: %s %s, %s %s (Node deleted at %s)", keep.claim, sinceKeep.Format("15:04:05"), rel.claim, since.Format("15:04:05"), deleted.Format("15:04:05"))
	e.holdNotReleased(since.Add(lossDelay-clockSlack), keep, rel)
	newRel := e.waitReleased(rel, since.Add(lossDelay+lossBound), survivor)
	releasedAfter := time.Since(since)
	ini := e.initdb(newRel.pod)
	if !ini.Seen() {
		e.Errorf("the re-created %s shows no initdb marker: %s", newRel.pod, ini.Detail)
	}
	e.Note("%s released %.0f s after the trigger (delay %s): new claim UID %s, pod on %s, fresh database (initdb marker: %v)",
		rel.claim, releasedAfter.Seconds(), lossDelayParam, newRel.uid, survivor, ini.Seen())
	e.checkReleased(rel, fenceapi.TriggerNodeDeleted, fenceapi.ReasonNodeLost)
	e.checkKept(keep, fenceapi.TriggerNodeDeleted, fenceapi.ReasonNodeLost)
	e.handOver(map[string]*lossClaim{"keep": keep, "released": rel, "pg-release": newRel, "keep2": keep2, "slow": slow})
}

// node-returns: node 2 (deleted by node-deleted) boots again with its drives. The kept
// database is intact in the same claim; the released PV's LV is tagged fenced there and a
// claim bound to it never runs; the PV's reclaim then deletes it and its LV.
func testNodeReturns(e *E) {
	cl := e.mustAdopt("node-deleted", "keep", "released", "pg-release")
	keep, rel := cl["keep"], cl["released"]
	lost := keep.node
	e.logf("--- %s returns with its drives", lost)
	e.startNodeVM(lost, false)
	p := e.waitPodRunning(keep.pod, pgTimeout)
	if p.Spec.NodeName != lost {
		e.Fatalf("pod %s of the kept claim runs on %s, its volume is on %s", keep.pod, p.Spec.NodeName, lost)
	}
	got, err := e.pgChecksum(keep.pod)
	e.must(err, "reading the checksum of %s", keep.pod)
	if got != keep.data.Checksum() {
		e.Fatalf("pod %s on %s reads checksum %s, wrote %s", keep.pod, lost, got, keep.data.Checksum())
	}
	if ini := e.initdb(keep.pod); ini.LogLines > 0 || ini.FileLines != 1 {
		e.Errorf("pod %s: the database was initialized again? %s (want no marker in the log and one line in initdb.log)", keep.pod, ini.Detail)
	}
	e.sameClaim(keep)
	e.Note("%s back: %s runs there with the same claim and reads the %d rows written before the loss (checksum %s)", lost, keep.pod, pgRows, keep.data.Checksum()[:14])
	e.waitPV(keep.pv, "without node-loss annotations", 2*time.Minute, func(pv *corev1.PersistentVolume) bool {
		return pv.Annotations[fenceapi.AnnotationTrigger] == "" && pv.Annotations[fenceapi.AnnotationDecision] == ""
	})
	e.waitEvents("", "PersistentVolume", keep.pv, "", 90*time.Second, fenceapi.ReasonCleared)

	e.logf("--- the fenced PV %s on the returned %s", rel.pv, lost)
	e.probeFenced(rel)
	e.handOver(map[string]*lossClaim{"pg-release": cl["pg-release"], "keep2": cl["keep2"], "slow": cl["slow"]})
}

// probeFenced: the released PV's LV on its returned node gets the fence tag; a new claim bound
// to the PV and a pod using it never run (NodeStage fails with "fenced:"); after the probe
// the PV's reclaim policy Delete removes the PV and its LV.
func (e *E) probeFenced(c *lossClaim) {
	e.t.Helper()
	pv := e.waitPV(c.pv, "Released and fenced", time.Minute, func(pv *corev1.PersistentVolume) bool {
		return pv.Status.Phase == corev1.VolumeReleased && fenceapi.IsFenced(pv.Annotations)
	})
	var reason string
	e.waitFor(fmt.Sprintf("LV %s on %s to carry the tag %s", c.id.LVName, c.node, fencedTag), 4*time.Minute, func(ctx context.Context) (bool, string, error) {
		lv, err := e.findLV(c.node, c.id.LVName)
		switch {
		case err != nil:
			return false, err.Error(), nil
		case lv == nil:
			return false, "", fmt.Errorf("LV %s is gone from %s (the fenced PV %s still exists)", c.id.LVName, c.node, c.pv)
		}
		v, ok := lvTag(*lv, fencedTag)
		if !ok {
			return false, fmt.Sprintf("tags %v", lv.Tags), nil
		}
		if b, err := base64.RawURLEncoding.DecodeString(v); err == nil {
			reason = string(b)
		} else {
			reason = v + " (not base64url: " + err.Error() + ")"
		}
		return true, "", nil
	})
	e.Note("LV %s on %s tagged %s (%s)", c.id.LVName, c.node, fencedTag, oneLine(reason, 140))
	// The node says so on its Node object (the event of a cluster-scoped object lands in
	// "default"; listed across namespaces here).
	evs := e.waitEvents("", "Node", c.node, "", 2*time.Minute, fenceapi.ReasonVolumeFenced)
	if ev := eventReasons(evs)[fenceapi.ReasonVolumeFenced]; !strings.Contains(ev.Message, c.id.LVName) || !strings.Contains(ev.Message, c.pv) {
		e.Errorf("the %s event on Node %s does not name LV %s and PV %s: %q", fenceapi.ReasonVolumeFenced, c.node, c.id.LVName, c.pv, ev.Message)
	}

	// Bind a new claim to the fenced PV: free it, then a claim that names it.
	_, err := kube.CoreV1().PersistentVolumes().Patch(e.ctx, c.pv, types.MergePatchType, []byte(`{"spec":{"claimRef":null}}`), metav1.PatchOptions{})
	e.must(err, "clearing the claimRef of PV %s", c.pv)
	e.waitPV(c.pv, "Available", 2*time.Minute, func(pv *corev1.PersistentVolume) bool { return pv.Status.Phase == corev1.VolumeAvailable })
	probe := fsPVC("fenced-probe", scLossRelease, pv.Spec.Capacity.Storage().Value())
	probe.Spec.VolumeName = c.pv
	probePVC := e.createPVC(probe)
	// Nothing may delete this claim: the fence is the node's refusal to stage, not a release
	// of every claim the fenced PV gets bound to.
	claimStays := func(ctx context.Context) error {
		cur, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "fenced-probe", metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && (cur.UID != probePVC.UID || cur.DeletionTimestamp != nil)) {
			evs, _ := objectEvents(ctx, e.ns, "PersistentVolumeClaim", "fenced-probe", probePVC.UID)
			return fmt.Errorf("claim fenced-probe (bound to the fenced PV %s) was deleted while the test used it; its events: %s", c.pv, eventsLine(evs, 4))
		}
		return nil
	}
	e.waitFor("claim fenced-probe to be bound to the fenced PV "+c.pv, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		if err := claimStays(ctx); err != nil {
			return false, "", err
		}
		cur, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "fenced-probe", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return cur.Status.Phase == corev1.ClaimBound && cur.Spec.VolumeName == c.pv, string(cur.Status.Phase), nil
	})
	e.createPod(newPod("fenced-probe", withMount("fenced-probe", "/data")))
	ev := e.waitFailedMount("fenced-probe", fencedRE, 5*time.Minute, claimStays)
	e.holdNeverRuns("fenced-probe", 30*time.Second)
	e.Note("a new claim bound to the fenced PV: its pod never ran, FailedMount: %s", oneLine(ev.Message, 200))

	e.deletePod("fenced-probe")
	e.must(kube.CoreV1().PersistentVolumeClaims(e.ns).Delete(e.ctx, "fenced-probe", metav1.DeleteOptions{}), "deleting claim fenced-probe")
	e.waitFor("claim fenced-probe to be gone", 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "fenced-probe", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "", nil
	})
	e.must(setReclaimDelete(e.ctx, c.pv), "PV %s reclaim policy to Delete", c.pv)
	e.waitFor("PV "+c.pv+" to be deleted (DeleteVolume on "+c.node+")", 5*time.Minute, func(ctx context.Context) (bool, string, error) {
		pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, c.pv, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		evs, _ := objectEvents(ctx, "", "PersistentVolume", c.pv, "")
		return false, string(pv.Status.Phase) + "; " + eventsLine(evs, 2), nil
	})
	if lv, err := e.findLV(c.node, c.id.LVName); err != nil {
		e.Errorf("listing LVs on %s: %v", c.node, err)
	} else if lv != nil {
		e.Errorf("LV %s is still on %s after its PV %s was deleted", lv, c.node, c.pv)
	} else {
		e.Note("reclaim Delete: PV %s and LV %s gone from %s", c.pv, c.id.LVName, c.node)
	}
}

// ---------------------------------------------------------------- out-of-service, rebuilt-node

// outOfServiceSets are out-of-service's StatefulSets on node 1 besides pg-release; node-deleted
// starts them (beside its own on node 2) and hands them over.
var outOfServiceSets = [][2]string{{"pg-keep2", scLossKeep}, {"pg-slow", scLossReleaseSlow}}

var uuidInTextRE = regexp.MustCompile(`[A-Za-z0-9]{6}(?:-[A-Za-z0-9]{4}){5}-[A-Za-z0-9]{6}|\b[A-Za-z0-9]{32}\b`)

// out-of-service: node 1 is shut down and tainted out-of-service with pg-release (handed
// over by node-returns, or created here), a keep claim pg-keep2 and pg-slow (release after
// lossSlowDelay) on it. pg-release is released after the delay, not before; pg-keep2 is
// only marked; pg-slow is waiting. The taint then goes (node 1 still down): the marks of
// pg-keep2 and pg-slow are cleared, nothing else is done. Node 1 stays down for rebuilt-node.
func testOutOfService(e *E) {
	lost, survivor := expectedNodes[0], expectedNodes[1]
	adopted := e.adoptedClaims()
	// Handed over (node-deleted started them on this node), or created here.
	handed := func(role, set string) *lossClaim {
		if adopted[role] == nil {
			return nil
		}
		p := e.waitPodRunning(set+"-0", pgTimeout)
		if p.Spec.NodeName != lost {
			e.Fatalf("the handed-over %s-0 runs on %s, want %s", set, p.Spec.NodeName, lost)
		}
		c := e.lossClaimOf(set)
		c.data = adopted[role].data
		e.logf("%s (handed over) runs on %s: %s", set, lost, c)
		return c
	}
	rel, keep, slow := handed("pg-release", "pg-release"), handed("keep2", "pg-keep2"), handed("slow", "pg-slow")
	var sets [][2]string
	if keep == nil || slow == nil {
		keep, slow = nil, nil
		sets = append(sets, outOfServiceSets...)
	}
	if rel == nil {
		sets = append(sets, [2]string{"pg-release", scLossRelease})
	}
	if len(sets) > 0 {
		e.logf("--- PostgreSQL on %s: %v", lost, sets)
		cl := e.createPostgresOn(lost, sets)
		if keep == nil {
			keep, slow, cl = cl[0], cl[1], cl[2:]
		}
		if rel == nil {
			rel = cl[0]
		}
	}
	for _, c := range []*lossClaim{keep, slow, rel} {
		if c.data.Rows == 0 {
			c.data = e.pgWrite(c.pod, pgRows)
		}
	}
	e.Note("pg-keep2, pg-slow and pg-release on %s, %d rows each", lost, pgRows)

	e.logf("--- %s lost: VM powered off, taint %s=%s:NoExecute", lost, fenceapi.TaintOutOfService, outOfServiceValue)
	e.stopNodeVM(lost)
	e.must(setOutOfService(e.ctx, lost, true), "tainting %s out-of-service", lost)
	since := e.waitTrigger(rel, fenceapi.TriggerOutOfService, 3*time.Minute)
	sinceKeep := e.waitTrigger(keep, fenceapi.TriggerOutOfService, time.Minute)
	sinceSlow := e.waitTrigger(slow, fenceapi.TriggerOutOfService, time.Minute)
	e.logf("node-loss-since: %s %s, %s %s, %s %s", rel.claim, since.Format("15:04:05"), keep.claim, sinceKeep.Format("15:04:05"), slow.claim, sinceSlow.Format("15:04:05"))
	e.holdNotReleased(since.Add(lossDelay-clockSlack), keep, rel, slow)
	gone := e.waitClaimGone(rel, since.Add(lossDelay+lossBound))
	e.logf("%s released %.0f s after the trigger (delay %s)", rel.claim, gone.Sub(since).Seconds(), lossDelayParam)

	// Before the taint goes: pg-keep2 kept, pg-slow waiting (its delay not over).
	e.checkKept(keep, fenceapi.TriggerOutOfService, fenceapi.ReasonNodeLost)
	e.waitPV(slow.pv, "decided waiting", time.Minute, func(pv *corev1.PersistentVolume) bool {
		return pv.Annotations[fenceapi.AnnotationDecision] == fenceapi.DecisionWaiting
	})
	e.sameClaim(slow)
	e.waitEvents(e.ns, "PersistentVolumeClaim", slow.claim, slow.uid, time.Minute, fenceapi.ReasonNodeLost, fenceapi.ReasonWaiting)
	if left := time.Until(sinceSlow.Add(lossSlowDelay)); left < 20*time.Second {
		e.Fatalf("the taint would go only %.0f s before pg-slow's delay (%s) ends: the scenario is too slow for its own timing", left.Seconds(), lossSlowDelayParam)
	}
	e.must(setOutOfService(e.ctx, lost, false), "removing the out-of-service taint from %s", lost)
	e.Note("%s waiting (%s) when the taint went, %.0f s before its delay was over", slow.claim, lossSlowDelayParam, time.Until(sinceSlow.Add(lossSlowDelay)).Seconds())

	newRel := e.waitReleased(rel, since.Add(lossDelay+lossBound+time.Minute), survivor)
	e.Note("%s released %.0f s after the trigger: new claim UID %s, pod on %s", rel.claim, gone.Sub(since).Seconds(), newRel.uid, survivor)
	e.checkReleased(rel, fenceapi.TriggerOutOfService, fenceapi.ReasonNodeLost)

	// No trigger holds any more (the Node exists, untainted, with the same VGs): cleared.
	for _, c := range []*lossClaim{keep, slow} {
		e.waitPV(c.pv, "cleared", time.Minute, func(pv *corev1.PersistentVolume) bool {
			return pv.Annotations[fenceapi.AnnotationTrigger] == "" && pv.Annotations[fenceapi.AnnotationDecision] == "" && !fenceapi.IsFenced(pv.Annotations)
		})
		e.waitEvents(e.ns, "PersistentVolumeClaim", c.claim, c.uid, time.Minute, fenceapi.ReasonCleared)
		e.sameClaim(c)
	}
	e.Note("taint removed while %s is down: %s and %s cleared (%s), same claims", lost, keep.claim, slow.claim, fenceapi.ReasonCleared)
	e.handOver(map[string]*lossClaim{"keep": keep, "slow": slow})
}

// rebuilt-node: node 1 (down since out-of-service) boots with blank drives of the same
// serials: new VGs. Both its PVs are marked lost, naming the old and the new VG UUID; their
// pods never start a container (NodeStage: "volume lost:"), so no database is made on an
// empty volume under an old claim. The keep claim stays so; the release one (pg-slow) is
// released after its delay and its StatefulSet runs a fresh database on a new volume.
func testRebuiltNode(e *E) {
	cl := e.mustAdopt("out-of-service", "keep", "slow")
	keep, slow := cl["keep"], cl["slow"]
	lost := keep.node
	e.logf("--- %s rebuilt: VM started with blank drives", lost)
	e.startNodeVM(lost, true)
	back := time.Now()
	var newVG string
	for _, c := range []*lossClaim{slow, keep} {
		ann, vg := e.waitLost(c, lossDelay+lossBound)
		newVG = vg
		e.Note("PV %s marked lost %.0f s after %s was usable: %s", c.pv, time.Since(back).Seconds(), lost, oneLine(ann, 220))
		e.waitEvents("", "PersistentVolume", c.pv, "", 90*time.Second, fenceapi.ReasonVolumeLost)
		e.waitEvents(e.ns, "PersistentVolumeClaim", c.claim, c.uid, 90*time.Second, fenceapi.ReasonVolumeLost)
	}
	pv := e.getPV(slow.pv)
	since, err := time.Parse(time.RFC3339, pv.Annotations[fenceapi.AnnotationTriggerSince])
	e.must(err, "PV %s %s", slow.pv, fenceapi.AnnotationTriggerSince)

	// Neither pod may start on the new, empty VG.
	for _, c := range []*lossClaim{slow, keep} {
		ev := e.waitFailedMount(c.pod, volumeLostRE, 4*time.Minute, func(ctx context.Context) error {
			if c == slow && time.Now().After(since.Add(lossSlowDelay-clockSlack)) {
				return fmt.Errorf("no FailedMount event of %s before its release was due", c.pod)
			}
			return nil
		})
		e.Note("%s never ran a container, FailedMount: %s", c.pod, oneLine(ev.Message, 160))
	}
	e.checkKept(keep, fenceapi.TriggerVolumeLost, fenceapi.ReasonVolumeLost)

	newSlow := e.waitReleased(slow, since.Add(lossSlowDelay+lossBound), "")
	ini := e.initdb(newSlow.pod)
	if !ini.Seen() {
		e.Errorf("the re-created %s shows no initdb marker: %s", newSlow.pod, ini.Detail)
	}
	if sum, err := e.pgChecksum(newSlow.pod); err == nil {
		e.Errorf("the re-created %s has the table of before the loss (checksum %s): its data should exist nowhere", newSlow.pod, sum)
	}
	e.Note("%s released %.0f s after the lost mark (delay %s): new claim UID %s, PV %s on %s, fresh database (initdb marker, no table e2e)",
		slow.claim, time.Since(since).Seconds(), lossSlowDelayParam, newSlow.uid, newSlow.pv, newSlow.node)
	e.checkReleased(slow, fenceapi.TriggerVolumeLost, fenceapi.ReasonVolumeLost)

	e.holdNeverRuns(keep.pod, 20*time.Second)
	if ini := e.initdb(keep.pod); ini.Seen() {
		e.Errorf("pod %s of the lost volume shows the initdb marker: %s", keep.pod, ini.Detail)
	}
	e.sameClaim(keep)
	if p := e.getPod(keep.pod); p.Spec.NodeName != lost {
		e.Errorf("pod %s waits on %s, its PV names %s", keep.pod, p.Spec.NodeName, lost)
	}
	e.Note("kept %s: same claim, its pod pending on %s (new VG %s)", keep.claim, lost, newVG)
	e.checkNoDoubleRelease()
}

// waitLost waits until the PV is marked lost (trigger volume-lost) and checks that the mark
// names the volume's VG UUID and the node's new one; it returns the mark and the new UUID.
func (e *E) waitLost(c *lossClaim, timeout time.Duration) (string, string) {
	e.t.Helper()
	var lostAnn, newVG string
	err := waitFor(e.ctx, e, fmt.Sprintf("PV %s to be marked lost (%s=%s)", c.pv, fenceapi.AnnotationTrigger, fenceapi.TriggerVolumeLost), timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, c.pv, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		st := lossAnnotations(pv)
		if n, err := kube.CoreV1().Nodes().Get(ctx, c.node, metav1.GetOptions{}); err == nil {
			if raw := n.Annotations[fenceapi.AnnotationIncarnation]; raw == "" {
				st += "; node: no incarnation annotation"
			} else if in, err := fenceapi.ParseIncarnation(raw); err != nil {
				st += "; node incarnation: " + err.Error()
			} else {
				newVG = in.Classes[c.id.Class].VGUUID
				st += fmt.Sprintf("; node incarnation: class %s VG %q", c.id.Class, newVG)
			}
		}
		lostAnn = pv.Annotations[fenceapi.AnnotationLost]
		return pv.Annotations[fenceapi.AnnotationTrigger] == string(fenceapi.TriggerVolumeLost) && lostAnn != "", st, nil
	})
	if err != nil {
		e.Fatalf("%v; %s", err, e.lossDiag(c))
	}
	uuids := map[string]bool{}
	for _, u := range uuidInTextRE.FindAllString(lostAnn, -1) {
		uuids[volume.StripUUID(u)] = true
	}
	switch {
	case len(uuids) < 2:
		e.Errorf("%s=%q names %d UUIDs, want the old and the new VG UUID", fenceapi.AnnotationLost, lostAnn, len(uuids))
	case !uuids[c.id.VGUUID]:
		e.Errorf("%s=%q does not name the volume's VG UUID %s", fenceapi.AnnotationLost, lostAnn, c.id.VGUUID)
	case newVG == "":
		e.Errorf("node %s publishes no VG for class %s", c.node, c.id.Class)
	case !uuids[volume.StripUUID(newVG)]:
		e.Errorf("%s=%q does not name the node's new VG UUID %s", fenceapi.AnnotationLost, lostAnn, newVG)
	case volume.StripUUID(newVG) == c.id.VGUUID:
		e.Errorf("node %s publishes the old VG UUID %s after its rebuild", c.node, newVG)
	}
	return lostAnn, newVG
}
