#!/usr/bin/env bash
# Compiles (cargo clippy -D warnings) every platform Clawdock claims, from Linux:
# - Windows (x86_64-pc-windows-gnu): the whole workspace, app included; the
#   resource compiler of tauri-winres needs Debian's MinGW.
# - macOS (aarch64-apple-darwin): the whole workspace too, tray app and window
#   included. Two crates compile Objective-C in their build scripts (objc2's
#   exception helper under wry, mac-notification-sys under notify-rust), which needs
#   Apple's SDK; clippy never links, so `true` stands in for the C compiler and the
#   archiver of that target alone, and their (empty) libraries are never used. A real
#   macOS build needs a Mac.
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
echo "--- macos (aarch64-apple-darwin): workspace"
CC_aarch64_apple_darwin=true AR_aarch64_apple_darwin=true \
  cargo clippy --workspace --lib --bins --locked --target aarch64-apple-darwin -- -D warnings
