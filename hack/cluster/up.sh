#!/usr/bin/env bash
# up.sh — bring up the local cluster: a Kubernetes control plane on 127.0.0.1 (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, snapshot-controller; all built
# from the Go module proxy and cached) and NODE_COUNT (default 2) kubelet nodes, each a qemu
# VM (TCG) with emulated NVMe drives of its own, joined over qemu user networking with
# restrict=on and only loopback forwards. `hack/cluster/down.sh` stops everything.
#
# usage: hack/cluster/up.sh            (ensure caches, then start; fails if already up)
# Writes $RUN_DIR/admin.kubeconfig. Logs: $RUN_DIR/logs, $RUN_DIR/nodes/<name>/share.
set -Eeuo pipefail
trap 'echo "[cluster] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T0=$(date +%s)
since() { echo "$(($(date +%s) - T0)) s"; }

clear_stale_cluster
[[ ! -f $RUN_DIR/up ]] || cdie "a cluster is already up: run hack/cluster/down.sh first"
if [[ ${LOCALNVME_SKIP_ENSURE:-0} != 1 ]]; then "$CLUSTER_HERE/ensure.sh"; fi
# shellcheck disable=SC1091
source "$NODE_CACHE/current.env"
for p in 2379 2380 $APISERVER_PORT 10257 10259; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then cdie "port 127.0.0.1:$p is in use"; fi
done
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids"
touch "$RUN_DIR/up"
"$CLUSTER_HERE/pki.sh"
P=$RUN_DIR/pki
LOGS=$RUN_DIR/logs

# start NAME CMD...: run a control-plane process in the background, pid in pids/NAME
start() {
	local name=$1; shift
	"$@" >"$LOGS/$name.log" 2>&1 &
	echo $! >"$RUN_DIR/pids/$name"
}
wait_for() { # wait_for WHAT SECONDS CMD...
	local what=$1 secs=$2 i; shift 2
	for ((i = 0; i < secs * 2; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	cdie "$what not ready after ${secs} s (logs: $LOGS)"
}

clog "etcd"
start etcd etcd --name localnvme --data-dir "$RUN_DIR/etcd" \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster localnvme=http://127.0.0.1:2380 --unsafe-no-fsync
# The apiserver dials each kubelet by node name (--kubelet-preferred-address-types=Hostname);
# every VM has the same address 10.0.2.15, so a private /etc/hosts (in the apiserver's own
# mount namespace; the host's file stays untouched) maps each node name to its loopback
# address, which qemu forwards to that VM's kubelet port.
{
	echo "127.0.0.1 localhost"
	for ((i = 1; i <= NODE_COUNT; i++)); do echo "$(node_lo_ip "$i") $(node_name "$i")"; done
} >"$RUN_DIR/apiserver-hosts"
clog "kube-apiserver"
# shellcheck disable=SC2016 # "$0" and "$@" are the inner sh -c's, expanded there
start kube-apiserver unshare -m --propagation private sh -c \
	'mount --bind "$0" /etc/hosts && exec "$@"' "$RUN_DIR/apiserver-hosts" \
	"$K8S_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
	--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
	--endpoint-reconciler-type=none --service-cluster-ip-range="$SERVICE_CIDR" \
	--tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
	--client-ca-file="$P/ca.crt" --authorization-mode=Node,RBAC \
	--enable-admission-plugins=NodeRestriction --allow-privileged=true \
	--service-account-issuer=https://kubernetes.default.svc \
	--service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
	--kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
	--kubelet-client-key="$P/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=Hostname \
	--profiling=false --v=1
wait_for "kube-apiserver" 120 kubectl_admin get --raw /readyz
clog "kube-apiserver ready at $(since)"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
	--kubeconfig="$P/controller-manager.kubeconfig" --authentication-kubeconfig="$P/controller-manager.kubeconfig" \
	--authorization-kubeconfig="$P/controller-manager.kubeconfig" --bind-address=127.0.0.1 \
	--leader-elect=false --use-service-account-credentials=true \
	--service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
	--cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
	--controllers='*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle' --v=1
start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$P/scheduler.kubeconfig" \
	--authentication-kubeconfig="$P/scheduler.kubeconfig" --authorization-kubeconfig="$P/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --v=1
# VolumeSnapshot CRDs, then the snapshot-controller (distributed snapshotting: the
# csi-snapshotter runs beside each node plugin with --node-deployment).
kubectl_admin apply --server-side -f "$SIDECAR_BIN/crd/" >"$LOGS/crds.log"
kubectl_admin wait --for=condition=Established --timeout=60s crd --all >>"$LOGS/crds.log"
start snapshot-controller "$SIDECAR_BIN/snapshot-controller" --kubeconfig="$KUBECONFIG_ADMIN" \
	--enable-distributed-snapshotting --leader-election=false --v=2

# ------------------------------------------------------------------ nodes
# start_node, node_state, node_diag: lib.sh (node-vm.sh restarts a node with the same ones)
write_nodes_env
for ((i = 1; i <= NODE_COUNT; i++)); do start_node "$i"; done
clog "$NODE_COUNT node VMs started at $(since); waiting for them to be Ready"
nodes_ready() {
	local i rc
	for ((i = 1; i <= NODE_COUNT; i++)); do
		rc=0
		node_state "$i" || rc=$?
		[[ $rc -eq 0 ]] || return "$rc"
	done
}
deadline=$(($(date +%s) + ${LOCALNVME_NODE_READY_TIMEOUT:-900}))
while :; do
	rc=0
	nodes_ready || rc=$?
	[[ $rc -eq 0 ]] && break
	if [[ $rc -eq 2 || $(date +%s) -ge $deadline ]]; then
		for ((i = 1; i <= NODE_COUNT; i++)); do node_diag "$i"; done
		cdie "nodes not Ready after $(since) (logs: $RUN_DIR/nodes/*/)"
	fi
	sleep 2
done
for ((i = 1; i <= NODE_COUNT; i++)); do clog "$(node_name "$i"): $(node_markers "$i")"; done
clog "cluster up in $(since): $(kubectl_admin get nodes --no-headers | awk '{ printf "%s=%s ", $1, $2 }')"
clog "KUBECONFIG=$KUBECONFIG_ADMIN"
