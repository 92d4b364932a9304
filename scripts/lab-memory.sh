#!/usr/bin/env bash
# Resident memory of `kmslab up --clients N` and, for comparison, of `kmslab fleet --clients N`
# (the same machines driven against one separate kms-host), each read from /proc after the
# same real time at the lab's 43,200x. Documented in docs/lab.md ("How much memory").
#
#   scripts/lab-memory.sh [--bin DIR] [--seconds S] N...
#
#   --bin DIR     where kmslab and kms-host are [target/release]
#   --seconds S   how long each runs before RSS is read [30]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
secs=30
counts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift ;;
        --seconds) secs=$2; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) counts+=("$1") ;;
    esac
    shift
done
[ ${#counts[@]} -gt 0 ] || { echo "lab-memory.sh: give one or more machine counts" >&2; exit 2; }
for b in kmslab kms-host; do
    [ -x "$bin/$b" ] || { echo "lab-memory.sh: $bin/$b missing (cargo build --release)" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do { kill -9 "$p"; wait "$p"; } 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_for() { # FILE PATTERN
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "lab-memory.sh: no '$2' in $1" >&2; cat "$1" >&2; exit 1
}

printf '%-8s %10s %10s %12s %12s\n' machines lab_MB fleet_MB lab_KiB/m fleet_KiB/m
for n in "${counts[@]}"; do
    d=$work/$n; mkdir -p "$d"
    "$bin/kmslab" up --clients "$n" --data-dir "$d/lab" > "$d/lab.log" 2>&1 &
    lab=$!; pids+=("$lab")
    sleep "$secs"
    lab_rss=$(rss_kib $lab)
    { kill -9 $lab; wait $lab; } 2>/dev/null || true

    origin=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    "$bin/kms-host" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --data-dir "$d/host" --no-dns-publish \
        --time-scale 43200 --time-origin "$origin" --registry-sync normal > "$d/host.log" 2>&1 &
    host=$!; pids+=("$host")
    wait_for "$d/host.log" "listening on kms"
    addr=$(grep -m1 -o "listening on kms [0-9.:]*" "$d/host.log" | awk '{print $4}')
    "$bin/kmslab" fleet --kms "$addr" --clients "$n" --duration 3650d --time-scale 43200 \
        --time-origin "$origin" > "$d/fleet.log" 2>&1 &
    fleet=$!; pids+=("$fleet")
    sleep "$secs"
    fleet_rss=$(rss_kib $fleet)
    { kill -9 $fleet $host; wait $fleet $host; } 2>/dev/null || true
    awk -v n="$n" -v l="$lab_rss" -v f="$fleet_rss" \
        'BEGIN { printf "%-8d %10.1f %10.1f %12.2f %12.2f\n", n, l/1000, f/1000, l/n, f/n }'
done
