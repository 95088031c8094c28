//! Restore: an agent made from a backup archive, on this computer (after a
//! delete, or beside the original under another name) or on another. The archive
//! is checked whole before anything is written ([`crate::archive::check`]), then
//! written into a new folder beside the agents' that becomes the agent's only
//! once complete (renamed into place). Replacing an agent of the same name
//! happens only when asked, after a snapshot of it. The agent gets a new id, a
//! free port, a fresh gateway token and a new container: from the image it ran,
//! by ID, when this engine has it, else from its reference, pulled.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::definition;
use super::registry::NewAgent;
use super::state::Container;
use super::{AgentError, AgentView, Agents};
use crate::archive::{self, Bounds, Skipped};
use crate::store::AgentStatus;

/// What a restore is asked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOptions {
    /// The restored agent's name; the archive's if absent.
    pub name: Option<String>,
    /// Replace an agent of that name (a snapshot of it is kept first).
    #[serde(default)]
    pub replace: bool,
}

/// What a restore made, for the user to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutcome {
    /// The agent, recorded and starting (follow its events).
    pub agent: AgentView,
    /// The name the archive's agent had.
    pub from_name: String,
    pub taken_at: chrono::DateTime<chrono::Utc>,
    pub files: usize,
    pub bytes: u64,
    /// What the backup had left out (links pointing out, special files).
    pub skipped: Vec<Skipped>,
    /// The agent replaced, whose snapshot the new agent keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

impl Agents {
    /// Makes an agent from the archive `file` and starts it; answers once the
    /// agent is recorded (its start goes on: follow its events).
    pub async fn restore_backup(
        &self,
        file: PathBuf,
        options: RestoreOptions,
    ) -> Result<RestoreOutcome, AgentError> {
        self.detached(move |this| async move { this.restore_now(file, options).await })
            .await
    }

    async fn restore_now(
        &self,
        file: PathBuf,
        options: RestoreOptions,
    ) -> Result<RestoreOutcome, AgentError> {
        self.refuse_when_shutting_down()?;
        let bounds = Bounds::default();
        let archive_file = file.clone();
        let checked = crate::agent_files::blocking(move || {
            Ok::<_, AgentError>(archive::check(&archive_file, bounds)?)
        })
        .await?;
        let settings = checked.manifest.agent.clone();
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| settings.name.clone())
            .trim()
            .to_string();
        definition::validate_name(&name).map_err(AgentError::InvalidName)?;
        let memory_mib = match settings.memory_mib {
            Some(m) => {
                super::limits::check_memory(m)?;
                m
            }
            None => self.settings().agent_memory_mib,
        };
        let disk_mib = match settings.disk_mib {
            Some(d) => {
                crate::sizing::check_disk_limit(d).map_err(AgentError::InvalidInput)?;
                d
            }
            None => self.settings().agent_disk_mib,
        };
        let replaced = self
            .list()
            .into_iter()
            .find(|a| a.name.eq_ignore_ascii_case(&name));
        if replaced.is_some() && !options.replace {
            return Err(AgentError::Duplicate(name));
        }
        if self.machine().podman().bin().is_none() {
            return Err(AgentError::RuntimeUnavailable(
                crate::engine::install_hint().into(),
            ));
        }
        // The engine first: under rootful Podman the files go to the gateway's
        // user as they are written.
        self.runtime_ready().await?;
        let owner = self
            .inner
            .host
            .get()
            .is_some_and(|h| h.rootful_native)
            .then_some((
                crate::container_spec::GATEWAY_UID,
                crate::container_spec::GATEWAY_UID,
            ));
        let id = Uuid::new_v4();
        let agents_dir = self.settings().agents_dir();
        let staging = agents_dir.join(format!(".restore-{id}"));
        let dir = definition::agent_dir(&agents_dir, &id);
        let written = {
            let (staging, dir, file, checked) =
                (staging.clone(), dir.clone(), file.clone(), checked.clone());
            crate::agent_files::blocking(move || {
                crate::store::create_private_dir(&agents_dir)
                    .map_err(|e| AgentError::Folder(e.to_string()))?;
                let result = archive::extract(&file, &checked, &staging, owner, bounds)
                    .map_err(AgentError::from)
                    .and_then(|()| {
                        crate::store::create_private_dir(&staging.join("cache"))
                            .map_err(|e| AgentError::Folder(e.to_string()))?;
                        if let Some((uid, gid)) = owner {
                            crate::agent_files::chown(&staging.join("cache"), true, uid, gid)?;
                        }
                        Ok(())
                    });
                if result.is_err() {
                    if let Err(e) = crate::agent_files::remove_tree(&staging) {
                        tracing::warn!(dir = %staging.display(), error = %e, "could not remove a restore that failed");
                    }
                }
                result?;
                Ok::<_, AgentError>(dir)
            })
            .await
        };
        let dir = written?;
        let replaced_name = match &replaced {
            Some(old) => match self.replace(old.id, id).await {
                Ok(()) => Some(old.name.clone()),
                Err(e) => {
                    discard(&staging).await;
                    return Err(e);
                }
            },
            None => None,
        };
        // Complete: the folder becomes the agent's.
        if let Err(e) = std::fs::rename(&staging, &dir) {
            discard(&staging).await;
            return Err(AgentError::Folder(format!(
                "could not move the restored folder into place: {e}"
            )));
        }
        let config = self.read_restored_config(&dir).await;
        let view = match self.record_restored(
            NewAgent {
                id,
                name,
                provider_type: settings.provider_type.clone(),
                provider_base_url: settings.provider_base_url.clone(),
                image: settings.image.clone(),
                image_id: settings.image_id.clone(),
                memory_mib,
                cpus: settings.cpus,
                disk_mib,
            },
            &config,
        ) {
            Ok(view) => view,
            Err(e) => {
                discard(&dir).await;
                return Err(e);
            }
        };
        let log = self.log_ring(id)?;
        let manifest = &checked.manifest;
        log.push(format!(
            "Restored from a backup of {} taken {}: {} files, {} bytes{}",
            settings.name,
            manifest.created_at.format("%Y-%m-%d %H:%M UTC"),
            manifest.files(),
            manifest.bytes(),
            replaced_name
                .as_ref()
                .map(|n| format!(", replacing the agent {n} (a snapshot of it is kept)"))
                .unwrap_or_default()
        ));
        let this = self.clone();
        let started = self.inner.tasks.spawn_op(async move {
            if let Err(e) = this.build_restored(id).await {
                tracing::warn!(agent = %id, error = %e, "a restored agent did not start");
            }
        });
        if started.is_none() {
            return Err(AgentError::ShuttingDown);
        }
        Ok(RestoreOutcome {
            agent: view,
            from_name: settings.name.clone(),
            taken_at: manifest.created_at,
            files: manifest.files(),
            bytes: manifest.bytes(),
            skipped: manifest.skipped.clone(),
            replaced: replaced_name,
        })
    }

    /// Replaces the agent `old` by the one being restored as `new`: its
    /// snapshots and a snapshot of it now go to `new`, then it is deleted.
    async fn replace(&self, old: Uuid, new: Uuid) -> Result<(), AgentError> {
        {
            let (_serial, current) = self.when_idle(old)?;
            let running = current.live.container == Container::Running
                || current.record.status == AgentStatus::Running;
            self.move_snapshots(old, new)?;
            let log = self.log_ring(old)?;
            if let Err(e) = self
                .snapshot(&current.record, running, new, "restore", &log)
                .await
            {
                // Its snapshots go back with it: the agent stays as it was.
                if let Err(back) = self.move_snapshots(new, old) {
                    tracing::error!(agent = %old, error = %back, "could not give the snapshots back");
                }
                return Err(e);
            }
        }
        self.delete(old).await
    }

    /// The restored `openclaw.json` as the view's model and base URL read it
    /// (nothing if it is missing or not JSON: the gateway says so at start).
    async fn read_restored_config(&self, dir: &std::path::Path) -> serde_json::Value {
        let path = dir.join(super::config::CONFIG_FILE);
        crate::agent_files::blocking(move || {
            Ok::<_, AgentError>(
                crate::agent_files::read_regular(&path, crate::agent_files::MAX_CONFIG_BYTES)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or(serde_json::Value::Null),
            )
        })
        .await
        .unwrap_or(serde_json::Value::Null)
    }

    /// The restored agent's first start: its config pointed at its new port, a
    /// container from the pinned image (or the reference, pulled), the gateway.
    async fn build_restored(&self, id: Uuid) -> Result<AgentView, AgentError> {
        let _serial = self.serial(id).await?;
        let log = self.log_ring(id)?;
        let result = async {
            let record = self.state(id)?.record;
            let mut config = self.read_config(&record).await?;
            if config.get("gateway").is_some() {
                definition::move_config_to_port(&mut config, record.port)
                    .map_err(AgentError::Folder)?;
                self.write_config_file(&record, &config).await?;
            }
            log.push("Checking container runtime...");
            self.ensure_runtime(id).await?;
            let container = self.make_container(&record, &log).await?;
            self.launch_and_wait(&record, &container, &log).await
        }
        .await;
        self.finish_start(id, result, &log).await
    }
}

/// Removes what a backup or restore that Clawdock died in left: archives on their
/// way through `<data folder>/tmp` (they hold keys) and `agents/.restore-*`
/// folders never made an agent's. At launch, before any operation.
pub(crate) fn sweep_leftovers(settings: &crate::settings::Settings) {
    let places = [
        (settings.home.join("tmp"), "archive-"),
        (settings.agents_dir(), ".restore-"),
    ];
    for (dir, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(prefix) {
                continue;
            }
            let path = entry.path();
            // A restore's folder holds what the archive held, however deep.
            match crate::agent_files::remove_tree(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed what an interrupted backup or restore left")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove what an interrupted backup or restore left")
                }
            }
        }
    }
}

/// Removes a folder a restore wrote and did not keep.
async fn discard(dir: &std::path::Path) {
    let dir = dir.to_path_buf();
    let removed = crate::agent_files::blocking(move || {
        crate::agent_files::remove_tree(&dir)
            .map_err(|e| AgentError::Folder(format!("{}: {e}", dir.display())))
    })
    .await;
    if let Err(e) = removed {
        tracing::warn!(error = %e, "could not remove a restore that was not kept");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_an_interrupted_backup_or_restore_left_is_swept_and_nothing_else() {
        let home = tempfile::tempdir().expect("tmp");
        let settings = crate::settings::Settings::new(
            home.path().to_path_buf(),
            crate::engine::Podman::new(None),
            crate::machine::Mode::Native,
        );
        let tmp = home.path().join("tmp");
        let agents = settings.agents_dir();
        for dir in [
            tmp.join("keep"),
            agents.join(".restore-1/workspace"),
            agents.join("a1/workspace"),
        ] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(tmp.join("archive-1.tar.gz"), b"key").expect("write");
        super::sweep_leftovers(&settings);
        assert!(!tmp.join("archive-1.tar.gz").exists());
        assert!(!agents.join(".restore-1").exists());
        assert!(agents.join("a1/workspace").exists() && tmp.join("keep").exists());
    }
}
