#!/usr/bin/env bash
# build.sh - build the debian-12 netboot image from Debian packages only (no Docker, no root).
#
# Usage: build.sh OUTDIR [--cache DIR] [--tag TAG] [--push REF [--insecure]]
#        build.sh OUTDIR --push-only REF [--insecure]     push an OUTDIR/oci built before
#
# Writes
#   OUTDIR/disk/        the image's /disk tree (serve it with `spec.pxe.image: dir:OUTDIR`)
#   OUTDIR/oci/         the same tree as an OCI image layout (one gzip layer holding disk/),
#                       tagged TAG (default: 1 + the kernel ABI, e.g. 6.1.0-57)
#   OUTDIR/MANIFEST     sha256 and size of every file in disk/
# --push REF            also `skopeo copy oci:OUTDIR/oci:TAG docker://REF`
# --insecure            plain-HTTP / unverified-TLS registry for the push (a lab registry)
# --push-only REF       build nothing: push OUTDIR/oci (its tag from index.json) to REF
# Packages (fetched with `apt-get download`, unpacked with `dpkg-deb -x`, cached in --cache DIR,
# else $METALMAN_DEB_CACHE, else $LAB_DEB_CACHE, else ~/.cache/lab-netboot-debs):
#   linux-image-amd64's kernel (signed), busybox-static, shim-signed, grub-efi-amd64-signed,
#   ipxe, syslinux + syslinux-common (BIOS boot of the installed disk).
# Host tools: apt-get (lists updated), dpkg-deb, cpio, gzip, mtools, strings (binutils),
#   sha256sum, tar; skopeo for --push.
# Reproducible: every timestamp is SOURCE_DATE_EPOCH (default: a fixed date), file order sorted,
#   FAT serial fixed, gzip without names; two builds with the same .debs give the same digests.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

HERE="$(cd "$(dirname "$0")" && pwd)"
IMAGE_SRC="$(cd "$HERE/.." && pwd)"
OUT=""
CACHE="${METALMAN_DEB_CACHE:-${LAB_DEB_CACHE:-${HOME:-/root}/.cache/lab-netboot-debs}}"
TAG=""
PUSH=""
PUSH_ONLY=0
INSECURE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --tag) TAG="$2"; shift 2 ;;
    --push) PUSH="$2"; shift 2 ;;
    --push-only) PUSH="$2"; PUSH_ONLY=1; shift 2 ;;
    --insecure) INSECURE=1; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) [ -z "$OUT" ] || usage; OUT="$1"; shift ;;
  esac
done
[ -n "$OUT" ] || usage

push() { # OCI_LAYOUT TAG REF
  command -v skopeo >/dev/null || { echo "build.sh: skopeo not found" >&2; exit 1; }
  local tls=(); [ "$INSECURE" = 0 ] || tls=(--dest-tls-verify=false)
  skopeo copy --quiet "${tls[@]}" "oci:$1:$2" "docker://$3" >&2
  echo "[netimg-build] pushed $3 ($(cat "$(dirname "$1")/DIGEST" 2>/dev/null || echo "tag $2"))" >&2
}
if [ "$PUSH_ONLY" = 1 ]; then
  [ -f "$OUT/oci/index.json" ] || { echo "build.sh: $OUT/oci/index.json not found (build first)" >&2; exit 1; }
  TAG="$(sed -n 's/.*"org.opencontainers.image.ref.name":"\([^"]*\)".*/\1/p' "$OUT/oci/index.json")"
  push "$OUT/oci" "$TAG" "$PUSH"
  exit 0
fi
for tool in apt-get apt-cache dpkg-deb cpio gzip mformat mcopy mmd strings sha256sum tar; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (scripts/test-deps.d/netimg.sh)" >&2; exit 1; }
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1704067200}" # 2024-01-01T00:00:00Z
export TZ=UTC LC_ALL=C
START=$(date +%s.%N)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$CACHE"
OUT="$(cd "$OUT" && pwd)"
CACHE="$(cd "$CACHE" && pwd)"
log() { echo "[netimg-build] $*" >&2; }

fetch_deb() {
  local pkg="$1" f
  f="$(ls -1 "$CACHE/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -z "$f" ]; then
    log "apt-get download $pkg"
    ( cd "$CACHE" && apt-get download "$pkg" >&2 ) || {
      echo "apt-get download $pkg failed (run 'apt-get update' first?)" >&2; return 1; }
    f="$(ls -1 "$CACHE/${pkg}"_*.deb | sort -V | tail -n1)"
  fi
  echo "$f"
}
extract() { mkdir -p "$2"; dpkg-deb -x "$1" "$2"; }

KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
[ -n "$KPKG" ] || { echo "cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
PKGS=("$KPKG" busybox-static shim-signed grub-efi-amd64-signed ipxe syslinux syslinux-common)
for p in "${PKGS[@]}"; do extract "$(fetch_deb "$p")" "$WORK/pkg/$p"; done
K="$WORK/pkg/$KPKG"
KVER="$(ls "$K/lib/modules" | head -n1)"
[ -n "$TAG" ] || TAG="1-$KVER"
log "kernel $KPKG ($KVER), tag $TAG"

# --- initramfs (installer + installed system, one busybox tree) ---------------------------
R="$WORK/initramfs"
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,usr/bin,usr/sbin}
cp "$WORK/pkg/busybox-static/bin/busybox" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
MODDIR="$K/lib/modules/$KVER"
declare -A SEEN=()
ORDER=()
add_mod() { # NAME DEPTH: dependencies first, bounded depth
  local name="$1" depth="$2" p deps d
  [ "$depth" -lt 12 ] || { echo "module dependency depth exceeded at $name" >&2; return 1; }
  [ -z "${SEEN[$name]:-}" ] || return 0
  SEEN[$name]=1
  if grep -q "/$name.ko\$" "$MODDIR/modules.builtin" 2>/dev/null; then return 0; fi
  p="$(find "$MODDIR/kernel" -name "$name.ko" -o -name "${name//_/-}.ko" | head -n1)"
  [ -n "$p" ] || { log "module $name not found (skipped)"; return 0; }
  deps="$(strings -a "$p" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')"
  for d in $deps; do add_mod "$d" $((depth + 1)); done
  cp "$p" "$R/lib/modules/$name.ko"
  ORDER+=("$name")
}
# NICs and disks of VMs and common servers (virtio, e1000, SATA/AHCI, SCSI disks, NVMe).
for m in virtio_pci virtio_net virtio_blk virtio_scsi e1000 ahci sd_mod nvme; do add_mod "$m" 0; done
printf '%s\n' "${ORDER[@]}" > "$R/etc/metalman-modules"
# The seed sector: first sector of partition 2 (see the disk layout below).
SEED_LBA=$((2048 + 40960))
printf 'MARKER=metalman-image:\nSEED_LBA=%s\n' "$SEED_LBA" > "$R/etc/metalman-image.conf"
cat > "$R/etc/udhcpc.sh" <<'HOOK'
#!/bin/sh
# busybox udhcpc hook: configure the interface, remember the lease
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface" 2>/dev/null
    { echo "ip=$ip"; echo "serverid=$serverid"; echo "siaddr=$siaddr"; } > /tmp/dhcp.env
    ;;
esac
exit 0
HOOK
chmod 755 "$R/etc/udhcpc.sh"
install -m 755 "$HERE/init.sh" "$R/init"
mkdir -p "$R/lib/metalman" && install -m 644 "$HERE/fetch.sh" "$R/lib/metalman/fetch.sh"
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
( cd "$R" && find . | sort | cpio --quiet --reproducible -o -H newc -R 0:0 ) | gzip -n -9 > "$WORK/initrd.img"
log "initramfs $(stat -c %s "$WORK/initrd.img") bytes, modules: ${ORDER[*]}"

# --- the installed disk: MBR + one FAT ESP (p1, 20 MiB) + a raw seed partition (p2, 1 MiB) --
# MBR partitions rather than GPT: OVMF boots an ESP of type 0xEF, SeaBIOS boots syslinux's MBR
# from the same disk, and the table is 4 x 16 bytes written here without any partitioning tool.
GRUB_SIGNED="$WORK/pkg/grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed"
SHIM="$WORK/pkg/shim-signed/usr/lib/shim/shimx64.efi.signed"
SL="$WORK/pkg/syslinux-common/usr/lib/syslinux"
ESP="$WORK/esp"
mkdir -p "$ESP/EFI/debian"
cp "$SHIM" "$ESP/EFI/debian/shimx64.efi"
cp "$GRUB_SIGNED/grubx64.efi.signed" "$ESP/EFI/debian/grubx64.efi"
cp "$K/boot/vmlinuz-$KVER" "$ESP/vmlinuz"
cp "$WORK/initrd.img" "$ESP/initrd.img"
# Debian's signed grubx64.efi has prefix=/EFI/debian and sources $prefix/grub.cfg.
cat > "$ESP/EFI/debian/grub.cfg" <<'CFG'
set timeout=0
echo "metalman-image: grub on the installed disk root=$root"
linux /vmlinuz console=ttyS0,115200 quiet panic=-1 metalman.role=system
initrd /initrd.img
boot
CFG
cat > "$ESP/syslinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT system
PROMPT 0
TIMEOUT 0
LABEL system
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0,115200 quiet panic=-1 metalman.role=system
CFG
find "$ESP" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
DISKIMG="$WORK/disk.img"
ESP_SECTORS=40960
truncate -s $(( (2048 + ESP_SECTORS + 2048) * 512 )) "$DISKIMG"
FAT="$DISKIMG@@$((2048 * 512))"
export MTOOLS_SKIP_CHECK=1
mformat -i "$FAT" -T "$ESP_SECTORS" -h 64 -s 32 -H 2048 -N 4d4d0001 -v METALMAN-ESP ::
( cd "$ESP" && find . -mindepth 1 -type d | sort | sed 's|^\./||' | while read -r d; do mmd -i "$FAT" "::/$d"; done
  find . -type f | sort | sed 's|^\./||' | while read -r f; do mcopy -m -i "$FAT" "$f" "::/$f"; done )
"$WORK/pkg/syslinux/usr/bin/syslinux" --offset $((2048 * 512)) --install "$DISKIMG"
dd if="$SL/mbr/mbr.bin" of="$DISKIMG" bs=440 count=1 conv=notrunc status=none
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
part() { # STATUS TYPE START SECTORS (CHS fields set to "use LBA")
  printf "\\x$1\\xfe\\xff\\xff\\x$2\\xfe\\xff\\xff$(le32 "$3")$(le32 "$4")"
}
{ part 80 ef 2048 "$ESP_SECTORS"; part 00 da "$SEED_LBA" 2048; printf '\0%.0s' {1..32}; printf '\x55\xaa'; } |
  dd of="$DISKIMG" bs=1 seek=446 conv=notrunc status=none
gzip -n -9 -c "$DISKIMG" > "$WORK/disk.img.gz"
log "disk.img $(stat -c %s "$DISKIMG") bytes, gz $(stat -c %s "$WORK/disk.img.gz")"

# --- the /disk tree -----------------------------------------------------------------------
D="$OUT/disk"
rm -rf "$D" "$OUT/oci"
mkdir -p "$D"
cp -r "$IMAGE_SRC/disk/." "$D/"
cp "$SHIM" "$D/shimx64.efi"
# The netboot GRUB: prefix=(tftp,SERVER)/grub, tries grub/x86_64-efi/grub.cfg then grub/grub.cfg.
cp "$GRUB_SIGNED/grubnetx64.efi.signed" "$D/grubx64.efi"
cp "$K/boot/vmlinuz-$KVER" "$D/vmlinuz"
cp "$WORK/initrd.img" "$D/initrd.img"
cp "$WORK/pkg/ipxe/usr/lib/ipxe/undionly.kpxe" "$WORK/pkg/ipxe/usr/lib/ipxe/snponly.efi" "$D/"
cp "$WORK/pkg/ipxe/boot/ipxe.efi" "$D/ipxe.efi" # (/usr/lib/ipxe/ipxe.efi is an absolute symlink to it)
cp "$WORK/disk.img.gz" "$D/disk.img.gz"
( cd "$D" && sha256sum disk.img.gz > disk.img.gz.sha256 )
printf 'kernel: %s\npackages:\n' "$KVER" > "$D/VERSIONS"
for p in "${PKGS[@]}"; do printf '  %s: %s\n' "$p" "$(dpkg-deb -f "$(fetch_deb "$p")" Version)" >> "$D/VERSIONS"; done
find "$D" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
( cd "$D" && find . -type f | sort | while read -r f; do
    printf '%s %10s %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "${f#./}"; done ) > "$OUT/MANIFEST"

# --- OCI image layout ---------------------------------------------------------------------
O="$OUT/oci"
mkdir -p "$O/blobs/sha256"
blob() { local h; h=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$O/blobs/sha256/$h"; echo "$h"; }
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$OUT" -cf "$WORK/layer.tar" disk
DIFF_ID=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
gzip -n -6 -c "$WORK/layer.tar" > "$WORK/layer.tar.gz"
LAYER_SIZE=$(stat -c %s "$WORK/layer.tar.gz")
LAYER=$(blob "$WORK/layer.tar.gz")
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
printf '{"architecture":"amd64","os":"linux","created":"%s","config":{"Labels":{"io.metalman.netboot.kernel":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$CREATED" "$KVER" "$DIFF_ID" > "$WORK/config.json"
CONFIG_SIZE=$(stat -c %s "$WORK/config.json")
CONFIG=$(blob "$WORK/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}],"annotations":{"org.opencontainers.image.created":"%s","org.opencontainers.image.title":"metalman debian-12 netboot image"}}' \
  "$CONFIG" "$CONFIG_SIZE" "$LAYER" "$LAYER_SIZE" "$CREATED" > "$WORK/manifest.json"
MANIFEST_SIZE=$(stat -c %s "$WORK/manifest.json")
MANIFEST=$(blob "$WORK/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' > "$O/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
  "$MANIFEST" "$MANIFEST_SIZE" "$TAG" > "$O/index.json"
echo "sha256:$MANIFEST" > "$OUT/DIGEST"
log "OCI layout $O tag $TAG manifest sha256:$MANIFEST (layer $LAYER_SIZE bytes)"

[ -z "$PUSH" ] || push "$O" "$TAG" "$PUSH"
log "done in $(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s: spec.pxe.image: dir:$OUT"
