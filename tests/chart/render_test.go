//go:build chart

// The chart's parity and option tests on rendered manifests. hack/chart.sh (`make chart`)
// renders them into $CHART_RENDER_DIR and runs these tests:
//
//	<variant>.chart.yaml      helm template of deploy/helm/localnvme with the variant's values
//	<variant>.kustomize.yaml  kustomize build of the matching kustomize install
//	all-options.chart.yaml    helm template with ci/all-options-values.yaml
package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func renderDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHART_RENDER_DIR")
	if dir == "" {
		t.Fatal("CHART_RENDER_DIR is not set: run hack/chart.sh (make chart), which renders the manifests first")
	}
	return dir
}

func load(t *testing.T, path string) []Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", path)
	}
	return objs
}

// TestParity: every variant the chart renders equals its kustomize install.
func TestParity(t *testing.T) {
	dir := renderDir(t)
	kust, err := filepath.Glob(filepath.Join(dir, "*.kustomize.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(kust) == 0 {
		t.Fatalf("no *.kustomize.yaml in %s: nothing to compare", dir)
	}
	for _, k := range kust {
		variant := strings.TrimSuffix(filepath.Base(k), ".kustomize.yaml")
		t.Run(variant, func(t *testing.T) {
			want := load(t, k)
			got := load(t, filepath.Join(dir, variant+".chart.yaml"))
			diffs := Compare(want, got)
			for _, d := range diffs {
				t.Error(d)
			}
			if len(diffs) == 0 {
				kinds := map[string]int{}
				for _, o := range want {
					kinds[o.Kind()]++
				}
				t.Logf("%d objects equal (%v)", len(want), kinds)
			}
		})
	}
}

// allOptions is the part of ci/all-options-values.yaml these tests read.
type allOptions struct {
	Namespace struct {
		Create bool `json:"create"`
	} `json:"namespace"`
	Images map[string]struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		PullPolicy string `json:"pullPolicy"`
	} `json:"images"`
	ImagePullSecrets []map[string]string `json:"imagePullSecrets"`
	LogVerbosity     int                 `json:"logVerbosity"`
	KubeletDir       string              `json:"kubeletDir"`
	CSISocketGroup   int                 `json:"csiSocketGroup"`
	NonRootUser      int                 `json:"nonRootUser"`
	DeviceClasses    []any               `json:"deviceClasses"`
	NodeLoss         struct {
		OnNodeLoss string `json:"onNodeLoss"`
		Delay      string `json:"delay"`
	} `json:"nodeLoss"`
	StorageClasses []struct {
		objectMeta
		DeviceClass          string            `json:"deviceClass"`
		FSType               string            `json:"fsType"`
		VolumeBindingMode    string            `json:"volumeBindingMode"`
		AllowVolumeExpansion *bool             `json:"allowVolumeExpansion"`
		OnNodeLoss           string            `json:"onNodeLoss"`
		NodeLossDelay        string            `json:"nodeLossDelay"`
		Parameters           map[string]string `json:"parameters"`
		ReclaimPolicy        string            `json:"reclaimPolicy"`
		IsDefault            bool              `json:"isDefault"`
		MountOptions         []string          `json:"mountOptions"`
	} `json:"storageClasses"`
	VolumeSnapshotClasses []struct {
		objectMeta
		DeletionPolicy string `json:"deletionPolicy"`
		IsDefault      bool   `json:"isDefault"`
	} `json:"volumeSnapshotClasses"`
	Node struct {
		workload
		Registrar struct {
			Enabled           bool `json:"enabled"`
			LivenessProbePort int  `json:"livenessProbePort"`
			RegistrarPort     int  `json:"registrarPort"`
		} `json:"registrar"`
		UpdateStrategy any `json:"updateStrategy"`
	} `json:"node"`
	Controller struct {
		workload
		Replicas       int  `json:"replicas"`
		Fencing        bool `json:"fencing"`
		LeaderElection struct {
			LeaseDuration string `json:"leaseDuration"`
			RenewDeadline string `json:"renewDeadline"`
			RetryPeriod   string `json:"retryPeriod"`
		} `json:"leaderElection"`
		Workers int `json:"workers"`
	} `json:"controller"`
	Sidecars map[string]struct {
		ExtraArgs []string `json:"extraArgs"`
		Resources any      `json:"resources"`
	} `json:"sidecars"`
	Monitoring struct {
		PodMonitor struct {
			Enabled  bool              `json:"enabled"`
			Interval string            `json:"interval"`
			Labels   map[string]string `json:"labels"`
		} `json:"podMonitor"`
	} `json:"monitoring"`
}

// objectMeta is the name, labels and annotations of a StorageClass or VolumeSnapshotClass.
type objectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// checkMeta: the object carries the labels and annotations the values give it.
func checkMeta(t *testing.T, o Object, m objectMeta) {
	t.Helper()
	md, _ := o["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	for k, val := range m.Labels {
		if labels[k] != val {
			t.Errorf("%s: label %s=%v, want %s", o.Key(), k, labels[k], val)
		}
	}
	for k, val := range m.Annotations {
		if a := annotations(o)[k]; a != val {
			t.Errorf("%s: annotation %s=%v, want %s", o.Key(), k, a, val)
		}
	}
}

type workload struct {
	MetricsPort       int               `json:"metricsPort"`
	PriorityClassName string            `json:"priorityClassName"`
	Tolerations       []any             `json:"tolerations"`
	NodeSelector      map[string]string `json:"nodeSelector"`
	Affinity          map[string]any    `json:"affinity"`
	Resources         any               `json:"resources"`
	ExtraArgs         []string          `json:"extraArgs"`
	PodLabels         map[string]string `json:"podLabels"`
	PodAnnotations    map[string]string `json:"podAnnotations"`
}

// TestAllOptions: every option of ci/all-options-values.yaml shows up where it belongs in
// the rendered objects (so no option is silently ignored by the templates).
func TestAllOptions(t *testing.T) {
	dir := renderDir(t)
	valuesFile := os.Getenv("CHART_ALL_OPTIONS_VALUES")
	if valuesFile == "" {
		t.Fatal("CHART_ALL_OPTIONS_VALUES is not set (hack/chart.sh sets it)")
	}
	b, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var v allOptions
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("%s: %v", valuesFile, err)
	}
	objs := load(t, filepath.Join(dir, "all-options.chart.yaml"))
	by := map[string]Object{}
	for _, o := range objs {
		by[o.Kind()+"/"+name(o)] = o
	}
	get := func(key string) Object {
		t.Helper()
		o, ok := by[key]
		if !ok {
			t.Fatalf("no %s rendered", key)
		}
		return o
	}

	if n := count(objs, "Namespace"); n != map[bool]int{true: 1, false: 0}[v.Namespace.Create] {
		t.Errorf("namespace.create %v, %d Namespace objects rendered", v.Namespace.Create, n)
	}

	// images, pull policy and pull secrets
	ds, dep := get("DaemonSet/localnvme-node"), get("Deployment/localnvme-controller")
	nodeC, ctrlC := containers(ds), containers(dep)
	wantImage := map[string]string{ // container -> images.<key>
		"node/localnvme": "localnvme", "node/csi-provisioner": "provisioner", "node/csi-snapshotter": "snapshotter",
		"node/node-driver-registrar": "nodeDriverRegistrar", "node/liveness-probe": "livenessProbe",
		"controller/localnvme": "localnvme", "controller/csi-resizer": "resizer",
	}
	if len(wantImage) != len(nodeC)+len(ctrlC) {
		t.Errorf("containers: node %v, controller %v; want the %d of %v", keys(nodeC), keys(ctrlC), len(wantImage), keys(wantImage))
	}
	for c, img := range wantImage {
		m := nodeC
		if strings.HasPrefix(c, "controller/") {
			m = ctrlC
		}
		ct, ok := m[strings.SplitN(c, "/", 2)[1]]
		if !ok {
			t.Errorf("container %s missing", c)
			continue
		}
		want := v.Images[img].Repository + ":" + v.Images[img].Tag
		if ct["image"] != want || ct["imagePullPolicy"] != v.Images[img].PullPolicy {
			t.Errorf("container %s: image %v %v, want %s %s", c, ct["image"], ct["imagePullPolicy"], want, v.Images[img].PullPolicy)
		}
	}
	for _, o := range []Object{ds, dep} {
		ps := podSpec(o)
		if !equalYAML(ps["imagePullSecrets"], v.ImagePullSecrets) {
			t.Errorf("%s: imagePullSecrets %v, want %v", o.Key(), ps["imagePullSecrets"], v.ImagePullSecrets)
		}
	}

	// args: verbosity, kubelet dir, socket group, ports, leader election, extra args
	hasArgs := func(c string, ct map[string]any, want ...string) {
		t.Helper()
		args := strs(ct["args"])
		for _, w := range want {
			if !slices.Contains(args, w) {
				t.Errorf("container %s: no arg %q in %q", c, w, args)
			}
		}
	}
	kd := v.KubeletDir
	hasArgs("node/localnvme", nodeC["localnvme"], append([]string{
		"--kubelet-registration-dir=", "--kubelet-dir=" + kd, "-v=" + itoa(v.LogVerbosity),
		"--csi-socket-group=" + itoa(v.CSISocketGroup), "--metrics-address=:" + itoa(v.Node.MetricsPort),
	}, v.Node.ExtraArgs...)...)
	if !v.Node.Registrar.Enabled {
		t.Fatal("ci/all-options-values.yaml must enable node.registrar")
	}
	hasArgs("node/node-driver-registrar", nodeC["node-driver-registrar"],
		"--kubelet-registration-path="+kd+"/plugins/localnvme.io/csi.sock",
		"--http-endpoint=:"+itoa(v.Node.Registrar.RegistrarPort))
	hasArgs("node/liveness-probe", nodeC["liveness-probe"], "--http-endpoint=:"+itoa(v.Node.Registrar.LivenessProbePort))
	for _, probe := range []string{"startupProbe", "livenessProbe"} {
		p, _ := nodeC["localnvme"][probe].(map[string]any)
		hg, _ := p["httpGet"].(map[string]any)
		if !equalYAML(hg["port"], v.Node.Registrar.LivenessProbePort) {
			t.Errorf("node/localnvme %s: port %v, want the livenessprobe sidecar's %d", probe, hg["port"], v.Node.Registrar.LivenessProbePort)
		}
	}
	if ds, _ := ds["spec"].(map[string]any); !equalYAML(ds["updateStrategy"], v.Node.UpdateStrategy) {
		t.Errorf("DaemonSet updateStrategy %v, want %v", ds["updateStrategy"], v.Node.UpdateStrategy)
	}
	le := v.Controller.LeaderElection
	hasArgs("controller/localnvme", ctrlC["localnvme"], append([]string{
		"--fencing=" + map[bool]string{true: "true", false: "false"}[v.Controller.Fencing],
		"--metrics-address=:" + itoa(v.Controller.MetricsPort),
		"--leader-election-lease-duration=" + le.LeaseDuration, "--leader-election-renew-deadline=" + le.RenewDeadline,
		"--leader-election-retry-period=" + le.RetryPeriod, "--workers=" + itoa(v.Controller.Workers),
	}, v.Controller.ExtraArgs...)...)
	sidecarOf := map[string]map[string]any{
		"provisioner": nodeC["csi-provisioner"], "snapshotter": nodeC["csi-snapshotter"], "resizer": ctrlC["csi-resizer"],
		"nodeDriverRegistrar": nodeC["node-driver-registrar"], "livenessProbe": nodeC["liveness-probe"],
	}
	if len(v.Sidecars) != len(sidecarOf) {
		t.Errorf("the values set sidecars %v, want all of %v", keys(v.Sidecars), keys(sidecarOf))
	}
	for name, sc := range v.Sidecars {
		ct := sidecarOf[name]
		hasArgs("sidecar "+name, ct, sc.ExtraArgs...)
		if !equalYAML(ct["resources"], sc.Resources) {
			t.Errorf("sidecar %s: resources %v, want %v", name, ct["resources"], sc.Resources)
		}
	}
	for _, c := range []struct {
		name string
		ct   map[string]any
		res  any
	}{{"node/localnvme", nodeC["localnvme"], v.Node.Resources}, {"controller/localnvme", ctrlC["localnvme"], v.Controller.Resources}} {
		if !equalYAML(c.ct["resources"], c.res) {
			t.Errorf("%s: resources %v, want %v", c.name, c.ct["resources"], c.res)
		}
	}

	// host paths under the kubelet dir; non-root user and socket group
	vols := map[string]string{}
	for _, vol := range list(podSpec(ds)["volumes"]) {
		if hp, ok := vol["hostPath"].(map[string]any); ok {
			vols[vol["name"].(string)] = hp["path"].(string)
		}
	}
	for vol, want := range map[string]string{"plugin-dir": kd + "/plugins/localnvme.io", "kubelet-dir": kd, "registration-dir": kd + "/plugins_registry"} {
		if vols[vol] != want {
			t.Errorf("DaemonSet volume %s: hostPath %q, want %q", vol, vols[vol], want)
		}
	}
	for _, c := range []string{"csi-provisioner", "csi-snapshotter", "liveness-probe"} {
		sc, _ := nodeC[c]["securityContext"].(map[string]any)
		if !equalYAML(sc["runAsUser"], v.NonRootUser) || !equalYAML(sc["runAsGroup"], v.CSISocketGroup) {
			t.Errorf("node container %s: runAsUser %v runAsGroup %v, want %d %d", c, sc["runAsUser"], sc["runAsGroup"], v.NonRootUser, v.CSISocketGroup)
		}
	}
	psc, _ := podSpec(dep)["securityContext"].(map[string]any)
	for _, f := range []string{"runAsUser", "runAsGroup", "fsGroup"} {
		if !equalYAML(psc[f], v.NonRootUser) {
			t.Errorf("controller pod securityContext.%s %v, want %d", f, psc[f], v.NonRootUser)
		}
	}

	// scheduling and pod metadata of both workloads
	spec, _ := dep["spec"].(map[string]any)
	if !equalYAML(spec["replicas"], v.Controller.Replicas) {
		t.Errorf("controller replicas %v, want %d", spec["replicas"], v.Controller.Replicas)
	}
	for _, w := range []struct {
		o Object
		v workload
	}{{ds, v.Node.workload}, {dep, v.Controller.workload}} {
		ps := podSpec(w.o)
		for field, want := range map[string]any{
			"priorityClassName": w.v.PriorityClassName, "tolerations": w.v.Tolerations,
			"nodeSelector": w.v.NodeSelector, "affinity": w.v.Affinity,
		} {
			if !equalYAML(ps[field], want) {
				t.Errorf("%s: %s %v, want %v", w.o.Key(), field, ps[field], want)
			}
		}
		md := podMeta(w.o)
		for k, val := range w.v.PodLabels {
			if l, _ := md["labels"].(map[string]any); l[k] != val {
				t.Errorf("%s: pod label %s=%v, want %s", w.o.Key(), k, l[k], val)
			}
		}
		for k, val := range w.v.PodAnnotations {
			if a, _ := md["annotations"].(map[string]any); a[k] != val {
				t.Errorf("%s: pod annotation %s=%v, want %s", w.o.Key(), k, a[k], val)
			}
		}
	}

	// device classes: the ConfigMap holds exactly the values' classes, and the node accepts them
	cm := get("ConfigMap/" + ConfigMapName)
	data, _ := cm["data"].(map[string]any)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(data[ConfigKey].(string)), &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if !equalYAML(cfg["deviceClasses"], v.DeviceClasses) {
		t.Errorf("config.yaml deviceClasses %v, want %v", cfg["deviceClasses"], v.DeviceClasses)
	}
	if _, err := parseConfig(map[string]any{ConfigKey: cfg}, "chart"); err != nil {
		t.Error(err)
	}

	// StorageClasses: node-loss defaults and overrides, parameters, policies
	for _, sc := range v.StorageClasses {
		o := get("StorageClass/" + sc.Name)
		params, _ := o["parameters"].(map[string]any)
		onLoss, delay := v.NodeLoss.OnNodeLoss, v.NodeLoss.Delay
		if sc.OnNodeLoss != "" {
			onLoss = sc.OnNodeLoss
		}
		if sc.NodeLossDelay != "" {
			delay = sc.NodeLossDelay
		}
		want := map[string]string{"localnvme.io/on-node-loss": onLoss, "localnvme.io/node-loss-delay": delay,
			"localnvme.io/device-class": sc.DeviceClass, "csi.storage.k8s.io/fstype": sc.FSType}
		for k, val := range sc.Parameters {
			want[k] = val
		}
		for k, val := range want {
			if params[k] != val {
				t.Errorf("StorageClass %s: parameter %s=%v, want %q", sc.Name, k, params[k], val)
			}
		}
		checkMeta(t, o, sc.objectMeta)
		if sc.VolumeBindingMode != "" && o["volumeBindingMode"] != sc.VolumeBindingMode {
			t.Errorf("StorageClass %s: volumeBindingMode %v, want %s", sc.Name, o["volumeBindingMode"], sc.VolumeBindingMode)
		}
		if sc.AllowVolumeExpansion != nil && o["allowVolumeExpansion"] != *sc.AllowVolumeExpansion {
			t.Errorf("StorageClass %s: allowVolumeExpansion %v, want %v", sc.Name, o["allowVolumeExpansion"], *sc.AllowVolumeExpansion)
		}
		if sc.ReclaimPolicy != "" && o["reclaimPolicy"] != sc.ReclaimPolicy {
			t.Errorf("StorageClass %s: reclaimPolicy %v, want %s", sc.Name, o["reclaimPolicy"], sc.ReclaimPolicy)
		}
		if !equalYAML(o["mountOptions"], sc.MountOptions) {
			t.Errorf("StorageClass %s: mountOptions %v, want %v", sc.Name, o["mountOptions"], sc.MountOptions)
		}
		if ann := annotations(o)["storageclass.kubernetes.io/is-default-class"]; (ann == "true") != sc.IsDefault {
			t.Errorf("StorageClass %s: is-default-class %q, want %v", sc.Name, ann, sc.IsDefault)
		}
	}
	for _, vsc := range v.VolumeSnapshotClasses {
		o := get("VolumeSnapshotClass/" + vsc.Name)
		checkMeta(t, o, vsc.objectMeta)
		if vsc.DeletionPolicy != "" && o["deletionPolicy"] != vsc.DeletionPolicy {
			t.Errorf("VolumeSnapshotClass %s: deletionPolicy %v, want %s", vsc.Name, o["deletionPolicy"], vsc.DeletionPolicy)
		}
		if ann := annotations(o)["snapshot.storage.kubernetes.io/is-default-class"]; (ann == "true") != vsc.IsDefault {
			t.Errorf("VolumeSnapshotClass %s: is-default-class %q, want %v", vsc.Name, ann, vsc.IsDefault)
		}
	}
	if n := count(objs, "StorageClass"); n != len(v.StorageClasses) {
		t.Errorf("%d StorageClasses rendered, the values list %d", n, len(v.StorageClasses))
	}
	if n := count(objs, "VolumeSnapshotClass"); n != len(v.VolumeSnapshotClasses) {
		t.Errorf("%d VolumeSnapshotClasses rendered, the values list %d", n, len(v.VolumeSnapshotClasses))
	}

	// PodMonitor
	pm := v.Monitoring.PodMonitor
	if !pm.Enabled {
		t.Fatal("ci/all-options-values.yaml must enable monitoring.podMonitor")
	}
	o := get("PodMonitor/localnvme-node")
	md, _ := o["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	for k, val := range pm.Labels {
		if labels[k] != val {
			t.Errorf("PodMonitor label %s=%v, want %s", k, labels[k], val)
		}
	}
	eps := list(o["spec"].(map[string]any)["podMetricsEndpoints"])
	if len(eps) != 1 || eps[0]["interval"] != pm.Interval {
		t.Errorf("PodMonitor endpoints %v, want one with interval %s", eps, pm.Interval)
	}
}

func name(o Object) string {
	md, _ := o["metadata"].(map[string]any)
	n, _ := md["name"].(string)
	return n
}

func annotations(o Object) map[string]any {
	md, _ := o["metadata"].(map[string]any)
	a, _ := md["annotations"].(map[string]any)
	return a
}

func podMeta(o Object) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tpl, _ := spec["template"].(map[string]any)
	md, _ := tpl["metadata"].(map[string]any)
	return md
}

func podSpec(o Object) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tpl, _ := spec["template"].(map[string]any)
	ps, _ := tpl["spec"].(map[string]any)
	return ps
}

func containers(o Object) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, c := range list(podSpec(o)["containers"]) {
		m[c["name"].(string)] = c
	}
	return m
}

func list(v any) []map[string]any {
	var out []map[string]any
	l, _ := v.([]any)
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func count(objs []Object, kind string) int {
	n := 0
	for _, o := range objs {
		if o.Kind() == kind {
			n++
		}
	}
	return n
}

func itoa(i int) string {
	b, _ := yaml.Marshal(i)
	return strings.TrimSpace(string(b))
}

// equalYAML compares two values as their YAML (so typed and decoded values compare).
func equalYAML(a, b any) bool {
	return len(diffValues("", normalize(a), normalize(b))) == 0
}

func normalize(v any) any {
	b, err := yaml.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
