#!/usr/bin/env bash
# Compiles (cargo clippy -D warnings) every platform Clawdock claims, from Linux:
# - Windows (x86_64-pc-windows-gnu): the whole workspace, app included; the
#   resource compiler of tauri-winres needs Debian's MinGW.
# - macOS (aarch64-apple-darwin): the core, the command line and `serve`
#   (`--no-default-features` leaves out the tray app). The app itself cannot be
#   checked without Apple's SDK: objc2's exception helper compiles Objective-C.
# Tests are left out on both: they drive real Podman on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gcc-mingw-w64-x86-64
fi
rustup target add x86_64-pc-windows-gnu aarch64-apple-darwin >/dev/null

echo "--- windows (x86_64-pc-windows-gnu): workspace"
cargo clippy --workspace --lib --bins --locked --target x86_64-pc-windows-gnu -- -D warnings
echo "--- macos (aarch64-apple-darwin): core, command line, serve"
cargo clippy -p clawdock-core -p clawdock --no-default-features --lib --bins --locked \
  --target aarch64-apple-darwin -- -D warnings
