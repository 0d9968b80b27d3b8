# Sourced by the install scripts in scripts/ (install-runtime.sh,
# install-mcp-client.sh, install-schemathesis.sh): the skeleton they share.
# Each installs pinned packages into venvs under one directory and leaves there
# a stamp, the hash of its inputs (the script, this file, the lock files and
# the paths). When the stamp matches, the script exits at once; otherwise it
# takes a lock, so that concurrent runs install once, and rebuilds.
#
# The scripts include this file in their stamp's hash: a change here reinstalls.
# shellcheck shell=bash

# The script that sourced this file, and this file: both are inputs of the stamp.
lib_script=${BASH_SOURCE[1]}
lib_self=${BASH_SOURCE[0]}

# Debian's interpreter, not a pyenv/conda one: the jail bind-mounts the
# interpreter's real prefixes read-only, and a system path keeps that set small
# and identical between machines and the image. The tools' venvs use it too.
python=/usr/bin/python3.11

lib_name=${lib_script##*/}
lib_name=${lib_name%.sh}
log() { printf '%s: %s\n' "$lib_name" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# install_dir NAME DIR: prints DIR, which the environment variable NAME set,
# resolved (realpath -m); dies unless it is absolute and not /.
install_dir() {
  local name=$1 dir=$2 resolved
  case $dir in
    /*) ;;
    *) die "$name must be an absolute path, got '$dir'" ;;
  esac
  resolved=$(realpath -m -- "$dir")
  [[ $resolved != / ]] || die "$name must not be /"
  printf '%s\n' "$resolved"
}

# inputs_hash FILE...: the sha256 of the install's inputs: the calling script,
# this file and the FILEs (lock files, and a <(printf ...) of the paths).
inputs_hash() {
  cat -- "$lib_script" "$lib_self" "$@" | sha256sum | cut -d' ' -f1
}

# stamp_current STAMP WANT EXECUTABLE...: whether STAMP holds WANT and every
# EXECUTABLE the install makes is there.
stamp_current() {
  local stamp=$1 want=$2 file
  shift 2
  [[ -f $stamp && $(<"$stamp") == "$want" ]] || return 1
  for file; do
    [[ -x $file ]] || return 1
  done
}

# exit_if_current DIR [print]: exits 0, saying DIR is up to date (and printing
# DIR on stdout when asked), when the caller's is_current succeeds.
exit_if_current() {
  is_current || return 0
  log "up to date ($1)"
  [[ ${2:-} != print ]] || printf '%s\n' "$1"
  exit 0
}

# lock_install DIR LOCKFILE HINT: creates DIR (or dies with HINT, what to do
# instead) and holds LOCKFILE's lock, on descriptor 9, until the script ends:
# concurrent runs install one after the other.
lock_install() {
  mkdir -p -- "$1" 2>/dev/null || die "cannot create $1: $3"
  exec 9>"$2"
  flock 9
}

# have_python: whether $python is there with venv and ensurepip.
have_python() { [[ -x $python ]] && "$python" -c 'import venv, ensurepip' 2>/dev/null; }

# ensure_python [PACKAGE...]: when $python lacks venv/ensurepip, installs
# python3.11 and python3.11-venv (and the PACKAGEs) with apt-get as root;
# elsewhere dies saying what to install.
ensure_python() {
  have_python && return 0
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    log "installing python3.11 and python3.11-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv "$@" >/dev/null
  else
    die "$python with the venv module is required. On Debian/Ubuntu run as root: apt-get update && apt-get install -y python3.11 python3.11-venv"
  fi
  have_python || die "$python still lacks venv/ensurepip after apt-get install python3.11-venv"
}

# pip_locked PYTHON LOCK [PIP OPTION...]: installs LOCK with PYTHON's pip.
# --require-hashes: every package, transitive ones included, must be pinned with
# a hash in the lock or pip refuses. --only-binary: no source builds.
pip_locked() {
  local py=$1 lock=$2
  shift 2
  "$py" -m pip --quiet --disable-pip-version-check --no-input "$@" \
    install --require-hashes --only-binary=:all: -r "$lock"
}

# write_stamp STAMP WANT: the install is complete; later runs are no-ops.
write_stamp() { printf '%s\n' "$2" >"$1"; }
