#!/usr/bin/env bash
# Builds the kmslab runtime image (kmslab:dev) offline: static binaries with the installed
# toolchain and the crates already in ~/.cargo, then `FROM scratch` + those binaries with
# the classic builder. Works from a fresh clone; no registry is contacted.
#
#   scripts/build-image.sh            # image kmslab:dev
#   KMSLAB_IMAGE=kmslab:test scripts/build-image.sh
#
# Environment:
#   KMSLAB_IMAGE        image tag [kmslab:dev]
#   CARGO_TARGET_DIR    where cargo builds [target/docker-static, so a normal `cargo build`
#                       running at the same time neither waits for this one's lock nor has
#                       its artifacts replaced]
#   KMSLAB_ONLINE=1     let cargo use the network (drops --offline)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

image=${KMSLAB_IMAGE:-kmslab:dev}
triple=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target/docker-static}
bins=(kms-host kms-client slmgr kmslab)
offline=(--offline)
[[ ${KMSLAB_ONLINE:-0} == 1 ]] && offline=()

command -v docker >/dev/null || { echo "build-image: docker is not installed" >&2; exit 1; }

start=$SECONDS
echo "build-image: static binaries (${bins[*]}) into $CARGO_TARGET_DIR/$triple/release"
# An explicit --target keeps RUSTFLAGS (+crt-static) away from build scripts and proc
# macros, which must stay dynamic host programs; the musl target is not available here.
bin_args=()
for b in "${bins[@]}"; do bin_args+=(--bin "$b"); done
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  cargo build --release --locked "${offline[@]}" --target "$triple" "${bin_args[@]}"

ctx=$CARGO_TARGET_DIR/docker-context
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/data"
chmod 1777 "$ctx/rootfs/tmp"
for b in "${bins[@]}"; do
  src=$CARGO_TARGET_DIR/$triple/release/$b
  # A dynamic binary would fail in a scratch image with a bare "no such file or directory".
  if command -v readelf >/dev/null && readelf -l "$src" | grep -q 'INTERP'; then
    echo "build-image: $src is dynamically linked (needs +crt-static)" >&2
    exit 1
  fi
  cp "$src" "$ctx/rootfs/bin/$b"
  # Line tables stay in the target dir; the image only needs symbols for backtraces.
  command -v strip >/dev/null && strip --strip-debug "$ctx/rootfs/bin/$b"
done

echo "build-image: image $image (classic builder, FROM scratch)"
# The image this build replaces (removed afterwards, so repeated builds leave no untagged
# images behind).
previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
# (The CLI's notice that the classic builder is deprecated is noise here: shown only on failure.)
if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "$image" -f "$repo/Dockerfile" "$ctx" 2>&1); then
  echo "$out" >&2
  exit 1
fi
current=$(docker image inspect -f '{{.Id}}' "$image")
if [[ -n $previous && $previous != "$current" ]]; then
  docker image rm "$previous" >/dev/null 2>&1 || true   # still used by a container: kept
fi
# The image must run without anything but itself.
docker run --rm --network none "$image" kmslab --version
echo "build-image: $image built in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
