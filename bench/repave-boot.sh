#!/usr/bin/env bash
# bench/repave-boot.sh - time from VM start to /pxe/disable: metalman vs dnsmasq + nginx (root).
#
# Usage: bench/repave-boot.sh [--runs N] [--firmware "uefi-sb bios"] [--image DIR]
#
# One QEMU VM (TCG, blank disk) network-boots the debian-12 image's installer, which writes the
# disk and calls /pxe/disable. Measured: QEMU start -> the installer's
# `metalman-image: installer-pxe-disabled` line on the serial console (printed right after the
# GET /pxe/disable answered 200), the same marker for both servers. Servers, on a bridge in a
# private namespace (ni-bench<pid>, 10.152.0.1/24), one at a time, interleaved per round:
#   metalman   serve-pxe: DHCP (interface mode), TFTP, HTTP; the image as `dir:`, grub.cfg and
#              boot.ipxe rendered per Machine; a fresh --state-dir per boot (repave pending)
#   peer       dnsmasq 2.90 (DHCP + TFTP, the lab's dhcp-boot rules of shared/lab/README-vm.md,
#              but shimx64.efi for UEFI x64 so the Secure Boot chain runs) + nginx (sendfile,
#              `location = /pxe/disable { return 200; }`), serving the same files with grub.cfg
#              and boot.ipxe pre-rendered to the same text.
# (shared/lab/peers.sh is not used as is: its dnsmasq hands UEFI x64 clients ipxe.efi, which
#  cannot run under Secure Boot, and its veth topology has no bridge for a VM.)
# Prints one line per boot and, per firmware, the median ratio metalman / peer (target <= 1.0x).
# Env: BENCH_STATE (default ${TMPDIR:-/tmp}/metalman-bench), METALMAN_SHARED.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
SHARED="${METALMAN_SHARED:-$REPO/../shared}"
RUNS=1
FIRMWARES="uefi-sb bios"
IMAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --firmware) FIRMWARES="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 10 ] || { echo "--runs must be 1..10" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "repave-boot: needs root (netns, tap)" >&2; exit 1; }
MAIN="$REPO/dist/server/main.js"
[ -f "$MAIN" ] || { echo "repave-boot: $MAIN missing (npm run build)" >&2; exit 1; }

BENCH_STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/metalman-bench}"
W="$BENCH_STATE/repave-boot"
rm -rf "$W"; mkdir -p "$W"
NS="ni-bench$$"
SRV=10.152.0.1
PORT=15110
HEALTH=15111
MAC=52:54:00:52:00:11
VMIP=10.152.0.11
NAME=bench-vm
URL="http://$SRV:$PORT"
TIMEOUT_S=400
SERVER_PIDS=()
QPID=""
log() { echo "[repave-boot] $*" >&2; }

cleanup() {
  [ -z "$QPID" ] || kill "$QPID" 2>/dev/null || true
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  "$SHARED/lab/vm-netns.sh" down "$NS" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

if [ -z "$IMAGE" ]; then
  IMAGE="$W/image"
  "$REPO/netboot-images/debian-12/build/build.sh" "$IMAGE" 2>"$W/build.log" || { tail -20 "$W/build.log" >&2; exit 1; }
fi
IMAGE="$(cd "$IMAGE" && pwd)"

# --- the peer's root: the same files, templates pre-rendered for this Machine --------------
P="$W/peer-root"
cp -r "$IMAGE/disk" "$P"
find "$P" -name '*.tmpl' -delete
cat > "$P/grub/grub.cfg" <<CFG
set timeout=0
echo 'metalman: repave 1 requested for $NAME (last completed 0): installing'
linux /vmlinuz console=ttyS0,115200 quiet panic=-1 metalman.role=installer 'metalman.serve_url=$URL' 'metalman.machine=$NAME'
initrd /initrd.img
boot
CFG
cat > "$P/boot.ipxe" <<CFG
#!ipxe
echo metalman: repave 1 requested for $NAME: installing
kernel $URL/vmlinuz initrd=initrd.img console=ttyS0,115200 quiet panic=-1 metalman.role=installer metalman.serve_url=$URL metalman.machine=$NAME
initrd $URL/initrd.img
boot
CFG
cat > "$W/dnsmasq.conf" <<CFG
port=0
interface=br0
bind-interfaces
leasefile-ro
dhcp-range=$SRV,static,255.255.255.0,1h
dhcp-host=$MAC,$VMIP
dhcp-option=option:router,$SRV
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-userclass=set:ipxe,iPXE
dhcp-boot=tag:ipxe,$URL/boot.ipxe
dhcp-boot=tag:!ipxe,tag:efi64,shimx64.efi,,$SRV
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,$SRV
enable-tftp
tftp-root=$P
log-facility=$W/dnsmasq.log
CFG
mkdir -p "$W/nginx-tmp"
cat > "$W/nginx.conf" <<CFG
user root;
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log warn;
events { worker_connections 256; }
http {
  log_format timed '\$msec \$remote_addr "\$request" \$status \$body_bytes_sent \$request_time';
  access_log $W/nginx-access.log timed;
  client_body_temp_path $W/nginx-tmp/body; proxy_temp_path $W/nginx-tmp/proxy;
  fastcgi_temp_path $W/nginx-tmp/fastcgi; uwsgi_temp_path $W/nginx-tmp/uwsgi; scgi_temp_path $W/nginx-tmp/scgi;
  sendfile on; tcp_nopush on;
  default_type application/octet-stream;
  server {
    listen $SRV:$PORT;
    root $P;
    location = /pxe/disable { return 200 ""; }
  }
}
CFG

"$SHARED/lab/vm-netns.sh" up "$NS" br0 "$SRV/24" >/dev/null
# A veth on the bridge keeps its carrier between VMs (a bridge whose last port left has none,
# and then no usable address for metalman's --dhcp-interface).
"$SHARED/lab/vm-netns.sh" veth "$NS" nikeep br0 >/dev/null

start_metalman() { # -> SERVER_PIDS
  local s="$W/mm-$1"
  rm -rf "$s"; mkdir -p "$s/inventory" "$s/state" "$s/cache"
  cat > "$s/inventory/$NAME.yaml" <<YAML
apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: $NAME}
spec:
  pxe:
    image: "dir:$IMAGE"
    dhcpLeases:
    - {mac: "$MAC", ipv4: "$VMIP", subnetMask: "255.255.255.0", gateway: "$SRV"}
  operations: {repaveCounter: 1}
YAML
  ip netns exec "$NS" node "$MAIN" serve-pxe --inventory "$s/inventory" --state-dir "$s/state" \
    --cache-dir "$s/cache" --bind-address "$SRV" --serve-url "$URL" --http-port "$PORT" --tftp-port 69 \
    --health-port "$HEALTH" --dhcp-port 67 --dhcp-interface br0 --log-level "${BENCH_MM_LOG:-warn}" \
    --image-root "$(dirname "$IMAGE")" > "$s/server.log" 2>&1 &
  SERVER_PIDS=($!)
  local i
  for i in $(seq 1 150); do
    ip netns exec "$NS" curl -sf -m 1 "http://$SRV:$HEALTH/healthz" >/dev/null 2>&1 && return 0
    kill -0 "${SERVER_PIDS[0]}" 2>/dev/null || break
    sleep 0.2
  done
  tail -20 "$s/server.log" >&2; return 1
}
start_peer() {
  ip netns exec "$NS" dnsmasq --keep-in-foreground --conf-file="$W/dnsmasq.conf" > "$W/dnsmasq.out" 2>&1 &
  local d=$!
  ip netns exec "$NS" nginx -e "$W/nginx-error.log" -c "$W/nginx.conf" > "$W/nginx.out" 2>&1 &
  SERVER_PIDS=("$d" $!)
  local i
  for i in $(seq 1 50); do
    ip netns exec "$NS" curl -sf -m 1 "$URL/disk.img.gz.sha256" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  cat "$W/nginx-error.log" "$W/dnsmasq.out" >&2; return 1
}
stop_servers() {
  local p
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  SERVER_PIDS=()
}

# boot FIRMWARE LABEL -> prints seconds (or "fail")
boot() {
  local fw="$1" label="$2" tap="nib$$" disk="$W/disk-$2.img" vars="$W/vars-$2.fd" serial="$W/serial-$2.log"
  tap="${tap:0:15}"
  ip netns exec "$NS" ip tuntap add dev "$tap" mode tap
  ip netns exec "$NS" ip link set "$tap" master br0 up
  rm -f "$disk"; truncate -s 64M "$disk"; : > "$serial"
  local args=(-accel tcg -m 512 -smp 1 -nodefaults -display none -monitor none -serial "file:$serial"
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no"
    -drive "file=$disk,format=raw,if=none,id=d0,cache=unsafe" -device virtio-blk-pci,drive=d0,bootindex=2)
  if [ "$fw" = bios ]; then
    args+=(-machine q35 -device "virtio-net-pci,netdev=n0,mac=$MAC,bootindex=1")
  else
    cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$vars"
    args+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
      -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
      -drive "if=pflash,format=raw,unit=1,file=$vars"
      -device "virtio-net-pci,netdev=n0,mac=$MAC,bootindex=1,romfile=")
  fi
  local start end result=fail
  start=$(date +%s.%N)
  ip netns exec "$NS" qemu-system-x86_64 "${args[@]}" > "$W/qemu-$label.log" 2>&1 &
  QPID=$!
  local deadline=$(( $(date +%s) + TIMEOUT_S ))
  while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$QPID" 2>/dev/null; do
    if grep -aq 'metalman-image: installer-pxe-disabled' "$serial"; then
      end=$(date +%s.%N); result=$(awk -v s="$start" -v e="$end" 'BEGIN{printf "%.1f", e-s}'); break
    fi
    sleep 0.2
  done
  kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; QPID=""
  ip netns exec "$NS" ip link del "$tap" 2>/dev/null || true
  echo "$result"
}

median() { sort -n | awk '{a[NR]=$1} END{ if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

declare -A TIMES=()
for r in $(seq 1 "$RUNS"); do
  for fw in $FIRMWARES; do
    for srv in metalman peer; do
      if [ "$srv" = metalman ]; then start_metalman "$fw-$r"; else start_peer; fi
      t=$(boot "$fw" "$srv-$fw-$r")
      stop_servers
      echo "round $r firmware $fw server $srv: VM start -> /pxe/disable ${t} s"
      [ "$t" = fail ] || TIMES[$srv-$fw]="${TIMES[$srv-$fw]:-} $t"
    done
  done
done
echo
echo "| firmware | metalman (median s) | dnsmasq + nginx (median s) | ratio |"
echo "|---|---|---|---|"
for fw in $FIRMWARES; do
  m=$(printf '%s\n' ${TIMES[metalman-$fw]:-} | median)
  p=$(printf '%s\n' ${TIMES[peer-$fw]:-} | median)
  ratio=$(awk -v a="$m" -v b="$p" 'BEGIN{ if (a=="n/a" || b=="n/a" || b+0==0) print "n/a"; else printf "%.2fx", a/b }')
  echo "| $fw | $m | $p | $ratio |"
done
echo "(runs: $RUNS; logs in $W)"
