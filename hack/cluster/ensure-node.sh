#!/usr/bin/env bash
# ensure-node.sh — the node VMs' kernel and initramfs, cached.
#
# The node VMs boot Debian's generic kernel (it has 9p as a module; the cloud kernel that
# the device-test VM uses lacks 9p). The initramfs is tiny (busybox + the modules needed to
# mount the host root over 9p with an overlay); every other module is loaded after
# switch_root from the unpacked kernel package on the host.
# Writes $NODE_CACHE/current.env with NODE_KVER, NODE_KERNEL, NODE_INITRD, NODE_MODULES.
set -Eeuo pipefail
trap 'echo "[node-ensure] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log() { printf '[node-ensure] %s\n' "$*"; }
KERNEL_META=linux-image-amd64
INITRD_MODULES=(virtio_pci virtio_net 9pnet_virtio 9p overlay)

mkdir -p "$NODE_CACHE"
exec 9>"$NODE_CACHE/.lock"
flock 9
rm -rf "$NODE_CACHE"/dl.* "$NODE_CACHE"/stage.* "$NODE_CACHE"/kernel/*.tmp

resolve() {
	apt-cache depends "$KERNEL_META" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ && $2 !~ /cloud/ { print $2; exit }'
}
KVER=""
# shellcheck source=/dev/null # written by this script below (KVER=...)
[[ -f $NODE_CACHE/kernel.env ]] && source "$NODE_CACHE/kernel.env"
if [[ -z $KVER || ! -f $NODE_CACHE/kernel/$KVER/lib/modules/$KVER/modules.dep ]]; then
	pkg=$(resolve || true)
	if [[ -z $pkg ]]; then apt-get update -qq; pkg=$(resolve); fi
	dl=$(mktemp -d "$NODE_CACHE/dl.XXXXXX")
	chmod 755 "$dl"
	log "kernel: downloading $pkg"
	if ! (cd "$dl" && apt-get download -qq "$pkg" 2>/dev/null); then
		apt-get update -qq
		pkg=$(resolve)
		(cd "$dl" && apt-get download -qq "$pkg")
	fi
	KVER=${pkg#linux-image-}
	rm -rf "$NODE_CACHE/kernel/$KVER" "$NODE_CACHE/kernel/$KVER.tmp"
	mkdir -p "$NODE_CACHE/kernel/$KVER.tmp"
	dpkg -x "$dl"/*.deb "$NODE_CACHE/kernel/$KVER.tmp"
	depmod -b "$NODE_CACHE/kernel/$KVER.tmp" "$KVER"
	mv "$NODE_CACHE/kernel/$KVER.tmp" "$NODE_CACHE/kernel/$KVER"
	rm -rf "$dl"
	echo "KVER=$KVER" >"$NODE_CACHE/kernel.env"
	log "kernel: $KVER unpacked"
fi
KROOT=$NODE_CACHE/kernel/$KVER
INITRD=$NODE_CACHE/initramfs-$KVER.cpio.gz
want=$( { sha256sum "$CLUSTER_HERE/ensure-node.sh" "$CLUSTER_HERE/node/initramfs-init.sh"; echo "$KVER"; } | sha256sum | cut -c1-16)
if [[ ! -f $INITRD || $(cat "$INITRD.inputs" 2>/dev/null) != "$want" ]]; then
	t0=$(date +%s)
	stage=$(mktemp -d "$NODE_CACHE/stage.XXXXXX")
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc,lib/modules}
	cp /bin/busybox "$stage/bin/busybox"
	for a in sh mount umount insmod mkdir mknod cat sleep poweroff switch_root echo; do ln -s busybox "$stage/bin/$a"; done
	: >"$stage/etc/node-modules"
	for m in "${INITRD_MODULES[@]}"; do
		while read -r kw path _; do
			[[ $kw == insmod ]] || continue
			rel=/lib/modules/${path#"$KROOT/lib/modules/"}
			grep -qxF "$rel" "$stage/etc/node-modules" && continue
			mkdir -p "$stage$(dirname "$rel")"
			cp "$path" "$stage$rel"
			echo "$rel" >>"$stage/etc/node-modules"
		done < <(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m")
	done
	install -m 0755 "$CLUSTER_HERE/node/initramfs-init.sh" "$stage/init"
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet) | gzip -6 -n >"$INITRD.tmp"
	mv "$INITRD.tmp" "$INITRD"
	echo "$want" >"$INITRD.inputs"
	rm -rf "$stage"
	log "initramfs: built $(du -h "$INITRD" | cut -f1) in $(($(date +%s) - t0)) s ($(wc -l <"$KROOT/../$KVER/lib/modules/$KVER/modules.dep") modules available after switch_root)"
fi
cat >"$NODE_CACHE/current.env" <<ENV
NODE_KVER=$KVER
NODE_KERNEL=$KROOT/boot/vmlinuz-$KVER
NODE_INITRD=$INITRD
NODE_MODULES=$KROOT/lib/modules/$KVER
ENV
log "kernel $KVER, initramfs $(du -h "$INITRD" | cut -f1)"
