#!/usr/bin/env bash
# Soak: N minutes (default 30) at half the peak rate measured by `kmslab bench`.
#
#   integration-tests/soak.sh [MINUTES]
#
# Builds release binaries, starts a kms-host on 127.0.0.1 (port 0, fresh data dir), measures
# the peak rate with `kmslab bench` (keep-alive, 64 connections), then runs back-to-back
# paced benches of SOAK_INTERVAL seconds (default 30) at half that rate. After every
# interval it samples the host's RSS (VmRSS in /proc/PID/status) and open fds
# (/proc/PID/fd), and prints the interval's rate, p50, p99 and errors.
#
# Fails when
#   - any request of any interval fails (bench error or non-2xx HRESULT), or the host exits;
#   - RSS at the end exceeds RSS after the first interval (the warm-up: SQLite page cache,
#     ledger at its cap, tokio's worker pools) by more than SOAK_RSS_TOL_PCT percent
#     (default 25) plus SOAK_RSS_TOL_KB (default 16384 KiB);
#   - open fds at the end exceed those after the first interval by more than SOAK_FD_TOL
#     (default 8: WAL/SHM reopen, a checkpoint connection, a stray admin socket).
# p99 per interval is printed for the report, not asserted (the machine is shared).
set -euo pipefail

minutes=${1:-30}
interval=${SOAK_INTERVAL:-30}
rss_tol_pct=${SOAK_RSS_TOL_PCT:-25}
rss_tol_kb=${SOAK_RSS_TOL_KB:-16384}
fd_tol=${SOAK_FD_TOL:-8}
connections=${SOAK_CONNECTIONS:-32}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '%s soak: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

log "building release binaries"
cargo build --release -q -p kmslab-host -p kmslab-lab
target_dir=${CARGO_TARGET_DIR:-$root/target}
host_bin=$target_dir/release/kms-host
bench_bin=$target_dir/release/kmslab

work=$(mktemp -d /tmp/kmslab-soak.XXXXXX)
host_pid=
cleanup() {
  if [[ -n $host_pid ]] && kill -0 "$host_pid" 2>/dev/null; then
    kill -TERM "$host_pid" 2>/dev/null || true
    wait "$host_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$host_bin" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --data-dir "$work/data" --no-dns-publish \
  >"$work/host.out" 2>"$work/host.err" &
host_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on admin' "$work/host.out" 2>/dev/null && break
  sleep 0.1
done
kms=$(awk '/^listening on kms/ {print $4; exit}' "$work/host.out")
[[ -n $kms ]] || { cat "$work/host.err" >&2; log "FAIL: host did not start"; exit 1; }
log "host pid $host_pid on $kms"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$host_pid/status"; }
fds() { find "/proc/$host_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }

log "measuring peak (20000 requests, 64 connections, keep-alive)"
peak_json=$("$bench_bin" bench --target "$kms" --requests 20000 --connections 64 --json | tail -n 1)
peak=$(jq -r .rate <<<"$peak_json")
rate=$(jq -n "$peak / 2 | floor")
per_interval=$((rate * interval))
log "peak $peak requests/s; soaking at $rate requests/s for $minutes min ($per_interval requests per ${interval}s interval)"
log "start: rss $(rss_kb) KiB, fds $(fds)"

intervals=$(((minutes * 60 + interval - 1) / interval))
failed=0
warm_rss= warm_fds=
printf '%-4s %-9s %-10s %-9s %-9s %-8s %-5s %s\n' int elapsed rate p50_ms p99_ms rss_kb fds errors
t0=$(date +%s)
for i in $(seq 1 "$intervals"); do
  if ! out=$("$bench_bin" bench --target "$kms" --requests "$per_interval" --connections "$connections" --rate "$rate" --json 2>&1); then
    failed=1
  fi
  json=$(tail -n 1 <<<"$out")
  kill -0 "$host_pid" 2>/dev/null || { log "FAIL: host exited"; cat "$work/host.err" >&2; exit 1; }
  r=$(rss_kb) f=$(fds)
  errs=$(jq -c .errors <<<"$json" 2>/dev/null || echo '"unparsable"')
  [[ $errs == '{}' ]] || failed=1
  printf '%-4s %-9s %-10s %-9s %-9s %-8s %-5s %s\n' "$i" "$(($(date +%s) - t0))s" "$(jq -r .rate <<<"$json")" \
    "$(jq -r .p50_ms <<<"$json")" "$(jq -r .p99_ms <<<"$json")" "$r" "$f" "$errs"
  if [[ $i == 1 ]]; then warm_rss=$r warm_fds=$f; fi
done
end_rss=$(rss_kb) end_fds=$(fds)
log "end: rss $end_rss KiB (after warm-up $warm_rss), fds $end_fds (after warm-up $warm_fds)"
host_errors=$(grep -c 'ERROR' "$work/host.err" || true)
log "host log: $host_errors ERROR lines, $(grep -c 'WARN' "$work/host.err" || true) WARN lines"

max_rss=$((warm_rss + warm_rss * rss_tol_pct / 100 + rss_tol_kb))
max_fds=$((warm_fds + fd_tol))
status=0
if ((failed)); then log "FAIL: some requests failed"; status=1; fi
if ((host_errors > 0)); then log "FAIL: the host logged errors"; grep 'ERROR' "$work/host.err" | head >&2; status=1; fi
if ((end_rss > max_rss)); then log "FAIL: RSS grew to $end_rss KiB (limit $max_rss)"; status=1; fi
if ((end_fds > max_fds)); then log "FAIL: fds grew to $end_fds (limit $max_fds)"; status=1; fi
((status == 0)) && log "PASS: rss and fds within tolerance, no errors"
exit "$status"
