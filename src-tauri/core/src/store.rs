//! `agents.json` and the other files of the data folder: atomic writes (temp file,
//! sync, rename), 0600 for anything holding a secret, and corrupt files moved aside
//! as evidence rather than overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An agent's status, as the replaced runtime named them. A value this version does
/// not know (written by a newer one) reads as `stopped`: the first listing of the
/// containers then says what is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Creating,
    Running,
    Stopped,
    Error,
}

impl<'de> Deserialize<'de> for AgentStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(d)?.as_str() {
            "creating" => Self::Creating,
            "running" => Self::Running,
            "error" => Self::Error,
            _ => Self::Stopped,
        })
    }
}

/// What the user last asked of the agent; decides what a container exit means and
/// which agents start again at the next launch. Unknown values read as `stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Wanted {
    Running,
    #[default]
    Stopped,
}

impl<'de> Deserialize<'de> for Wanted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(d)?.as_str() {
            "running" => Self::Running,
            _ => Self::Stopped,
        })
    }
}

/// One agent as persisted. Holds the gateway token: never serialised to clients
/// (see `agents::AgentView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    pub id: Uuid,
    pub name: String,
    pub status: AgentStatus,
    pub port: u16,
    pub dir: PathBuf,
    pub token: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    #[serde(default)]
    pub wanted: Wanted,
    /// Whether the agent was running when the app last quit; cleared once it has
    /// been started again.
    #[serde(default)]
    pub running_at_quit: bool,
    /// Set before a delete starts, so a crash half-way is finished at the next start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    #[serde(default)]
    pub image: String,
    /// Fields written by a newer version, kept as they were so a save loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AgentRecord {
    pub fn container_name(&self) -> String {
        container_name(&self.name)
    }
}

pub fn container_name(agent_name: &str) -> String {
    format!("clawdock-{agent_name}")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub agents: Vec<AgentRecord>,
    /// Where an unreadable `agents.json` was moved, with why it could not be read.
    pub moved_aside: Option<(PathBuf, String)>,
}

/// `agents.json` in the data folder.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the agents. A file that does not parse is renamed to
    /// `agents.json.corrupt-<timestamp>` and reported; the app then starts empty
    /// rather than guess, and the evidence is never overwritten.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return self.move_aside(format!("not UTF-8: {e}"));
            }
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        match serde_json::from_str::<Vec<AgentRecord>>(&text) {
            Ok(agents) => Ok(Loaded {
                agents,
                moved_aside: None,
            }),
            Err(e) => self.move_aside(e.to_string()),
        }
    }

    fn move_aside(&self, reason: String) -> Result<Loaded, StoreError> {
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let mut aside = self.path.with_extension(format!("json.corrupt-{stamp}"));
        let mut n = 1;
        while aside.exists() {
            aside = self
                .path
                .with_extension(format!("json.corrupt-{stamp}-{n}"));
            n += 1;
        }
        fs::rename(&self.path, &aside).map_err(|source| StoreError::Write {
            path: aside.clone(),
            source,
        })?;
        tracing::error!(file = %aside.display(), %reason, "agents.json was unreadable and was moved aside");
        Ok(Loaded {
            agents: Vec::new(),
            moved_aside: Some((aside, reason)),
        })
    }

    pub fn save(&self, agents: &[AgentRecord]) -> Result<(), StoreError> {
        let mut json = serde_json::to_vec_pretty(agents).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        json.push(b'\n');
        write_secret(&self.path, &json)
    }
}

/// Writes a file readable by its owner only, atomically: a crash leaves either the
/// old or the new content, never a mix.
pub fn write_secret(path: &Path, content: &[u8]) -> Result<(), StoreError> {
    write_atomic(path, content, true)
}

/// Writes a file atomically with default permissions.
pub fn write_plain(path: &Path, content: &[u8]) -> Result<(), StoreError> {
    write_atomic(path, content, false)
}

fn write_atomic(path: &Path, content: &[u8], secret: bool) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = open_new(&tmp, secret)?;
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _gone = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

fn open_new(path: &Path, secret: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options.open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates a folder only its owner can enter.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> AgentRecord {
        AgentRecord {
            id: Uuid::new_v4(),
            name: name.into(),
            status: AgentStatus::Stopped,
            port: 18789,
            dir: PathBuf::from("/tmp/x"),
            token: "secret".into(),
            created_at: Utc::now(),
            error: None,
            provider_type: None,
            wanted: Wanted::Stopped,
            running_at_quit: false,
            deleting: false,
            image: "img".into(),
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn round_trip_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("agents.json"));
        assert!(store.load().expect("load").agents.is_empty());
        let agents = vec![record("a"), record("b")];
        store.save(&agents).expect("save");
        assert_eq!(store.load().expect("load").agents, agents);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");
    }

    #[test]
    fn seed_records_load() {
        // A record as the replaced runtime wrote it: no wanted/image fields.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agents.json");
        fs::write(
            &path,
            r#"[{"id":"8b1c1c8e-6a43-4f57-9a57-6c1f8a9c2d11","name":"a","status":"running","port":18789,
            "dir":"/x","token":"t","createdAt":"2026-01-01T00:00:00.000Z","providerType":"openai"}]"#,
        )
        .expect("write");
        let loaded = Store::new(path).load().expect("load");
        assert_eq!(loaded.agents.len(), 1);
        assert_eq!(loaded.agents[0].wanted, Wanted::Stopped);
    }

    #[test]
    fn a_newer_version_s_record_loads_and_keeps_what_it_does_not_know() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agents.json");
        fs::write(
            &path,
            r#"[{"id":"8b1c1c8e-6a43-4f57-9a57-6c1f8a9c2d11","name":"a","status":"hibernating","port":18789,
            "dir":"/x","token":"t","createdAt":"2026-01-01T00:00:00.000Z","wanted":"paused",
            "memoryMiB":4096}]"#,
        )
        .expect("write");
        let store = Store::new(path.clone());
        let loaded = store.load().expect("load");
        assert!(loaded.moved_aside.is_none(), "not treated as corrupt");
        let agent = &loaded.agents[0];
        assert_eq!(agent.status, AgentStatus::Stopped);
        assert_eq!(agent.wanted, Wanted::Stopped);
        store.save(&loaded.agents).expect("save");
        let again: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(again[0]["memoryMiB"], 4096, "unknown fields survive a save");
    }

    #[test]
    fn corrupt_file_is_moved_aside_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agents.json");
        fs::write(&path, b"[{\"id\": broken").expect("write");
        let store = Store::new(path.clone());
        let loaded = store.load().expect("load");
        assert!(loaded.agents.is_empty());
        let (aside, _) = loaded.moved_aside.expect("moved aside");
        assert_eq!(fs::read(&aside).expect("evidence"), b"[{\"id\": broken");
        assert!(!path.exists());
        store.save(&[record("c")]).expect("save");
        assert_eq!(fs::read(&aside).expect("evidence"), b"[{\"id\": broken");
    }
}
