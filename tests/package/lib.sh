#!/usr/bin/env bash
# What the package tests share (sourced): a clean Debian 12 root from the machine's
# own mirror, cached as a tarball in $cache (rebuilt after 7 days), unpacked into
# $root with /proc, /dev, /sys and a /tmp of its own mounted, apt's downloads cached
# in $cache/archives; `cleanup` unmounts everything under the root (a container's
# overlay too) and removes it. Needs root.

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
  # What a process in the root mounted itself (a container's overlay, its shm),
  # deepest first, then ours.
  for m in $(awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  for ((i=${#mounts[@]}-1; i>=0; i--)); do
    umount -R "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  # Nothing mounted may remain before the folder goes (a lazy unmount takes a moment).
  for _ in $(seq 50); do grep -qE " $root(/| )" /proc/mounts || break; sleep 0.1; done
  if grep -qE " $root(/| )" /proc/mounts; then
    echo "left $root: still mounted under it" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT
mnt() { mount "$@"; mounts+=("${@: -1}"); }

# The root is a mount point of its own: Podman's image unpacking changes the
# propagation of its "/", which only a mount point has.
mnt --bind "$root" "$root"
tar -C "$root" -xf "$base"
mnt -t proc proc "$root/proc"
mnt --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"
# /sys with its cgroup mounts (Podman in the root needs them).
mnt --rbind /sys "$root/sys"; mount --make-rslave "$root/sys"
mnt -t tmpfs tmpfs "$root/tmp"
mnt --bind "$cache/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
