#!/usr/bin/env bash
# bench/bmc.sh - N VM-less emulated Redfish BMCs polled and power-cycled at once (loopback).
#
# Usage: bench/bmc.sh [N]          (default $BMC_BENCH_COUNT or 200; needs npm run build, redfishtool)
#
# metalman: one process (dist/bench/bmc-storm.js) with the product's RedfishDriver per BMC:
#   round 1 reads PowerState of every BMC at once (the debounced read: two readings 200 ms apart),
#   round 2 sends ComputerSystem.Reset PowerCycle to every BMC at once.
# peer: DMTF's redfishtool doing the same calls by hand, one process per BMC and call, at most
#   BMC_BENCH_PEER_JOBS (16) at once (`Systems -I 1 get -P PowerState`, then
#   `Systems -I 1 reset PowerCycle`, Basic auth). All 200 at once mostly time out (measured).
# Printed: wall time per round, failures, peak RSS (metalman: the one process; redfishtool: the
# largest single process and the sum over the concurrent processes of a round), and the ratio
# metalman / redfishtool of the wall times (below 1.0x = faster).
# The emulator runs in its own process (metalman bmc-emulator --count N --port 0), loopback only.
# Not measured here: repave request → first DHCP DISCOVER (needs the VM e2e; see docs/bmc-ipmi.md).
set -euo pipefail
N="${1:-${BMC_BENCH_COUNT:-200}}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/metalman-bmc-bench.XXXXXX)"
KEEP="${BMC_BENCH_KEEP:-}"
PEER_JOBS="${BMC_BENCH_PEER_JOBS:-16}"
PW="bench-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"
EMU_PID=""
cleanup() { [ -n "$EMU_PID" ] && kill "$EMU_PID" 2>/dev/null || true; [ -n "$KEEP" ] || rm -rf "$WORK"; }
trap cleanup EXIT
command -v redfishtool >/dev/null || { echo "bench/bmc.sh: redfishtool not installed" >&2; exit 1; }

METALMAN_BMC_PASSWORD="$PW" node "$ROOT/dist/server/main.js" bmc-emulator --count "$N" --port 0 > "$WORK/bmcs.jsonl" &
EMU_PID=$!
for _ in $(seq 1 300); do [ "$(wc -l < "$WORK/bmcs.jsonl")" -ge "$N" ] && break; sleep 0.1; done
[ "$(wc -l < "$WORK/bmcs.jsonl")" -ge "$N" ] || { echo "emulator did not start $N BMCs" >&2; exit 1; }

echo "== metalman RedfishDriver, $N BMCs"
OURS="$(node "$ROOT/dist/bench/bmc-storm.js" admin "$PW" < "$WORK/bmcs.jsonl")"
echo "$OURS"

peer_round() { # $1 = name, rest = redfishtool args after the host
  local name="$1"; shift
  local t0 t1 i=0
  t0=$(date +%s%N)
  while read -r host; do
    i=$((i + 1))
    /usr/bin/time -f "%M" -o "$WORK/$name.$i.rss" \
      redfishtool -r "$host" -u admin -p "$PW" -S Always -A Basic -T 30 "$@" > "$WORK/$name.$i.out" 2>&1 \
      || echo fail > "$WORK/$name.$i.fail" &
    # At most $PEER_JOBS at once (a script would; 200 Python processes at once time out).
    while [ "$(jobs -rp | wc -l)" -ge "$PEER_JOBS" ]; do wait -n || true; done
  done < <(sed -n 's/.*"url":"https:\/\/\([^"]*\)".*/\1/p' "$WORK/bmcs.jsonl")
  wait
  t1=$(date +%s%N)
  local fails max sum
  fails=$(find "$WORK" -name "$name.*.fail" | wc -l)
  max=$(tail -qn1 "$WORK"/"$name".*.rss | sort -n | tail -1)
  sum=$(tail -qn1 "$WORK"/"$name".*.rss | awk '{s+=$1} END {print int(s/1024)}')
  echo "{\"round\":\"$name\",\"ms\":$(( (t1 - t0) / 1000000 )),\"failures\":$fails,\"maxRssMiB\":$((max / 1024)),\"sumRssMiB\":$sum}"
}
echo "== redfishtool by hand, $N BMCs (one process per BMC and call, $PEER_JOBS at once)"
P1="$(peer_round poll Systems -I 1 get -P PowerState)"; echo "$P1"
P2="$(peer_round cycle Systems -I 1 reset PowerCycle)"; echo "$P2"

node -e '
const [ours, p1, p2] = process.argv.slice(1).map((s) => JSON.parse(s));
const r = (a, b) => (a / b).toFixed(2) + "x";
console.log(`poll:  metalman ${ours.poll.ms} ms (${ours.poll.failures} failed) vs redfishtool ${p1.ms} ms (${p1.failures} failed): ${r(ours.poll.ms, p1.ms)}`);
console.log(`cycle: metalman ${ours.cycle.ms} ms (${ours.cycle.failures} failed) vs redfishtool ${p2.ms} ms (${p2.failures} failed): ${r(ours.cycle.ms, p2.ms)}`);
console.log(`peak RSS: metalman ${ours.peakRssMiB} MiB (one process, ${ours.bmcs} BMCs) vs redfishtool ${p1.maxRssMiB} MiB per process, ${Math.max(p1.sumRssMiB, p2.sumRssMiB)} MiB summed`);
' "$OURS" "$P1" "$P2"
