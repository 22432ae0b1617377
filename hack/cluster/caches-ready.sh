#!/usr/bin/env bash
# caches-ready.sh — exit 0 when the slow parts of the local cluster (Kubernetes and the CSI
# sidecars, built from the Go module proxy by build-bins.sh) are cached, 1 otherwise; says
# which are missing. .ci/run uses it to decide whether `make e2e` fits its time budget.
set -Eeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
missing=()
for f in "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl} \
	"$SIDECAR_BIN"/{csi-provisioner,csi-snapshotter,csi-resizer,snapshot-controller}; do
	[[ -x $f ]] || missing+=("$f")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	clog "not cached: ${missing[*]}"
	exit 1
fi
clog "Kubernetes $K8S_VERSION and sidecars $SIDECARS_TAG are cached"
