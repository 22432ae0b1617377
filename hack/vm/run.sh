#!/usr/bin/env bash
# run.sh — boot a throwaway qemu (TCG) VM with emulated NVMe drives and run a
# payload inside it. See hack/vm/README.md for the full contract.
#
# usage: hack/vm/run.sh --payload DIR --out OUTDIR [--name NAME]
#          [--timeout SECONDS] [--mem MB] [--smp N] [--drives SPEC] [--images DIR]
#
# Exit code: the payload's rc; 124 on timeout; 125 when the VM did not boot,
# died before the payload finished, or produced no results; 2 on bad usage.
set -Eeuo pipefail
trap 'echo "[vm-run] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
VM_CACHE=$CACHE_ROOT/vm

DEFAULT_DRIVES=LNVTHICK0:3G,LNVTHICK1:3G,LNVTHIN0:6G:ns,LNVSPARE0:1G,LNVSPARE1:1G
BOOT_TIMEOUT=${LOCALNVME_VM_BOOT_TIMEOUT:-240}
RESULTS_SIZE=${LOCALNVME_VM_RESULTS_SIZE:-1G}
# FLAKE_RE, flake_in_console: the known emulated-NVMe flake
# shellcheck source=flake.sh
source "$HERE/flake.sh"
# QEMU_CPU: the guest CPU model
# shellcheck source=qemu-cpu.sh
source "$HERE/qemu-cpu.sh"

IMAGES="" PAYLOAD="" OUTDIR="" NAME="" TIMEOUT=2400 MEM=1536 SMP=1 DRIVES=$DEFAULT_DRIVES

usage() {
	sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
log() { printf '[vm-run] %s\n' "$*"; }
die() { printf '[vm-run] ERROR: %s\n' "$*" >&2; exit "${2:-2}"; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--payload) PAYLOAD=${2:-}; shift 2 ;;
	--out) OUTDIR=${2:-}; shift 2 ;;
	--name) NAME=${2:-}; shift 2 ;;
	--timeout) TIMEOUT=${2:-}; shift 2 ;;
	--mem) MEM=${2:-}; shift 2 ;;
	--smp) SMP=${2:-}; shift 2 ;;
	--drives) DRIVES=${2:-}; shift 2 ;;
	--images) IMAGES=${2:-}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "unknown argument: $1" >&2; usage ;;
	esac
done
[[ -n $PAYLOAD && -n $OUTDIR ]] || usage
[[ -d $PAYLOAD ]] || die "--payload $PAYLOAD is not a directory"
[[ -f $PAYLOAD/run.sh ]] || die "--payload $PAYLOAD has no run.sh"
for v in TIMEOUT MEM SMP; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive integer (got '${!v}')"
done
PAYLOAD=$(cd "$PAYLOAD" && pwd)
if [[ -n $IMAGES ]]; then mkdir -p "$IMAGES" && IMAGES=$(cd "$IMAGES" && pwd); fi
[[ -n $NAME ]] || NAME=$(basename "$PAYLOAD")

RUN_START=$(date +%s)

# ------------------------------------------------------------------ drives
SERIALS=() SIZES=() NSFLAGS=() CRITS=() EUIS=() UUIDS=()
parse_drives() {
	local spec item serial size flag crit eui opt opts n=0 nsn=0
	IFS=',' read -r -a spec <<<"$DRIVES"
	for item in "${spec[@]}"; do
		IFS=':' read -r serial size opts <<<"$item"
		[[ $serial =~ ^[A-Za-z0-9_.-]{1,20}$ ]] || die "drive '$item': serial must be 1-20 chars [A-Za-z0-9_.-]"
		[[ $serial != RESULTS ]] || die "drive serial RESULTS is reserved"
		[[ $size =~ ^[1-9][0-9]*[KMGT]?$ ]] || die "drive '$item': size must look like 512M or 3G"
		# Options after SIZE, in any order: 'ns', 'crit=N' (qemu's smart_critical_warning) and
		# 'eui=0x<16 hex>' (with ns: this EUI-64 instead of the next generated one, so that
		# two drives can answer to one identity, as drives with bogus IDs do).
		flag="" crit="" eui=""
		IFS=':' read -r -a opts <<<"$opts"
		for opt in "${opts[@]}"; do
			case $opt in
			ns)
				[[ -z $flag ]] || die "drive '$item': 'ns' given twice"
				flag=ns
				;;
			crit=*)
				[[ -z $crit ]] || die "drive '$item': 'crit=' given twice"
				crit=${opt#crit=}
				[[ $crit =~ ^(0|[1-9][0-9]{0,2}|0[xX][0-9A-Fa-f]{1,2})$ ]] ||
					die "drive '$item': crit must be a decimal or 0x hex byte (got '$crit')"
				crit=$((crit))
				# qemu accepts bits 0-4 only (bit 5 needs a PMR, which run.sh never attaches).
				[[ $((crit & ~0x1f)) -eq 0 ]] ||
					die "drive '$item': crit=$crit has bits qemu rejects (allowed: 0x1f)"
				;;
			eui=*)
				[[ -z $eui ]] || die "drive '$item': 'eui=' given twice"
				eui=${opt#eui=}
				[[ $eui =~ ^0x[0-9a-f]{16}$ ]] || die "drive '$item': eui must be 0x and 16 lowercase hex digits (got '$eui')"
				;;
			*) die "drive '$item': unknown option '$opt' (allowed: ns, crit=N, eui=0x…)" ;;
			esac
		done
		local s
		for s in "${SERIALS[@]}"; do [[ $s != "$serial" ]] || die "duplicate drive serial $serial"; done
		SERIALS+=("$serial") SIZES+=("$size") NSFLAGS+=("$flag") CRITS+=("$crit")
		[[ -z $eui || $flag == ns ]] || die "drive '$item': eui= needs ns"
		if [[ $flag == ns ]]; then
			nsn=$((nsn + 1))
			EUIS+=("${eui:-$(printf '0x00a0b0c0d0e0f%03x' "$nsn")}")
			UUIDS+=("$(printf '6c6e766d-0000-4000-8000-%012x' "$nsn")")
		else
			EUIS+=("-") UUIDS+=("-")
		fi
		n=$((n + 1))
	done
	[[ $n -gt 0 ]] || die "--drives is empty"
}
parse_drives

drives_table() {
	local i
	for i in "${!SERIALS[@]}"; do
		printf '%s %s %s %s\n' "${SERIALS[$i]}" "${SIZES[$i]}" "${EUIS[$i]}" "${UUIDS[$i]}"
	done
}

# ------------------------------------------------------------------ outdir
OUT_MARK=.localnvme-vm-out
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
if [[ -n $(find "$OUTDIR" -mindepth 1 -maxdepth 1 -print -quit) ]]; then
	[[ -f $OUTDIR/$OUT_MARK ]] ||
		die "--out $OUTDIR is not empty and is not a previous run's output dir (no $OUT_MARK)"
	find "$OUTDIR" -mindepth 1 -delete
fi
touch "$OUTDIR/$OUT_MARK"
drives_table >"$OUTDIR/drives.txt"

# ------------------------------------------------------------------ cache
"$HERE/ensure.sh" || die "ensure.sh failed" 125
# shellcheck disable=SC1091
source "$VM_CACHE/current.env"
[[ -f $KERNEL && -f $INITRD ]] || die "cache incomplete: $KERNEL / $INITRD" 125

log "VM run $NAME: kernel $KVER, mem ${MEM} MB, smp $SMP, timeout ${TIMEOUT} s"
log "drives (serial size eui64 uuid):"
drives_table | sed 's/^/[vm-run]   /'

# ------------------------------------------------------------------ one attempt
WORK="" QPID="" TPID=""
cleanup() {
	if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; fi
	if [[ -n $TPID ]] && kill -0 "$TPID" 2>/dev/null; then kill "$TPID" 2>/dev/null || true; fi
	if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
	QPID="" TPID="" WORK=""
}
trap cleanup EXIT
trap 'echo "[vm-run] interrupted" >&2; exit 130' INT TERM

# run_attempt K: boots the VM once. Sets ATTEMPT_RC, ATTEMPT_WHY, FLAKE_LINE and
# leaves console.log, qemu.log and the extracted results in $WORK/out.
run_attempt() {
	local k=$1
	WORK=$(mktemp -d "${LOCALNVME_VM_TMPDIR:-${TMPDIR:-/tmp}}/localnvme-vm.XXXXXX")
	mkdir -p "$WORK/root/etc" "$WORK/root/payload" "$WORK/out"
	drives_table >"$WORK/root/etc/localnvme-drives"
	cp -a "$PAYLOAD/." "$WORK/root/payload/"
	# uncompressed payload cpio first, gzip base archive after it
	(cd "$WORK/root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) >"$WORK/initrd"
	cat "$INITRD" >>"$WORK/initrd"
	rm -rf "$WORK/root"

	local args=() i
	# qboot (from qemu-system-data) boots ~2 s faster than SeaBIOS under TCG.
	BIOS=()
	if [[ -f /usr/share/qemu/qboot.rom ]]; then BIOS=(-bios /usr/share/qemu/qboot.rom); fi
	for i in "${!SERIALS[@]}"; do
		local img=$WORK/nvme$i.img cache=unsafe
		if [[ -n $IMAGES ]]; then
			# Persistent drives (kept across runs, named by serial): a later run may attach
			# them in another order. Created sparse when missing, reused as they are.
			img=$IMAGES/${SERIALS[$i]}.img cache=writeback
			[[ -f $img ]] || truncate -s "${SIZES[$i]}" "$img"
		else
			truncate -s "${SIZES[$i]}" "$img"
		fi
		args+=(-drive "file=$img,if=none,id=d$i,format=raw,cache=$cache")
		local ctrlopts=""
		if [[ -n ${CRITS[$i]} ]]; then ctrlopts=",smart_critical_warning=${CRITS[$i]}"; fi
		if [[ ${NSFLAGS[$i]} == ns ]]; then
			args+=(-device "nvme,id=c$i,serial=${SERIALS[$i]}$ctrlopts")
			args+=(-device "nvme-ns,drive=d$i,bus=c$i,nsid=1,eui64=${EUIS[$i]},uuid=${UUIDS[$i]}")
		else
			args+=(-device "nvme,drive=d$i,serial=${SERIALS[$i]}$ctrlopts")
		fi
	done
	truncate -s "$RESULTS_SIZE" "$WORK/results.img"
	args+=(-drive "file=$WORK/results.img,if=none,id=res,format=raw,cache=unsafe")
	args+=(-device "virtio-blk-pci,drive=res,serial=RESULTS")

	local console=$WORK/out/console.log
	: >"$console"
	log "attempt $k: booting qemu (work dir $WORK)"
	qemu-system-x86_64 -accel tcg -machine pc -cpu "$QEMU_CPU" "${BIOS[@]}" -m "$MEM" -smp "$SMP" \
		-nodefaults -nographic -no-reboot -nic none -monitor none \
		-serial "file:$console" \
		-kernel "$KERNEL" -initrd "$WORK/initrd" \
		-append "console=ttyS0 panic=-1 loglevel=5 edd=off rdinit=/init localnvme.vm=1" \
		"${args[@]}" </dev/null >"$WORK/out/qemu.log" 2>&1 &
	QPID=$!
	tail -s 0.2 --pid="$QPID" -n +1 -f "$console" &
	TPID=$!

	local t0 now started=0 state=running
	BOOT_SECS="?"
	t0=$(date +%s)
	while kill -0 "$QPID" 2>/dev/null; do
		now=$(date +%s)
		if [[ $started -eq 0 ]] && grep -aq '^@@START' "$console"; then
			started=1
			BOOT_SECS=$((now - t0))
		fi
		if [[ $started -eq 0 && $((now - t0)) -ge $BOOT_TIMEOUT ]]; then
			state=noboot
			break
		fi
		if [[ $((now - t0)) -ge $TIMEOUT ]]; then
			state=timeout
			break
		fi
		sleep 1
	done
	if [[ $state != running ]]; then kill "$QPID" 2>/dev/null || true; fi
	local qrc=0
	wait "$QPID" || qrc=$?
	QPID=""
	wait "$TPID" 2>/dev/null || true
	TPID=""
	grep -aq '^@@START' "$console" && started=1

	FLAKE_LINE=$(flake_in_console "$console")
	local done_rc
	done_rc=$(tr -d '\r' <"$console" | sed -n 's/^@@DONE rc=\([0-9][0-9]*\)$/\1/p' | tail -n1)
	ATTEMPT_WHY=""
	if [[ $state == timeout ]]; then
		ATTEMPT_RC=124
		ATTEMPT_WHY="TIMEOUT: the VM run exceeded ${TIMEOUT} s; qemu killed"
	elif [[ $state == noboot ]]; then
		ATTEMPT_RC=125
		ATTEMPT_WHY="VM did not boot: no @@START within ${BOOT_TIMEOUT} s; qemu killed"
	elif [[ -z $done_rc ]]; then
		ATTEMPT_RC=125
		if [[ $started -eq 0 ]]; then
			ATTEMPT_WHY="VM did not boot: qemu exited (rc=$qrc) before @@START"
		else
			ATTEMPT_WHY="VM died before the payload finished: qemu exited (rc=$qrc) without @@DONE"
		fi
	elif ! tar -tf "$WORK/results.img" 2>/dev/null | grep -qx './output.log'; then
		ATTEMPT_RC=125
		ATTEMPT_WHY="results tar missing on the RESULTS disk (payload rc was $done_rc)"
	else
		tar -xf "$WORK/results.img" -C "$WORK/out" --no-same-owner
		ATTEMPT_RC=$done_rc
	fi
	if [[ -n $ATTEMPT_WHY ]]; then
		{
			echo "[vm-run] ===================================================================="
			echo "[vm-run] $ATTEMPT_WHY"
			echo "[vm-run] --- console tail ($console) ---"
			tr -d '\r' <"$console" | tail -n 40 | sed 's/^/[vm-run] | /'
			if [[ -s $WORK/out/qemu.log ]]; then
				echo "[vm-run] --- qemu output ---"
				sed 's/^/[vm-run] | /' "$WORK/out/qemu.log"
			fi
			echo "[vm-run] ===================================================================="
		} >&2
	fi
	log "attempt $k: rc=$ATTEMPT_RC after $(($(date +%s) - t0)) s (payload started at ${BOOT_SECS} s)"
}

# ------------------------------------------------------------------ main
ATTEMPTS=0 RC=125 why=""
while :; do
	ATTEMPTS=$((ATTEMPTS + 1))
	run_attempt "$ATTEMPTS"
	RC=$ATTEMPT_RC
	if [[ -n $FLAKE_LINE ]]; then
		if [[ $RC -ne 0 && $ATTEMPTS -eq 1 ]]; then
			echo "FLAKE: emulated NVMe I/O error detected in console ($FLAKE_LINE); retrying once"
			{
				echo "attempt 1 failed (rc=$RC) after an emulated NVMe I/O error; retried with fresh drive images"
				echo "line: $FLAKE_LINE"
				[[ -z $ATTEMPT_WHY ]] || echo "failure: $ATTEMPT_WHY"
				echo "attempt 1 artifacts: attempt1/"
			} >"$OUTDIR/flake.txt"
			mkdir -p "$OUTDIR/attempt1"
			cp -a "$WORK/out/." "$OUTDIR/attempt1/"
			rm -rf "$WORK"
			WORK=""
			continue
		fi
		if [[ $RC -eq 0 ]]; then why="the payload passed anyway"; else why="already retried once"; fi
		echo "FLAKE: emulated NVMe I/O error detected in console ($FLAKE_LINE); attempt $ATTEMPTS rc=$RC, not retried ($why)"
		{
			echo "attempt $ATTEMPTS (rc=$RC): emulated NVMe I/O error seen in the console; not retried ($why)"
			echo "line: $FLAKE_LINE"
		} >>"$OUTDIR/flake.txt"
	fi
	break
done
cp -a "$WORK/out/." "$OUTDIR/"
cleanup
log "artifacts in $OUTDIR"
echo "VM run $NAME: rc=$RC in $(($(date +%s) - RUN_START)) s (attempts=$ATTEMPTS)"
exit "$RC"
