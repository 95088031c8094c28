//! The newer-image notice: each agent's registry asked, at launch and about
//! daily, whether its image's tag names a newer build than the one the agent
//! runs (a manifest HEAD: nothing is pulled), with the user's login for that
//! registry and the host's proxy. The answer is the view's `updateAvailable`;
//! a registry that cannot be reached (offline) changes nothing and is said at
//! debug level only.

use std::collections::HashMap;
use std::time::Duration;

use super::state::Input;
use super::Agents;
use crate::image_check::{self, CheckError, Reference};

impl Agents {
    /// Asks each agent's registry once; agents of one image share one question.
    pub async fn check_updates(&self) {
        let http = match image_check::client() {
            Ok(http) => http,
            Err(e) => {
                tracing::warn!(error = %e, "no client for the newer-image check");
                return;
            }
        };
        let mut asked: HashMap<String, Option<String>> = HashMap::new();
        for state in self.states() {
            let record = state.record;
            if record.deleting {
                continue;
            }
            let Some(reference) = Reference::parse(&record.image) else {
                continue;
            };
            let running = record.image_id.as_deref().unwrap_or(&record.image);
            let local = match self.containers().repo_digests(running).await {
                Ok(local) if !local.is_empty() => local,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(agent = %record.id, error = %e, "no digests to compare; not checked");
                    continue;
                }
            };
            let remote = match asked.get(&record.image) {
                Some(known) => known.clone(),
                None => {
                    let login = crate::registry_auth::basic_login(
                        &self.settings().registry_auth_files,
                        &record.image,
                    );
                    let said = image_check::remote_digest(&http, &reference, login.as_ref()).await;
                    let digest = match said {
                        Ok(digest) => Some(digest),
                        Err(CheckError::Unreachable(e)) => {
                            tracing::debug!(image = %record.image, error = %e, "registry not reached; no newer-image check");
                            None
                        }
                        Err(e) => {
                            tracing::info!(image = %record.image, error = %e, "the registry did not say whether a newer image is out");
                            None
                        }
                    };
                    asked.insert(record.image.clone(), digest.clone());
                    digest
                }
            };
            if let Some(remote) = remote {
                let newer = image_check::is_newer(&remote, &local);
                if let Err(e) = self.transition(record.id, Input::UpdateChecked { newer }) {
                    tracing::warn!(agent = %record.id, error = %e, "could not note the newer-image check");
                }
            }
        }
    }

    /// [`Agents::check_updates`] now, then every `every`, until the shutdown.
    pub(crate) async fn check_updates_forever(self, every: Duration) {
        loop {
            self.check_updates().await;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.inner.tasks.closed() => return,
            }
        }
    }
}
