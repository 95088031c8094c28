#!/usr/bin/env bash
# The package test: installs the .deb that scripts/package.sh built on a clean
# Debian 12 root (mmdebstrap) with `apt-get install ./Clawdock_*.deb` resolving its
# dependencies, then checks, from the installed files only: `clawdock --version`,
# `clawdock serve` answering /agents/runtime-status (no Podman in the root), the tray app
# showing its menu over D-Bus under Xvfb and quitting with 0, the desktop entry, the
# icons, the autostart entry naming /usr/bin/clawdock-app, and that `apt-get remove`
# leaves no file of the package while the user's data folder stays.
#
#   tests/package/run.sh [path/to/Clawdock_X_amd64.deb]
#
# Needs root (chroot, mounts). The base root is cached as a tarball in
# $CLAWDOCK_TEST_CACHE (default /var/cache/clawdock-test, rebuilt after 7 days),
# and so are the .debs apt downloads into it. Prints each check and, last,
# "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${CLAWDOCK_TEST_CACHE:-/var/cache/clawdock-test}
deb=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/release/bundle/deb/[Cc]lawdock_*.deb 2>/dev/null | head -1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "no .deb: run ./scripts/package.sh first"; echo "0 passed, 1 failed"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "tests/package/run.sh needs root (chroot)"; echo "0 passed, 1 failed"; exit 1; }
started=$(date +%s)

# shellcheck source=tests/package/lib.sh
. tests/package/lib.sh
cp "$deb" "$root/tmp/"
cp tests/package/inside.sh "$root/tmp/inside.sh"

echo "--- root ready ($(( $(date +%s) - started ))s); package $(basename "$deb")"
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  bash /tmp/inside.sh "/tmp/$(basename "$deb")" 2>&1 | tee "$root/tmp/outside.log"
set -e
passed=$(grep -c '^ok ' "$root/tmp/outside.log" || true)
failed=$(grep -c '^not ok ' "$root/tmp/outside.log" || true)
finished=$(grep -c '^=== inside done' "$root/tmp/outside.log" || true)
if [ "$finished" = 0 ]; then echo "not ok - the checks inside the root ran to their end"; failed=$((failed + 1)); fi
echo "--- $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
