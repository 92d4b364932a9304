#!/usr/bin/env bash
# Screenshots of a real `kmslab up` for the docs: the lab page (docs/img/lab.png) and the
# dashboard of kms2, serving after the fault (docs/img/lab-kms2.png), taken by headless Chromium. The lab runs 200 machines
# at the default 43,200x; kms1 is stopped halfway, so the page shows the machines moving to
# kms2 and the fault among the lab events. Documented in docs/lab.md ("The lab page").
#
#   scripts/lab-screenshots.sh [--no-build] [OUTDIR]     (OUTDIR defaults to docs/img)
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
if [[ "${1:-}" == "--no-build" ]]; then build=0; shift; fi
out="${1:-docs/img}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "lab-screenshots: chromium not found (apt-get install -y chromium)" >&2; exit 1; }
command -v curl >/dev/null || { echo "lab-screenshots: curl not found" >&2; exit 1; }
if (( build )); then cargo build -p kmslab-lab --bin kmslab; fi
kmslab="${CARGO_TARGET_DIR:-target}/debug/kmslab"
work="$(mktemp -d)"
up_pid=""
cleanup() { [[ -n "$up_pid" ]] && kill "$up_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
XDG_RUNTIME_DIR="$work" "$kmslab" up --clients 200 --control 127.0.0.1:0 >"$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 120); do
  lab="$(sed -n 's/^listening on lab \([0-9.:]*\).*/\1/p' "$work/up.log")"
  [[ -n "$lab" ]] && break
  sleep 0.5
done
[[ -n "$lab" ]] || { echo "lab-screenshots: kmslab up did not start:" >&2; cat "$work/up.log" >&2; exit 1; }
shot() { # URL FILE
  timeout 90 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --window-size=1280,1100 --user-data-dir="$work/profile" --screenshot="$2" "$1" 2>/dev/null
}
sleep 8
curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -H "Origin: http://$lab" -d '{}' \
  "http://$lab/api/v1/lab/hosts/kms1/stop"
sleep 12
mkdir -p "$out"
shot "http://$lab/" "$out/lab.png"
dashboard="$(sed -n 's/^dashboard of kms2: \(http[^ ]*\).*/\1/p' "$work/up.log" | head -1)"
[[ -n "$dashboard" ]] || { echo "lab-screenshots: no \`dashboard of kms2\` line:" >&2; cat "$work/up.log" >&2; exit 1; }
shot "$dashboard" "$out/lab-kms2.png"
[[ -s "$out/lab.png" && -s "$out/lab-kms2.png" ]] || { echo "lab-screenshots: chromium wrote no screenshot" >&2; exit 1; }
echo "lab-screenshots: wrote $out/lab.png and $out/lab-kms2.png"
