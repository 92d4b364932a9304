#!/usr/bin/env bash
# Installs kmslab: the four binaries, their man pages and shell completions, and (only with
# --systemd) the systemd units. Documented in docs/operations.md ("Installing").
#
#   scripts/install.sh [--no-build] [--from DIR] [--dist|--small] [--systemd] [--unitdir DIR] [PREFIX]
#
#   PREFIX        install root [/usr/local]: PREFIX/bin, PREFIX/share/man/man1,
#                 PREFIX/share/bash-completion/completions, PREFIX/share/zsh/site-functions,
#                 PREFIX/share/fish/vendor_completions.d, PREFIX/share/doc/kmslab
#   --no-build    do not build; use binaries already built
#   --from DIR    take the binaries from DIR [target/release, target/dist with --dist,
#                 target/small with --small]
#   --dist        build the `dist` profile (release code with thin LTO) instead of `release`
#   --small       build the `small` profile (fat LTO, size-optimised: the smallest idle
#                 memory; on few cores the quickest build from scratch) instead of `release`
#   --systemd     also install packaging/systemd/*.service (their ExecStart points at
#                 PREFIX/bin) and run `systemctl daemon-reload`
#   --unitdir DIR where --systemd puts the units [/etc/systemd/system]
#   DESTDIR       (environment) staging root prepended to every path, for packagers
#
# By default it builds Cargo's `release` profile, what the README's first command
# (`cargo build --release`) already built, so after that it only copies; the installed
# copies are stripped.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

root=$(cd "$(dirname "$0")/.." && pwd)
build=1
from=""
systemd=0
profile=release
unitdir_in=/etc/systemd/system
prefix=/usr/local
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --from) [ $# -ge 2 ] || { echo "install.sh: --from needs a directory" >&2; exit 2; }; from=$2; shift ;;
        --systemd) systemd=1 ;;
        --small) profile=small ;;
        --dist) profile=dist ;;
        --unitdir) [ $# -ge 2 ] || { echo "install.sh: --unitdir needs a directory" >&2; exit 2; }; unitdir_in=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) prefix=$1 ;;
    esac
    shift
done
case "$prefix" in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
destdir=${DESTDIR:-}
bins="kms-host kms-client slmgr kmslab"

if [ "$build" = 1 ]; then
    # Cargo's release profile (what `cargo build --release` already built), or
    # Cargo.toml [profile.dist] (thin LTO, stripped), or [profile.small] (fat LTO,
    # size-optimised: an idle kms-host stays under 8 MB resident, docs/reliability.md).
    (cd "$root" && cargo build --locked --profile "$profile" --bins)
fi
if [ -z "$from" ]; then
    from=${CARGO_TARGET_DIR:-$root/target}/$profile
fi
for b in $bins; do
    [ -x "$from/$b" ] || { echo "install.sh: $from/$b missing (build first, or drop --no-build)" >&2; exit 1; }
done

bindir=$destdir$prefix/bin
mandir=$destdir$prefix/share/man/man1
bashdir=$destdir$prefix/share/bash-completion/completions
zshdir=$destdir$prefix/share/zsh/site-functions
fishdir=$destdir$prefix/share/fish/vendor_completions.d
docdir=$destdir$prefix/share/doc/kmslab

install -d "$bindir" "$mandir" "$bashdir" "$zshdir" "$fishdir" "$docdir"
# The release profile keeps line tables for backtraces; installed copies go without them
# (dist and small are stripped when built). Without binutils' strip they stay as built.
strip_flag=()
if command -v strip >/dev/null 2>&1; then
    strip_flag=(-s)
fi
for b in $bins; do
    install -m 0755 "${strip_flag[@]}" "$from/$b" "$bindir/$b"
    echo "installed $bindir/$b"
done

# Man pages and completions come from the clap definitions of the binaries just installed.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$from/kmslab" man --out-dir "$tmp/man" 2>/dev/null
for page in "$tmp"/man/*.1; do
    install -m 0644 "$page" "$mandir/"
done
echo "installed $(ls "$tmp"/man | wc -l) man pages in $mandir"
for shell in bash zsh fish; do
    "$from/kmslab" completions "$shell" --out-dir "$tmp/$shell" 2>/dev/null
done
for b in $bins; do
    # The names each shell looks up on demand: bash by command name, zsh `_NAME`, fish NAME.fish.
    install -m 0644 "$tmp/bash/$b.bash" "$bashdir/$b"
    install -m 0644 "$tmp/zsh/_$b" "$zshdir/_$b"
    install -m 0644 "$tmp/fish/$b.fish" "$fishdir/$b.fish"
done
echo "installed completions in $bashdir, $zshdir, $fishdir"
install -m 0644 "$root"/README.md "$root"/CHANGELOG.md "$root"/docs/*.md "$docdir/"
echo "installed documentation in $docdir"

if [ "$systemd" = 1 ]; then
    unitdir=$destdir$unitdir_in
    install -d "$unitdir"
    for unit in "$root"/packaging/systemd/*.service; do
        sed -e "s|/usr/local/bin/|$prefix/bin/|g" -e "s|/usr/share/doc/kmslab/|$prefix/share/doc/kmslab/|g" "$unit" > "$tmp/$(basename "$unit")"
        install -m 0644 "$tmp/$(basename "$unit")" "$unitdir/"
        echo "installed $unitdir/$(basename "$unit")"
    done
    if [ -z "$destdir" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    echo "next: systemctl enable --now kms-host.service (settings: /etc/kmslab/kms-host.env)"
fi
