#!/usr/bin/env bash
# rootfs.sh — the Debian bookworm root file system of the localnvme image, as a cached
# gzip tarball (the image's bottom layer). Called by build.sh; prints the tarball's path.
#
# It is the `FROM debian:bookworm-slim` + `apt-get install ...` part of the Dockerfile,
# done with debootstrap: `--variant=minbase` (Debian's slim images are minbase too) with
# the packages that the Dockerfile's `apt-get install` line names — that line is read from
# the Dockerfile, the one list both descriptions use — then upgraded from bookworm-updates
# and bookworm-security (as `apt-get update && apt-get install` in the Dockerfile gets
# them), then trimmed like debian:bookworm-slim (no docs but copyright files, no man/info
# pages, no translations, no apt lists or package caches, no logs).
#
# Cache: ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/images/rootfs/bookworm-<key>.tar.gz
# (+ .packages: the installed package versions). <key> hashes this script, the package
# list and the mirrors; the tarball is rebuilt only when it is missing or the key changed.
# Delete the directory to pick up newer Debian updates. Needs root (debootstrap, chroot).
#
# usage: hack/image/rootfs.sh            env: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR override
#                                        the mirrors found in the apt sources
set -Eeuo pipefail
trap 'echo "[image-rootfs] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
ROOTFS_CACHE=$CACHE_ROOT/images/rootfs
SUITE=bookworm
ARCH=amd64

log() { printf '[image-rootfs] %s\n' "$*" >&2; }
die() { printf '[image-rootfs] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot)"

# The runtime stage's package list, from the Dockerfile's one `apt-get install` line.
read_packages() {
	local line
	line=$(sed -n 's/.*apt-get install -y --no-install-recommends \([a-z0-9 .+-]*\).*/\1/p' "$REPO/Dockerfile")
	# shellcheck disable=SC2206
	PACKAGES=($line)
	[[ ${#PACKAGES[@]} -gt 0 ]] ||
		die "no 'apt-get install -y --no-install-recommends <packages>' line in $REPO/Dockerfile"
}

# mirror_for SUITE: the archive URI the host's apt sources use for SUITE (enabled ones only).
mirror_for() {
	# shellcheck disable=SC2016 # $(REPO_URI) $(RELEASE) are apt-get's own format fields
	apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
		awk -v s="$1" '$2 == s { print $1; exit }'
}

ensure_debootstrap() {
	command -v debootstrap >/dev/null 2>&1 && return
	log "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	command -v debootstrap >/dev/null 2>&1 || die "debootstrap did not install"
}

cache_key() {
	{
		sha256sum "$HERE/rootfs.sh" | awk '{ print $1 }'
		echo "suite=$SUITE arch=$ARCH"
		echo "packages=${PACKAGES[*]}"
		echo "mirror=$MIRROR security=$SECURITY_MIRROR"
	} | sha256sum | cut -c1-16
}

# trim DIR: what debian:bookworm-slim leaves out, and what a container runtime provides.
trim() {
	local d=$1
	find "$d/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$d/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$d"/usr/share/{man,info,lintian,linda,locale}/* "$d"/usr/share/groff/*
	rm -rf "$d"/var/lib/apt/lists/* "$d"/var/cache/apt/*.bin "$d"/var/cache/apt/archives/*.deb \
		"$d"/var/cache/apt/archives/partial/* "$d"/var/cache/debconf/*-old "$d"/var/lib/dpkg/*-old \
		"$d"/var/cache/ldconfig/aux-cache
	find "$d/var/log" -type f -delete
	# the runtime mounts /dev, /proc, /sys and bind-mounts these three files
	find "$d/dev" "$d/proc" "$d/sys" "$d/run" "$d/tmp" -mindepth 1 -delete 2>/dev/null || true
	: >"$d/etc/resolv.conf"
	echo localhost >"$d/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$d/etc/hosts"
	rm -f "$d/etc/machine-id" "$d/var/lib/dbus/machine-id"
}

build() {
	local out=$1 stage t0
	t0=$(date +%s)
	stage=$(mktemp -d "$ROOTFS_CACHE/stage.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$stage'" EXIT
	local incl
	incl=$(IFS=,; echo "${PACKAGES[*]}")
	log "debootstrap --variant=minbase --include=$incl $SUITE $MIRROR (log: $stage.log)"
	if ! debootstrap --variant=minbase --arch="$ARCH" --components=main --include="$incl" \
		"$SUITE" "$stage/root" "$MIRROR" >"$stage.log" 2>&1; then
		tail -n 30 "$stage.log" >&2
		die "debootstrap failed (full log: $stage.log)"
	fi
	local r=$stage/root
	{
		echo "deb $MIRROR $SUITE main"
		echo "deb $MIRROR $SUITE-updates main"
		[[ -n $SECURITY_MIRROR ]] && echo "deb $SECURITY_MIRROR $SUITE-security main"
	} >"$r/etc/apt/sources.list"
	log "apt-get upgrade from $SUITE-updates${SECURITY_MIRROR:+ and $SUITE-security}"
	if ! chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		sh -c 'apt-get update -qq && apt-get upgrade -y -qq --no-install-recommends && apt-get clean' \
		>>"$stage.log" 2>&1; then
		tail -n 30 "$stage.log" >&2
		die "apt-get upgrade in the root file system failed (full log: $stage.log)"
	fi
	# sanity: the tools run in the tree
	local cmd
	for cmd in "lvm version" "dmsetup --version" "thin_check -V" "mkfs.xfs -V" "mke2fs -V" \
		"blkid -V" "mount --version" "findmnt --version" "wipefs --version"; do
		# shellcheck disable=SC2086
		chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $cmd >/dev/null 2>&1 ||
			die "'$cmd' does not run in the root file system"
	done
	dpkg-query --admindir="$r/var/lib/dpkg" -W -f '${Package}=${Version}\n' >"$stage/packages"
	trim "$r"
	log "packing $(du -sh "$r" | cut -f1) ($(wc -l <"$stage/packages") packages)"
	local top=()
	mapfile -t top < <(cd "$r" && ls -A)
	tar -C "$r" -cf - --sort=name --numeric-owner --xattrs --xattrs-include='security.capability' \
		"${top[@]}" | gzip -n -6 >"$stage/rootfs.tar.gz"
	mv "$stage/packages" "${out%.tar.gz}.packages"
	mv "$stage/rootfs.tar.gz" "$out"
	rm -rf "$stage" "$stage.log"
	trap - EXIT
	log "built $out ($(du -h "$out" | cut -f1)) in $(($(date +%s) - t0)) s"
}

main() {
	mkdir -p "$ROOTFS_CACHE"
	exec 9>"$ROOTFS_CACHE/.lock"
	if ! flock -n 9; then
		log "waiting for another rootfs.sh (lock $ROOTFS_CACHE/.lock)"
		flock 9
	fi
	rm -rf "$ROOTFS_CACHE"/stage.*
	read_packages
	MIRROR=${DEBIAN_MIRROR:-$(mirror_for "$SUITE")}
	SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(mirror_for "$SUITE-security")}
	[[ -n $MIRROR ]] || die "no apt source for $SUITE (set DEBIAN_MIRROR=http://deb.debian.org/debian)"
	local key out
	key=$(cache_key)
	out=$ROOTFS_CACHE/$SUITE-$key.tar.gz
	if [[ -f $out && -f ${out%.tar.gz}.packages ]]; then
		log "cached: $(basename "$out") ($(du -h "$out" | cut -f1); ${PACKAGES[*]})"
	else
		ensure_debootstrap
		build "$out"
		# older keys are dead weight
		find "$ROOTFS_CACHE" -maxdepth 1 -name "$SUITE-*" ! -name "$SUITE-$key.*" -delete
	fi
	echo "$out"
}

main "$@"
