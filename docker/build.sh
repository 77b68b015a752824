#!/usr/bin/env bash
# Builds the fedcare image (Dockerfile: a static binary in an empty base) with no registry:
#   docker/build.sh [TAG]        (default tag: fedcare:latest)
# It builds the static binary with cargo (target x86_64-unknown-linux-musl, which needs
# `rustup target add x86_64-unknown-linux-musl` and Debian's musl-tools for ring's C code),
# assembles the build context, builds the image, and prints the binary's build time, the
# image's build time and its size. FEDCARE_BINARY=path skips the cargo step (a binary built
# elsewhere, for this same target).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-fedcare:latest}"
target=x86_64-unknown-linux-musl
target_dir="${CARGO_TARGET_DIR:-target}"

if [ -z "${FEDCARE_BINARY:-}" ]; then
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  command -v musl-gcc >/dev/null || {
    echo "musl-gcc is missing: install Debian's musl-tools (ring compiles C for the static binary)" >&2
    exit 1
  }
  start=$(date +%s)
  cargo build --release --locked --target "$target" --bin fedcare
  echo "static binary: built in $(( $(date +%s) - start )) s"
  FEDCARE_BINARY="$target_dir/$target/release/fedcare"
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$FEDCARE_BINARY" "$context/fedcare"
# The directories the volumes mount on, owned by the image's user (a new named volume takes
# the ownership of the directory it is mounted on).
mkdir -p "$context/rootfs/var/lib/fedcare" "$context/rootfs/etc/fedcare" "$context/rootfs/data" "$context/rootfs/tmp"
chmod 1777 "$context/rootfs/tmp"
cp docker/Dockerfile "$context/Dockerfile"

start=$(date +%s)
docker build --quiet --no-cache -t "$tag" "$context" >/dev/null
echo "image $tag: built in $(( $(date +%s) - start )) s from a cold cache, $(docker image inspect -f '{{.Size}}' "$tag") bytes"
