#!/usr/bin/env bash
# bench/bootstorm.sh - boot storm: N machines boot at once, metalman vs dnsmasq + nginx (root only).
#
# Usage: bench/bootstorm.sh [N]        (N clients, default $BOOTSTORM_CLIENTS or 500)
#
# One "boot" per emulated client, in the lab netns (shared/lab: veth, server $LAB_SERVER_IP):
#   1. DHCP: perfdhcp -4 -g single, relay mode (giaddr = the client netns address), N DORA
#      exchanges over the N reservation MACs (-b mac=02:50:58:00:00:00 -R N) at
#      $BOOTSTORM_DORA_RATE/s; completed exchanges, drops and delays from perfdhcp's report.
#   2. then every client at once, each from its OWN lease IP (reservation i's address is added
#      to the client interface; the source address is also the Machine identity for metalman):
#      TFTP GET of a 1 MiB file (blksize 1468, windowsize 4 as EDK2 asks), then HTTP GET of a
#      $BOOTSTORM_HTTP_MIB MiB file (`curl --interface IP`). Sizes are checked; a client fails on any error.
# Servers, the same files, the same ports (:67 DHCP, :69 TFTP, :80 HTTP), one after the other:
#   peers    = dnsmasq (DHCP + TFTP, LAB_DNSMASQ_TFTP=1, N static reservations) + nginx (sendfile)
#   metalman = one Machine per reservation (same MAC and IP), image disk/ = hard links of the
#              peers' rand-1M.bin (TFTP root) and rand-<MiB>M.bin (HTTP root), --log-level warn
# Printed per server: DORA phase wall time, client phase wall time, total, p50/p99 per client
# (TFTP, HTTP, TFTP+HTTP), failures; then metalman / peers wall time ratio (target <= 1.0x, 0 failures).
#
# TFTP client ($BOOTSTORM_TFTP_CLIENT): "window" (default) = bench/bootstorm-clients.ts, the repo's
# RFC 7440 test client (ACKs like EDK2) bound to each lease IP, in one process for all clients,
# which then runs curl for HTTP; needed because curl has no windowsize option and atftp cannot
# bind a source address. dnsmasq does not grant windowsize (its OACK omits it): against it the
# same client runs lock-step, as EDK2 would. "curl" = curl --interface for TFTP too (lock-step).
#
# Env (plus bench/lib.sh's): BOOTSTORM_CLIENTS (500), BOOTSTORM_HTTP_MIB (64), BOOTSTORM_TFTP_CLIENT
# (window), BOOTSTORM_WINDOWSIZE (4), BOOTSTORM_DORA_RATE
# (1000), BOOTSTORM_TIMEOUT (seconds per transfer, 300), BENCH_RUNS (1: rounds, servers interleaved),
# LAB_PREFIX (default m5s: namespaces m5s-srv, m5s-cli).
set -euo pipefail
export LAB_PREFIX="${LAB_PREFIX:-m5s}"
# Own state (peer pid files, reservations, test files): another bench's `peers.sh stop all` must not hit ours.
export BENCH_STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/metalman-bench-$LAB_PREFIX}"
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

N="${1:-${BOOTSTORM_CLIENTS:-500}}"
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 2000 ] || lab_die "N must be 1..2000"
RUNS="${BENCH_RUNS:-1}"
MIB="${BOOTSTORM_HTTP_MIB:-64}"
RATE="${BOOTSTORM_DORA_RATE:-1000}"
TIMEOUT="${BOOTSTORM_TIMEOUT:-300}"
TFTP_CLIENT="${BOOTSTORM_TFTP_CLIENT:-window}"
WINDOWSIZE="${BOOTSTORM_WINDOWSIZE:-4}"
STORM_CLIENTS_JS="$REPO_DIR/dist/bench/bootstorm-clients.js"
case "$TFTP_CLIENT" in
  window) [ -f "$STORM_CLIENTS_JS" ] || lab_die "$STORM_CLIENTS_JS missing: npm run build" ;;
  curl) ;;
  *) lab_die "BOOTSTORM_TFTP_CLIENT must be window or curl" ;;
esac
TFTP_FILE="rand-1M.bin"
HTTP_FILE="rand-${MIB}M.bin"
command -v perfdhcp >/dev/null || lab_die "perfdhcp missing (apt-get install kea-admin)"
command -v dnsmasq >/dev/null && command -v nginx >/dev/null || lab_die "dnsmasq and nginx needed (shared/lab/install.sh)"

export LAB_RESERVATIONS="$N" LAB_DYNAMIC=0 LAB_DHCP_LOG=quiet LAB_DNSMASQ_TFTP=1 LAB_TFTP_PORT=69 LAB_HTTP_PORT=80
export LAB_TFTP_FILES=1 LAB_HTTP_FILES="$MIB"
bench_begin bootstorm
"$LAB_DIR/peers.sh" gen >/dev/null 2>&1 || lab_die "peers.sh gen failed"

# ---------------------------------------------------------------- the N clients' addresses
# Added after the DHCP phase (the machines "configure their leases") and removed before the
# next one: with the lease addresses on its interface, perfdhcp missed a fresh server's ACKs.
ADDED_IPS=0
add_client_ips() {
  for i in $(seq 0 $((N - 1))); do echo "address replace $(lab_res_ip "$i")/16 dev $LAB_CLI_IF"; done |
    ip -n "$LAB_CLIENT_NS" -batch - || lab_die "cannot add the client addresses"
  ADDED_IPS=1
}
remove_client_ips() {
  [ "$ADDED_IPS" = 1 ] || return 0
  for i in $(seq 0 $((N - 1))); do echo "address del $(lab_res_ip "$i")/16 dev $LAB_CLI_IF"; done |
    ip -n "$LAB_CLIENT_NS" -force -batch - >/dev/null 2>&1 || true
  ADDED_IPS=0
}
storm_cleanup() {
  remove_client_ips
  bench_cleanup
}
trap storm_cleanup EXIT INT TERM

# ---------------------------------------------------------------- metalman inventory and image
IMAGE="$BENCH_STATE/storm-image"
INV="$BENCH_STATE/storm-inventory"
rm -rf "$IMAGE" "$INV"; mkdir -p "$IMAGE/disk" "$INV"
for f in "$LAB_STATE/tftp/$TFTP_FILE" "$LAB_STATE/http/$HTTP_FILE"; do
  ln "$f" "$IMAGE/disk/" 2>/dev/null || cp "$f" "$IMAGE/disk/"
done
printf 'dhcpBootImageName: ipxe.efi\nbiosBootImageName: undionly.kpxe\nipxeScriptName: boot.ipxe\n' > "$IMAGE/disk/metadata.yaml"
for i in $(seq 0 $((N - 1))); do
  mm_machine "$INV/storm-$i.yaml" "storm-$i" "$(lab_res_mac "$i")" "$(lab_res_ip "$i")" "$IMAGE"
done
cat "$LAB_STATE/tftp/$TFTP_FILE" "$LAB_STATE/http/$HTTP_FILE" > /dev/null   # page cache warm
TFTP_SIZE="$(stat -c %s "$LAB_STATE/tftp/$TFTP_FILE")"
HTTP_SIZE="$(stat -c %s "$LAB_STATE/http/$HTTP_FILE")"

# ---------------------------------------------------------------- one storm
# The client side: runs inside the client netns, one background job per client, all at once.
CLIENT_SCRIPT="$BENCH_STATE/storm-clients.sh"
cat > "$CLIENT_SCRIPT" <<'EOF'
#!/usr/bin/env bash
# storm-clients.sh OUT_DIR SERVER TFTP_FILE TFTP_SIZE HTTP_FILE HTTP_SIZE TIMEOUT IP...
set -u
out="$1" srv="$2" tf="$3" ts="$4" hf="$5" hs="$6" to="$7"; shift 7
ms() { echo $(( $(date +%s%N) / 1000000 )); }
client() { # index ip
  local i="$1" ip="$2" t0 t1 t2 got
  t0="$(ms)"
  got="$(curl -sS --interface "$ip" --max-time "$to" --tftp-blksize 1468 -o /dev/null -w '%{size_download}' \
    "tftp://$srv/$tf" 2>>"$out/err.$i")" || { echo "$i fail tftp" > "$out/r.$i"; return; }
  [ "$got" = "$ts" ] || { echo "$i fail tftp-size:$got" > "$out/r.$i"; return; }
  t1="$(ms)"
  got="$(curl -sS --interface "$ip" --max-time "$to" -o /dev/null -w '%{size_download}' \
    "http://$srv:80/$hf" 2>>"$out/err.$i")" || { echo "$i fail http" > "$out/r.$i"; return; }
  [ "$got" = "$hs" ] || { echo "$i fail http-size:$got" > "$out/r.$i"; return; }
  t2="$(ms)"
  echo "$i ok $((t1 - t0)) $((t2 - t1)) $((t2 - t0))" > "$out/r.$i"
}
pids=()
i=0
for ip in "$@"; do client "$i" "$ip" & pids+=($!); i=$((i + 1)); done
for p in "${pids[@]}"; do wait "$p" || true; done
EOF
chmod +x "$CLIENT_SCRIPT"
CLIENT_IPS=()
for i in $(seq 0 $((N - 1))); do CLIENT_IPS+=("$(lab_res_ip "$i")"); done

# pct FILE COLUMN P -> nearest-rank percentile of the ok rows' column (ms), n/a without rows
pct() {
  awk -v c="$2" '$2 == "ok" { print $c }' "$1" | sort -n |
    awk -v p="$3" '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } k = int((p * NR + 99) / 100); if (k < 1) k = 1; print a[k] }'
}

# storm SERVER ROUND -> appends "server round dora_s acks drops delay clients_s total_s ok failed tftp_p50 tftp_p99
# http_p50 http_p99 client_p50 client_p99" to $RAW.rows
storm() {
  local srv="$1" round="$2" dir t1 t2 out acks drops delay dora
  dir="$BENCH_STATE/storm-$srv-$round"
  rm -rf "$dir"; mkdir -p "$dir"
  # Warm-up (both servers alike): 10 exchanges first. perfdhcp 2.2 does not count ACKs to REQUESTs
  # it sends after its last DISCOVER, so a cold server whose first OFFERs take longer than the
  # whole DISCOVER burst (metalman's first packets: ~100 ms, JIT) showed 100 % RA "drops".
  lab_nsx "$LAB_CLIENT_NS" timeout 20 perfdhcp -4 -g single -l "$CLIENT_IP" -r 100 -n 10 -R "$N" \
    -b mac=02:50:58:00:00:00 -W 500000 "$LAB_SERVER_IP" > /dev/null 2>&1 || true
  out="$(lab_nsx "$LAB_CLIENT_NS" timeout $((N / RATE + 40)) perfdhcp -4 -g single -l "$CLIENT_IP" -r "$RATE" \
    -n "$N" -R "$N" -b mac=02:50:58:00:00:00 -W 3000000 "$LAB_SERVER_IP" 2>&1 || true)"
  printf '== %s round %s: perfdhcp\n%s\n' "$srv" "$round" "$out" >> "$RAW"
  # Second "received packets" = ACKs (DO exchange first, RA second); drops of the RA exchange.
  acks="$(echo "$out" | awk '/received packets/ { r[++n] = $3 } END { print (n >= 2 ? r[2] : 0) }')"
  drops="$(echo "$out" | awk '/drops ratio/ { d[++n] = $3 } END { printf "%s/%s", (n >= 1 ? d[1] : "n/a"), (n >= 2 ? d[2] : "n/a") }')"
  delay="$(echo "$out" | awk '/avg delay/ { a[++n] = $3 } END { if (n >= 2) printf "%.1f", a[1] + a[2]; else print "n/a" }')"
  # perfdhcp only exits after its -W wait (3 s), so the DHCP
  # phase is timed from its report: last DISCOVER sent at (N-1)/rate, plus the slowest DO and RA.
  dora="$(echo "$out" | awk -v n="$N" -v r="$RATE" '/max delay/ { m[++k] = $3 }
    END { printf "%.2f", (n - 1) / r + ((k >= 1 ? m[1] : 0) + (k >= 2 ? m[2] : 0)) / 1000 }')"
  add_client_ips
  t1="$(lab_now)"
  if [ "$TFTP_CLIENT" = window ]; then
    lab_nsx "$LAB_CLIENT_NS" timeout $((2 * TIMEOUT + 30)) node "$STORM_CLIENTS_JS" "$LAB_SERVER_IP" "$TFTP_FILE" "$TFTP_SIZE" \
      "$HTTP_FILE" "$HTTP_SIZE" "$TIMEOUT" 1468 "$WINDOWSIZE" "${CLIENT_IPS[@]}" > "$dir/all" 2>>"$RAW" || true
  else
    lab_nsx "$LAB_CLIENT_NS" "$CLIENT_SCRIPT" "$dir" "$LAB_SERVER_IP" "$TFTP_FILE" "$TFTP_SIZE" "$HTTP_FILE" "$HTTP_SIZE" \
      "$TIMEOUT" "${CLIENT_IPS[@]}" || true
    cat "$dir"/r.* > "$dir/all" 2>/dev/null || : > "$dir/all"
  fi
  t2="$(lab_now)"
  remove_client_ips
  local ok failed
  ok="$(awk '$2 == "ok"' "$dir/all" | wc -l)"
  failed=$((N - ok))
  if [ "$failed" -gt 0 ]; then
    # Diagnostics only (and no `head`: its SIGPIPE under pipefail would end the bench).
    { echo "== $srv round $round: $failed failed clients"; awk '$2 != "ok" { n++; if (n <= 20) print }' "$dir/all"
      awk '$2 != "ok" { why[$3]++ } END { for (w in why) print "  " why[w] " x " w }' "$dir/all"
      cat "$dir"/err.* 2>/dev/null | sort | uniq -c | sort -rn | awk 'NR <= 10'; } >> "$RAW" || true
    lab_log "round $round $srv: $failed of $N clients failed: $(awk '$2 != "ok" { why[$3]++ } END { for (w in why) printf "%s x %s; ", why[w], w }' "$dir/all")"
  fi
  local clients_s
  clients_s="$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.2f", b-a}')"
  echo "$srv $round $dora $acks $drops $delay $clients_s $(awk -v a="$dora" -v b="$clients_s" 'BEGIN{printf "%.2f", a+b}')" \
    "$ok $failed $(pct "$dir/all" 3 50) $(pct "$dir/all" 3 99) $(pct "$dir/all" 4 50) $(pct "$dir/all" 4 99)" \
    "$(pct "$dir/all" 5 50) $(pct "$dir/all" 5 99)" \
    "$(awk '$2 == "ok" { w[$6 == "" ? "windowsize=1" : $6]++ } END { for (k in w) printf "%s%s", (n++ ? "," : ""), substr(k, 12) }' "$dir/all")" >> "$RAW.rows"
  lab_log "round $round $srv: $(tail -1 "$RAW.rows")"
  rm -rf "$dir"
}

run_peers() {
  "$LAB_DIR/peers.sh" start dnsmasq nginx >/dev/null 2>&1 || lab_die "cannot start dnsmasq + nginx"
  storm peers "$1"
  "$LAB_DIR/peers.sh" stop dnsmasq nginx >/dev/null 2>&1 || true
}
run_metalman() {
  mm_start "$INV" --serve-url "http://$LAB_SERVER_IP" --http-port 80 --tftp-port 69 --dhcp-port 67
  storm metalman "$1"
  mm_stop
}

: > "$RAW.rows"
for round in $(seq 1 "$RUNS"); do
  # Alternate who goes first, so neither always gets the warmer machine.
  if [ $((round % 2)) = 1 ]; then run_peers "$round"; run_metalman "$round"; else run_metalman "$round"; run_peers "$round"; fi
done

row "## Boot storm: $N clients, DORA at ${RATE}/s then TFTP $TFTP_FILE (client $TFTP_CLIENT, blksize 1468$( [ "$TFTP_CLIENT" = window ] && echo ", windowsize $WINDOWSIZE asked")) + HTTP $HTTP_FILE (curl) per client from its own lease IP, $RUNS round(s)"
row ""
row "| server | round | DHCP s | ACKs (of N) | drops DO/RA % | avg delay ms | clients s | total s | ok | failed | TFTP p50/p99 ms | HTTP p50/p99 ms | per client p50/p99 ms | TFTP window |"
row "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
while read -r srv round dora acks drops delay clients total ok failed tp50 tp99 hp50 hp99 cp50 cp99 win; do
  row "| $srv | $round | $dora | $acks | $drops | $delay | $clients | $total | $ok | $failed | $tp50/$tp99 | $hp50/$hp99 | $cp50/$cp99 | ${win:-n/a} |"
done < "$RAW.rows"
ours="$(awk '$1 == "metalman" { print $8 }' "$RAW.rows" | median)"
theirs="$(awk '$1 == "peers" { print $8 }' "$RAW.rows" | median)"
ours_clients="$(awk '$1 == "metalman" { print $7 }' "$RAW.rows" | median)"
theirs_clients="$(awk '$1 == "peers" { print $7 }' "$RAW.rows" | median)"
row ""
row "Wall time metalman / (dnsmasq + nginx): total $(ratio "$ours" "$theirs") (median $ours s vs $theirs s), client phase $(ratio "$ours_clients" "$theirs_clients")."
row "Failures: metalman $(awk '$1 == "metalman" { f += $10 } END { print f + 0 }' "$RAW.rows"), peers $(awk '$1 == "peers" { f += $10 } END { print f + 0 }' "$RAW.rows")."
row "DHCP s = (N-1)/rate + slowest DISCOVER-OFFER + slowest REQUEST-ACK (perfdhcp's report; its -W exit wait is not counted); ACKs as perfdhcp counts them (a retransmission's reply can make it exceed N). clients s = wall time of the TFTP+HTTP phase, all clients at once."
row "TFTP window = windowsize the server granted (1 = lock-step: dnsmasq does not implement RFC 7440). Target: <= 1.0x with 0 failures."
lab_log "done: $OUT"
