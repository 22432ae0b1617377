# flake.sh — the known emulated-NVMe flake, shared by hack/vm/run.sh and hack/cluster/e2e.sh
# (sourced). About 1 VM run in 30 an I/O command of an emulated drive times out, the
# controller is reset and in-flight I/O fails with "I/O Error (sct 0x3 / sc 0x71)"; these
# kernel log lines mark it on a VM's serial console.
# shellcheck shell=bash
FLAKE_RE='I/O Error \(sct|nvme[0-9]+n[0-9]+: I/O Cmd|nvme nvme[0-9]+: .*[Tt]imeout|nvme[0-9]+: .*I/O .*timeout'

# flake_in_console FILE: print the first console line of FILE that marks the flake (empty
# output when there is none or FILE does not exist).
flake_in_console() {
	[[ -f $1 ]] || return 0
	tr -d '\r' <"$1" | grep -aE -m1 "$FLAKE_RE" || true
}
