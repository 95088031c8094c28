//! Backup: the agent's `config/` and `workspace/`, its settings (image pinned by
//! ID, provider, limits) and a manifest of every file's SHA-256, written as one
//! archive (see [`crate::archive`]) into a new file only its owner can read: it
//! holds the provider key. A running agent is not paused: each file is read whole
//! as it is at that moment (the manifest says `live`); a stopped one is exact.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::state::Container;
use super::{AgentError, Agents};
use crate::archive::{self, AgentSettings, Consistency, Manifest};
use crate::store::{AgentRecord, AgentStatus};

impl Agents {
    /// Writes the agent's archive to `file`, which must not exist (made 0600).
    /// Refused while another operation runs on the agent; the agent is left as
    /// it is.
    pub async fn backup(&self, id: Uuid, file: PathBuf) -> Result<Manifest, AgentError> {
        self.detached(move |this| async move {
            let (_serial, current) = this.when_idle(id)?;
            let running = current.live.container == Container::Running
                || current.record.status == AgentStatus::Running;
            this.pack(&current.record, running, &file).await
        })
        .await
    }

    /// Packs the agent's folder into `file` (new, 0600) under the lock the caller
    /// holds; a file left half-written by a failure is removed.
    pub(super) async fn pack(
        &self,
        record: &AgentRecord,
        running: bool,
        file: &Path,
    ) -> Result<Manifest, AgentError> {
        let settings = AgentSettings {
            name: record.name.clone(),
            id: record.id,
            image: record.image.clone(),
            image_id: record.image_id.clone(),
            provider_type: record.provider_type.clone(),
            provider_base_url: record.provider_base_url.clone(),
            memory_mib: Some(self.limits_of(record).memory_mib),
            cpus: record.cpus,
            disk_mib: Some(record.disk_mib.unwrap_or(self.settings().agent_disk_mib)),
            port: record.port,
        };
        let consistency = if running {
            Consistency::Live
        } else {
            Consistency::Stopped
        };
        let dir = record.dir.clone();
        let file = file.to_path_buf();
        let began = std::time::Instant::now();
        let packed = crate::agent_files::blocking(move || {
            let out = new_private_file(&file)?;
            let packed = archive::pack(
                &dir,
                settings,
                consistency,
                std::io::BufWriter::new(out),
                archive::Bounds::default(),
            )
            .map_err(AgentError::from);
            if packed.is_err() {
                if let Err(e) = std::fs::remove_file(&file) {
                    tracing::warn!(file = %file.display(), error = %e, "could not remove a backup that failed");
                }
            }
            packed
        })
        .await?;
        tracing::info!(
            agent = %record.id,
            files = packed.manifest.files(),
            bytes = packed.manifest.bytes(),
            skipped = packed.manifest.skipped.len(),
            ms = began.elapsed().as_millis() as u64,
            "backup written"
        );
        Ok(packed.manifest)
    }
}

/// A new file only its owner can read (a backup holds the provider key); an
/// existing file is never overwritten or followed.
pub fn new_private_file(path: &Path) -> Result<std::fs::File, AgentError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| AgentError::Folder(format!("could not write {}: {e}", path.display())))
}
