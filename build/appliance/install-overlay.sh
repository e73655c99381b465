#!/usr/bin/env bash
# install-overlay.sh REPO ROOT VERSION - put the appliance's own files (appliance/) into a root tree:
# units, network/journald/ssh settings, the metalman user, the read-only root layout; enable what runs.
set -euo pipefail
repo="$1" root="$2" version="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=build/appliance/lib.sh
. "$here/lib.sh"
a="$repo/appliance"

install -d -m 0755 "$root/usr/lib/metalman/bin" "$root/usr/lib/systemd/system" "$root/etc/systemd/journald.conf.d" \
  "$root/efi" "$root/data" "$root/config" "$root/var/lib/metalman" "$root/etc/metalman"
install -m 0755 "$a/bin/metalman" "$root/usr/bin/metalman"
install -m 0755 "$a/bin/metalman-upgrade" "$root/usr/sbin/metalman-upgrade"
for f in metalman-banner metalman-boot-check metalman-upgrade-spool; do install -m 0755 "$a/bin/$f" "$root/usr/lib/metalman/bin/$f"; done
for f in "$a"/systemd/*.service "$a"/systemd/*.timer "$a"/systemd/*.path; do install -m 0644 "$f" "$root/usr/lib/systemd/system/"; done
for d in "$a"/systemd/*.d; do
  install -d "$root/usr/lib/systemd/system/$(basename "$d")"
  install -m 0644 "$d"/*.conf "$root/usr/lib/systemd/system/$(basename "$d")/"
done
# The data partition grows in the initramfs (before anything mounts the disk): hook + premount script.
install -m 0755 "$a/initramfs/hooks/metalman-grow-data" "$root/etc/initramfs-tools/hooks/metalman-grow-data"
install -m 0755 "$a/initramfs/scripts/local-premount/metalman-grow-data" \
  "$root/etc/initramfs-tools/scripts/local-premount/metalman-grow-data"
step "initramfs with the data-partition growth"
initramfs_log="$(mktemp)"
chroot "$root" update-initramfs -u -k all >"$initramfs_log" 2>&1 ||
  { tail -20 "$initramfs_log" >&2; rm -f "$initramfs_log"; die "update-initramfs failed"; }
rm -f "$initramfs_log"
install -m 0644 "$a/conf/journald.conf" "$root/etc/systemd/journald.conf.d/metalman.conf"
install -m 0644 "$a/conf/fstab" "$root/etc/fstab"
install -m 0644 "$a/conf/sysusers.conf" "$root/usr/lib/sysusers.d/metalman.conf"
install -m 0644 "$a/conf/sshd.conf" "$root/etc/ssh/sshd_config.d/metalman.conf"
install -m 0644 "$a/appliance.example.yaml" "$root/usr/share/metalman-appliance.example.yaml"
# The example image (netboot-images/): a working default for a first Machine.
install -d "$root/usr/share/metalman/images"
cp -a "$repo/netboot-images/." "$root/usr/share/metalman/images/"
chown -R 0:0 "$root/usr/share/metalman"

# Identity: every box makes its own machine-id (empty file + read-only root = transient), host keys
# (generated on the data partition when SSH is enabled) and name.
: >"$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
echo metalman >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 metalman\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# The text-console banner is written at boot (console URL, TLS fingerprint, config errors).
ln -sfn ../run/metalman/issue "$root/etc/issue"
printf 'metalman appliance %s\n' "$version" >"$root/etc/issue.net"
printf 'VERSION=%s\nBUILT=%s\n' "$version" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$root/etc/metalman-release"

# The metalman user (fixed uid/gid so the data partition's ownership survives every upgrade).
systemd-sysusers --root="$root" >/dev/null
chroot "$root" getent passwd metalman >/dev/null || die "sysusers did not create the metalman user"

systemctl --root="$root" enable metalman-config.service metalman.service metalman-banner.service \
  metalman-banner.timer metalman-boot-check.service metalman-upgrade-spool.path \
  metalman-upgrade-spool-boot.service systemd-networkd.service systemd-resolved.service \
  systemd-timesyncd.service >/dev/null 2>&1
# SSH is off unless appliance.yaml says otherwise (ssh.service's drop-in checks /run/metalman/ssh-enabled).
systemctl --root="$root" enable ssh.service >/dev/null 2>&1 || true
# Nothing waits for "online": metalman serves as soon as its NICs have addresses.
systemctl --root="$root" mask systemd-networkd-wait-online.service e2scrub_all.timer e2scrub_reap.service \
  apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true

# Kernel modules a jump box never loads (sound, GPUs beyond the firmware framebuffer, radios, TV
# cards, staging): about half the module tree. Network, storage, USB, HID, crypto stay.
for kdir in "$root"/lib/modules/*/kernel; do
  for sub in sound drivers/gpu drivers/media drivers/net/wireless drivers/bluetooth drivers/staging \
    drivers/infiniband drivers/iio drivers/isdn drivers/input/joystick drivers/input/touchscreen \
    drivers/net/can drivers/comedi net/bluetooth net/wireless net/mac80211 net/mac802154 drivers/gnss; do
    rm -rf "${kdir:?}/$sub"
  done
done
for m in "$root"/lib/modules/*; do chroot "$root" depmod -a "$(basename "$m")"; done
# Read-only root: nothing below /var is needed from the image (tmpfiles recreates what runs).
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
