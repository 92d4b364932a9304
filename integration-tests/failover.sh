#!/usr/bin/env bash
# Drill: failover. The fleet activates against kms1 (SRV priority 0), kms1 is stopped, and
# renewals run on: every client must renew through kms2 (priority 10) and never leave
# Licensed on the way. kms2 starts with a count of zero, so the first renewals are refused
# with 0xC004F038 until enough clients have asked: the same as a real standby host.
DRILL_NAME=failover
source "$(dirname "$0")/compose-lib.sh"
clients=${DRILL_CLIENTS:-6}

fleet_up "$clients"
st=$(clients_status)
jq -e 'all(.host.last | startswith("kms1."))' <<<"$st" >/dev/null || fail "not every client activated through kms1: $(clients_summary)"

log "stopping kms1"
compose stop -t 3 kms1 >/dev/null 2>&1

# Succeeds when every client's last successful exchange was with kms2; fails the drill at
# once if any client is seen outside Licensed.
renewed_via_kms2() {
  local st
  st=$(clients_status) || return 1
  if ! jq -e 'all(.status == "licensed")' <<<"$st" >/dev/null; then
    fail "a client left Licensed during failover: $(jq -c '[.[] | select(.status != "licensed") | {container, status, last_result}]' <<<"$st")"
  fi
  jq -e 'all(.host.last | startswith("kms2.")) and all(.last_result.hresult == "0x00000000")' <<<"$st" >/dev/null
}
wait_for 180 "every client renewed through kms2" renewed_via_kms2
log "every client renewed through kms2 ($(clients_summary))"

# kms2's own registry agrees: it has seen every client and counts them.
count=$(host_count kms2)
((count >= clients)) || fail "kms2 counts $count clients, expected $clients"
log "kms2 current count $count"
