#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (func FuzzXxx(f *testing.F) in pkg/) for
# FUZZTIME each, one after another (go test fuzzes one target per invocation), and prints
# one line per target (package, execs, new interesting inputs, ok/FAIL) and a closing
# "fuzz: N targets, N failed". Exits 1 when a target failed: its output is printed, and go
# test has written the failing input to <package>/testdata/fuzz/<target>/ (commit it as a
# regression seed once the bug is fixed).
#
#   hack/fuzz.sh                        # FUZZTIME=5m per target (make fuzz)
#   FUZZTIME=2s hack/fuzz.sh            # the brief pass of make unit
#   FUZZ_MATCH=Report hack/fuzz.sh      # only targets whose name matches the regexp
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5m}
FUZZ_MATCH=${FUZZ_MATCH:-.}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# "pkg/lvm FuzzNames" for every fuzz target, sorted.
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' pkg |
	sed -E 's|^(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*).*|\1 \2|' | sort | awk -v m="$FUZZ_MATCH" '$2 ~ m')
if [[ -z $targets ]]; then
	echo "fuzz: no fuzz targets match '$FUZZ_MATCH'" >&2
	exit 1
fi

n=0 failed=0
while read -r dir name; do
	n=$((n + 1))
	result=ok
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "./$dir" </dev/null >"$log" 2>&1; then
		result=FAIL
		failed=$((failed + 1))
	fi
	# go test's progress lines: "fuzz: elapsed: 3s, execs: 1234 (411/sec), new interesting: 5 (total: 20)"
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	printf 'fuzz: %-20s %-12s execs %-10s new interesting %-5s %s\n' "$name" "$dir" "${execs:-0}" "${new:-0}" "$result"
	if [[ $result == FAIL ]]; then
		grep -vE '^fuzz: elapsed: ' "$log" | sed 's/^/    /'
	fi
done <<<"$targets"

echo "fuzz: $n targets, $failed failed"
[[ $failed -eq 0 ]]
