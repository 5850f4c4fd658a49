#!/usr/bin/env bash
# Build the deksdenflow images with whatever builder this machine has: docker, podman or buildah.
#
#   deploy/images/build.sh [api|workers]...        (no argument: both)
#
# Environment:
#   IMAGE_REPOSITORY   image names' prefix            (default: localhost/deksdenflow → …/api, …/workers)
#   IMAGE_TAG          their tag                      (default: the git commit, else "dev")
#   BASE_IMAGE         a Debian bookworm image        (default: docker.io/library/debian:bookworm-slim if
#                      it can be pulled, else one made here from Debian packages with debootstrap)
#   BUILDER            docker | podman | buildah      (default: the first one found that works)
#   BUILDAH_STORAGE_DRIVER  buildah's storage driver  (default: vfs, which works in any container)
#   BUILDAH_LAYERS     keep buildah's layer cache     (default: false; with vfs every layer is a full copy)
#   SSL_CERT_FILE      certificate authorities the build trusts for PyPI and npm, as a build secret
#                      (default: /etc/ssl/certs/ca-certificates.crt when it exists)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
repository="${IMAGE_REPOSITORY:-localhost/deksdenflow}"
tag="${IMAGE_TAG:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo dev)}"
upstream_base="docker.io/library/debian:bookworm-slim"
local_base="localhost/deksdenflow-base:bookworm"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(api workers)

say() { printf 'images: %s\n' "$*" >&2; }

pick_builder() {
  if [ -n "${BUILDER:-}" ]; then echo "$BUILDER"; return; fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null && podman info >/dev/null 2>&1; then echo podman; return; fi
  if command -v buildah >/dev/null; then echo buildah; return; fi
  say "no image builder found: install docker, podman or buildah (Debian: apt-get install buildah)"
  exit 3
}
builder="$(pick_builder)"

# Daemonless buildah works as root in a container: vfs storage, chroot isolation, the host's network.
cmd=("$builder")
[ "$builder" = buildah ] && cmd+=(--storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
b() { "${cmd[@]}" "$@"; }

image_exists() {
  if [ "$builder" = buildah ]; then b inspect --type image "$1" >/dev/null 2>&1; else b image inspect "$1" >/dev/null 2>&1; fi
}

# A bookworm image made from Debian packages (debootstrap minbase), packed and added onto scratch: for
# machines that reach Debian's archive but no container registry.
make_local_base() {
  if image_exists "$local_base"; then return; fi
  if ! command -v debootstrap >/dev/null; then
    say "debootstrap is needed to make a base image here (apt-get install debootstrap)"
    exit 3
  fi
  local work
  work="$(mktemp -d)"
  say "making $local_base with debootstrap (minbase bookworm)"
  debootstrap --variant=minbase bookworm "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin
  tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$work/Containerfile"
  build_args=(-t "$local_base" -f "$work/Containerfile")
  [ "$builder" = buildah ] && build_args+=(--isolation chroot)
  b build "${build_args[@]}" "$work" >&2
  rm -rf "$work"
}

pick_base() {
  if [ -n "${BASE_IMAGE:-}" ]; then echo "$BASE_IMAGE"; return; fi
  if image_exists "$upstream_base" || timeout 120 "${cmd[@]}" pull -q "$upstream_base" >/dev/null 2>&1; then
    echo "$upstream_base"
    return
  fi
  say "$upstream_base cannot be pulled: using a base made from Debian packages"
  make_local_base
  echo "$local_base"
}
base="$(pick_base)"

for target in "${targets[@]}"; do
  case "$target" in
    api | workers) ;;
    *) say "unknown image $target (api or workers)"; exit 2 ;;
  esac
  image="$repository/$target:$tag"
  args=(-f "$here/$target.Containerfile" -t "$image" --build-arg "BASE_IMAGE=$base")
  # HEALTHCHECK and STOPSIGNAL are Docker-format fields; buildah and podman write OCI unless told.
  case "$builder" in
    # vfs keeps a full copy of the file system for every cached layer (tens of GB for both images):
    # no layer cache unless BUILDAH_LAYERS=true.
    buildah) args+=(--format docker "--layers=${BUILDAH_LAYERS:-false}" --isolation chroot) ;;
    podman) args+=(--format docker --layers) ;;
  esac
  # This machine's certificate authorities, for a TLS proxy between the build and PyPI or npm.
  ca_bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
  [ -s "$ca_bundle" ] && args+=(--secret "id=ca_bundle,src=$ca_bundle")
  say "building $image (builder: $builder, base: $base)"
  started=$SECONDS
  b build "${args[@]}" "$root" >&2
  say "built $image in $((SECONDS - started))s"
  echo "$image"
done
