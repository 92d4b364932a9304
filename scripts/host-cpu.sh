#!/usr/bin/env bash
# CPU time per request of each kms-host thread under a `kmslab bench` load.
#
#   scripts/host-cpu.sh [-b KMS_HOST] [-k KMSLAB] [-s full|normal] [BENCH ARGS...]
#
# Starts KMS_HOST (default target/release/kms-host) on a fresh registry in a temporary
# directory, reads every thread's CPU time (utime + stime from /proc/PID/task/*/stat)
# before and after one `kmslab bench` run against it (default args: --requests 64000
# --rate 8000), and prints the bench's result and the microseconds of CPU per request of
# each thread name (tokio-rt-worker summed over the workers). CPU per request varies far
# less between runs than rates and latencies on a shared two-core machine, so it is the
# figure to compare two builds by (docs/performance.md). Linux only.
set -euo pipefail
cd "$(dirname "$0")/.."

host=target/release/kms-host
kmslab=target/release/kmslab
sync=full
while (($#)); do
  case "$1" in
    -b) host=$2; shift 2 ;;
    -k) kmslab=$2; shift 2 ;;
    -s) sync=$2; shift 2 ;;
    *) break ;;
  esac
done
args=("$@")
((${#args[@]})) || args=(--requests 64000 --rate 8000)
requests=64000
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --requests ]] && requests=${args[i + 1]}
done
for bin in "$host" "$kmslab"; do
  [[ -x $bin ]] || { echo "host-cpu: $bin is not built (cargo build --release -p kmslab-host -p kmslab-lab)" >&2; exit 2; }
done

dir=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

"$host" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --data-dir "$dir/data" --no-dns-publish \
  --registry-sync "$sync" >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do
  grep -q '^listening on kms' "$dir/out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^listening on kms //p' "$dir/out" | head -1)
[[ -n $addr ]] || { echo "host-cpu: the host did not start:" >&2; cat "$dir/log" >&2; exit 1; }

# Thread name and CPU ticks (field 14 utime + 15 stime; the name, field 2, has no spaces
# in kms-host, whose threads are named tokio-rt-worker and kmslab-store-*).
ticks() {
  for task in /proc/"$pid"/task/*; do
    awk '{ gsub(/[()]/, "", $2); print $2, $14 + $15 }' "$task/stat"
  done | awk '{ t[$1] += $2 } END { for (n in t) print n, t[n] }' | sort
}
ticks >"$dir/before"
"$kmslab" bench --target "$addr" "${args[@]}" | grep -E '^(rate|latency)'
ticks >"$dir/after"
hz=$(getconf CLK_TCK)
join "$dir/before" "$dir/after" | awk -v n="$requests" -v hz="$hz" '
  { us = ($3 - $2) * 1e6 / hz / n; total += us; printf "%-18s %6.1f us/request\n", $1, us }
  END { printf "%-18s %6.1f us/request\n", "all threads", total }'
