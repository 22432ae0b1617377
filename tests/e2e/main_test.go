//go:build e2e

// Package e2e tests the localnvme CSI driver in a real Kubernetes cluster (hack/cluster: the
// control plane on this host, two kubelet nodes in qemu VMs with emulated NVMe drives).
//
//	KUBECONFIG=<admin kubeconfig> go test -tags e2e ./tests/e2e/ -v -timeout 100m
//
// Without KUBECONFIG, or when the API server does not answer, the run fails loudly: it never
// skips. Each scenario runs in its own namespace and prints one line
// "E2E RESULT <name>: PASS|FAIL (<seconds>s) <detail>"; the run ends with
// "e2e: N passed, N failed".
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The cluster contract (hack/cluster, deploy/).
const (
	driverName       = "localnvme.io"
	driverNamespace  = "localnvme-system"
	nodePodSelector  = "app.kubernetes.io/name=localnvme,app.kubernetes.io/component=node"
	nodePodContainer = "localnvme"
	topologyKey      = "localnvme.io/node"
	hostnameLabel    = "kubernetes.io/hostname"

	scExt4            = "localnvme-ext4"  // thick class "fast", ext4
	scXFS             = "localnvme-xfs"   // thick class "fast", xfs
	scBlock           = "localnvme-block" // thick class "fast", for volumeMode Block
	scThin            = "localnvme-thin"  // thin class "thin", xfs
	snapshotClassName = "localnvme-snapclass"

	defaultImage = "localnvme.local/busybox:1"

	// cordonAnnotation marks a node these tests cordoned, so that a later run can undo a
	// cordon left behind by a run that was killed before its cleanup.
	cordonAnnotation = "e2e.localnvme.io/cordoned"
	// namespaceLabel marks the namespaces these tests create.
	namespaceLabel = "e2e.localnvme.io/test"
)

var (
	expectedNodes  = []string{"localnvme-node-1", "localnvme-node-2"}
	storageClasses = []string{scExt4, scXFS, scBlock, scThin}
)

var (
	restConfig *rest.Config
	kube       *kubernetes.Clientset
	dyn        dynamic.Interface
	image      string
)

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		// No summary line: nothing ran, and "0 failed" must not read as a success.
		fmt.Fprintf(os.Stderr, "\n*** e2e: FATAL: %v\n\n", err)
		os.Exit(1)
	}
	code := m.Run()
	printSummary()
	if code == 0 && failedCount() > 0 {
		code = 1
	}
	os.Exit(code)
}

func setup() error {
	image = os.Getenv("E2E_IMAGE")
	if image == "" {
		image = defaultImage
	}
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		return fmt.Errorf("KUBECONFIG is not set: these tests need a running cluster (hack/cluster/up.sh writes the admin kubeconfig; " +
			"run KUBECONFIG=<run dir>/admin.kubeconfig go test -tags e2e ./tests/e2e/ -v -timeout 100m)")
	}
	cfg, err := loadKubeconfig(path)
	if err != nil {
		return err
	}
	cfg.QPS = 50
	cfg.Burst = 100
	cfg.Timeout = 60 * time.Second
	restConfig = cfg
	if kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	if dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return fmt.Errorf("dynamic client for %s: %w", cfg.Host, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kube.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("the API server at %s (KUBECONFIG=%s) does not answer /readyz: %v", cfg.Host, path, err)
	}
	v, err := kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("the API server at %s does not answer /version: %v", cfg.Host, err)
	}
	logf("e2e: API server %s, Kubernetes %s, workload image %s", cfg.Host, v.GitVersion, image)
	return preflight()
}

// loadKubeconfig builds the client config with client-go's kubeconfig loader. KUBECONFIG may
// be a list (merged as kubectl does, missing entries skipped); relative paths in a file are
// resolved against that file's directory.
func loadKubeconfig(list string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(list)}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err):
		// clientcmd's own text here suggests KUBERNETES_MASTER, which does not apply.
		return nil, fmt.Errorf("KUBECONFIG=%s: no kubeconfig there (the file is missing, or it names no cluster)", list)
	case err != nil:
		return nil, fmt.Errorf("KUBECONFIG=%s: %w", list, err)
	}
	cfg.UserAgent = "localnvme-e2e"
	return cfg, nil
}

// preflight waits (a few minutes: the cluster may just have come up) for both nodes to be
// Ready, each to run one Ready localnvme node pod and to list the driver in its CSINode. It
// undoes cordons a killed run left behind, and warns about missing classes and leftovers.
func preflight() error {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// A cordon left by a run that died before its cleanup.
	for _, n := range expectedNodes {
		node, err := kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err == nil && node.Annotations[cordonAnnotation] != "" {
			logf("e2e: node %s was cordoned by an earlier e2e run that did not clean up: uncordoning", n)
			if err := setCordon(ctx, n, false); err != nil {
				return fmt.Errorf("uncordoning %s: %w", n, err)
			}
		}
	}

	var problems []string
	check := func() bool {
		problems = nil
		for _, n := range expectedNodes {
			node, err := kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				problems = append(problems, fmt.Sprintf("node %s: %v", n, err))
				continue
			}
			if !nodeReady(node) {
				problems = append(problems, fmt.Sprintf("node %s is not Ready", n))
			}
			if node.Spec.Unschedulable {
				problems = append(problems, fmt.Sprintf("node %s is cordoned (not by these tests: uncordon it)", n))
			}
			if _, err := nodePluginPod(ctx, n); err != nil {
				problems = append(problems, err.Error())
			}
			csiNode, err := kube.StorageV1().CSINodes().Get(ctx, n, metav1.GetOptions{})
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("CSINode %s: %v", n, err))
			case !csiNodeHasDriver(csiNode.Spec.Drivers):
				problems = append(problems, fmt.Sprintf("CSINode %s does not list driver %s (plugin not registered with kubelet)", n, driverName))
			}
		}
		return len(problems) == 0
	}
	last := time.Time{}
	for !check() {
		if ctx.Err() != nil {
			return fmt.Errorf("the cluster is not ready for the e2e tests after 6 min:\n  - %s", strings.Join(problems, "\n  - "))
		}
		if time.Since(last) > 15*time.Second {
			logf("e2e: waiting for the cluster: %s", strings.Join(problems, "; "))
			last = time.Now()
		}
		time.Sleep(2 * time.Second)
	}
	logf("e2e: nodes %v Ready, localnvme node pods running and registered", expectedNodes)

	// Soft checks: the scenarios that need these fail on their own, with this as the hint.
	if d, err := kube.StorageV1().CSIDrivers().Get(ctx, driverName, metav1.GetOptions{}); err != nil {
		logf("e2e: WARNING: CSIDriver %s: %v", driverName, err)
	} else if d.Spec.StorageCapacity == nil || !*d.Spec.StorageCapacity {
		logf("e2e: WARNING: CSIDriver %s does not set storageCapacity: true; the scheduler ignores CSIStorageCapacity", driverName)
	}
	for _, sc := range storageClasses {
		c, err := kube.StorageV1().StorageClasses().Get(ctx, sc, metav1.GetOptions{})
		switch {
		case err != nil:
			logf("e2e: WARNING: StorageClass %s: %v", sc, err)
		case c.Provisioner != driverName:
			logf("e2e: WARNING: StorageClass %s has provisioner %q, not %s", sc, c.Provisioner, driverName)
		}
	}
	// The node-loss scenarios' workload image (on the nodes' containerd disks, from the seed).
	for _, n := range expectedNodes {
		node, err := kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			continue
		}
		found := false
		for _, img := range node.Status.Images {
			for _, name := range img.Names {
				found = found || name == postgresImage() || strings.HasSuffix(name, "/"+postgresImage())
			}
		}
		if !found {
			logf("e2e: WARNING: node %s does not list the image %s (hack/image/build.sh builds it; the node imports it at boot): the node-loss scenarios need it", n, postgresImage())
		}
	}
	if _, err := dyn.Resource(gvrSnapshotClass).Get(ctx, snapshotClassName, metav1.GetOptions{}); err != nil {
		logf("e2e: WARNING: VolumeSnapshotClass %s: %v", snapshotClassName, err)
	}
	if nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: namespaceLabel}); err == nil && len(nss.Items) > 0 {
		var names []string
		for _, ns := range nss.Items {
			names = append(names, ns.Name)
		}
		sort.Strings(names)
		logf("e2e: WARNING: namespaces left by earlier e2e runs (their volumes use capacity): %s", strings.Join(names, ", "))
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setCordon sets or clears spec.unschedulable, and the annotation that says these tests did it.
func setCordon(ctx context.Context, node string, cordon bool) error {
	var patch string
	if cordon {
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}},"spec":{"unschedulable":true}}`, cordonAnnotation)
	} else {
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:null}},"spec":{"unschedulable":null}}`, cordonAnnotation)
	}
	_, err := kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// The TestE2E scenarios, in order. capacity and placement look at every LV and at the
// nodes' free space, so they run alone; the volume scenarios only at their own volumes (a
// few hundred MiB each, far below a node's capacity), so they run at once, in the group
// "volumes" (a -run filter names them TestE2E/volumes/<name>); placement and leader-election
// run at once in the group "cluster".
func TestE2E(t *testing.T) {
	// Read-only and quick; first, before anything restarts a driver pod.
	scenario(t, "nonroot", 4*time.Minute, testNonRoot)
	scenario(t, "capacity", 6*time.Minute, testCapacity)
	t.Run("volumes", func(t *testing.T) {
		par := scenarioOptions{parallel: true}
		scenarioWith(t, "statefulset", 12*time.Minute, par, testStatefulSet)
		scenarioWith(t, "expand", 12*time.Minute, par, testExpand)
		scenarioWith(t, "snapshot", 14*time.Minute, par, testSnapshot)
		scenarioWith(t, "block", 10*time.Minute, par, testBlock)
		scenarioWith(t, "rwop", 10*time.Minute, par, testRWOP)
		scenarioWith(t, "delete", 10*time.Minute, par, testDelete)
	})
	// placement fills a node and cordons one; leader-election kills the fencing leader (the
	// controller Deployment has no volumes, and prefers, not requires, one replica per node).
	t.Run("cluster", func(t *testing.T) {
		par := scenarioOptions{parallel: true}
		scenarioWith(t, "placement", 15*time.Minute, par, testPlacement)
		scenarioWith(t, "leader-election", 6*time.Minute, par, testLeaderElection)
	})
	// Failure scenarios (nodeloss_test.go): they power node VMs off and on, so they run last.
	nodeLossScenarios(t)
}
