#!/usr/bin/env bash
# Installs the API conformance tools into their own venv,
# ${PYEXEC_TOOLS:-/opt/pyexec-tools}/schemathesis:
#
#   $V/bin/schemathesis            property-based tester of a running service
#   $V/bin/openapi-spec-validator  validator of api/openapi.yaml
#   $V/.installed                  stamp: hash of this script + the lock + paths
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

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${PYEXEC_TOOLS:-/opt/pyexec-tools}
V=$tools/schemathesis
reqs=$repo/requirements/schemathesis.txt
python=/usr/bin/python3.11

log() { printf 'install-schemathesis: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $tools in
  /*) ;;
  *) die "PYEXEC_TOOLS must be an absolute path, got '$tools'" ;;
esac
[[ -f $reqs ]] || die "missing $reqs"

want=$(cat -- "${BASH_SOURCE[0]}" "$reqs" <(printf '%s\n' "$V" "$python") | sha256sum | cut -d' ' -f1)
is_current() {
  [[ -f $V/.installed && $(<"$V/.installed") == "$want" && -x $V/bin/schemathesis && -x $V/bin/openapi-spec-validator ]]
}
if is_current; then
  log "up to date ($V)"
  printf '%s\n' "$V"
  exit 0
fi

mkdir -p -- "$tools" 2>/dev/null || die "cannot create $tools: run as root, or set PYEXEC_TOOLS to a writable directory"
# Serialise concurrent installs (two conformance runs started together).
exec 9>"$tools/.schemathesis.lock"
flock 9
if is_current; then
  log "up to date ($V)"
  printf '%s\n' "$V"
  exit 0
fi

if ! { [[ -x $python ]] && "$python" -c 'import venv, ensurepip' 2>/dev/null; }; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    log "installing python3.11 and python3.11-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null
  else
    die "$python with the venv module is required. On Debian/Ubuntu run as root: apt-get update && apt-get install -y python3.11 python3.11-venv"
  fi
fi

log "creating $V from $python"
rm -rf -- "${V:?}"
"$python" -m venv "$V"
# --require-hashes: every package, transitive ones included, must be pinned
# with a hash in the lock or pip refuses. --only-binary: no source builds.
"$V/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --only-binary=:all: -r "$reqs"

version=$("$V/bin/schemathesis" --version) || die "$V/bin/schemathesis does not run"
"$V/bin/openapi-spec-validator" --help >/dev/null 2>&1 || die "$V/bin/openapi-spec-validator does not run"

printf '%s\n' "$want" >"$V/.installed"
log "installed in $V: $version"
printf '%s\n' "$V"
