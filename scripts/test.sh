#!/usr/bin/env bash
# test.sh - run a test suite with Node's test runner on the compiled tests.
#
# Usage: scripts/test.sh [all|unit|lab|vm|SUITE]   (default: all; SUITE is a folder under test/)
# unit: pure and loopback tests. lab: real clients/peers in network namespaces (root).
# vm: qemu PXE boots of real firmware (root, ~2 min). Lab and VM tests skip when not
# root or tools are missing, except under CI=true where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${1:-all}"
case "$suite" in
  # every suite folder under dist/test (unit, lab, vm, and those later issues add), unit first
  all) dirs="dist/test/unit $(find dist/test -mindepth 1 -maxdepth 1 -type d ! -name unit ! -name support ! -name fixtures 2>/dev/null | sort | tr '\n' ' ')" ;;
  unit|lab|vm|*) [ -d "dist/test/$suite" ] && dirs="dist/test/$suite" || { sed -n '2,8p' "$0"; exit 2; } ;;
esac
files=()
for d in $dirs; do
  [ -d "$d" ] || continue
  while IFS= read -r f; do files+=("$f"); done < <(find "$d" -name '*.test.js' | sort)
done
[ "${#files[@]}" -gt 0 ] || { echo "test.sh: no test files under $dirs (run npm run build first)" >&2; exit 1; }
# One file at a time: lab tests share namespaces/ports and the box has 2 cores.
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
