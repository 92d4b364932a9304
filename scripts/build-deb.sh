#!/usr/bin/env bash
# Builds a Debian package of kmslab offline, with dpkg-deb: the four binaries in /usr/bin,
# their man pages and shell completions, the documentation and the systemd units in
# /lib/systemd/system (installed, not enabled). Documented in docs/operations.md.
#
#   scripts/build-deb.sh [--no-build] [--from DIR] [--out DIR]
#
#   --no-build    package binaries already built (with --from) instead of building
#                 Cargo's `release` profile (as scripts/install.sh does by default)
#   --from DIR    where the binaries are [target/release]
#   --out DIR     where the .deb is written [target/deb]; its path is the last line printed
#   --compress C  dpkg-deb's compressor: xz, gzip, zstd or none [xz]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
install_args=()
out=${CARGO_TARGET_DIR:-$root/target}/deb
compress=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) install_args+=(--no-build) ;;
        --from) [ $# -ge 2 ] || { echo "build-deb.sh: --from needs a directory" >&2; exit 2; }; install_args+=(--from "$2"); shift ;;
        --compress) [ $# -ge 2 ] || { echo "build-deb.sh: --compress needs xz, gzip, zstd or none" >&2; exit 2; }; compress=$2; shift ;;
        --out) [ $# -ge 2 ] || { echo "build-deb.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb not found (Debian's dpkg package)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

DESTDIR="$stage" bash "$root/scripts/install.sh" "${install_args[@]}" --systemd --unitdir /lib/systemd/system /usr >&2

install -d "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: kmslab
Version: $version
Architecture: $arch
Maintainer: kmslab developers <kmslab@localhost>
Depends: libc6 (>= 2.34)
Section: net
Priority: optional
Homepage: file:///usr/share/doc/kmslab/README.md
Description: KMS activation lab: KMS host and client daemons on an open protocol
 kmslab reproduces Microsoft's Key Management Service behaviour for Windows 7 and
 Windows Server 2008 R2 volume activation (counting, thresholds, intervals, SRV
 discovery, failover) over its own open protocol, with slmgr-style tools and
 simulated time. It cannot activate real Windows or Office.
CONTROL
# The units use DynamicUser=, so no user is created; they are installed, not enabled.
for script in postinst postrm; do
    cat > "$stage/DEBIAN/$script" <<'SCRIPT'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload || true
fi
exit 0
SCRIPT
    chmod 0755 "$stage/DEBIAN/$script"
done

install -d "$out"
deb="$out/kmslab_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z$compress" --build "$stage" "$deb" >&2
echo "$deb"
