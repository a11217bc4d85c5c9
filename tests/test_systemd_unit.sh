#!/usr/bin/env bash
# test_systemd_unit.sh BUILD_DIR — conf/phifs@.service passes
# `systemd-analyze verify`, with the daemon's path pointed at the build.
# Exits 77 (ctest: skipped) where systemd-analyze is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/phifs|$1/phifs|" "$here/conf/phifs@.service" \
  > "$tmp/phifs@test.service"
grep -q '^Type=notify$' "$tmp/phifs@test.service"
grep -q '^WatchdogSec=' "$tmp/phifs@test.service"
if ! out=$(systemd-analyze verify --man=no "$tmp/phifs@test.service" 2>&1); then
  echo "$out"
  echo "systemd_unit: 0 passed, 1 failed"
  exit 1
fi
# verify also reports problems it does not fail on.
if grep -i 'phifs@test' <<<"$out"; then
  echo "systemd_unit: 0 passed, 1 failed"
  exit 1
fi
echo "systemd_unit: 1 passed, 0 failed"
