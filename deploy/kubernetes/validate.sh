#!/usr/bin/env bash
# Validates every manifest here against the Kubernetes API schemas, offline: the PyPI
# package kubernetes-validate ships the JSON schemas inside it. The manifests are checked,
# not run (no cluster is involved). Exit 1 naming the file and the field on a failure.
#
#   deploy/kubernetes/validate.sh          # installs the validator into target/k8s-validate
set -euo pipefail
cd "$(dirname "$0")"
version=1.37.0
venv=${KMSLAB_K8S_VALIDATE_VENV:-../../target/k8s-validate}
if [[ ! -x $venv/bin/kubernetes-validate ]] || [[ $("$venv/bin/kubernetes-validate" --version 2>/dev/null) != *"$version"* ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$version"
fi
if ! out=$("$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.37.0 ./*.yaml 2>&1); then
  echo "$out" | grep -v '^INFO' >&2
  echo "kubernetes manifests: FAILED (deploy/kubernetes, strict schema validation)" >&2
  exit 1
fi
echo "kubernetes manifests: $(grep -c '^INFO.*passed' <<<"$out") resources valid (kubernetes-validate $version, strict, Kubernetes 1.37 schemas)"
