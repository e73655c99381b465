#!/usr/bin/env bash
# build.sh - the lab test payload as a metalman image folder (OUTDIR/disk/ + metadata.yaml).
#
# Usage: build.sh OUTDIR [--http-port N] [--cache DIR]
#
# Runs shared/lab/build-test-netboot.sh (found at $METALMAN_SHARED/lab, default
# <repo>/../shared/lab) and arranges its output so that both firmware paths boot from
# metalman with `spec.pxe.image: dir:OUTDIR`:
#   OVMF UEFI PXE -> DHCP boot file shimx64.efi (TFTP) -> grubx64.efi -> grub/grub.cfg
#                    (rendered from grub/grub.cfg.tmpl) -> /vmlinuz + /initrd.img over TFTP
#   SeaBIOS+iPXE  -> <serve-url>/boot.ipxe (rendered from boot.ipxe.tmpl) -> vmlinuz,
#                    initrd.img over HTTP
#   plain BIOS PXE -> undionly.kpxe (chainloads iPXE, which then asks for boot.ipxe)
# Both templates put `lab.callback=<ServeURL>/pxe/disable?machine=<Machine.Name>` on the
# kernel command line; the payload's init appends &mac=..&fw=..&tpm=.. and prints the URL
# in its `LAB-PXE-MARKER callback-ok url=...` line, so a serial log proves that the file
# was rendered for the machine that booted.
# --http-port only sets the payload's fallback port (used when lab.callback is absent).
# .deb cache: --cache DIR, else $LAB_DEB_CACHE, else ~/.cache/lab-netboot-debs.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHARED="${METALMAN_SHARED:-$REPO/../shared}"
BUILDER="$SHARED/lab/build-test-netboot.sh"

OUT=""
HTTP_PORT=8080
CACHE_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --http-port) HTTP_PORT="$2"; shift 2 ;;
    --cache) CACHE_ARGS=(--cache "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) [ -z "$OUT" ] || usage; OUT="$1"; shift ;;
  esac
done
[ -n "$OUT" ] || usage
[ -x "$BUILDER" ] || { echo "build.sh: $BUILDER not found (set METALMAN_SHARED)" >&2; exit 1; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DISK="$OUT/disk"
rm -rf "$DISK"
"$BUILDER" "$DISK" --http-port "$HTTP_PORT" --callback-path /pxe/disable "${CACHE_ARGS[@]}" 2>"$OUT/build.log" || {
  tail -20 "$OUT/build.log" >&2; exit 1; }

# The builder's static grub.cfg/boot.ipxe are replaced by templates: a `.tmpl` wins over
# the plain file in metalman's resolver, but keeping both would only confuse readers.
rm -f "$DISK/grub/grub.cfg" "$DISK/boot.ipxe"
# GRUB variables ($net_default_server) and Go template actions ({{ }}) do not collide.
# The callback goes through the quoting helpers (docs/security.md), so this boot proves that real
# GRUB reads a grubQuote word, and real iPXE an ipxeArg token, back into the same kernel argument.
cat > "$DISK/grub/grub.cfg.tmpl" <<'TMPL'
set timeout=0
echo "lab: grub.cfg rendered for machine={{ .Machine.Name }} ip={{ (index .Machine.Spec.PXE.DHCPLeases 0).IPv4 }} server=$net_default_server"
linux /vmlinuz console=ttyS0,115200 quiet panic=-1 lab.fw=grub lab.server=$net_default_server {{ kernelArg "lab.callback" (printf "%s/pxe/disable?machine=%s" .ServeURL .Machine.Name) | grubQuote }}
initrd /initrd.img
boot
TMPL
# iPXE: no `&` in the script line (iPXE treats `&&` as an operator); the init adds the rest.
cat > "$DISK/boot.ipxe.tmpl" <<'TMPL'
#!ipxe
echo lab: boot.ipxe rendered for machine={{ .Machine.Name }} next-server=${next-server} mac=${net0/mac}
kernel vmlinuz initrd=initrd.img console=ttyS0,115200 quiet panic=-1 lab.fw=ipxe lab.server=${next-server} {{ kernelArg "lab.callback" (printf "%s/pxe/disable?machine=%s" .ServeURL .Machine.Name) | ipxeArg }}
initrd initrd.img
boot
TMPL

cat > "$DISK/metadata.yaml" <<'YAML'
# metalman image metadata (spec §6.5 plus the BIOS/iPXE keys)
dhcpBootImageName: shimx64.efi
biosBootImageName: undionly.kpxe
ipxeScriptName: boot.ipxe
YAML

( cd "$DISK" && find . -type f | LC_ALL=C sort | sed 's|^\./||' ) > "$OUT/FILES"
echo "build.sh: image folder $OUT (spec.pxe.image: dir:$OUT)" >&2
