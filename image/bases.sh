#!/usr/bin/env bash
# Makes sure the two base images the Dockerfile names are in podman's storage:
#
#   docker.io/library/debian:bookworm-slim    the runtime stage
#   docker.io/library/golang:1.26-bookworm    the build stage
#
# Each is pulled if the registry can be reached. Where it cannot, a local
# equivalent is built and tagged with the same name:
#   - debian:bookworm-slim: `debootstrap --variant=minbase bookworm` from
#     Debian's mirror, with the apt sources, dpkg excludes and apt settings of
#     the real slim image;
#   - golang:1.26-bookworm: that image plus ca-certificates, git, gcc,
#     libc6-dev and the Go toolchain installed on this machine under
#     /usr/local/go, with the real image's GOPATH, PATH and GOTOOLCHAIN.
#
# A base already in storage is kept: delete it (podman rmi NAME) to rebuild it.
#
# Only the build stage's stand-in trusts this machine's CA bundle (module
# downloads need it); the runtime stage's base gets nothing of this machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { podman_ image exists "$1"; }

pull() {
  log "pulling $1"
  if podman_ pull -q "$1" >/dev/null 2>"$work/pull.err"; then
    return 0
  fi
  log "cannot pull $1 ($(tail -n 1 "$work/pull.err")); building a local equivalent"
  return 1
}

build_debian() {
  local started root=$work/debian
  started=$(now)
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

  # What the real slim image has on top of minbase (debuerreotype's slimming).
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'APT::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,info,locale,groff,lintian,linda}/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/tmp/*
  # A container gets its hostname, resolver and hosts file from the runtime.
  : >"$root/etc/hostname"
  : >"$root/etc/resolv.conf"

  tar -C "$root" --numeric-owner -c . |
    podman_ import --change 'CMD ["bash"]' - "$DEBIAN_BASE" >/dev/null
  log "built $DEBIAN_BASE with debootstrap in $(elapsed "$started")"
}

build_golang() {
  local started ctx=$work/golang goroot
  started=$(now)
  goroot=$(go env GOROOT)
  [[ -x $goroot/bin/go ]] || die "no Go toolchain at $goroot to put in $GOLANG_BASE"
  log "using $("$goroot/bin/go" version) from $goroot"
  mkdir -p "$ctx"
  # Hard links where the cache and GOROOT share a file system, a copy elsewhere.
  cp -al "$goroot" "$ctx/go" 2>/dev/null || cp -a "$goroot" "$ctx/go"
  cp "$HOST_CA_BUNDLE" "$ctx/ca-certificates.crt"
  cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_BASE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates git gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go
WORKDIR /go
EOF
  podman_ build -q --pull=never "${PODMAN_ULIMITS[@]}" -t "$GOLANG_BASE" "$ctx" >/dev/null
  log "built $GOLANG_BASE in $(elapsed "$started")"
}

if have "$DEBIAN_BASE"; then
  log "$DEBIAN_BASE: present"
elif ! pull "$DEBIAN_BASE"; then
  build_debian
fi

if have "$GOLANG_BASE"; then
  log "$GOLANG_BASE: present"
elif ! pull "$GOLANG_BASE"; then
  build_golang
fi
