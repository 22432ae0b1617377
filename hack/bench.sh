#!/usr/bin/env bash
# bench.sh — `make bench`: the driver against the bare LVM and filesystem tools, in one qemu VM
# (hack/vm/run.sh) with emulated NVMe drives. Builds the benchmark (tests/bench, build tag
# vmbench) and the localnvme binary, stages fio and its libraries into the payload, boots ONE
# VM, and leaves results.json and results.md (plus the VM's console and logs) in
# $OUT/bench (default _output/bench). Prints the Markdown table at the end.
# docs/performance.md describes the method.
#
# Knobs (environment; the defaults are the full run of issue 10):
#   BENCH_LEVELS=10,100,500,1000  LVs per device class at which everything is measured
#   BENCH_N=20                    iterations per measurement (driver and bare alternate)
#   BENCH_N_SLOW=3                iterations of the slow rows: thick clone, concurrent
#                                 create batch, restart
#   BENCH_SIZE_MIB=256            volume size for create/delete/snapshot/clone(thin)
#   BENCH_STAGE_MIB=512           volume size for stage/publish and expand (xfs needs ≥ 300)
#   BENCH_CLONE_MIB=1024          thick clone source (reported per GiB)
#   BENCH_CONCURRENCY=50          concurrent CreateVolume calls (vs as many serial lvcreates)
#   BENCH_PAGE=100                ListVolumes page size (list/paged)
#   BENCH_FIO_SECONDS=10 BENCH_FIO_N=3 BENCH_FIO_MIB=256   fio runs (BENCH_FIO_STAGE=0: none)
#   BENCH_FILL_ACTIVE=1           filler LVs active (0: created with -an)
#   BENCH_ONLY=REGEX              only the measurement groups matching REGEX (fio, create+delete/thick,
#                                 snapshot/thin, clone/thick, expand/thin-xfs, stage+publish/xfs,
#                                 list, capacity, concurrent-create, restart, ...)
#   BENCH_VM_TIMEOUT=43200 BENCH_VM_MEM=2048 LOCALNVME_VM_SMP=2
# Quick look: BENCH_LEVELS=10 BENCH_N=3 BENCH_N_SLOW=1 make bench
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/_output}
cd "$ROOT"
# Drives: one per class kind (the thick one sized for 1,000 4 MiB fillers plus a 1 GiB clone
# and its COW snapshot), a raw namespace no class uses for fio's baseline.
DRIVES=${BENCH_DRIVES:-LNVBTHICK0:10G,LNVBSTR0:5G,LNVBSTR1:5G,LNVBTHIN0:8G:ns,LNVBRAW0:2G}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}

work=$(mktemp -d "${TMPDIR:-/tmp}/localnvme-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
payload=$work/payload
mkdir -p "$payload"
echo "[bench] building tests/bench and localnvme (static)"
CGO_ENABLED=0 go test -c -tags vmbench -o "$payload/bench.test" ./tests/bench
CGO_ENABLED=0 go build -ldflags "-X main.version=$VERSION" -o "$payload/localnvme" ./cmd/localnvme

# fio is not in the VM's base initramfs: Debian's fio links librados, librbd, glusterfs and
# more (tens of MB), which every VM test would then boot with. It rides in this payload
# only: the binary and the libraries ldd names, found through LD_LIBRARY_PATH in the VM.
if [[ ${BENCH_FIO_STAGE:-1} != 0 ]]; then
	if ! command -v fio >/dev/null 2>&1; then
		SUDO=()
		[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
		echo "[bench] installing fio on the host (to stage it into the VM payload)"
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null ||
			{ "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null; }
	fi
	fio=$(command -v fio)
	mkdir -p "$payload/fio/lib"
	cp -L "$fio" "$payload/fio/fio"
	ldd "$fio" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do cp -L "$lib" "$payload/fio/lib/"; done
	echo "[bench] fio $("$fio" --version) staged with $(find "$payload/fio/lib" -type f | wc -l) libraries ($(du -sh "$payload/fio" | cut -f1))"
fi

# The VM does not inherit this environment: the knobs are written into run.sh.
{
	echo '#!/bin/sh'
	echo 'cd /payload'
	echo "export BENCH_VERSION='$VERSION'"
	for v in $(compgen -v BENCH_ | sort); do
		case $v in BENCH_DRIVES | BENCH_VM_* | BENCH_FIO_STAGE) continue ;; esac
		printf "export %s='%s'\n" "$v" "${!v//\'/}"
	done
	echo 'exec ./bench.test -test.run "^TestBench$" -test.timeout 0 -logtostderr=false -log_file=/results/driver-bench.log'
} >"$payload/run.sh"
chmod +x "$payload/run.sh"
echo "[bench] payload run.sh:"
sed 's/^/[bench]   /' "$payload/run.sh"

rc=0
"$ROOT/hack/vm/run.sh" --payload "$payload" --out "$OUT/bench" --name bench --drives "$DRIVES" \
	--timeout "${BENCH_VM_TIMEOUT:-43200}" --mem "${BENCH_VM_MEM:-2048}" --smp "${LOCALNVME_VM_SMP:-2}" || rc=$?
echo
if [[ -f $OUT/bench/results.md ]]; then
	echo "== benchmark results ($OUT/bench/results.md, results.json)"
	cat "$OUT/bench/results.md"
else
	echo "[bench] no results.md in $OUT/bench" >&2
fi
[[ $rc -eq 0 ]] || echo "[bench] FAIL: the VM run ended with rc=$rc (logs in $OUT/bench)" >&2
exit "$rc"
