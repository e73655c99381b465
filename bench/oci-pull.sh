#!/usr/bin/env bash
# bench/oci-pull.sh - pull of a large image from a local registry: metalman vs `skopeo copy` to a dir.
#
# Usage: bench/oci-pull.sh [SIZE_MIB]   (default $OCI_BENCH_MIB or 1024)
#
# One image of SIZE_MIB MiB of random data under /disk/ in $OCI_BENCH_LAYERS (4) gzip -1 layers,
# pushed by skopeo to Debian's docker-registry on 127.0.0.1:15090 (plain HTTP, loopback). Then,
# interleaved, $BENCH_RUNS (2) rounds of:
#   skopeo   = `skopeo copy docker://REF dir:OUT` (downloads and verifies every blob; no unpack)
#   metalman = serve-pxe with one Machine naming REF and an empty --cache-dir, timed from the
#              process start until /readyz is 200 (the image is cached): download, sha256
#              verification AND unpacking of /disk (skopeo does not unpack), plus Node's start
# Printed per round: seconds of each, and the pull's own duration from metalman's log
# (`image pulled` ms: first registry request to the tree in place, what a running appliance
# spends); then two ratios against skopeo's whole command: the pull's own and the wall time
# including serve-pxe's start (target <= 1.0x).
# Needs: docker-registry skopeo gzip tar node (npm run build first).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MIB="${1:-${OCI_BENCH_MIB:-1024}}"
LAYERS="${OCI_BENCH_LAYERS:-4}"
RUNS="${BENCH_RUNS:-2}"
PORT="${OCI_BENCH_PORT:-15090}"
HTTP_PORT=$((PORT + 1)); HEALTH_PORT=$((PORT + 2)); TFTP_PORT=$((PORT + 3)); DHCP_PORT=$((PORT + 4))
[[ "$MIB" =~ ^[0-9]+$ ]] && [ "$MIB" -ge 1 ] && [ "$MIB" -le 8192 ] || { echo "SIZE_MIB must be 1..8192" >&2; exit 2; }
for tool in docker-registry skopeo gzip tar node curl; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
[ -f "$ROOT/dist/server/main.js" ] || { echo "run npm run build first" >&2; exit 1; }

W="$(mktemp -d "${TMPDIR:-/tmp}/oc-bench-XXXXXX")"
REG_PID=""; SRV_PID=""
cleanup() {
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "[oci-bench] $*" >&2; }
now() { date +%s.%N; }

# ---- registry
mkdir -p "$W/reg"
cat > "$W/reg/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/reg/storage}}
http: {addr: 127.0.0.1:$PORT}
EOF
docker-registry serve "$W/reg/config.yml" > "$W/reg/log" 2>&1 & REG_PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# ---- image: LAYERS layers of MIB/LAYERS MiB random data each, under disk/
log "building a $MIB MiB image in $LAYERS layers"
lay="$W/layout"; mkdir -p "$lay/blobs/sha256"
per=$(( MIB / LAYERS )); [ "$per" -ge 1 ] || per=1
layers_json=""; diffids=""
for i in $(seq 1 "$LAYERS"); do
  mkdir -p "$W/l$i/disk"
  head -c "$((per * 1024 * 1024))" /dev/urandom > "$W/l$i/disk/part$i.bin"
  [ "$i" = 1 ] && echo "dhcpBootImageName: shimx64.efi" > "$W/l$i/disk/metadata.yaml"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$W/l$i" -cf "$W/l$i.tar" disk
  diffid="$(sha256sum "$W/l$i.tar" | cut -d' ' -f1)"
  gzip -n -1 -c "$W/l$i.tar" > "$W/l$i.tar.gz"
  rm -rf "$W/l$i" "$W/l$i.tar"
  d="$(sha256sum "$W/l$i.tar.gz" | cut -d' ' -f1)"; sz="$(stat -c %s "$W/l$i.tar.gz")"
  mv "$W/l$i.tar.gz" "$lay/blobs/sha256/$d"
  layers_json="$layers_json${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$sz}"
  diffids="$diffids${diffids:+,}\"sha256:$diffid\""
done
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffids" > "$W/config.json"
cd_="$(sha256sum "$W/config.json" | cut -d' ' -f1)"; cs="$(stat -c %s "$W/config.json")"; mv "$W/config.json" "$lay/blobs/sha256/$cd_"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd_" "$cs" "$layers_json" > "$W/manifest.json"
md="$(sha256sum "$W/manifest.json" | cut -d' ' -f1)"; ms="$(stat -c %s "$W/manifest.json")"; mv "$W/manifest.json" "$lay/blobs/sha256/$md"
printf '{"imageLayoutVersion":"1.0.0"}' > "$lay/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' "$md" "$ms" > "$lay/index.json"
REF="127.0.0.1:$PORT/bench/big:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$lay:latest" "docker://$REF"
rm -rf "$lay"
log "pushed $REF"

# ---- one round of each
run_skopeo() {
  rm -rf "$W/skopeo-out"
  local t0; t0="$(now)"
  skopeo copy --quiet --src-tls-verify=false "docker://$REF" "dir:$W/skopeo-out"
  echo "$(now) - $t0" | bc
  rm -rf "$W/skopeo-out"
}
run_metalman() {
  rm -rf "$W/mm"; mkdir -p "$W/mm/inv"
  cat > "$W/mm/inv/m.yaml" <<EOF
apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: bench-01}
spec:
  pxe:
    image: $REF
    dhcpLeases: [{mac: "02:00:00:00:00:01", ipv4: 127.0.0.1, subnetMask: 255.0.0.0, gateway: 127.0.0.254}]
EOF
  local t0 state; t0="$(now)"
  node "$ROOT/dist/server/main.js" serve-pxe --inventory "$W/mm/inv" --state-dir "$W/mm/state" --cache-dir "$W/mm/cache" \
    --image-root "$W/mm" --bind-address 127.0.0.1 --http-port "$HTTP_PORT" --tftp-port "$TFTP_PORT" --dhcp-port "$DHCP_PORT" \
    --health-port "$HEALTH_PORT" --health-bind-address 127.0.0.1 --log-level info > "$W/mm/log" 2>"$W/mm/err" & SRV_PID=$!
  # /readyz (health port) turns 200 once every image a Machine uses is cached (curl: cheap to poll).
  for _ in $(seq 1 36000); do
    curl -fs -o /dev/null "http://127.0.0.1:$HEALTH_PORT/readyz" && break
    grep -q '"image pull failed"' "$W/mm/log" 2>/dev/null && { tail -5 "$W/mm/log" >&2; exit 1; }
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$W/mm/err" >&2; exit 1; }
    sleep 0.05
  done
  local wall; wall="$(echo "$(now) - $t0" | bc)"
  kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""
  local pull_ms; pull_ms="$(grep -o '"ms":[0-9]*,"msg":"image pulled"' "$W/mm/log" | grep -o '[0-9]*' | head -1)"
  echo "$wall ${pull_ms:-0}"
  rm -rf "$W/mm"
}

sum_s=0; sum_m=0; sum_p=0
for r in $(seq 1 "$RUNS"); do
  s="$(run_skopeo)"
  read -r m pm <<< "$(run_metalman)"
  printf 'round %d: skopeo copy %.2f s   metalman %.2f s (pull itself %.2f s, includes unpack)\n' "$r" "$s" "$m" "$(echo "$pm / 1000" | bc -l)"
  sum_s="$(echo "$sum_s + $s" | bc -l)"; sum_m="$(echo "$sum_m + $m" | bc -l)"; sum_p="$(echo "$sum_p + $pm / 1000" | bc -l)"
done
printf 'OCI pull of %d MiB (%d layers), mean of %d: skopeo copy %.2f s; metalman pull %.2f s -> ratio %.2fx; metalman incl. process start %.2f s -> %.2fx (target <= 1.0x)\n' \
  "$MIB" "$LAYERS" "$RUNS" "$(echo "$sum_s / $RUNS" | bc -l)" "$(echo "$sum_p / $RUNS" | bc -l)" "$(echo "$sum_p / $sum_s" | bc -l)" \
  "$(echo "$sum_m / $RUNS" | bc -l)" "$(echo "$sum_m / $sum_s" | bc -l)"
