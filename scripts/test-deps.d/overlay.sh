#!/usr/bin/env bash
# Overlay tests (issue 12): wg and ip from wireguard-tools/iproute2, and the userspace
# WireGuard (no kernel module on these machines), ping through the tunnel.
set -euo pipefail
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends wireguard-tools wireguard-go iputils-ping >/dev/null
