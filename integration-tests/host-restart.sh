#!/usr/bin/env bash
# Drill: host restart. kms1 is restarted with its data dir on a volume: its current count
# starts again from zero (as documented for Windows hosts: the count lives in memory),
# while its cumulative request counters and its ePID come back from the registry, and the
# clients stay Licensed throughout. Renewals are made long here (30 simulated days) so
# nothing renews behind the drill's back; it then renews every client by hand (/ato) and
# watches the count climb back.
DRILL_NAME=host-restart
DRILL_RENEWAL_INTERVAL=${DRILL_RENEWAL_INTERVAL:-43200}
source "$(dirname "$0")/compose-lib.sh"
clients=${DRILL_CLIENTS:-6}

fleet_up "$clients"
before=$(host_status kms1)
epid=$(jq -r .epid <<<"$before")
total=$(jq -r .counters.total <<<"$before")
count=$(jq -r '.counts[0].count' <<<"$before")
log "kms1 before: count $count, total requests $total, ePID $epid"
((count == clients)) || fail "kms1 counts $count before the restart, expected $clients"

log "restarting kms1"
compose restart -t 3 kms1 >/dev/null 2>&1
kms1_answers() { host_status kms1 >/dev/null 2>&1; }
wait_for 60 "kms1 answering again" kms1_answers
after=$(host_status kms1)
log "kms1 after: count $(jq -r '.counts[0].count' <<<"$after"), total requests $(jq -r .counters.total <<<"$after"), ePID $(jq -r .epid <<<"$after")"
[[ $(jq -r '.counts[0].count' <<<"$after") == 0 ]] || fail "kms1's count did not start again from zero"
[[ $(jq -r .epid <<<"$after") == "$epid" ]] || fail "kms1's ePID changed across the restart"
[[ $(jq -r .counters.total <<<"$after") == "$total" ]] || fail "kms1's request counters changed across the restart"
all_licensed "$clients" || fail "a client left Licensed when kms1 restarted: $(clients_summary)"

# Renew every client by hand until all succeed: the first few are refused with
# 0xC004F038 (count below the threshold again) and must still stay Licensed.
for round in 1 2 3; do
  refused=0
  for id in $(client_ids); do
    r=$(curl -fsS --max-time 30 -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $KMSLAB_ADMIN_TOKEN" -d '{}' "http://$(client_addr "$id")/api/v1/ato") || fail "/ato failed on $id"
    if [[ $(jq -r .hresult <<<"$r") != 0x00000000 ]]; then
      refused=$((refused + 1))
      [[ $(jq -r .hresult <<<"$r") == 0xC004F038 ]] || fail "unexpected renewal answer: $r"
    fi
    [[ $(jq -r .status <<<"$r") == licensed ]] || fail "a client left Licensed after a refused renewal: $r"
  done
  log "renewal round $round: $refused of $clients refused with 0xC004F038 (count below threshold)"
  ((refused == 0)) && break
done
((refused == 0)) || fail "renewals still refused after 3 rounds"
st=$(clients_status)
jq -e 'all(.host.last | startswith("kms1."))' <<<"$st" >/dev/null || fail "renewals did not go to kms1: $(clients_summary)"
final=$(host_status kms1)
[[ $(jq -r '.counts[0].count' <<<"$final") == "$clients" ]] || fail "kms1 counts $(jq -r '.counts[0].count' <<<"$final") after renewals, expected $clients"
(($(jq -r .counters.total <<<"$final") > total)) || fail "kms1's counters did not continue from $total"
log "kms1 counts $clients again; total requests $(jq -r .counters.total <<<"$final") (was $total); ePID unchanged"
