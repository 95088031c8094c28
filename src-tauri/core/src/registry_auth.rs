//! The user's registry logins, read from the files `podman login` and `docker login`
//! write, for the pulls Clawdock asks of the engine. On macOS and Windows the engine
//! runs in Podman's machine, which does not see the host's logins; the podman
//! command sends them along with a pull, and so does Clawdock.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde::Deserialize;

/// The files Podman reads logins from, in its order: `REGISTRY_AUTH_FILE` or the
/// default one, then the one in the config folder, then Docker's.
pub fn default_files() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = var("HOME")
        .or_else(|| var("USERPROFILE"))
        .map(PathBuf::from);
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
        .map(|c| c.join("containers/auth.json"));
    let primary = match var("REGISTRY_AUTH_FILE") {
        Some(file) => Some(PathBuf::from(file)),
        None => runtime_file(var("XDG_RUNTIME_DIR")).or_else(|| config.clone()),
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for file in [primary, config, home.map(|h| h.join(".docker/config.json"))]
        .into_iter()
        .flatten()
    {
        if !files.contains(&file) {
            files.push(file);
        }
    }
    files
}

/// Podman's default login file on Linux, in the runtime folder.
#[cfg(target_os = "linux")]
fn runtime_file(runtime_dir: Option<std::ffi::OsString>) -> Option<PathBuf> {
    Some(match runtime_dir {
        Some(dir) => PathBuf::from(dir).join("containers/auth.json"),
        None => {
            let uid = crate::engine::socket::process_uid().unwrap_or(0);
            PathBuf::from(format!("/run/containers/{uid}/auth.json"))
        }
    })
}

/// Elsewhere the default login file is the one in the config folder.
#[cfg(not(target_os = "linux"))]
fn runtime_file(_: Option<std::ffi::OsString>) -> Option<PathBuf> {
    None
}

/// The value of the `X-Registry-Auth` header for a pull of `image`, from the first
/// of `files` with a login for its registry (or a namespace of it, most specific
/// first); `None` when there is none or the image has no registry in its name.
/// Logins kept by a credential helper (`credHelpers`, `credsStore`) are not read.
pub fn header_for(files: &[PathBuf], image: &str) -> Option<String> {
    let keys = lookup_keys(image)?;
    files.iter().find_map(|file| {
        let login = login_in(file, &keys)?;
        let json = serde_json::to_vec(&login).ok()?;
        Some(URL_SAFE.encode(json))
    })
}

/// The user name and password of the user's login for `image`'s registry, from
/// the first of `files` that has one (for Clawdock's own requests to the
/// registry: the newer-image check).
pub fn basic_login(files: &[PathBuf], image: &str) -> Option<(String, String)> {
    let keys = lookup_keys(image)?;
    files
        .iter()
        .find_map(|file| login_in(file, &keys))
        .filter(|login| !login.username.is_empty())
        .map(|login| (login.username, login.password))
}

/// Every secret the login files hold (encoded logins, their passwords, identity
/// tokens): what a support bundle must not carry.
pub fn secrets_in(files: &[PathBuf]) -> Vec<String> {
    let mut secrets = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read(file) else {
            continue;
        };
        let Ok(parsed) = serde_json::from_slice::<AuthFile>(&text) else {
            continue;
        };
        for entry in parsed.auths.values() {
            for secret in [&entry.auth, &entry.identitytoken] {
                if !secret.trim().is_empty() {
                    secrets.push(secret.trim().to_string());
                }
            }
            if let Some((_, password)) = STANDARD
                .decode(entry.auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|d| {
                    d.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                if !password.is_empty() {
                    secrets.push(password);
                }
            }
        }
    }
    secrets
}

/// What the engine is handed: Docker's `AuthConfig`.
#[derive(serde::Serialize, Debug, PartialEq)]
struct Login {
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    identitytoken: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthFile {
    auths: std::collections::HashMap<String, Entry>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Entry {
    auth: String,
    identitytoken: String,
}

fn login_in(file: &Path, keys: &[String]) -> Option<Login> {
    let text = std::fs::read(file).ok()?;
    let parsed: AuthFile = match serde_json::from_slice(&text) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "a registry login file could not be read");
            return None;
        }
    };
    let entries: Vec<(String, &Entry)> = parsed
        .auths
        .iter()
        .map(|(key, entry)| (normalize_key(key), entry))
        .collect();
    keys.iter().find_map(|key| {
        let (_, entry) = entries.iter().find(|(k, _)| k == key)?;
        let (username, password) = match STANDARD.decode(entry.auth.trim()) {
            Ok(decoded) => {
                let decoded = String::from_utf8(decoded).ok()?;
                let (user, pass) = decoded.split_once(':')?;
                (user.to_string(), pass.to_string())
            }
            Err(_) if !entry.identitytoken.is_empty() => (String::new(), String::new()),
            Err(_) => return None,
        };
        Some(Login {
            username,
            password,
            identitytoken: entry.identitytoken.clone(),
        })
    })
}

/// A key of an auth file as Podman compares it: no scheme, no trailing `/v1/`
/// (Docker's own keys), and Docker Hub's old host as `docker.io`.
fn normalize_key(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    match key.split_once('/') {
        Some(("index.docker.io" | "registry-1.docker.io", rest)) => format!("docker.io/{rest}"),
        None if key == "index.docker.io" || key == "registry-1.docker.io" => "docker.io".into(),
        _ => key.to_string(),
    }
}

/// The keys a login for `image` may be under, most specific first: the
/// repository, each namespace above it, then the registry.
fn lookup_keys(image: &str) -> Option<Vec<String>> {
    let name = image.split('@').next()?;
    let name = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    };
    let (registry, _) = name.split_once('/')?;
    if !(registry.contains(['.', ':']) || registry == "localhost") {
        return None;
    }
    let mut keys = vec![name.to_string()];
    let mut rest = name;
    while let Some((up, _)) = rest.rsplit_once('/') {
        keys.push(up.to_string());
        rest = up;
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, name: &str, json: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).expect("write");
        path
    }

    fn decoded(header: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE.decode(header).expect("base64url")).expect("json")
    }

    #[test]
    fn the_most_specific_login_of_the_first_file_that_has_one_is_sent() {
        let dir = tempfile::tempdir().expect("tmp");
        let podman = file_with(
            dir.path(),
            "auth.json",
            &format!(
                r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}, "ghcr.io/openclaw": {{"auth": "{}"}}}}}}"#,
                STANDARD.encode("any:one"),
                STANDARD.encode("org:secret:with:colons")
            ),
        );
        let docker = file_with(
            dir.path(),
            "config.json",
            &format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}, "credsStore": "desktop"}}"#,
                STANDARD.encode("hub:pw")
            ),
        );
        let files = [podman, docker];
        let org = header_for(&files, "ghcr.io/openclaw/openclaw:2026.9").expect("a login");
        assert_eq!(
            decoded(&org),
            serde_json::json!({"username": "org", "password": "secret:with:colons"})
        );
        let other = header_for(&files, "ghcr.io/someone/else@sha256:ab").expect("a login");
        assert_eq!(decoded(&other)["username"], "any");
        let hub = header_for(&files, "docker.io/library/busybox").expect("Docker's key");
        assert_eq!(decoded(&hub)["username"], "hub");
        assert_eq!(header_for(&files, "quay.io/x/y:1"), None);
        assert_eq!(header_for(&files, "openclaw:latest"), None, "a short name");
    }

    #[test]
    fn a_port_is_not_a_tag_and_a_broken_file_is_passed_over() {
        let dir = tempfile::tempdir().expect("tmp");
        let broken = file_with(dir.path(), "broken.json", "{not json");
        let good = file_with(
            dir.path(),
            "auth.json",
            &format!(
                r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{}"}}}}}}"#,
                STANDARD.encode("u:p")
            ),
        );
        let missing = dir.path().join("none.json");
        let header = header_for(&[missing, broken, good], "127.0.0.1:5000/img").expect("login");
        assert_eq!(decoded(&header)["password"], "p");
        assert_eq!(
            lookup_keys("127.0.0.1:5000/a/b:1").expect("keys"),
            ["127.0.0.1:5000/a/b", "127.0.0.1:5000/a", "127.0.0.1:5000"]
        );
    }
}
