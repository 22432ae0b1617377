#!/usr/bin/env bash
# lint.sh — the static gates of `make lint` (run by `make test` before the VM tests).
#
# usage: hack/lint.sh [gofmt|go|shell|all]...   (default all; fails on any finding)
#
#   gofmt  `gofmt -l` over every .go file (tracked, or new and not ignored) must print nothing
#   go     golangci-lint (.golangci.yml) over the main module, with the build tags of the
#          VM, e2e, bench and chart test packages, and over hack/image/tool (its own module)
#   shell  shellcheck over every shell script (tracked, or new): *.sh, the files with a sh/bash
#          shebang (.ci/run, deploy/kubectl-plugin/kubectl-localnvme), and the sourced
#          hack/cluster/versions.env and hack/tools.env
#
# Installs what it needs: golangci-lint (version pinned in hack/tools.env) is built once
# from the Go module proxy by hack/tools.sh into ${LOCALNVME_CACHE:-$HOME/.cache/localnvme}/bin/
# golangci-lint-<version>-<go version>/ (never inside the repo); shellcheck is Debian's
# package (apt-get install when missing; apt-get update only if that fails).
set -Eeuo pipefail
trap 'echo "[lint] ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# tool_path and the pinned versions (hack/tools.env)
# shellcheck source=tools.sh
source "$HERE/tools.sh"
GO=${GO:-go}
log() { printf '[lint] %s\n' "$*"; }
die() { printf '[lint] ERROR: %s\n' "$*" >&2; exit 1; }
cd "$REPO"

SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)

# ensure_golangci_lint prints the path of the pinned golangci-lint (hack/tools.sh builds it
# into the cache on first use).
ensure_golangci_lint() {
	GO=$GO tool_path golangci-lint
}

ensure_shellcheck() {
	command -v shellcheck >/dev/null 2>&1 && return
	log "shellcheck: apt-get install shellcheck"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null ||
		{ "${SUDO[@]}" apt-get update -qq &&
			"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
	command -v shellcheck >/dev/null 2>&1 || die "shellcheck did not install"
}

# repo_files [PATHSPEC...] lists the repository's files (NUL-separated): tracked ones and
# new ones not yet added (but not ignored ones), that exist in the work tree.
repo_files() {
	local f
	while IFS= read -r -d '' f; do
		[[ -f $f ]] && printf '%s\0' "$f"
	done < <(git ls-files -z --cached --others --exclude-standard -- "$@" | sort -zu)
	return 0
}

lint_gofmt() {
	local t0 bad files=()
	t0=$(date +%s)
	mapfile -d '' files < <(repo_files '*.go')
	[[ ${#files[@]} -gt 0 ]] || die "gofmt: no .go files found"
	bad=$(gofmt -l "${files[@]}")
	if [[ -n $bad ]]; then
		printf '%s\n' "$bad" | sed 's/^/[lint] gofmt: not formatted: /' >&2
		die "gofmt: $(wc -l <<<"$bad") file(s) not formatted; 'make fmt' formats them"
	fi
	log "gofmt: ${#files[@]} files formatted ($(($(date +%s) - t0)) s)"
}

lint_go() {
	local bin t0
	bin=$(ensure_golangci_lint)
	t0=$(date +%s)
	# One run per build-tag set: a tagged test package only exists under its tag, and the
	# untagged run covers everything else (run.build-tags would apply all tags to all).
	local run tags pkgs fail=0
	for run in ":./..." "vmtest:./tests/vm/..." "e2e:./tests/e2e/..." "vmbench:./tests/bench/..." "chart:./tests/chart/..."; do
		tags=${run%%:*} pkgs=${run#*:}
		log "golangci-lint $pkgs${tags:+ (build tag $tags)}"
		"$bin" run ${tags:+--build-tags "$tags"} "$pkgs" || fail=1
	done
	log "golangci-lint hack/image/tool (its own module)"
	(cd hack/image/tool && "$bin" run --config "$REPO/.golangci.yml" ./...) || fail=1
	[[ $fail -eq 0 ]] || die "golangci-lint: findings above (.golangci.yml says how to justify an exclusion)"
	log "golangci-lint $("$bin" version --short 2>/dev/null || echo "$GOLANGCI_LINT_VERSION"): no findings ($(($(date +%s) - t0)) s)"
}

# shell_scripts lists every shell script of the repository (NUL-separated): *.sh, the
# sourced hack/cluster/versions.env and hack/tools.env, and any file with a sh/bash shebang.
shell_scripts() {
	local f
	while IFS= read -r -d '' f; do
		case $f in
		*.sh | hack/cluster/versions.env | hack/tools.env) printf '%s\0' "$f" ;;
		*) head -n1 -- "$f" | grep -Eq '^#!.*[/ ](ba)?sh([[:space:]]|$)' && printf '%s\0' "$f" ;;
		esac
	done < <(repo_files)
	return 0
}

lint_shell() {
	local t0 files=()
	ensure_shellcheck
	t0=$(date +%s)
	mapfile -d '' files < <(shell_scripts)
	[[ ${#files[@]} -gt 0 ]] || die "shellcheck: no shell scripts found"
	# -x: follow `source` lines to the files their `# shellcheck source=` directives name.
	shellcheck -x "${files[@]}" ||
		die "shellcheck: findings above (fix them, or '# shellcheck disable=SCxxxx # reason' on the line before)"
	log "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#files[@]} scripts, no findings ($(($(date +%s) - t0)) s)"
}

[[ $# -gt 0 ]] || set -- all
for gate in "$@"; do
	case $gate in
	gofmt) lint_gofmt ;;
	go) lint_go ;;
	shell) lint_shell ;;
	all) lint_gofmt; lint_shell; lint_go ;;
	*) echo "usage: $0 [gofmt|go|shell|all]..." >&2; exit 2 ;;
	esac
done
