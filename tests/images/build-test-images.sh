#!/usr/bin/env bash
# Builds the two fast stand-in gateway images most Clawdock tests run, offline, from
# the host's static busybox (Debian package busybox-static), with `podman import`:
#
#   localhost/clawdock-test-gateway:latest           behaves like the OpenClaw gateway
#   localhost/clawdock-test-gateway-stubborn:latest  same, but PID 1 ignores SIGTERM, so
#                                                    `podman stop -t N` takes N s (exit 137)
#
# Why: no container registry is reachable in CI, and the real gateway image is 700+ MB
# and takes 11-17 s to answer /healthz. These images start in well under a second and
# accept the REAL gateway command unchanged, because /usr/local/bin/node is a busybox
# sh script:  node dist/index.js gateway --bind lan --port 18789
# It serves /healthz, /health ({"ok":true,"status":"live"}) and /readyz, /ready
# ({"ready":true}) with busybox httpd. Knobs (container environment):
#   FAKE_GATEWAY_DELAY=N  sleep N seconds before serving (a slow start)
#   FAKE_GATEWAY_EXIT=N   print an error line and exit N at once (a crash at start)
# and a file in its config folder (mounted at /home/node/.openclaw):
#   fake-gateway-hungry   2 s after it is ready, PID 1 eats memory until the memory
#                         limit kills it (exit 137)
# Runs as the `node` user (1000:1000) like the real image, so a sandbox without
# capabilities treats both alike; writes only under /tmp, which is 1777.
#
# Idempotent: each image carries the label io.clawdock.recipe = sha256 of this script
# and of the busybox binary; an image whose label matches is left alone.
# Usage: tests/images/build-test-images.sh [--force]
set -euo pipefail

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

IMAGE_NORMAL=localhost/clawdock-test-gateway:latest
IMAGE_STUBBORN=localhost/clawdock-test-gateway-stubborn:latest
LABEL_KEY=io.clawdock.recipe

BUSYBOX=${BUSYBOX:-}
if [ -z "$BUSYBOX" ]; then
  for c in /bin/busybox /usr/bin/busybox /usr/local/bin/busybox; do
    [ -x "$c" ] && { BUSYBOX=$c; break; }
  done
fi
if [ -z "$BUSYBOX" ] || [ ! -x "$BUSYBOX" ]; then
  echo "error: busybox not found; install busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
if command -v ldd >/dev/null && ldd "$BUSYBOX" 2>&1 | grep -q '=>'; then
  echo "error: $BUSYBOX is dynamically linked; install busybox-static" >&2
  exit 1
fi
command -v podman >/dev/null || { echo "error: podman not found" >&2; exit 1; }

SELF=$(readlink -f "${BASH_SOURCE[0]}")
RECIPE=$( { sha256sum < "$SELF"; sha256sum < "$BUSYBOX"; } | sha256sum | cut -c1-64)

# Label of an existing image, empty if the image is missing or has no such label.
image_recipe() {
  podman image inspect --format "{{ index .Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

# Applets linked into /bin (all exist in Debian's busybox-static 1.35).
APPLETS="sh ash cat chmod chown cp cut date dirname echo env expr false grep head hostname
  httpd id kill killall ln ls mkdir mv nc printf ps pwd readlink rm rmdir sed seq sleep sort
  stat tail tee test [ [[ timeout touch tr true uname usleep wc wget which whoami xargs"

# The fake `node`. @STUBBORN@ is replaced by 0 or 1 at build time.
write_fake_node() { # $1 = destination, $2 = 0|1 (stubborn)
  cat > "$1" <<'FAKE_NODE'
#!/bin/sh
# Fake `node` for Clawdock tests (a busybox sh script, not Node.js). Accepts the real
# gateway command: node dist/index.js gateway [--bind lan|loopback] [--port N] ...
STUBBORN=@STUBBORN@
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }
usage() {
  echo "fake node (clawdock test image): only 'node dist/index.js gateway [--bind lan] [--port N]' is supported" >&2
  exit 1
}
case "${1:-}" in
  --version|-v) echo "v24.0.0-clawdock-fake"; exit 0 ;;
  *dist/index.js|*openclaw.mjs) shift ;;
  *) usage ;;
esac
[ "${1:-}" = gateway ] || usage
shift
[ "${1:-}" = run ] && shift
PORT=18789 BIND=lan
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT=${2:-}; shift ;;
    --port=*) PORT=${1#--port=} ;;
    --bind) BIND=${2:-}; shift ;;
    --bind=*) BIND=${1#--bind=} ;;
    *) ;; # other flags (--allow-unconfigured, --verbose, ...) are accepted and ignored
  esac
  shift
done
case "$PORT" in ''|*[!0-9]*) echo "[gateway] error: invalid --port '$PORT'" >&2; exit 1 ;; esac
case "$BIND" in loopback|localhost|127.0.0.1) ADDR=127.0.0.1 ;; *) ADDR=0.0.0.0 ;; esac

log "[gateway] fake OpenClaw gateway starting (pid $$, uid $(id -u), stubborn=$STUBBORN)"
if [ -n "${FAKE_GATEWAY_EXIT:-}" ]; then
  log "[gateway] error: simulated startup failure (FAKE_GATEWAY_EXIT=$FAKE_GATEWAY_EXIT)"
  echo "[gateway] error: simulated startup failure" >&2
  exit "$FAKE_GATEWAY_EXIT"
fi

HTTPD_PID= SLEEP_PID=
shutdown() {
  log "[gateway] received $1, shutting down"
  [ -n "$SLEEP_PID" ] && kill "$SLEEP_PID" 2>/dev/null
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null
  log "[gateway] stopped"
  exit 0
}
if [ "$STUBBORN" = 1 ]; then
  trap '' TERM INT HUP   # ignored: only SIGKILL ends PID 1
  log "[gateway] ignoring SIGTERM/SIGINT (stubborn test image)"
else
  trap 'shutdown SIGTERM' TERM
  trap 'shutdown SIGINT' INT
  trap 'shutdown SIGHUP' HUP
fi

if [ -n "${FAKE_GATEWAY_DELAY:-}" ]; then
  log "[gateway] simulating a slow start: ${FAKE_GATEWAY_DELAY}s"
  sleep "$FAKE_GATEWAY_DELAY" & SLEEP_PID=$!
  wait "$SLEEP_PID" || true   # `wait` returns at once when a trapped signal arrives
  SLEEP_PID=
fi

WWW=/tmp/www
mkdir -p "$WWW"
echo '{"ok":true,"status":"live"}' > "$WWW/healthz"
echo '{"ok":true,"status":"live"}' > "$WWW/health"
echo '{"ready":true}' > "$WWW/readyz"
echo '{"ready":true}' > "$WWW/ready"
echo '<!doctype html><title>OpenClaw (fake)</title><p>fake OpenClaw Control UI</p>' > "$WWW/index.html"

httpd -f -p "$ADDR:$PORT" -h "$WWW" & HTTPD_PID=$!
log "[gateway] listening on ws://$ADDR:$PORT"
if [ -n "${OPENCLAW_GATEWAY_TOKEN:-}" ]; then log "[gateway] auth: token"; else log "[gateway] auth: none"; fi
log "[gateway] ready"

if [ -e /home/node/.openclaw/fake-gateway-hungry ]; then
  sleep 2
  log "[gateway] eating memory until the limit kills it (fake-gateway-hungry)"
  exec tail /dev/zero
fi

# In the stubborn image SIGTERM is ignored, so this loop only ends with SIGKILL.
while :; do
  wait "$HTTPD_PID" && rc=0 || rc=$?
  if ! kill -0 "$HTTPD_PID" 2>/dev/null; then
    log "[gateway] error: http server exited ($rc)"
    exit 1
  fi
done
FAKE_NODE
  sed -i "s/@STUBBORN@/$2/" "$1"
  chmod 0755 "$1"
}

build_rootfs() { # $1 = dir, $2 = 0|1 (stubborn)
  local r=$1
  mkdir -p "$r"/{bin,etc,app/dist,home/node,tmp,usr/local/bin,proc,sys,dev,run,var/tmp}
  cp "$BUSYBOX" "$r/bin/busybox"
  chmod 0755 "$r/bin/busybox"
  local a
  for a in $APPLETS; do ln -s busybox "$r/bin/$a"; done
  mkdir -p "$r/usr/bin" && ln -s ../../bin/env "$r/usr/bin/env"
  cat > "$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000:node:/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat > "$r/etc/group" <<'EOF'
root:x:0:
node:x:1000:
nogroup:x:65534:
EOF
  echo 'hosts: files dns' > "$r/etc/nsswitch.conf"
  mkdir -p "$r/root"
  echo "// placeholder: the test image's /usr/local/bin/node is a shell script" > "$r/app/dist/index.js"
  echo '{"name":"openclaw","version":"0.0.0-clawdock-test"}' > "$r/app/package.json"
  write_fake_node "$r/usr/local/bin/node" "$2"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 0700 "$r/root"
  chown -R 1000:1000 "$r/home/node"
}

build_one() { # $1 = image, $2 = 0|1 (stubborn)
  local image=$1 stubborn=$2 have old_id
  have=$(image_recipe "$image")
  if [ "$FORCE" = 0 ] && [ "$have" = "$RECIPE" ]; then
    echo "up to date: $image (recipe ${RECIPE:0:12})"
    return 0
  fi
  local t0=$SECONDS tmp
  old_id=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/clawdock-test-image.XXXXXX")
  # Rootless: run the ownership-sensitive steps in podman's user namespace, where
  # chown 1000 and --numeric-owner give the uids the image needs.
  local ns=()
  [ "$(id -u)" -eq 0 ] || ns=(podman unshare)
  (
    trap '"${ns[@]}" rm -rf "$tmp"' EXIT
    export -f build_rootfs write_fake_node
    export BUSYBOX APPLETS
    # shellcheck disable=SC2016 # expanded by the inner bash
    "${ns[@]}" bash -c 'set -euo pipefail; build_rootfs "$1/rootfs" "$2"' _ "$tmp" "$stubborn"
    "${ns[@]}" tar --numeric-owner -C "$tmp/rootfs" -cf - . |
      podman import --quiet \
        --change "LABEL $LABEL_KEY=$RECIPE" \
        --change "LABEL io.clawdock.stubborn=$stubborn" \
        --change 'WORKDIR /app' \
        --change 'USER 1000:1000' \
        --change 'ENV HOME=/home/node' \
        --change 'ENV PATH=/usr/local/bin:/bin' \
        --change 'EXPOSE 18789' \
        --change 'CMD ["node","dist/index.js","gateway","--bind","lan","--port","18789"]' \
        --message "clawdock test gateway (stubborn=$stubborn)" \
        - "$image" >/dev/null
  )
  # Drop the image this one replaced, unless a container still uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$image")" ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true
  fi
  if [ -n "$have" ] && [ "$have" != "$RECIPE" ]; then
    echo "rebuilt: $image (recipe ${have:0:12} -> ${RECIPE:0:12}) in $((SECONDS - t0)) s"
  else
    echo "built: $image (recipe ${RECIPE:0:12}) in $((SECONDS - t0)) s"
  fi
}

build_one "$IMAGE_NORMAL" 0
build_one "$IMAGE_STUBBORN" 1
