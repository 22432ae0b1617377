#!/usr/bin/env bash
# down.sh — stop the local cluster: the node VMs and every control-plane process, and
# remove its run directory (certs, etcd, drive images). Leaves nothing running and no
# mounts behind (the VMs' mounts live inside the VMs; the apiserver's /etc/hosts bind
# lives in its own mount namespace and dies with it). Safe to run when nothing is up.
#
# usage: hack/cluster/down.sh [--keep-logs DIR]   (copy logs to DIR first)
set -Eeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
keep=""
if [[ ${1:-} == --keep-logs ]]; then keep=${2:?--keep-logs needs a directory}; fi
if [[ ! -d $RUN_DIR ]]; then
	clog "no cluster at $RUN_DIR"
	exit 0
fi
if [[ -n $keep ]]; then
	mkdir -p "$keep"
	cp -r "$RUN_DIR/logs" "$keep/" 2>/dev/null || true
	for d in "$RUN_DIR"/nodes/*/; do
		[[ -d $d ]] || continue
		mkdir -p "$keep/nodes/$(basename "$d")"
		cp "$d"/console.log "$d"/qemu.log "$keep/nodes/$(basename "$d")/" 2>/dev/null || true
		cp "$d"/share/*.log "$keep/nodes/$(basename "$d")/" 2>/dev/null || true
		# earlier boots of a node restarted by node-vm.sh
		if [[ -d $d/prev ]]; then cp -r "$d/prev" "$keep/nodes/$(basename "$d")/" 2>/dev/null || true; fi
	done
fi
stop_pid() { # stop_pid NAME PID: TERM, wait up to 10 s, then KILL
	local name=$1 pid=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	clog "$name (pid $pid) did not stop on TERM: KILL"
	kill -9 "$pid" 2>/dev/null || true
}
# node VMs first (their kubelets talk to the apiserver), then the control plane in reverse
for f in "$RUN_DIR"/pids/qemu-* "$RUN_DIR"/pids/snapshot-controller "$RUN_DIR"/pids/kube-scheduler \
	"$RUN_DIR"/pids/kube-controller-manager "$RUN_DIR"/pids/kube-apiserver "$RUN_DIR"/pids/etcd; do
	[[ -f $f ]] || continue
	stop_pid "$(basename "$f")" "$(cat "$f")"
done
# nothing of ours may be left running (qemu's guestfwd helpers included)
left=$(pgrep -f -- "$RUN_DIR|^busybox nc 127.0.0.1 $APISERVER_PORT\$" || true)
if [[ -n $left ]]; then
	clog "killing leftovers: $left"
	# shellcheck disable=SC2086 # $left is pgrep's PID list: split into one argument per PID
	kill -9 $left 2>/dev/null || true
fi
if grep -q " $RUN_DIR" /proc/self/mountinfo; then cdie "mounts under $RUN_DIR remain: $(grep " $RUN_DIR" /proc/self/mountinfo)"; fi
rm -rf "$RUN_DIR"
clog "cluster down"
