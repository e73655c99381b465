#!/usr/bin/env bash
# bench/http.sh - metalman HTTP vs nginx (sendfile), N concurrent curl downloads (root only).
#
# Usage: bench/http.sh
#
# N parallel `curl -o /dev/null` of one random file (size checked) from the lab client
# netns, total MB/s until the last one ends (shared/lab/clients.sh http). nginx
# (peers.sh, sendfile on) listens on $LAB_SERVER_IP:80 and metalman on :8080 at the same
# time; the two are measured interleaved. metalman serves the lab's HTTP root as the image
# of a Machine whose lease IP is the client's address, with --log-level warn.
#
# Env (plus bench/lib.sh's): BENCH_HTTP_MIB (512), BENCH_HTTP_CLIENTS ("8 32")
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

MIB="${BENCH_HTTP_MIB:-512}"
CLIENTS="${BENCH_HTTP_CLIENTS:-8 32}"
FILE="rand-${MIB}M.bin"
declare -A PORT=([nginx]=80 [metalman]=8080)

bench_begin http
export LAB_TFTP_FILES=1 LAB_HTTP_FILES="1 $MIB"
LAB_HTTP_PORT=80 "$LAB_DIR/peers.sh" start nginx >/dev/null 2>&1 || lab_die "cannot start nginx"
mm_image "$BENCH_STATE/http-image" "$LAB_STATE/http"
mm_client_inventory "$BENCH_STATE/http-inventory" "$BENCH_STATE/http-image"
mm_start "$BENCH_STATE/http-inventory" --serve-url "http://$LAB_SERVER_IP:${PORT[metalman]}" \
  --http-port "${PORT[metalman]}" --tftp-port 1069 --dhcp-port 1067
cat "$LAB_STATE/http/$FILE" > /dev/null   # page cache warm

point() { # server n -> MB/s (empty on failure or a short download)
  local line
  line="$(LAB_VERIFY=0 LAB_TIMEOUT=300 LAB_HTTP_PORT="${PORT[$1]}" "$LAB_DIR/clients.sh" http "$FILE" "$2" 2>>"$RAW" | grep '^RESULT' || true)"
  echo "$1 $line" >> "$RAW"
  echo "$line" | sed -n 's/.*MBps=\([0-9.]*\).*size_bad=0 failed=0$/\1/p'
}

declare -A VALS
for round in $(seq 1 "$RUNS"); do
  for n in $CLIENTS; do
    for srv in nginx metalman; do
      v="$(point "$srv" "$n")"
      VALS["$n|$srv"]="${VALS["$n|$srv"]:-} ${v:-fail}"
      lab_log "round $round/$RUNS: $n x curl -> $srv: ${v:-FAILED} MB/s"
    done
  done
done

row "## HTTP: N concurrent curl of $FILE ($MIB MiB), $LAB_CLIENT_NS -> $LAB_SERVER_IP, $RUNS interleaved rounds, MB/s = 10^6 B/s"
row ""
row "| clients | server | total MB/s (median) | per round | metalman / nginx |"
row "|---|---|---|---|---|"
for n in $CLIENTS; do
  ours="$(echo "${VALS["$n|metalman"]}" | tr ' ' '\n' | grep -v fail | median)"
  theirs="$(echo "${VALS["$n|nginx"]}" | tr ' ' '\n' | grep -v fail | median)"
  row "| $n | nginx | $theirs | ${VALS["$n|nginx"]# } | |"
  row "| $n | metalman | $ours | ${VALS["$n|metalman"]# } | $(ratio "$ours" "$theirs") |"
done
row ""
row "Target: metalman >= 0.8x nginx."
lab_log "done: $OUT"
