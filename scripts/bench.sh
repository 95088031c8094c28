#!/usr/bin/env bash
# Runs the Clawdock benchmarks (bench/run.py) against the release binary and real Podman.
#
#   scripts/bench.sh [--no-build] [bench/run.py options: --only NAME --idle S --markdown FILE]
#
# Builds target/release/clawdock when it is missing or older than the sources (skip with
# --no-build), builds the stand-in gateway images (idempotent, about 0.1 s when they
# exist), then runs every benchmark (about 5 minutes on 2 cores). Needs podman, Xvfb,
# dbus-daemon and gdbus (the desktop app's benchmarks), python3 (stdlib only), and
# GNU time for the command line's peak memory (Debian package `time`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=1
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,10p' "$0"; python3 bench/run.py --help; exit 0 ;;
    *) ARGS+=("$arg") ;;
  esac
done

BIN=target/release/clawdock
if [ "$BUILD" = 1 ]; then
  if [ ! -x "$BIN" ] || [ -n "$(find Cargo.toml Cargo.lock tauri.conf.json src-tauri ui icons \
        -newer "$BIN" -type f -print -quit 2>/dev/null)" ]; then
    echo "building $BIN (cargo build --release -p clawdock)..."
    cargo build --release -p clawdock
  fi
fi
[ -x "$BIN" ] || { echo "error: $BIN is missing (run without --no-build)" >&2; exit 2; }
# The desktop benchmarks' stand-in tray host (a few seconds once the build exists).
cargo build --release -p clawdock --example tray_host

tests/images/build-test-images.sh

PY=python3
command -v python3 >/dev/null || PY=python3.11
exec "$PY" bench/run.py "${ARGS[@]}"
