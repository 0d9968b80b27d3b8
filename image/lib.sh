# Sourced by the scripts in image/: paths and the podman invocation they share.
# shellcheck shell=bash

# Everything the image scripts produce outside podman's own storage: base-image
# root filesystems, the exported image root filesystem, the guest kernel, the
# initramfs and test logs. Never inside the repository.
PYEXEC_IMAGE_CACHE=${PYEXEC_IMAGE_CACHE:-/var/cache/pyexec-image}

# The image make image builds and make test-image boots.
PYEXEC_IMAGE=${PYEXEC_IMAGE:-localhost/pyexec:latest}

# The two base images the Dockerfile names, with the names podman resolves
# the Dockerfile's short names to.
DEBIAN_BASE=docker.io/library/debian:bookworm-slim
GOLANG_BASE=docker.io/library/golang:1.26-bookworm

# Debian's mirror and suite, as the real debian:bookworm-slim lists them.
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DEBIAN_SUITE=bookworm

# The CA bundle of this machine: registries are reached through TLS it trusts.
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# podman with the settings every call here needs: runc (crun refuses this
# host's hybrid cgroup layout), and explicit ulimits for build and run (podman's
# defaults raise RLIMIT_NOFILE and RLIMIT_NPROC, which the host refuses;
# lowering them is allowed).
podman_() { podman --runtime runc "$@"; }
PODMAN_ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

# seconds since the epoch with two decimals, for timings in logs.
now() { date +%s.%N | cut -c1-13; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
