#!/usr/bin/env bash
# The README's run command: installs what building and running needs (Debian/Ubuntu),
# then builds and starts the tray app. Arguments go to clawdock (e.g. `serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
CLAWDOCK_SKIP_TEST_PKGS=1 ./scripts/install-deps.sh
exec cargo run --release --locked -p clawdock -- "$@"
