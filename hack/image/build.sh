#!/usr/bin/env bash
# build.sh — the local cluster's container images as docker-archive tarballs, built without
# a Docker engine, for `ctr -n k8s.io images import`.
#
#   localnvme.local/localnvme:<VERSION>    the driver: the image the Dockerfile describes
#                                          (Debian bookworm + lvm2, thin-provisioning-tools,
#                                          e2fsprogs, xfsprogs, util-linux; lvm.conf; binary)
#   localnvme.local/csi-provisioner:<v>    scratch + the static sidecar binary at /<name>,
#   localnvme.local/csi-snapshotter:<v>    ENTRYPOINT ["/<name>"] (like upstream); the binaries
#   localnvme.local/csi-resizer:<v>        come from hack/cluster/build-bins.sh (--sidecars-dir)
#   localnvme.local/pause:3.10             the sandbox image: a static Go pause (tool/pause)
#   localnvme.local/busybox:1              Debian's busybox-static + applet links in /bin
#   localnvme.local/postgres:15            the e2e database workload: the localnvme image's
#                                          root file system (the same bottom layer blob) +
#                                          Debian's postgresql-15 (postgres-layer.sh) + the
#                                          entrypoint postgres-entrypoint.sh; psql, pg_isready
#
# usage: hack/image/build.sh [--sidecars-dir DIR] [--only NAME[,NAME...]]
#   NAME: localnvme csi-provisioner csi-snapshotter csi-resizer pause busybox postgres
#     (default: all)
#   --sidecars-dir (or $SIDECARS_DIR): csi-provisioner, csi-snapshotter, csi-resizer built by
#     hack/cluster/build-bins.sh; default $CACHE/bin/sidecars-$SIDECARS_TAG (versions.env)
#   VERSION: the localnvme image tag (default `git describe --always --dirty`)
#
# Idempotent: an image is rewritten only when the hash of its inputs (the image spec, the
# contents of every file in it, the image tool) changed; the Debian root file system is
# cached separately (rootfs.sh), and so is the postgres layer (postgres-layer.sh). The
# localnvme binary is rebuilt with `make build` every run (Go's build cache makes that
# quick; an unchanged binary leaves the image alone).
#
# Cache: ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/images  (never inside the repo)
#   <name>.tar        docker-archive, repo:tag in manifest.json (the only *.tar there)
#   images.txt        "ref path" per image
#   rootfs/ postgres/ bin/ busybox/ spec/   build inputs
# Needs root (debootstrap), Go, apt. Images are linux/amd64.
set -Eeuo pipefail
trap 'echo "[image] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE_ROOT=${LOCALNVME_CACHE:-$HOME/.cache/localnvme}
IMG=$CACHE_ROOT/images
# shellcheck source=../cluster/versions.env
source "$REPO/hack/cluster/versions.env"

ALL=(localnvme csi-provisioner csi-snapshotter csi-resizer pause busybox postgres)
SIDECARS=(csi-provisioner csi-snapshotter csi-resizer)
REGISTRY=localnvme.local
PAUSE_TAG=3.10
BUSYBOX_TAG=1
POSTGRES_MAJOR=15 # postgres-layer.sh installs Debian bookworm's postgresql-15
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# applets the e2e workloads and the demo StatefulSet use (all of busybox's are linked)
BUSYBOX_NEEDED=(sh dd cat sha256sum df blockdev sleep ls mkdir stat echo head wc sync test)

START_TS=$(date +%s.%N)
log() { printf '[image] %s\n' "$*"; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
usage() { sed -n '/^# usage:/,/^#   VERSION/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

# json_str S: S as a JSON string (paths and refs: no control characters expected).
json_str() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}
# json_arr A B ...: a JSON array of strings.
json_arr() {
	local out="" a
	for a in "$@"; do out+="${out:+, }$(json_str "$a")"; done
	printf '[%s]' "$out"
}

# ---------------------------------------------------------------- inputs

SIDECARS_DIR=${SIDECARS_DIR:-$CACHE_ROOT/bin/sidecars-$SIDECARS_TAG}
ONLY=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--sidecars-dir) [[ $# -ge 2 ]] || usage; SIDECARS_DIR=$2; shift 2 ;;
	--sidecars-dir=*) SIDECARS_DIR=${1#*=}; shift ;;
	--only) [[ $# -ge 2 ]] || usage; IFS=, read -ra o <<<"$2"; ONLY+=("${o[@]}"); shift 2 ;;
	--only=*) IFS=, read -ra o <<<"${1#*=}"; ONLY+=("${o[@]}"); shift ;;
	-h | --help) usage ;;
	*) echo "unknown argument: $1" >&2; usage ;;
	esac
done
[[ ${#ONLY[@]} -gt 0 ]] || ONLY=("${ALL[@]}")
for n in "${ONLY[@]}"; do
	[[ " ${ALL[*]} " == *" $n "* ]] || die "unknown image '$n' (images: ${ALL[*]})"
done
wanted() { [[ " ${ONLY[*]} " == *" $1 "* ]]; }

sidecar_version() {
	case $1 in
	csi-provisioner) echo "$PROVISIONER_VERSION" ;;
	csi-snapshotter) echo "$SNAPSHOTTER_VERSION" ;;
	csi-resizer) echo "$RESIZER_VERSION" ;;
	esac
}

# Fail before any work when a wanted sidecar binary is missing.
check_sidecars() {
	local missing=() n
	for n in "${SIDECARS[@]}"; do
		wanted "$n" || continue
		[[ -x $SIDECARS_DIR/$n ]] || missing+=("$n")
	done
	[[ ${#missing[@]} -eq 0 ]] && return
	die "sidecar binaries missing in $SIDECARS_DIR: ${missing[*]}
  build them with:  hack/cluster/build-bins.sh sidecars   (or pass --sidecars-dir DIR)
  or build the other images only:  $0 --only localnvme,pause,busybox,postgres"
}

# ---------------------------------------------------------------- tools

build_tools() {
	mkdir -p "$IMG/bin"
	(cd "$HERE/tool" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -o "$IMG/bin/imagetool" . &&
		GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$IMG/bin/pause" ./pause) ||
		die "cannot build hack/image/tool"
	TOOL=$IMG/bin/imagetool
}

build_localnvme_bin() {
	local t0
	t0=$(date +%s.%N)
	make -s -C "$REPO" build OUT="$IMG/bin" VERSION="$VERSION" >/dev/null ||
		die "make build failed (VERSION=$VERSION)"
	log "localnvme binary: $VERSION ($(du -h "$IMG/bin/localnvme" | cut -f1), $(elapsed "$t0") s)"
}

# Debian's busybox-static, downloaded (apt-get download) and unpacked once per version.
ensure_busybox() {
	local ver
	ver=$(apt-cache policy busybox-static 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	if [[ -z $ver || $ver == "(none)" ]]; then
		apt-get update -qq
		ver=$(apt-cache policy busybox-static | awk '$1 == "Candidate:" { print $2 }')
	fi
	[[ -n $ver && $ver != "(none)" ]] || die "no busybox-static package in the apt sources"
	local dir=$IMG/busybox/${ver//:/_}
	BUSYBOX=$dir/bin/busybox BUSYBOX_VER=$ver
	if [[ -x $BUSYBOX ]]; then
		return
	fi
	local dl
	rm -rf "$IMG/busybox"
	mkdir -p "$IMG/busybox"
	dl=$(mktemp -d "$IMG/busybox/dl.XXXXXX")
	chmod 755 "$dl"
	if ! (cd "$dl" && apt-get download -qq "busybox-static=$ver" 2>/dev/null); then
		apt-get update -qq # stale package lists
		ver=$(apt-cache policy busybox-static | awk '$1 == "Candidate:" { print $2 }')
		dir=$IMG/busybox/${ver//:/_}
		BUSYBOX=$dir/bin/busybox BUSYBOX_VER=$ver
		(cd "$dl" && apt-get download -qq "busybox-static=$ver") || die "apt-get download busybox-static failed"
	fi
	mkdir -p "$dir.tmp"
	dpkg -x "$dl"/busybox-static_*.deb "$dir.tmp"
	mv "$dir.tmp" "$dir"
	rm -rf "$dl"
	[[ -x $BUSYBOX ]] || die "no bin/busybox in busybox-static $ver"
	log "busybox-static $ver unpacked"
}

# ---------------------------------------------------------------- images

# emit_image NAME REF: build $IMG/NAME.tar from the spec in $SPEC_DIR/NAME.json unless its
# inputs (spec text, contents of its files, the tool) are unchanged.
emit_image() {
	local n=$1 ref=$2 spec=$IMG/spec/$1.json out=$IMG/$1.tar t0
	t0=$(date +%s.%N)
	local want have="" f
	want=$({
		cat "$spec"
		sha256sum "$TOOL" | cut -d' ' -f1
		# every host file the spec names (src and tar values)
		grep -o '"\(src\|tar\)": "[^"]*"' "$spec" | cut -d'"' -f4 | while read -r f; do
			sha256sum "$f" | cut -d' ' -f1
		done
	} | sha256sum | cut -d' ' -f1)
	[[ -f $IMG/$n.inputs ]] && have=$(cat "$IMG/$n.inputs")
	if [[ -f $out && $want == "$have" && $(cat "$IMG/$n.ref" 2>/dev/null) == "$ref" ]]; then
		log "$ref: up to date ($(du -h "$out" | cut -f1))"
		return
	fi
	rm -f "$IMG/$n.inputs"
	"$TOOL" build "$spec" >/dev/null || die "imagetool build $spec failed"
	echo "$ref" >"$IMG/$n.ref"
	echo "$want" >"$IMG/$n.inputs"
	BUILT+=("$n")
	log "$ref: built $(du -h "$out" | cut -f1) in $(elapsed "$t0") s"
}

# spec_head NAME REF CREATED CONFIG-JSON: the start of a spec, up to the layers.
spec_head() {
	printf '{\n  "ref": %s,\n  "out": %s,\n  "created": %s,\n  "config": %s,\n  "layers": [\n' \
		"$(json_str "$2")" "$(json_str "$IMG/$1.tar")" "$(json_str "$3")" "$4"
}

# Small /etc files for the scratch images (distroless-like users; no shell, no libc).
SCRATCH_ETC='{"path": "etc/passwd", "content": "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
      {"path": "etc/group", "content": "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"},
      {"path": "tmp", "dir": true, "mode": "1777"}'

image_localnvme() {
	local rootfs created ref=$REGISTRY/localnvme:$VERSION
	rootfs=$("$HERE/rootfs.sh") || die "root file system build failed"
	build_localnvme_bin
	created=$(git -C "$REPO" log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
	# the layers are the Dockerfile's runtime stage, one for one
	{
		spec_head localnvme "$ref" "$created" "{
    \"Env\": [$(json_str "$PATH_ENV")],
    \"Entrypoint\": [\"/usr/local/bin/localnvme\"],
    \"WorkingDir\": \"/\",
    \"Labels\": {\"org.opencontainers.image.title\": \"localnvme\", \"org.opencontainers.image.version\": $(json_str "$VERSION")}
  }"
		cat <<EOF
    {"tar": $(json_str "$rootfs"),
     "comment": "debootstrap --variant=minbase bookworm + $(sed -n 's/.*apt-get install -y --no-install-recommends \([a-z0-9 .+-]*\).*/\1/p' "$REPO/Dockerfile" | xargs) (hack/image/rootfs.sh)"},
    {"comment": "COPY hack/image/lvm.conf /etc/lvm/lvm.conf", "entries": [
      {"path": "etc/lvm/lvm.conf", "src": $(json_str "$HERE/lvm.conf"), "mode": "0644"}]},
    {"comment": "COPY hack/image/localnvme-shell.profile /etc/lvm/profile/localnvme-shell.profile", "entries": [
      {"path": "etc/lvm/profile/localnvme-shell.profile", "src": $(json_str "$HERE/localnvme-shell.profile"), "mode": "0644"}]},
    {"comment": "COPY localnvme /usr/local/bin/localnvme", "entries": [
      {"path": "usr/local/bin/localnvme", "src": $(json_str "$IMG/bin/localnvme"), "mode": "0755", "static": true}]}
  ]
}
EOF
	} >"$IMG/spec/localnvme.json"
	emit_image localnvme "$ref"
}

image_sidecar() {
	local n=$1 v ref
	v=$(sidecar_version "$n")
	ref=$REGISTRY/$n:$v
	{
		spec_head "$n" "$ref" 1970-01-01T00:00:00Z "{\"Env\": [$(json_str "$PATH_ENV")], \"Entrypoint\": [\"/$n\"], \"WorkingDir\": \"/\"}"
		cat <<EOF
    {"comment": "scratch: /etc/passwd, /etc/group, /tmp", "entries": [
      $SCRATCH_ETC]},
    {"comment": "COPY $n $v (hack/cluster/build-bins.sh) /$n", "entries": [
      {"path": $(json_str "$n"), "src": $(json_str "$SIDECARS_DIR/$n"), "mode": "0755", "static": true}]}
  ]
}
EOF
	} >"$IMG/spec/$n.json"
	emit_image "$n" "$ref"
}

image_pause() {
	local ref=$REGISTRY/pause:$PAUSE_TAG
	# like registry.k8s.io/pause: only /pause, running as 65535
	{
		spec_head pause "$ref" 1970-01-01T00:00:00Z "{\"Env\": [$(json_str "$PATH_ENV")], \"Entrypoint\": [\"/pause\"], \"User\": \"65535:65535\", \"WorkingDir\": \"/\"}"
		cat <<EOF
    {"comment": "COPY pause (hack/image/tool/pause) /pause", "entries": [
      {"path": "pause", "src": $(json_str "$IMG/bin/pause"), "mode": "0755", "static": true}]}
  ]
}
EOF
	} >"$IMG/spec/pause.json"
	emit_image pause "$ref"
}

image_busybox() {
	local ref=$REGISTRY/busybox:$BUSYBOX_TAG a applets=() missing=()
	ensure_busybox
	mapfile -t applets < <("$BUSYBOX" --list | LC_ALL=C sort -u)
	for a in "${BUSYBOX_NEEDED[@]}"; do
		[[ " ${applets[*]} " == *" $a "* ]] || missing+=("$a")
	done
	[[ ${#missing[@]} -eq 0 ]] || die "busybox-static lacks applets: ${missing[*]}"
	local links=""
	for a in "${applets[@]}"; do
		[[ $a == busybox || $a == */* ]] && continue
		links+=",
      {\"path\": $(json_str "bin/$a"), \"symlink\": \"busybox\"}"
	done
	{
		spec_head busybox "$ref" 1970-01-01T00:00:00Z "{\"Env\": [$(json_str "$PATH_ENV")], \"Cmd\": [\"sh\"], \"WorkingDir\": \"/\"}"
		cat <<EOF
    {"comment": "Debian busybox-static $BUSYBOX_VER /bin/busybox + ${#applets[@]} applet links", "entries": [
      $SCRATCH_ETC,
      {"path": "root", "dir": true, "mode": "0700"},
      {"path": "bin/busybox", "src": $(json_str "$BUSYBOX"), "mode": "0755", "static": true}$links]}
  ]
}
EOF
	} >"$IMG/spec/busybox.json"
	emit_image busybox "$ref"
}

# The e2e database workload. Its bottom layer is the localnvme image's root file system
# tarball as is (one blob, imported once per node), then the apt-installed PostgreSQL, then
# the entrypoint and links that put the real binaries before Debian's pg_wrapper on PATH.
image_postgres() {
	local rootfs layer ref=$REGISTRY/postgres:$POSTGRES_MAJOR bin=/usr/lib/postgresql/$POSTGRES_MAJOR/bin c links=""
	rootfs=$("$HERE/rootfs.sh") || die "root file system build failed"
	layer=$("$HERE/postgres-layer.sh" "$rootfs") || die "postgres layer build failed"
	for c in postgres initdb pg_ctl psql pg_isready pg_dump; do
		links+=",
      {\"path\": $(json_str "usr/local/bin/$c"), \"symlink\": $(json_str "$bin/$c")}"
	done
	{
		spec_head postgres "$ref" 1970-01-01T00:00:00Z "{
    \"Env\": [$(json_str "PATH=/usr/local/sbin:/usr/local/bin:$bin:/usr/sbin:/usr/bin:/sbin:/bin"), \"PGDATA=/var/lib/postgresql/data/pgdata\", \"LANG=C.UTF-8\"],
    \"Entrypoint\": [\"/usr/local/bin/localnvme-postgres\"],
    \"StopSignal\": \"SIGINT\",
    \"WorkingDir\": \"/\",
    \"Labels\": {\"org.opencontainers.image.title\": \"localnvme e2e postgres\"}
  }"
		cat <<EOF
    {"tar": $(json_str "$rootfs"),
     "comment": "the localnvme image's root file system (hack/image/rootfs.sh)"},
    {"tar": $(json_str "$layer"),
     "comment": "apt-get install --no-install-recommends postgresql-$POSTGRES_MAJOR: $(grep -c . "${layer%.tar.gz}.packages") packages (hack/image/postgres-layer.sh)"},
    {"comment": "COPY hack/image/postgres-entrypoint.sh /usr/local/bin/localnvme-postgres", "entries": [
      {"path": "usr/local/bin/localnvme-postgres", "src": $(json_str "$HERE/postgres-entrypoint.sh"), "mode": "0755"}$links]}
  ]
}
EOF
	} >"$IMG/spec/postgres.json"
	emit_image postgres "$ref"
}

write_images_txt() {
	local n lines=""
	for n in "${ALL[@]}"; do
		[[ -f $IMG/$n.tar && -f $IMG/$n.ref ]] || continue
		lines+="$(cat "$IMG/$n.ref") $IMG/$n.tar"$'\n'
	done
	printf '%s' "$lines" >"$IMG/images.txt.tmp"
	mv "$IMG/images.txt.tmp" "$IMG/images.txt"
}

main() {
	BUILT=()
	check_sidecars
	if [[ $(id -u) -ne 0 ]] && { wanted localnvme || wanted postgres; }; then
		die "must run as root (debootstrap builds the root file system of the localnvme and postgres images)"
	fi
	VERSION=${VERSION:-$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo dev)}
	mkdir -p "$IMG/spec"
	exec 8>"$IMG/.lock"
	if ! flock -n 8; then
		log "waiting for another build.sh (lock $IMG/.lock)"
		flock 8
	fi
	rm -f "$IMG"/*.tar.tmp
	build_tools
	local n
	for n in "${ONLY[@]}"; do
		case $n in
		localnvme) image_localnvme ;;
		csi-*) image_sidecar "$n" ;;
		pause) image_pause ;;
		busybox) image_busybox ;;
		postgres) image_postgres ;;
		esac
	done
	write_images_txt
	local what="nothing to do"
	[[ ${#BUILT[@]} -gt 0 ]] && what="built ${BUILT[*]}"
	log "done in $(elapsed "$START_TS") s: $what; $IMG/images.txt:"
	sed 's/^/[image]   /' "$IMG/images.txt"
}

main "$@"
