//! The swap an update and a limits change share: a new container made beside the
//! working one, which is rolled back to when the new one fails.
use std::future::Future;

use uuid::Uuid;

use super::logs;
use super::state::{Container, Input};
use super::{AgentError, Agents};
use crate::container::Found;

impl Agents {
    /// Renames the working container `old` to `aside` for a swap. A swap cut
    /// short (Clawdock crashed or was killed in it) may have left containers of
    /// this agent behind, one of them holding `aside`: only `old` is the working
    /// one, so the others go first.
    pub(super) async fn set_aside(
        &self,
        id: Uuid,
        old: &crate::container::Found,
        aside: &str,
    ) -> Result<(), crate::engine::PodmanError> {
        for left in self.containers().all_of(id).await? {
            if left.id != old.id {
                tracing::info!(agent = %id, container = %left.name, "removing a container an earlier update left behind");
                self.containers()
                    .remove(&left.id, self.settings().stop_timeout)
                    .await?;
            }
        }
        if old.name.trim_start_matches('/') == aside {
            return Ok(());
        }
        self.containers().rename(&old.id, aside).await
    }

    /// Makes the agent's container again from `record` (its image and limits)
    /// beside the working one, `old`: `old` is renamed aside and runs on while the
    /// new one is made; if it ran, it is then stopped for the new one to take the
    /// port, `between` runs while no gateway runs, and the new one starts and must
    /// get healthy. On success `old` is removed; on failure `roll_back` brings it
    /// back.
    pub(super) async fn swap_container(
        &self,
        record: &crate::store::AgentRecord,
        old: &Found,
        was_running: bool,
        between: impl Future<Output = Result<(), AgentError>>,
        log: &logs::LogRing,
    ) -> Swapped {
        let aside = format!("{}-previous", record.container_name());
        let stop_timeout = self.settings().stop_timeout;
        if let Err(e) = self.set_aside(record.id, old, &aside).await {
            return Swapped::NotBegun(e.into());
        }
        let mut made = false;
        let moved = async {
            let container = self.make_container(record, log).await?;
            made = true;
            if was_running {
                self.containers().stop(&old.id, stop_timeout).await?;
            }
            between.await?;
            if was_running {
                self.launch_and_wait(record, &container, log).await?;
            }
            Ok::<(), AgentError>(())
        }
        .await;
        match moved {
            Ok(()) => {
                if let Err(e) = self.containers().remove(&old.id, stop_timeout).await {
                    tracing::warn!(agent = %record.id, container = %old.id, error = %e,
                        "could not remove the agent's previous container");
                }
                Swapped::Done
            }
            Err(failure) => Swapped::Failed { failure, made },
        }
    }

    /// After a failed `swap_container`: the new container goes (its last lines to
    /// the log), the old one gets its name back and runs again if it ran. Gives
    /// back `failure`, or the error the agent ended with when even that failed
    /// (or the shutdown left it stopped).
    pub(super) async fn roll_back(
        &self,
        id: Uuid,
        old: &Found,
        was_running: bool,
        made: bool,
        failure: AgentError,
        log: &logs::LogRing,
    ) -> Result<AgentError, AgentError> {
        if made {
            self.discard_failed_container(id, log).await;
        }
        let record = self.state(id)?.record;
        if let Err(e) = self
            .containers()
            .rename(&old.id, &record.container_name())
            .await
        {
            let err = AgentError::from(e);
            return Err(self.start_failed(id, err, log).await);
        }
        let old_runs =
            was_running && self.containers().inspect(&old.id).await == Some(Container::Running);
        let closing = self.inner.tasks.is_closing();
        if was_running && !old_runs && !closing {
            // The user's cancel ended the change, not the agent: it runs again.
            self.fresh_cancel(id);
            let relaunched = self.launch_and_wait(&record, &old.id, log).await;
            self.finish_start(id, relaunched, log).await?;
        } else if closing && was_running {
            // Left stopped, under its own name, for the next launch to restore.
            return Err(self.start_failed(id, failure, log).await);
        } else {
            // Untouched (the new one never started) or not running before.
            self.transition(id, Input::Ended)?;
            self.transition(
                id,
                Input::Seen {
                    container: if old_runs {
                        Container::Running
                    } else {
                        old.state
                    },
                    id: Some(old.id.clone()),
                },
            )?;
        }
        Ok(failure)
    }
}

/// How `swap_container` ended.
pub(super) enum Swapped {
    /// The new container runs (or is made, for an agent that was not running).
    Done,
    /// Nothing changed: the old container could not be put aside.
    NotBegun(AgentError),
    /// Failed half-way (`made`: after the new container was made): roll back.
    Failed { failure: AgentError, made: bool },
}
