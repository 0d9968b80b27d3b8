#!/usr/bin/env bash
# Installs the API conformance tools into their own venv,
# ${PYEXEC_TOOLS:-/opt/pyexec-tools}/schemathesis:
#
#   $V/bin/schemathesis            property-based tester of a running service
#   $V/bin/openapi-spec-validator  validator of api/openapi.yaml
#   $V/.installed                  stamp: hash of this script + scripts/lib.sh + the lock + paths
#
# from requirements/schemathesis.txt, every package pinned and checked by sha256.
# scripts/conformance.sh runs it first; so do CI and `make test-conformance`.
#
# The venv is kept apart from the runtime's (/opt/pyexec): none of this is
# ever importable by the scripts pyexec runs.
#
# Idempotent: when the stamp matches, it exits at once. When a pin or this
# script changes, the venv is rebuilt from scratch. Prints the venv's path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
tools=${PYEXEC_TOOLS:-/opt/pyexec-tools}
V=$tools/schemathesis
reqs=$repo/requirements/schemathesis.txt

install_dir PYEXEC_TOOLS "$tools" >/dev/null
[[ -f $reqs ]] || die "missing $reqs"

want=$(inputs_hash "$reqs" <(printf '%s\n' "$V" "$python"))
is_current() { stamp_current "$V/.installed" "$want" "$V/bin/schemathesis" "$V/bin/openapi-spec-validator"; }
exit_if_current "$V" print
# Serialise concurrent installs (two conformance runs started together).
lock_install "$tools" "$tools/.schemathesis.lock" "run as root, or set PYEXEC_TOOLS to a writable directory"
exit_if_current "$V" print

ensure_python

log "creating $V from $python"
rm -rf -- "${V:?}"
"$python" -m venv "$V"
pip_locked "$V/bin/python" "$reqs"

version=$("$V/bin/schemathesis" --version) || die "$V/bin/schemathesis does not run"
"$V/bin/openapi-spec-validator" --help >/dev/null 2>&1 || die "$V/bin/openapi-spec-validator does not run"

write_stamp "$V/.installed" "$want"
log "installed in $V: $version"
printf '%s\n' "$V"
