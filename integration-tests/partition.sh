#!/usr/bin/env bash
# Drill: partition. Clients with host caching (the default) and clients without it
# (`/ckhc`) activate through kms1 (priority 0). kms1 is cut off the network while it keeps
# running (`docker network disconnect`): every client renews through kms2 and none leaves
# Licensed. kms1 is reconnected: the /ckhc clients, which look the hosts up at each
# renewal, return to kms1 by priority; the cached ones stay with kms2, where they last
# succeeded.
DRILL_NAME=partition
source "$(dirname "$0")/compose-lib.sh"
per_group=${DRILL_CLIENTS:-3}
clients=$((2 * per_group))

# Every client container of both services.
client_ids() {
  docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=client | sort
  docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=client-ckhc | sort
}

log "up: dns, kms1, kms2, $per_group clients with host caching and $per_group without (project $COMPOSE_PROJECT_NAME)"
out=$(compose --profile ckhc up -d --scale "client=$per_group" --scale "client-ckhc=$per_group" 2>&1) || { echo "$out" >&2; fail "compose up failed"; }
wait_for 120 "$clients clients Licensed" all_licensed "$clients"
st=$(clients_status)
jq -e 'all(.host.last | startswith("kms1."))' <<<"$st" >/dev/null || fail "not every client activated through kms1: $(clients_summary)"

kms1=$(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=kms1)
net="${COMPOSE_PROJECT_NAME}_lab"
log "cutting kms1 off $net (it keeps running)"
docker network disconnect "$net" "$kms1" || fail "docker network disconnect"

renewed_via_kms2() {
  local st
  st=$(clients_status) || return 1
  jq -e 'all(.status == "licensed")' <<<"$st" >/dev/null ||
    fail "a client left Licensed during the partition: $(jq -c '[.[] | select(.status != "licensed") | {container, status, last_result}]' <<<"$st")"
  jq -e 'all(.host.last | startswith("kms2.")) and all(.last_result.hresult == "0x00000000")' <<<"$st" >/dev/null
}
wait_for 180 "every client renewed through kms2" renewed_via_kms2
[[ $(docker inspect -f '{{.State.Running}}' "$kms1") == true ]] || fail "kms1 stopped during the partition"
log "every client renewed through kms2 ($(clients_summary)); reconnecting kms1"
docker network connect --ip "$KMSLAB_NET_PREFIX.11" "$net" "$kms1" || fail "docker network connect"

# /ckhc clients (host caching off) back on kms1, cached ones still on kms2.
back_by_priority() {
  local st
  st=$(clients_status) || return 1
  jq -e 'all(.status == "licensed")' <<<"$st" >/dev/null || fail "a client left Licensed after the partition"
  jq -e '[.[] | select(.host_caching == false)] | length > 0 and all(.host.last | startswith("kms1."))' <<<"$st" >/dev/null
}
wait_for 180 "the /ckhc clients back on kms1" back_by_priority
# A few more renewals: the cached clients must stay where they are.
sleep 15
st=$(clients_status)
jq -e '[.[] | select(.host_caching != false)] | length == '"$per_group"' and all(.host.last | startswith("kms2."))' <<<"$st" >/dev/null ||
  fail "cached clients did not stay on kms2: $(jq -c '[.[] | {host_caching, last: .host.last}]' <<<"$st")"
log "after the partition: /ckhc clients on kms1, cached clients on kms2 ($(clients_summary))"
