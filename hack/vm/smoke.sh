#!/usr/bin/env bash
# smoke.sh — run the smoke payload (hack/vm/smoke) in the VM via run.sh.
# usage: hack/vm/smoke.sh [run.sh flags...]   (default --out: a fresh dir under /tmp)
# Extra flags are passed to run.sh; --out given there replaces the default.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
args=("$@")
have_out=0
for a in "$@"; do [[ $a == --out ]] && have_out=1; done
if [[ $have_out -eq 0 ]]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/localnvme-smoke.XXXXXX")
	args+=(--out "$out")
fi
exec "$HERE/run.sh" --payload "$HERE/smoke" --name smoke "${args[@]}"
