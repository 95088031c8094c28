//! The agent's folder and `openclaw.json`: written at create, read and rewritten
//! by an edit. The agent can write there itself, so nothing is followed through a
//! link and what is read is bounded.
use std::path::Path;

use super::definition::{self, Provider};
use super::state::Input;
use super::{AgentError, Agents};
use crate::agent_files;
use crate::store::{self, AgentRecord};

impl Agents {
    /// Writes the agent's folders and `openclaw.json` (0600: it holds the key).
    pub(super) async fn write_config(
        &self,
        record: &AgentRecord,
        provider: &Provider,
    ) -> Result<(), AgentError> {
        let agents_dir = self.settings().agents_dir();
        let dir = record.dir.clone();
        let config = definition::openclaw_config(record.port, provider);
        agent_files::blocking(move || {
            let folder = |e: std::io::Error| AgentError::Folder(e.to_string());
            store::create_private_dir(&agents_dir).map_err(folder)?;
            store::create_private_dir(&dir).map_err(folder)?;
            store::create_private_dir(&dir.join("config")).map_err(folder)?;
            store::create_private_dir(&dir.join("workspace")).map_err(folder)?;
            store::create_private_dir(&dir.join("cache")).map_err(folder)?;
            // Replaces whatever is there (a link the agent left is replaced, not
            // followed: the new file is renamed over it).
            write_json(&dir.join(CONFIG_FILE), &config)
        })
        .await
    }

    /// The agent's `openclaw.json` as it is now; a missing one reads as a fresh
    /// config without provider (an edit then repairs it). The agent can write this
    /// file: a link, a special file or more than a MiB is refused, never followed.
    pub(super) async fn read_config(
        &self,
        record: &AgentRecord,
    ) -> Result<serde_json::Value, AgentError> {
        let path = record.dir.join(CONFIG_FILE);
        let port = record.port;
        agent_files::blocking(move || {
            match agent_files::read_regular(&path, agent_files::MAX_CONFIG_BYTES) {
                Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(config) if config.is_object() => Ok(config),
                    Ok(_) => Err(AgentError::Folder(format!(
                        "{} is not a JSON object; fix it or delete it",
                        path.display()
                    ))),
                    Err(e) => Err(AgentError::Folder(format!(
                        "{} is not valid JSON ({e}); fix it or delete it",
                        path.display()
                    ))),
                },
                Err(e) if e.is_not_found() => {
                    Ok(definition::openclaw_config(port, &Provider::None))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Writes the agent's `openclaw.json` anew (0600, ours), handed to the gateway's
    /// user where a rootful engine needs that for the gateway to read it.
    pub(super) async fn write_config_file(
        &self,
        record: &AgentRecord,
        config: &serde_json::Value,
    ) -> Result<(), AgentError> {
        let dir = record.dir.clone();
        let config = config.clone();
        let rootful = self.inner.host.get().is_some_and(|h| h.rootful_native);
        agent_files::blocking(move || {
            write_json(&dir.join(CONFIG_FILE), &config)?;
            if rootful {
                hand_to_gateway_user(&dir)?;
            }
            Ok(())
        })
        .await
    }

    /// Puts `provider` into the agent's `openclaw.json`, keeping the rest of the
    /// file, and records it.
    pub(super) async fn rewrite_provider(
        &self,
        record: &AgentRecord,
        provider: &Provider,
    ) -> Result<(), AgentError> {
        let config =
            definition::with_provider(&self.read_config(record).await?, record.port, provider);
        // Before the new file is written: a backup that cannot go then fails the
        // edit with nothing changed, not half-way with the new key on disk and the
        // old provider on record.
        let config_dir = record.dir.join("config");
        agent_files::blocking(move || remove_config_backups(&config_dir)).await?;
        self.write_config_file(record, &config).await?;
        let shown = definition::provider_input_of_config(&config);
        self.transition(
            record.id,
            Input::Edited {
                provider_type: provider.type_name(),
                notice: provider.notice(),
                model_id: shown.model_id,
                // Clawdock's own, not read back: another provider entry of the
                // agent's could sit under the same id.
                base_url: provider.base_url().map(str::to_string),
            },
        )?;
        Ok(())
    }

    /// Refuses, where a rootful engine needs `openclaw.json` handed to the gateway's
    /// user, a config that is not a regular file (a link, a FIFO): making the
    /// container would fail on it.
    pub(super) async fn config_can_be_handed_over(
        &self,
        record: &AgentRecord,
    ) -> Result<(), AgentError> {
        if !self.inner.host.get().is_some_and(|h| h.rootful_native) {
            return Ok(());
        }
        let path = record.dir.join(CONFIG_FILE);
        agent_files::blocking(move || agent_files::open_regular(&path).map(drop)).await?;
        Ok(())
    }
}

/// The agent's config, relative to its folder: the gateway (the agent) can write
/// it, so the host never follows a link there.
pub(super) const CONFIG_FILE: &str = "config/openclaw.json";

pub(super) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), AgentError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| AgentError::Folder(e.to_string()))?;
    bytes.push(b'\n');
    store::write_secret(path, &bytes)?;
    Ok(())
}

/// The gateway keeps `openclaw.json.bak*` copies of the file it rewrites at start:
/// after an edit they would keep the key the user meant to replace. The agent can
/// put anything at those names (a copy of its config inside a folder, a link, a
/// FIFO), and each would keep the old key or break the edit, so every entry so
/// named goes: a folder with what it holds, a link or special file as a name,
/// never followed or opened.
pub(super) fn remove_config_backups(config_dir: &Path) -> Result<(), AgentError> {
    let entries = match std::fs::read_dir(config_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AgentError::Folder(format!("{}: {e}", config_dir.display()))),
    };
    for entry in entries {
        let entry =
            entry.map_err(|e| AgentError::Folder(format!("{}: {e}", config_dir.display())))?;
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("openclaw.json.bak"))
        {
            continue;
        }
        let path = entry.path();
        // `remove_tree` opens a folder without following a link and removes a link
        // or a file by its name.
        agent_files::remove_tree(&path)
            .map_err(|e| AgentError::Folder(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Rootful Podman runs the gateway as uid 1000 with the folder owned by root (the
/// app runs as root then): hand the agent's folders to that uid so the gateway can
/// write its config. Rootless Podman maps the user into the container instead.
/// Each is changed through its own descriptor, opened without following a link: a
/// link the agent put at `openclaw.json` (to `/etc/shadow`) is refused, not handed
/// over. Blocking.
pub(super) fn hand_to_gateway_user(dir: &Path) -> Result<(), agent_files::AgentFileError> {
    let uid = crate::container_spec::GATEWAY_UID;
    for (path, is_dir) in [
        (dir.to_path_buf(), true),
        (dir.join("config"), true),
        (dir.join("workspace"), true),
        (dir.join("cache"), true),
        (dir.join(CONFIG_FILE), false),
    ] {
        agent_files::chown(&path, is_dir, uid, uid)?;
    }
    Ok(())
}
