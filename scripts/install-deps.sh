#!/usr/bin/env bash
# Installs what building and testing Clawdock needs on Debian/Ubuntu, and configures
# Podman so real containers run on machines without systemd or with hybrid cgroups.
# Idempotent: a second run only checks.
set -euo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

if ! command -v apt-get >/dev/null 2>&1; then
  echo "This script installs with apt-get (Debian/Ubuntu). Elsewhere, install Podman and the"
  echo "Tauri prerequisites yourself (macOS: Xcode command line tools, \`brew install podman\`)."
  command -v podman >/dev/null && exit 0 || exit 1
fi

# No libayatana-appindicator: the tray is a StatusNotifierItem spoken over D-Bus by
# the tray app itself; GTK and WebKitGTK are the window's.
BUILD_PKGS=(build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libgtk-3-dev
  librsvg2-dev libxdo-dev libsoup-3.0-dev)
RUN_PKGS=(podman runc conmon netavark aardvark-dns catatonit iptables busybox-static
  curl ca-certificates)
# python3: the fake podman; dbus-bin: dbus-send (the resume-from-sleep test);
# bsdutils: script (a pty for serve's terminal-only token line); python3-venv:
# kubernetes-validate's own environment (the export test).
TEST_PKGS=(xvfb xauth dbus-x11 x11-utils imagemagick webkit2gtk-driver chromium
  psmisc procps dbus dbus-bin libglib2.0-bin fonts-dejavu-core python3 python3-venv bsdutils)

wanted=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
[ "${CLAWDOCK_SKIP_TEST_PKGS:-0}" = 1 ] || wanted+=("${TEST_PKGS[@]}")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Podman on these machines: no systemd, cgroups v1 "hybrid" (crun refuses it), and a
# nofile hard limit below rootful podman's default ask. Only written where needed.
conf=/etc/containers/containers.conf.d/50-clawdock-ci.conf
if [ "$(id -u)" -eq 0 ] && [ ! -d /run/systemd/system ] && [ ! -f "$conf" ]; then
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  mkdir -p "$(dirname "$conf")"
  cat > "$conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  echo "wrote $conf"
fi
# The WebDriver server for the desktop window's tests (Tauri's; built from crates.io).
if [ "${CLAWDOCK_SKIP_TEST_PKGS:-0}" != 1 ] && ! command -v tauri-driver >/dev/null 2>&1 \
   && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ]; then
  cargo install tauri-driver --locked --version '^2' --quiet
fi

# The Kubernetes export test (core/tests/export.rs): kubectl renders the folder
# offline (`kubectl kustomize`), kubernetes-validate (PyPI, bundled schemas) checks
# every resource. kubectl is not in Debian's archive: it must be on the machine.
if [ "${CLAWDOCK_SKIP_TEST_PKGS:-0}" != 1 ]; then
  if ! command -v kubectl >/dev/null 2>&1; then
    echo "error: kubectl not found; the export test needs it (any version with" >&2
    echo "\`kubectl kustomize\`, 1.32 here): https://kubernetes.io/docs/tasks/tools/" >&2
    exit 1
  fi
  KV_VERSION=1.37.0
  if [ "$(kubernetes-validate --version 2>/dev/null)" != "$KV_VERSION" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      kv_env=/opt/clawdock-kubernetes-validate; kv_bin=/usr/local/bin
    else
      kv_env="$HOME/.local/share/clawdock-kubernetes-validate"; kv_bin="$HOME/.local/bin"
    fi
    python3 -m venv "$kv_env"
    "$kv_env/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
    mkdir -p "$kv_bin"
    ln -sf "$kv_env/bin/kubernetes-validate" "$kv_bin/kubernetes-validate"
    command -v kubernetes-validate >/dev/null || echo "warning: add $kv_bin to PATH" >&2
  fi
fi

podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}'
