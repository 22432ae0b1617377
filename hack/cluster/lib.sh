# lib.sh — shared settings of the local cluster scripts (sourced, not run).
# shellcheck shell=bash
CLUSTER_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # read by the scripts that source lib.sh
REPO_ROOT=$(cd "$CLUSTER_HERE/../.." && pwd)
# shellcheck source=versions.env
source "$CLUSTER_HERE/versions.env"
# QEMU_CPU: the guest CPU model (shared with hack/vm)
# shellcheck source=../vm/qemu-cpu.sh
source "$CLUSTER_HERE/../vm/qemu-cpu.sh"
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
CACHE_ROOT=$(mkdir -p "$CACHE_ROOT" && cd "$CACHE_ROOT" && pwd)
K8S_BIN=$CACHE_ROOT/bin/kubernetes-$K8S_VERSION
# shellcheck disable=SC2034 # read by the scripts that source lib.sh
SIDECAR_BIN=$CACHE_ROOT/bin/sidecars-$SIDECARS_TAG
# shellcheck disable=SC2034 # read by the scripts that source lib.sh
NODE_CACHE=$CACHE_ROOT/node          # generic kernel + node initramfs
IMAGES_DIR=$CACHE_ROOT/images        # docker-archive tarballs (hack/image/build.sh)
# Everything of one running cluster (certs, logs, pids, drive images) lives here; down.sh
# removes it. The node VMs read it through the host root shared over 9p.
RUN_DIR=${LOCALNVME_CLUSTER_DIR:-$CACHE_ROOT/cluster}
KUBECONFIG_ADMIN=$RUN_DIR/admin.kubeconfig
APISERVER_PORT=6443
# The address the node VMs reach the API server at (a qemu guestfwd to 127.0.0.1:6443).
GUEST_API_IP=10.0.2.100
# The in-cluster `kubernetes` Service address (each VM DNATs it to $GUEST_API_IP:6443,
# which is all kube-proxy would do for this one Service here).
# shellcheck disable=SC2034 # read by the scripts that source lib.sh
SERVICE_CIDR=10.96.0.0/16
SERVICE_API_IP=10.96.0.1
NODE_COUNT=${LOCALNVME_NODES:-2}
NODE_MEM=${LOCALNVME_NODE_MEM:-3072}
# One vCPU per node: two 2-vCPU TCG VMs on a 2-core host spent most of their time in the
# guest kernel (62% sys, load 12 on an idle node; lock holders preempted), and every LVM
# command took 10-37 s; with one vCPU each 1-3 s, and the install took 170 s instead of 434 s.
NODE_SMP=${LOCALNVME_NODE_SMP:-1}
# Drives of node N: serials match deploy/base/device-classes.yaml (fast: LNVFAST*, thin:
# LNVTHIN*); the spare matches no class and stays unclaimed.
node_name() { echo "localnvme-node-$1"; }
# the loopback address the apiserver dials node N's kubelet at (qemu hostfwd to :10250)
node_lo_ip() { echo "127.0.0.1$1"; }
node_drives() {
	local n=$1
	echo "LNVFAST${n}A:3G LNVFAST${n}B:3G LNVTHIN${n}A:4G LNVSPARE${n}A:1G"
}

clog() { printf '[cluster] %s\n' "$*"; }
cdie() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }
kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
# cluster_alive: the up marker exists and its API server process still runs. A marker
# without a live API server is state left by a killed session (a reboot, a timeout).
cluster_alive() {
	[[ -f $RUN_DIR/up && -f $RUN_DIR/pids/kube-apiserver ]] &&
		kill -0 "$(cat "$RUN_DIR/pids/kube-apiserver")" 2>/dev/null
}
# clear_stale_cluster: if a marker is left but nothing runs, tear the leftovers down.
clear_stale_cluster() {
	if [[ -f $RUN_DIR/up ]] && ! cluster_alive; then
		clog "stale cluster state at $RUN_DIR (its API server is not running): cleaning it up"
		"$CLUSTER_HERE/down.sh"
	fi
}

# ------------------------------------------------------------------ node VMs
# Shared by up.sh (first start of every node) and node-vm.sh (stop and start one node, for
# the failure scenarios of tests/e2e), so a restarted node runs the same qemu command line.
PKI_DIR=$RUN_DIR/pki
# The node settings of the running cluster, written by up.sh: node-vm.sh starts a node again
# with these, whatever its own environment says.
NODES_ENV=$RUN_DIR/nodes.env
QEMU_BIOS=()
if [[ -f /usr/share/qemu/qboot.rom ]]; then QEMU_BIOS=(-bios /usr/share/qemu/qboot.rom); fi

# write_nodes_env: record NODE_COUNT, NODE_MEM, NODE_SMP and the node kernel and initramfs
# (from $NODE_CACHE/current.env, sourced by the caller) in $NODES_ENV.
write_nodes_env() {
	local v
	for v in NODE_COUNT NODE_MEM NODE_SMP NODE_KERNEL NODE_INITRD NODE_KVER NODE_MODULES; do
		[[ -n ${!v:-} ]] || cdie "write_nodes_env: $v is not set"
		printf '%s=%q\n' "$v" "${!v}"
	done >"$NODES_ENV"
}

# load_nodes_env: the settings up.sh started the nodes with.
load_nodes_env() {
	[[ -f $NODES_ENV ]] || cdie "no $NODES_ENV: the cluster was not started by this up.sh (run hack/cluster/down.sh and up.sh)"
	# shellcheck disable=SC1090
	source "$NODES_ENV"
}

# node_index NAME|N: the index of a node given by name (localnvme-node-N) or index.
node_index() {
	local a=$1 i
	[[ $a =~ ^[0-9]+$ ]] || a=${a#localnvme-node-}
	[[ $a =~ ^[0-9]+$ ]] && ((a >= 1 && a <= NODE_COUNT)) || return 1
	i=$a
	echo "$i"
}

node_dir() { echo "$RUN_DIR/nodes/$(node_name "$1")"; }
node_pid_file() { echo "$RUN_DIR/pids/qemu-$(node_name "$1")"; }

# node_pid N: the pid of node N's running qemu (exit 1 when it does not run). A pid file
# whose process is gone, a zombie or another program does not count.
node_pid() {
	local f pid state
	f=$(node_pid_file "$1")
	[[ -f $f ]] || return 1
	pid=$(cat "$f")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "localnvme.nodeenv=$(node_dir "$1")/node.env" || return 1
	echo "$pid"
}

# rotate_node_logs N: move the logs of node N's previous boot (console, qemu, the share's
# containerd/kubelet/boot/images logs) to nodes/<name>/prev/<K>/, so a restart keeps them.
rotate_node_logs() {
	local dir k=1 f
	dir=$(node_dir "$1")
	[[ -f $dir/console.log ]] || return 0
	while [[ -e $dir/prev/$k ]]; do k=$((k + 1)); done
	mkdir -p "$dir/prev/$k"
	for f in "$dir/console.log" "$dir/qemu.log" "$dir"/share/*.log; do
		if [[ -f $f ]]; then mv "$f" "$dir/prev/$k/"; fi
	done
	return 0
}

# ------------------------------------------------------------------ containerd disks
# Each node VM keeps containerd's state (/var/lib/containerd: images and their snapshots)
# on a disk of its own, nodes/<name>/containerd.img (ext4, virtio-blk with serial
# "containerd"), so a node that node-vm.sh powers off and on comes back with its images, as
# a rebooted machine does. up.sh starts each node from a copy of the seed: a disk on which
# every image but the driver's (a new tag per commit) is already imported, built once per
# seed key by seed-images.sh. Importing them at each boot took ~5 min of a node's start
# under TCG (postgres alone ~9 min more).
SEED_DIR=$CACHE_ROOT/containerd-seed
SEED_VERSION=1 # bump when the seed's layout changes
CTRD_DISK_SIZE=8G
# seed_lines: the images.txt lines ("ref tar") of the images a seed holds
seed_lines() { grep -v '^localnvme\.local/localnvme:' "$IMAGES_DIR/images.txt"; }
# seed_key: the seed's version, containerd's version and the content of each seeded image's
# tarball (not its .inputs: those name the checkout's paths, so every clone would differ)
seed_key() {
	local ref tar
	{
		echo "seed $SEED_VERSION"
		containerd --version
		seed_lines | while read -r ref tar; do echo "$ref $(sha256sum "$tar" | cut -d' ' -f1)"; done
	} | sha256sum | cut -c1-16
}
seed_path() { echo "$SEED_DIR/seed-$(seed_key).img"; }
# new_ctrd_disk FILE: a new empty sparse ext4 disk image
new_ctrd_disk() {
	rm -f "$1"
	truncate -s "$CTRD_DISK_SIZE" "$1"
	mkfs.ext4 -q -F -L containerd -N 262144 -E lazy_itable_init=0,lazy_journal_init=0 "$1"
}

# node_qemu DIR NODE-ENV ARGS...: exec the qemu of a node VM whose files
# are in DIR: the generic kernel booting boot.sh over the host root (9p, read-only), DIR/share
# as its log directory, DIR/containerd.img as containerd's disk, and ARGS (drives, network).
# It execs: call it in a subshell, or in the background (then $! is qemu's pid).
node_qemu() {
	local dir=$1 env=$2
	shift 2
	# shellcheck disable=SC2054 # the commas are qemu's option syntax
	local qemu=(qemu-system-x86_64 -accel tcg -machine pc -cpu "$QEMU_CPU" "${QEMU_BIOS[@]}" -m "$NODE_MEM" -smp "$NODE_SMP"
		-nodefaults -nographic -no-reboot -monitor none -serial "file:$dir/console.log"
		-kernel "$NODE_KERNEL" -initrd "$NODE_INITRD"
		-append "console=ttyS0 panic=-1 loglevel=5 rdinit=/init localnvme.boot=$CLUSTER_HERE/node/boot.sh localnvme.kver=$NODE_KVER localnvme.modules=$NODE_MODULES localnvme.nodeenv=$env"
		-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
		-fsdev "local,id=nodeshare,path=$dir/share,security_model=none"
		-device virtio-9p-pci,fsdev=nodeshare,mount_tag=nodeshare
		-drive "file=$dir/containerd.img,if=none,id=ctrd,format=raw,cache=unsafe,aio=threads"
		-device virtio-blk-pci,drive=ctrd,serial=containerd
		"$@")
	printf '%q ' "${qemu[@]}" >"$dir/qemu.cmdline"
	echo >>"$dir/qemu.cmdline"
	exec "${qemu[@]}" </dev/null >"$dir/qemu.log" 2>&1
}

# start_node N [blank]: write node N's files (kubeconfig, kubelet config, node.env) and start
# its qemu in the background (pid in pids/qemu-<name>). The drive images are created sparse
# when missing and otherwise kept (same disks); with "blank" each is replaced by a new
# empty sparse file of the same size and serial (the node rebuilt with new disks).
start_node() {
	local i=$1 blank=${2:-} n dir args=() d serial size k=0
	n=$(node_name "$i")
	dir=$RUN_DIR/nodes/$n
	rotate_node_logs "$i"
	mkdir -p "$dir/share" "$dir/drives"
	cp "$PKI_DIR/kubelet-$n.kubeconfig" "$dir/kubelet.kubeconfig"
	cat >"$dir/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI_DIR/kubelet-serving-$n.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving-$n.key
resolvConf: /etc/resolv.conf
# the node's root and kubelet dirs are tmpfs in the VM, containerd's a disk: no disk-pressure eviction
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
KUBELET
	cat >"$dir/node.env" <<ENV
NODE_NAME=$n
NODE_INDEX=$i
NODE_DIR=$dir
K8S_BIN=$K8S_BIN
IMAGES_DIR=$IMAGES_DIR
GUEST_API_IP=$GUEST_API_IP
SERVICE_API_IP=$SERVICE_API_IP
POD_CIDR=10.244.$i.0/24
ENV
	for d in $(node_drives "$i"); do
		serial=${d%%:*} size=${d#*:}
		if [[ $blank == blank ]]; then rm -f "$dir/drives/$serial.img"; fi
		truncate -s "$size" "$dir/drives/$serial.img"
		args+=(-drive "file=$dir/drives/$serial.img,if=none,id=d$k,format=raw,cache=unsafe,aio=threads")
		args+=(-device "nvme,drive=d$k,serial=$serial")
		k=$((k + 1))
	done
	# containerd's disk: kept across restarts; a node's first start copies the seed
	if [[ ! -f $dir/containerd.img ]]; then
		local seed
		seed=$(seed_path)
		if [[ -f $seed ]]; then
			cp --sparse=always "$seed" "$dir/containerd.img"
		else
			clog "$n: no containerd seed $seed (hack/cluster/seed-images.sh): it imports every image at boot"
			new_ctrd_disk "$dir/containerd.img"
		fi
	fi
	# shellcheck disable=SC2054 # the commas separate qemu's -netdev options inside one argument
	args+=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:$GUEST_API_IP:$APISERVER_PORT-cmd:busybox nc 127.0.0.1 $APISERVER_PORT,hostfwd=tcp:$(node_lo_ip "$i"):10250-:10250"
		-device virtio-net-pci,netdev=n0)
	node_qemu "$dir" "$dir/node.env" "${args[@]}" &
	echo $! >"$RUN_DIR/pids/qemu-$n"
	date +%s >"$dir/started-at"
}

# node_state N [OLD-BOOT-ID]: 0 when node N's Node is Ready (and, given OLD-BOOT-ID, reports
# another boot ID: the Node status of the previous boot does not count), 1 while it is not
# yet, 2 when it cannot become Ready (its qemu exited, or boot.sh reported @@NODE-FAIL on the
# console; the reason on stdout).
node_state() {
	local n old=${2:-} st
	n=$(node_name "$1")
	node_pid "$1" >/dev/null || { echo "qemu of $n exited"; return 2; }
	if grep -aqs '@@NODE-FAIL' "$RUN_DIR/nodes/$n/console.log"; then
		grep -a '@@NODE-FAIL' "$RUN_DIR/nodes/$n/console.log"
		return 2
	fi
	st=$(kubectl_admin get node "$n" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.bootID}' 2>/dev/null) || return 1
	[[ ${st%% *} == True ]] || return 1
	[[ -z $old || ${st#* } != "$old" ]] || return 1
}

# node_boot_id N: the boot ID node N's Node reports ("" when there is no such Node).
node_boot_id() {
	kubectl_admin get node "$(node_name "$1")" -o 'jsonpath={.status.nodeInfo.bootID}' 2>/dev/null || true
}

# node_diag N: the tails of node N's console and kubelet log, on stderr.
node_diag() {
	local n
	n=$(node_name "$1")
	echo "--- $n console (tail) ---" >&2
	tr -d '\r' <"$RUN_DIR/nodes/$n/console.log" 2>/dev/null | tail -n 15 >&2 || true
	tail -n 15 "$RUN_DIR/nodes/$n/share/kubelet.log" >&2 2>/dev/null || true
}

# node_markers N: the boot.sh progress markers of node N's console, on one line.
node_markers() {
	{ tr -d '\r' <"$(node_dir "$1")/console.log" | grep -a '^@@NODE' | tr '\n' ';'; } 2>/dev/null || true
}
