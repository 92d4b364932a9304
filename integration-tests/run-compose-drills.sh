#!/usr/bin/env bash
# Runs every docker-compose drill (failover, host restart, dns outage, scale, partition) when a Docker
# engine answers; otherwise prints one line saying they were skipped and exits 0. Builds
# the image first (scripts/build-image.sh, offline). Exits non-zero if any drill fails;
# prints each drill's time and the total. Called by scripts/test.sh (and so by CI).
#
#   integration-tests/run-compose-drills.sh              # all drills
#   integration-tests/run-compose-drills.sh failover     # some of them
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
  echo "compose drills: SKIPPED (no Docker engine answers \`docker info\`)"
  exit 0
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "compose drills: FAILED: a Docker engine answers but neither \`docker compose\` nor \`docker-compose\` is installed" >&2
  exit 1
fi
# The drills read the containers' JSON APIs with curl and jq.
if ! command -v jq >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  echo "compose drills: installing curl and jq"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends curl jq >/dev/null; } || exit 1
fi

drills=("$@")
((${#drills[@]})) || drills=(failover host-restart dns-outage scale partition fleets)

total_start=$SECONDS
image_start=$SECONDS
bash scripts/build-image.sh || { echo "compose drills: FAILED: the image did not build" >&2; exit 1; }
summary=("image: $((SECONDS - image_start)) s")

failed=()
for d in "${drills[@]}"; do
  echo "=== compose drill: $d"
  t=$SECONDS
  if bash "integration-tests/$d.sh"; then
    summary+=("$d: passed in $((SECONDS - t)) s")
  else
    summary+=("$d: FAILED after $((SECONDS - t)) s")
    failed+=("$d")
  fi
done

echo "=== compose drills: ${summary[*]/%/;} total $((SECONDS - total_start)) s"
if ((${#failed[@]})); then
  echo "compose drills: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "compose drills: all ${#drills[@]} passed"
