#!/usr/bin/env bash
# build-bins.sh — build (once, then cached) every binary the local cluster needs from the
# Go module proxy: Kubernetes control plane + kubelet + kubectl, the CSI sidecars, the
# snapshot-controller, and the VolumeSnapshot CRDs.
#
# usage: hack/cluster/build-bins.sh [k8s|sidecars|all]     (default all)
#
# Cache: ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/bin/<component>-<version>/ ; a directory
# exists only when its build finished (built into .tmp, renamed at the end).
set -Eeuo pipefail
trap 'echo "[build-bins] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
BIN_CACHE=$CACHE_ROOT/bin
SRC=$CACHE_ROOT/src
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
log() { printf '[build-bins] %s\n' "$*"; }

mkdir -p "$BIN_CACHE" "$SRC"
exec 8>"$BIN_CACHE/.lock"
flock 8

# k8s: a scratch module that requires k8s.io/kubernetes and replaces each staging module
# (k8s.io/kubernetes' own go.mod points them at ./staging) with its published v0.X release.
build_k8s() {
	local out=$BIN_CACHE/kubernetes-$K8S_VERSION
	if [[ -x $out/kube-apiserver && -x $out/kubelet && -x $out/kubectl ]]; then
		log "kubernetes $K8S_VERSION: cached"
		return
	fi
	local t0 mod=$SRC/k8s-$K8S_VERSION staging=v0.${K8S_VERSION#v1.}
	t0=$(date +%s)
	rm -rf "$mod" "$out.tmp"
	mkdir -p "$mod" "$out.tmp"
	cd "$mod"
	go mod init localnvme.local/k8sbuild >/dev/null 2>&1
	local gomod
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
	[[ -f $gomod ]] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
	local reps=() m
	while read -r m; do reps+=(-replace "$m=$m@$staging"); done < <(
		awk '$0 ~ /=> \.\/staging\// { for (i = 1; i <= NF; i++) if ($i == "=>") print $(i-1) }' "$gomod" | sort -u)
	go mod edit -require "k8s.io/kubernetes@$K8S_VERSION" "${reps[@]}"
	cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
	go mod tidy -e >/dev/null 2>&1 || true
	log "kubernetes $K8S_VERSION: building (cold: ~15-20 min on 2 cores)"
	local ld
	ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
	for c in kubectl kube-scheduler kubelet kube-controller-manager kube-apiserver; do
		log "  go build $c"
		go build -trimpath -ldflags "$ld" -o "$out.tmp/$c" "k8s.io/kubernetes/cmd/$c"
	done
	mv "$out.tmp" "$out"
	log "kubernetes $K8S_VERSION: built in $(($(date +%s) - t0)) s"
}

# go_build_module MODULE VERSION OUTDIR PKG... : download a module's source and build
# packages inside it (the sidecars' go.mod files carry replace directives, so `go install
# mod@version` is refused; build inside the downloaded tree instead).
build_in_module() {
	local module=$1 version=$2 out=$3; shift 3
	local dir work
	dir=$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir ]] || { log "cannot download $module@$version"; exit 1; }
	work=$SRC/$(basename "$(dirname "$module")")-$(basename "$module")-$version
	rm -rf "$work"
	cp -r "$dir" "$work"
	chmod -R u+w "$work"
	cd "$work"
	rm -rf vendor
	# drop replace directives that point into the repository itself (they are not in the
	# module zip), keeping the published requirement instead
	local r
	while read -r r; do go mod edit -dropreplace "$r"; done < <(
		go mod edit -json | awk '/"Replace"/ {inrep=1} inrep && /"Path"/ && !seen { gsub(/[",]/, "", $2); old=$2; seen=1; next }
			inrep && /"Path": "\.\.?\// { print old } /^\t\t}/ { seen=0 }' | sort -u)
	local p
	for p in "$@"; do
		log "  go build $module/$p"
		go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/$(basename "$p")" "./$p"
	done
}

build_sidecars() {
	local out=$BIN_CACHE/sidecars-$SIDECARS_TAG
	if [[ -x $out/csi-provisioner && -x $out/csi-snapshotter && -x $out/snapshot-controller &&
		-x $out/csi-resizer && -f $out/crd/snapshot.storage.k8s.io_volumesnapshots.yaml ]]; then
		log "sidecars $SIDECARS_TAG: cached"
		return
	fi
	local t0
	t0=$(date +%s)
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp/crd"
	log "sidecars: building (cold: ~5-8 min each on 2 cores)"
	build_in_module github.com/kubernetes-csi/external-provisioner/v6 "$PROVISIONER_VERSION" "$out.tmp" cmd/csi-provisioner
	build_in_module github.com/kubernetes-csi/external-snapshotter/v8 "$SNAPSHOTTER_VERSION" "$out.tmp" cmd/csi-snapshotter cmd/snapshot-controller
	build_in_module github.com/kubernetes-csi/external-resizer/v2 "$RESIZER_VERSION" "$out.tmp" cmd/csi-resizer
	local crd
	crd=$(go mod download -json "github.com/kubernetes-csi/external-snapshotter/client/v8@$SNAPSHOTTER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	cp "$crd"/config/crd/snapshot.storage.k8s.io_*.yaml "$out.tmp/crd/"
	chmod u+w "$out.tmp"/crd/*
	mv "$out.tmp" "$out"
	log "sidecars: built in $(($(date +%s) - t0)) s"
}

case ${1:-all} in
k8s) build_k8s ;;
sidecars) build_sidecars ;;
all) build_k8s; build_sidecars ;;
*) echo "usage: $0 [k8s|sidecars|all]" >&2; exit 2 ;;
esac
