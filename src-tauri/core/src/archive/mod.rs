//! An agent's backup archive: what it holds and the rules of its members. A
//! gzipped tar (`tar -tzf` lists it, `tar -xzf` unpacks it by hand) of the agent's
//! `config/` and `workspace/`, links stored as links, and `manifest.json` last:
//! the agent's settings and every member with its SHA-256. `pack` reads an agent's
//! folder (written by the agent: nothing followed, everything bounded); `unpack`
//! checks an archive whole before it writes a byte, then writes it into a new
//! folder.

mod pack;
mod unpack;

pub use pack::{pack, Packed};
pub use unpack::{check, extract, Checked};

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The manifest's `format`: an archive of anything else is refused.
pub const FORMAT: &str = "clawdock-agent-backup";
/// The manifest's version this Clawdock writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's member name, the archive's last.
pub const MANIFEST: &str = "manifest.json";
/// The folders of an agent a backup holds: its state and config (`config/`, the
/// gateway's `~/.openclaw`: sessions, memory, paired channels, `openclaw.json`
/// with the provider key) and its workspace. `cache/` is not kept: the gateway
/// makes it again.
pub const PARTS: [&str; 2] = ["config", "workspace"];

/// How far a backup or a restore may go. An agent writes its own folders, and an
/// archive may come from anywhere: both are bounded in bytes, members and time.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes of file content, all members together (unpacked).
    pub max_bytes: u64,
    /// Members (files, folders, links).
    pub max_members: u64,
    /// The whole backup, or each pass of a restore.
    pub max_time: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024 * 1024,
            max_members: 200_000,
            max_time: Duration::from_secs(600),
        }
    }
}

/// Folders deeper than this are not followed (a workspace nested without end).
pub const MAX_DEPTH: usize = 64;
/// The largest manifest read, and the largest header extension (a long name).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// What an archive says of the agent it holds: enough to make it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    pub name: String,
    /// The agent's id where it was backed up (a restore makes a new one).
    pub id: uuid::Uuid,
    /// The image reference (`ghcr.io/openclaw/openclaw:latest`).
    pub image: String,
    /// The image the agent ran, by ID: a restore uses it when the engine has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// A custom provider's base URL as Clawdock recorded it (what the Kubernetes
    /// export lets the agent reach), kept through a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_base_url: Option<String>,
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    /// The agent's disk limit (its folders, layer and log).
    #[serde(default, rename = "diskMiB", skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    pub port: u16,
}

/// How the agent's files were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Consistency {
    /// No container ran: the files as they lay.
    Stopped,
    /// The gateway ran: each file is whole as it was read, but files written
    /// while the backup went may be of different moments.
    Live,
}

/// One member of the archive, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Member {
    File {
        path: String,
        size: u64,
        sha256: String,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Link {
        path: String,
        target: String,
    },
}

impl Member {
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Dir { path, .. } | Self::Link { path, .. } => path,
        }
    }
}

/// Something of the agent's folder that is not in the archive, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub why: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The Clawdock that wrote it.
    pub clawdock: String,
    pub agent: AgentSettings,
    pub consistency: Consistency,
    pub members: Vec<Member>,
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

impl Manifest {
    /// Bytes of file content.
    pub fn bytes(&self) -> u64 {
        self.members
            .iter()
            .map(|m| match m {
                Member::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    pub fn files(&self) -> usize {
        self.members
            .iter()
            .filter(|m| matches!(m, Member::File { .. }))
            .count()
    }
}

/// Why a backup or a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive is not one Clawdock restores: the sentence names the member
    /// and the rule.
    #[error("The archive is refused: {0}")]
    Refused(String),
    /// A bound was passed (bytes, members, time).
    #[error("{0}")]
    TooLarge(String),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether `path` may name a member: relative, of plain parts only (no `..`,
/// no `.`, no root, no drive), valid UTF-8 without NUL or backslash, inside one
/// of [`PARTS`] (or the manifest itself).
pub fn member_path(path: &Path) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("`{}` is not UTF-8", path.display()))?;
    if text.contains('\0') || text.contains('\\') {
        return Err(format!("`{text}` has a character no member name may have"));
    }
    let text = text.trim_end_matches('/');
    let mut parts = Vec::new();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().unwrap_or_default()),
            Component::ParentDir => return Err(format!("`{text}` climbs out (`..`)")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{text}` is an absolute path"))
            }
            Component::CurDir => return Err(format!("`{text}` is not a plain path")),
        }
    }
    if parts.join("/") != text {
        return Err(format!("`{text}` is not a plain path"));
    }
    match parts.first() {
        Some(first) if PARTS.contains(first) => Ok(text.to_string()),
        Some(&MANIFEST) if parts.len() == 1 => Ok(text.to_string()),
        _ => Err(format!(
            "`{text}` is outside the agent's folders ({})",
            PARTS.join(", ")
        )),
    }
}

/// Whether a link at `path` (a member path) pointing at `target` stays inside the
/// agent's folder, judged by name (`.` and `..` resolved against the link's
/// folder): absolute targets and targets that climb above it are refused.
pub fn link_stays_inside(path: &str, target: &Path) -> bool {
    if target.as_os_str().is_empty() || target.has_root() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = Path::new(path)
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for component in target.components() {
        match component {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The SHA-256 of `bytes` as lower-case hex.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_stay_inside_the_agent_s_folders() {
        let ok = [
            "config/openclaw.json",
            "workspace",
            "workspace/notes/a b.md",
            "workspace/dir/",
            "manifest.json",
        ];
        for name in ok {
            assert!(member_path(Path::new(name)).is_ok(), "{name}");
        }
        let refused = [
            "../etc/passwd",
            "workspace/../../etc/passwd",
            "/etc/passwd",
            "./workspace/a",
            "workspace/./a",
            "cache/x",
            "etc/passwd",
            "manifest.json/x",
            "",
            "workspace\\..\\x",
        ];
        for name in refused {
            assert!(member_path(Path::new(name)).is_err(), "{name}");
        }
    }

    #[test]
    fn links_are_judged_by_where_they_lead() {
        assert!(link_stays_inside("workspace/a", Path::new("b")));
        assert!(link_stays_inside("workspace/d/a", Path::new("../b")));
        assert!(link_stays_inside(
            "workspace/a",
            Path::new("../config/openclaw.json")
        ));
        assert!(!link_stays_inside("workspace/a", Path::new("../../x")));
        assert!(!link_stays_inside("workspace/a", Path::new("/etc/shadow")));
        assert!(!link_stays_inside("workspace/a", Path::new("")));
        assert!(!link_stays_inside(
            "workspace/d/a",
            Path::new("x/../../../../etc")
        ));
    }
}
