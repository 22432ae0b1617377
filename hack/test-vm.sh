#!/usr/bin/env bash
# test-vm.sh — build the real-device tests (tests/vm, build tag vmtest) and the localnvme
# binary, boot VMs with emulated NVMe drives (hack/vm/run.sh) and run them inside:
#   1. one VM: the device tests (safety, restart, crash points, disks CLI, NVMe
#      identity/health, metrics, a wedged VG and a suspended LV),
#      then csi-sanity in four configurations;
#   2. two VMs over the same drive images, the second with the drives attached in reverse
#      order: volumes written in the first must stage with their data in the second.
# Prints each csi-sanity configuration's Ginkgo summary, TestCrashPoints' "crashpoints: N
# passed, N failed" and a closing "vm: N passed, N failed" line, and fails unless everything
# ran and passed. The test binary is built with the tags vmtest and failpoints (crash points
# armed by LOCALNVME_FAILPOINT, pkg/failpoint); the localnvme binary without failpoints.
#
# usage: hack/test-vm.sh [--only demo | --run REGEX]
#   --run REGEX: only the device tests matching REGEX, in one VM with the same drives (no
#   csi-sanity, no reorder): for iterating on a test; make test always runs everything.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/_output}
MODE="test" RUN_RE=""
case ${1:-} in
--only) MODE=${2:-} ;;
--run) MODE=run RUN_RE=${2:?--run needs a test regex} ;;
esac
CONFIGS=(thick-mount-ext4 thick-block thin-mount-xfs thin-block)
# LNVCRIT0 reports SMART critical warning 0x05 (spare below threshold + reliability degraded).
CRIT=0x05
DRIVES=LNVTHICK0:3G,LNVTHICK1:3G,LNVTHIN0:6G:ns,LNVSPARE0:256M,LNVSPARE1:256M,LNVSPARE2:256M,LNVSPARE3:256M,LNVCRIT0:256M:crit=$CRIT,LNVDUPA:128M:ns:eui=0x00a0b0c0d0e0fdd1,LNVDUPB:128M:ns:eui=0x00a0b0c0d0e0fdd1
DEVICE_TESTS='TestCrashPoints|TestDisksCLI|TestStorageHealthReportsDegradedDrive|TestVolumeHealthReportsReadOnlyFilesystem|TestMetricsScrape|TestNVMeIdentityAndHealth|TestRestartAnswersFromMountTableAndLVM|TestRefusesNonEmptyDrives|TestStageRefusesRecreatedLV|TestNodeTouchesOnlyItsOwnVolume|TestNoStaleDataInNewVolumes|TestAmbiguousIdentityIsRefused|TestWedgedVolumeLeavesOthersAnswering|TestOneLockPerVolume'
REORDER_DRIVES=LNVTHICK0:1G,LNVTHICK1:1G,LNVTHIN0:2G:ns
REORDER_DRIVES_REVERSED=LNVTHIN0:2G:ns,LNVTHICK1:1G,LNVTHICK0:1G

work=$(mktemp -d "${TMPDIR:-/tmp}/localnvme-payload.XXXXXX")
trap 'rm -rf "$work"' EXIT
payload=$work/payload
mkdir -p "$payload"
echo "[test-vm] building tests/vm and localnvme (static)"
CGO_ENABLED=0 go test -c -tags vmtest,failpoints -o "$payload/vm.test" ./tests/vm
CGO_ENABLED=0 go build -ldflags "-X main.version=${VERSION:-vmtest}" -o "$payload/localnvme" ./cmd/localnvme

vm() { # name drives [run.sh flags...]; the payload is $payload
	local name=$1 drives=$2
	shift 2
	rm -rf "${OUT:?}/$name"
	"$ROOT/hack/vm/run.sh" --payload "$payload" --out "$OUT/$name" --name "$name" --drives "$drives" \
		--timeout "${VM_TIMEOUT:-4200}" --smp "${LOCALNVME_VM_SMP:-2}" "$@"
}

# crashpoints_summary LOG REGEX: echo TestCrashPoints' summary line; fail when the test was
# selected (REGEX matches its name) and printed none (it panicked or timed out).
crashpoints_summary() {
	local log=$1 re=$2 line
	[[ TestCrashPoints =~ ^($re)$ ]] || return 0
	line=$(grep -aEo 'crashpoints: [0-9]+ passed, [0-9]+ failed' "$log" 2>/dev/null | tail -1 || true)
	echo "${line:-crashpoints: NO SUMMARY (TestCrashPoints did not finish)}"
	[[ -n $line && $line == *", 0 failed" ]]
}

if [[ $MODE == demo ]]; then
	cat >"$payload/run.sh" <<'PAYLOAD'
#!/bin/sh
cd /payload
exec ./vm.test -test.run '^TestDemo$' -test.timeout 30m -logtostderr=false -log_file=/results/driver-demo.log -v=4
PAYLOAD
	chmod +x "$payload/run.sh"
	vm demo "$DRIVES"
	exit
fi

if [[ $MODE == run ]]; then
	cat >"$payload/run.sh" <<PAYLOAD
#!/bin/sh
cd /payload
exec ./vm.test -test.v -test.run '^($RUN_RE)\$' -nvme-crit-warning=$CRIT -test.timeout 30m -logtostderr=false -log_file=/results/driver-run.log -v=4
PAYLOAD
	chmod +x "$payload/run.sh"
	rc=0
	vm vm-run "$DRIVES" || rc=$?
	crashpoints_summary "$OUT/vm-run/output.log" "$RUN_RE" || rc=1
	exit $rc
fi

# 1. Device tests and csi-sanity.
{
	echo '#!/bin/sh'
	echo 'cd /payload; rc=0'
	echo "./vm.test -test.v -test.run '^($DEVICE_TESTS)\$' -nvme-crit-warning=$CRIT -test.timeout 45m -logtostderr=false -log_file=/results/driver-device.log -v=4 || rc=1"
	for c in "${CONFIGS[@]}"; do
		echo "echo '@@SANITY-BEGIN $c'"
		echo "SANITY_CONFIG=$c ./vm.test -test.run '^TestSanity\$' -test.timeout 60m -ginkgo.no-color -logtostderr=false -log_file=/results/driver-$c.log -v=4 || rc=1"
		echo "echo '@@SANITY-END $c'"
	done
	# shellcheck disable=SC2016 # expands in the VM
	echo 'exit $rc'
} >"$payload/run.sh"
chmod +x "$payload/run.sh"
rc=0
vm vm-test "$DRIVES" || rc=$?

# 2. Reorder: same drives, second boot in reverse order.
images=$work/images
phase() { # n drives
	cat >"$payload/run.sh" <<PAYLOAD
#!/bin/sh
cd /payload
exec ./vm.test -test.v -test.run '^TestReorderPhase$1\$' -test.timeout 10m -logtostderr=false -log_file=/results/driver-reorder$1.log -v=4
PAYLOAD
	chmod +x "$payload/run.sh"
	vm "reorder$1" "$2" --images "$images"
}
rrc=0
phase 1 "$REORDER_DRIVES" || rrc=$?
if [[ $rrc -eq 0 ]]; then
	cp "$OUT/reorder1/reorder.json" "$payload/reorder.json"
	phase 2 "$REORDER_DRIVES_REVERSED" || rrc=$?
fi

log=$OUT/vm-test/output.log
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
crash_ok=1
crashpoints_summary "$log" "$DEVICE_TESTS" || crash_ok=0
echo
logs=("$log")
for p in 1 2; do [[ -f $OUT/reorder$p/output.log ]] && logs+=("$OUT/reorder$p/output.log"); done
grep -hE '^--- (PASS|FAIL)' "${logs[@]}" | grep -v 'TestSanity' || true
# One line for CI: the Go tests run with -v, plus one per sanity configuration.
passed=$(($(grep -hE '^--- PASS: Test' "${logs[@]}" | grep -vc 'TestSanity' || true) + sanity_ok))
failed=$(($(grep -hE '^--- FAIL: Test' "${logs[@]}" | grep -vc 'TestSanity' || true) + ${#CONFIGS[@]} - sanity_ok))
if [[ $((rc + rrc)) -ne 0 && $failed -eq 0 ]]; then failed=1; fi # a VM itself failed
echo "vm: $passed passed, $failed failed"
if [[ $rc -ne 0 || $rrc -ne 0 || $missing -ne 0 || $crash_ok -ne 1 ]]; then
	echo "[test-vm] FAIL (device+sanity VM rc=$rc, reorder rc=$rrc, sanity complete=$((1 - missing)), crash points ok=$crash_ok); logs in $OUT" >&2
	exit 1
fi
echo "[test-vm] PASS; logs in $OUT/{vm-test,reorder1,reorder2}"
