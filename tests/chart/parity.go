// Package chart compares the objects the Helm chart (deploy/helm/localnvme) renders with
// those of the kustomize install (deploy/): the parity test of `make chart` (hack/chart.sh)
// renders both with the pinned helm and kustomize, and the tests of this package (build tag
// chart) compare the two streams with Compare.
//
// The comparison is of whole objects, not of chosen fields: every field of every object
// must be equal, except for what the chart adds as a Helm chart and nothing else: Helm's
// standard labels on the objects (ChartLabels) and the config checksum on the node pods
// (ChartPodAnnotations). A pod's containers and volumes are compared as sets (by name);
// every other list, args and env included, in order. ConfigMap data is compared as YAML (the kustomize file carries
// comments, the chart renders the values with toYaml) and, for the device classes, as the
// node plugin parses it (pkg/config).
package chart

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/localnvme/localnvme/pkg/config"
)

// ChartLabels are the labels the chart may add to an object's metadata.labels: Helm's
// standard labels. Any other extra label is a difference.
var ChartLabels = map[string]bool{
	"helm.sh/chart":                true,
	"app.kubernetes.io/instance":   true,
	"app.kubernetes.io/managed-by": true,
	"app.kubernetes.io/version":    true,
}

// ChartPodAnnotations are the annotations the chart may add to a pod template: the checksum
// of the device-class ConfigMap, which rolls the node pods when the classes change.
var ChartPodAnnotations = map[string]bool{
	"checksum/config": true,
}

// ConfigMapName and ConfigKey name the device-class configuration.
const (
	ConfigMapName = "localnvme-config"
	ConfigKey     = "config.yaml"
)

// Object is one decoded manifest.
type Object map[string]any

// Key identifies an object: apiVersion, kind, namespace and name.
func (o Object) Key() string {
	md, _ := o["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	return fmt.Sprintf("%v %v %s/%s", o["apiVersion"], o["kind"], ns, name)
}

// Kind is the object's kind.
func (o Object) Kind() string {
	k, _ := o["kind"].(string)
	return k
}

// Parse decodes a multi-document YAML stream (kustomize build or helm template output).
// Empty documents (only comments, a lone ---) are skipped; a document that is not a
// Kubernetes object (no apiVersion, kind or metadata.name) is an error, as are two objects
// with the same Key and a key set twice in one map.
func Parse(stream []byte) ([]Object, error) {
	var objs []Object
	seen := map[string]bool{}
	for i, doc := range splitDocuments(stream) {
		var o Object
		// Strict: a key twice in one map (which the API server refuses) is an error.
		if err := yaml.UnmarshalStrict(doc, &o); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(o) == 0 {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		if o["apiVersion"] == nil || o["kind"] == nil || md == nil || md["name"] == nil {
			return nil, fmt.Errorf("document %d is not a Kubernetes object (apiVersion, kind, metadata.name): %.200s", i+1, doc)
		}
		if seen[o.Key()] {
			return nil, fmt.Errorf("document %d: %s appears twice", i+1, o.Key())
		}
		seen[o.Key()] = true
		objs = append(objs, o)
	}
	return objs, nil
}

// splitDocuments splits a YAML stream at its "---" lines.
func splitDocuments(stream []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(stream, []byte("\n")) {
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// Compare returns every difference between the kustomize objects (want) and the chart's
// (got), one line each, sorted: objects only on one side, then field differences as
// "<object key>: <path>: kustomize <value>, chart <value>". None means parity.
func Compare(want, got []Object) []string {
	var diffs []string
	gotBy := map[string]Object{}
	for _, o := range got {
		gotBy[o.Key()] = o
	}
	wantBy := map[string]bool{}
	for _, w := range want {
		k := w.Key()
		wantBy[k] = true
		g, ok := gotBy[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in kustomize", k))
			continue
		}
		diffs = append(diffs, compareObject(w, g)...)
	}
	for _, g := range got {
		if !wantBy[g.Key()] {
			diffs = append(diffs, fmt.Sprintf("%s: only in the chart", g.Key()))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// compareObject compares one pair after removing what the chart may add.
func compareObject(want, got Object) []string {
	key := want.Key()
	var diffs []string
	w, g := deepCopy(want).(map[string]any), deepCopy(got).(map[string]any)
	dropAllowed(w, g, []string{"metadata", "labels"}, ChartLabels)
	dropAllowed(w, g, []string{"spec", "template", "metadata", "annotations"}, ChartPodAnnotations)
	for _, m := range []map[string]any{w, g} {
		sortByName(m, "spec", "template", "spec", "containers")
		sortByName(m, "spec", "template", "spec", "volumes")
	}
	if want.Kind() == "ConfigMap" {
		for _, d := range normalizeConfigMap(w, g) {
			diffs = append(diffs, key+": "+d)
		}
	}
	for _, d := range diffValues("", w, g) {
		diffs = append(diffs, key+": "+d)
	}
	return diffs
}

// dropAllowed removes from got the keys of the map at path that want lacks and allowed
// permits (any other extra key stays, and diffValues reports it), and removes that map when
// it is left empty and want has none.
func dropAllowed(want, got map[string]any, path []string, allowed map[string]bool) {
	gm, gparent := lookupMap(got, path)
	if gm == nil {
		return
	}
	wm, _ := lookupMap(want, path)
	for k := range gm {
		if _, ok := wm[k]; !ok && allowed[k] {
			delete(gm, k)
		}
	}
	if len(gm) == 0 && wm == nil {
		delete(gparent, path[len(path)-1])
	}
}

// sortByName sorts the list at path by the elements' names, when every element has a
// distinct one. The pod's containers and volumes are sets: kustomize's strategic merge puts
// the containers and volumes an overlay adds before the base's, the chart after them.
func sortByName(m map[string]any, path ...string) {
	parent, _ := lookupMap(m, path[:len(path)-1])
	l, ok := parent[path[len(path)-1]].([]any)
	if !ok {
		return
	}
	names := map[string]bool{}
	for _, e := range l {
		em, _ := e.(map[string]any)
		n, ok := em["name"].(string)
		if !ok || names[n] {
			return
		}
		names[n] = true
	}
	sort.SliceStable(l, func(i, j int) bool {
		return l[i].(map[string]any)["name"].(string) < l[j].(map[string]any)["name"].(string)
	})
}

// lookupMap returns the map at path in m and its parent (nil when absent).
func lookupMap(m map[string]any, path []string) (cur, parent map[string]any) {
	cur = m
	for _, p := range path {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, nil
		}
		parent, cur = cur, next
	}
	return cur, parent
}

// normalizeConfigMap replaces every data value by its decoded YAML on both sides (so comments,
// key order and quoting do not count), and checks that the device-class configuration parses
// as the node plugin parses it, to the same configuration on both sides.
func normalizeConfigMap(want, got map[string]any) []string {
	var diffs []string
	wd, _ := want["data"].(map[string]any)
	gd, _ := got["data"].(map[string]any)
	for _, side := range []struct {
		name string
		data map[string]any
	}{{"kustomize", wd}, {"chart", gd}} {
		for k, v := range side.data {
			s, ok := v.(string)
			if !ok {
				continue
			}
			var decoded any
			if err := yaml.Unmarshal([]byte(s), &decoded); err != nil {
				diffs = append(diffs, fmt.Sprintf("data.%s: the %s side is not YAML: %v", k, side.name, err))
				continue
			}
			side.data[k] = decoded
		}
	}
	md, _ := want["metadata"].(map[string]any)
	if md["name"] != ConfigMapName {
		return diffs
	}
	wc, werr := parseConfig(wd, "kustomize")
	gc, gerr := parseConfig(gd, "chart")
	for _, err := range []error{werr, gerr} {
		if err != nil {
			diffs = append(diffs, err.Error())
		}
	}
	if werr == nil && gerr == nil && !reflect.DeepEqual(wc, gc) {
		diffs = append(diffs, fmt.Sprintf("data.%s: the node plugin reads different configurations: kustomize %+v, chart %+v", ConfigKey, *wc, *gc))
	}
	return diffs
}

// parseConfig parses the (already decoded) config.yaml of a ConfigMap with pkg/config.
func parseConfig(data map[string]any, side string) (*config.Config, error) {
	v, ok := data[ConfigKey]
	if !ok {
		return nil, fmt.Errorf("data.%s: missing on the %s side", ConfigKey, side)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("data.%s (%s): %w", ConfigKey, side, err)
	}
	c, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("data.%s: the node plugin refuses the %s side: %w", ConfigKey, side, err)
	}
	return c, nil
}

// diffValues reports where got differs from want, by path.
func diffValues(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{mismatch(path, want, got)}
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var diffs []string
		for _, k := range sorted {
			p := join(path, k)
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !gok:
				diffs = append(diffs, fmt.Sprintf("%s: kustomize %s, chart has none", p, show(wv)))
			case !wok:
				diffs = append(diffs, fmt.Sprintf("%s: kustomize has none, chart %s", p, show(gv)))
			default:
				diffs = append(diffs, diffValues(p, wv, gv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{mismatch(path, want, got)}
		}
		var diffs []string
		for i := 0; i < len(w) || i < len(g); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			if i < len(w) {
				p = fmt.Sprintf("%s[%s]", path, elemName(w[i], i))
			}
			switch {
			case i >= len(g):
				diffs = append(diffs, fmt.Sprintf("%s: kustomize %s, chart has none", p, show(w[i])))
			case i >= len(w):
				diffs = append(diffs, fmt.Sprintf("%s[%s]: kustomize has none, chart %s", path, elemName(g[i], i), show(g[i])))
			default:
				diffs = append(diffs, diffValues(p, w[i], g[i])...)
			}
		}
		return diffs
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{mismatch(path, want, got)}
		}
		return nil
	}
}

// elemName labels a list element by its name field when it has one (containers, volumes,
// env, ports), else by its index.
func elemName(v any, i int) string {
	if m, ok := v.(map[string]any); ok {
		if n, ok := m["name"].(string); ok {
			return n
		}
	}
	return fmt.Sprint(i)
}

func mismatch(path string, want, got any) string {
	return fmt.Sprintf("%s: kustomize %s, chart %s", path, show(want), show(got))
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// show renders a value compactly for a difference line.
func show(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	s := strings.TrimSpace(string(b))
	if strings.Contains(s, "\n") {
		s = strings.ReplaceAll(s, "\n", "; ")
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// deepCopy copies decoded YAML (maps, slices, scalars).
func deepCopy(v any) any {
	switch t := v.(type) {
	case Object:
		return deepCopy(map[string]any(t))
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}
