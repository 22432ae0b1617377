#!/usr/bin/env bash
# node-vm.sh — power a node VM of the running local cluster off and on again, for the
# node-loss scenarios of tests/e2e (which exec this script).
#
# usage: hack/cluster/node-vm.sh stop NODE
#          SIGKILL the node's qemu (a power cut: no shutdown, nothing flushed inside the VM;
#          writes the guest completed are in the drive images) and wait until it is gone
#        hack/cluster/node-vm.sh start NODE [--blank-drives]
#          start the node VM again with the qemu command line up.sh uses (lib.sh start_node,
#          the settings up.sh recorded in $RUN_DIR/nodes.env) and its drives as they are;
#          --blank-drives replaces each drive image by a new blank sparse file of the same
#          size and serial first (the node rebuilt under the same name with new disks).
#          The previous boot's logs move to nodes/<name>/prev/<K>/. Does not wait.
#        hack/cluster/node-vm.sh wait-ready NODE [SECONDS]
#          wait until the Node is Ready, reporting another boot ID than before `start`
#          (default LOCALNVME_NODE_READY_TIMEOUT or 900 s);
#          fails at once when the qemu exits or the console shows @@NODE-FAIL
#        hack/cluster/node-vm.sh status NODE
#          print running (pid) or stopped; exit 0 either way
# NODE: localnvme-node-N or N. The root and kubelet dirs of a node are tmpfs in the VM, so a
# started node comes back with fresh kubelet state; containerd's state is on the node's own
# disk (lib.sh "containerd disks"), kept across restarts (and with --blank-drives: only the
# NVMe drives are new), so no image is imported again.
set -Eeuo pipefail
trap 'echo "[node-vm] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T0=$(date +%s)
nlog() { printf '[node-vm] %s %s\n' "$(date +%T)" "$*"; }
ndie() { printf '[node-vm] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '/^# usage:/,/^# NODE:/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
since() { echo "$(($(date +%s) - $1)) s"; }

[[ $# -ge 2 ]] || usage
cmd=$1 node=$2
shift 2
[[ -f $RUN_DIR/up ]] || ndie "no cluster is up at $RUN_DIR (hack/cluster/up.sh)"
load_nodes_env
i=$(node_index "$node") || ndie "unknown node '$node' (the cluster has localnvme-node-1..$NODE_COUNT)"
name=$(node_name "$i")
dir=$(node_dir "$i")

cmd_stop() {
	[[ $# -eq 0 ]] || usage
	local pid helpers t state k
	if ! pid=$(node_pid "$i"); then
		nlog "$name: not running"
		rm -f "$(node_pid_file "$i")"
		return 0
	fi
	# its guestfwd helpers (busybox nc per API connection) die with it, not minutes later
	helpers=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)
	t=$(date +%s)
	kill -KILL "$pid"
	for ((k = 0; k < 120; k++)); do
		state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || true)
		[[ -z $state || $state == Z || $state == X ]] && break
		sleep 0.25
	done
	[[ -z $state || $state == Z || $state == X ]] || ndie "$name: qemu pid $pid still there 30 s after SIGKILL"
	local h
	for h in $helpers; do
		if tr '\0' ' ' <"/proc/$h/cmdline" 2>/dev/null | grep -q "^busybox nc 127.0.0.1 $APISERVER_PORT"; then
			kill -KILL "$h" 2>/dev/null || true
		fi
	done
	rm -f "$(node_pid_file "$i")"
	local up=""
	[[ -f $dir/started-at ]] && up=", it had run $(since "$(cat "$dir/started-at")")"
	nlog "$name: qemu pid $pid killed (SIGKILL), gone after $(since "$t")$up"
}

cmd_start() {
	local blank="" pid
	while [[ $# -gt 0 ]]; do
		case $1 in
		--blank-drives) blank=blank ;;
		*) usage ;;
		esac
		shift
	done
	cluster_alive || ndie "the cluster's API server does not run (hack/cluster/up.sh)"
	if pid=$(node_pid "$i"); then ndie "$name is running (qemu pid $pid): stop it first"; fi
	[[ -f $PKI_DIR/kubelet-$name.kubeconfig ]] || ndie "no $PKI_DIR/kubelet-$name.kubeconfig"
	if [[ $blank == blank ]]; then
		local d sizes=()
		for d in $(node_drives "$i"); do sizes+=("${d%%:*}=${d#*:}"); done
		nlog "$name: replacing its drives by blank ones: ${sizes[*]}"
	fi
	# wait-ready does not take the Node status of the previous boot for this one
	mkdir -p "$dir"
	node_boot_id "$i" >"$dir/old-boot-id"
	start_node "$i" "$blank"
	pid=$(cat "$(node_pid_file "$i")")
	sleep 1
	node_pid "$i" >/dev/null || { cat "$dir/qemu.log" >&2; ndie "$name: qemu exited at once (qemu.log above)"; }
	nlog "$name: qemu pid $pid started${blank:+ with blank drives} (console $dir/console.log; previous boots' logs in $dir/prev/)"
}

cmd_wait_ready() {
	[[ $# -le 1 ]] || usage
	local secs=${1:-${LOCALNVME_NODE_READY_TIMEOUT:-900}} deadline rc=0 msg started="" old=""
	[[ $secs =~ ^[0-9]+$ ]] || usage
	deadline=$((T0 + secs))
	[[ -f $dir/started-at ]] && started=$(cat "$dir/started-at")
	[[ -f $dir/old-boot-id ]] && old=$(cat "$dir/old-boot-id")
	while :; do
		rc=0
		msg=$(node_state "$i" "$old") || rc=$?
		[[ $rc -eq 0 ]] && break
		if [[ $rc -eq 2 || $(date +%s) -ge $deadline ]]; then
			node_diag "$i"
			[[ $rc -eq 2 ]] && ndie "$name cannot become Ready: $msg"
			ndie "$name not Ready after $(since "$T0")${started:+ (qemu started $(since "$started") ago)}"
		fi
		sleep 2
	done
	nlog "$name Ready after $(since "$T0")${started:+, $(since "$started") after its qemu started}: $(node_markers "$i")"
}

cmd_status() {
	local pid
	if pid=$(node_pid "$i"); then echo "$name running (qemu pid $pid)"; else echo "$name stopped"; fi
}

case $cmd in
stop) cmd_stop "$@" ;;
start) cmd_start "$@" ;;
wait-ready) cmd_wait_ready "$@" ;;
status) cmd_status "$@" ;;
*) usage ;;
esac
