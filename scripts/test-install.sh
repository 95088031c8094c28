#!/usr/bin/env bash
# The installers' tests: version N and N+1 of the .deb built by the bundler with a
# key pair of the test's own (tests/package/build-update.sh: two builds, N+1 from a
# copy of the tree whose version is bumped); N installed on a clean Debian 12 root
# and run from its installed files only (tests/package/run.sh, no Podman); N again
# with Podman in a clean root, an agent created and run, then updated to N+1 from
# the tray menu with the agent's container untouched, after a tampered package, a
# bad signature, a downgrade and an unreachable feed were each refused
# (tests/package/agents.sh); then the Windows command line, cross-compiled, under
# Wine. Each prints "N passed, M failed". Root is needed (chroot, mounts, a network
# namespace).
#
# CLAWDOCK_PACKAGE_PROFILE=debug bundles the debug build instead of the release
# one (CI does, to save the release build's minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
tests/images/build-test-images.sh
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
out=target/update-test${CLAWDOCK_PACKAGE_PROFILE:+-$CLAWDOCK_PACKAGE_PROFILE}
tests/package/build-update.sh "$out"
# shellcheck source=/dev/null
. "$out/versions.env"
$SUDO tests/package/run.sh "$out/Clawdock_${N}_amd64.deb"
$SUDO tests/package/agents.sh "$out"
tests/windows/run.sh
