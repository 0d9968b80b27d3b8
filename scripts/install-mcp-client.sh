#!/usr/bin/env bash
# Installs the independent MCP client that tests pyexec's MCP endpoint into
# ${PYEXEC_MCP_CLIENT:-/opt/pyexec-tools/mcp-client}:
#
#   $C/venv/              venv of /usr/bin/python3.11 with requirements/mcp-client.txt
#                         (the `mcp` Python SDK; every package pinned and hashed)
#   $C/venv/bin/python3   the interpreter that runs tests/mcp/client_check.py
#   $C/.installed         stamp: hash of this script + scripts/lib.sh + requirements + paths
#
# It lives apart from the runtime (scripts/install-runtime.sh) so that nothing
# of it is ever in the image or in the jail's view of the interpreter.
#
# Idempotent: when the stamp matches, it exits at once. When a pin or this
# script changes, the venv is rebuilt from scratch.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
C=${PYEXEC_MCP_CLIENT:-/opt/pyexec-tools/mcp-client}
reqs=$repo/requirements/mcp-client.txt

resolved=$(install_dir PYEXEC_MCP_CLIENT "$C")
[[ -f $reqs ]] || die "missing $reqs"

want=$(inputs_hash "$reqs" <(printf '%s\n' "$resolved" "$python"))
is_current() { stamp_current "$C/.installed" "$want" "$C/venv/bin/python3"; }
exit_if_current "$C"
# Serialise concurrent installs.
lock_install "$C" "$C/.lock" "run as root, or set PYEXEC_MCP_CLIENT to a writable directory"
exit_if_current "$C"

have_python ||
  die "$python with the venv module is required (make runtime installs it; on Debian: apt-get install -y python3.11 python3.11-venv)"

log "creating $C/venv from $python"
rm -f -- "$C/.installed"
rm -rf -- "${C:?}/venv"
"$python" -m venv "$C/venv"
pip_locked "$C/venv/bin/python" "$reqs"

version=$("$C/venv/bin/python" -c 'import importlib.metadata as m, mcp.client.streamable_http; print(m.version("mcp"))') ||
  die "$C/venv/bin/python cannot import the mcp client"

write_stamp "$C/.installed" "$want"
log "installed mcp $version in $C"
log "  run: $C/venv/bin/python3 tests/mcp/client_check.py --url http://localhost:8080/mcp"
