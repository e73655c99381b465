#!/usr/bin/env bash
# make-update.sh ROOT VERSION OUT.update.tar [--workdir DIR] [--break]
#
# The update bundle `metalman-upgrade` writes into the inactive root slot: root.ext4 (the root tree
# as a read-only ext4 filesystem of the slot's size), vmlinuz, initrd.img and bundle.env (version,
# sha256s). build.sh makes one with every image; run it on a kept root tree (build.sh --keep-rootfs)
# to re-stamp another version without a new Debian base. --break makes a version whose metalman
# exits at once (a build that does not come up: the rollback test).
set -euo pipefail
root="$1" version="$2" bundle="$3"
shift 3
workdir="" broken=0
while [ $# -gt 0 ]; do
  case "$1" in
    --workdir) workdir="$2"; shift 2 ;;
    --break) broken=1; shift ;;
    *) echo "make-update.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=build/appliance/lib.sh
. "$here/lib.sh"
. "$here/layout.sh"
if [ -z "$workdir" ]; then
  workdir="$(mktemp -d "${TMPDIR:-/tmp}/metalman-update.XXXXXX")"
  trap 'rm -rf "$workdir"' EXIT
fi
kernel="$(basename "$(ls -d "$root"/lib/modules/* | head -1)")"
used_mib=$(($(du -sxm "$root" | cut -f1)))
[ "$used_mib" -lt $((ROOT_MIB * 85 / 100)) ] ||
  die "root tree is $used_mib MiB: more than 85 % of a $ROOT_MIB MiB slot (raise ROOT_MIB in layout.sh)"
sed -i "s/^VERSION=.*/VERSION=$version/" "$root/etc/metalman-release"
printf 'metalman appliance %s\n' "$version" >"$root/etc/issue.net"
main="$root/usr/lib/metalman/app/dist/server/main.js"
if [ "$broken" = 1 ]; then
  [ -f "$main.orig" ] || cp -p "$main" "$main.orig"
  printf '#!/usr/bin/env node\nconsole.error("metalman: deliberately broken build (make-update.sh --break)");\nprocess.exit(1);\n' >"$main"
elif [ -f "$main.orig" ]; then
  mv "$main.orig" "$main"
fi
step "root filesystem $version ($used_mib MiB in a $ROOT_MIB MiB slot)"
cp "$root/boot/vmlinuz-$kernel" "$workdir/vmlinuz"
cp "$root/boot/initrd.img-$kernel" "$workdir/initrd.img"
# The root is mounted read-only: no journal. mkfs.ext4 -d copies the tree with owners and modes.
mkfs.ext4 -q -F -L mm-root -O ^has_journal -m 0 -d "$root" "$workdir/root.ext4" "${ROOT_MIB}M"
e2fsck -fn "$workdir/root.ext4" >/dev/null || die "fsck of the root filesystem failed"
{
  printf 'VERSION=%s\nKERNEL=%s\n' "$version" "$kernel"
  printf 'SHA256_root=%s\n' "$(sha256sum "$workdir/root.ext4" | cut -d' ' -f1)"
  printf 'SHA256_vmlinuz=%s\n' "$(sha256sum "$workdir/vmlinuz" | cut -d' ' -f1)"
  printf 'SHA256_initrd=%s\n' "$(sha256sum "$workdir/initrd.img" | cut -d' ' -f1)"
} >"$workdir/bundle.env"
tar -C "$workdir" --sparse -cf "$bundle" bundle.env root.ext4 vmlinuz initrd.img
step "update bundle $bundle"
