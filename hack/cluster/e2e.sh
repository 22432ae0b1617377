#!/usr/bin/env bash
# e2e.sh — `make e2e`: bring the two-node cluster up, check a server-side dry-run of every
# deploy/ variant and of the Helm chart (deploy/helm/localnvme: its default values, the
# with-registrar values and every option), install localnvme from deploy/ (images
# overridden only), run tests/e2e, and tear the cluster down again
# (LOCALNVME_KEEP_CLUSTER=1 keeps it; logs are kept in $OUT/e2e-logs either way).
#
# E2E_INSTALL=helm installs with the Helm chart instead of kustomize (hack/cluster/install.sh:
# `helm upgrade --install ... --create-namespace`, the same images overridden).
#
# The known emulated-NVMe flake (a drive of a node VM loses an I/O: "I/O Error (sct 0x3 /
# sc 0x71)" in its console) is detected in the node consoles: when a run fails and a
# console shows it, the whole run (bring-up included) is retried once and the script says
# so. A failure without it is not retried.
set -Eeuo pipefail
trap 'echo "[e2e] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${OUT:-$REPO_ROOT/_output}
T0=$(date +%s)
# shellcheck disable=SC2317 # called from finish, the EXIT trap (shellcheck 0.9 misses trap-only calls)
since() { echo "$(($(date +%s) - T0)) s"; }
# flake_in_console: the known emulated-NVMe flake, as hack/vm/run.sh detects it
# shellcheck source=../vm/flake.sh
source "$REPO_ROOT/hack/vm/flake.sh"
# run_tool / tool_path: helm pinned in hack/tools.env
# shellcheck source=../tools.sh
source "$REPO_ROOT/hack/tools.sh"
CHART=$REPO_ROOT/deploy/helm/localnvme
E2E_INSTALL=${E2E_INSTALL:-kustomize}
[[ $E2E_INSTALL == kustomize || $E2E_INSTALL == helm ]] || { echo "E2E_INSTALL=$E2E_INSTALL: want kustomize or helm" >&2; exit 2; }
export E2E_INSTALL
started=0
down_keep_logs() { # down_keep_logs DIR
	started=0
	"$CLUSTER_HERE/down.sh" --keep-logs "$1"
}
# shellcheck disable=SC2317 # the EXIT trap (shellcheck 0.9 misses trap-only calls)
finish() {
	local rc=$?
	if [[ $started -eq 1 && ${LOCALNVME_KEEP_CLUSTER:-0} != 1 ]]; then
		down_keep_logs "$OUT/e2e-logs" || rc=1
	fi
	echo "e2e.sh: rc=$rc after $(since)"
	exit "$rc"
}
trap finish EXIT

# flake_line: the first console line of a node VM that shows the NVMe flake, if any
flake_line() {
	local f line
	# the current boot of each node, and the earlier ones of nodes node-vm.sh restarted
	for f in "$RUN_DIR"/nodes/*/console.log "$RUN_DIR"/nodes/*/prev/*/console.log; do
		[[ -f $f ]] || continue
		line=$(flake_in_console "$f")
		if [[ -n $line ]]; then
			echo "${f#"$RUN_DIR"/nodes/}: $line"
			return 0
		fi
	done
	return 1
}

# run_once: up (unless a cluster is already up), dry-runs, install, tests; returns rc
run_once() {
	local t rc dry_fail=0 v log
	clear_stale_cluster
	if cluster_alive; then
		clog "using the cluster that is already up"
	else
		started=1
		t=$(date +%s)
		"$CLUSTER_HERE/up.sh" || return 1
		clog "bring-up: $(($(date +%s) - t)) s"
	fi
	# A server-side dry-run of every deploy/ variant, exactly as committed, and of the Helm
	# chart rendered with its default values, the with-registrar values and every option
	# (less the PodMonitor: the cluster has no Prometheus Operator CRDs). A dry-run
	# creates nothing, so the namespace its objects live in must exist first (the install
	# creates it again as part of deploy/base; apply is idempotent).
	local ns_existed=0
	kubectl_admin get namespace localnvme-system >/dev/null 2>&1 && ns_existed=1
	kubectl_admin create namespace localnvme-system --dry-run=client -o yaml | kubectl_admin apply -f - || return 1
	for v in deploy deploy/base deploy/examples deploy/overlays/with-registrar; do
		log=$RUN_DIR/logs/dry-run-${v//\//_}.log
		if kubectl_admin apply --dry-run=server -k "$REPO_ROOT/$v" >"$log" 2>&1; then
			echo "E2E RESULT dry-run $v: PASS ($(grep -c . "$log") objects)"
		else
			echo "E2E RESULT dry-run $v: FAIL"
			sed 's/^/    /' "$log"
			dry_fail=1
		fi
	done
	local values
	for v in default with-registrar all-options; do
		values=()
		[[ $v == default ]] || values=(-f "$CHART/ci/$v-values.yaml")
		[[ $v != all-options ]] || values+=(--set monitoring.podMonitor.enabled=false)
		log=$RUN_DIR/logs/dry-run-chart-$v.log
		# pipefail: a failing helm template fails the dry-run too
		if { run_tool helm template localnvme "$CHART" --namespace localnvme-system "${values[@]}" |
			kubectl_admin apply --dry-run=server -f -; } >"$log" 2>&1; then
			echo "E2E RESULT dry-run chart ($v values): PASS ($(grep -c . "$log") objects)"
		else
			echo "E2E RESULT dry-run chart ($v values): FAIL"
			sed 's/^/    /' "$log"
			dry_fail=1
		fi
	done
	# The Helm install runs the documented command on a fresh cluster: it creates the
	# namespace itself (--create-namespace) and must find no object Helm does not own, so the
	# namespace made for the dry-runs goes again (not one that was there before).
	if [[ $E2E_INSTALL == helm && $ns_existed -eq 0 ]]; then
		kubectl_admin delete namespace localnvme-system --wait=true --timeout=180s || return 1
	fi
	t=$(date +%s)
	"$CLUSTER_HERE/install.sh" || return 1
	clog "install ($E2E_INSTALL): $(($(date +%s) - t)) s"
	t=$(date +%s)
	# E2E_RUN: a -run filter (e.g. 'TestE2E/volumes/(snapshot|block)'). The timeout is a
	# backstop for a hung run: CI gives make test + make e2e 90 min in all
	local run=()
	[[ -n ${E2E_RUN:-} ]] && run=(-run "$E2E_RUN")
	KUBECONFIG=$KUBECONFIG_ADMIN go test -tags e2e -count=1 -timeout "${E2E_GO_TIMEOUT:-75m}" "${run[@]}" -v ./tests/e2e/ 2>&1 | tee "$OUT/e2e.log"
	rc=${PIPESTATUS[0]}
	clog "tests: $(($(date +%s) - t)) s; full log $OUT/e2e.log"
	[[ $dry_fail -eq 0 ]] || { clog "a dry-run failed"; rc=1; }
	return "$rc"
}

mkdir -p "$OUT"
rm -rf "$OUT/e2e-logs"
# build everything first (cold: Kubernetes, sidecars, images) so bring-up time is its own
t=$(date +%s)
"$CLUSTER_HERE/ensure.sh"
tool_path helm >/dev/null # the chart's dry-runs and E2E_INSTALL=helm (built once, ~7 min cold)
clog "ensure: $(($(date +%s) - t)) s"
rc=0
run_once || rc=$?
if [[ $rc -ne 0 && $started -eq 1 ]] && line=$(flake_line); then
	echo "FLAKE: emulated NVMe I/O error in a node VM's console ($line); retrying the whole e2e run once"
	down_keep_logs "$OUT/e2e-logs/attempt-1"
	rc=0
	run_once || rc=$?
	if [[ $rc -ne 0 ]] && line=$(flake_line); then
		echo "FLAKE again on the retry ($line): not retrying further"
	fi
fi
exit "$rc"
