//! Snapshots: an agent's backup taken before every update, edit and limits
//! change (and before a restore replaces it), the last few kept per agent in
//! `<data folder>/snapshots/<agent id>/` (folders 0700, files 0600), listed and
//! restored like any backup. A snapshot that cannot be written stops the
//! operation before it changes anything: it is the way back from that change.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::logs::LogRing;
use super::{AgentError, Agents};
use crate::store::AgentRecord;

/// A snapshot as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Its file's name, which names it in the API (`<time>-<why>.tar.gz`).
    pub name: String,
    pub taken_at: DateTime<Utc>,
    /// What it was taken before: `update`, `edit`, `limits`, `restore`.
    pub before: String,
    pub bytes: u64,
}

const SUFFIX: &str = ".tar.gz";

impl Agents {
    /// The agent's snapshots, newest first.
    pub fn snapshots(&self, id: Uuid) -> Result<Vec<Snapshot>, AgentError> {
        self.get(id).ok_or(AgentError::NotFound)?;
        Ok(list(&self.snapshot_dir(id)))
    }

    /// The file of the agent's snapshot `name`, if it has one by that name.
    pub fn snapshot_file(&self, id: Uuid, name: &str) -> Result<PathBuf, AgentError> {
        let known = self.snapshots(id)?.into_iter().any(|s| s.name == name);
        if !known {
            return Err(AgentError::NotFound);
        }
        Ok(self.snapshot_dir(id).join(name))
    }

    pub(super) fn snapshot_dir(&self, id: Uuid) -> PathBuf {
        self.settings().snapshots_dir().join(id.to_string())
    }

    /// Takes a snapshot of `record`'s agent into the snapshots of `owner` (the
    /// agent itself, or the one replacing it), keeping the newest
    /// [`crate::settings::Settings::snapshots_kept`]. Under the agent's lock.
    pub(super) async fn snapshot(
        &self,
        record: &AgentRecord,
        running: bool,
        owner: Uuid,
        what: &'static str,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        let kept = self.settings().snapshots_kept;
        if kept == 0 {
            return Ok(());
        }
        let dir = self.snapshot_dir(owner);
        let failed = |cause: String| AgentError::Snapshot { what, cause };
        let made = dir.clone();
        crate::agent_files::blocking(move || {
            crate::store::create_private_dir(&made).map_err(|e| AgentError::Folder(e.to_string()))
        })
        .await
        .map_err(|e| failed(e.to_string()))?;
        let now = Utc::now();
        let name = format!("{}-{what}{SUFFIX}", now.format("%Y%m%dT%H%M%S%.3fZ"));
        let partial = dir.join(format!(".{name}.partial"));
        self.pack(record, running, &partial)
            .await
            .map_err(|e| failed(e.to_string()))?;
        std::fs::rename(&partial, dir.join(&name)).map_err(|e| failed(e.to_string()))?;
        log.push(format!("Kept a snapshot before the {what}: {name}"));
        for old in list(&dir).into_iter().skip(kept) {
            if let Err(e) = std::fs::remove_file(dir.join(&old.name)) {
                tracing::warn!(file = %old.name, error = %e, "could not remove an old snapshot");
            }
        }
        Ok(())
    }

    /// Hands the snapshots of `from` to `to` (a restore that replaces an agent
    /// keeps its way back).
    pub(super) fn move_snapshots(&self, from: Uuid, to: Uuid) -> Result<(), AgentError> {
        let (old, new) = (self.snapshot_dir(from), self.snapshot_dir(to));
        match std::fs::rename(&old, &new) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AgentError::Folder(format!(
                "could not keep the snapshots of the agent replaced: {e}"
            ))),
            _ => Ok(()),
        }
    }

    /// Removes a deleted agent's snapshots: they hold its keys.
    pub(super) fn remove_snapshots(&self, id: Uuid) -> Result<(), AgentError> {
        crate::agent_files::remove_tree(&self.snapshot_dir(id))
            .map_err(|e| AgentError::Folder(format!("could not remove the agent's snapshots: {e}")))
    }
}

/// The snapshots in `dir`, newest first (a name begins with its time).
fn list(dir: &std::path::Path) -> Vec<Snapshot> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Snapshot> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stem = name.strip_suffix(SUFFIX)?;
            let (time, before) = stem.split_once('-')?;
            let taken_at =
                DateTime::parse_from_str(&format!("{time}+0000"), "%Y%m%dT%H%M%S%.3fZ%z")
                    .ok()?
                    .with_timezone(&Utc);
            let meta = entry.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some(Snapshot {
                name: name.clone(),
                taken_at,
                before: before.to_string(),
                bytes: meta.len(),
            })
        })
        .collect();
    found.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then(b.name.cmp(&a.name)));
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn snapshots_are_listed_newest_first_and_strangers_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        for name in [
            "20261201T100000.000Z-update.tar.gz",
            "20261203T100000.000Z-edit.tar.gz",
            "20261202T100000.000Z-limits.tar.gz",
            ".20261204T100000.000Z-edit.tar.gz.partial",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let names: Vec<String> = super::list(dir.path())
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            [
                "20261203T100000.000Z-edit.tar.gz",
                "20261202T100000.000Z-limits.tar.gz",
                "20261201T100000.000Z-update.tar.gz"
            ]
        );
    }
}
