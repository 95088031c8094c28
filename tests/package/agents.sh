#!/usr/bin/env bash
# The installed package with Podman, and its self-update, on a clean Debian 12 root
# (issue 31 items 3 and 7): Podman, its helpers and version N of the package are
# installed with apt; the stand-in gateway image is moved in (`podman save`/`load`);
# then, in a network namespace of the test's own (only loopback: the root's
# Podman makes its bridge and firewall rules there, not on the machine), the tray
# app runs from the installed files only: an agent is created and runs, its
# dashboard answers through Clawdock's one-time address; a feed on loopback offers
# a tampered package, one signed with another key, a downgrade, then nothing at
# all (the feed stopped), and each leaves N installed and says why; then it offers
# N+1, signed with the test's key, and the tray menu's "Install ... and restart"
# updates the app, which runs N+1 in the same process with the agent's container
# untouched (same ID, start time and PID) and adopted; Quit stops it.
#
#   tests/package/agents.sh [DIR]   DIR from tests/package/build-update.sh
#                                   (default target/update-test)
#
# Needs root (chroot, mounts, a network namespace) and the stand-in image
# (tests/images/build-test-images.sh). Prints each check, then "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(cd "${1:-target/update-test}" && pwd)
cache=${CLAWDOCK_TEST_CACHE:-/var/cache/clawdock-test}
[ "$(id -u)" -eq 0 ] || { echo "tests/package/agents.sh needs root"; echo "0 passed, 1 failed"; exit 1; }
[ -s "$dir/versions.env" ] || { echo "no update pair in $dir: run tests/package/build-update.sh"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck source=/dev/null
. "$dir/versions.env"
started=$(date +%s)
image=localhost/clawdock-test-gateway:latest
podman image exists "$image" || tests/images/build-test-images.sh
# `ip` for the namespace's loopback; python3 serves the feed.
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# shellcheck source=tests/package/lib.sh
. tests/package/lib.sh
feed=$root/tmp/feed
mkdir -p "$feed"
mnt --bind "$dir" "$root/mnt"

# The feeds the test serves, each a tauri-plugin-updater `latest.json`.
tauri="${XDG_CACHE_HOME:-$HOME/.cache}/clawdock/tauri-cli/node_modules/.bin/tauri"
sign() { # key version file
  TAURI_SIGNING_PRIVATE_KEY=$(cat "$dir/keys/$1.key") TAURI_SIGNING_PRIVATE_KEY_PASSWORD="" \
    "$tauri" signer sign --app-version "$2" "$3" >/dev/null
  cat "$3.sig"
}
port=8765
arch=$(uname -m)
next_deb=Clawdock_${NEXT}_amd64.deb
cp "$dir/$next_deb" "$feed/"
good_sig=$(cat "$dir/$next_deb.sig")
# Tampered: one byte of the package changed after it was signed.
cp "$dir/$next_deb" "$feed/tampered.deb"
size=$(stat -c %s "$feed/tampered.deb")
printf 'X' | dd of="$feed/tampered.deb" bs=1 seek=$((size / 2)) conv=notrunc status=none
cp "$dir/$next_deb" "$feed/stranger.deb"
stranger_sig=$(sign stranger "$NEXT" "$feed/stranger.deb")
down=0.0.1
cp "$dir/Clawdock_${N}_amd64.deb" "$feed/down.deb"
down_sig=$(sign test "$down" "$feed/down.deb")
feed_json() { # version file signature
  printf '{"version":"%s","notes":"Clawdock %s, for the update test.\\nAgents keep running.","pub_date":"2026-12-07T12:00:00Z","platforms":{"linux-%s-deb":{"url":"http://127.0.0.1:%s/%s","signature":"%s"}}}\n' \
    "$1" "$1" "$arch" "$port" "$2" "$3"
}
feed_json "$NEXT" "$next_deb" "$good_sig" > "$feed/good.json"
feed_json "$NEXT" tampered.deb "$good_sig" > "$feed/tampered.json"
feed_json "$NEXT" stranger.deb "$stranger_sig" > "$feed/stranger.json"
feed_json "$down" down.deb "$down_sig" > "$feed/downgrade.json"

# Podman as the machine's CI configures it (no systemd, cgroups v1: runc,
# cgroupfs), and a default network of its own so nothing is named like the
# machine's (it lives in the test's namespace anyway).
mkdir -p "$root/etc/containers/containers.conf.d" "$root/etc/containers/networks"
if [ -f /etc/containers/containers.conf.d/50-clawdock-ci.conf ]; then
  cp /etc/containers/containers.conf.d/50-clawdock-ci.conf "$root/etc/containers/containers.conf.d/"
fi
# netavark, not the CNI configuration Debian's podman package also ships.
printf '[network]\nnetwork_backend = "netavark"\n' > "$root/etc/containers/containers.conf.d/60-network.conf"
cat > "$root/etc/containers/networks/podman.json" <<'JSON'
{"name":"podman","id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9","driver":"bridge","network_interface":"cdpkg0","subnets":[{"subnet":"10.231.0.0/24","gateway":"10.231.0.1"}],"ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{"driver":"host-local"}}
JSON
podman save -o "$root/tmp/gateway.tar" "$image" >/dev/null
cp tests/package/inside-agents.sh "$root/tmp/inside-agents.sh"
echo "--- root ready ($(( $(date +%s) - started ))s): N=$N, N+1=$NEXT"

log=$root/tmp/outside.log
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
set +e
# With the network: apt installs Podman, the package and the test's tools.
in_root bash /tmp/inside-agents.sh install "/mnt/Clawdock_${N}_amd64.deb" 2>&1 | tee "$log"
# Without it: loopback alone, the feed served there by the machine's python3.
# The feed server runs while $feed/down is absent (the unreachable case makes it).
FEED=$feed PORT=$port ROOT=$root N=$N NEXT=$NEXT unshare --net bash -c '
  ip link set lo up
  ( while [ ! -e "$FEED/stop" ]; do
      if [ -e "$FEED/down" ]; then sleep 0.2; continue; fi
      python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$FEED" >/dev/null 2>&1 & server=$!
      while [ ! -e "$FEED/down" ] && [ ! -e "$FEED/stop" ]; do sleep 0.2; done
      kill "$server"; wait "$server"
    done ) &
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    FEED_PORT="$PORT" N="$N" NEXT="$NEXT" bash /tmp/inside-agents.sh run
  touch "$FEED/stop"
  # Containers a failed check left behind go before the namespace does.
  chroot "$ROOT" podman rm -af -t 0 >/dev/null 2>&1
  wait
' 2>&1 | tee -a "$log"
set -e
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c '^not ok ' "$log" || true)
finished=$(grep -c '^=== inside done' "$log" || true)
if [ "$finished" = 0 ]; then echo "not ok - the checks inside the root ran to their end"; failed=$((failed + 1)); fi
echo "--- $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
