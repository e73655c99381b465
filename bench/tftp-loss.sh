#!/usr/bin/env bash
# bench/tftp-loss.sh - metalman vs atftpd under random packet loss (RFC 7440 windows), root only.
#
# Usage: bench/tftp-loss.sh
#
# One download of rand-8M.bin (blksize 1468) per point, with BENCH_TFTP_LOSS percent of the
# datagrams dropped in both directions of the lab veth (tc netem, or iptables' statistic match
# on kernels without sch_netem), at windowsize 4 (EDK2's default), 8 and 16, by two clients:
#   edk2   test/lab/tftp-client-cli.js --edk2: answers like EDK2's Mtftp4RrqHandleData
#   atftp  atftp --option "windowsize N" (it deadlocks when its one "extra ACK" is lost, so at
#          high loss some of its runs fail against either server: they print as "fail")
# atftpd (:1069) and metalman (:2069) run at once and are measured interleaved; wall time per
# transfer (sha256 checked), median over rounds; the ratio is atftpd time / metalman time
# (> 1 = metalman faster). Interleaving keeps both servers under the same CPU load.
#
# Env (plus bench/lib.sh's): BENCH_TFTP_LOSS (percent list, default "1 5"),
#   BENCH_TFTP_WINDOWS (default "4 8 16"), BENCH_TFTP_CLIENTS (default "edk2 atftp"),
#   BENCH_RUNS (rounds, default 3)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

FILE=rand-8M.bin
LOSSES="${BENCH_TFTP_LOSS:-1 5}"
WINDOWS="${BENCH_TFTP_WINDOWS:-4 8 16}"
CLIENTS="${BENCH_TFTP_CLIENTS:-edk2 atftp}"
CLI="$REPO_DIR/dist/test/lab/tftp-client-cli.js"
[ -f "$CLI" ] || lab_die "$CLI missing: npx tsc -p tsconfig.json"
declare -A PORT=([atftpd]=1069 [metalman]=2069)

bench_begin tftp-loss
export LAB_TFTP_FILES="8" LAB_HTTP_FILES=1
LAB_TFTP_PORT=1069 "$LAB_DIR/peers.sh" start atftpd >/dev/null 2>&1 || lab_die "cannot start atftpd"
mm_image "$BENCH_STATE/tftp-loss-image" "$LAB_STATE/tftp"
mm_client_inventory "$BENCH_STATE/tftp-loss-inventory" "$BENCH_STATE/tftp-loss-image"
mm_start "$BENCH_STATE/tftp-loss-inventory" --serve-url "http://$LAB_SERVER_IP:8080" --http-port 8080 \
  --tftp-port "${PORT[metalman]}" --dhcp-port 1067
WANT_SHA="$(sha256sum "$LAB_STATE/tftp/$FILE" | cut -d' ' -f1)"

NETEM=0
if lab_nsx "$LAB_SERVER_NS" tc qdisc add dev srv0 root netem loss 0% 2>/dev/null; then
  NETEM=1; lab_nsx "$LAB_SERVER_NS" tc qdisc del dev srv0 root
fi
set_loss() { # PERCENT: both ends of the veth
  local ns dev
  for pair in "$LAB_SERVER_NS srv0" "$LAB_CLIENT_NS cli0"; do
    read -r ns dev <<< "$pair"
    if [ "$NETEM" = 1 ]; then
      lab_nsx "$ns" tc qdisc del dev "$dev" root 2>/dev/null || true
      [ "$1" = 0 ] || lab_nsx "$ns" tc qdisc add dev "$dev" root netem loss "$1%"
    else
      lab_nsx "$ns" iptables-legacy -F INPUT
      [ "$1" = 0 ] || lab_nsx "$ns" iptables-legacy -A INPUT -i "$dev" -p udp -m statistic --mode random \
        --probability "$(awk -v p="$1" 'BEGIN{printf "%.4f", p/100}')" -j DROP
    fi
  done
}
clear_loss() { set_loss 0 || true; }
trap 'clear_loss; bench_cleanup' EXIT INT TERM

# point SERVER CLIENT WINDOWSIZE -> seconds (empty on failure or a bad copy)
point() {
  local port="${PORT[$1]}" out="$BENCH_STATE/loss.out" t0 t1 sha=""
  rm -f "$out"
  t0="$(date +%s.%N)"
  if [ "$2" = edk2 ]; then
    sha="$(lab_nsx "$LAB_CLIENT_NS" timeout 90 node "$CLI" --host "$LAB_SERVER_IP" --port "$port" --file "$FILE" \
      --blksize 1468 --windowsize "$3" --tsize --edk2 --strict-source --timeout-ms 1000 --deadline-ms 85000 2>>"$RAW" \
      | tee -a "$RAW" | sed -n 's/.*"outcome":"ok".*"sha256":"\([0-9a-f]*\)".*/\1/p')" || true
  else
    lab_nsx "$LAB_CLIENT_NS" timeout 90 atftp --get -r "$FILE" -l "$out" --tftp-timeout 1 \
      --option "blksize 1468" --option "windowsize $3" "$LAB_SERVER_IP" "$port" >>"$RAW" 2>&1 || true
    [ -f "$out" ] && sha="$(sha256sum "$out" | cut -d' ' -f1)"
  fi
  t1="$(date +%s.%N)"
  [ "$sha" = "$WANT_SHA" ] && awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f\n", b-a}'
  rm -f "$out"
}

declare -A VALS
for round in $(seq 1 "$RUNS"); do
  for loss in $LOSSES; do
    set_loss "$loss"
    for ws in $WINDOWS; do
      for client in $CLIENTS; do
        for srv in atftpd metalman; do
          v="$(point "$srv" "$client" "$ws")"
          VALS["$loss|$ws|$client|$srv"]="${VALS["$loss|$ws|$client|$srv"]:-} ${v:-fail}"
          lab_log "round $round/$RUNS: loss $loss% ws $ws $client -> $srv: ${v:-FAILED} s"
        done
      done
    done
  done
done
clear_loss

row "## TFTP under loss: one download of $FILE (blksize 1468), $LAB_CLIENT_NS -> $LAB_SERVER_IP, $RUNS interleaved rounds, loss by $([ "$NETEM" = 1 ] && echo "tc netem" || echo "iptables statistic (no sch_netem)") in both directions"
row ""
row "| loss | windowsize | client | atftpd s (median) | metalman s (median) | per round atftpd / metalman | atftpd / metalman time |"
row "|---|---|---|---|---|---|---|"
for loss in $LOSSES; do
  for ws in $WINDOWS; do
    for client in $CLIENTS; do
      a="$(echo "${VALS["$loss|$ws|$client|atftpd"]}" | tr ' ' '\n' | { grep -v fail || true; } | median || true)"
      m="$(echo "${VALS["$loss|$ws|$client|metalman"]}" | tr ' ' '\n' | { grep -v fail || true; } | median || true)"
      row "| $loss % | $ws | $client | ${a:-n/a} | ${m:-n/a} | ${VALS["$loss|$ws|$client|atftpd"]# } / ${VALS["$loss|$ws|$client|metalman"]# } | $(ratio "$a" "$m") |"
    done
  done
done
row ""
row "Target: metalman no slower than atftpd at the same loss (ratio >= 1.0x); failed runs are excluded from the medians."
lab_log "done: $OUT"
