#!/usr/bin/env bash
# Packages for the debian-12 netboot image build (netboot-images/debian-12/build/build.sh), the
# repave e2e (test/vm/repave-secureboot.test.ts, with a local docker-registry), the installer
# fetch test (test/lab/installer-fetch.test.ts: busybox) and bench/repave-boot.sh.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
  cpio gzip mtools binutils tar skopeo docker-registry qemu-system-x86 qemu-utils ipxe-qemu ovmf \
  dnsmasq-base nginx curl iproute2 busybox >/dev/null
