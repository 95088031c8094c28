//! The support bundle (`clawdock doctor --bundle FILE`): a gzipped tar of the
//! doctor's findings, the versions, the app's recent logs, the agents' states
//! (their records without tokens) and their gateways' last lines, with every
//! secret Clawdock knows of taken out of every file: the API token, the gateway
//! tokens, the provider keys in the agents' configs, proxy credentials and the
//! registry logins; credentials in any URL are masked as well.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Finding;
use crate::engine::Call;
use crate::settings::Settings;
use crate::store::{AgentRecord, Store};

/// What each log file gives the bundle: its end.
const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// The newest log files taken.
const LOG_FILES: usize = 3;
/// Lines of each gateway's output.
const GATEWAY_LINES: &str = "200";
/// What stands where a secret was.
pub const REDACTED: &str = "[REDACTED]";

/// Where the bundle's pieces come from.
pub struct Sources<'a> {
    pub settings: &'a Settings,
    /// The app's log folder.
    pub log_dir: PathBuf,
    /// The environment's variables (proxy credentials are read from them).
    pub var: &'a dyn Fn(&str) -> Option<String>,
}

/// Writes the bundle to `file` (new, 0600); gives the names of its members.
pub async fn write(
    file: &Path,
    findings: &[Finding],
    from: &Sources<'_>,
) -> std::io::Result<Vec<String>> {
    let settings = from.settings;
    let records = Store::new(settings.agents_file())
        .load()
        .map(|l| l.agents)
        .unwrap_or_default();
    let secrets = secrets(settings, &records, from.var);
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    members.push((
        "findings.json".into(),
        serde_json::to_vec_pretty(findings).map_err(std::io::Error::other)?,
    ));
    members.push(("versions.txt".into(), versions(settings).await.into_bytes()));
    let states: Vec<serde_json::Value> = records.iter().map(state_of).collect();
    members.push((
        "agents.json".into(),
        serde_json::to_vec_pretty(&states).map_err(std::io::Error::other)?,
    ));
    for (name, bytes) in log_tails(&from.log_dir) {
        members.push((format!("logs/{name}"), bytes));
    }
    for record in &records {
        let lines = settings
            .podman
            .run(
                Call::new(["logs", "--tail", GATEWAY_LINES, &record.container_name()])
                    .timeout(Duration::from_secs(20)),
            )
            .await;
        let text = match lines {
            Ok(out) => format!("{}{}", out.stdout, out.stderr_tail),
            Err(e) => format!("(no gateway lines: {e})\n"),
        };
        members.push((format!("gateways/{}.log", record.name), text.into_bytes()));
    }
    let out = crate::agents::new_private_file(file).map_err(std::io::Error::other)?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::default(),
    ));
    let mut names = Vec::new();
    for (name, bytes) in members {
        let clean = redact(&String::from_utf8_lossy(&bytes), &secrets);
        let mut header = tar::Header::new_gnu();
        header.set_size(clean.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        tar.append_data(&mut header, &name, clean.as_bytes())?;
        names.push(name);
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(names)
}

/// An agent's record as the bundle keeps it: its state, not its token.
fn state_of(record: &AgentRecord) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("token");
    }
    value
}

async fn versions(settings: &Settings) -> String {
    let podman = match settings
        .podman
        .run(Call::new(["version"]).timeout(Duration::from_secs(20)))
        .await
    {
        Ok(out) => out.stdout,
        Err(e) => format!("podman version: {e}\n"),
    };
    format!(
        "clawdock {}\nos {} {}\nmode {:?}\n\n{podman}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        settings.mode
    )
}

/// The end of each of the newest log files.
fn log_tails(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((meta.modified().ok()?, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files
        .into_iter()
        .take(LOG_FILES)
        .filter_map(|(_, path)| {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = std::fs::File::open(&path).ok()?;
            let len = file.metadata().ok()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))
                .ok()?;
            let mut bytes = Vec::new();
            file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), bytes))
        })
        .collect()
}

/// Every secret Clawdock knows of on this computer.
fn secrets(
    settings: &Settings,
    records: &[AgentRecord],
    var: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(bytes) = std::fs::read(settings.api_file()) {
        if let Ok(info) = serde_json::from_slice::<crate::instance::Discovery>(&bytes) {
            found.push(info.token);
        }
    }
    for record in records {
        found.push(record.token.clone());
        let config = record.dir.join("config/openclaw.json");
        if let Ok(bytes) =
            crate::agent_files::read_regular(&config, crate::agent_files::MAX_CONFIG_BYTES)
        {
            if let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                strings_under(&config["env"], &mut found);
                strings_under(&config["models"]["providers"], &mut found);
                strings_under(&config["gateway"]["auth"], &mut found);
            }
        }
    }
    for name in super::PROXY_VARIABLES {
        if let Some(url) = var(name).and_then(|v| reqwest::Url::parse(&v).ok()) {
            if let Some(password) = url.password() {
                found.push(password.to_string());
                if let Ok(decoded) = urlencoding_decode(password) {
                    found.push(decoded);
                }
            }
        }
    }
    found.extend(crate::registry_auth::secrets_in(
        &settings.registry_auth_files,
    ));
    // Short strings would take ordinary words with them; none of these is short.
    found.retain(|s| s.len() >= 6 && !s.starts_with("${"));
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// Every string value under `value` (provider keys sit under names that vary).
fn strings_under(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings_under(v, out)),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_under(v, out)),
        _ => {}
    }
}

fn urlencoding_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or_default();
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// `text` with every secret replaced, and credentials in URLs masked.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut clean = text.to_string();
    for secret in secrets {
        clean = clean.replace(secret.as_str(), REDACTED);
    }
    mask_url_credentials(&clean)
}

/// `scheme://user:pass@host` anywhere in `text` becomes `scheme://***@host`.
fn mask_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\'' | '>' | ')'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***");
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_url_credentials_are_taken_out() {
        let text = "key sk-abcdef in http://bob:hunter22@proxy:3128/x and token 0123456789";
        let clean = redact(text, &["sk-abcdef".into(), "0123456789".into()]);
        assert_eq!(
            clean,
            "key [REDACTED] in http://***@proxy:3128/x and token [REDACTED]"
        );
        assert_eq!(urlencoding_decode("p%40ss").expect("utf8"), "p@ss");
    }
}
