#!/usr/bin/env bash
# Runs every cargo-fuzz target for about 10 seconds over its committed corpus (fuzz/corpus/)
# and fails on any crash, hang or failed build. `.ci/run` calls it; it needs nightly, and
# exits 0 with a message where there is none. See docs/reliability.md ("Fuzzing").
#
# Usage: fuzz/ci.sh [SECONDS_PER_TARGET]   (default 10)
set -euo pipefail

secs="${1:-10}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v rustup >/dev/null 2>&1; then
    echo "fuzz/ci.sh: rustup not found, skipping the fuzz targets (they need a nightly toolchain)"
    exit 0
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz/ci.sh: no nightly toolchain (rustup toolchain list), skipping the fuzz targets"
    exit 0
fi

# `cargo install` puts cargo-fuzz here; a fresh shell may not have it on PATH yet.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
# libfuzzer-sys compiles libFuzzer from C++ source.
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    echo "fuzz/ci.sh: no C++ compiler (c++, g++ or clang++) to build libFuzzer with" >&2
    exit 1
fi

# The default build profile of cargo-fuzz: optimized, with debug assertions and overflow
# checks on, so an integer overflow is a crash here even though it wraps in release builds.
cargo +nightly fuzz build

targets="$(cargo +nightly fuzz list)"
if [ -z "$targets" ]; then
    echo "fuzz/ci.sh: cargo fuzz list found no targets" >&2
    exit 1
fi

# New inputs found during a CI run go to a scratch directory, not into the committed corpus.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $targets; do
    mkdir -p "corpus/$target" "$scratch/$target" "artifacts/$target"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [ -f "dict/$target.dict" ]; then
        args+=(-dict="dict/$target.dict")
    # Every *_body target (request, response, error, service_request, service_answer) and
    # frame_decode share the wire protocol dictionary.
    elif [ "${target%_body}" != "$target" ] || [ "$target" = frame_decode ]; then
        args+=(-dict=dict/frame.dict)
    fi
    echo "fuzz/ci.sh: $target for ${secs}s over $(find "corpus/$target" -type f | wc -l | tr -d ' ') corpus files"
    log="$scratch/$target.log"
    if cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" | sed "s/^/  /" || true
    else
        echo "fuzz/ci.sh: $target FAILED; the end of its log:" >&2
        tail -n 40 "$log" >&2
        echo "  (crashing inputs are kept in fuzz/artifacts/$target/; reproduce with" >&2
        echo "   cargo +nightly fuzz run $target fuzz/artifacts/$target/<file>)" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz/ci.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/ci.sh: all targets ran ${secs}s without a crash"
