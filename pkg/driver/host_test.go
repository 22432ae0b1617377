package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	utilexec "k8s.io/utils/exec"
)

func TestOSHostInspectAndRemoveTarget(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := func(s string) string { return filepath.Join(root, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(p("empty"), 0o750))
	must(os.Mkdir(p("full"), 0o750))
	must(os.WriteFile(p("full/data"), []byte("x"), 0o640))
	must(os.WriteFile(p("emptyfile"), nil, 0o640))
	must(os.WriteFile(p("file"), []byte("hello"), 0o640))
	must(os.Symlink("/etc", p("to-etc")))
	must(os.Symlink(p("nowhere"), p("dangling")))
	must(os.Symlink(p("empty"), p("linkdir")))

	h := NewOSHost(nil)
	tests := []struct {
		path, wantPath string
		kind           TargetKind
		what           string
		removable      bool
	}{
		{p("absent"), p("absent"), TargetAbsent, "absent", true},
		{p("linkdir/a/b"), p("empty/a/b"), TargetAbsent, "absent", true},
		{p("linkdir"), p("empty"), TargetEmptyDir, "an empty directory", true}, // removes the directory it resolves to, not the link

		{p("empty"), p("empty"), TargetEmptyDir, "an empty directory", true},
		{p("full"), p("full"), TargetOther, "a directory with entries", false},
		{p("emptyfile"), p("emptyfile"), TargetEmptyFile, "an empty regular file", true},
		{p("file"), p("file"), TargetOther, "a 5-byte regular file", false},
		{p("to-etc"), "/etc", TargetOther, "a directory with entries", false},
		{p("dangling"), p("dangling"), TargetOther, "a symlink to a missing path", false},
	}
	for _, tt := range tests {
		got, err := h.Inspect(tt.path)
		if err != nil {
			t.Errorf("Inspect(%s): %v", tt.path, err)
			continue
		}
		if got.Path != tt.wantPath || got.Kind != tt.kind || got.What != tt.what {
			t.Errorf("Inspect(%s) = %+v, want %s kind %d %q", tt.path, got, tt.wantPath, tt.kind, tt.what)
		}
	}
	// RemoveTarget: only what MakeTarget makes goes
	for _, tt := range tests {
		if tt.wantPath == "/etc" {
			continue // never even try
		}
		err := h.RemoveTarget(tt.path)
		if tt.removable != (err == nil) {
			t.Errorf("RemoveTarget(%s) = %v, removable %v", tt.path, err, tt.removable)
		}
	}
	for _, kept := range []string{"full/data", "file", "dangling", "linkdir"} {
		if _, err := os.Lstat(p(kept)); err != nil {
			t.Errorf("%s was removed: %v", kept, err)
		}
	}
	for _, gone := range []string{"empty", "emptyfile"} {
		if _, err := os.Lstat(p(gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	if _, err := os.Stat("/etc/hostname"); err != nil && !os.IsNotExist(err) {
		t.Errorf("/etc: %v", err)
	}
}

// ctxExec makes mount-utils' ResizeFs (which calls Command, not CommandContext) honour the
// caller's context: a command that would run for a minute is killed when the context ends.
func TestResizeCommandsHonourTheContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := ctxExec{utilexec.New(), ctx}.Command("sleep", "60").Run()
	if err == nil {
		t.Fatal("sleep 60 under a 200 ms context succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the command ran %v after its context ended", d)
	}
}

func TestUnescapeMountInfo(t *testing.T) {
	for in, want := range map[string]string{
		`/var/lib/kubelet`:         `/var/lib/kubelet`,
		`/mnt/a\040b`:              `/mnt/a b`,
		`/mnt/\011tab\012nl\134bs`: "/mnt/\ttab\nnl\\bs",
		`/mnt/\134040`:             `/mnt/\040`,
		`/mnt/\400 \04 \x41 \`:     `/mnt/\400 \04 \x41 \`,
		`\040`:                     ` `,
		`/mnt/\0400`:               `/mnt/ 0`,
	} {
		if got := unescapeMountInfo(in); got != want {
			t.Errorf("unescapeMountInfo(%q) = %q, want %q", in, got, want)
		}
	}
}
