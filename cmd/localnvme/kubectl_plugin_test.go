package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubectlPlugin runs deploy/kubectl-plugin/kubectl-localnvme against a scripted fake
// kubectl: it must look up exactly one node pod on the named node and exec
// `localnvme disks …` in it with the arguments passed through.
func TestKubectlPlugin(t *testing.T) {
	plugin, err := filepath.Abs("../../deploy/kubectl-plugin/kubectl-localnvme")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, pods string
		args       []string
		wantRC     int
		wantCalls  []string
		wantErr    string
	}{
		{
			name: "list on a node", pods: "localnvme-node-abcde",
			args:   []string{"--node", "worker-1", "disks", "list", "-o", "json"},
			wantRC: 0,
			wantCalls: []string{
				"get pods -n localnvme-system -l app.kubernetes.io/name=localnvme,app.kubernetes.io/component=node --field-selector spec.nodeName=worker-1 -o jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
				"exec -i -n localnvme-system localnvme-node-abcde -c localnvme -- localnvme disks list -o json",
			},
		},
		{
			name: "adopt with force, other namespace", pods: "p1",
			args:      []string{"-n", "storage", "--node", "n2", "disks", "adopt", "--class", "fast", "--force-wipe", "eui64:00a0", "eui64:00a0"},
			wantRC:    0,
			wantCalls: []string{"", "exec -i -n storage p1 -c localnvme -- localnvme disks adopt --class fast --force-wipe eui64:00a0 eui64:00a0"},
		},
		{name: "no pod on the node", pods: "", args: []string{"--node", "n3", "disks", "list"}, wantRC: 1, wantErr: "found 0 localnvme node pods on node n3"},
		{name: "two pods", pods: "a\nb", args: []string{"--node", "n3", "disks", "list"}, wantRC: 1, wantErr: "found 2"},
		{name: "no node", args: []string{"disks", "list"}, wantRC: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			fake := filepath.Join(dir, "kubectl")
			script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + calls + "\nif [ \"$1\" = get ]; then printf '" + strings.ReplaceAll(tt.pods, "\n", "\\n") + "'; fi\n"
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(plugin, tt.args...)
			cmd.Env = append(os.Environ(), "KUBECTL="+fake)
			out, err := cmd.CombinedOutput()
			rc := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				rc = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if rc != tt.wantRC || !strings.Contains(string(out), tt.wantErr) {
				t.Fatalf("rc=%d out=%q, want rc=%d containing %q", rc, out, tt.wantRC, tt.wantErr)
			}
			b, _ := os.ReadFile(calls)
			got := strings.Split(strings.TrimSpace(string(b)), "\n")
			for i, want := range tt.wantCalls {
				if want == "" {
					continue
				}
				if i >= len(got) || got[i] != want {
					t.Errorf("kubectl call %d = %q, want %q (all: %q)", i, at(got, i), want, got)
				}
			}
		})
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}
