#!/usr/bin/env bash
# install-test-deps.sh - install the real peers and clients the tests drive (Debian 12, root).
#
# Usage: scripts/install-test-deps.sh
# Idempotent: packages already installed are skipped by apt. Uses the lab scripts in
# ../shared/lab (override with METALMAN_SHARED=/path/to/shared).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="${METALMAN_SHARED:-$repo/../shared}"
lab="$shared/lab"
[ -d "$lab" ] || { echo "install-test-deps: $lab not found (set METALMAN_SHARED)" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: not root; skipping apt installs (lab and VM tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# DHCP/TFTP/HTTP peers and clients (dnsmasq, kea, perfdhcp, dhclient, udhcpc, tftp-hpa, atftp, curl, nginx...)
# install.sh's EXIT trap names a function-local variable, so on a fresh machine it exits 1
# after a complete install; judge it by what it installed instead of by its exit code.
bash "$lab/install.sh" >/dev/null 2>&1 || true
if bash "$lab/install.sh" versions | grep -q MISSING; then
  bash "$lab/install.sh" versions >&2
  echo "install-test-deps: lab install incomplete" >&2
  exit 1
fi
# qemu + OVMF + iPXE for the firmware boots, swtpm/tpm2-tools for later attestation tests
LAB_APT_UPDATED=1 bash "$lab/vm-install.sh" pxe tpm
# relay-mode DHCP test; python3 for small raw-socket probes; tcpdump to see what a server sends;
# iptables for TFTP loss injection where the kernel has no netem qdisc
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends isc-dhcp-relay python3 tcpdump iptables >/dev/null
# isc-dhcp-relay's postinst may start a system relay: the tests run their own, in namespaces.
pkill -x dhcrelay 2>/dev/null || true
# BMC emulator checks (issue 6): DMTF's redfishtool as the independent Redfish client.
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends redfishtool >/dev/null
# One file per surface in scripts/test-deps.d/ (apt packages of the images, console, cluster,
# appliance... suites), so that parallel work on different surfaces never edits one line.
for extra in "$repo"/scripts/test-deps.d/*.sh; do
  [ -e "$extra" ] || continue
  LAB_DIR="$lab" bash "$extra"
done
echo "install-test-deps: done"
