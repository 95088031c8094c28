//! Embeds the web UI (`ui/` at the repository root) so `clawdock serve` and the
//! desktop app serve the same files without needing them on disk; and bakes the
//! self-update's trust and feed into the core: `plugins.updater.pubkey` and
//! `plugins.updater.endpoints` of the project's one Tauri config
//! (`tauri.conf.json` at the root), merged with `TAURI_CONFIG` the way Tauri's own
//! build merges it (a JSON merge patch; the Tauri CLI's `--config` arrives so). The
//! key is read at build time only: nothing at run time can swap the key an update
//! is checked against.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let ui = manifest.join("../../ui");
    println!("cargo:rerun-if-changed={}", ui.display());
    let mut files = Vec::new();
    collect(&ui, &ui, &mut files);
    files.sort();
    let mut out = String::from("/// The UI's files: (URL path, content, content type).\npub static UI_ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for (url, path) in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let mime = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("json") => "application/json",
            Some("ico") => "image/x-icon",
            _ => "application/octet-stream",
        };
        let _ = writeln!(
            out,
            "    ({url:?}, include_bytes!({:?}), {mime:?}),",
            path.canonicalize().expect("ui file").display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("ui_assets.rs");
    std::fs::write(dest, out).expect("write ui_assets.rs");
    updater_config(&manifest);
}

fn updater_config(manifest: &Path) {
    let config_path = manifest.join("../../tauri.conf.json");
    println!("cargo:rerun-if-changed={}", config_path.display());
    println!("cargo:rerun-if-env-changed=TAURI_CONFIG");
    let text = std::fs::read_to_string(&config_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", config_path.display()));
    let mut config: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", config_path.display()));
    if let Ok(patch) = std::env::var("TAURI_CONFIG") {
        if !patch.trim().is_empty() {
            let patch: serde_json::Value = serde_json::from_str(&patch)
                .unwrap_or_else(|e| panic!("TAURI_CONFIG is not JSON: {e}"));
            merge(&mut config, &patch);
        }
    }
    let updater = &config["plugins"]["updater"];
    let pubkey = updater["pubkey"].as_str().unwrap_or_default();
    let endpoints: Vec<&str> = updater["endpoints"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    println!("cargo:rustc-env=CLAWDOCK_UPDATER_PUBKEY={pubkey}");
    // Addresses hold no space; one line survives cargo's env passing.
    println!(
        "cargo:rustc-env=CLAWDOCK_UPDATER_ENDPOINTS={}",
        endpoints.join(" ")
    );
}

/// RFC 7396, as `json-patch`'s `merge` (which Tauri uses) applies it.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    let Some(map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(
                map.entry(key.clone()).or_insert(serde_json::Value::Null),
                value,
            );
        }
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            files.push((url, path));
        }
    }
}
