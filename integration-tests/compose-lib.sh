# Shared helpers of the docker-compose drills (sourced, not run). Each drill gets its own
# compose project, network prefix and free 127.0.0.1 ports, and tears everything down
# (`down -v`) on exit, whether it passed or not.
#
# Drills reach the containers only through ports published on 127.0.0.1: the image is
# FROM scratch, so there is no shell to `exec` into.

set -euo pipefail

DRILL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRILL_NAME=${DRILL_NAME:-drill}
DRILL_START=$SECONDS

# `docker compose` when the plugin exists, else the standalone `docker-compose`.
if docker compose version >/dev/null 2>&1; then
  COMPOSE_CMD=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE_CMD=(docker-compose)
else
  echo "$DRILL_NAME: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
  exit 1
fi
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "$DRILL_NAME: $tool is needed" >&2; exit 1; }
done

# A fresh project per run: parallel or leftover runs never share containers or volumes.
export COMPOSE_PROJECT_NAME="kmslab-${DRILL_NAME}-$$"
# A /24 of its own among 172.29.20-219.0/24 that no existing docker network uses, starting
# from one chosen by the PID like the project name.
free_net_prefix() {
  local used i x
  used=$(docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null | tr '\n' ' ')
  for ((i = 0; i < 200; i++)); do
    x=$((($$ + i) % 200 + 20))
    [[ " $used " == *" 172.29.$x.0/24 "* ]] || { echo "172.29.$x"; return; }
  done
  return 1
}
KMSLAB_NET_PREFIX=${DRILL_NET_PREFIX:-$(free_net_prefix)} || { echo "$DRILL_NAME: no free 172.29.X.0/24" >&2; exit 1; }
export KMSLAB_NET_PREFIX
# Empty host ports: docker picks free ones on 127.0.0.1 (the defaults 8688/8698 may be in
# use by a developer's own kms-host).
export KMSLAB_KMS1_ADMIN_PORT= KMSLAB_KMS2_ADMIN_PORT=
# The admin token of every host and client of the drill (docker-compose.yml requires one).
export KMSLAB_ADMIN_TOKEN=${KMSLAB_ADMIN_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
# One fast simulated clock starting now, shared by every container of the drill.
export KMSLAB_TIME_SCALE=${DRILL_TIME_SCALE:-600}
export KMSLAB_TIME_ORIGIN
KMSLAB_TIME_ORIGIN=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Short intervals (simulated minutes): at scale 600, 15 minutes are 1.5 s and 60 minutes 6 s.
export KMSLAB_ACTIVATION_INTERVAL=${DRILL_ACTIVATION_INTERVAL:-15}
export KMSLAB_RENEWAL_INTERVAL=${DRILL_RENEWAL_INTERVAL:-60}
export KMSLAB_IMAGE=${KMSLAB_IMAGE:-kmslab:dev}

compose() {
  (cd "$DRILL_REPO" && "${COMPOSE_CMD[@]}" -f docker-compose.yml "$@")
}

log() { echo "$DRILL_NAME: [$((SECONDS - DRILL_START))s] $*"; }

fail() {
  echo "$DRILL_NAME: FAILED: $*" >&2
  exit 1
}

# A failed check that lets the drill go on to its later steps (so one run shows every
# broken expectation); drill_done then fails the drill.
DRILL_ERRORS=()
check_failed() {
  echo "$DRILL_NAME: CHECK FAILED: $*" >&2
  DRILL_ERRORS+=("$*")
}
drill_done() {
  if ((${#DRILL_ERRORS[@]})); then
    fail "${#DRILL_ERRORS[@]} check(s) failed: $(printf '%s; ' "${DRILL_ERRORS[@]}")"
  fi
}

drill_cleanup() {
  local rc=$?
  if ((rc != 0)); then
    echo "$DRILL_NAME: last log lines of each service:" >&2
    compose logs --no-color --tail 6 2>&1 | cut -c1-400 | tail -n 60 >&2 || true
  fi
  # compose v1 removes containers in parallel and sometimes tries the network or a volume
  # while a container is still going away: retry, then remove by label what is left.
  local label="label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" attempt left
  for attempt in 1 2 3; do
    compose down -v --remove-orphans -t 3 >/dev/null 2>&1 || true
    left=$(docker ps -aq --filter "$label"; docker network ls -q --filter "$label"; docker volume ls -q --filter "$label")
    [[ -z $left ]] && break
    docker ps -aq --filter "$label" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "$label" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker volume ls -q --filter "$label" | xargs -r docker volume rm >/dev/null 2>&1 || true
    sleep 2
  done
  left=$(docker ps -aq --filter "$label"; docker network ls --filter "$label" --format '{{.Name}}'; docker volume ls -q --filter "$label")
  [[ -z $left ]] || echo "$DRILL_NAME: WARNING: could not remove: $(echo $left) (docker refused; see docs/compose.md)" >&2
  if ((rc == 0)); then
    echo "$DRILL_NAME: PASSED in $((SECONDS - DRILL_START)) s"
  else
    echo "$DRILL_NAME: FAILED after $((SECONDS - DRILL_START)) s (exit $rc)" >&2
  fi
}
trap drill_cleanup EXIT
trap 'exit 130' INT TERM

[[ -n $(docker image ls -q "$KMSLAB_IMAGE") ]] || fail "image $KMSLAB_IMAGE missing: run scripts/build-image.sh"

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every second until it succeeds;
# fails the drill at the deadline.
wait_for() {
  try_for "$@" || fail "timed out after ${1}s waiting for: $2"
}

# try_for SECONDS DESCRIPTION COMMAND...: the same, but returns 1 at the deadline.
try_for() {
  local limit=$1
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# The 127.0.0.1:PORT of a service's published container port (first container).
published() {
  local service=$1 port=$2 addr
  addr=$(compose port "$service" "$port" 2>/dev/null | tail -n1)
  [[ $addr == *:* && ${addr##*:} != 0 ]] || return 1
  echo "127.0.0.1:${addr##*:}"
}

# The running client containers, one ID per line.
client_ids() {
  docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter label=com.docker.compose.service=client | sort
}

# The control API address of one client container.
client_addr() {
  local a
  a=$(docker port "$1" 8689/tcp 2>/dev/null | grep -m1 '^127\.0\.0\.1:') || return 1
  echo "$a"
}

# GET on one service's API; prints JSON or fails.
get_json() { curl -fsS --max-time 5 "http://$1$2"; }

# One JSON array of every client's /api/v1/status, each with "container" added.
clients_status() {
  local id addr out=()
  for id in $(client_ids); do
    addr=$(client_addr "$id") || return 1
    out+=("$(get_json "$addr" /api/v1/status | jq -c --arg c "$id" '. + {container: $c}')") || return 1
  done
  printf '%s\n' "${out[@]}" | jq -s -c .
}

# Succeeds when N clients are running and every one is Licensed.
all_licensed() {
  local want=$1 st
  st=$(clients_status) || return 1
  [[ $(jq 'length' <<<"$st") == "$want" ]] && jq -e 'all(.status == "licensed")' <<<"$st" >/dev/null
}

# Prints a one-line summary of the clients: status counts and last hosts.
clients_summary() {
  clients_status | jq -r '[group_by(.status)[] | "\(.[0].status)=\(length)"] + [group_by(.host.last)[] | "via \(.[0].host.last)=\(length)"] | join(" ")'
}

host_status() { get_json "$(published "$1" 8688)" /api/v1/status; }

# The host's current count of its first (Windows) counted group.
host_count() { host_status "$1" | jq -r '.counts[0].count'; }

# Brings dns, kms1, kms2 and N clients up and waits until every client is Licensed.
fleet_up() {
  local clients=$1
  log "up: dns, kms1, kms2 and $clients clients (project $COMPOSE_PROJECT_NAME, net $KMSLAB_NET_PREFIX.0/24, time x$KMSLAB_TIME_SCALE)"
  local out
  out=$(compose up -d --scale "client=$clients" 2>&1) || { echo "$out" >&2; fail "compose up failed"; }
  wait_for 120 "$clients clients Licensed" all_licensed "$clients"
  log "all $clients clients Licensed ($(clients_summary))"
}
