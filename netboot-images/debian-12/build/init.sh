#!/bin/sh
# /init of the debian-12 netboot image's initramfs. One busybox initramfs plays two roles,
# chosen by the kernel argument metalman.role:
#   installer  (netbooted by grub.cfg / boot.ipxe): DHCP, fetch disk.img.gz over HTTP (503 =
#              the appliance is still preparing the image: wait), verify its sha256, write it
#              to metalman.target_disk or the first disk, store the serve URL in the disk's
#              seed sector, GET /pxe/disable, reboot.
#   system     (booted from the installed disk): the "installed system". Prints its marker,
#              DHCPs, reads the NoCloud meta-data and posts cloud-init-style events to
#              /cloudinit/log, then powers off.
# Every line it prints starts with "metalman-image: " so the serial log can be asserted.
# Build-time constants (seed sector, marker) come from /etc/metalman-image.conf.
. /etc/metalman-image.conf
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run
mount -t tmpfs tmpfs /tmp
exec >/dev/console 2>&1

say() { echo "$MARKER $*"; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "${w#*=}"; return;; esac; done; }
die() { say "$ROLE-failed $*"; sync; sleep 5; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }

ROLE=$(arg metalman.role)
[ -n "$ROLE" ] || ROLE=system
say "$ROLE-start uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
for m in $(cat /etc/metalman-modules); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
if [ -d /sys/firmware/efi ]; then
  SB=$(dmesg | sed -n 's/.*Secure boot \(enabled\|disabled\).*/\1/p' | head -n1)
  FIRMWARE="efi secureboot=${SB:-unknown}"
else
  FIRMWARE="bios"
fi
say "$ROLE-firmware firmware=$FIRMWARE"

# --- network: first NIC, DHCP (the appliance's reservation) ------------------------------
IF=""; i=0
while [ -z "$IF" ] && [ $i -lt 50 ]; do
  for n in /sys/class/net/*; do n=${n##*/}; [ "$n" = lo ] || { IF=$n; break; }; done
  [ -n "$IF" ] || sleep 0.2; i=$((i+1))
done
[ -n "$IF" ] || die "no-nic"
ip link set lo up; ip link set "$IF" up
i=0; rm -f /tmp/dhcp.env
while [ ! -f /tmp/dhcp.env ] && [ $i -lt 5 ]; do
  udhcpc -i "$IF" -s /etc/udhcpc.sh -n -q -f -t 6 -T 2 >/dev/null 2>&1; i=$((i+1))
done
[ -f /tmp/dhcp.env ] || die "dhcp if=$IF"
. /tmp/dhcp.env
say "$ROLE-dhcp if=$IF mac=$(cat /sys/class/net/$IF/address) ip=$ip serverid=$serverid"

. /lib/metalman/fetch.sh

# The first whole disk (virtio, SCSI/SATA, NVMe), or metalman.target_disk.
first_disk() {
  for d in /sys/block/vd* /sys/block/sd* /sys/block/nvme*n* /sys/block/xvd*; do
    [ -e "$d" ] || continue
    [ "$(cat "$d/removable" 2>/dev/null)" = 1 ] && continue
    [ "$(cat "$d/size" 2>/dev/null)" -gt 0 ] 2>/dev/null || continue
    echo "/dev/${d##*/}"; return
  done
}

# Serve URL as the installer saw it, kept in the disk's seed sector for the installed system.
read_seed() {
  for d in /sys/block/vd* /sys/block/sd* /sys/block/nvme*n* /sys/block/xvd*; do
    [ -e "$d" ] || continue
    _s=$(dd if="/dev/${d##*/}" bs=512 skip="$SEED_LBA" count=1 2>/dev/null | tr -d '\000')
    case "$_s" in "METALMAN-SEED "*) echo "${_s#METALMAN-SEED }" | head -n1; return;; esac
  done
}

installer() {
  SERVE=$(arg metalman.serve_url)
  [ -n "$SERVE" ] || die "no metalman.serve_url"
  i=0; DISK=$(arg metalman.target_disk)
  while [ -z "$DISK" ] && [ $i -lt 50 ]; do DISK=$(first_disk); [ -n "$DISK" ] || sleep 0.2; i=$((i + 1)); done
  [ -n "$DISK" ] && [ -b "$DISK" ] || die "no-disk target=${DISK:-none}"
  say "installer-target disk=$DISK"
  fetch "$SERVE/disk.img.gz.sha256" /tmp/disk.img.gz.sha256 || die "fetch disk.img.gz.sha256"
  WANT=$(cut -d' ' -f1 /tmp/disk.img.gz.sha256)
  fetch "$SERVE/disk.img.gz" /tmp/disk.img.gz || die "fetch disk.img.gz"
  GOT=$(sha256sum /tmp/disk.img.gz | cut -d' ' -f1)
  [ "$GOT" = "$WANT" ] || die "verify sha256=$GOT want=$WANT"
  say "installer-verified sha256=$GOT bytes=$(wc -c < /tmp/disk.img.gz)"
  gunzip -c /tmp/disk.img.gz | dd of="$DISK" bs=1M conv=fsync 2>/dev/null || die "write $DISK"
  printf 'METALMAN-SEED %s\n' "$SERVE" | dd of="$DISK" bs=512 seek="$SEED_LBA" count=1 conv=sync,notrunc,fsync 2>/dev/null \
    || die "seed $DISK"
  sync
  say "installer-written disk=$DISK"
  fetch "$SERVE/pxe/disable" /tmp/disable.out || die "pxe-disable"
  say "installer-pxe-disabled url=$SERVE/pxe/disable"
  say "installer-reboot"
  sync
  reboot -f
}

post_event() { # name event_type [result]
  _body="{\"name\":\"$1\",\"description\":\"metalman-image $1\",\"event_type\":\"$2\",\"origin\":\"cloudinit\",\"timestamp\":$(cut -d' ' -f1 /proc/uptime)${3:+,\"result\":\"$3\"}}"
  if timeout 20 wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "$_body" "$SERVE/cloudinit/log"; then
    say "system-event name=$1 type=$2${3:+ result=$3}"
  else
    say "system-event-failed name=$1 type=$2"
  fi
}

system() {
  say "system-booted-from-disk firmware=$FIRMWARE"
  SERVE=$(read_seed)
  [ -n "$SERVE" ] || die "no seed"
  if fetch "$SERVE/cloud-init/meta-data" /tmp/meta-data; then
    say "system-meta-data $(tr '\n' ' ' < /tmp/meta-data)"
  fi
  for stage in init-local init modules-config modules-final; do
    post_event "$stage" start
    post_event "$stage" finish SUCCESS
  done
  say "system-done"
  sync
  poweroff -f
}

case "$ROLE" in
  installer) installer ;;
  *) system ;;
esac
die "role $ROLE returned"
