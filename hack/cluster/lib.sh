# lib.sh — shared settings of the local cluster scripts (sourced, not run).
# shellcheck shell=bash
CLUSTER_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_HERE/../.." && pwd)
# shellcheck source=versions.env
source "$CLUSTER_HERE/versions.env"
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
CACHE_ROOT=$(mkdir -p "$CACHE_ROOT" && cd "$CACHE_ROOT" && pwd)
K8S_BIN=$CACHE_ROOT/bin/kubernetes-$K8S_VERSION
SIDECAR_BIN=$CACHE_ROOT/bin/sidecars-$SIDECARS_TAG
NODE_CACHE=$CACHE_ROOT/node          # generic kernel + node initramfs
IMAGES_DIR=$CACHE_ROOT/images        # docker-archive tarballs (hack/image/build.sh)
# Everything of one running cluster (certs, logs, pids, drive images) lives here; down.sh
# removes it. The node VMs read it through the host root shared over 9p.
RUN_DIR=${LOCALNVME_CLUSTER_DIR:-$CACHE_ROOT/cluster}
KUBECONFIG_ADMIN=$RUN_DIR/admin.kubeconfig
APISERVER_PORT=6443
# The address the node VMs reach the API server at (a qemu guestfwd to 127.0.0.1:6443).
GUEST_API_IP=10.0.2.100
# The in-cluster `kubernetes` Service address (each VM DNATs it to $GUEST_API_IP:6443,
# which is all kube-proxy would do for this one Service here).
SERVICE_CIDR=10.96.0.0/16
SERVICE_API_IP=10.96.0.1
NODE_COUNT=${LOCALNVME_NODES:-2}
NODE_MEM=${LOCALNVME_NODE_MEM:-3072}
NODE_SMP=${LOCALNVME_NODE_SMP:-2}
# Drives of node N: serials match deploy/base/device-classes.yaml (fast: LNVFAST*, thin:
# LNVTHIN*); the spare matches no class and stays unclaimed.
node_name() { echo "localnvme-node-$1"; }
# the loopback address the apiserver dials node N's kubelet at (qemu hostfwd to :10250)
node_lo_ip() { echo "127.0.0.1$1"; }
node_drives() {
	local n=$1
	echo "LNVFAST${n}A:3G LNVFAST${n}B:3G LNVTHIN${n}A:4G LNVSPARE${n}A:1G"
}

clog() { printf '[cluster] %s\n' "$*"; }
cdie() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }
kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
# cluster_alive: the up marker exists and its API server process still runs. A marker
# without a live API server is state left by a killed session (a reboot, a timeout).
cluster_alive() {
	[[ -f $RUN_DIR/up && -f $RUN_DIR/pids/kube-apiserver ]] &&
		kill -0 "$(cat "$RUN_DIR/pids/kube-apiserver")" 2>/dev/null
}
# clear_stale_cluster: if a marker is left but nothing runs, tear the leftovers down.
clear_stale_cluster() {
	if [[ -f $RUN_DIR/up ]] && ! cluster_alive; then
		clog "stale cluster state at $RUN_DIR (its API server is not running): cleaning it up"
		"$CLUSTER_HERE/down.sh"
	fi
}
