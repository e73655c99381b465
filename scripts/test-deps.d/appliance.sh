#!/usr/bin/env bash
# Appliance image suite (test/appliance): the image factory (build/appliance/build.sh) and the
# qemu boot of the image (OVMF, TCG) with two NICs, a second (blank) VM that PXE-boots from it
# (SeaBIOS + iPXE ROM), and Chromium for the console login.
set -euo pipefail
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
  mmdebstrap dosfstools e2fsprogs mtools fdisk qemu-utils bmap-tools qemu-system-x86 ovmf \
  busybox tftp-hpa iproute2 openssl curl ipxe-qemu chromium >/dev/null
