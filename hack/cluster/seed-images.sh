#!/usr/bin/env bash
# seed-images.sh — the containerd seed disk of the node VMs (lib.sh "containerd disks"): an
# ext4 image on which a node VM's own containerd has imported every container image except
# the driver's. up.sh gives each node a copy, so a node's first boot imports only the driver
# image (tagged per commit). Cached under $SEED_DIR by seed_key (the seeded images' tarballs,
# containerd's version, SEED_VERSION); older seeds are removed. Building one boots a VM
# like a node (boot.sh with SEED_ONLY=1: no network, no kubelet) that imports, syncs,
# unmounts and powers off: 305 s measured under TCG (2 vCPUs), once per key.
set -Eeuo pipefail
trap 'echo "[seed] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slog() { printf '[seed] %s\n' "$*"; }
sdie() { printf '[seed] ERROR: %s\n' "$*" >&2; exit 1; }
[[ -f $IMAGES_DIR/images.txt ]] || sdie "no $IMAGES_DIR/images.txt: run hack/image/build.sh first"
[[ -f $NODE_CACHE/current.env ]] || sdie "no $NODE_CACHE/current.env: run hack/cluster/ensure-node.sh first"
# shellcheck disable=SC1091
source "$NODE_CACHE/current.env"
mkdir -p "$SEED_DIR"
exec 9>"$SEED_DIR/.lock"
flock 9
seed=$(seed_path)
if [[ -f $seed ]]; then
	slog "cached: $(basename "$seed") ($(du -h "$seed" | cut -f1) used; $(seed_lines | awk '{ print $1 }' | tr '\n' ' '))"
	exit 0
fi
t0=$(date +%s)
work=$SEED_DIR/work
rm -rf "$work"
mkdir -p "$work/share"
new_ctrd_disk "$work/containerd.img"
cat >"$work/node.env" <<ENV
NODE_NAME=localnvme-seed
NODE_INDEX=0
NODE_DIR=$work
K8S_BIN=$K8S_BIN
IMAGES_DIR=$IMAGES_DIR
SEED_ONLY=1
ENV
slog "building $(basename "$seed"): a VM imports $(seed_lines | awk '{ print $1 }' | tr '\n' ' ')(console $work/console.log)"
rc=0
# the seed VM runs alone (ensure.sh, before any node): two vCPUs (305 s measured, 449 s with one)
# shellcheck disable=SC2034 # read by node_qemu (lib.sh)
NODE_SMP=2
(node_qemu "$work" "$work/node.env") &
qpid=$!
deadline=$(($(date +%s) + 2400))
while kill -0 "$qpid" 2>/dev/null; do
	if [[ $(date +%s) -ge $deadline ]]; then
		slog "the seed VM still runs after 40 min: killing it"
		kill -KILL "$qpid" 2>/dev/null || true
		break
	fi
	sleep 2
done
wait "$qpid" || rc=$?
if ! grep -aq '^@@NODE seed done' "$work/console.log"; then
	grep -a '^@@NODE' "$work/console.log" | tail -5 >&2 || true
	sdie "the seed VM did not finish (qemu rc=$rc; console $work/console.log, logs $work/share/)"
fi
mv "$work/containerd.img" "$seed.tmp"
mv "$seed.tmp" "$seed"
for old in "$SEED_DIR"/seed-*.img; do
	[[ $old == "$seed" ]] || rm -f "$old"
done
slog "built $(basename "$seed") in $(($(date +%s) - t0)) s ($(du -h "$seed" | cut -f1) used): $(grep -a '^@@NODE images' "$work/console.log" | tr -d '\r')"
rm -rf "$work"
