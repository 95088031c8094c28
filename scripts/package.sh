#!/usr/bin/env bash
# Builds the installers with the Tauri bundler (Linux: .deb; AppImage too where the
# bundler can download linuxdeploy; macOS: .dmg; Windows: .msi), checks that the
# package's version is the crate's, and prints the SHA-256 of each file built.
# The Tauri CLI wants its config beside the crate, while the project keeps one config
# at the root (DESIGN.md): this writes a copy for the CLI with the paths rebased to
# src-tauri/, builds, and removes it.
#
# The version has one source: `workspace.package.version` in Cargo.toml
# (tauri.conf.json has no `version`, so Tauri takes the crate's).
#
# The Tauri CLI, in this order: `cargo tauri` if installed; the prebuilt CLI from npm
# (`@tauri-apps/cli`, pinned below, cached in ~/.cache/clawdock/tauri-cli: seconds
# instead of compiling ~400 crates); else `cargo install tauri-cli`.
set -euo pipefail
cd "$(dirname "$0")/.."
TAURI_CLI_VERSION=2.12.5
npm_cli="${XDG_CACHE_HOME:-$HOME/.cache}/clawdock/tauri-cli"
if command -v cargo-tauri >/dev/null; then
  tauri() { cargo tauri "$@"; }
else
  if command -v npm >/dev/null && [ ! -x "$npm_cli/node_modules/.bin/tauri" ]; then
    mkdir -p "$npm_cli"
    npm install --prefix "$npm_cli" --no-audit --no-fund --silent "@tauri-apps/cli@$TAURI_CLI_VERSION" || true
  fi
  if [ -x "$npm_cli/node_modules/.bin/tauri" ] \
    && "$npm_cli/node_modules/.bin/tauri" --version | grep -qx "tauri-cli $TAURI_CLI_VERSION"; then
    tauri() { "$npm_cli/node_modules/.bin/tauri" "$@"; }
  else
    cargo install tauri-cli --locked --version '^2'
    tauri() { cargo tauri "$@"; }
  fi
fi
bundles=${1:-deb}
target_dir=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "$PWD/target")
TARGET_DIR=$target_dir python3 - <<'PY'
import json, os
c = json.load(open("tauri.conf.json"))
icons = c["bundle"]["icon"]
# Linux: the bundler files a "128x128@2x" picture under hicolor/256x256@2, a folder no
# icon theme reads; the same 256 px picture goes in as a plain 256x256 instead.
if os.uname().sysname == "Linux":
    icons = [p for p in icons if "@2x" not in p] + ["icons/256x256.png"]
c["bundle"]["icon"] = ["../" + p for p in icons]
# The bundler copies only the main binary (`clawdock`); the tray app and the window
# go beside it.
deb = c["bundle"].setdefault("linux", {}).setdefault("deb", {})
for program in ("clawdock-app", "clawdock-window"):
    deb.setdefault("files", {})["/usr/bin/" + program] = os.environ["TARGET_DIR"] + "/release/" + program
# Shell completions, made by the built CLI itself (clap's generator) once it is
# built and before it is bundled, installed where bash-completion, zsh and fish
# look for a package's.
comp = os.environ["TARGET_DIR"] + "/completions"
cli = os.environ["TARGET_DIR"] + "/release/clawdock"
c.setdefault("build", {})["beforeBundleCommand"] = (
    f"mkdir -p {comp} && {cli} completions bash > {comp}/clawdock"
    f" && {cli} completions zsh > {comp}/_clawdock && {cli} completions fish > {comp}/clawdock.fish")
deb["files"]["/usr/share/bash-completion/completions/clawdock"] = comp + "/clawdock"
deb["files"]["/usr/share/zsh/vendor-completions/_clawdock"] = comp + "/_clawdock"
deb["files"]["/usr/share/fish/vendor_completions.d/clawdock.fish"] = comp + "/clawdock.fish"
json.dump(c, open("src-tauri/tauri.conf.json", "w"), indent=2)
PY
stamp=$(mktemp)
trap 'rm -f src-tauri/tauri.conf.json "$stamp"' EXIT
# The CLI's cargo build has `--bins`: the tray app, `clawdock-app`, and the window,
# `clawdock-window`, are built in the same run with the same features (Tauri's
# production `custom-protocol`); the bundler packages only the main binary, so
# deb.files above puts the other two beside it.
(cd src-tauri && tauri build --ci --bundles "$bundles")

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
bundle_dir="${CARGO_TARGET_DIR:-target}/release/bundle"
status=0
while IFS= read -r f; do
  case "$f" in
    *.deb)
      got=$(dpkg-deb -f "$f" Version)
      if [ "$got" != "$version" ]; then
        echo "package.sh: $f has version $got, Cargo.toml says $version" >&2
        status=1
      fi ;;
  esac
  (cd "$(dirname "$f")" && sha256sum "$(basename "$f")" | tee "$(basename "$f").sha256")
  echo "  $f"
done < <(find "$bundle_dir" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.AppImage' -o -name '*.dmg' -o -name '*.msi' \) -newer "$stamp" -print)
exit $status
