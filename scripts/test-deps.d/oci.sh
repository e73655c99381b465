#!/usr/bin/env bash
# OCI images (issue 7): Debian's registry (distribution 2.8), skopeo to push, htpasswd for the
# auth test, zstd (skopeo's zstd layers), tftp-hpa (serving a pulled image over TFTP).
set -euo pipefail
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
  docker-registry skopeo apache2-utils zstd tftp-hpa >/dev/null
