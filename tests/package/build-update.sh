#!/usr/bin/env bash
# Builds what the update test installs: version N (this tree) and N+1 (a copy of
# this tree whose workspace version is bumped, in the build only: nothing is
# committed), both trusting a key pair made here for the test (the private half
# never leaves the output folder), with scripts/package.sh; then signs N+1 with
# `tauri signer sign --app-version`, as a release is signed. N+1 is built first so
# that target/ ends on this tree's own version.
#
#   tests/package/build-update.sh [OUT]     (default target/update-test)
#
# CLAWDOCK_PACKAGE_PROFILE=debug bundles the debug build (see scripts/package.sh).
#
# OUT receives: keys/ (the test's pair and a second, stranger pair),
# Clawdock_<N>_amd64.deb, Clawdock_<N+1>_amd64.deb and its .sig, versions.env.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
out=$(mkdir -p "${1:-target/update-test}" && cd "${1:-target/update-test}" && pwd)
target_dir=$(mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)
started=$(date +%s)
tauri="${XDG_CACHE_HOME:-$HOME/.cache}/clawdock/tauri-cli/node_modules/.bin/tauri"
if [ ! -x "$tauri" ]; then
  # package.sh installs the pinned CLI; it is needed first for the keys.
  TAURI_CLI_VERSION=$(sed -n 's/^TAURI_CLI_VERSION=//p' scripts/package.sh)
  npm install --prefix "$(dirname "$(dirname "$(dirname "$tauri")")")" --no-audit --no-fund --silent "@tauri-apps/cli@$TAURI_CLI_VERSION"
fi

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
IFS=. read -r major minor patch <<<"${version%%[-+]*}"
next="$major.$minor.$((patch + 1))"

mkdir -p "$out/keys"
for k in test stranger; do
  [ -s "$out/keys/$k.key" ] || CI=true "$tauri" signer generate -w "$out/keys/$k.key" -p "" --ci --force >/dev/null
done
pubkey=$(cat "$out/keys/test.key.pub")
config="{\"plugins\":{\"updater\":{\"pubkey\":\"$pubkey\"}}}"

build() { # dir version
  local dir=$1 v=$2 t0
  t0=$(date +%s)
  (cd "$dir" && CARGO_TARGET_DIR="$target_dir" CLAWDOCK_TAURI_CONFIG="$config" ./scripts/package.sh deb)
  cp "$target_dir/${CLAWDOCK_PACKAGE_PROFILE:-release}/bundle/deb/Clawdock_${v}_amd64.deb" "$out/"
  echo "--- Clawdock $v built in $(( $(date +%s) - t0 ))s"
}

# N+1: this tree's files (tracked and new, not ignored) in a copy, version bumped.
copy=$(mktemp -d /var/tmp/clawdock-next.XXXXXX)
trap 'rm -rf "$copy"' EXIT
git ls-files -z --cached --others --exclude-standard | (cd "$repo" && xargs -0 cp --parents -t "$copy")
sed -i "/^\[workspace.package\]/,/^\[/s/^version = \".*\"/version = \"$next\"/" "$copy/Cargo.toml"
build "$copy" "$next"
build "$repo" "$version"

TAURI_SIGNING_PRIVATE_KEY=$(cat "$out/keys/test.key") TAURI_SIGNING_PRIVATE_KEY_PASSWORD="" \
  "$tauri" signer sign --app-version "$next" "$out/Clawdock_${next}_amd64.deb" >/dev/null
printf 'N=%s\nNEXT=%s\n' "$version" "$next" > "$out/versions.env"
echo "--- update pair ready in $out ($(( $(date +%s) - started ))s)"
