#!/usr/bin/env bash
# Tests that the real service keeps to api/openapi.yaml, with a tester written
# elsewhere: schemathesis (pinned in requirements/schemathesis.txt).
#
#   1. openapi-spec-validator checks the document against the OpenAPI 3.1
#      specification's schema (kin-openapi checks it too, in go test ./api/).
#   2. ./cmd/pyexec is built and started on a free loopback port as Execute,
#      in the default mode and then in cold mode (PYEXEC_MODE=cold), and once
#      as ExecuteEvent; each is run until it is ready.
#   3. schemathesis runs the document's examples, boundary and invalid values
#      of every field, other methods, and a property-based phase of generated
#      requests against each, with the checks in scripts/schemathesis.toml
#      (no 5xx; status, Content-Type, body and headers as documented; 405 with
#      Allow; a request the document calls invalid is refused with a 4xx).
#      Any failure fails the run.
#
# Environment:
#   CONFORMANCE_MAX_EXAMPLES  generated requests per operation and phase (default 200)
#   CONFORMANCE_SEED          reproduce a run (schemathesis prints the seed it used)
#   CONFORMANCE_MODES         Execute's modes to test (default "default cold")
#   PYEXEC_PYTHON, PYEXEC_NSJAIL  the runtime (defaults under /opt/pyexec)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# The operations (operationId in api/openapi.yaml) each service serves.
execute_operations=(execute health healthHead openapi openapiHead playground mcp createSession getSession deleteSession executeCell)
event_operations=(executeEvent health healthHead)

max_examples=${CONFORMANCE_MAX_EXAMPLES:-200}
read -r -a modes <<<"${CONFORMANCE_MODES:-default cold}"
# The services listen on loopback only; a proxy set in the environment (for
# package registries) must not carry these requests.
export no_proxy="127.0.0.1${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1${NO_PROXY:+,$NO_PROXY}"
export PYEXEC_PYTHON=${PYEXEC_PYTHON:-/opt/pyexec/venv/bin/python3}
export PYEXEC_NSJAIL=${PYEXEC_NSJAIL:-/opt/pyexec/bin/nsjail}

log() { printf 'conformance: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

venv=$(bash scripts/install-schemathesis.sh)

work=$(mktemp -d)
service_pid=
stop_service() {
  if [[ -n $service_pid ]]; then
    kill -TERM "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    service_pid=
  fi
}
trap 'stop_service; rm -rf "$work"' EXIT

log "validating api/openapi.yaml with openapi-spec-validator"
"$venv/bin/openapi-spec-validator" api/openapi.yaml

log "building ./cmd/pyexec"
go build -trimpath -o "$work/pyexec" ./cmd/pyexec

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# health_status PORT: the status of GET /healthz on the loopback port, or 0.
health_status() {
  "$venv/bin/python" - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print(0)
PY
}

# start_service TARGET MODE: starts the binary and waits until it is ready
# (/healthz answers 200). Sets $port.
start_service() {
  local target=$1 mode=$2 logfile=$work/$1-$2.log
  port=$(free_port)
  # The sessions schemathesis starts (and never ends) stay few, whatever
  # the machine's memory: past them, POST /sessions answers busy.
  local env=(PORT="$port" FUNCTION_TARGET="$target" PYEXEC_LOG=stdout PYEXEC_MAX_SESSIONS=8)
  [[ $mode == default ]] || env+=(PYEXEC_MODE="$mode")
  env "${env[@]}" "$work/pyexec" >"$logfile" 2>&1 &
  service_pid=$!
  local deadline=$((SECONDS + 120))
  until [[ $(health_status "$port") == 200 ]]; do
    if ! kill -0 "$service_pid" 2>/dev/null || ((SECONDS > deadline)); then
      tail -n 20 "$logfile" >&2
      die "$target ($mode mode) did not become ready on port $port"
    fi
    sleep 0.2
  done
}

# run_schemathesis LABEL OPERATION...: runs schemathesis against the service
# on $port, restricted to the given operations.
passed=0
failed=()
run_schemathesis() {
  local label=$1
  shift
  local args=(
    --config-file "$repo/scripts/schemathesis.toml" run "$repo/api/openapi.yaml"
    --url "http://127.0.0.1:$port" --max-examples "$max_examples"
  )
  local op
  for op; do args+=(--include-operation-id "$op"); done
  [[ -z ${CONFORMANCE_SEED:-} ]] || args+=(--seed "$CONFORMANCE_SEED")
  [[ -t 1 ]] || args+=(--no-color)
  # Generated scripts that run, beside the generated text (see the file).
  local hooks=$repo/scripts/conformance_hooks.py
  log "$label: schemathesis on port $port, operations: $*"
  local start=$SECONDS
  # Run from the scratch directory: whatever schemathesis leaves behind goes
  # with it.
  if (cd "$work" && SCHEMATHESIS_HOOKS=$hooks "$venv/bin/schemathesis" "${args[@]}"); then
    log "$label: passed in $((SECONDS - start)) s"
    passed=$((passed + 1))
  else
    log "$label: FAILED in $((SECONDS - start)) s"
    failed+=("$label")
  fi
}

for mode in "${modes[@]}"; do
  start_service Execute "$mode"
  run_schemathesis "Execute, $mode mode" "${execute_operations[@]}"
  stop_service
done
# ExecuteEvent decodes deliveries before the executor sees them, so one mode
# covers what is its own.
start_service ExecuteEvent default
run_schemathesis "ExecuteEvent" "${event_operations[@]}"
stop_service

if ((${#failed[@]})); then
  log "not conformant: ${failed[*]}"
else
  log "every service conforms to api/openapi.yaml"
fi
# A closing count, like other test runners print.
printf 'conformance: %d passed, %d failed\n' "$passed" "${#failed[@]}"
((${#failed[@]} == 0))
