#!/usr/bin/env bash
# The Windows command line under Wine: cross-compiles clawdock.exe (the command line
# and `serve`, no tray app: --no-default-features) for x86_64-pc-windows-gnu and runs
# `--version`, `--help` and `status` with no instance and no Podman (exit 3, "not
# running", as documented in src-tauri/src/cli.rs). Installs Debian's wine and
# MinGW when missing. Prints each check and, last, "N passed, M failed".
#
#   tests/windows/run.sh [--release]
set -uo pipefail
cd "$(dirname "$0")/../.."
profile=debug; flags=()
if [ "${1:-}" = --release ]; then profile=release; flags=(--release); fi
passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
no() { echo "not ok - $*"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
[ -x /usr/lib/wine/wine64 ] || need+=(wine wine64)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup target add x86_64-pc-windows-gnu >/dev/null 2>&1

target=x86_64-pc-windows-gnu
if cargo build -q -p clawdock --no-default-features --bin clawdock --locked --target $target "${flags[@]}"; then
  ok "clawdock.exe cross-compiles for $target ($profile)"
else
  no "clawdock.exe cross-compiles for $target"; finish
fi
exe="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$target/$profile/clawdock.exe"
wine=/usr/lib/wine/wine64
[ -x "$wine" ] || wine=$(command -v wine)

# A Wine prefix of the test's own; no display: console programs need none.
prefix=$(mktemp -d /tmp/clawdock-wine.XXXXXX)
trap 'WINEPREFIX=$prefix wineserver -k 2>/dev/null; rm -rf "$prefix"' EXIT
export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
run() { # args... → $out, $rc
  out=$(timeout 120 "$wine" "$exe" "$@" 2>&1 | tr -d '\r'); rc=${PIPESTATUS[0]}
}
# The first start makes the prefix (wineboot); it is not a check.
timeout 300 "$wine" wineboot --init >/dev/null 2>&1
# Wine 8.0 lacks bcryptprimitives.dll (Rust's std imports its ProcessPrng; Windows 10+
# has it): without it every run ends with exit 53 before main. A stand-in for the test
# only (bcryptprimitives.c), in the prefix's system32.
if ! x86_64-w64-mingw32-gcc -shared -O2 -o "$prefix/drive_c/windows/system32/bcryptprimitives.dll" \
  tests/windows/bcryptprimitives.c -ladvapi32; then
  no "the bcryptprimitives.dll stand-in for Wine 8 builds"; finish
fi

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
run --version
if [ "$rc" = 0 ] && echo "$out" | grep -q "^clawdock $version"; then
  ok "clawdock.exe --version: $out"
else
  no "clawdock.exe --version (exit $rc): $out"
fi
run --help
if [ "$rc" = 0 ] && echo "$out" | grep -q 'serve' && echo "$out" | grep -q 'CLAWDOCK_HOME'; then
  ok "clawdock.exe --help lists the commands and the environment ($(echo "$out" | wc -l) lines)"
else
  no "clawdock.exe --help (exit $rc): $(echo "$out" | head -5)"
fi
export CLAWDOCK_PODMAN='C:\no\podman.exe'
run status
if [ "$rc" = 3 ] && echo "$out" | grep -q 'Clawdock is not running'; then
  ok "clawdock.exe status with no instance and no Podman exits 3: $out"
else
  no "clawdock.exe status: expected exit 3 and 'not running', got exit $rc: $out"
fi
run status --json
if [ "$rc" = 3 ]; then
  ok "clawdock.exe status --json exits 3 too"
else
  no "clawdock.exe status --json (exit $rc): $out"
fi
run agents list
if [ "$rc" = 3 ]; then
  ok "clawdock.exe agents list with no instance exits 3"
else
  no "clawdock.exe agents list (exit $rc): $out"
fi
# The self-update's own path on Windows, short of a feed: this build has none.
run self-update --check
if [ "$rc" = 1 ] && echo "$out" | grep -q 'no update feed'; then
  ok "clawdock.exe self-update --check says this build has no feed (exit 1)"
else
  no "clawdock.exe self-update --check (exit $rc): $out"
fi
finish
