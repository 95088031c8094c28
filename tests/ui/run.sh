#!/usr/bin/env bash
# Browser tests of the web UI (ui/): real `clawdock serve` instances on real Podman
# (and the fake podman for the VM wizard), driven in Debian's Chromium through
# playwright-core. Builds nothing: it uses $CLAWDOCK_BIN (default
# target/debug/clawdock) and the test image localhost/clawdock-test-gateway:latest
# (tests/images/build-test-images.sh). Screenshots go to docs/screenshots/.
#
#   tests/ui/run.sh                 # every tests/ui/*.test.mjs
#   tests/ui/run.sh tests/ui/wizard.test.mjs
#   CLAWDOCK_UI_FROM_DISK=1 tests/ui/run.sh   # serve ui/ from the work tree (no rebuild)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

export CLAWDOCK_BIN=${CLAWDOCK_BIN:-target/debug/clawdock}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
image=${CLAWDOCK_AGENT_IMAGE:-localhost/clawdock-test-gateway:latest}

fail() { echo "tests/ui: $*" >&2; exit 1; }
[ -x "$CLAWDOCK_BIN" ] || fail "no clawdock binary at $CLAWDOCK_BIN (cargo build -p clawdock, or set CLAWDOCK_BIN)"
[ -x "$CHROMIUM" ] || fail "no Chromium at $CHROMIUM (apt-get install -y chromium, or set CHROMIUM)"
command -v podman >/dev/null || fail "podman is not installed"
podman image exists "$image" || fail "test image $image missing (bash tests/images/build-test-images.sh)"

if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/axe-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/clawdock-ui.XXXXXX")
export CLAWDOCK_UI_RUN_DIR=$run_dir
CLAWDOCK_UI_RUN_ID=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
export CLAWDOCK_UI_RUN_ID

cleanup() {
  local status=$?
  # Servers a crashed test left behind: delete their agents, SIGTERM, wait, then kill.
  local pids=() homes=() pid home
  for f in "$run_dir"/server-*.pid; do
    [ -e "$f" ] || continue
    read -r pid home < "$f"
    if kill -0 "$pid" 2>/dev/null; then pids+=("$pid"); homes+=("$home"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    node "$here/lib/teardown.mjs" "${homes[@]}" || true
    kill -TERM "${pids[@]}" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  # Containers of this run's agents (all named clawdock-uit<run id>-...) must be gone.
  local left
  left=$(podman ps -a --filter "name=^clawdock-uit${CLAWDOCK_UI_RUN_ID}-" --format '{{.Names}}' 2>/dev/null || true)
  if [ -n "$left" ]; then
    echo "tests/ui: removing containers left behind: $left" >&2
    # shellcheck disable=SC2086
    podman rm -f $left >/dev/null 2>&1 || true
    [ "$status" -eq 0 ] && status=1
  fi
  if [ "$status" -ne 0 ]; then
    mkdir -p tests/artifacts/ui
    for log in "$run_dir"/home-*/server.log; do
      [ -e "$log" ] && cp "$log" "tests/artifacts/ui/$(basename "$(dirname "$log")").log"
    done
    echo "tests/ui: server logs copied to tests/artifacts/ui/" >&2
  fi
  rm -rf "$run_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ $# -eq 0 ]; then
  set -- tests/ui/*.test.mjs
fi
start=$(date +%s)
node --test --test-concurrency="${UI_TEST_CONCURRENCY:-2}" --test-timeout=180000 "$@"
echo "tests/ui: done in $(( $(date +%s) - start )) s"
