#!/usr/bin/env bash
# conui (issue 8 console): the browser proofs drive Debian's Chromium through playwright-core
# (never a downloaded browser); the enroll proof runs busybox udhcpc in a network namespace.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v busybox >/dev/null 2>&1 || need+=(busybox)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}"
fi
