#!/usr/bin/env bash
# verify-disk.sh IMAGE - check an appliance disk: GPT valid, the five partitions by name and type,
# and a clean fsck of every filesystem (read from the image at its partition's offset).
set -euo pipefail
img="$1"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=build/appliance/lib.sh
. "$here/lib.sh"
sfdisk --verify "$img" >/dev/null 2>&1 || { sfdisk --verify "$img" >&2; die "$img: GPT does not verify"; }
json="$(sfdisk --json "$img")"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/metalman-verify.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
for want in mm-esp:C12A7328-F81F-11D2-BA4B-00A0C93EC93B:vfat mm-root-a:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709:ext4 \
  mm-root-b:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709:any mm-config:EBD0A0A2-B9E5-4433-87C0-68B6B72699C7:vfat \
  mm-data:0FC63DAF-8483-4772-8E79-3D69D8477DE4:ext4; do
  IFS=: read -r label type fs <<<"$want"
  line="$(node -e '
    const t = JSON.parse(process.argv[1]).partitiontable; const p = t.partitions.find((x) => x.name === process.argv[2]);
    if (!p) process.exit(1); console.log(`${p.type} ${p.start} ${p.size} ${t.sectorsize ?? 512}`)' "$json" "$label")" ||
    die "$img: no partition named $label"
  read -r ptype start size sector <<<"$line"
  [ "$ptype" = "$type" ] || die "$img: $label has type $ptype, expected $type"
  [ "$fs" = any ] && continue
  dd if="$img" of="$tmp/part" bs="$sector" skip="$start" count="$size" conv=sparse status=none
  case "$fs" in
    vfat) fsck.vfat -n "$tmp/part" >/dev/null || die "$img: fsck of $label failed" ;;
    ext4) e2fsck -fn "$tmp/part" >/dev/null 2>&1 || die "$img: fsck of $label failed" ;;
  esac
  rm -f "$tmp/part"
done
step "verified $img: GPT, 5 partitions, filesystems clean"
