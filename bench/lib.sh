# bench/lib.sh - shared part of bench/{dhcp,tftp,http}.sh. Sourced, never run.
#
# Builds on the PXE lab (shared/lab: common.sh, netns.sh, peers.sh, clients.sh, bench.sh):
# the same veth topology, reservations, test files, perfdhcp/TFTP/HTTP commands and ladder.
# Our own namespaces and state so a bench never touches another user's lab:
#   LAB_PREFIX   default mmb  (namespaces mmb-srv / mmb-cli)
#   LAB_STATE    default ${TMPDIR:-/tmp}/metalman-bench/lab
#   BENCH_STATE  default ${TMPDIR:-/tmp}/metalman-bench   (inventories, images, logs, results)
#   BENCH_RUNS   rounds; every round measures every server once, interleaved (default 3)
#   BENCH_CPU_PROF=1  run metalman with node --cpu-prof (profiles in $BENCH_STATE/prof)
#   METALMAN_SHARED   shared/ folder (default <repo>/../shared)
# Metalman runs from <repo>/dist/server/main.js (build first: npx tsc -p tsconfig.json).

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
SHARED_DIR="${METALMAN_SHARED:-$REPO_DIR/../shared}"
LAB_DIR="$SHARED_DIR/lab"
[ -f "$LAB_DIR/common.sh" ] || { echo "bench: $LAB_DIR/common.sh not found (set METALMAN_SHARED)" >&2; exit 1; }
export LAB_PREFIX="${LAB_PREFIX:-mmb}"
BENCH_STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/metalman-bench}"
export LAB_STATE="${LAB_STATE:-$BENCH_STATE/lab}"
# shellcheck source=/dev/null
. "$LAB_DIR/common.sh"
export LAB_SERVER_NS LAB_CLIENT_NS LAB_STATE

RUNS="${BENCH_RUNS:-3}"
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 20 ] || lab_die "BENCH_RUNS must be 1..20"
CLIENT_IP="$(lab_client_ip 1)"
MM_MAIN="$REPO_DIR/dist/server/main.js"
MM_PID=""
MM_LOG=""
MM_HEALTH_PORT="${MM_HEALTH_PORT:-8081}"
CREATED_TOPO=0
mkdir -p "$BENCH_STATE/results" "$LAB_STATE"

# Import a function verbatim from the lab's bench.sh (it runs on load, so it cannot be
# sourced): the perfdhcp invocation, median and TFTP measurement stay the lab's own.
lab_fn() {
  local body
  body="$(awk -v f="$1() {" 'index($0, f) == 1 { on = 1; print; if ($0 ~ /; }$/) exit; next }
    on { print; if ($0 ~ /^}/) exit }' "$LAB_DIR/bench.sh")"
  [ -n "$body" ] || lab_die "function $1 not found in $LAB_DIR/bench.sh"
  eval "$body"
}
lab_fn median

bench_begin() { # what -> sets OUT, RAW; topology up; cleanup trap
  lab_need_root
  [ -f "$MM_MAIN" ] || lab_die "$MM_MAIN missing: cd $REPO_DIR && npx tsc -p tsconfig.json"
  OUT="${BENCH_OUT:-$BENCH_STATE/results/$1-$(date +%Y%m%d-%H%M%S).md}"
  RAW="${OUT%.md}.raw.txt"
  : > "$RAW"
  { echo "# metalman bench $1 $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, kernel $(uname -r), node $(node --version)"; echo; } > "$OUT"
  trap bench_cleanup EXIT INT TERM
  if ! lab_ns_exists "$LAB_SERVER_NS" || ! lab_ns_exists "$LAB_CLIENT_NS"; then
    LAB_CLIENT_STATIC=1 "$LAB_DIR/netns.sh" up veth >/dev/null; CREATED_TOPO=1
  fi
  "$LAB_DIR/peers.sh" stop all >/dev/null 2>&1 || true
  lab_log "results -> $OUT (raw: $RAW)"
}

bench_cleanup() {
  mm_stop
  "$LAB_DIR/peers.sh" stop all >/dev/null 2>&1 || true
  if [ "$CREATED_TOPO" = 1 ]; then "$LAB_DIR/netns.sh" down >/dev/null 2>&1 || true; fi
}

row() { echo "$*" | tee -a "$OUT"; }

# ratio OURS PEER -> "1.23x" (n/a when either is missing or zero)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || a=="n/a" || b=="n/a" || b+0==0) print "n/a"; else printf "%.2fx\n", a/b }'; }

# ---------------------------------------------------------------- metalman inventory/image

# mm_machine FILE NAME MAC IPV4 IMAGE_DIR: one Machine YAML (lab /16, server as gateway)
mm_machine() {
  cat > "$1" <<EOF
apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: $2
spec:
  pxe:
    image: "dir:$5"
    dhcpLeases:
      - mac: "$3"
        ipv4: "$4"
        subnetMask: "$LAB_NETMASK"
        gateway: "$LAB_SERVER_IP"
EOF
}

# mm_image DIR SRC_ROOT: image folder whose disk/ holds SRC_ROOT's files (hard links when
# possible, so the 512 MiB test file is not copied) plus metadata.yaml with the lab's boot files
mm_image() {
  local dir="$1" src="$2" f
  rm -rf "$dir/disk"; mkdir -p "$dir/disk"
  for f in "$src"/*; do
    [ -f "$f" ] || continue
    ln "$f" "$dir/disk/" 2>/dev/null || cp "$f" "$dir/disk/"
  done
  printf 'dhcpBootImageName: ipxe.efi\nbiosBootImageName: undionly.kpxe\nipxeScriptName: boot.ipxe\n' > "$dir/disk/metadata.yaml"
}

# mm_client_inventory DIR IMAGE_DIR: one Machine for the bench client (identity = source IP)
mm_client_inventory() {
  rm -rf "$1"; mkdir -p "$1"
  mm_machine "$1/bench-client.yaml" bench-client "02:50:58:ff:ff:01" "$CLIENT_IP" "$2"
}

# ---------------------------------------------------------------- metalman process

# mm_start INVENTORY EXTRA_ARGS...: metalman serve-pxe in the server netns, waits for /healthz
mm_start() {
  local inv="$1" i node_args=()
  shift
  mm_stop
  mkdir -p "$BENCH_STATE/mm-state" "$BENCH_STATE/mm-cache"
  MM_LOG="$BENCH_STATE/metalman-$(date +%H%M%S).log"
  if [ "${BENCH_CPU_PROF:-0}" = 1 ]; then
    mkdir -p "$BENCH_STATE/prof"; node_args=(--cpu-prof --cpu-prof-dir "$BENCH_STATE/prof")
  fi
  # a simple command in the background: ip execs node, so $! is metalman itself
  ip netns exec "$LAB_SERVER_NS" node "${node_args[@]}" "$MM_MAIN" serve-pxe --inventory "$inv" \
    --state-dir "$BENCH_STATE/mm-state" --cache-dir "$BENCH_STATE/mm-cache" --image-root "$BENCH_STATE" \
    --bind-address "$LAB_SERVER_IP" --health-port "$MM_HEALTH_PORT" --log-level "${MM_LOG_LEVEL:-warn}" "$@" \
    > "$MM_LOG" 2>&1 &
  MM_PID=$!
  for i in $(seq 1 600); do
    kill -0 "$MM_PID" 2>/dev/null || { tail -20 "$MM_LOG" >&2; MM_PID=""; lab_die "metalman exited at start (log $MM_LOG)"; }
    if lab_nsx "$LAB_SERVER_NS" curl -sf -m 1 -o /dev/null "http://$LAB_SERVER_IP:$MM_HEALTH_PORT/healthz"; then
      lab_log "metalman started, pid $MM_PID ($LAB_SERVER_NS; log $MM_LOG)"; return 0
    fi
    sleep 0.1
  done
  tail -20 "$MM_LOG" >&2; lab_die "metalman not healthy after 60 s"
}

mm_stop() {
  [ -n "$MM_PID" ] || return 0
  lab_kill_pid "$MM_PID"
  MM_PID=""
}

# mm_cpu KEY: user+system CPU seconds used by metalman so far (from /proc), for the report
mm_cpu() {
  [ -n "$MM_PID" ] && [ -r "/proc/$MM_PID/stat" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$MM_PID/stat"
}
