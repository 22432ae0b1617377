#!/usr/bin/env bash
# ensure.sh — everything the local cluster needs, installed or built once and cached:
# Debian packages (qemu, etcd, containerd, runc, CNI plugins, ...), the Kubernetes and
# sidecar binaries (build-bins.sh), the node VMs' kernel and initramfs (ensure-node.sh)
# the container images (hack/image/build.sh) and the node VMs' containerd seed disk
# (seed-images.sh).
set -Eeuo pipefail
trap 'echo "[cluster-ensure] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PACKAGES=(qemu-system-x86 busybox-static cpio kmod etcd-server containerd runc
	containernetworking-plugins iptables iproute2 openssl util-linux debootstrap
	lvm2 thin-provisioning-tools e2fsprogs xfsprogs)
missing=()
for p in "${PACKAGES[@]}"; do
	[[ $(dpkg-query -W -f '${Status}' "$p" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	clog "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$CLUSTER_HERE/build-bins.sh" all
"$CLUSTER_HERE/ensure-node.sh"
"$REPO_ROOT/hack/image/build.sh" --sidecars-dir "$SIDECAR_BIN"
"$CLUSTER_HERE/seed-images.sh"
