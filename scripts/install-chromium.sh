#!/usr/bin/env bash
# Installs Debian's chromium, which the browser tests (tests/browser, build tag
# integration) drive headless. Idempotent: when a chromium binary is already on
# PATH (or CHROMIUM names one), it exits at once.
#
# Installing needs root and apt-get; elsewhere it says what to install instead.
set -euo pipefail

log() { printf 'install-chromium: %s\n' "$*" >&2; }

if [[ -n ${CHROMIUM:-} ]]; then
  if [[ -x $CHROMIUM ]]; then
    log "using $CHROMIUM"
    exit 0
  fi
  log "error: CHROMIUM=$CHROMIUM is not an executable file"
  exit 1
fi
for name in chromium chromium-browser; do
  if path=$(command -v "$name"); then
    log "up to date ($path)"
    exit 0
  fi
done

if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  log "error: chromium is missing; install it (Debian: apt-get install chromium) or set CHROMIUM to a Chrome/Chromium binary"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Serialise concurrent runs of this script, and let apt-get wait for another
# package install under way rather than fail at once.
exec 9>/var/lock/pyexec-install-chromium.lock
flock 9
if command -v chromium >/dev/null; then
  log "up to date ($(command -v chromium))"
  exit 0
fi
log "installing Debian's chromium"
apt=(apt-get -qq -o DPkg::Lock::Timeout=600)
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends chromium >/dev/null
log "installed $(chromium --version)"
