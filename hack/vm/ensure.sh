#!/usr/bin/env bash
# ensure.sh — make sure everything the localnvme VM harness needs is present.
#
# Idempotent. Installs missing Debian packages (apt-get update at most once),
# downloads and unpacks the Debian cloud kernel into the cache, and builds the
# base initramfs (gzip cpio). The initramfs is rebuilt only when it is missing
# or when the hash of its build inputs (this script, init.sh, the kernel
# version and the tool package versions) changed.
#
# Cache: ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/vm   (never inside the repo)
# On success it writes $VM_CACHE/current.env with KERNEL=, INITRD=, KVER=.
set -Eeuo pipefail
trap 'echo "[vm-ensure] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
VM_CACHE=$CACHE_ROOT/vm

# Host packages the harness needs (the initramfs is built from their files).
PACKAGES=(
	qemu-system-x86 lvm2 dmsetup thin-provisioning-tools xfsprogs e2fsprogs
	nvme-cli busybox-static cpio kmod util-linux mount fdisk bash gzip
)
KERNEL_META=linux-image-cloud-amd64

# Kernel modules to put into the initramfs (dependencies are added
# automatically; names that are built in or missing are skipped).
MODULES=(
	crc32c_generic crc32c-intel libcrc32c
	dm-mod dm-bufio dm-persistent-data dm-thin-pool dm-snapshot
	dm-log dm-region-hash dm-mirror dm-zero dm-cache dm-cache-smq
	xfs ext4 loop virtio_pci virtio_blk nvme
)

START_TS=$(date +%s.%N)
log() { printf '[vm-ensure] %s\n' "$*"; }
die() { printf '[vm-ensure] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v s="$START_TS" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install packages"
	SUDO=(sudo)
fi

APT_UPDATED=0
apt_update_once() {
	if [[ $APT_UPDATED -eq 0 ]]; then
		log "apt-get update"
		"${SUDO[@]}" apt-get update -qq
		APT_UPDATED=1
	fi
}

pkg_installed() {
	[[ $(dpkg-query -W -f '${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		pkg_installed "$p" || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "packages: all ${#PACKAGES[@]} present"
		return
	fi
	log "packages: installing ${missing[*]}"
	apt_update_once
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for p in "${missing[@]}"; do
		pkg_installed "$p" || die "package $p did not install"
	done
	DID+=("installed ${missing[*]}")
}

# resolve_kernel_pkg prints linux-image-6.1.0-N-cloud-amd64.
resolve_kernel_pkg() {
	apt-cache depends "$KERNEL_META" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }'
}

ensure_kernel() {
	local env_file=$VM_CACHE/kernel.env
	if [[ -f $env_file ]]; then
		# shellcheck disable=SC1090
		source "$env_file"
		if [[ -n ${KVER:-} && -f $VM_CACHE/kernel/$KVER/boot/vmlinuz-$KVER &&
			-f $VM_CACHE/kernel/$KVER/lib/modules/$KVER/modules.dep ]]; then
			log "kernel: $KVER (cached)"
			return
		fi
	fi
	local kpkg
	kpkg=$(resolve_kernel_pkg || true)
	if [[ -z $kpkg ]]; then
		apt_update_once
		kpkg=$(resolve_kernel_pkg || true)
	fi
	[[ -n $kpkg ]] || die "cannot resolve the kernel package that $KERNEL_META depends on"
	local dl
	dl=$(mktemp -d "$VM_CACHE/dl.XXXXXX")
	chmod 755 "$dl"
	log "kernel: downloading $kpkg"
	if ! (cd "$dl" && apt-get download -qq "$kpkg" 2>/dev/null); then
		# Stale package lists can point at a version the mirror no longer has.
		apt_update_once
		kpkg=$(resolve_kernel_pkg || true)
		[[ -n $kpkg ]] || die "cannot resolve the kernel package after apt-get update"
		(cd "$dl" && apt-get download -qq "$kpkg") || die "apt-get download $kpkg failed"
	fi
	KVER=${kpkg#linux-image-}
	local deb
	deb=$(find "$dl" -maxdepth 1 -name '*.deb' -print -quit)
	[[ -n $deb ]] || die "apt-get download produced no .deb"
	local dest=$VM_CACHE/kernel/$KVER
	rm -rf "$dest.tmp" "$dest"
	mkdir -p "$dest.tmp"
	dpkg -x "$deb" "$dest.tmp"
	rm -rf "$dl"
	[[ -f $dest.tmp/boot/vmlinuz-$KVER ]] || die "no boot/vmlinuz-$KVER in $deb"
	depmod -b "$dest.tmp" "$KVER"
	mv "$dest.tmp" "$dest"
	printf 'KVER=%s\n' "$KVER" >"$env_file.tmp"
	mv "$env_file.tmp" "$env_file"
	DID+=("downloaded kernel $KVER")
	log "kernel: $KVER unpacked into $dest"
}

# ---------------------------------------------------------------- initramfs

input_hash() {
	{
		sha256sum "$HERE/ensure.sh" "$HERE/init.sh" | awk '{ print $1 }'
		echo "kernel=$KVER"
		dpkg-query -W -f '${Package}=${Version}\n' "${PACKAGES[@]}"
	} | sha256sum | awk '{ print $1 }'
}

# stage_libs FILE: copy the shared libraries FILE needs (and the loader).
stage_libs() {
	local f=$1 lib
	# ldd fails ("not a dynamic executable") for static binaries and scripts.
	{ ldd "$f" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' |
		while read -r lib; do
			[[ -e $STAGE$lib ]] && continue
			mkdir -p "$STAGE$(dirname "$lib")"
			cp -L "$lib" "$STAGE$lib"
		done
}

# stage_bin SRC [DEST]: copy an executable (resolving symlinks) plus its libs.
stage_bin() {
	local src=$1 dest=${2:-$1}
	[[ -e $src ]] || die "initramfs input missing on host: $src"
	mkdir -p "$STAGE$(dirname "$dest")"
	rm -f "$STAGE$dest"
	cp -L "$src" "$STAGE$dest"
	chmod 0755 "$STAGE$dest"
	stage_libs "$src"
}

# stage_links DIR TARGET: recreate every symlink in host DIR pointing to TARGET.
stage_links() {
	local dir=$1 target=$2 l
	while IFS= read -r l; do
		rm -f "$STAGE$l"
		ln -s "$target" "$STAGE$l"
	done < <(find "$dir" -maxdepth 1 -type l -lname "$target" | sort)
}

stage_link() { # stage_link TARGET LINKPATH
	rm -f "$STAGE$2"
	ln -s "$1" "$STAGE$2"
}

write_lvm_conf() {
	mkdir -p "$STAGE/etc/lvm"
	cat >"$STAGE/etc/lvm/lvm.conf" <<'EOF'
# localnvme VM harness: LVM without udev.
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	issue_discards = 1
}
global {
	use_lvmpolld = 0
	thin_check_executable = "/usr/sbin/thin_check"
	thin_repair_executable = "/usr/sbin/thin_repair"
	thin_dump_executable = "/usr/sbin/thin_dump"
	cache_check_executable = "/usr/sbin/cache_check"
	cache_dump_executable = "/usr/sbin/cache_dump"
	cache_repair_executable = "/usr/sbin/cache_repair"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
backup {
	# metadata backups go to the VM's RAM root fs (avoids the
	# "This metadata update is NOT backed up" warning on every change)
	backup = 1
	archive = 0
}
EOF
}

stage_modules() {
	local kroot=$VM_CACHE/kernel/$KVER m line path rel out
	: >"$STAGE/etc/localnvme-modules"
	for m in "${MODULES[@]}"; do
		if ! out=$(modprobe -d "$kroot" -S "$KVER" --show-depends "$m" 2>/dev/null); then
			log "  module $m: not found, skipped"
			continue
		fi
		while IFS= read -r line; do
			case $line in
			insmod\ *)
				path=${line#insmod }
				path=${path%% *}
				rel=${path#"$kroot"}
				if ! grep -qxF "$rel" "$STAGE/etc/localnvme-modules"; then
					mkdir -p "$STAGE$(dirname "$rel")"
					cp "$path" "$STAGE$rel"
					echo "$rel" >>"$STAGE/etc/localnvme-modules"
				fi
				;;
			esac
		done <<<"$out"
	done
	cp "$kroot/lib/modules/$KVER/modules.order" "$kroot/lib/modules/$KVER/modules.builtin" \
		"$kroot/lib/modules/$KVER/modules.builtin.modinfo" \
		"$STAGE/lib/modules/$KVER/" 2>/dev/null || true
	depmod -b "$STAGE" "$KVER"
}

build_initramfs() {
	local out=$1
	STAGE=$(mktemp -d "$VM_CACHE/stage.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$STAGE'" EXIT

	# merged-/usr layout like the host
	mkdir -p "$STAGE"/usr/{bin,sbin,lib,lib64} "$STAGE"/{dev,proc,sys,tmp,run,etc,root,mnt,var,payload,results}
	ln -s usr/bin "$STAGE/bin"
	ln -s usr/sbin "$STAGE/sbin"
	ln -s usr/lib "$STAGE/lib"
	ln -s usr/lib64 "$STAGE/lib64"
	ln -s ../run "$STAGE/var/run"
	ln -s ../tmp "$STAGE/var/tmp"

	# busybox first; real tools below replace its applets.
	cp /bin/busybox "$STAGE/usr/bin/busybox"
	local a
	while IFS= read -r a; do
		a=${a#/}
		case $a in bin/* | sbin/*) a=usr/$a ;; esac
		[[ -e $STAGE/$a || -L $STAGE/$a ]] || ln -s /usr/bin/busybox "$STAGE/$a"
	done < <(/bin/busybox --list-full)

	# LVM + device-mapper + thin tools
	stage_bin /usr/sbin/lvm
	stage_links /usr/sbin lvm
	stage_bin /usr/sbin/dmsetup
	stage_bin /usr/sbin/pdata_tools
	stage_links /usr/sbin pdata_tools
	# ext4
	stage_bin /usr/sbin/mke2fs
	stage_links /usr/sbin mke2fs
	stage_bin /usr/sbin/e2fsck
	stage_links /usr/sbin e2fsck
	stage_bin /usr/sbin/tune2fs
	stage_links /usr/sbin tune2fs
	stage_bin /usr/sbin/resize2fs
	stage_bin /usr/sbin/dumpe2fs
	cp /etc/mke2fs.conf "$STAGE/etc/mke2fs.conf"
	# xfs
	local x
	for x in mkfs.xfs xfs_growfs xfs_repair xfs_db xfs_io; do stage_bin "/usr/sbin/$x"; done
	stage_bin /usr/sbin/xfs_admin # shell script (busybox sh runs it)
	stage_bin /usr/sbin/fsck.xfs
	# util-linux (k8s mount-utils parses their output: real ones, not busybox)
	for x in /usr/bin/mount /usr/bin/umount /usr/bin/findmnt /usr/bin/lsblk \
		/usr/sbin/blkid /usr/sbin/wipefs /usr/sbin/sfdisk /usr/sbin/blockdev \
		/usr/sbin/losetup /usr/sbin/fsck /usr/sbin/blkdiscard; do
		stage_bin "$x"
	done
	stage_bin /usr/sbin/nvme
	stage_bin /usr/bin/bash

	# config
	write_lvm_conf
	ln -s /proc/self/mounts "$STAGE/etc/mtab"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$STAGE/etc/passwd"
	echo 'root:x:0:' >"$STAGE/etc/group"
	echo 'localnvme-vm' >"$STAGE/etc/hostname"
	stage_modules
	install -m 0755 "$HERE/init.sh" "$STAGE/init"

	# sanity: the main tools must run inside the stage (libraries complete)
	local bad=0 cmd
	for cmd in "lvm version" "dmsetup --version" "thin_check -V" "mount --version" \
		"mkfs.xfs -V" "xfs_db -V" "mke2fs -V" "nvme version" "sfdisk --version" "bash --version"; do
		# shellcheck disable=SC2086
		if ! chroot "$STAGE" /usr/bin/env PATH=/usr/sbin:/usr/bin $cmd >/dev/null 2>&1; then
			log "  sanity: '$cmd' does not run inside the stage"
			bad=1
		fi
	done
	[[ $bad -eq 0 ]] || die "initramfs stage is missing libraries"

	(cd "$STAGE" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --reproducible --quiet) | gzip -6 -n >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$STAGE"
	trap - EXIT
}

ensure_initramfs() {
	local out=$VM_CACHE/initramfs-base.cpio.gz hash_file=$VM_CACHE/initramfs-base.inputs
	local want have=""
	want=$(input_hash)
	[[ -f $hash_file ]] && have=$(cat "$hash_file")
	if [[ -f $out && $want == "$have" ]]; then
		log "initramfs: up to date ($(du -h "$out" | cut -f1), inputs ${want:0:12})"
		return
	fi
	local t0 reason=missing
	[[ -f $out ]] && reason="inputs changed"
	t0=$(date +%s)
	log "initramfs: building ($reason)"
	build_initramfs "$out"
	echo "$want" >"$hash_file"
	DID+=("built initramfs ($reason)")
	log "initramfs: built $(du -h "$out" | cut -f1) in $(($(date +%s) - t0)) s"
}

main() {
	DID=()
	mkdir -p "$VM_CACHE"
	exec 9>"$VM_CACHE/.lock"
	if ! flock -n 9; then
		log "waiting for another ensure.sh (lock $VM_CACHE/.lock)"
		flock 9
	fi
	# leftovers of an interrupted earlier run (safe: we hold the lock)
	rm -rf "$VM_CACHE"/stage.* "$VM_CACHE"/dl.* "$VM_CACHE"/kernel/*.tmp "$VM_CACHE"/*.tmp
	ensure_packages
	ensure_kernel
	ensure_initramfs
	{
		echo "KVER=$KVER"
		echo "KERNEL=$VM_CACHE/kernel/$KVER/boot/vmlinuz-$KVER"
		echo "INITRD=$VM_CACHE/initramfs-base.cpio.gz"
	} >"$VM_CACHE/current.env.tmp"
	mv "$VM_CACHE/current.env.tmp" "$VM_CACHE/current.env"
	local what="nothing to do"
	if [[ ${#DID[@]} -gt 0 ]]; then what=$(printf '%s; ' "${DID[@]}"); what=${what%; }; fi
	log "done in $(elapsed) s: $what"
}

main "$@"
