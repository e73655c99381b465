#!/usr/bin/env bash
# bench/console.sh - the web console at 5,000 Machines in Chromium, during a 500-client boot storm (root only).
#
# Usage: bench/console.sh [MACHINES] [STORM_CLIENTS]     (defaults 5000 and 500)
#
# metalman runs in the lab's server netns (shared/lab veth topology, prefix $LAB_PREFIX, default
# cub) with MACHINES Machines: STORM_CLIENTS of them are the storm's reservations, the rest
# fillers with MACs nobody uses, spread over 5 rack labels. Its console listens on
# 127.0.0.1:$CONSOLE_PORT inside that netns, and Chromium (playwright-core, Debian's binary) runs
# there too (bench/console-bench.ts), logged in as the first admin (password from the banner).
# Measured: time to the first table render, time to apply a filter, then, during the storm
# (perfdhcp DORA for every client in relay mode, then each client TFTP 1 MiB + HTTP
# $BOOTSTORM_HTTP_MIB MiB from its lease IP, as bench/bootstorm.sh), the SSE event-to-screen
# latency of the rows on screen and the arrival latency of every event; last, metalman's RSS
# (VmRSS now, VmHWM peak; the console is a listener of the appliance process).
# Targets: first render < 1 s, filter < 100 ms, event-to-screen p99 < 250 ms.
set -euo pipefail
export LAB_PREFIX="${LAB_PREFIX:-cub}"
export BENCH_STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/metalman-bench-$LAB_PREFIX}"
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
TOTAL="${1:-5000}"
N="${2:-${BOOTSTORM_CLIENTS:-500}}"
MIB="${BOOTSTORM_HTTP_MIB:-4}"
CONSOLE_PORT="${CONSOLE_PORT:-15250}"
RATE="${BOOTSTORM_DORA_RATE:-500}"
BENCH_JS="$REPO_DIR/dist/bench/console-bench.js"
STORM_CLIENTS_JS="$REPO_DIR/dist/bench/bootstorm-clients.js"
[ -f "$BENCH_JS" ] && [ -f "$REPO_DIR/dist/console/index.html" ] || lab_die "build first: npm run build"
[ -x /usr/bin/chromium ] || lab_die "/usr/bin/chromium missing (apt-get install chromium)"
command -v perfdhcp >/dev/null || lab_die "perfdhcp missing (apt-get install kea-admin)"
[ "$N" -le "$TOTAL" ] || lab_die "STORM_CLIENTS must be <= MACHINES"

export LAB_RESERVATIONS="$N" LAB_DYNAMIC=0 LAB_DHCP_LOG=quiet LAB_TFTP_FILES=1 LAB_HTTP_FILES="$MIB"
bench_begin console
"$LAB_DIR/peers.sh" gen >/dev/null 2>&1 || lab_die "peers.sh gen failed"
ADDED_IPS=0
cleanup() {
  if [ "$ADDED_IPS" = 1 ]; then
    for i in $(seq 0 $((N - 1))); do echo "address del $(lab_res_ip "$i")/16 dev $LAB_CLI_IF"; done |
      ip -n "$LAB_CLIENT_NS" -force -batch - >/dev/null 2>&1 || true
  fi
  [ -n "${BENCH_PID:-}" ] && kill "$BENCH_PID" 2>/dev/null || true
  bench_cleanup
}
trap cleanup EXIT INT TERM

IMAGE="$BENCH_STATE/console-image"
INV="$BENCH_STATE/console-inventory"
rm -rf "$IMAGE" "$INV" "$BENCH_STATE/mm-state"; mkdir -p "$IMAGE/disk" "$INV"
TFTP_FILE="rand-1M.bin"; HTTP_FILE="rand-${MIB}M.bin"
for f in "$LAB_STATE/tftp/$TFTP_FILE" "$LAB_STATE/http/$HTTP_FILE"; do ln "$f" "$IMAGE/disk/" 2>/dev/null || cp "$f" "$IMAGE/disk/"; done
printf 'dhcpBootImageName: ipxe.efi\nbiosBootImageName: undionly.kpxe\nipxeScriptName: boot.ipxe\n' > "$IMAGE/disk/metadata.yaml"
machine() { # file name mac ip site
  printf 'apiVersion: unbounded-cloud.io/v1alpha3\nkind: Machine\nmetadata:\n  name: %s\n  labels: {rack: %s}\nspec:\n  pxe:\n    image: "dir:%s"\n    dhcpLeases:\n      - {mac: "%s", ipv4: "%s", subnetMask: "%s", gateway: "%s"}\n' \
    "$2" "$5" "$IMAGE" "$3" "$4" "$LAB_NETMASK" "$LAB_SERVER_IP" > "$1"
}
for i in $(seq 0 $((N - 1))); do machine "$INV/storm-$i.yaml" "storm-$i" "$(lab_res_mac "$i")" "$(lab_res_ip "$i")" "rack-$((i % 5 + 1))"; done
for i in $(seq "$N" $((TOTAL - 1))); do
  machine "$INV/rack-$i.yaml" "rack-$i" "$(printf '06:50:58:%02x:%02x:%02x' $(((i >> 16) & 255)) $(((i >> 8) & 255)) $((i & 255)))" \
    "10.214.$((i / 250)).$((1 + i % 250))" "rack-$((i % 5 + 1))"
done
lab_log "inventory: $TOTAL Machines ($N storm clients)"

mm_start "$INV" --serve-url "http://$LAB_SERVER_IP" --http-port 80 --tftp-port 69 --dhcp-port 67 \
  --console-address 127.0.0.1 --console-port "$CONSOLE_PORT"
for _ in $(seq 1 100); do grep -q 'first login user' "$MM_LOG" && break; sleep 0.2; done
PASSWORD="$(sed -n 's/.*first login user "admin" password \([^ ]*\).*/\1/p' "$MM_LOG" | head -1)"
[ -n "$PASSWORD" ] || lab_die "no first admin password in $MM_LOG"
WRAPPER="$BENCH_STATE/chromium-in-netns.sh"
printf '#!/bin/sh\nexec ip netns exec %s /usr/bin/chromium "$@"\n' "$LAB_SERVER_NS" > "$WRAPPER"; chmod +x "$WRAPPER"
DONE="$BENCH_STATE/storm.done"; rm -f "$DONE"
FIFO_OUT="$BENCH_STATE/console-bench.out"; : > "$FIFO_OUT"
node "$BENCH_JS" "https://127.0.0.1:$CONSOLE_PORT/" admin "$PASSWORD" "$DONE" "$TOTAL" "$WRAPPER" > "$FIFO_OUT" 2>>"$RAW" &
BENCH_PID=$!
for _ in $(seq 1 600); do grep -q '^ready' "$FIFO_OUT" && break; kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.2; done
grep -q '^ready' "$FIFO_OUT" || { tail -20 "$RAW" >&2; lab_die "console bench did not get ready"; }
lab_log "browser ready; storm of $N clients"
RSS_BEFORE="$(awk '/VmRSS/ { print $2 }' "/proc/$MM_PID/status")"

T0="$(lab_now)"
lab_nsx "$LAB_CLIENT_NS" timeout $((N / RATE + 40)) perfdhcp -4 -g single -l "$CLIENT_IP" -r "$RATE" \
  -n "$N" -R "$N" -b mac=02:50:58:00:00:00 -W 3000000 "$LAB_SERVER_IP" >> "$RAW" 2>&1 || true
for i in $(seq 0 $((N - 1))); do echo "address replace $(lab_res_ip "$i")/16 dev $LAB_CLI_IF"; done |
  ip -n "$LAB_CLIENT_NS" -batch - || lab_die "cannot add the client addresses"
ADDED_IPS=1
IPS=(); for i in $(seq 0 $((N - 1))); do IPS+=("$(lab_res_ip "$i")"); done
lab_nsx "$LAB_CLIENT_NS" timeout 600 node "$STORM_CLIENTS_JS" "$LAB_SERVER_IP" "$TFTP_FILE" \
  "$(stat -c %s "$IMAGE/disk/$TFTP_FILE")" "$HTTP_FILE" "$(stat -c %s "$IMAGE/disk/$HTTP_FILE")" 300 1468 4 "${IPS[@]}" \
  > "$BENCH_STATE/storm.rows" 2>>"$RAW" || true
T1="$(lab_now)"
touch "$DONE"
wait "$BENCH_PID" || true
BENCH_PID=""
RSS="$(awk '/VmRSS/ { print $2 }' "/proc/$MM_PID/status")"
HWM="$(awk '/VmHWM/ { print $2 }' "/proc/$MM_PID/status")"
OK="$(awk '$2 == "ok"' "$BENCH_STATE/storm.rows" | wc -l)"
RESULT="$(grep '^{' "$FIFO_OUT" | tail -1)"
[ -n "$RESULT" ] || { tail -30 "$RAW" >&2; lab_die "no result from the browser"; }
echo "$RESULT" >> "$RAW"
j() { node -e "const r=JSON.parse(process.argv[1]);console.log(String(process.argv[2].split('.').reduce((o,k)=>o[k],r)))" "$RESULT" "$1"; }
row "## Console: $TOTAL Machines in Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), storm of $N clients ($OK ok) in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s"
row ""
row "| measure | value | target |"
row "|---|---|---|"
row "| first table render (navigation -> rows painted, 5,000 loaded), median of 3 | $(j firstRenderMs.median) ms ($(j firstRenderMs.runs)) | < 1000 ms |"
row "| apply a filter (change -> painted), median / max of 18 | $(j filterMs.median) / $(j filterMs.max) ms | < 100 ms |"
row "| text search keystroke -> painted | $(j searchMs) ms | |"
row "| SSE event -> on screen (rows in view), p50 / p99 / max, $(j sse.screenUpdates) updates | $(j sse.screenP50) / $(j sse.screenP99) / $(j sse.screenMax) ms | p99 < 250 ms |"
row "| SSE event -> in the page (every event), p50 / p99, $(j sse.arrivals) events | $(j sse.arrivalP50) / $(j sse.arrivalP99) ms | |"
row "| metalman RSS before storm / after / peak (console included) | $((RSS_BEFORE / 1024)) / $((RSS / 1024)) / $((HWM / 1024)) MiB | |"
row "| page JS heap | $(j pageHeapMiB) MiB | |"
lab_log "done: $OUT"
