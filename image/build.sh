#!/usr/bin/env bash
# make image: builds the repository's Dockerfile, as it is, into
# $PYEXEC_IMAGE (default localhost/pyexec:latest) with podman, and prints the
# image's ID and size.
#
# The tools come from Debian's packages (install-tools.sh) and the base images
# are pulled or, where they cannot be, built locally under their own names
# (bases.sh), so the build is the one Cloud Build runs on the same commit.
#
# Registries are reached through TLS re-signed by a CA only this machine's
# bundle trusts. The build gets that bundle and a pip config pointing at it as
# read-only mounts of its RUN steps, so nothing of this machine is baked into
# the image.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/lib.sh"

bash "$here/install-tools.sh" >/dev/null
bash "$here/bases.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[global]\ncert = /run/host-ca.crt\n' >"$work/pip.conf"

started=$(now)
log "building $PYEXEC_IMAGE from $repo/Dockerfile"
podman_ build --pull=never "${PODMAN_ULIMITS[@]}" \
  --volume "$HOST_CA_BUNDLE:/run/host-ca.crt:ro" \
  --volume "$work/pip.conf:/etc/pip.conf:ro" \
  --file "$repo/Dockerfile" --tag "$PYEXEC_IMAGE" "$repo" >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; die "podman build failed"; }
log "built in $(elapsed "$started")"

id=$(podman_ image inspect --format '{{.Id}}' "$PYEXEC_IMAGE")
size=$(podman_ image inspect --format '{{.Size}}' "$PYEXEC_IMAGE")
printf '%s %s: %s MB (%s bytes)\n' "$PYEXEC_IMAGE" "${id:0:12}" "$((size / 1000000))" "$size"
