#!/usr/bin/env bash
# pki.sh — certificates and kubeconfigs of one local cluster (openssl), in $RUN_DIR/pki.
# Run by up.sh; idempotent (keeps what exists).
set -Eeuo pipefail
trap 'echo "[pki] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
P=$RUN_DIR/pki
mkdir -p "$P"
cd "$P"
if [[ ! -f ca.crt ]]; then
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
		-subj "/CN=localnvme-local-ca" 2>/dev/null
fi
if [[ ! -f sa.key ]]; then
	openssl genrsa -out sa.key 2048 2>/dev/null
	openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi
# cert NAME CN ORG SANS(comma list or "") USAGE(client|server|both)
cert() {
	local name=$1 cn=$2 org=$3 sans=$4 usage=$5
	local subj="/CN=$cn" eku
	[[ -f $name.crt ]] && return
	[[ -n $org ]] && subj="/O=$org$subj"
	case $usage in
	client) eku=clientAuth ;;
	server) eku=serverAuth ;;
	*) eku=serverAuth,clientAuth ;;
	esac
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[[ -n $sans ]] && echo "subjectAltName=$sans"
	} >"$name.ext"
	openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
	openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
		-extfile "$name.ext" -out "$name.crt" 2>/dev/null
	rm -f "$name.csr" "$name.ext"
}
# kubeconfig FILE SERVER CERTNAME USER
kubeconfig() {
	local file=$1 server=$2 c=$3
	cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: localnvme
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$P/ca.crt")
users:
- name: $c
  user:
    client-certificate-data: $(base64 -w0 <"$P/$c.crt")
    client-key-data: $(base64 -w0 <"$P/$c.key")
contexts:
- name: localnvme
  context: {cluster: localnvme, user: $c}
current-context: localnvme
KC
}
cert apiserver kube-apiserver "" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$GUEST_API_IP,IP:$SERVICE_API_IP" server
cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
cert admin localnvme-admin system:masters "" client
cert controller-manager system:kube-controller-manager "" "" client
cert scheduler system:kube-scheduler "" "" client
local_api=https://127.0.0.1:$APISERVER_PORT
kubeconfig "$RUN_DIR/admin.kubeconfig" "$local_api" admin
kubeconfig "$P/controller-manager.kubeconfig" "$local_api" controller-manager
kubeconfig "$P/scheduler.kubeconfig" "$local_api" scheduler
for ((i = 1; i <= NODE_COUNT; i++)); do
	n=$(node_name "$i")
	cert "kubelet-$n" "system:node:$n" system:nodes "" client
	cert "kubelet-serving-$n" "$n" "" "DNS:$n,IP:$(node_lo_ip "$i"),IP:10.0.2.15" server
	kubeconfig "$P/kubelet-$n.kubeconfig" "https://$GUEST_API_IP:$APISERVER_PORT" "kubelet-$n"
done
chmod 600 "$P"/*.key
