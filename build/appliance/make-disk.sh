#!/usr/bin/env bash
# make-disk.sh ROOT OUT VERSION - the GPT disk, its qcow2 and bmap, and the update bundle.
#
# Layout (docs/appliance.md): 1 ESP (systemd-boot, kernels of both slots), 2/3 root slots A/B
# (ext4, mounted read-only), 4 config (FAT, pre-seedable appliance.yaml), 5 data (ext4: inventory,
# state, cache, journal). Partitions are found by PARTLABEL, so a re-flash keeps working names.
set -euo pipefail
root="$1" out="$2" version="$3"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=build/appliance/lib.sh
. "$here/lib.sh"
. "$here/layout.sh"
name="metalman-appliance-$version"
work="$(mktemp -d "${TMPDIR:-/tmp}/metalman-disk.XXXXXX")"
trap 'rm -rf "$work"' EXIT

bash "$here/make-update.sh" "$root" "$version" "$out/$name.update.tar" --workdir "$work"

step "ESP (systemd-boot, slot A entry)"
esp="$work/esp.vfat"
mkfs.vfat -F 32 -n MM-ESP -C "$esp" $((ESP_MIB * 1024)) >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/metalman ::/metalman/a ::/metalman/b
mcopy -i "$esp" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
printf 'timeout 0\ndefault metalman-*\neditor no\nconsole-mode keep\n' >"$work/loader.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/vmlinuz" "$work/initrd.img" ::/metalman/a/
bash "$repo/appliance/bin/metalman-upgrade" --print-entry a "$version" >"$work/metalman-a.conf"
mcopy -i "$esp" "$work/metalman-a.conf" ::/loader/entries/metalman-a.conf
fsck.vfat -n "$esp" >/dev/null || die "fsck of the ESP failed"

step "config partition (appliance.yaml, every setting derived until the operator edits it)"
cfg="$work/config.vfat"
mkfs.vfat -n MM-CONFIG -C "$cfg" $((CONFIG_MIB * 1024)) >/dev/null
mcopy -i "$cfg" "$repo/appliance/appliance.example.yaml" ::/appliance.yaml
mcopy -i "$cfg" "$repo/appliance/config-README.txt" ::/README.txt
fsck.vfat -n "$cfg" >/dev/null || die "fsck of the config partition failed"

step "data partition"
data_tree="$work/data-tree"
uid="$(chroot "$root" id -u metalman)" gid="$(chroot "$root" id -g metalman)"
install -d -m 0750 -o "$uid" -g "$gid" "$data_tree/metalman"
install -d -m 2755 -o 0 -g "$(chroot "$root" getent group systemd-journal | cut -d: -f3)" "$data_tree/journal"
mkfs.ext4 -q -F -L mm-data -E root_owner=0:0 -d "$data_tree" "$work/data.ext4" "${DATA_MIB}M"

step "GPT disk"
img="$out/$name.img"
rm -f "$img"
truncate -s "${DISK_MIB}M" "$img"
sfdisk --quiet --label gpt "$img" <<EOF
first-lba: 2048
start=${ESP_START_MIB}MiB, size=${ESP_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=mm-esp
start=${ROOTA_START_MIB}MiB, size=${ROOT_MIB}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=mm-root-a
start=${ROOTB_START_MIB}MiB, size=${ROOT_MIB}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=mm-root-b
start=${CONFIG_START_MIB}MiB, size=${CONFIG_MIB}MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=mm-config
start=${DATA_START_MIB}MiB, size=${DATA_MIB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=mm-data
EOF
put() { dd if="$1" of="$img" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$esp" "$ESP_START_MIB"
put "$work/root.ext4" "$ROOTA_START_MIB"
put "$cfg" "$CONFIG_START_MIB"
put "$work/data.ext4" "$DATA_START_MIB"
bash "$here/verify-disk.sh" "$img"

step "qcow2 and bmap"
qemu-img convert -f raw -O qcow2 "$img" "$out/$name.qcow2"
bmaptool -q create -o "$out/$name.bmap" "$img"
