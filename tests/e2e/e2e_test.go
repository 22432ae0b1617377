//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/localnvme/localnvme/pkg/volume"
)

// selectedNodeAnnotation is set on a WaitForFirstConsumer claim once the scheduler picked a node.
const selectedNodeAnnotation = "volume.kubernetes.io/selected-node"

// ---------------------------------------------------------------- shared scenario helpers

// holdFor checks cond every poll interval for d; the scenario fails the first time cond is
// not ok. It returns the last status.
func (e *E) holdFor(what string, d time.Duration, cond func(ctx context.Context) (ok bool, status string, err error)) string {
	e.t.Helper()
	e.logf("checking for %s that %s", d, what)
	end := time.Now().Add(d)
	last, lastAt := "", time.Time{}
	for {
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		ok, status, err := cond(ctx)
		cancel()
		if err != nil {
			e.Fatalf("while checking that %s: %v", what, err)
		}
		if !ok {
			e.Fatalf("%s: no longer true after %s: %s", what, (d - time.Until(end)).Round(time.Second), status)
		}
		if status != last || time.Since(lastAt) > 20*time.Second {
			e.logf("  … still %s (%s left): %s", what, time.Until(end).Round(time.Second), status)
			last, lastAt = status, time.Now()
		}
		if time.Now().After(end) {
			return status
		}
		select {
		case <-e.ctx.Done():
			e.Fatalf("scenario deadline reached while checking that %s", what)
		case <-time.After(pollInterval):
		}
	}
}

// waitRecreated waits for a pod of this name whose UID is not oldUID (a StatefulSet's new pod).
func (e *E) waitRecreated(name string, oldUID types.UID) *corev1.Pod {
	e.t.Helper()
	var pod *corev1.Pod
	e.waitFor("pod "+name+" to be re-created", 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "deleted, not re-created yet", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		if p.UID == oldUID {
			return false, "old pod still there: " + podStatusLine(p), nil
		}
		pod = p
		return true, "new UID " + string(p.UID), nil
	})
	return pod
}

func (e *E) createStatefulSet(name string, replicas int32, sc string, size int64, opts ...podOpt) {
	e.t.Helper()
	_, err := kube.AppsV1().StatefulSets(e.ns).Create(e.ctx, newStatefulSet(name, replicas, sc, size, opts...), metav1.CreateOptions{})
	e.must(err, "creating statefulset %s", name)
}

// deleteStatefulSet deletes the StatefulSet and its pods, then its claims and their PVs.
func (e *E) deleteStatefulSet(name string, replicas int) {
	e.t.Helper()
	fg := metav1.DeletePropagationForeground
	e.must(kube.AppsV1().StatefulSets(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg}), "deleting statefulset %s", name)
	e.waitFor("statefulset "+name+" and its pods to be gone", 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err.Error(), nil
		}
		_, err = kube.AppsV1().StatefulSets(e.ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && len(pods.Items) == 0, fmt.Sprintf("%d pods", len(pods.Items)), nil
	})
	for i := 0; i < replicas; i++ {
		e.deleteClaim(fmt.Sprintf("data-%s-%d", name, i))
	}
}

// requireNoProvisioningFailed fails if the claim has ProvisioningFailed events.
func (e *E) requireNoProvisioningFailed(claim string) {
	e.t.Helper()
	for _, ev := range e.events("PersistentVolumeClaim", claim) {
		if ev.Reason == "ProvisioningFailed" {
			e.Errorf("claim %s has a ProvisioningFailed event (x%d): %s", claim, ev.Count, oneLine(ev.Message, 300))
		}
	}
}

func pvcCapacity(pvc *corev1.PersistentVolumeClaim) int64 {
	q, ok := pvc.Status.Capacity[corev1.ResourceStorage]
	if !ok {
		return -1
	}
	return q.Value()
}

func alignDown(n, to int64) int64 { return n / to * to }

func otherNode(n string) string {
	for _, o := range expectedNodes {
		if o != n {
			return o
		}
	}
	return ""
}

// ---------------------------------------------------------------- 1. statefulset

// A StatefulSet's claim is bound to a PV pinned to the pod's node, and a re-created pod (same
// node) reads what the first one wrote.
func testStatefulSet(e *E) {
	e.createStatefulSet("web", 1, scExt4, 256*MiB)
	pod := e.waitPodRunning("web-0", podTimeout)
	node := pod.Spec.NodeName
	_, pv := e.waitPVCBound("data-web-0", time.Minute)
	e.mustPVNode(pv, node)
	e.Note("claim data-web-0 bound to %s, node affinity %s=%s = pod's node", pv.Name, topologyKey, node)

	token := randomToken()
	e.sh("web-0", `printf %s "$1" > /data/token && sync`, token)
	sum := e.writeRandom("web-0", "/data/blob", 4)

	e.must(kube.CoreV1().Pods(e.ns).Delete(e.ctx, "web-0", metav1.DeleteOptions{}), "deleting pod web-0")
	e.waitRecreated("web-0", pod.UID)
	pod2 := e.waitPodRunning("web-0", podTimeout)
	if pod2.UID == pod.UID {
		e.Fatalf("pod web-0 was not re-created (same UID %s)", pod.UID)
	}
	if pod2.Spec.NodeName != node {
		e.Fatalf("re-created web-0 runs on %s, its volume is on %s", pod2.Spec.NodeName, node)
	}
	if got := e.sh("web-0", `cat /data/token`); got != token {
		e.Fatalf("re-created web-0 reads token %q, wrote %q", got, token)
	}
	if got := e.sha256("web-0", "/data/blob"); got != sum {
		e.Fatalf("re-created web-0 reads /data/blob with sha256 %s, wrote %s", got, sum)
	}
	e.Note("re-created pod on %s read back the token and 4 MiB of random data (sha256 %s…)", node, sum[:12])
}

// ---------------------------------------------------------------- 2. capacity

var insufficientStorageRE = regexp.MustCompile(`(?i)(enough free storage|insufficient (free )?(storage|capacity)|not enough (free )?(storage|capacity))`)

// CSIStorageCapacity exists for every class and node, and a claim larger than any of them keeps
// its pod unscheduled: no node is selected, no PV and no LV is created.
func testCapacity(e *E) {
	d, err := kube.StorageV1().CSIDrivers().Get(e.ctx, driverName, metav1.GetOptions{})
	e.must(err, "getting CSIDriver %s", driverName)
	if d.Spec.StorageCapacity == nil || !*d.Spec.StorageCapacity {
		e.Fatalf("CSIDriver %s does not set storageCapacity: true; the scheduler would ignore CSIStorageCapacity", driverName)
	}

	var caps map[string]map[string]capInfo
	e.waitFor("CSIStorageCapacity for each of the 4 classes on each node", 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		c, err := capacities(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		caps = c
		var missing []string
		for _, sc := range storageClasses {
			for _, n := range expectedNodes {
				if _, ok := c[sc][n]; !ok {
					missing = append(missing, sc+"@"+n)
				}
			}
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ", "), nil
	})
	var summary []string
	for _, sc := range storageClasses {
		var per []string
		for _, n := range expectedNodes {
			ci := caps[sc][n]
			e.logf("  %s on %s: %s", sc, n, ci)
			if ci.Limit() <= 0 {
				e.Errorf("CSIStorageCapacity for %s on %s reports no space: %s", sc, n, ci)
			}
			per = append(per, fmtBytes(ci.Limit()))
		}
		summary = append(summary, sc+"="+strings.Join(per, "/"))
	}
	e.Note("capacities (limit per node): %s", strings.Join(summary, " "))

	// Larger than every ext4 capacity and maximum volume size.
	var biggest int64
	for _, n := range expectedNodes {
		ci := caps[scExt4][n]
		biggest = max(biggest, ci.Capacity, ci.MaxVolume)
	}
	if biggest <= 0 {
		e.Fatalf("no %s capacity to exceed: %v", scExt4, caps[scExt4])
	}
	size := alignDown(biggest+GiB, GiB) + GiB

	before := map[string]map[string]bool{}
	for _, n := range expectedNodes {
		before[n] = map[string]bool{}
		for _, lv := range e.listLVs(n) {
			before[n][lv.String()+"@"+lv.UUID] = true
		}
	}

	pvc := e.createPVC(fsPVC("huge", scExt4, size))
	e.createPod(newPod("huge", withMount("huge", "/data")))
	e.logf("claim huge asks for %s; the largest ext4 capacity is %s", fmtBytes(size), fmtBytes(biggest))

	var schedMsg string
	e.waitFor("pod huge to be reported unschedulable for lack of storage", 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, "huge", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if p.Spec.NodeName != "" {
			return false, "", fmt.Errorf("pod huge was scheduled onto %s although its %s claim exceeds every capacity", p.Spec.NodeName, fmtBytes(size))
		}
		c := podCondition(p, corev1.PodScheduled)
		if c == nil {
			return false, "no PodScheduled condition yet", nil
		}
		schedMsg = c.Message
		return c.Status == corev1.ConditionFalse && insufficientStorageRE.MatchString(c.Message), c.Reason + ": " + c.Message, nil
	})

	e.holdFor("pod huge stays unscheduled with no node selected and no PV", 30*time.Second, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, "huge", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		if p.Spec.NodeName != "" {
			return false, "pod huge scheduled onto " + p.Spec.NodeName, nil
		}
		c, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "huge", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		if c.Status.Phase != corev1.ClaimPending || c.Spec.VolumeName != "" {
			return false, fmt.Sprintf("claim huge is %s (volume %q)", c.Status.Phase, c.Spec.VolumeName), nil
		}
		if n := c.Annotations[selectedNodeAnnotation]; n != "" {
			return false, "the scheduler selected node " + n + " for claim huge", nil
		}
		pvs, err := kube.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		for _, pv := range pvs.Items {
			if pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.UID == pvc.UID {
				return false, "PV " + pv.Name + " exists for claim huge", nil
			}
		}
		return true, "Pending, no node selected, no PV", nil
	})

	for _, ev := range e.events("PersistentVolumeClaim", "huge") {
		if ev.Reason == "Provisioning" || ev.Reason == "ProvisioningFailed" || ev.Reason == "ProvisioningSucceeded" {
			e.Errorf("claim huge has a %s event: provisioning was attempted: %s", ev.Reason, oneLine(ev.Message, 300))
		}
	}
	for _, n := range expectedNodes {
		for _, lv := range e.listLVs(n) {
			if !before[n][lv.String()+"@"+lv.UUID] {
				e.Errorf("a new LV %s (%d bytes, tags %v) appeared on %s while claim huge was pending", lv, lv.Size, lv.Tags, n)
			}
		}
	}
	e.Note("%s claim (largest ext4 capacity %s) unschedulable: %q; after 30 s no node selected, no PV, no new LV", fmtBytes(size), fmtBytes(biggest), oneLine(schedMsg, 200))
}

// ---------------------------------------------------------------- 3. expand

// Growing a claim grows the filesystem under a running pod, without a restart.
func testExpand(e *E) {
	type vol struct {
		sc, claim, fs string
		from, to      int64
	}
	vols := []vol{
		{scXFS, "grow-xfs", "xfs", 512 * MiB, 1 * GiB}, // xfs needs ≥ 300 MiB
		{scExt4, "grow-ext4", "ext4", 256 * MiB, 768 * MiB},
	}
	for _, v := range vols {
		e.createPVC(fsPVC(v.claim, v.sc, v.from))
		e.createPod(newPod(v.claim, withMount(v.claim, "/data")))
	}
	pods := map[string]*corev1.Pod{}
	tokens := map[string]string{}
	dfBefore := map[string]int64{}
	for _, v := range vols {
		pods[v.claim] = e.waitPodRunning(v.claim, podTimeout)
		if fs := e.sh(v.claim, `while read -r dev mnt fs rest; do [ "$mnt" = /data ] && echo "$fs"; done < /proc/mounts; true`); fs != v.fs {
			e.Errorf("claim %s (%s) is mounted as %q, want %s", v.claim, v.sc, fs, v.fs)
		}
		tokens[v.claim] = randomToken()
		e.sh(v.claim, `printf %s "$1" > /data/token && sync`, tokens[v.claim])
		n, err := e.dfBytes(v.claim, "/data")
		e.must(err, "df in %s", v.claim)
		dfBefore[v.claim] = n
		e.logf("%s: filesystem %s on a %s claim", v.claim, fmtBytes(n), fmtBytes(v.from))
	}

	for _, v := range vols {
		patch := mergePatch(map[string]any{"spec": map[string]any{"resources": map[string]any{"requests": map[string]any{"storage": fmt.Sprint(v.to)}}}})
		_, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Patch(e.ctx, v.claim, types.MergePatchType, patch, metav1.PatchOptions{})
		e.must(err, "patching claim %s to %s", v.claim, fmtBytes(v.to))
	}
	for _, v := range vols {
		e.waitFor("claim "+v.claim+" status capacity ≥ "+fmtBytes(v.to), 4*time.Minute, func(ctx context.Context) (bool, string, error) {
			c, err := kube.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, v.claim, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			var conds []string
			for _, cd := range c.Status.Conditions {
				conds = append(conds, string(cd.Type)+"="+string(cd.Status)+" "+cd.Message)
			}
			status := fmt.Sprintf("capacity %s, conditions %v, %s", fmtBytes(pvcCapacity(c)), conds, eventsLine(e.events("PersistentVolumeClaim", v.claim), 1))
			return pvcCapacity(c) >= v.to, status, nil
		})
		var after int64
		e.waitFor("the filesystem in pod "+v.claim+" to grow", 2*time.Minute, func(ctx context.Context) (bool, string, error) {
			n, err := e.dfBytes(v.claim, "/data")
			if err != nil {
				return false, err.Error(), nil
			}
			after = n
			return n > dfBefore[v.claim] && n >= v.to*85/100, "df " + fmtBytes(n), nil
		})
		if after > v.to {
			e.Errorf("%s: filesystem %d bytes is larger than the %d-byte volume", v.claim, after, v.to)
		}
		p := e.getPod(v.claim)
		cs := containerStatus(p)
		switch {
		case p.UID != pods[v.claim].UID:
			e.Errorf("pod %s was re-created during the expansion (UID %s → %s)", v.claim, pods[v.claim].UID, p.UID)
		case p.Status.Phase != corev1.PodRunning || cs == nil || cs.State.Running == nil:
			e.Errorf("pod %s is not running after the expansion: %s", v.claim, podStatusLine(p))
		case cs.RestartCount != 0:
			e.Errorf("pod %s's container restarted %d times during the expansion", v.claim, cs.RestartCount)
		}
		if got := e.sh(v.claim, `cat /data/token`); got != tokens[v.claim] {
			e.Errorf("pod %s reads token %q after the expansion, wrote %q", v.claim, got, tokens[v.claim])
		}
		e.Note("%s %s→%s: df %s→%s in the same pod (restarts 0)", v.fs, fmtBytes(v.from), fmtBytes(v.to), fmtBytes(dfBefore[v.claim]), fmtBytes(after))
	}
}

// ---------------------------------------------------------------- 4. snapshot

// A snapshot of a thin and of a thick volume restores, into a new claim, the data as it was
// when the snapshot was taken.
func testSnapshot(e *E) {
	type src struct {
		sc, claim string
		size      int64
	}
	srcs := []src{
		{scThin, "src-thin", 512 * MiB}, // xfs
		{scExt4, "src-ext4", 256 * MiB},
	}
	for _, s := range srcs {
		e.createPVC(fsPVC(s.claim, s.sc, s.size))
		e.createPod(newPod(s.claim, withMount(s.claim, "/data")))
	}
	nodes := map[string]string{}
	sums := map[string]string{}
	for _, s := range srcs {
		p := e.waitPodRunning(s.claim, podTimeout)
		nodes[s.claim] = p.Spec.NodeName
		sums[s.claim] = e.writeRandom(s.claim, "/data/blob", 8)
		e.logf("%s on %s: /data/blob sha256 %s", s.claim, nodes[s.claim], sums[s.claim])
	}
	restoreSize := map[string]int64{}
	for _, s := range srcs {
		e.createSnapshot("snap-"+s.claim, s.claim)
	}
	for _, s := range srcs {
		rs, handle := e.waitSnapshotReady("snap-"+s.claim, 5*time.Minute)
		restoreSize[s.claim] = rs
		if _, err := volume.ParseID(handle, volume.KindSnapshot); err != nil {
			e.Errorf("snapshot of %s: handle %q is not a localnvme snapshot ID: %v", s.claim, handle, err)
		}
		if rs >= 0 && rs < s.size {
			e.Errorf("snapshot of %s: restoreSize %d is smaller than the %d-byte source", s.claim, rs, s.size)
		}
		e.logf("snap-%s ready: restoreSize %s, handle %s", s.claim, fmtBytes(rs), handle)
	}
	// Change the sources: the restores must hold the data from before.
	for _, s := range srcs {
		if now := e.writeRandom(s.claim, "/data/blob", 8); now == sums[s.claim] {
			e.Fatalf("rewriting %s did not change its data", s.claim)
		}
	}
	for _, s := range srcs {
		restore := "restore-" + strings.TrimPrefix(s.claim, "src-")
		c := fsPVC(restore, s.sc, max(s.size, restoreSize[s.claim]))
		apiGroup := "snapshot.storage.k8s.io"
		c.Spec.DataSource = &corev1.TypedLocalObjectReference{APIGroup: &apiGroup, Kind: "VolumeSnapshot", Name: "snap-" + s.claim}
		e.createPVC(c)
		// A local snapshot lives on its source's node; the scheduler does not know that, so the
		// consumer is kept to that node.
		e.createPod(newPod(restore, withMount(restore, "/data"), onHost(e.hostLabel(nodes[s.claim]))))
	}
	for _, s := range srcs {
		restore := "restore-" + strings.TrimPrefix(s.claim, "src-")
		e.waitPodRunning(restore, podTimeout)
		_, pv := e.waitPVCBound(restore, time.Minute)
		e.mustPVNode(pv, nodes[s.claim])
		got := e.sha256(restore, "/data/blob")
		if got != sums[s.claim] {
			e.Errorf("%s (from the snapshot of %s) reads sha256 %s, the snapshot was taken of %s", restore, s.claim, got, sums[s.claim])
			continue
		}
		e.Note("%s: snapshot restored on %s, 8 MiB sha256 %s… identical", s.sc, nodes[s.claim], got[:12])
	}
}

// ---------------------------------------------------------------- 5. block

// A Block claim appears as a device of the requested size.
func testBlock(e *E) {
	const size = 128 * MiB // a multiple of the 4 MiB extent (and of 2 stripes × 4 MiB)
	e.createPVC(newPVC("raw", scBlock, size, corev1.PersistentVolumeBlock, corev1.ReadWriteOnce))
	e.createPod(newPod("raw", withDevice("raw", "/dev/xvda")))
	pod := e.waitPodRunning("raw", podTimeout)
	pvc, pv := e.waitPVCBound("raw", time.Minute)
	e.mustPVNode(pv, pod.Spec.NodeName)

	e.sh("raw", `[ -b /dev/xvda ] || { ls -l /dev/xvda; exit 1; }`)
	out := e.sh("raw", `blockdev --getsize64 /dev/xvda`)
	got, err := strconv.ParseInt(out, 10, 64)
	e.must(err, "parsing blockdev output %q", out)
	statusCap := pvcCapacity(pvc)
	switch {
	case got < size:
		e.Errorf("/dev/xvda is %d bytes, smaller than the %d requested", got, size)
	case got != statusCap:
		e.Errorf("/dev/xvda is %d bytes, the claim's status capacity is %d", got, statusCap)
	case got == size:
		e.Note("/dev/xvda is exactly the requested %d bytes (= status capacity)", got)
	default:
		e.Note("/dev/xvda is %d bytes: requested %d, rounded up, = status capacity", got, size)
	}

	// The LV behind it has that size.
	id, err := volume.ParseID(pv.Spec.CSI.VolumeHandle, volume.KindVolume)
	e.must(err, "parsing volume handle of %s", pv.Name)
	found := false
	for _, lv := range e.listLVs(pod.Spec.NodeName) {
		if lv.Name == id.LVName && volume.StripUUID(lv.UUID) == id.LVUUID {
			found = true
			if lv.Size != got {
				e.Errorf("LV %s is %d bytes, the device in the pod %d", lv, lv.Size, got)
			}
		}
	}
	if !found {
		e.Errorf("no LV %s (uuid %s) on %s", id.LVName, id.LVUUID, pod.Spec.NodeName)
	}

	// Data goes through: 4 MiB at an 8 MiB offset, read back.
	want := firstField(e.sh("raw", `dd if=/dev/urandom of=/tmp/r bs=1048576 count=4 2>/dev/null && dd if=/tmp/r of=/dev/xvda bs=1048576 seek=8 2>/dev/null && sync && sha256sum /tmp/r`))
	back := firstField(e.sh("raw", `dd if=/dev/xvda bs=1048576 skip=8 count=4 2>/dev/null | sha256sum`))
	if back != want {
		e.Errorf("read back sha256 %s from /dev/xvda, wrote %s", back, want)
	} else {
		e.Note("4 MiB written to and read back from the device")
	}
}

// ---------------------------------------------------------------- 6. rwop

var rwopRE = regexp.MustCompile(`(?i)ReadWriteOncePod|SINGLE_NODE_SINGLE_WRITER|already (published|in use)`)

// A ReadWriteOncePod claim in use by pod A is refused to pod B on the same node: B bound to
// the node directly (kubelet and the driver's NodePublish must refuse) and C sent there
// through the scheduler (the scheduler must refuse). A keeps running.
func testRWOP(e *E) {
	e.createPVC(newPVC("solo", scExt4, 128*MiB, corev1.PersistentVolumeFilesystem, corev1.ReadWriteOncePod))
	e.createPod(newPod("a", withMount("solo", "/data")))
	a := e.waitPodRunning("a", podTimeout)
	node := a.Spec.NodeName
	token := randomToken()
	e.sh("a", `printf %s "$1" > /data/token && sync`, token)

	e.createPod(newPod("b", withMount("solo", "/data"), onNodeName(node)))
	e.createPod(newPod("c", withMount("solo", "/data"), onHost(e.hostLabel(node))))

	evidence := map[string]string{}
	e.holdFor("pods b and c do not run while a uses the ReadWriteOncePod claim", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		var status []string
		for _, name := range []string{"b", "c"} {
			p, err := kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			if p.Status.Phase == corev1.PodRunning {
				return false, fmt.Sprintf("pod %s is Running on %s with the claim pod a uses", name, p.Spec.NodeName), nil
			}
			if evidence[name] == "" {
				if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse && rwopRE.MatchString(c.Message) {
					evidence[name] = "unschedulable: " + c.Message
				}
				for _, ev := range e.events("Pod", name) {
					if ev.Reason == "FailedMount" || ev.Reason == "FailedScheduling" {
						evidence[name] = ev.Reason + ": " + ev.Message
					}
				}
			}
			status = append(status, name+": "+podStatusLine(p))
		}
		pa, err := kube.CoreV1().Pods(e.ns).Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		if cs := containerStatus(pa); pa.UID != a.UID || pa.Status.Phase != corev1.PodRunning || cs == nil || !cs.Ready || cs.RestartCount != 0 {
			return false, "pod a stopped running: " + podStatusLine(pa), nil
		}
		return true, strings.Join(status, "; "), nil
	})
	for _, name := range []string{"b", "c"} {
		if evidence[name] == "" {
			e.Errorf("pod %s did not run, but shows no mount failure or scheduling refusal for the claim: %s", name, e.podDiagnostics(name))
			continue
		}
		how := "bound to " + node + " by nodeName"
		if name == "c" {
			how = "scheduled with a nodeSelector for " + node
		}
		e.Note("pod %s (%s) not running after 60 s: %s", name, how, oneLine(evidence[name], 220))
	}
	if got := e.sh("a", `cat /data/token && printf x > /data/probe && sync && cat /data/probe`); got != token+"x" {
		e.Errorf("pod a reads %q, want its token %q followed by a fresh write", got, token+"x")
	} else {
		e.Note("pod a still running, reads and writes")
	}
}

// ---------------------------------------------------------------- 7. delete

// Deleting a claim (reclaim policy Delete) deletes its PV and the LV its volume ID names.
func testDelete(e *E) {
	e.createPVC(fsPVC("doomed", scExt4, 128*MiB))
	e.createPod(newPod("doomed", withMount("doomed", "/data")))
	pod := e.waitPodRunning("doomed", podTimeout)
	_, pv := e.waitPVCBound("doomed", time.Minute)
	node := pod.Spec.NodeName
	e.mustPVNode(pv, node)
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		e.Fatalf("PV %s has reclaim policy %s, want Delete", pv.Name, pv.Spec.PersistentVolumeReclaimPolicy)
	}
	handle := pv.Spec.CSI.VolumeHandle
	id, err := volume.ParseID(handle, volume.KindVolume)
	e.must(err, "PV %s volume handle", pv.Name)
	if want := volume.LVName(volume.KindVolume, pv.Name); id.LVName != want {
		e.Errorf("volume %s: LV name %s is not derived from the request name %s (want %s)", handle, id.LVName, pv.Name, want)
	}

	var lv *LV
	for _, l := range e.listLVs(node) {
		if l.Name == id.LVName {
			lv = &l
		}
	}
	if lv == nil {
		e.Fatalf("volume %s: no LV %s on node %s before the delete", handle, id.LVName, node)
	}
	if volume.StripUUID(lv.UUID) != id.LVUUID || volume.StripUUID(lv.VGUUID) != id.VGUUID {
		e.Fatalf("volume %s: LV %s on %s has uuid %s in VG uuid %s: not the LV the ID names", handle, lv, node, lv.UUID, lv.VGUUID)
	}
	if !lv.HasTag(volume.Tag(volume.TagKind, string(volume.KindVolume))) || !lv.HasTag(volume.Tag(volume.TagName, volume.EncodeName(pv.Name))) {
		e.Errorf("LV %s tags %v lack %s=v and %s=<base64url(%s)>", lv, lv.Tags, volume.TagKind, volume.TagName, pv.Name)
	}
	e.logf("volume %s is LV %s (%d bytes) on %s", handle, lv, lv.Size, node)

	e.deletePod("doomed")
	e.deleteClaim("doomed")
	for _, n := range expectedNodes {
		for _, l := range e.listLVs(n) {
			if l.Name == id.LVName || volume.StripUUID(l.UUID) == id.LVUUID {
				e.Errorf("LV %s (uuid %s) is still on %s after its PV %s was deleted", l, l.UUID, n, pv.Name)
			}
		}
	}
	e.Note("claim deleted → PV %s gone and LV %s gone from %s", pv.Name, lv, node)
}

// ---------------------------------------------------------------- 8. placement

func withAntiAffinity(app string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				TopologyKey:   hostnameLabel,
			}},
		}}
	}
}

func testPlacement(e *E) {
	e.logf("--- (a) spread: 2 replicas with required anti-affinity")
	placementSpread(e)
	e.logf("--- (b) fill: a full node sends a new claim to the other one")
	placementFill(e)
	e.logf("--- (c) cordon: a pod never leaves its volume's node")
	placementCordon(e)
}

// (a) One claim on each node, each PV pinned to its pod's node.
func placementSpread(e *E) {
	e.createStatefulSet("spread", 2, scExt4, 128*MiB, withAntiAffinity("spread"))
	seen := map[string]string{}
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("spread-%d", i)
		pod := e.waitPodRunning(name, podTimeout)
		_, pv := e.waitPVCBound("data-"+name, time.Minute)
		e.mustPVNode(pv, pod.Spec.NodeName)
		if other, dup := seen[pod.Spec.NodeName]; dup {
			e.Fatalf("pods %s and %s both run on %s despite required anti-affinity", other, name, pod.Spec.NodeName)
		}
		seen[pod.Spec.NodeName] = name
	}
	for _, n := range expectedNodes {
		if seen[n] == "" {
			e.Fatalf("no spread replica on node %s (placement %v)", n, seen)
		}
	}
	e.Note("(a) one replica and PV on each node: %v", seen)
	e.deleteStatefulSet("spread", 2)
}

// (b) Node A is filled until its fast capacity is below X; a claim of X with an unpinned pod
// lands on node B, chosen by the scheduler from CSIStorageCapacity, not by a failed provision.
func placementFill(e *E) {
	nodeA, nodeB := expectedNodes[0], expectedNodes[1]
	caps, err := capacities(e.ctx)
	e.must(err, "reading capacities")
	for _, sc := range []string{scExt4, scBlock} {
		for _, n := range expectedNodes {
			if _, ok := caps[sc][n]; !ok {
				e.Fatalf("no CSIStorageCapacity for %s on %s", sc, n)
			}
		}
	}
	limA := min(caps[scExt4][nodeA].Limit(), caps[scBlock][nodeA].Limit())
	limB := caps[scExt4][nodeB].Limit()
	x := min(GiB, alignDown(limB/2, 8*MiB))
	if x < 64*MiB {
		e.Fatalf("node %s has too little fast capacity for the test: %s", nodeB, caps[scExt4][nodeB])
	}
	fill := alignDown(limA-x/2, 8*MiB) // leaves about x/2 on A
	e.logf("A=%s limit %s, B=%s limit %s: filler %s on A, then a %s claim", nodeA, fmtBytes(limA), nodeB, fmtBytes(limB), fmtBytes(fill), fmtBytes(x))

	if fill >= 8*MiB {
		// Block: no mkfs of a big filesystem on a slow node.
		e.createPVC(newPVC("filler", scBlock, fill, corev1.PersistentVolumeBlock, corev1.ReadWriteOnce))
		e.createPod(newPod("filler", withDevice("filler", "/dev/xvda"), onHost(e.hostLabel(nodeA))))
		p := e.waitPodRunning("filler", podTimeout)
		if p.Spec.NodeName != nodeA {
			e.Fatalf("filler pod runs on %s, pinned to %s", p.Spec.NodeName, nodeA)
		}
		_, pv := e.waitPVCBound("filler", time.Minute)
		e.mustPVNode(pv, nodeA)
	} else {
		e.logf("node %s already has less than %s: no filler needed", nodeA, fmtBytes(x))
	}

	e.waitFor(fmt.Sprintf("CSIStorageCapacity of %s on %s to drop below %s", scExt4, nodeA, fmtBytes(x)), 5*time.Minute, func(ctx context.Context) (bool, string, error) {
		c, err := capacities(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		return c[scExt4][nodeA].Limit() < x, c[scExt4][nodeA].String(), nil
	})
	caps, err = capacities(e.ctx)
	e.must(err, "reading capacities")
	if caps[scExt4][nodeB].Limit() < x {
		e.Fatalf("node %s no longer has room for %s: %s", nodeB, fmtBytes(x), caps[scExt4][nodeB])
	}
	limAfter := caps[scExt4][nodeA].Limit()

	e.createPVC(fsPVC("second", scExt4, x))
	e.createPod(newPod("second", withMount("second", "/data")))
	p := e.waitPodRunning("second", podTimeout)
	if p.Spec.NodeName != nodeB {
		e.Fatalf("pod second runs on %s; %s has only %s for its %s claim, %s has room", p.Spec.NodeName, nodeA, fmtBytes(limAfter), fmtBytes(x), nodeB)
	}
	pvc, pv := e.waitPVCBound("second", time.Minute)
	e.mustPVNode(pv, nodeB)
	if n := pvc.Annotations[selectedNodeAnnotation]; n != nodeB {
		e.Errorf("claim second has %s=%q, want %s", selectedNodeAnnotation, n, nodeB)
	}
	e.requireNoProvisioningFailed("second")
	e.Note("(b) %s filled to %s left; a %s claim went to %s with no failed provisioning", nodeA, fmtBytes(limAfter), fmtBytes(x), nodeB)

	e.deletePod("second")
	e.deleteClaim("second")
	if fill >= 8*MiB {
		e.deletePod("filler")
		e.deleteClaim("filler")
	}
}

// (c) With its volume's node cordoned, a StatefulSet pod stays Pending rather than move; after
// the uncordon it runs there again with its data.
func placementCordon(e *E) {
	e.createStatefulSet("pinned", 1, scExt4, 128*MiB)
	pod := e.waitPodRunning("pinned-0", podTimeout)
	node := pod.Spec.NodeName
	_, pv := e.waitPVCBound("data-pinned-0", time.Minute)
	e.mustPVNode(pv, node)
	token := randomToken()
	e.sh("pinned-0", `printf %s "$1" > /data/token && sync`, token)

	uncordoned := false
	e.t.Cleanup(func() {
		if uncordoned {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := setCordon(ctx, node, false); err != nil {
			e.Errorf("cleanup: uncordoning %s: %v (run: kubectl uncordon %s)", node, err, node)
		} else {
			e.logf("cleanup: uncordoned %s", node)
		}
	})
	e.must(setCordon(e.ctx, node, true), "cordoning %s", node)
	e.logf("cordoned %s", node)

	e.must(kube.CoreV1().Pods(e.ns).Delete(e.ctx, "pinned-0", metav1.DeleteOptions{}), "deleting pod pinned-0")
	recreated := e.waitRecreated("pinned-0", pod.UID)
	var lastMsg string
	e.holdFor("the re-created pinned-0 stays unscheduled while "+node+" is cordoned", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(e.ns).Get(ctx, "pinned-0", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		if p.UID != recreated.UID {
			return false, "pod pinned-0 was replaced again (UID " + string(p.UID) + ")", nil
		}
		if p.Spec.NodeName != "" {
			return false, "pod pinned-0 was scheduled onto " + p.Spec.NodeName, nil
		}
		if c := podCondition(p, corev1.PodScheduled); c != nil {
			lastMsg = c.Message
		}
		return true, podStatusLine(p), nil
	})
	p := e.getPod("pinned-0")
	if c := podCondition(p, corev1.PodScheduled); c == nil || c.Status != corev1.ConditionFalse {
		e.Errorf("pod pinned-0 has no PodScheduled=False condition after 60 s: the scheduler did not evaluate it (%s)", podStatusLine(p))
	}

	e.must(setCordon(e.ctx, node, false), "uncordoning %s", node)
	uncordoned = true
	e.logf("uncordoned %s", node)
	p = e.waitPodRunning("pinned-0", podTimeout)
	if p.Spec.NodeName != node {
		e.Fatalf("pinned-0 runs on %s after the uncordon, its volume is on %s", p.Spec.NodeName, node)
	}
	if got := e.sh("pinned-0", `cat /data/token`); got != token {
		e.Fatalf("pinned-0 reads %q after the uncordon, wrote %q", got, token)
	}
	e.Note("(c) with %s cordoned the re-created pod stayed Pending 60 s (%s); after uncordon it ran there with its data", node, oneLine(lastMsg, 160))
}
