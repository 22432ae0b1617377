#!/bin/bash
# boot.sh — PID 1 of a local-cluster node VM after switch_root (see initramfs-init.sh).
# The root is the host's root (read-only 9p) under a tmpfs overlay, so the host's
# containerd, runc, CNI plugins and the cached kubelet run here. Brings up the node:
# mounts, cgroup2, modules, network (qemu user net, restricted), containerd with the
# locally built images imported, then kubelet. Progress goes to the console as @@ markers.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
set -u
mark() { echo "@@NODE $*" >/dev/console; }
fail() { echo "@@NODE-FAIL $*" >/dev/console; sync; sleep 1; echo o >/proc/sysrq-trigger; sleep 30; }
nodeenv=""
# shellcheck disable=SC2013 # the kernel command line is one line of space-separated words
for a in $(cat /proc/cmdline); do
	case $a in localnvme.nodeenv=*) nodeenv=${a#localnvme.nodeenv=} ;; esac
done
[[ -f $nodeenv ]] || fail "node env $nodeenv missing"
# NODE_NAME NODE_INDEX NODE_DIR K8S_BIN IMAGES_DIR GUEST_API_IP SERVICE_API_IP POD_CIDR
# shellcheck source=/dev/null # written per node at run time (node-vm.sh)
source "$nodeenv"
mark "boot $NODE_NAME uptime $(cut -d' ' -f1 /proc/uptime)"

mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/localnvme-node
# the node's log/share directory on the host (writable 9p)
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 nodeshare /run/localnvme-node || fail "mount nodeshare"
LOG=/run/localnvme-node
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cgroup2"
echo "+cpuset +cpu +io +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
	echo "+cpu +io +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
for d in /var/lib/containerd /var/lib/kubelet /var/log /var/lib/cni /etc/cni/net.d /etc/containerd /run/containerd; do
	mkdir -p "$d"
done
mods=()
for m in nvme dm_mod dm_thin_pool dm_snapshot dm_bufio dm_persistent_data xfs ext4 loop virtio_blk \
	bridge br_netfilter veth nf_conntrack nf_nat nf_tables nft_chain_nat nft_compat \
	xt_MASQUERADE xt_addrtype xt_comment xt_mark xt_conntrack xt_nat iptable_nat iptable_filter; do
	mods+=("$m")
done
modprobe -a "${mods[@]}" >>"$LOG/boot.log" 2>&1 || fail "modprobe -a ${mods[*]} (see boot.log)"
mark "modules loaded uptime $(cut -d' ' -f1 /proc/uptime)"

# containerd's state lives on the node's own disk (virtio-blk, serial "containerd"; lib.sh):
# a restarted node keeps its images. Overlay cannot be stacked on overlay or 9p, so without
# that disk it is a tmpfs.
ctrd_dev=""
for _ in $(seq 1 20); do
	for b in /sys/block/vd*; do
		[[ -f $b/serial && $(cat "$b/serial") == containerd ]] && ctrd_dev=/dev/${b##*/}
	done
	[[ -n $ctrd_dev && -b $ctrd_dev ]] && break
	sleep 0.5
done
if [[ -n $ctrd_dev ]]; then
	mount -t ext4 -o noatime "$ctrd_dev" /var/lib/containerd >>"$LOG/boot.log" 2>&1 || fail "mount $ctrd_dev (containerd disk) on /var/lib/containerd"
	mark "containerd disk $ctrd_dev mounted uptime $(cut -d' ' -f1 /proc/uptime)"
else
	mount -t tmpfs -o mode=0755 tmpfs /var/lib/containerd
	mark "no containerd disk: tmpfs"
fi
mount -t tmpfs -o mode=0755 tmpfs /var/lib/kubelet
mount -t tmpfs -o mode=0755 tmpfs /var/log
mount --make-rshared /
mount --bind /var/lib/kubelet /var/lib/kubelet
mount --make-rshared /var/lib/kubelet
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 kernel.panic=10 \
	kernel.panic_on_oops=1 vm.overcommit_memory=1 fs.inotify.max_user_instances=1024 >>"$LOG/boot.log" 2>&1

# SEED_ONLY=1 (seed-images.sh): no network, no kubelet; import the images, sync, power off
SEED_ONLY=${SEED_ONLY:-0}
if [[ $SEED_ONLY != 1 ]]; then
hostname "$NODE_NAME"
echo "$NODE_NAME" >/etc/hostname
printf '127.0.0.1 localhost\n10.0.2.15 %s\n' "$NODE_NAME" >/etc/hosts
echo "nameserver 10.0.2.3" >/etc/resolv.conf
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# What kube-proxy would do for the one Service that matters here: the in-cluster API
# address (the `kubernetes` Service) goes to the qemu guestfwd that reaches the host API.
for chain in OUTPUT PREROUTING; do
	iptables -t nat -A "$chain" -d "$SERVICE_API_IP/32" -p tcp --dport 443 \
		-j DNAT --to-destination "$GUEST_API_IP:6443" >>"$LOG/boot.log" 2>&1 || fail "iptables DNAT"
done

cat >/etc/cni/net.d/10-localnvme-bridge.conflist <<CNI
{
  "cniVersion": "1.0.0",
  "name": "localnvme-pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
fi # SEED_ONLY
cat >/etc/containerd/config.toml <<TOML
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localnvme.local/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
TOML
mark "containerd starting uptime $(cut -d' ' -f1 /proc/uptime)"
containerd --config /etc/containerd/config.toml >"$LOG/containerd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 1 60); do
	[[ -S /run/containerd/containerd.sock ]] && ctr version >/dev/null 2>&1 && break
	sleep 0.5
done
ctr version >/dev/null 2>&1 || fail "containerd did not start (see containerd.log)"
# the images hack/image/build.sh made (images.txt: "ref path" per line)
[[ -f $IMAGES_DIR/images.txt ]] || fail "no $IMAGES_DIR/images.txt (hack/image/build.sh)"
# Import each image the node's containerd does not have yet: on a node started from the
# seed only the driver's, on a restarted node none. The seed VM skips the driver's image.
import_images() {
	local ref tar have n=0 kept=0
	have=$(ctr -n k8s.io images ls -q)
	while read -r ref tar; do
		if [[ $SEED_ONLY == 1 && $ref == localnvme.local/localnvme:* ]]; then continue; fi
		if grep -qxF "$ref" <<<"$have"; then
			kept=$((kept + 1))
			continue
		fi
		ctr -n k8s.io images import "$tar" >>"$LOG/images.log" 2>&1 || fail "import $ref from $tar"
		ctr -n k8s.io images ls -q | grep -qxF "$ref" || fail "image $ref not in containerd after importing $tar"
		# pin it: kubelet's image GC must not remove images no registry can bring back
		ctr -n k8s.io images label "$ref" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
		n=$((n + 1))
	done <"$IMAGES_DIR/images.txt"
	sync
	mark "images: $n imported, $kept already there uptime $(cut -d' ' -f1 /proc/uptime)"
}
import_images
if [[ $SEED_ONLY == 1 ]]; then
	kill "$ctrd_pid" 2>/dev/null
	wait "$ctrd_pid" # boot.sh is its parent: this returns once it has exited
	umount /var/lib/containerd || fail "unmounting the containerd disk"
	sync
	mark "seed done"
	echo o >/proc/sysrq-trigger
	sleep 30
fi

"$K8S_BIN/kubelet" --config="$NODE_DIR/kubelet.yaml" --kubeconfig="$NODE_DIR/kubelet.kubeconfig" \
	--container-runtime-endpoint=unix:///run/containerd/containerd.sock \
	--hostname-override="$NODE_NAME" --node-ip=10.0.2.15 --root-dir=/var/lib/kubelet \
	--v="${KUBELET_V:-1}" >"$LOG/kubelet.log" 2>&1 &
mark "kubelet started uptime $(cut -d' ' -f1 /proc/uptime)"
# PID 1: reap orphans until the VM is killed by down.sh
while :; do wait -n 2>/dev/null || sleep 1; done
