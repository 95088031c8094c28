//! Repairing what an interruption left (a crash, `kill -9`, a power cut): a
//! journaled operation found with no operation running is finished (a swap
//! committed: the old container goes, the new one takes the agent's name) or
//! rolled back (anything before: every container but the working one goes), so
//! each agent has exactly one container afterwards, running the image its record
//! pins, and runs if it was wanted running. Also the smaller repairs the
//! reconciler asks for: containers of the agent that are not its own, and a
//! container of an older version made again without its restart policy.

use uuid::Uuid;

use super::logs::LogRing;
use super::own::pick_current;
use super::state::{Container, Input, Op};
use super::swap::{Plan, Swapped};
use super::{AgentError, Agents};
use crate::store::{JournalOp, Step, SwapWhy, Wanted};

impl Agents {
    /// Finishes or rolls back the agent's journaled operation, if it has one.
    pub(super) async fn repair(&self, id: Uuid) -> Result<(), AgentError> {
        let _serial = self.serial(id).await?;
        self.refuse_when_shutting_down()?;
        if self.state(id)?.live.activity.is_some() {
            return Ok(());
        }
        let log = self.log_ring(id)?;
        self.repair_locked(id, &log).await
    }

    /// [`Agents::repair`] under the lock the caller holds.
    pub(super) async fn repair_locked(&self, id: Uuid, log: &LogRing) -> Result<(), AgentError> {
        let Some(journal) = self.state(id)?.record.journal else {
            return Ok(());
        };
        self.ensure_runtime(id).await?;
        let all = self.containers().all_of(id).await?;
        let ran = match journal.op {
            JournalOp::Swap(swap) if journal.step < Step::Committed => {
                log.push(format!(
                    "{} was cut short ({}); the agent goes back to the container it had.",
                    what_swapped(swap.why),
                    step_words(journal.step)
                ));
                let (old, others) = pick_current(all, swap.old_generation.as_deref());
                for other in others {
                    tracing::info!(agent = %id, container = %other.name, "rolling back: removing the container an interrupted swap made");
                    self.containers()
                        .remove(&other.id, self.settings().stop_timeout)
                        .await?;
                }
                self.transition(id, Input::Journaled(None))?;
                swap.was_running && old.is_none_or(|o| o.state != Container::Running)
            }
            JournalOp::Swap(swap) => {
                log.push(format!(
                    "{} was cut short after the new container was healthy; finishing it.",
                    what_swapped(swap.why)
                ));
                match pick_current(all, Some(&swap.new_generation)).0 {
                    Some(new) => {
                        let stopped = new.state != Container::Running;
                        self.finish_swap(id, &new.id).await?;
                        swap.was_running && stopped
                    }
                    None => {
                        // Removed from outside meanwhile: the next start makes it
                        // again, from the image the record pins (the new one).
                        self.transition(id, Input::Journaled(None))?;
                        swap.was_running
                    }
                }
            }
            JournalOp::Edit => {
                log.push("An edit was cut short; the agent starts again with the settings its config holds.");
                self.transition(id, Input::Journaled(None))?;
                // Only a running agent's edit is journaled, and its stop may have
                // happened in the engine unheard (the step still `Begun`): it runs
                // again whatever step was reached.
                true
            }
        };
        let state = self.state(id)?;
        if ran && state.record.wanted == Wanted::Running {
            // It ran when the operation began: it runs again.
            self.transition(id, Input::Begin(Op::Start))?;
            let result = self.start_attempt(id, None, log).await;
            self.finish_start(id, result, log).await?;
        } else {
            let own = self.current(id).await?;
            self.transition(
                id,
                Input::Seen {
                    container: own.as_ref().map_or(Container::Missing, |f| f.state),
                    id: own.map(|f| f.id),
                    finished_at: None,
                },
            )?;
        }
        Ok(())
    }

    /// Removes the agent's containers that are not its own (left by an operation
    /// cut short), unless an operation is under way.
    pub(super) async fn remove_left_overs(&self, id: Uuid) -> Result<(), AgentError> {
        let _serial = self.serial(id).await?;
        let state = self.state(id)?;
        if state.live.activity.is_some() || state.record.journal.is_some() {
            return Ok(());
        }
        let all = self.containers().all_of(id).await?;
        let (_, others) = pick_current(all, state.record.generation.as_deref());
        for other in others {
            tracing::info!(agent = %id, container = %other.name, "removing a container of the agent that is not its own");
            self.containers()
                .remove(&other.id, self.settings().stop_timeout)
                .await?;
        }
        Ok(())
    }

    /// Makes a container of Clawdock 0.1.0 again without its restart policy
    /// (Podman restarting it beside Clawdock's own crash loop would fight it),
    /// from the same image, as an update would; started if it ran.
    pub(super) async fn remake_legacy(&self, id: Uuid) -> Result<(), AgentError> {
        let _serial = self.serial(id).await?;
        self.refuse_when_shutting_down()?;
        let current = self.state(id)?;
        if current.live.activity.is_some() || current.record.journal.is_some() {
            return Ok(());
        }
        let Some(old) = self.current(id).await? else {
            return Ok(());
        };
        let has_policy = old.generation.is_none()
            && self
                .containers()
                .details(&old.id)
                .await?
                .restart_policy
                .is_some();
        if !has_policy {
            return Ok(());
        }
        let log = self.log_ring(id)?;
        log.push("This agent's container was made by an older Clawdock with a restart policy; making it again without one.");
        self.transition(id, Input::Begin(Op::Update))?;
        let was_running = old.state == Container::Running;
        let plan = Plan {
            why: SwapWhy::Remake,
            image_id: old.image_id.clone(),
            limits: self.limits_of(&current.record),
        };
        let swapped =
            Box::pin(self.swap_container(&current.record, &old, plan, async { Ok(()) }, &log))
                .await;
        match swapped {
            Swapped::Done if was_running => {
                self.finish_start(id, Ok(()), &log).await?;
            }
            Swapped::Done => self.transition(id, Input::Stopped).map(drop)?,
            Swapped::NotBegun(e) => {
                log.push(format!("ERROR: {e}"));
                self.transition(id, Input::Ended)?;
                return Err(e);
            }
            Swapped::Failed { failure, made } => {
                log.push(format!("ERROR: the container could not be made again ({failure}); the agent keeps the one it had."));
                Box::pin(self.roll_back(id, &old, made, failure, &log)).await?;
            }
        }
        Ok(())
    }
}

/// The operation a swap was, in words.
fn what_swapped(why: SwapWhy) -> &'static str {
    match why {
        SwapWhy::Update => "An update",
        SwapWhy::Limits => "A change of limits",
        SwapWhy::Remake => "Making an old container again",
        SwapWhy::Token => "A new gateway token",
    }
}

/// How far a journaled operation got, in words.
fn step_words(step: Step) -> &'static str {
    match step {
        Step::Begun => "before its new container was made",
        Step::Made => "after its new container was made",
        Step::OldStopped => "after the working container was stopped",
        Step::Launched => "while the new container's gateway was awaited",
        Step::Committed => "after the new container became the agent's",
    }
}
