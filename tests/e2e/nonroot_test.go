//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// socketGroupFlag is the node plugin's flag that gives the CSI socket to the non-root
// sidecars' group.
const socketGroupFlag = "--csi-socket-group="

// testNonRoot checks the installed pods as they run: every container but the node plugin's
// privileged localnvme runs non-root (runAsNonRoot, a non-zero UID, no privilege escalation,
// RuntimeDefault seccomp, no capabilities, read-only root), all of them Ready; the node
// sidecars run in the --csi-socket-group group and the socket on each node is root:<that
// group> 0660; the controller's two containers share a UID (its socket is 0600). Where the
// runtime reports the process's identity (status.containerStatuses[].user, containerd 2+),
// it must match. That the sidecars really talk to the socket is what the other scenarios
// show (capacity: csi-provisioner's CSIStorageCapacity; snapshot; expand: csi-resizer).
func testNonRoot(e *E) {
	var nodePods, ctlPods []corev1.Pod
	e.waitFor("every localnvme node and controller pod Ready", 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		nodePods = nil
		var waiting []string
		for _, n := range expectedNodes {
			name, err := nodePluginPod(ctx, n)
			if err != nil {
				waiting = append(waiting, err.Error())
				continue
			}
			p, err := kube.CoreV1().Pods(driverNamespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			nodePods = append(nodePods, *p)
		}
		ps, err := controllerPods(ctx)
		if err != nil {
			return false, "", err
		}
		ctlPods = ps
		ready := 0
		for i := range ps {
			if podReady(&ps[i]) {
				ready++
			}
		}
		if ready < 2 || ready != len(ps) {
			waiting = append(waiting, "controller pods: "+podsLine(ps))
		}
		for i := range nodePods {
			if !podReady(&nodePods[i]) {
				waiting = append(waiting, "node pod "+nodePods[i].Name+" not Ready")
			}
		}
		return len(waiting) == 0, strings.Join(waiting, "; "), nil
	})

	reported := 0 // containers whose runtime reported the process's UID
	checkStatus := func(p *corev1.Pod, c *corev1.Container, uid, gid int64) {
		cs := statusOf(p, c.Name)
		if cs == nil || !cs.Ready || cs.State.Running == nil {
			e.Errorf("pod %s container %s is not running and Ready (%v)", p.Name, c.Name, cs)
			return
		}
		if cs.User != nil && cs.User.Linux != nil {
			reported++
			if cs.User.Linux.UID != uid || (gid >= 0 && cs.User.Linux.GID != gid) {
				e.Errorf("pod %s container %s runs as %d:%d, want %d:%d", p.Name, c.Name, cs.User.Linux.UID, cs.User.Linux.GID, uid, gid)
			}
		}
	}

	for i := range nodePods {
		p := &nodePods[i]
		group := int64(-1)
		for j := range p.Spec.Containers {
			c := &p.Spec.Containers[j]
			if c.Name != nodePodContainer {
				continue
			}
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, socketGroupFlag); ok {
					g, err := strconv.ParseInt(v, 10, 64)
					e.must(err, "pod %s: %s%s", p.Name, socketGroupFlag, v)
					group = g
				}
			}
		}
		if group < 0 {
			e.Fatalf("pod %s: the %s container has no %s: its sidecars cannot reach the CSI socket as non-root", p.Name, nodePodContainer, socketGroupFlag)
		}
		sidecars := 0
		for j := range p.Spec.Containers {
			c := &p.Spec.Containers[j]
			if c.Name == nodePodContainer {
				checkStatus(p, c, 0, -1)
				continue
			}
			sidecars++
			uid, gid := e.checkNonRoot(p, c)
			if gid != group {
				e.Errorf("pod %s container %s runs in group %d, the CSI socket's group is %d", p.Name, c.Name, gid, group)
			}
			checkStatus(p, c, uid, gid)
		}
		// The socket as the node plugin made it (the node image has GNU stat).
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		out, stderr, err := execPod(ctx, driverNamespace, p.Name, nodePodContainer, []string{"stat", "-c", "%a %u %g %F", "/csi/csi.sock"})
		cancel()
		e.must(err, "stat of the CSI socket in pod %s (stderr: %s)", p.Name, oneLine(stderr, 300))
		if got, want := strings.TrimSpace(out), fmt.Sprintf("660 0 %d socket", group); got != want {
			e.Errorf("pod %s: /csi/csi.sock is %q (mode uid gid type), want %q", p.Name, got, want)
		}
		e.Note("%s (%s): %d non-root sidecars in group %d, csi.sock 0660 root:%d", p.Spec.NodeName, p.Name, sidecars, group, group)
	}

	for i := range ctlPods {
		p := &ctlPods[i]
		uids := map[int64]bool{}
		for j := range p.Spec.Containers {
			c := &p.Spec.Containers[j]
			uid, gid := e.checkNonRoot(p, c)
			uids[uid] = true
			checkStatus(p, c, uid, gid)
		}
		if len(uids) != 1 {
			e.Errorf("controller pod %s: its containers run as different UIDs %v; the 0600 CSI socket admits only its owner", p.Name, uids)
		}
	}
	e.Note("%d controller pods: every container non-root with one UID", len(ctlPods))
	if reported == 0 {
		e.Note("the runtime reports no container user (containerd < 2): UIDs checked in the pod spec only")
	} else {
		e.Note("runtime-reported UID/GID matched for %d containers", reported)
	}
}

// checkNonRoot fails the scenario unless container c of pod p, with the pod's settings
// applied under its own, runs as a non-root, unprivileged, confined user; it returns the
// effective UID and GID (-1: the image's).
func (e *E) checkNonRoot(p *corev1.Pod, c *corev1.Container) (uid, gid int64) {
	var problems []string
	psc := p.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	pick := func(c, p *int64) int64 {
		switch {
		case c != nil:
			return *c
		case p != nil:
			return *p
		}
		return -1
	}
	uid, gid = pick(csc.RunAsUser, psc.RunAsUser), pick(csc.RunAsGroup, psc.RunAsGroup)
	nonRoot := csc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if nonRoot == nil || !*nonRoot {
		problems = append(problems, "runAsNonRoot is not true")
	}
	if uid <= 0 {
		problems = append(problems, fmt.Sprintf("runAsUser %d (want a fixed non-zero UID)", uid))
	}
	if csc.Privileged != nil && *csc.Privileged {
		problems = append(problems, "privileged")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		problems = append(problems, "allowPrivilegeEscalation is not false")
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		problems = append(problems, "readOnlyRootFilesystem is not true")
	}
	if csc.Capabilities == nil || len(csc.Capabilities.Add) > 0 || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" {
		problems = append(problems, fmt.Sprintf("capabilities %v (want drop [ALL], add none)", csc.Capabilities))
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		problems = append(problems, fmt.Sprintf("seccompProfile %v (want RuntimeDefault)", seccomp))
	}
	if len(problems) > 0 {
		e.Errorf("pod %s container %s: %s", p.Name, c.Name, strings.Join(problems, ", "))
	}
	return uid, gid
}

// statusOf is the status of container name in p, or nil.
func statusOf(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}
