//! `agents.json` and the other files of the data folder: atomic writes (temp file,
//! sync, rename), 0600 for anything holding a secret, and corrupt files moved aside
//! as evidence rather than overwritten. The file is input like any other: a record
//! whose folder lies outside the agents folder is refused at load.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

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
    /// A custom provider's base URL as Clawdock wrote it into `openclaw.json` (at
    /// create or edit). The file is the agent's to rewrite: what Clawdock decides
    /// from the provider's address (the Kubernetes export's egress) reads this.
    /// `None`: a built-in provider, none, or a record of an older version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_base_url: Option<String>,
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
    /// The container's memory limit; `None` (records of older versions): the
    /// setting's default.
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// The container's CPU limit, in CPUs (1.5: one and a half); `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// What the agent may take on the disk (its folders, its container's writable
    /// layer and log); `None` (records of older versions): the setting's default.
    #[serde(default, rename = "diskMiB", skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    /// The image an update rolled back from (it did not start): "Update all" does
    /// not try it again until a newer one appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_image: Option<String>,
    /// The `io.clawdock.generation` label of the agent's own container: of the
    /// agent's containers, the one with this label is its (an update makes a
    /// second one beside it). `None`: none made yet, or made by a version without
    /// the label (the agent's container is then the one without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// The image, by ID, the agent's container runs and any container made again
    /// for it (a revive, a port move, new limits) is made from: never the tag,
    /// which may have moved to an image an update rolled back from. `None` until
    /// the first container is made (and for agents of older versions, until seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// An operation of more than one engine step, written before its first step
    /// and cleared after its last: a launch finishes or rolls back what an
    /// interruption left. (A create is journaled by `status: creating`, a delete
    /// by `deleting`.)
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub journal: Option<Journal>,
    /// The crash loop, kept across launches so a relaunch does not restart its
    /// back-off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub crash: Option<CrashRecord>,
    /// When the gateway last became healthy: a death after ten healthy minutes
    /// begins a new crash loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<DateTime<Utc>>,
    /// Fields written by a newer version, kept as they were so a save loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AgentRecord {
    pub fn container_name(&self) -> String {
        container_name(&self.name)
    }
}

/// A field written by a newer version in a shape this one does not know reads as
/// absent (said in the log) rather than failing the whole file.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| match serde_json::from_value(v) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            tracing::warn!(error = %e, "a field of agents.json has a shape this version does not know; ignored");
            None
        }
    }))
}

/// An operation journaled in the agent's record: what it means to do and how far
/// it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub op: JournalOp,
    pub step: Step,
    pub began_at: DateTime<Utc>,
}

/// The journaled operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum JournalOp {
    /// The container made again beside the working one: an update, new limits,
    /// or a container of an older version made again without its restart policy.
    Swap(Swap),
    /// New provider settings for a running agent: the gateway stopped, its
    /// config rewritten, started again, in the same container.
    Edit,
}

/// A swap's plan: the container it replaces and the one it makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Swap {
    pub why: SwapWhy,
    /// The working container's generation (`None`: one without the label).
    pub old_generation: Option<String>,
    pub new_generation: String,
    /// The image the new container is made from, by ID.
    pub image_id: String,
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
    pub cpus: Option<f64>,
    /// The working container ran when the swap began: it is stopped for the new
    /// one to take the port, and started again by a rollback.
    pub was_running: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SwapWhy {
    Update,
    Limits,
    /// A container of an older version, made again without what it should not
    /// have (a restart policy).
    Remake,
    /// A new gateway token (the old one leaked): it is in the container's
    /// environment, fixed when the container is made.
    Token,
}

/// How far a journaled operation got. Until `Committed` an interruption is rolled
/// back (the working container stays the agent's); from it, finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Written; nothing done in the engine yet.
    Begun,
    /// The new container exists (a swap), or the gateway is stopped (an edit).
    Made,
    /// The working container is stopped, for the new one to take the port.
    OldStopped,
    /// The new container is started; its gateway's health is awaited.
    Launched,
    /// The new container is the agent's: the old one is removed and the new one
    /// gets the agent's name.
    Committed,
}

/// A crash loop as kept in the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CrashRecord {
    pub crashes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
    #[serde(default)]
    pub out_of_memory: bool,
    /// A start of the loop began then and had not ended when this was written:
    /// if Clawdock died in it, the next launch counts it as a death.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviving_since: Option<DateTime<Utc>>,
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
    /// Records refused because their folder is not Clawdock's to touch: they are
    /// never loaded (so never mounted, relabelled or deleted).
    pub refused: Option<Refused>,
}

/// Records `agents.json` held that were not loaded, and where they were kept.
#[derive(Debug)]
pub struct Refused {
    /// `name (dir): why` of each.
    pub records: Vec<String>,
    /// `agents.json.refused-<timestamp>`: the refused records as they were.
    pub kept_in: PathBuf,
}

/// Why an agent's folder is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirRefusal {
    #[error("not an absolute path")]
    Relative,
    #[error("not inside {}", .0.display())]
    Outside(PathBuf),
    #[error("a symbolic link")]
    Symlink,
}

/// `path` with `.` and `..` resolved by name alone, never reading the disk; `None`
/// for a relative path or one whose `..` climbs above the root.
pub fn normalize_lexically(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || !out.has_root() {
                    return None;
                }
            }
        }
    }
    Some(out)
}

/// Whether `dir` names a folder strictly inside `agents_dir`, by name alone
/// (pure: after resolving `.` and `..`, reading nothing).
pub fn lies_inside(dir: &Path, agents_dir: &Path) -> Result<(), DirRefusal> {
    let outside = || DirRefusal::Outside(agents_dir.to_path_buf());
    if !dir.is_absolute() {
        return Err(DirRefusal::Relative);
    }
    let dir = normalize_lexically(dir).ok_or_else(outside)?;
    let base = normalize_lexically(agents_dir).ok_or_else(outside)?;
    match dir.strip_prefix(&base) {
        Ok(rest) if rest.components().next().is_some() => Ok(()),
        _ => Err(outside()),
    }
}

/// Whether an agent record's folder is one Clawdock may create, mount (with
/// `:Z`), hand to the gateway user and delete: strictly inside `agents_dir` by
/// name, not itself a symbolic link, and, where it exists, still inside once
/// every link on the way is resolved. A link that cannot be resolved is refused,
/// never followed.
pub fn check_agent_dir(dir: &Path, agents_dir: &Path) -> Result<(), DirRefusal> {
    lies_inside(dir, agents_dir)?;
    let Ok(meta) = fs::symlink_metadata(dir) else {
        // Not there (yet): only the name can be judged, and it was.
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Err(DirRefusal::Symlink);
    }
    match (dir.canonicalize(), agents_dir.canonicalize()) {
        (Ok(real), Ok(base)) => lies_inside(&real, &base),
        _ => Err(DirRefusal::Outside(agents_dir.to_path_buf())),
    }
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

    /// [`Store::load`], then refuses every record whose folder fails
    /// [`check_agent_dir`]: the refused records are written, as they were, to
    /// `agents.json.refused-<timestamp>` (0600, they hold tokens) and `agents.json`
    /// is saved without them, so they are refused and reported once.
    pub fn load_within(&self, agents_dir: &Path) -> Result<Loaded, StoreError> {
        let mut loaded = self.load()?;
        let (kept, refused): (Vec<_>, Vec<_>) = loaded
            .agents
            .into_iter()
            .map(|r| {
                let verdict = check_agent_dir(&r.dir, agents_dir);
                (r, verdict)
            })
            .partition(|(_, verdict)| verdict.is_ok());
        loaded.agents = kept.into_iter().map(|(r, _)| r).collect();
        if refused.is_empty() {
            return Ok(loaded);
        }
        let records: Vec<&AgentRecord> = refused.iter().map(|(r, _)| r).collect();
        let kept_in = self.aside_path("refused");
        let mut json = serde_json::to_vec_pretty(&records).map_err(|e| StoreError::Write {
            path: kept_in.clone(),
            source: io::Error::other(e),
        })?;
        json.push(b'\n');
        write_secret(&kept_in, &json)?;
        self.save(&loaded.agents)?;
        let records: Vec<String> = refused
            .iter()
            .map(|(r, why)| {
                let why = why
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                format!("{} ({}): {why}", r.name, r.dir.display())
            })
            .collect();
        tracing::error!(file = %kept_in.display(), ?records, "agents.json held records whose folder is not Clawdock's; they were not loaded");
        loaded.refused = Some(Refused { records, kept_in });
        Ok(loaded)
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
                ..Loaded::default()
            }),
            Err(e) => self.move_aside(e.to_string()),
        }
    }

    /// `agents.json.<what>-<timestamp>`, a name no file has yet.
    fn aside_path(&self, what: &str) -> PathBuf {
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let mut aside = self.path.with_extension(format!("json.{what}-{stamp}"));
        let mut n = 1;
        while aside.exists() {
            aside = self.path.with_extension(format!("json.{what}-{stamp}-{n}"));
            n += 1;
        }
        aside
    }

    fn move_aside(&self, reason: String) -> Result<Loaded, StoreError> {
        let aside = self.aside_path("corrupt");
        fs::rename(&self.path, &aside).map_err(|source| StoreError::Write {
            path: aside.clone(),
            source,
        })?;
        tracing::error!(file = %aside.display(), %reason, "agents.json was unreadable and was moved aside");
        Ok(Loaded {
            moved_aside: Some((aside, reason)),
            ..Loaded::default()
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

/// Creates a folder only its owner can enter, failing if anything is there
/// already (its parent must exist).
#[cfg(unix)]
pub fn create_private_dir_new(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o700).create(path)
}

/// Elsewhere the folder's access is its parent's (the data folder's).
#[cfg(not(unix))]
pub fn create_private_dir_new(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().create(path)
}

/// A plain stopped agent for unit tests; tests change the fields they are about.
#[cfg(test)]
pub(crate) fn sample_record(name: &str) -> AgentRecord {
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
        provider_base_url: None,
        wanted: Wanted::Stopped,
        running_at_quit: false,
        deleting: false,
        image: "img".into(),
        memory_mib: None,
        cpus: None,
        disk_mib: None,
        rejected_image: None,
        generation: None,
        image_id: None,
        journal: None,
        crash: None,
        healthy_since: None,
        extra: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> AgentRecord {
        sample_record(name)
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
            "sandboxProfile":"strict"}]"#,
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
        assert_eq!(
            again[0]["sandboxProfile"], "strict",
            "unknown fields survive a save"
        );
    }

    #[test]
    fn an_agent_folder_must_lie_inside_the_agents_folder_by_name() {
        let agents = Path::new("/home/u/.local/share/clawdock/agents");
        let cases: &[(&str, bool)] = &[
            ("/home/u/.local/share/clawdock/agents/8b1c", true),
            ("/home/u/.local/share/clawdock/agents/./8b1c", true),
            ("/home/u/.local/share/clawdock/agents/x/../8b1c", true),
            ("/home/u/.local/share/clawdock/agents", false),
            ("/home/u/.local/share/clawdock/agents/", false),
            ("/home/u/.local/share/clawdock/agents/8b1c/..", false),
            ("/home/u/.local/share/clawdock/agents/../../x", false),
            ("/home/u/.local/share/clawdock/agents-evil/8b1c", false),
            ("/etc", false),
            ("/", false),
            ("/../../etc", false),
            ("agents/8b1c", false),
            ("", false),
        ];
        for (dir, inside) in cases {
            assert_eq!(
                lies_inside(Path::new(dir), agents).is_ok(),
                *inside,
                "{dir}"
            );
        }
        assert_eq!(
            lies_inside(Path::new("relative/x"), agents),
            Err(DirRefusal::Relative)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_agents_folder_is_refused() {
        let home = tempfile::tempdir().expect("tempdir");
        let agents = home.path().join("agents");
        fs::create_dir_all(agents.join("real")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", agents.join("to-etc")).expect("link");
        std::os::unix::fs::symlink("/nonexistent/x", agents.join("dangling")).expect("link");
        fs::create_dir_all(agents.join("real/inner")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", agents.join("real/inner/up")).expect("link");
        assert_eq!(check_agent_dir(&agents.join("real"), &agents), Ok(()));
        assert_eq!(check_agent_dir(&agents.join("not-yet"), &agents), Ok(()));
        assert_eq!(
            check_agent_dir(&agents.join("to-etc"), &agents),
            Err(DirRefusal::Symlink)
        );
        assert_eq!(
            check_agent_dir(&agents.join("dangling"), &agents),
            Err(DirRefusal::Symlink)
        );
        // A link further up the path, resolved: outside.
        assert!(matches!(
            check_agent_dir(&agents.join("real/inner/up/passwd"), &agents),
            Err(DirRefusal::Outside(_))
        ));
    }

    #[test]
    fn refused_records_are_kept_aside_and_dropped_from_the_store() {
        let home = tempfile::tempdir().expect("tempdir");
        let agents_dir = home.path().join("agents");
        let store = Store::new(home.path().join("agents.json"));
        let mut good = record("good");
        good.dir = agents_dir.join(good.id.to_string());
        let mut bad = record("bad");
        bad.dir = PathBuf::from("/etc");
        store.save(&[good.clone(), bad.clone()]).expect("save");
        let loaded = store.load_within(&agents_dir).expect("load");
        assert_eq!(loaded.agents, vec![good.clone()]);
        let refused = loaded.refused.expect("refused");
        assert!(
            refused.records[0].starts_with("bad (/etc)"),
            "{:?}",
            refused.records
        );
        let kept: Vec<AgentRecord> =
            serde_json::from_slice(&fs::read(&refused.kept_in).expect("kept")).expect("json");
        assert_eq!(kept, vec![bad]);
        // Refused once: the next load finds nothing to refuse.
        let again = store.load_within(&agents_dir).expect("load");
        assert_eq!(again.agents, vec![good]);
        assert!(again.refused.is_none());
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
