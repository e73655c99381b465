#!/usr/bin/env bash
# bench/tftp.sh - metalman TFTP vs tftpd-hpa and atftpd, one 32 MiB download (root only).
#
# Usage: bench/tftp.sh
#
# Data points (client in the lab client netns, sha256 of every copy verified by clients.sh):
#   lock-step, 512-byte blocks: tftp-hpa client (sends no options) vs tftpd-hpa and metalman
#   RFC 7440 windowsize 16 and 64, blksize 1468: atftp client vs atftpd and metalman
#   (plus atftp blksize 1468 lock-step vs tftpd-hpa, atftpd and metalman, for reference)
# All three servers run at once on different ports of $LAB_SERVER_IP (tftpd-hpa :69,
# atftpd :1069, metalman :2069) and are measured interleaved, one transfer at a time.
# metalman serves the lab's TFTP root as the image of a Machine whose lease IP is the
# client's address (identity by source IP), with --log-level warn.
#
# Env (plus bench/lib.sh's): BENCH_TFTP_FILE (rand-32M.bin)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

FILE="${BENCH_TFTP_FILE:-rand-32M.bin}"
lab_fn tftp_point
declare -A PORT=([tftpd-hpa]=69 [atftpd]=1069 [metalman]=2069)

bench_begin tftp
export LAB_TFTP_FILES="1 32" LAB_HTTP_FILES=1
LAB_TFTP_PORT=69 "$LAB_DIR/peers.sh" start tftpd-hpa >/dev/null 2>&1 || lab_die "cannot start tftpd-hpa"
LAB_TFTP_PORT=1069 "$LAB_DIR/peers.sh" start atftpd >/dev/null 2>&1 || lab_die "cannot start atftpd"
mm_image "$BENCH_STATE/tftp-image" "$LAB_STATE/tftp"
mm_client_inventory "$BENCH_STATE/tftp-inventory" "$BENCH_STATE/tftp-image"
mm_start "$BENCH_STATE/tftp-inventory" --serve-url "http://$LAB_SERVER_IP:8080" --http-port 8080 \
  --tftp-port "${PORT[metalman]}" --dhcp-port 1067

# point SERVER CLIENT BLKSIZE WINDOWSIZE -> one MB/s value (empty on failure)
point() {
  local bs="$3"; [ "$2" = tftp-hpa ] && bs=""
  RUNS=1 LAB_TFTP_PORT="${PORT[$1]}" tftp_point "$2" "$FILE" 1 "$bs" "$4" | awk '{print ($1 == "n/a" ? "" : $1)}'
}

# label|client|blksize|windowsize|servers (the first is the peer metalman is compared with)
SPECS=(
  "lock-step 512|tftp-hpa|512||tftpd-hpa metalman"
  "lock-step 1468|atftp|1468||tftpd-hpa atftpd metalman"
  "windowsize 16|atftp|1468|16|atftpd metalman"
  "windowsize 64|atftp|1468|64|atftpd metalman"
)
declare -A VALS
for round in $(seq 1 "$RUNS"); do
  for spec in "${SPECS[@]}"; do
    IFS='|' read -r label client bs ws servers <<< "$spec"
    for srv in $servers; do
      v="$(point "$srv" "$client" "$bs" "$ws")"
      VALS["$label|$srv"]="${VALS["$label|$srv"]:-} ${v:-fail}"
      lab_log "round $round/$RUNS: $label $client -> $srv: ${v:-FAILED} MB/s"
    done
  done
done

row "## TFTP: one download of $FILE, $LAB_CLIENT_NS -> $LAB_SERVER_IP, $RUNS interleaved rounds, MB/s = 10^6 B/s, sha256 verified"
row ""
row "| transfer | client | server | MB/s (median) | per round | metalman / server |"
row "|---|---|---|---|---|---|"
for spec in "${SPECS[@]}"; do
  IFS='|' read -r label client bs ws servers <<< "$spec"
  ours="$(echo "${VALS["$label|metalman"]}" | tr ' ' '\n' | grep -v fail | median)"
  for srv in $servers; do
    m="$(echo "${VALS["$label|$srv"]}" | tr ' ' '\n' | grep -v fail | median)"
    row "| $label (blksize ${bs}${ws:+, windowsize $ws}) | $client | $srv | $m | ${VALS["$label|$srv"]# } | $( [ "$srv" = metalman ] && echo - || ratio "$ours" "$m") |"
  done
done
row ""
row "Targets: metalman >= 1.0x atftpd at equal windowsize; >= 1.0x tftpd-hpa lock-step."
lab_log "done: $OUT"
