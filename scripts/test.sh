#!/usr/bin/env bash
# The test command of the README: installs what the tests need (Debian/Ubuntu),
# builds the local test images, then runs every test suite against real Podman.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
tests/images/build-test-images.sh
if [ "${CLAWDOCK_SKIP_GATEWAY:-0}" != 1 ]; then
  tests/images/build-openclaw-image.sh
fi

# The UI's pure modules (reducer, wizard step, routes, SSE, progress): no browser.
node --test tests/ui/unit/
cargo test --workspace --locked --no-fail-fast
if [ -x tests/ui/run.sh ]; then
  CLAWDOCK_BIN="$PWD/target/debug/clawdock" tests/ui/run.sh
fi

