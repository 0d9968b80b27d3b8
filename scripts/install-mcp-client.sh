#!/usr/bin/env bash
# Installs the independent MCP client that tests pyexec's MCP endpoint into
# ${PYEXEC_MCP_CLIENT:-/opt/pyexec-tools/mcp-client}:
#
#   $C/venv/              venv of /usr/bin/python3.11 with requirements/mcp-client.txt
#                         (the `mcp` Python SDK; every package pinned and hashed)
#   $C/venv/bin/python3   the interpreter that runs tests/mcp/client_check.py
#   $C/.installed         stamp: hash of this script + requirements + paths
#
# It lives apart from the runtime (scripts/install-runtime.sh) so that nothing
# of it is ever in the image or in the jail's view of the interpreter.
#
# Idempotent: when the stamp matches, it exits at once. When a pin or this
# script changes, the venv is rebuilt from scratch.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
C=${PYEXEC_MCP_CLIENT:-/opt/pyexec-tools/mcp-client}
reqs=$repo/requirements/mcp-client.txt
python=/usr/bin/python3.11

log() { printf 'install-mcp-client: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $C in
  /*) ;;
  *) die "PYEXEC_MCP_CLIENT must be an absolute path, got '$C'" ;;
esac
resolved=$(realpath -m -- "$C")
[[ $resolved != / ]] || die "PYEXEC_MCP_CLIENT must not be /"
[[ -f $reqs ]] || die "missing $reqs"

want=$(cat -- "${BASH_SOURCE[0]}" "$reqs" <(printf '%s\n' "$resolved" "$python") | sha256sum | cut -d' ' -f1)
is_current() {
  [[ -f $C/.installed && $(<"$C/.installed") == "$want" && -x $C/venv/bin/python3 ]]
}
if is_current; then
  log "up to date ($C)"
  exit 0
fi

mkdir -p -- "$C" 2>/dev/null || die "cannot create $C: run as root, or set PYEXEC_MCP_CLIENT to a writable directory"
# Serialise concurrent installs.
exec 9>"$C/.lock"
flock 9
if is_current; then
  log "up to date ($C)"
  exit 0
fi

[[ -x $python ]] && "$python" -c 'import venv, ensurepip' 2>/dev/null ||
  die "$python with the venv module is required (make runtime installs it; on Debian: apt-get install -y python3.11 python3.11-venv)"

log "creating $C/venv from $python"
rm -f -- "$C/.installed"
rm -rf -- "${C:?}/venv"
"$python" -m venv "$C/venv"
# --require-hashes: every package, transitive ones included, must be pinned with
# a hash in the lock or pip refuses. --only-binary: no source builds.
"$C/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --only-binary=:all: -r "$reqs"

version=$("$C/venv/bin/python" -c 'import importlib.metadata as m, mcp.client.streamable_http; print(m.version("mcp"))') ||
  die "$C/venv/bin/python cannot import the mcp client"

printf '%s\n' "$want" >"$C/.installed"
log "installed mcp $version in $C"
log "  run: $C/venv/bin/python3 tests/mcp/client_check.py --url http://localhost:8080/mcp"
