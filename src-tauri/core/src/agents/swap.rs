//! The swap an update and a limits change share: a new container made beside the
//! working one, under a name no agent's container can have, started in its place,
//! and made the agent's only once its gateway is healthy. Until then the working
//! container stays the agent's (its generation is the record's), and a failure, a
//! cancel or the shutdown removes the new one and brings the working one back.
//! Every step is journaled first: an interruption (a crash, `kill -9`) is finished
//! or rolled back by the next launch ([`super::repair`]).

use std::future::Future;

use chrono::Utc;
use uuid::Uuid;

use super::launch::new_generation;
use super::logs::LogRing;
use super::state::{Container, Input};
use super::{AgentError, Agents};
use crate::container::{ContainerId, Found};
use crate::container_spec::{beside_name, Limits, NewContainer};
use crate::store::{AgentRecord, Journal, JournalOp, Step, Swap, SwapWhy};

/// What a swap makes: the new container's image and limits, and why.
pub(super) struct Plan {
    pub why: SwapWhy,
    pub image_id: String,
    pub limits: Limits,
}

/// How `swap_container` ended.
pub(super) enum Swapped {
    /// The new container is the agent's (and runs, if the old one ran).
    Done,
    /// Nothing changed: the swap could not be journaled.
    NotBegun(AgentError),
    /// Failed half-way (`made`: after the new container was made): roll back.
    Failed { failure: AgentError, made: bool },
}

impl Agents {
    /// Makes the agent's container again beside the working one, `old`, as `plan`
    /// says: the new one is made while `old` runs on; if `old` ran, it is then
    /// stopped for the new one to take the port, `between` runs while no gateway
    /// runs, and the new one starts and must get healthy. Then it is the agent's:
    /// `old` is removed and the new one takes the agent's name. On failure the
    /// caller rolls back ([`Agents::roll_back`]).
    pub(super) async fn swap_container(
        &self,
        record: &AgentRecord,
        old: &Found,
        plan: Plan,
        between: impl Future<Output = Result<(), AgentError>>,
        log: &LogRing,
    ) -> Swapped {
        let id = record.id;
        let was_running = old.state == Container::Running;
        let generation = new_generation();
        let journal = Journal {
            op: JournalOp::Swap(Swap {
                why: plan.why,
                old_generation: old.generation.clone(),
                new_generation: generation.clone(),
                image_id: plan.image_id.clone(),
                memory_mib: plan.limits.memory_mib,
                cpus: plan.limits.cpus,
                was_running,
            }),
            step: Step::Begun,
            began_at: Utc::now(),
        };
        if let Err(e) = self.transition(id, Input::Journaled(Some(journal))) {
            return Swapped::NotBegun(e);
        }
        let new_record = AgentRecord {
            memory_mib: Some(plan.limits.memory_mib),
            cpus: plan.limits.cpus,
            ..record.clone()
        };
        let mut made = false;
        let moved = async {
            self.remove_all_but(id, &old.id).await?;
            let name = beside_name(&record.name, &generation);
            let new = NewContainer {
                name: &name,
                generation: &generation,
                image: &plan.image_id,
            };
            let container = self.create_container(&new_record, new, log).await?;
            made = true;
            self.transition(id, Input::Reached(Step::Made))?;
            if was_running {
                self.containers()
                    .stop(&old.id, self.settings().stop_timeout)
                    .await?;
                self.transition(id, Input::Reached(Step::OldStopped))?;
            }
            between.await?;
            if was_running {
                self.transition(id, Input::Reached(Step::Launched))?;
                self.launch_and_wait(&new_record, &container, log).await?;
            }
            self.transition(
                id,
                Input::SwapCommitted {
                    generation: generation.clone(),
                    image_id: plan.image_id.clone(),
                    memory_mib: plan.limits.memory_mib,
                    cpus: plan.limits.cpus,
                    token: new_record.token.clone(),
                },
            )?;
            Ok::<ContainerId, AgentError>(container)
        }
        .await;
        match moved {
            Ok(container) => {
                if let Err(e) = self.finish_swap(id, &container).await {
                    // The new container is the agent's already; what is left (the
                    // old one, the name) the next launch or listing finishes.
                    tracing::warn!(agent = %id, error = %e, "could not finish a swap; it is finished later");
                }
                Swapped::Done
            }
            Err(failure) => Swapped::Failed { failure, made },
        }
    }

    /// After a committed swap: every container of the agent but its own (`new`)
    /// goes, the new one takes the agent's name, and the journal is cleared.
    pub(super) async fn finish_swap(&self, id: Uuid, new: &ContainerId) -> Result<(), AgentError> {
        self.remove_all_but(id, new).await?;
        let name = self.state(id)?.record.container_name();
        let theirs = self
            .containers()
            .all_of(id)
            .await?
            .into_iter()
            .find(|f| f.id == *new)
            .is_some_and(|f| f.name.trim_start_matches('/') == name);
        if !theirs {
            match self.containers().rename(new, &name).await {
                Ok(()) => {}
                // Another program took the name meanwhile: the container is the
                // agent's all the same (by its labels); it keeps the name it has.
                Err(e) if e.says("already in use") => {
                    tracing::warn!(agent = %id, error = %e, "the agent's name is taken; its container keeps the name it was made with");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.transition(id, Input::Journaled(None))?;
        Ok(())
    }

    /// Removes every container of the agent but `keep`.
    pub(super) async fn remove_all_but(
        &self,
        id: Uuid,
        keep: &ContainerId,
    ) -> Result<(), AgentError> {
        for left in self.containers().all_of(id).await? {
            if left.id != *keep {
                tracing::info!(agent = %id, container = %left.name, "removing a container of the agent that is not its own");
                self.containers()
                    .remove(&left.id, self.settings().stop_timeout)
                    .await?;
            }
        }
        Ok(())
    }

    /// After a failed `swap_container`: every container but the working one goes
    /// (the new one's last lines to the log), and the working one runs again if it
    /// ran and the agent is still wanted running (a Stop during the swap leaves it
    /// stopped; so does the shutdown, for the next launch to start). A cancel or a
    /// failure of that relaunch stops the working container, never removes it.
    /// Gives back `failure`, or the error the agent ended with when even the
    /// rollback failed.
    pub(super) async fn roll_back(
        &self,
        id: Uuid,
        old: &Found,
        made: bool,
        failure: AgentError,
        log: &LogRing,
    ) -> Result<AgentError, AgentError> {
        let was_running = old.state == Container::Running;
        if made {
            self.keep_last_lines(id, old, log).await;
        }
        if let Err(e) = self.remove_all_but(id, &old.id).await {
            // The journal stays: the next listing or launch finishes the rollback.
            log.push(format!("ERROR: could not remove the new container: {e}"));
            return Err(self.start_failed(id, e, log).await);
        }
        let state = self.state(id)?;
        let wanted = state.record.wanted == crate::store::Wanted::Running;
        let closing = self.inner.tasks.is_closing();
        let old_runs =
            was_running && self.containers().inspect(&old.id).await == Some(Container::Running);
        if was_running && !old_runs && wanted && !closing {
            // The user's cancel ended the change, not the agent: it runs again.
            self.fresh_cancel(id);
            let relaunched = self.launch_and_wait(&state.record, &old.id, log).await;
            if let Err(e) = &relaunched {
                // Stopped, kept: it is the one that worked.
                log.push(format!("The previous container did not start again: {e}"));
                if let Err(stop) = self
                    .containers()
                    .stop(&old.id, self.settings().stop_timeout)
                    .await
                {
                    tracing::warn!(agent = %id, error = %stop, "could not stop the previous container");
                }
            }
            self.transition(id, Input::Journaled(None))?;
            match relaunched {
                Ok(()) => {
                    self.finish_start(id, Ok(()), log).await?;
                }
                Err(AgentError::Cancelled) => {
                    log.push("Cancelled; the previous container is kept, stopped.");
                    self.transition(id, Input::Cancelled)?;
                    return Err(AgentError::Cancelled);
                }
                Err(e) => return Err(self.start_kept(id, e, log)),
            }
        } else if closing && was_running {
            // Left stopped, for the next launch to start.
            self.transition(id, Input::Journaled(None))?;
            return Err(self.start_failed(id, failure, log).await);
        } else {
            // Untouched (the new one never started), or not running before, or
            // stopped by the user meanwhile.
            self.transition(id, Input::Journaled(None))?;
            self.transition(id, Input::Ended)?;
            self.transition(
                id,
                Input::Seen {
                    container: if old_runs {
                        Container::Running
                    } else {
                        self.containers()
                            .inspect(&old.id)
                            .await
                            .unwrap_or(old.state)
                    },
                    id: Some(old.id.clone()),
                    finished_at: None,
                },
            )?;
        }
        Ok(failure)
    }

    /// The new container's last lines, before it goes, into the agent's log.
    async fn keep_last_lines(&self, id: Uuid, old: &Found, log: &LogRing) {
        let Ok(all) = self.containers().all_of(id).await else {
            return;
        };
        for new in all.into_iter().filter(|f| f.id != old.id) {
            if let Ok(lines) = self
                .containers()
                .tail_logs(&new.id, super::operation::FAILURE_LOG_LINES)
                .await
            {
                log.push_raw("--- Container logs ---");
                for line in lines {
                    log.push_raw(line);
                }
                log.push_raw("--- End container logs ---");
            }
        }
    }
}
