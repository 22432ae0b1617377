#!/usr/bin/env bash
# test-vm.sh — build the real-device tests (tests/vm, build tag vmtest), boot the VM with
# emulated NVMe drives (hack/vm/run.sh) and run them inside: the safety tests, then
# csi-sanity in four configurations. Prints each configuration's Ginkgo summary and fails
# unless every configuration ran and passed.
#
# usage: hack/test-vm.sh [--only demo]
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/_output}
MODE=${1:-test}
[[ ${1:-} == --only ]] && MODE=$2
CONFIGS=(thick-mount-ext4 thick-block thin-mount-xfs thin-block)
DRIVES=LNVTHICK0:3G,LNVTHICK1:3G,LNVTHIN0:6G:ns,LNVSPARE0:256M,LNVSPARE1:256M

payload=$(mktemp -d "${TMPDIR:-/tmp}/localnvme-payload.XXXXXX")
trap 'rm -rf "$payload"' EXIT
echo "[test-vm] building tests/vm (static)"
CGO_ENABLED=0 go test -c -tags vmtest -o "$payload/vm.test" ./tests/vm

if [[ $MODE == demo ]]; then
	cat >"$payload/run.sh" <<'PAYLOAD'
#!/bin/sh
cd /payload
exec ./vm.test -test.run '^TestDemo$' -test.timeout 30m -logtostderr=false -log_file=/results/driver-demo.log -v=4
PAYLOAD
	name=demo
else
	{
		echo '#!/bin/sh'
		echo 'cd /payload; rc=0'
		echo "./vm.test -test.v -test.run '^(TestRefusesNonEmptyDrives|TestStageRefusesRecreatedLV|TestRestartAnswersFromMountTableAndLVM)\$' -test.timeout 20m -logtostderr=false -log_file=/results/driver-safety.log -v=4 || rc=1"
		for c in "${CONFIGS[@]}"; do
			echo "echo '@@SANITY-BEGIN $c'"
			echo "SANITY_CONFIG=$c ./vm.test -test.run '^TestSanity\$' -test.timeout 60m -ginkgo.no-color -logtostderr=false -log_file=/results/driver-$c.log -v=4 || rc=1"
			echo "echo '@@SANITY-END $c'"
		done
		echo 'exit $rc'
	} >"$payload/run.sh"
	name=vm-test
fi
chmod +x "$payload/run.sh"

rm -rf "$OUT/$name"
rc=0
"$ROOT/hack/vm/run.sh" --payload "$payload" --out "$OUT/$name" --name "$name" --drives "$DRIVES" --timeout "${VM_TIMEOUT:-4200}" || rc=$?
[[ $MODE == demo ]] && exit $rc

log=$OUT/$name/output.log
[[ -f $log ]] || { echo "[test-vm] FAIL: no output.log from the VM" >&2; exit 1; }
echo
echo "== csi-sanity summaries (real LVM on emulated NVMe)"
missing=0 sanity_ok=0
for c in "${CONFIGS[@]}"; do
	sect=$(sed -n "/@@SANITY-BEGIN $c\$/,/@@SANITY-END $c\$/p" "$log")
	ran=$(grep -Eo 'Ran [0-9]+ of [0-9]+ Specs' <<<"$sect" | tail -1 || true)
	sum=$(grep -Eo '[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped' <<<"$sect" | tail -1 || true)
	printf '%-18s %s — %s\n' "$c" "${ran:-NO SUMMARY}" "${sum:-NO SUMMARY}"
	if [[ -z $ran || -z $sum ]] || ! grep -q "@@SANITY config=$c passed=true" <<<"$sect"; then missing=1; else sanity_ok=$((sanity_ok + 1)); fi
done
echo
grep -E '^(--- |ok|FAIL|PASS)' "$log" | grep -v '^--- PASS: TestSanity' || true
# One line for CI: the Go tests run with -v (safety, restart) plus one per sanity configuration.
passed=$(($(grep '^--- PASS: Test' "$log" | grep -vc 'TestSanity' || true) + sanity_ok))
failed=$(($(grep '^--- FAIL: Test' "$log" | grep -vc 'TestSanity' || true) + ${#CONFIGS[@]} - sanity_ok))
echo "vm: $passed passed, $failed failed"
if [[ $rc -ne 0 || $missing -ne 0 ]]; then
	echo "[test-vm] FAIL (vm rc=$rc, sanity complete=$((1 - missing))); logs in $OUT/$name" >&2
	exit 1
fi
echo "[test-vm] PASS; logs in $OUT/$name"
