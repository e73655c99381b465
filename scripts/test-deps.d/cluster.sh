#!/usr/bin/env bash
# Cluster sync tests (test/cluster): the real kubectl drives the fake Kubernetes API server.
# Debian's kubernetes-client ships kubectl 1.20; a kubectl already on PATH is used as it is.
set -euo pipefail
if ! command -v kubectl >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends kubernetes-client
fi
kubectl version --client >/dev/null
