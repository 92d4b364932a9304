#!/usr/bin/env bash
# Drill: DNS outage. With the dns service stopped, clients that cached their host keep
# renewing with it; a machine that joins during the outage has nothing cached and fails
# discovery with a DNS HRESULT; when dns is back, that machine activates and every client
# renews again.
DRILL_NAME=dns-outage
source "$(dirname "$0")/compose-lib.sh"
clients=${DRILL_CLIENTS:-6}

fleet_up "$clients"
log "stopping dns"
compose stop -t 3 dns >/dev/null 2>&1
stopped_at=$(get_json "$(client_addr "$(client_ids | head -n1)")" /api/v1/status | jq -r .now)

# Every client must complete a successful renewal after the stop (simulated time).
renewed_since_stop() {
  local st
  st=$(clients_status) || return 1
  jq -e 'all(.status == "licensed")' <<<"$st" >/dev/null || fail "a client left Licensed during the DNS outage: $(clients_summary)"
  jq -e --arg t "$stopped_at" 'all(.last_result.hresult == "0x00000000" and .last_result.at > $t)' <<<"$st" >/dev/null
}
# A cached host is reached at the address its name last resolved to (kms-client keeps
# them, as the Windows DNS client cache does), so renewals go on without DNS.
try_for 20 "every cached client renewed during the outage" renewed_since_stop \
  || fail "clients with a cached host did not renew while dns was down (last results: $(clients_status | jq -r '[.[].last_result | "\(.hresult) \(.name)"] | unique | join(", ")'); still $(clients_summary))"
log "all $clients clients renewed with their cached host while dns was down ($(clients_summary))"

log "adding a new client during the outage"
old_ids=$(client_ids)
out=$(compose up -d --no-deps --no-recreate --scale "client=$((clients + 1))" client 2>&1) || { echo "$out" >&2; fail "scaling up failed"; }
new=$(comm -13 <(echo "$old_ids") <(client_ids))
[[ $(wc -w <<<"$new") == 1 ]] || fail "cannot tell the new client apart: '$new'"

new_status() { get_json "$(client_addr "$new")" /api/v1/status; }
dns_failure() { new_status | jq -e '.last_result.name // "" | startswith("DNS_")' >/dev/null; }
wait_for 60 "the new client failing discovery" dns_failure
st=$(new_status)
[[ $(jq -r .status <<<"$st") != licensed ]] || fail "the new client is Licensed without DNS"
log "new client: $(jq -r '"\(.status), last result \(.last_result.hresult) \(.last_result.name)"' <<<"$st")"

log "starting dns again"
compose start dns >/dev/null 2>&1
restarted_at=$(new_status | jq -r .now)
new_licensed() { new_status | jq -e '.status == "licensed"' >/dev/null; }
wait_for 60 "the new client activating once dns is back" new_licensed
log "new client Licensed through $(new_status | jq -r .host.last)"
all_licensed "$((clients + 1))" || fail "not every client is Licensed at the end: $(clients_summary)"
renewed_since_restart() {
  clients_status | jq -e --arg t "$restarted_at" 'all(.status == "licensed" and .last_result.hresult == "0x00000000" and .last_result.at > $t)' >/dev/null
}
wait_for 60 "every client renewing once dns is back" renewed_since_restart
log "every client renewed once dns was back ($(clients_summary))"
drill_done
