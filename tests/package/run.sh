#!/usr/bin/env bash
# The package test: installs the .deb that scripts/package.sh built on a clean
# Debian 12 root (mmdebstrap) with `apt-get install ./Clawdock_*.deb` resolving its
# dependencies, then checks, from the installed files only: `clawdock --version`,
# `clawdock serve` answering /agents/runtime-status (no Podman in the root), the tray app
# showing its menu over D-Bus under Xvfb and quitting with 0, the desktop entry, the
# icons, the autostart entry naming /usr/bin/clawdock-app, and that `apt-get remove`
# leaves no file of the package while the user's data folder stays.
#
#   tests/package/run.sh [path/to/Clawdock_X_amd64.deb]
#
# Needs root (chroot, mounts). The base root is cached as a tarball in
# $CLAWDOCK_TEST_CACHE (default /var/cache/clawdock-test, rebuilt after 7 days),
# and so are the .debs apt downloads into it. Prints each check and, last,
# "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${CLAWDOCK_TEST_CACHE:-/var/cache/clawdock-test}
deb=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/release/bundle/deb/[Cc]lawdock_*.deb 2>/dev/null | head -1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "no .deb: run ./scripts/package.sh first"; echo "0 passed, 1 failed"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "tests/package/run.sh needs root (chroot)"; echo "0 passed, 1 failed"; exit 1; }
started=$(date +%s)

command -v mmdebstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}

# The machine's own Debian mirror (deb822 .sources or one-line sources.list).
mirror_of() { # suite pattern → first URI serving it
  local pat=$1
  { cat /etc/apt/sources.list 2>/dev/null | awk -v p="$pat" '$1=="deb" && $3 ~ p {print $2; exit}'
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v p="$pat" 'BEGIN{RS=""} { u=""; s="";
          n=split($0, l, "\n"); for (i=1;i<=n;i++) {
            if (l[i] ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", l[i]); split(l[i], a, " "); u=a[1] }
            if (l[i] ~ /^Suites:/) s=l[i] }
          if (u != "" && s ~ p) { print u; exit } }' "$f"
    done; } | head -1
}
main_mirror=$(mirror_of '(^|[ :])bookworm( |$)')
security_mirror=$(mirror_of 'bookworm-security')
main_mirror=${main_mirror:-http://deb.debian.org/debian}
security_mirror=${security_mirror:-http://deb.debian.org/debian-security}

mkdir -p "$cache/archives/partial"
base="$cache/bookworm-apt.tar"
if [ -f "$base" ] && [ -n "$(find "$base" -mtime +7)" ]; then rm -f "$base"; fi
if [ ! -f "$base" ]; then
  echo "--- building the Debian 12 root from $main_mirror (cached in $base)"
  mmdebstrap --quiet --variant=apt --skip=cleanup/apt/lists bookworm "$base.tmp.tar" \
    "deb $main_mirror bookworm main" "deb $main_mirror bookworm-updates main" \
    "deb $security_mirror bookworm-security main"
  mv "$base.tmp.tar" "$base"
fi

root=$(mktemp -d /var/tmp/clawdock-pkg.XXXXXX)
mounts=()
cleanup() {
  local m
  for ((i=${#mounts[@]}-1; i>=0; i--)); do
    umount -R "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  # Nothing mounted may remain before the folder goes (a lazy unmount takes a moment).
  for _ in $(seq 50); do grep -q " $root/" /proc/mounts || break; sleep 0.1; done
  if grep -q " $root/" /proc/mounts; then
    echo "left $root: still mounted under it" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT
mnt() { mount "$@"; mounts+=("${@: -1}"); }

tar -C "$root" -xf "$base"
mnt -t proc proc "$root/proc"
mnt --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"
mnt -t sysfs sysfs "$root/sys"
mnt -t tmpfs tmpfs "$root/tmp"
mnt --bind "$cache/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/"
cp tests/package/inside.sh "$root/tmp/inside.sh"

echo "--- root ready ($(( $(date +%s) - started ))s); package $(basename "$deb")"
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  bash /tmp/inside.sh "/tmp/$(basename "$deb")" 2>&1 | tee "$root/tmp/outside.log"
set -e
passed=$(grep -c '^ok ' "$root/tmp/outside.log" || true)
failed=$(grep -c '^not ok ' "$root/tmp/outside.log" || true)
finished=$(grep -c '^=== inside done' "$root/tmp/outside.log" || true)
if [ "$finished" = 0 ]; then echo "not ok - the checks inside the root ran to their end"; failed=$((failed + 1)); fi
echo "--- $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
