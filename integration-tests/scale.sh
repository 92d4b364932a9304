#!/usr/bin/env bash
# Drill: scale. Windows 7 Enterprise clients need a host count of 25. The fleet starts
# with 10 of them: kms1 counts all 10 and refuses them with 0xC004F038 (count too low).
# `--scale client=30` then takes the count past the threshold: every client activates and
# kms1 counts all 30 (its cap for this group is 50, twice the threshold).
DRILL_NAME=scale
export KMSLAB_CLIENT_PRODUCT=${DRILL_PRODUCT:-win7-enterprise}
source "$(dirname "$0")/compose-lib.sh"
start_clients=${DRILL_START_CLIENTS:-10}
clients=${DRILL_CLIENTS:-30}

log "up: dns, kms1, kms2 and $start_clients $KMSLAB_CLIENT_PRODUCT clients (project $COMPOSE_PROJECT_NAME, time x$KMSLAB_TIME_SCALE)"
out=$(compose up -d --scale "client=$start_clients" 2>&1) || { echo "$out" >&2; fail "compose up failed"; }
below_threshold() {
  local st
  st=$(clients_status) || return 1
  [[ $(jq length <<<"$st") == "$start_clients" ]] && [[ $(host_count kms1) == "$start_clients" ]] &&
    jq -e 'all(.status != "licensed" and .last_result.hresult == "0xC004F038")' <<<"$st" >/dev/null
}
wait_for 120 "kms1 counting $start_clients clients, all refused with 0xC004F038" below_threshold
log "kms1 counts $start_clients; every client refused with 0xC004F038 ($(clients_summary))"

log "scaling to $clients clients"
out=$(compose up -d --no-recreate --scale "client=$clients" 2>&1) || { echo "$out" >&2; fail "scaling up failed"; }
wait_for 180 "$clients clients Licensed" all_licensed "$clients"
log "all $clients clients Licensed ($(clients_summary))"

st=$(host_status kms1)
count=$(jq -r '.counts[0].count' <<<"$st")
cap=$(jq -r '.counts[0].cap' <<<"$st")
want=$((clients < cap ? clients : cap))
log "kms1 current count $count (cap $cap)"
((count == want)) || fail "kms1 counts $count, expected $want ($clients clients, cap $cap)"
known=$(get_json "$(published kms1 8688)" '/api/v1/clients?limit=1' | jq -r .total)
((known == clients)) || fail "kms1's registry holds $known clients, expected $clients"
log "kms1's registry holds all $known clients"
