#!/usr/bin/env bash
# The test command of the README: installs what the tests need (apt packages), then runs
# every test of the workspace. CI runs it through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v named >/dev/null 2>&1 || need_apt+=(bind9)
command -v dig >/dev/null 2>&1 || need_apt+=(bind9-dnsutils)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if ((${#need_apt[@]})); then
  echo "ci: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Every crate's tests, including the BIND9, SQLite and real-binary suites:
cargo test --workspace --locked
# Hostile input against a release-built kms-host (the binary people run): its 95% rate check
# for a well-behaved client measures the host, not debug-build formatting (docs/reliability.md).
cargo test --release --locked -p kmslab-host --test hostile -- --ignored

# Each fuzz target briefly over its committed corpus (skipped without a nightly toolchain).
bash fuzz/ci.sh 10
bash integration-tests/run-compose-drills.sh  # docker-compose drills (docs/compose.md); one "SKIPPED" line without a Docker engine
# Swarm drills on a single-node swarm (docs/deploy.md); the image is the one just built.
SWARM_SKIP_BUILD=1 bash integration-tests/run-swarm-drills.sh
# Kubernetes manifests: validated offline against the API schemas, not run.
bash deploy/kubernetes/validate.sh
