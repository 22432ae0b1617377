#!/usr/bin/env bash
# e2e.sh — `make e2e`: bring the two-node cluster up, check a server-side dry-run of every
# deploy/ variant, install localnvme from deploy/ (images overridden only), run tests/e2e,
# and tear the cluster down again (LOCALNVME_KEEP_CLUSTER=1 keeps it; logs are kept in
# $OUT/e2e-logs either way).
set -Eeuo pipefail
trap 'echo "[e2e] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${OUT:-$REPO_ROOT/_output}
T0=$(date +%s)
since() { echo "$(($(date +%s) - T0)) s"; }
started=0
finish() {
	local rc=$?
	if [[ $started -eq 1 && ${LOCALNVME_KEEP_CLUSTER:-0} != 1 ]]; then
		"$CLUSTER_HERE/down.sh" --keep-logs "$OUT/e2e-logs" || rc=1
	fi
	echo "e2e.sh: rc=$rc after $(since)"
	exit "$rc"
}
trap finish EXIT
# build everything first (cold: Kubernetes, sidecars, images) so bring-up time is its own
t=$(date +%s)
"$CLUSTER_HERE/ensure.sh"
ENSURE_S=$(($(date +%s) - t))
if [[ -f $RUN_DIR/up ]]; then
	clog "using the cluster that is already up"
else
	started=1
	t=$(date +%s)
	"$CLUSTER_HERE/up.sh"
	clog "bring-up: $(($(date +%s) - t)) s"
fi
# A server-side dry-run of every deploy/ variant, exactly as committed. A dry-run creates
# nothing, so the namespace its objects live in must exist first (the install creates it
# again as part of deploy/base; apply is idempotent).
kubectl_admin create namespace localnvme-system --dry-run=client -o yaml | kubectl_admin apply -f -
dry_fail=0
for v in deploy deploy/base deploy/examples deploy/overlays/with-registrar; do
	if kubectl_admin apply --dry-run=server -k "$REPO_ROOT/$v" >"$RUN_DIR/logs/dry-run-${v//\//_}.log" 2>&1; then
		echo "E2E RESULT dry-run $v: PASS ($(grep -c . "$RUN_DIR/logs/dry-run-${v//\//_}.log") objects)"
	else
		echo "E2E RESULT dry-run $v: FAIL"
		sed 's/^/    /' "$RUN_DIR/logs/dry-run-${v//\//_}.log"
		dry_fail=1
	fi
done
t=$(date +%s)
"$CLUSTER_HERE/install.sh"
clog "install: $(($(date +%s) - t)) s"
t=$(date +%s)
set +e
KUBECONFIG=$KUBECONFIG_ADMIN go test -tags e2e -count=1 -timeout 60m -v ./tests/e2e/ 2>&1 | tee "$OUT/e2e.log"
rc=${PIPESTATUS[0]}
set -e
clog "tests: $(($(date +%s) - t)) s (ensure ${ENSURE_S} s); full log $OUT/e2e.log"
[[ $dry_fail -eq 0 ]] || { clog "a dry-run failed"; rc=1; }
exit "$rc"
