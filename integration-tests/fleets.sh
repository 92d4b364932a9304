#!/usr/bin/env bash
# Drill: fleet containers. `--profile fleet --scale fleet=N` runs N `kmslab fleet`
# containers of KMSLAB_FLEET_MACHINES machines each, which find the hosts through the DNS
# server given by its service name (`--dns-server dns:53`): every machine of every
# container activates, and kms1's registry holds them all (their CMIDs differ).
DRILL_NAME=fleets
source "$(dirname "$0")/compose-lib.sh"
fleets=${DRILL_FLEETS:-2}
export KMSLAB_FLEET_MACHINES=${DRILL_FLEET_MACHINES:-1000}
want=$((fleets * KMSLAB_FLEET_MACHINES))

log "up: dns, kms1, kms2 and $fleets fleet containers x $KMSLAB_FLEET_MACHINES machines (project $COMPOSE_PROJECT_NAME)"
out=$(compose --profile fleet up -d --scale client=0 --scale "fleet=$fleets" 2>&1) || { echo "$out" >&2; fail "compose up failed"; }

fleet_licensed() {
  local id addr m lic=0 n=0
  for id in $(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=fleet); do
    addr=$(docker port "$id" 9100/tcp 2>/dev/null | grep -m1 '^127\.0\.0\.1:') || return 1
    m=$(get_json "$addr" /metrics) || return 1
    lic=$((lic + $(awk '/^kmslab_fleet_machines\{status="licensed"\}/ {print $2}' <<<"$m")))
    n=$((n + 1))
  done
  echo "$n $lic"
}
all_fleets_licensed() { [[ $(fleet_licensed) == "$fleets $want" ]]; }
wait_for 180 "$want machines Licensed in $fleets containers" all_fleets_licensed
log "all $want machines Licensed ($(fleet_licensed | awk '{print $1" containers"}'))"
known=$(get_json "$(published kms1 8688)" '/api/v1/clients?limit=1' | jq -r .total)
((known == want)) || fail "kms1's registry holds $known machines, expected $want"
log "kms1's registry holds all $known"
