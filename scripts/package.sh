#!/usr/bin/env bash
# Builds the installers with the Tauri bundler (Linux: .deb; AppImage too where the
# bundler can download linuxdeploy; macOS: .dmg; Windows: .msi).
# The Tauri CLI wants its config beside the crate, while the project keeps one config
# at the root (DESIGN.md): this writes a copy for the CLI with the paths rebased to
# src-tauri/, builds, and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-tauri >/dev/null || cargo install tauri-cli --locked --version '^2'
bundles=${1:-deb}
python3 - <<'PY'
import json
c = json.load(open("tauri.conf.json"))
c["bundle"]["icon"] = ["../" + p for p in c["bundle"]["icon"]]
json.dump(c, open("src-tauri/tauri.conf.json", "w"), indent=2)
PY
trap 'rm -f src-tauri/tauri.conf.json' EXIT
# The bundler packages every binary of the crate: `clawdock` (main, default-run)
# and `clawdock-app`, side by side.
(cd src-tauri && cargo tauri build --ci --bundles "$bundles")
find "${CARGO_TARGET_DIR:-target}/release/bundle" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.AppImage' -o -name '*.dmg' -o -name '*.msi' \) -print
