//! New limits (memory, CPUs): the container made again with them beside the
//! working one, which comes back if the new one does not get healthy.

use uuid::Uuid;

use super::definition;
use super::logs;
use super::state::{self, Container, Input, Op};
use super::swap::{Plan, Swapped};
use super::{AgentError, AgentView, Agents};
use crate::store::{AgentStatus, SwapWhy};

impl Agents {
    /// Records the limits the agent's container now has (or its next one will).
    pub(super) fn limits_set(
        &self,
        id: Uuid,
        limits: &crate::container_spec::Limits,
    ) -> Result<(), AgentError> {
        self.transition(
            id,
            Input::LimitsSet {
                memory_mib: limits.memory_mib,
                cpus: limits.cpus,
            },
        )?;
        Ok(())
    }

    /// Makes the agent's container again with new limits (see `edit`), writing
    /// `provider` into its config while no gateway runs.
    pub(super) async fn remake_with_limits(
        &self,
        id: Uuid,
        current: state::AgentState,
        limits: crate::container_spec::Limits,
        provider: Option<&definition::Provider>,
    ) -> Result<AgentView, AgentError> {
        let log = self.log_ring(id)?;
        let running = current.live.container == Container::Running
            || current.record.status == AgentStatus::Running;
        // Before anything changes (the swap's journal included); without it the
        // change does not begin.
        self.snapshot(&current.record, running, id, "limits", &log)
            .await?;
        let record = crate::store::AgentRecord {
            memory_mib: Some(limits.memory_mib),
            cpus: limits.cpus,
            ..current.record
        };
        let rewrite = async {
            if let Some(provider) = provider {
                // Written while the gateway is down: it may write the file itself.
                self.rewrite_provider(&record, provider).await?;
            }
            Ok(())
        };
        let found = async {
            self.ensure_runtime(id).await?;
            self.config_can_be_handed_over(&record).await?;
            Ok::<_, AgentError>(self.current(id).await?)
        };
        self.transition(
            id,
            Input::Begin(if running { Op::Restart } else { Op::Update }),
        )?;
        log.push(format!(
            "Making the container again with new limits ({})...",
            limits_words(&limits)
        ));
        let old = match found.await {
            Ok(Some(old)) => old,
            Ok(None) => {
                // No container: the next start makes one with the new limits.
                let written = rewrite.await;
                self.limits_set(id, &limits)?;
                return match written {
                    Ok(()) if running => Box::pin(self.start_now_locked(id, &log)).await,
                    Ok(()) => {
                        self.transition(id, Input::Ended)?;
                        self.get(id).ok_or(AgentError::NotFound)
                    }
                    Err(e) => Err(self.settle_edit_failure(id, e, &log).await),
                };
            }
            Err(e) => return Err(self.settle_edit_failure(id, e, &log).await),
        };
        let was_running = old.state == Container::Running;
        // The image the working container runs, never the tag (which may name
        // one an update rolled back from).
        let plan = Plan {
            why: SwapWhy::Limits,
            image_id: old.image_id.clone(),
            limits,
        };
        let (failure, made) =
            match Box::pin(self.swap_container(&record, &old, plan, rewrite, &log)).await {
                Swapped::Done => {
                    self.limits_set(id, &limits)?;
                    if was_running {
                        return self.finish_start(id, Ok(()), &log).await;
                    }
                    log.push("The agent has the new limits at its next start");
                    self.transition(id, Input::Ended)?;
                    return self.get(id).ok_or(AgentError::NotFound);
                }
                Swapped::NotBegun(e) => return Err(self.settle_edit_failure(id, e, &log).await),
                Swapped::Failed { failure, made } => (failure, made),
            };
        log.push(format!(
            "ERROR: the container with the new limits did not start ({failure}); the agent went back to its previous limits."
        ));
        let failure = Box::pin(self.roll_back(id, &old, made, failure, &log)).await?;
        // A gateway that did not get healthy is said with the rollback; every
        // other error (Podman's, a cancel, the shutdown) as it was.
        Err(match failure {
            AgentError::Gateway(why) => AgentError::Gateway(format!(
                "The new limits did not work ({why}); the agent went back to its previous ones."
            )),
            other => other,
        })
    }

    /// An edit that failed before the container changed: the agent as it was.
    pub(super) async fn settle_edit_failure(
        &self,
        id: Uuid,
        err: AgentError,
        log: &logs::LogRing,
    ) -> AgentError {
        log.push(format!("Edit failed: {err}"));
        if let Err(e) = self.transition(id, Input::Ended) {
            tracing::warn!(agent = %id, error = %e, "could not record the end of an edit");
        }
        err
    }
}

/// Limits in words, for the agent's log.
pub(super) fn limits_words(limits: &crate::container_spec::Limits) -> String {
    let memory = format!("memory {} MiB", limits.memory_mib);
    match limits.cpus {
        Some(cpus) => format!("{memory}, {} CPUs", crate::container_spec::cpus_arg(cpus)),
        None => format!("{memory}, no CPU limit"),
    }
}

/// Refuses a memory limit outside its bounds.
pub(super) fn check_memory(memory_mib: u64) -> Result<(), AgentError> {
    crate::sizing::check_memory_limit(memory_mib).map_err(AgentError::InvalidInput)
}
