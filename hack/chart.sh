#!/usr/bin/env bash
# chart.sh — `make chart` (part of `make test`): checks the Helm chart deploy/helm/localnvme.
#
#   1. helm lint --strict, with the default values and with each deploy/helm/localnvme/ci/
#      values file (all-options: every option set; base; with-registrar; monitoring)
#   2. helm template of each (and its NOTES.txt), and kustomize build of the matching kustomize install, into
#      $OUT/chart/<variant>.{chart,kustomize}.yaml:
#        default         <-> deploy/
#        base            <-> deploy/base
#        with-registrar  <-> deploy/overlays/with-registrar
#        monitoring      <-> deploy/ + deploy/monitoring/podmonitor.yaml
#        all-options     (no kustomize equivalent)
#   3. values the chart must refuse: an unknown option and an invalid node-loss policy
#      (values.schema.json), a StorageClass parameter set twice, namespace.create into the
#      namespace "default"
#   4. the Go tests of tests/chart (build tag chart): parity (each variant's objects equal
#      the kustomize install's, field by field) and all-options (every value shows up)
#
# helm and kustomize are the versions pinned in hack/tools.env, built from the Go module
# proxy into ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/bin on first use (hack/tools.sh).
set -Eeuo pipefail
trap 'echo "[chart] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=tools.sh
source "$HERE/tools.sh"
GO=${GO:-go}
OUT=${OUT:-$REPO/_output}
CHART=deploy/helm/localnvme
NS=localnvme-system
RELEASE=localnvme
log() { printf '[chart] %s\n' "$*"; }
die() { printf '[chart] ERROR: %s\n' "$*" >&2; exit 1; }
cd "$REPO"

t0=$(date +%s)
helm_bin=$(GO=$GO tool_path helm)
kustomize_bin=$(GO=$GO tool_path kustomize)
mapfile -t henv < <(helm_env)
helm() { env "${henv[@]}" "$helm_bin" "$@"; }
log "tools: $(helm version --short 2>/dev/null || echo "helm $HELM_VERSION") ($HELM_VERSION), kustomize $("$kustomize_bin" version) ($(($(date +%s) - t0)) s)"

dir=$OUT/chart
rm -rf "$dir"
mkdir -p "$dir"

# variant -> values file ("" = the defaults)
declare -A values=(
	[default]=""
	[base]=$CHART/ci/base-values.yaml
	[with-registrar]=$CHART/ci/with-registrar-values.yaml
	[monitoring]=$CHART/ci/monitoring-values.yaml
	[all-options]=$CHART/ci/all-options-values.yaml
)
variants=(default base with-registrar monitoring all-options)
[[ ${#variants[@]} -eq ${#values[@]} ]] || die "variants and values disagree"

values_args() { [[ -z ${values[$1]} ]] || printf '%s\n' -f "${values[$1]}"; }

t=$(date +%s)
for v in "${variants[@]}"; do
	mapfile -t args < <(values_args "$v")
	helm lint --strict "$CHART" -n "$NS" "${args[@]}" >"$dir/$v.lint.log" 2>&1 ||
		{ sed 's/^/    /' "$dir/$v.lint.log" >&2; die "helm lint $v: failed"; }
done
log "helm lint --strict: ${#variants[@]} value sets, no findings ($(($(date +%s) - t)) s)"

t=$(date +%s)
for v in "${variants[@]}"; do
	mapfile -t args < <(values_args "$v")
	helm template "$RELEASE" "$CHART" -n "$NS" "${args[@]}" >"$dir/$v.chart.yaml" ||
		die "helm template $v: failed"
	# NOTES.txt is rendered by install only (a client-side dry-run: no cluster needed)
	helm install "$RELEASE" "$CHART" -n "$NS" --dry-run=client --hide-notes=false "${args[@]}" >"$dir/$v.install.txt" ||
		die "helm install --dry-run=client $v: failed"
	grep -q '^NOTES:' "$dir/$v.install.txt" || die "helm install --dry-run=client $v: no NOTES"
done
log "helm template (and NOTES.txt): ${#variants[@]} value sets rendered into $dir ($(($(date +%s) - t)) s)"

t=$(date +%s)
"$kustomize_bin" build deploy >"$dir/default.kustomize.yaml"
"$kustomize_bin" build deploy/base >"$dir/base.kustomize.yaml"
"$kustomize_bin" build deploy/overlays/with-registrar >"$dir/with-registrar.kustomize.yaml"
{ cat "$dir/default.kustomize.yaml"; echo "---"; cat deploy/monitoring/podmonitor.yaml; } >"$dir/monitoring.kustomize.yaml"
log "kustomize build: deploy, deploy/base, deploy/overlays/with-registrar (+ deploy/monitoring) ($(($(date +%s) - t)) s)"

# refuse VALUES-ARGS... EXPECTED-MESSAGE: helm template must fail with that message.
refuse() {
	local want=${*: -1} out
	if out=$(helm template "$RELEASE" "$CHART" "${@:1:$#-1}" 2>&1); then
		die "helm template ${*:1:$#-1}: rendered, but must be refused ($want)"
	fi
	grep -qF -- "$want" <<<"$out" || die "helm template ${*:1:$#-1}: refused, but without \"$want\": $out"
}
t=$(date +%s)
refuse -n "$NS" --set node.extraArg=--x "additional properties 'extraArg' not allowed"
refuse -n "$NS" --set 'storageClasses[0].name=x,storageClasses[0].onNodeLoss=relase' "at '/storageClasses/0/onNodeLoss': value must be one of"
refuse -n "$NS" --set 'storageClasses[0].name=x,storageClasses[0].fsType=xfs,storageClasses[0].parameters.csi\.storage\.k8s\.io/fstype=ext4' \
	"storageClasses x: parameters.csi.storage.k8s.io/fstype: set it with the class's own field"
refuse -n default "namespace.create is true and the release namespace is \"default\""
log "refused: an unknown option, an invalid node-loss policy, a parameter set twice, namespace.create into \"default\" ($(($(date +%s) - t)) s)"

t=$(date +%s)
# pipefail: the pipeline fails when go test does
if ! CHART_RENDER_DIR=$dir CHART_ALL_OPTIONS_VALUES=$REPO/$CHART/ci/all-options-values.yaml \
	nice -n 10 "$GO" test -tags chart -count=1 -v ./tests/chart/ 2>&1 | tee "$dir/test.log"; then
	die "tests/chart failed (log: $dir/test.log)"
fi
log "tests/chart (parity, all options): pass ($(($(date +%s) - t)) s)"
log "done in $(($(date +%s) - t0)) s"
