#!/usr/bin/env bash
# tools.sh — the developer tools pinned in hack/tools.env, built from the Go module proxy on
# first use into ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/bin/<tool>-<version>-<go version>/
# (never inside the repository, and not requirements of the main go.mod).
#
# usage: hack/tools.sh path TOOL        print the tool's path (building it first if needed)
#        hack/tools.sh TOOL [ARGS...]   run it
# TOOL: golangci-lint | helm | kustomize
#
# Sourced (hack/lint.sh, hack/chart.sh, hack/cluster/install.sh, hack/cluster/e2e.sh), it
# defines tool_path TOOL. helm runs with its config, cache and data homes under the cache
# (HELM_*_HOME), so it neither reads nor writes the user's ~/.config/helm.
# shellcheck shell=bash

TOOLS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools.env
source "$TOOLS_HERE/tools.env"
TOOLS_BIN_CACHE=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/bin

# tool_module TOOL prints the Go package to install and its pinned version.
tool_module() {
	case $1 in
	golangci-lint) echo "github.com/golangci/golangci-lint/v2/cmd/golangci-lint $GOLANGCI_LINT_VERSION" ;;
	helm) echo "helm.sh/helm/v4/cmd/helm $HELM_VERSION" ;;
	kustomize) echo "sigs.k8s.io/kustomize/kustomize/v5 $KUSTOMIZE_VERSION" ;;
	*)
		echo "tools.sh: unknown tool $1 (golangci-lint, helm, kustomize)" >&2
		return 2
		;;
	esac
}

# tool_path TOOL prints the path of the pinned TOOL, building it first if the cache lacks
# it (under a lock, so parallel callers build it once). The directory name carries the Go
# version too (golangci-lint type-checks with the go/types of the toolchain that built it).
tool_path() {
	local name=$1 go=${GO:-go} pkg ver gov out t0 spec
	spec=$(tool_module "$name") || return
	read -r pkg ver <<<"$spec"
	gov=$(GOTOOLCHAIN=local "$go" env GOVERSION) || return
	out=$TOOLS_BIN_CACHE/$name-$ver-$gov
	if [[ ! -x $out/$name ]]; then
		mkdir -p "$TOOLS_BIN_CACHE" || return
		(
			flock 9
			if [[ ! -x $out/$name ]]; then
				printf '[tools] %s %s: building with %s from the Go module proxy (cold: minutes)\n' "$name" "$ver" "$gov" >&2
				t0=$(date +%s)
				rm -rf "$out.tmp"
				mkdir -p "$out.tmp"
				# Outside any module, so the repo's go.mod plays no part.
				(cd "$out.tmp" && GOTOOLCHAIN=local GOFLAGS=-trimpath GOBIN="$out.tmp" \
					nice -n 10 "$go" install "$pkg@$ver") >&2 || exit 1
				mv "$out.tmp" "$out"
				printf '[tools] %s %s: built in %d s\n' "$name" "$ver" "$(($(date +%s) - t0))" >&2
			fi
		) 9>"$TOOLS_BIN_CACHE/.$name.lock" || {
			echo "tools.sh: building $name $ver failed (output above)" >&2
			return 1
		}
	fi
	printf '%s\n' "$out/$name"
}

# helm_env: the HELM_*_HOME settings helm runs with (printed as NAME=VALUE lines).
helm_env() {
	local home=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/helm-home
	printf '%s\n' "HELM_CONFIG_HOME=$home/config" "HELM_CACHE_HOME=$home/cache" "HELM_DATA_HOME=$home/data"
}

# run_tool TOOL [ARGS...] runs the pinned TOOL (helm with helm_env).
run_tool() {
	local bin env=()
	bin=$(tool_path "$1") || return
	shift
	[[ $bin == */helm ]] && mapfile -t env < <(helm_env)
	env "${env[@]}" "$bin" "$@"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -Eeuo pipefail
	case ${1:-} in
	path)
		[[ $# -eq 2 ]] || { echo "usage: $0 path TOOL" >&2; exit 2; }
		tool_path "$2"
		;;
	"" | -h | --help)
		sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	*) run_tool "$@" ;;
	esac
fi
