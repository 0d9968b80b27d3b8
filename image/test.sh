#!/usr/bin/env bash
# make test-image: boots the image make image built in qemu, the way Cloud
# Run's second generation runs it, and checks it over real HTTP through the
# host's loopback port forwards (image/vmtest, go test -tags image).
#
#   1. the image's root file system, exported once per image ID into an ext4
#      image $PYEXEC_IMAGE_CACHE/rootfs/ID.ext4, and its config (entrypoint,
#      env);
#   2. an initramfs: image/vminit as /init and the guest kernel's virtio,
#      disk, ext4, 9p, network and overlay modules;
#   3. the variants in image/vmtest, each a boot of Debian's kernel under TCG.
#
# VMTEST_FLAGS passes flags to go test (e.g. -run 'TestImage/cgroup_v2').
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/lib.sh"

kernel=$(bash "$here/install-tools.sh")
version=$(basename "$kernel")
podman_ image exists "$PYEXEC_IMAGE" || die "no image $PYEXEC_IMAGE: run make image first"
id=$(podman_ image inspect --format '{{.Id}}' "$PYEXEC_IMAGE")

# --- 1. The root file system --------------------------------------------------
# An ext4 image of the exported tree, attached to the guest as a read-only
# disk. (Over 9p, every directory read and file open is a round trip to
# qemu; under TCG that made pandas' import take minutes.)
rootfs=$PYEXEC_IMAGE_CACHE/rootfs/$id
if [[ ! -f $rootfs.config.json || ! -f $rootfs.ext4 ]]; then
  started=$(now)
  find "$PYEXEC_IMAGE_CACHE/rootfs" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
  tree=$rootfs.tree
  mkdir -p "$tree"
  container=$(podman_ create "$PYEXEC_IMAGE")
  podman_ export "$container" | tar -C "$tree" --numeric-owner -xf -
  podman_ rm "$container" >/dev/null
  size_mb=$(($(du -sm "$tree" | cut -f1) * 5 / 4 + 64))
  mke2fs -q -t ext4 -O ^has_journal -i 8192 -L pyexec-rootfs -d "$tree" "$rootfs.ext4" "${size_mb}M"
  rm -rf "$tree"
  podman_ image inspect --format '{{json .Config}}' "$PYEXEC_IMAGE" >"$rootfs.config.json"
  log "exported ${id:0:12}'s root file system in $(elapsed "$started")"
fi

# --- 2. The initramfs -----------------------------------------------------------
initramfs=$PYEXEC_IMAGE_CACHE/initramfs
rm -rf "$initramfs"
mkdir -p "$initramfs/root/modules"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$initramfs/root/init" ./image/vminit)
# Dependencies first, each module once, in the order modprobe would load them.
for module in virtio_pci virtio_net virtio_blk ext4 9pnet_virtio 9p overlay; do
  modprobe -d "$kernel/root" -S "$version" --show-depends "$module"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$initramfs/modules.list"
while read -r path; do
  cp "$path" "$initramfs/root/modules/"
  basename "$path" >>"$initramfs/root/modules/order"
done <"$initramfs/modules.list"
(cd "$initramfs/root" && find . -print0 | cpio --null --quiet -o -H newc) >"$initramfs/initramfs.cpio"

# --- 3. The variants ------------------------------------------------------------
export PYEXEC_VM_KERNEL=$kernel/vmlinuz
export PYEXEC_VM_INITRD=$initramfs/initramfs.cpio
export PYEXEC_VM_ROOTFS=$rootfs.ext4
export PYEXEC_VM_IMAGE_CONFIG=$rootfs.config.json
export PYEXEC_VM_WORK=$PYEXEC_IMAGE_CACHE/runs
export PYEXEC_VM_EXAMPLES=$repo/examples
cd "$repo"
# shellcheck disable=SC2086 # VMTEST_FLAGS is a list of flags
go test -tags image -count=1 -v -timeout 40m ${VMTEST_FLAGS:-} ./image/vmtest
