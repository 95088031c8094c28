#!/usr/bin/env bash
# The README's run command: installs what building and running needs (Debian/Ubuntu),
# then builds and starts the tray app. Arguments go to clawdock (e.g. `serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
CLAWDOCK_SKIP_TEST_PKGS=1 ./scripts/install-deps.sh
# All three programs: `clawdock` (command line, serve), `clawdock-app` (the tray app
# it becomes with no arguments) and `clawdock-window` (the window, which the tray app
# starts when it is opened); `cargo run` would build only the first.
cargo build --release --locked -p clawdock --bins
exec "${CARGO_TARGET_DIR:-target}/release/clawdock" "$@"
