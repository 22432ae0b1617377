#!/usr/bin/env bash
# postgres-layer.sh — the PostgreSQL layer of the localnvme.local/postgres image (the e2e
# workload of tests/e2e): Debian bookworm's postgresql-15 (its Depends only), installed with
# apt-get in a chroot over the localnvme image's root file system (rootfs.sh), and captured
# as a layer that holds only what the install changed. Called by build.sh; prints the
# layer tarball's path.
#
# The image's bottom layer is that root file system tarball as is, so it is the same blob as
# the localnvme image's: a node that imported one unpacks only this layer for the other.
#
# How: the root file system is unpacked as the lower dir of an overlayfs mount (in a private
# mount namespace, so nothing stays mounted when this script ends); the install runs in a
# chroot of the merged dir (host /dev bound in, /proc, the host's resolv.conf for apt); the
# upper dir is then the difference. Its overlayfs whiteouts (0:0 character devices) and
# opaque directories become OCI whiteouts (.wh.<name>, .wh..wh..opq). Like the official
# postgres image: a postgres user and group with the fixed id 999, postgresql-common first
# with create_main_cluster = false (no cluster is made at install time), no service started
# (policy-rc.d). Trimmed like rootfs.sh (docs, man pages, translations, apt lists, logs),
# without the LLVM JIT (llvmjit.so, its bitcode, libLLVM and libz3: postgres runs without JIT
# when its provider is missing) and without the locale sources (initdb uses C.UTF-8, built
# into glibc): about half of what apt installs. It also holds the template of a fresh
# cluster, /usr/share/localnvme-postgres/pgdata, made by initdb in the chroot (the same
# options the entrypoint would use), which the entrypoint copies into an empty PGDATA:
# initdb's bootstrap took ~4 min inside an emulated node.
#
# Cache: ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/images/postgres/layer-<key>.tar.gz
# (+ .packages: the packages the install added, with versions). <key> hashes this script,
# the base tarball's name (it carries rootfs.sh's key) and the package list; rebuilt only
# when missing or the key changed. Needs root (mount, chroot).
#
# usage: hack/image/postgres-layer.sh ROOTFS.tar.gz
set -Eeuo pipefail
trap 'echo "[image-postgres] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
PG_CACHE=$CACHE_ROOT/images/postgres
PG_MAJOR=15
PG_UID=999
PACKAGES=("postgresql-$PG_MAJOR")

log() { printf '[image-postgres] %s\n' "$*" >&2; }
die() { printf '[image-postgres] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (mount, chroot)"
[[ $# -eq 1 && -f $1 ]] || die "usage: $0 ROOTFS.tar.gz (the root file system from rootfs.sh)"
BASE=$1

cache_key() {
	{
		sha256sum "$HERE/postgres-layer.sh" | awk '{ print $1 }'
		basename "$BASE"
		echo "packages=${PACKAGES[*]} uid=$PG_UID"
	} | sha256sum | cut -c1-16
}

# install_in STAGE: runs in a private mount namespace (unshare -m): the overlay mount and the
# chroot install. Every mount goes away with the namespace.
install_in() {
	local s=$1 m=$1/merged
	mount -t overlay overlay \
		-o "lowerdir=$s/lower,upperdir=$s/upper,workdir=$s/work,index=off,metacopy=off,redirect_dir=off" "$m"
	mount --bind /dev "$m/dev"
	mount -t proc proc "$m/proc"
	[[ -f $m/etc/resolv.conf ]] || : >"$m/etc/resolv.conf"
	mount --bind "$(readlink -f /etc/resolv.conf)" "$m/etc/resolv.conf"
	# shellcheck disable=SC2016 # the script is expanded by the chroot's sh
	chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		PG_MAJOR="$PG_MAJOR" PG_UID="$PG_UID" PACKAGES="${PACKAGES[*]}" sh -euxc '
		groupadd -r -g "$PG_UID" postgres
		useradd -r -g postgres -u "$PG_UID" -d /var/lib/postgresql -s /bin/bash postgres
		mkdir -p /var/lib/postgresql
		chown postgres:postgres /var/lib/postgresql
		printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends postgresql-common
		sed -ri "s/#(create_main_cluster) .*\$/\\1 = false/" /etc/postgresql-common/createcluster.conf
		grep -q "^create_main_cluster = false" /etc/postgresql-common/createcluster.conf
		apt-get install -y -qq --no-install-recommends $PACKAGES
		apt-get clean
		rm -f /usr/sbin/policy-rc.d
		bin=/usr/lib/postgresql/$PG_MAJOR/bin
		for c in postgres initdb psql pg_isready pg_ctl; do "$bin/$c" --version; done
		# no JIT: its provider, the bitcode for inlining, and libLLVM with libz3 (nothing else
		# uses them); no locale sources (C.UTF-8 is built into glibc)
		rm -rf "/usr/lib/postgresql/$PG_MAJOR/lib/bitcode" /usr/lib/postgresql/$PG_MAJOR/lib/llvmjit*.so \
			/usr/share/i18n/locales /usr/share/i18n/charmaps
		for p in $(dpkg-query -W -f "\${Package} \${Status}\n" "libllvm*" "libz3-*" 2>/dev/null | awk "\$NF == \"installed\" { print \$1 }"); do
			dpkg -L "$p" | while read -r f; do
				if [ -f "$f" ] || [ -L "$f" ]; then rm -f "$f"; fi
			done
		done
		"$bin/postgres" --version
		# the template of a fresh cluster (the entrypoint copies it into an empty PGDATA):
		# initdb here, on the host CPU, instead of ~4 min of bootstrap in an emulated node
		tpl=/usr/share/localnvme-postgres/pgdata
		mkdir -p "$tpl"
		chown postgres:postgres "$tpl"
		chmod 0700 "$tpl"
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$bin/initdb" -D "$tpl" \
			--username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >/dev/null
		[ -s "$tpl/PG_VERSION" ]
		ls /var/lib/postgresql
		[ ! -e "/var/lib/postgresql/$PG_MAJOR/main" ]
	'
	# trimmed like rootfs.sh (what the base has was trimmed already: only the new files go)
	find "$m/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$m/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$m"/usr/share/{man,info,lintian,linda,locale}/* "$m"/usr/share/groff/*
	rm -rf "$m"/var/lib/apt/lists/* "$m"/var/cache/apt/*.bin "$m"/var/cache/apt/archives/*.deb \
		"$m"/var/cache/apt/archives/partial/* "$m"/var/cache/debconf/*-old "$m"/var/lib/dpkg/*-old \
		"$m"/var/cache/ldconfig/aux-cache
	find "$m/var/log" -type f -delete
	find "$m/tmp" "$m/run" -mindepth 1 -delete 2>/dev/null || true
	umount "$m/etc/resolv.conf" "$m/proc" "$m/dev"
	umount "$m"
}

build() {
	local out=$1 stage t0
	t0=$(date +%s)
	stage=$(mktemp -d "$PG_CACHE/stage.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$stage'" EXIT
	mkdir -p "$stage"/{lower,upper,work,merged}
	tar -C "$stage/lower" -xzf "$BASE" --numeric-owner --xattrs --xattrs-include='security.capability'
	dpkg-query --admindir="$stage/lower/var/lib/dpkg" -W -f '${Package}=${Version}\n' | sort >"$stage/before"
	log "apt-get install --no-install-recommends ${PACKAGES[*]} over $(basename "$BASE") (log: $stage.log)"
	export -f install_in
	export PG_MAJOR PG_UID
	local pk
	pk=$(declare -p PACKAGES)
	if ! unshare -m --propagation private bash -Eeuo pipefail -c "$pk; install_in '$stage'" >"$stage.log" 2>&1; then
		tail -n 40 "$stage.log" >&2
		die "the install failed (full log: $stage.log)"
	fi
	grep -q " $stage/merged " /proc/self/mountinfo && die "$stage/merged is still mounted"
	local u=$stage/upper
	dpkg-query --admindir="$u/var/lib/dpkg" -W -f '${Package}=${Version}\n' | sort >"$stage/after"
	comm -13 "$stage/before" "$stage/after" >"$stage/packages"

	# overlayfs → OCI: opaque dirs (only the opaque xattr is archived here, so tar's "*"
	# mark in the listing is that one), then whiteout devices. overlayfs also marks new
	# directories opaque (an optimization); only one that hides a lower directory needs
	# the OCI marker.
	local line p n=0 o=0 listing=()
	mapfile -t listing < <(tar -C "$u" --xattrs --xattrs-include='trusted.overlay.opaque' -cf - . | tar --xattrs --xattrs-include='*' -tvf -)
	for line in "${listing[@]}"; do
		[[ ${line%% *} == d*\* ]] || continue
		p=$(sed -E 's/^([^ ]+ +){5}//' <<<"$line")
		p=${p%/}
		[[ -d $stage/lower/$p && ! -L $stage/lower/$p ]] || continue
		: >"$u/$p/.wh..wh..opq"
		o=$((o + 1))
	done
	while IFS= read -r -d '' p; do
		[[ $(stat -c '%t:%T' "$p") == 0:0 ]] || die "unexpected device in the layer: ${p#"$u"/}"
		rm -f "$p"
		: >"$(dirname "$p")/.wh.$(basename "$p")"
		n=$((n + 1))
	done < <(find "$u" -type c -print0)
	find "$u" -type b -print -quit | grep -q . && die "unexpected block device in the layer"
	local top=()
	mapfile -t top < <(cd "$u" && ls -A)
	tar -C "$u" -cf - --sort=name --numeric-owner --xattrs --xattrs-include='security.capability' \
		"${top[@]}" | gzip -n -6 >"$stage/layer.tar.gz"
	log "layer: $(du -sh "$u" | cut -f1) ($(wc -l <"$stage/packages") packages added, $n whiteouts, $o opaque dirs)"
	mv "$stage/packages" "${out%.tar.gz}.packages"
	mv "$stage/layer.tar.gz" "$out"
	rm -rf "$stage" "$stage.log"
	trap - EXIT
	log "built $out ($(du -h "$out" | cut -f1)) in $(($(date +%s) - t0)) s"
}

main() {
	mkdir -p "$PG_CACHE"
	exec 9>"$PG_CACHE/.lock"
	if ! flock -n 9; then
		log "waiting for another postgres-layer.sh (lock $PG_CACHE/.lock)"
		flock 9
	fi
	rm -rf "$PG_CACHE"/stage.*
	local key out
	key=$(cache_key)
	out=$PG_CACHE/layer-$key.tar.gz
	if [[ -f $out && -f ${out%.tar.gz}.packages ]]; then
		log "cached: $(basename "$out") ($(du -h "$out" | cut -f1); $(grep -c . "${out%.tar.gz}.packages") packages)"
	else
		build "$out"
		find "$PG_CACHE" -maxdepth 1 -name 'layer-*' ! -name "layer-$key.*" -delete
	fi
	echo "$out"
}

main "$@"
