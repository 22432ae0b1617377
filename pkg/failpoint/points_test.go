package failpoint

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestPointsAreUniqueAndDocumented(t *testing.T) {
	design, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[a-z]+(-[a-z0-9]+)+$`)
	seen := map[string]bool{}
	for _, p := range Points {
		if seen[p] {
			t.Errorf("point %q listed twice", p)
		}
		seen[p] = true
		if !valid.MatchString(p) {
			t.Errorf("point %q: not a lower-case hyphenated name", p)
		}
		// each point has a row in the table of §10 "Crash points"
		if !strings.Contains(string(design), "| `"+p+"` |") {
			t.Errorf("point %q has no row in docs/design.md's crash point table", p)
		}
		if !known(p) {
			t.Errorf("known(%q) = false", p)
		}
	}
	if known("no-such-point") {
		t.Error("known accepts an unknown name")
	}
}
