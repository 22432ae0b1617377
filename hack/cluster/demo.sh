#!/usr/bin/env bash
# demo.sh — the main job: bring the two-node cluster up (if it is not), install localnvme
# from deploy/ as a user would, run a sample StatefulSet on localnvme volumes and print
# PVC → node → device class → LV → size, read from the API and from LVM on each node.
# The cluster stays up afterwards: `make cluster-down` stops it.
set -Eeuo pipefail
trap 'echo "[demo] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T0=$(date +%s)
clear_stale_cluster
if ! cluster_alive; then
	"$CLUSTER_HERE/up.sh"
fi
if ! kubectl_admin -n localnvme-system get ds localnvme-node >/dev/null 2>&1; then
	"$CLUSTER_HERE/install.sh"
fi
kubectl_admin apply -f "$CLUSTER_HERE/demo/statefulset.yaml"
clog "waiting for the StatefulSet db (2 replicas, one per node)"
kubectl_admin -n localnvme-demo rollout status statefulset/db --timeout=600s
echo
kubectl_admin -n localnvme-demo get pods -o wide
echo
# LVs per node, from LVM itself (the node plugin's container)
declare -A LVS
for pod in $(kubectl_admin -n localnvme-system get pods -l app.kubernetes.io/component=node -o name); do
	node=$(kubectl_admin -n localnvme-system get "$pod" -o jsonpath='{.spec.nodeName}')
	LVS[$node]=$(kubectl_admin -n localnvme-system exec "${pod#pod/}" -c localnvme -- \
		lvm lvs --noheadings --units b --nosuffix -o vg_name,lv_name,lv_size,lv_uuid)
done
printf '%-12s %-18s %-6s %-42s %-8s %s\n' PVC NODE CLASS "LV (on the node)" SIZE "LV SIZE (lvs)"
rows=0 missing=0
while read -r pvc pv _ size; do
	handle=$(kubectl_admin get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}')
	node=$(kubectl_admin get pv "$pv" -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}')
	# volume ID: <class>.<vg uuid>.<lv name>.<lv uuid without dashes>
	IFS=. read -r class _ lv lvuuid <<<"$handle"
	line=$(awk -v u="$lvuuid" '{ id = $4; gsub("-", "", id) } id == u' <<<"${LVS[$node]:-}")
	rows=$((rows + 1))
	if [[ -n $line ]]; then
		vg=$(awk '{ print $1 }' <<<"$line")
		lvsize="$(($(awk '{ print $3 }' <<<"$line") / 1048576))Mi"
	else
		vg="?" lvsize="NOT FOUND" missing=$((missing + 1))
	fi
	printf '%-12s %-18s %-6s %-42s %-8s %s\n' "$pvc" "$node" "$class" "$vg/$lv" "$size" "$lvsize"
done < <(kubectl_admin -n localnvme-demo get pvc -o jsonpath='{range .items[*]}{.metadata.name} {.spec.volumeName} {.spec.storageClassName} {.status.capacity.storage}{"\n"}{end}' | sort)
[[ $rows -eq 4 ]] || cdie "expected 4 claims (2 replicas × data + wal), found $rows"
[[ $missing -eq 0 ]] || cdie "$missing volume(s) have no LV on their node"
echo
clog "demo done in $(($(date +%s) - T0)) s; the cluster stays up (KUBECONFIG=$KUBECONFIG_ADMIN; make cluster-down)"
