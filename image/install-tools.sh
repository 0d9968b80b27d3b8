#!/usr/bin/env bash
# Installs, from Debian's packages, what make image and make test-image need:
#
#   podman, runc        the OCI builder (podman build) and the runtime it uses
#   debootstrap         stand-in base images when the real ones cannot be pulled
#   qemu-system-x86     the virtual machine make test-image boots the image in
#   cpio, kmod          the guest's initramfs and its module list
#   e2fsprogs           the guest's root disk (mke2fs -d)
#   the guest kernel    Debian's linux-image-amd64, unpacked (not installed) into
#                       $PYEXEC_IMAGE_CACHE/kernel/VERSION/
#
# Idempotent: what is already there is not fetched again, so a second run takes
# well under a second. Prints the kernel directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root (apt-get, podman and the cache in $PYEXEC_IMAGE_CACHE need it)"

apt_updated=
apt_update() {
  if [[ -z $apt_updated ]]; then
    apt-get update -qq
    apt_updated=1
  fi
}

packages=(podman runc debootstrap qemu-system-x86 cpio kmod e2fsprogs)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The guest kernel: Debian's current linux-image-amd64, unpacked from its .deb
# so the host's own boot setup is left alone. modules.dep is generated for it
# so that the initramfs can list each module's dependencies in load order.
kernels=$PYEXEC_IMAGE_CACHE/kernel
existing=$( (find "$kernels" -mindepth 2 -maxdepth 2 -name vmlinuz 2>/dev/null || true) | sort -V | tail -n 1)
if [[ -n $existing ]]; then
  dirname "$existing"
  exit 0
fi
apt_update
package=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
[[ -n $package ]] || die "cannot find the kernel package linux-image-amd64 depends on"
version=${package#linux-image-}
log "unpacking $package"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt-get download fetches as the _apt user
(cd "$work" && apt-get download -qq "$package")
dest=$kernels/$version
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
dpkg-deb -x "$work"/*.deb "$dest.tmp/root"
depmod -b "$dest.tmp/root" "$version"
cp "$dest.tmp/root/boot/vmlinuz-$version" "$dest.tmp/vmlinuz"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$dest"
