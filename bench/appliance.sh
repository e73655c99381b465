#!/usr/bin/env bash
# bench/appliance.sh - the appliance image's figures: build time, image size, power-on to serving,
# and metalman's RSS after boot (root only; needs what scripts/test-deps.d/appliance.sh installs).
#
# Usage: sudo bench/appliance.sh          (after npm run build)
#   BENCH_BOOTS=N   boots to take the median of (default 2; every boot is a first boot)
#   BENCH_COLD=1    also build once with an empty Debian base cache (downloads every package)
#   BENCH_KEEP=1    keep the scratch folder (images, serial logs)
# The peer for the boot figure is the same image's own login prompt: what its Debian base reaches
# without waiting for metalman; "serving" is the banner's health=ok (metalman answers /healthz).
# Uses the appliance test's namespace (ap-vm): do not run it while test/appliance runs.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "bench/appliance.sh: run as root (loop devices, netns, mmdebstrap)" >&2; exit 1; }
[ -f "$repo/dist/bench/appliance-bench.js" ] && [ -f "$repo/dist/server/main.js" ] || {
  echo "bench/appliance.sh: build first (npm run build)" >&2; exit 1; }
exec node "$repo/dist/bench/appliance-bench.js"
