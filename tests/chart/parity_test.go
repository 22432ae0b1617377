package chart

import (
	"strings"
	"testing"
)

// kustomizeStream is a small kustomize-style rendering: a ConfigMap with comments, a
// DaemonSet and a cluster-scoped object.
const kustomizeStream = `apiVersion: v1
kind: ConfigMap
metadata:
  name: localnvme-config
  namespace: ns
  labels:
    app.kubernetes.io/name: localnvme
data:
  config.yaml: |
    # a comment
    deviceClasses:
    - name: fast            # a class
      volumeGroup: localnvme-fast
      type: thick
      devices:
      - serialPattern: "LNV*"
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: localnvme-node
  namespace: ns
  labels:
    app.kubernetes.io/name: localnvme
    app.kubernetes.io/component: node
spec:
  template:
    metadata:
      labels:
        app.kubernetes.io/component: node
    spec:
      containers:
      - name: localnvme
        image: img:v1
        args: [node, --a=1, -v=2]
      - name: csi-provisioner
        image: prov:v6
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: localnvme.io
spec:
  attachRequired: false
`

// chartStream is the same objects as the chart renders them: Helm's labels, a checksum
// annotation, the config rendered by toYaml (other key order, no comments), other document
// separators and comments.
const chartStream = `---
# Source: localnvme/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: localnvme-config
  namespace: ns
  labels:
    app.kubernetes.io/name: localnvme
    helm.sh/chart: localnvme-0.3.0
    app.kubernetes.io/managed-by: Helm
data:
  config.yaml: |
    deviceClasses:
    - devices:
      - serialPattern: LNV*
      name: fast
      type: thick
      volumeGroup: localnvme-fast
---
# Source: localnvme/templates/node-daemonset.yaml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: localnvme-node
  namespace: ns
  labels:
    app.kubernetes.io/name: localnvme
    app.kubernetes.io/component: node
    app.kubernetes.io/instance: localnvme
spec:
  template:
    metadata:
      labels:
        app.kubernetes.io/component: node
      annotations:
        checksum/config: abc
    spec:
      containers:
      - name: localnvme
        image: img:v1
        args:
        - node
        - --a=1
        - -v=2
      - name: csi-provisioner
        image: prov:v6
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: localnvme.io
  labels:
    app.kubernetes.io/version: v1
spec:
  attachRequired: false
`

func mustParse(t *testing.T, s string) []Object {
	t.Helper()
	objs, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestParseSkipsEmptyDocuments(t *testing.T) {
	objs := mustParse(t, chartStream)
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key())
	}
	want := "v1 ConfigMap ns/localnvme-config|apps/v1 DaemonSet ns/localnvme-node|storage.k8s.io/v1 CSIDriver /localnvme.io"
	if got := strings.Join(keys, "|"); got != want {
		t.Fatalf("keys %s, want %s", got, want)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, s := range map[string]string{
		"not an object": "foo: bar\n",
		"duplicate":     "apiVersion: v1\nkind: A\nmetadata: {name: x}\n---\napiVersion: v1\nkind: A\nmetadata: {name: x}\n",
		"not YAML":      "apiVersion: [\n",
		"key twice":     "apiVersion: v1\nkind: A\nmetadata: {name: x}\nparameters:\n  a: \"1\"\n  a: \"2\"\n",
	} {
		if _, err := Parse([]byte(s)); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
}

// The chart's additions (Helm labels, the checksum annotation, YAML formatting of the
// config) are not differences.
func TestCompareEqual(t *testing.T) {
	if d := Compare(mustParse(t, kustomizeStream), mustParse(t, chartStream)); len(d) != 0 {
		t.Fatalf("differences in equal renderings:\n%s", strings.Join(d, "\n"))
	}
}

// Each kind of drift is reported, naming the object and the path.
func TestCompareReportsDrift(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"changed arg", "- --a=1\n", "- --a=2\n", "apps/v1 DaemonSet ns/localnvme-node: spec.template.spec.containers[localnvme].args[1]: kustomize --a=1, chart --a=2"},
		{"dropped arg", "        - -v=2\n", "", "containers[localnvme].args[2]: kustomize -v=2, chart has none"},
		{"image", "image: prov:v6", "image: prov:v7", "containers[csi-provisioner].image: kustomize prov:v6, chart prov:v7"},
		{"renamed container", "      - name: localnvme\n        image: img:v1", "      - name: localnvmeX\n        image: img:v1", "containers[localnvme].name: kustomize localnvme, chart localnvmeX"},
		{"extra label not Helm's", "app.kubernetes.io/instance: localnvme", "app.kubernetes.io/part-of: x", "metadata.labels.app.kubernetes.io/part-of: kustomize has none, chart x"},
		{"changed label", "    app.kubernetes.io/component: node\n    app.kubernetes.io/instance", "    app.kubernetes.io/component: nodes\n    app.kubernetes.io/instance", "metadata.labels.app.kubernetes.io/component: kustomize node, chart nodes"},
		{"extra pod annotation", "checksum/config: abc", "other: abc", "spec.template.metadata.annotations: kustomize has none, chart other: abc"},
		{"config value", "volumeGroup: localnvme-fast", "volumeGroup: localnvme-fast2", "data.config.yaml.deviceClasses[fast].volumeGroup: kustomize localnvme-fast, chart localnvme-fast2"},
		{"config the node refuses", "type: thick", "type: thik", "the node plugin refuses the chart side"},
		{"missing object", "kind: CSIDriver", "kind: CSIDriverX", "storage.k8s.io/v1 CSIDriver /localnvme.io: only in kustomize"},
		{"field type", "attachRequired: false\n", "attachRequired: \"false\"\n", "spec.attachRequired: kustomize false, chart \"false\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(chartStream, tc.old) {
				t.Fatalf("the fixture lacks %q", tc.old)
			}
			drifted := strings.Replace(chartStream, tc.old, tc.new, 1)
			d := Compare(mustParse(t, kustomizeStream), mustParse(t, drifted))
			all := strings.Join(d, "\n")
			if !strings.Contains(all, tc.want) {
				t.Fatalf("differences:\n%s\nwant one containing %q", all, tc.want)
			}
		})
	}
}

// A pod's containers and volumes are sets: their order does not matter (kustomize puts an
// overlay's containers first).
func TestCompareContainerOrder(t *testing.T) {
	swapped := strings.Replace(chartStream, `      - name: localnvme
        image: img:v1
        args:
        - node
        - --a=1
        - -v=2
      - name: csi-provisioner
        image: prov:v6
`, `      - name: csi-provisioner
        image: prov:v6
      - name: localnvme
        image: img:v1
        args:
        - node
        - --a=1
        - -v=2
`, 1)
	if swapped == chartStream {
		t.Fatal("the fixture's containers were not swapped")
	}
	if d := Compare(mustParse(t, kustomizeStream), mustParse(t, swapped)); len(d) != 0 {
		t.Fatalf("differences for swapped containers:\n%s", strings.Join(d, "\n"))
	}
}

// An object only the chart renders is reported.
func TestCompareOnlyInChart(t *testing.T) {
	extra := chartStream + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ns\n"
	d := Compare(mustParse(t, kustomizeStream), mustParse(t, extra))
	if len(d) != 1 || d[0] != "v1 Secret ns/s: only in the chart" {
		t.Fatalf("differences %q, want the Secret only in the chart", d)
	}
}

// Compare does not change its inputs (the allowed additions are removed from copies).
func TestCompareKeepsInputs(t *testing.T) {
	got := mustParse(t, chartStream)
	Compare(mustParse(t, kustomizeStream), got)
	md := got[1]["metadata"].(map[string]any)
	if _, ok := md["labels"].(map[string]any)["app.kubernetes.io/instance"]; !ok {
		t.Fatal("Compare removed a label from its input")
	}
}
