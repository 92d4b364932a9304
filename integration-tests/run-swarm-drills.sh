#!/usr/bin/env bash
# Drills on a real single-node Docker Swarm with deploy/swarm/kmslab.yml: scale, failover,
# rolling-update, partition (docs/deploy.md). Without a Docker engine: one SKIPPED line,
# exit 0. Builds the image offline (scripts/build-image.sh; cargo has nothing to do when
# the compose drills built it just before), initialises a swarm on loopback when none is
# active and leaves it again at the end only if it created it. Prints each drill's time.
#
#   integration-tests/run-swarm-drills.sh                  # all four
#   integration-tests/run-swarm-drills.sh failover         # some of them
#   SWARM_SKIP_BUILD=1 ...                                 # use the existing kmslab:dev
#
# Containers are reached from this machine through their network namespace (nsenter, so
# root): the stack publishes no port, and the admin APIs listen on each task's loopback.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
  echo "swarm drills: SKIPPED (no Docker engine answers \`docker info\`)"
  exit 0
fi
for tool in curl jq nsenter iptables; do
  command -v "$tool" >/dev/null || { echo "swarm drills: FAILED: $tool is needed" >&2; exit 1; }
done

drills=("$@")
((${#drills[@]})) || drills=(scale failover rolling-update partition)
for d in "${drills[@]}"; do
  [[ $d =~ ^(scale|failover|rolling-update|partition)$ ]] || { echo "swarm drills: unknown drill $d (scale, failover, rolling-update, partition)" >&2; exit 2; }
done

export KMSLAB_IMAGE=${KMSLAB_IMAGE:-kmslab:dev}
STACK=${SWARM_STACK:-kmslab-drill}
SECRET=kmslab_tsig_key
ADMIN_SECRET=kmslab_admin_token
total_start=$SECONDS
summary=()

if [[ ${SWARM_SKIP_BUILD:-0} == 1 ]]; then
  [[ -n $(docker image ls -q "$KMSLAB_IMAGE") ]] || { echo "swarm drills: FAILED: image $KMSLAB_IMAGE missing (SWARM_SKIP_BUILD=1): run scripts/build-image.sh" >&2; exit 1; }
else
  t=$SECONDS
  bash scripts/build-image.sh >/dev/null || { echo "swarm drills: FAILED: the image did not build" >&2; exit 1; }
  summary+=("image: $((SECONDS - t)) s")
fi

# The clock: 120x, so a renewal interval of 60 simulated minutes is 30 s and an activation
# interval of 15 minutes 7.5 s.
export KMSLAB_TIME_SCALE=${SWARM_TIME_SCALE:-120}
KMSLAB_TIME_ORIGIN=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export KMSLAB_TIME_ORIGIN
export KMSLAB_ACTIVATION_INTERVAL=15 KMSLAB_RENEWAL_INTERVAL=60
export KMSLAB_FLEET_MACHINES=${SWARM_FLEET_MACHINES:-1000}
renewal_s=$((60 * 60 / KMSLAB_TIME_SCALE))

log() { echo "swarm: [$((SECONDS - total_start))s] $*"; }

created_swarm=0
cleanup() {
  local rc=$?
  if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
    if ((rc != 0)); then
      echo "swarm drills: last log lines of each service:" >&2
      for s in dns kms1 kms2 fleet; do docker service logs --tail 5 "${STACK}_$s" 2>&1 | cut -c1-300 >&2; done
    fi
    docker stack rm "$STACK" >/dev/null 2>&1
    # Tasks, then the network, go away asynchronously; volumes only once no task uses them.
    for _ in $(seq 60); do
      [[ -z $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK") ]] &&
        [[ -z $(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK") ]] && break
      sleep 1
    done
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1
  fi
  docker secret rm "$SECRET" "$ADMIN_SECRET" >/dev/null 2>&1
  if ((created_swarm)); then
    docker swarm leave --force >/dev/null 2>&1
    docker network rm docker_gwbridge >/dev/null 2>&1
    log "left the swarm this run created"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

state=$(docker info -f '{{.Swarm.LocalNodeState}}')
if [[ $state != active ]]; then
  docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null || { echo "swarm drills: FAILED: docker swarm init" >&2; exit 1; }
  created_swarm=1
  log "single-node swarm initialised on 127.0.0.1"
fi

# --- helpers -------------------------------------------------------------------------

fail() { echo "swarm drill ${DRILL:-setup}: FAILED: $*" >&2; return 1; }

# Running task containers of one service, one ID per line.
tasks() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1" --filter status=running | sort; }

# GET on 127.0.0.1:PORT inside a container's network namespace.
get_in() {
  local pid
  pid=$(docker inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) && ((pid > 0)) || return 1
  nsenter -t "$pid" -n curl -fsS --max-time 5 "http://127.0.0.1:$2$3"
}

host_get() { local c; c=$(tasks "$1" | head -n1); [[ -n $c ]] && get_in "$c" 8688 "$2"; }
host_known() { host_get "$1" "/api/v1/clients?limit=1${2:+&$2}" | jq -r .total; }

# "licensed total" summed over every replica of the fleet services given.
fleet_counts() {
  local s c m lic=0 all=0 n=0
  for s in "$@"; do
    for c in $(tasks "$s"); do
      m=$(get_in "$c" 9100 /metrics) || return 1
      lic=$((lic + $(awk '/^kmslab_fleet_machines\{status="licensed"\}/ {print $2}' <<<"$m")))
      all=$((all + $(awk '/^kmslab_fleet_clients / {print $2}' <<<"$m")))
      n=$((n + 1))
    done
  done
  echo "$lic $all $n"
}

# wait_for SECONDS WHAT COMMAND...
wait_for() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || { fail "timed out after ${limit}s waiting for: $what"; return 1; }
    sleep 2
  done
}

# Succeeds when REPLICAS tasks of each fleet service run and all WANT machines are Licensed.
all_licensed() {
  local want=$1 replicas=$2 lic all n
  shift 2
  read -r lic all n < <(fleet_counts "$@") || return 1
  [[ $n == "$replicas" && $all == "$want" && $lic == "$want" ]]
}

# Fails the drill if any machine of the fleets is outside Licensed; else succeeds when
# COMMAND does. The fleets must have WANT machines in all.
licensed_while() {
  local want=$1 lic all n
  shift
  read -r lic all n < <(fleet_counts fleet fleet-ckhc) || return 1
  ((all == want)) || return 1
  ((lic == want)) || { echo "swarm drill $DRILL: FAILED: $((want - lic)) of $want machines left Licensed" >&2; exit 1; }
  "$@"
}

known_at_least() { local k; k=$(host_known "$1" "${3:-}") && ((k >= $2)); }
# Both registries together: machines that started before kms1's SRV record was published
# found only kms2, activated there and keep it cached (host caching), as Windows clients do.
known_by_both_at_least() { local a b; a=$(host_known kms1) && b=$(host_known kms2) && ((a + b >= $1)); }
# Fails the drill if a cached machine renewed with kms1 since SINCE; succeeds once every
# one has renewed with kms2 since then.
cached_stayed_on_kms2() {
  local back on_kms2
  back=$(host_known kms1 "seen_since=$1&search=CACHED-") || return 1
  ((back == 0)) || { echo "swarm drill $DRILL: FAILED: $back cached machines went back to kms1 (host caching should keep them on kms2)" >&2; exit 1; }
  on_kms2=$(host_known kms2 "seen_since=$1&search=CACHED-") || return 1
  ((on_kms2 == KMSLAB_FLEET_MACHINES))
}
service_running() { [[ $(tasks "$1" | wc -l) == "$2" ]]; }
healthy() { local c; c=$(tasks "$1" | head -n1); [[ -n $c && $(docker inspect -f '{{.State.Health.Status}}' "$c") == healthy ]]; }

scale() { docker service scale -d "$@" >/dev/null; }

deploy() {
  log "deploying stack $STACK (image $KMSLAB_IMAGE, time x$KMSLAB_TIME_SCALE, $KMSLAB_FLEET_MACHINES machines per fleet replica)"
  docker secret rm "$SECRET" "$ADMIN_SECRET" >/dev/null 2>&1
  printf 'kmslab-ddns:hmac-sha256:%s\n' "$(head -c 32 /dev/urandom | base64)" | docker secret create "$SECRET" - >/dev/null || return 1
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' | docker secret create "$ADMIN_SECRET" - >/dev/null || return 1
  docker stack deploy --resolve-image never -c "$repo/deploy/swarm/kmslab.yml" "$STACK" >/dev/null || { fail "docker stack deploy"; return 1; }
  wait_for 120 "both hosts healthy" eval 'healthy kms1 && healthy kms2' || return 1
  wait_for 120 "1 fleet replica, $KMSLAB_FLEET_MACHINES machines Licensed" all_licensed "$KMSLAB_FLEET_MACHINES" 1 fleet || return 1
  log "stack up: $(fleet_counts fleet | awk '{print $1" of "$2" machines Licensed"}') ($(host_known kms1) in kms1's registry, $(host_known kms2) in kms2's)"
}

# Brings both hosts back and the fleets to N replicas of `fleet`, none of `fleet-ckhc`.
restore() {
  scale "${STACK}_kms1=1" "${STACK}_kms2=1" "${STACK}_fleet=${1:-1}" "${STACK}_fleet-ckhc=0"
  wait_for 120 "both hosts healthy" eval 'healthy kms1 && healthy kms2'
}

# --- the drills ----------------------------------------------------------------------

drill_scale() {
  local replicas=${SWARM_SCALE_REPLICAS:-10} want t0
  want=$((replicas * KMSLAB_FLEET_MACHINES))
  t0=$SECONDS
  log "scale: fleet to $replicas replicas x $KMSLAB_FLEET_MACHINES machines"
  scale "${STACK}_fleet=$replicas"
  wait_for 300 "$want machines Licensed" all_licensed "$want" "$replicas" fleet || return 1
  log "scale: all $want machines Licensed $((SECONDS - t0)) s after scaling"
  wait_for 60 "the hosts' registries holding $want machines" known_by_both_at_least "$want" || return 1
  log "scale: the registries hold $(host_known kms1) (kms1) + $(host_known kms2) (kms2) machines; $(host_get kms1 /metrics | grep -m1 '^kmslab_host_requests_total' || true)"
  restore 1
}

drill_failover() {
  local want=$KMSLAB_FLEET_MACHINES
  wait_for 120 "1 fleet replica Licensed" all_licensed "$want" 1 fleet || return 1
  log "failover: scaling kms1 (the serving host, priority 0) to 0"
  scale "${STACK}_kms1=0"
  wait_for 60 "kms1 stopped" service_running kms1 0 || return 1
  wait_for $((renewal_s * 6 + 60)) "every machine renewed through kms2" licensed_while "$want" known_at_least kms2 "$want" || return 1
  log "failover: kms2's registry holds $(host_known kms2) machines, every one stayed Licensed"
  restore 1
}

drill_rolling_update() {
  local want=$KMSLAB_FLEET_MACHINES h before after
  wait_for 120 "1 fleet replica Licensed" all_licensed "$want" 1 fleet || return 1
  for h in kms1 kms2; do
    before=$(host_get "$h" /api/v1/status) || { fail "no status from $h"; return 1; }
    local known_before
    known_before=$(host_known "$h")
    log "rolling-update: updating $h (new setting; one task at a time, stop-first)"
    # `service update` returns once the new task converged; the machines are watched meanwhile.
    docker service update --quiet --env-add "KMSLAB_ROLLED=$SECONDS" "${STACK}_$h" >/dev/null &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      licensed_while "$want" true || true
      sleep 2
    done
    wait "$pid" || { fail "docker service update $h"; return 1; }
    wait_for 120 "$h healthy" healthy "$h" || return 1
    after=$(host_get "$h" /api/v1/status) || { fail "no status from $h after the update"; return 1; }
    [[ $(jq -r .epid <<<"$after") == $(jq -r .epid <<<"$before") ]] || { fail "$h's ePID changed: registry lost"; return 1; }
    (($(jq -r .counters.total <<<"$after") >= $(jq -r .counters.total <<<"$before"))) || { fail "$h's cumulative counters went back: registry lost"; return 1; }
    (($(host_known "$h") >= known_before)) || { fail "$h's registry lost clients"; return 1; }
    log "rolling-update: $h updated; ePID, counters ($(jq -r .counters.total <<<"$after") requests) and $(host_known "$h") clients kept"
  done
  # Renewals go on after both updates.
  wait_for $((renewal_s * 3 + 60)) "machines renewing after the update" licensed_while "$want" true || return 1
}

drill_partition() {
  local want=$((2 * KMSLAB_FLEET_MACHINES)) net="${STACK}_lab" c since
  scale "${STACK}_fleet-ckhc=1"
  wait_for 180 "$want machines Licensed (host caching on and off)" all_licensed "$want" 2 fleet fleet-ckhc || return 1
  wait_for 60 "kms1 knowing all $want" known_at_least kms1 "$want" || return 1
  c=$(tasks kms1 | head -n1)
  # Not `docker network disconnect`: it works on a task, but `docker network connect`
  # afterwards gives the container a plain endpoint outside the service (no service alias,
  # no virtual-IP backend; docker 20.10 even handed it the service's virtual IP), so the
  # host could not rejoin as kms1. Dropping every packet on the task's overlay interface,
  # inside its network namespace, cuts it off the same way and is undone exactly.
  local pid iface
  pid=$(docker inspect -f '{{.State.Pid}}' "$c")
  local ip
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$c")
  iface=$(nsenter -t "$pid" -n ip -o -4 addr show | awk -v ip="$ip" 'index($4, ip "/") == 1 {print $2; exit}')
  [[ -n $iface ]] || { fail "no interface of kms1 on $net"; return 1; }
  log "partition: cutting kms1 (task ${c:0:12}, $iface) off $net; it keeps running"
  nsenter -t "$pid" -n iptables -I INPUT -i "$iface" -j DROP && nsenter -t "$pid" -n iptables -I OUTPUT -o "$iface" -j DROP ||
    { fail "iptables in kms1's namespace"; return 1; }
  wait_for $((renewal_s * 6 + 60)) "every machine renewed through kms2" licensed_while "$want" known_at_least kms2 "$want" || return 1
  [[ $(docker inspect -f '{{.State.Running}}' "$c") == true ]] || { fail "kms1's task stopped during the partition"; return 1; }
  log "partition: every machine renewed through kms2, none left Licensed; reconnecting kms1"
  nsenter -t "$pid" -n iptables -D INPUT -i "$iface" -j DROP && nsenter -t "$pid" -n iptables -D OUTPUT -o "$iface" -j DROP ||
    { fail "iptables in kms1's namespace"; return 1; }
  since=$(host_get kms1 /api/v1/status | jq -r .now) || { fail "no status from kms1 after reconnecting"; return 1; }
  # /ckhc machines look the hosts up at each renewal and take kms1 (priority 0) again;
  # cached ones keep renewing with kms2, where they last succeeded.
  wait_for $((renewal_s * 4 + 60)) "every /ckhc machine back on kms1" \
    licensed_while "$want" known_at_least kms1 "$KMSLAB_FLEET_MACHINES" "seen_since=$since&search=CKHC-" || return 1
  # The two fleets renew on their own schedules: the last /ckhc machine coming back says
  # nothing about how many cached machines have renewed since. Each must renew once more,
  # with kms2, and none with kms1.
  wait_for $((renewal_s * 2 + 60)) "every cached machine renewing with kms2 again" \
    licensed_while "$want" cached_stayed_on_kms2 "$since" || return 1
  log "partition: /ckhc machines back on kms1: $(host_known kms1 "seen_since=$since&search=CKHC-"); cached machines on kms1: $(host_known kms1 "seen_since=$since&search=CACHED-"), on kms2: $(host_known kms2 "seen_since=$since&search=CACHED-")"
  restore 1
}

# --- run -----------------------------------------------------------------------------

t=$SECONDS
if ! deploy; then
  echo "swarm drills: FAILED: the stack did not come up" >&2
  exit 1
fi
summary+=("deploy: $((SECONDS - t)) s")
failed=()
for d in "${drills[@]}"; do
  DRILL=$d
  echo "=== swarm drill: $d"
  t=$SECONDS
  if ( "drill_${d//-/_}" ); then
    echo "swarm drill $d: PASSED in $((SECONDS - t)) s"
    summary+=("$d: passed in $((SECONDS - t)) s")
  else
    echo "swarm drill $d: FAILED after $((SECONDS - t)) s" >&2
    summary+=("$d: FAILED after $((SECONDS - t)) s")
    failed+=("$d")
    restore 1 >/dev/null 2>&1 || true
  fi
done
echo "=== swarm drills: ${summary[*]/%/;} total $((SECONDS - total_start)) s"
if ((${#failed[@]})); then
  echo "swarm drills: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "swarm drills: all ${#drills[@]} passed"
