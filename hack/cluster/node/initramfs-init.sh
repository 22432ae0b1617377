#!/bin/sh
# /init of a local-cluster node VM (busybox). Mounts the host's root read-only over 9p,
# puts an overlay with a tmpfs upper layer on it and switch_roots into it, so the node
# runs the host's own containerd, runc, CNI plugins and the cached kubelet. Then it runs
# the node boot script named on the kernel command line (hack/cluster/node/boot.sh).
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "@@NODE-FAIL $*"; sleep 2; poweroff -f; }
# shellcheck disable=SC2013 # module paths (no spaces), one a line
for m in $(cat /etc/node-modules); do insmod "$m" || fail "insmod $m"; done
boot="" kver=""
# shellcheck disable=SC2013 # the kernel command line is one line of space-separated words
for a in $(cat /proc/cmdline); do
	case $a in
	localnvme.boot=*) boot=${a#localnvme.boot=} ;;
	localnvme.kver=*) kver=${a#localnvme.kver=} ;;
	localnvme.modules=*) mods=${a#localnvme.modules=} ;;
	esac
done
mkdir -p /hostroot /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /hostroot || fail "mount 9p hostroot"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "tmpfs"
mkdir -p /rw/upper/var/lib /rw/upper/etc /rw/work
# Hide the host's pseudo filesystems and the directories the node mounts over: a whiteout
# in the upper layer, then a fresh (opaque, upper-only) directory in the merged view.
# Mount points on merged 9p-backed directories are not stable (the host's /proc changes
# under the 9p cache), and the node must not see the host's /run, /var/lib/kubelet, ...
HIDE="proc sys dev run var/lib/containerd var/lib/kubelet var/lib/cni var/log etc/cni etc/containerd"
for d in $HIDE; do mknod "/rw/upper/$d" c 0 0 || fail "whiteout $d"; done
mount -t overlay overlay -o lowerdir=/hostroot,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay"
for d in $HIDE; do mkdir "/newroot/$d" || fail "mkdir $d"; done
# the kernel's modules (from the cached kernel package on the host)
mkdir -p "/newroot/lib/modules/$kver"
mount --bind "/newroot$mods" "/newroot/lib/modules/$kver" || fail "bind modules $mods"
[ -f "/newroot$boot" ] || fail "boot script $boot not found on the host root"
# fresh instances (the overlay's lower /proc, /sys, /dev are the host's directories)
mount -t proc proc /newroot/proc || fail "proc"
mount -t sysfs sysfs /newroot/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /newroot/dev || fail "devtmpfs"
umount /proc /sys /dev
exec switch_root /newroot /bin/bash "$boot"
