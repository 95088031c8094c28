//! Start and stop, one agent or all, the crash loop's own start, the launch's
//! restore, and cancelling a start in progress.

use uuid::Uuid;

use super::logs;
use super::state::{Container, Input, Op};
use super::{Activity, AgentError, AgentView, Agents};
use crate::container::Found;
use crate::store::AgentStatus;

impl Agents {
    /// Starts a stopped agent, making its container again when it is missing, and
    /// answers when the gateway is healthy (or the start failed).
    pub async fn start(&self, id: Uuid) -> Result<AgentView, AgentError> {
        self.detached(move |this| async move { this.start_now(id, None).await })
            .await
    }

    /// `known`: the agent's container as a listing just found it (`Some(None)`:
    /// it has none), which spares a look of its own.
    pub(super) async fn start_now(
        &self,
        id: Uuid,
        known: Option<Option<Found>>,
    ) -> Result<AgentView, AgentError> {
        let _serial = self.serial(id).await?;
        self.refuse_when_shutting_down()?;
        if self.state(id)?.record.journal.is_some() {
            // An operation an interruption left comes first (a launch's restore
            // may come before the reconciler's repair).
            self.repair_locked(id, &self.log_ring(id)?).await?;
        }
        let current = self.state(id)?;
        if current.live.container == Container::Running
            && current.record.status == AgentStatus::Running
        {
            // Running already (a launch's restore found it so): wanted running
            // from now on, so its death is one.
            self.transition(id, Input::WantRunning)?;
            return self.get(id).ok_or(AgentError::NotFound);
        }
        self.transition(id, Input::Begin(Op::Start))?;
        let log = self.log_ring(id)?;
        log.push("Starting agent...");
        let mut result = self.start_attempt(id, known, &log).await;
        if result
            .as_ref()
            .is_err_and(AgentError::is_engine_unreachable)
            && !self.inner.tasks.is_closing()
        {
            // The machine went away since it was last seen ready: start it (one
            // shared attempt for every caller), then try once more.
            log.push("Podman's machine is not running; starting it...");
            self.machine().invalidate();
            result = self.start_attempt(id, None, &log).await;
        }
        self.finish_start(id, result, &log).await
    }

    /// The crash loop's start, once its back-off (due at `due`) has passed: only
    /// if the loop still waits for this very try (a stop, a start by the user or
    /// another death since moved it on).
    pub(super) async fn revive(
        &self,
        id: Uuid,
        due: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AgentError> {
        let _serial = self.serial(id).await?;
        self.refuse_when_shutting_down()?;
        let current = self.state(id)?;
        let still_due = current.live.activity.is_none()
            && current
                .live
                .crash
                .as_ref()
                .is_some_and(|c| c.next_try == Some(due));
        if !still_due {
            return Ok(());
        }
        self.transition(id, Input::Begin(Op::Revive))?;
        let log = self.log_ring(id)?;
        log.push("The gateway died; starting it again...");
        let result = self.start_attempt(id, None, &log).await;
        self.finish_start(id, result, &log).await.map(drop)
    }

    pub(super) async fn start_attempt(
        &self,
        id: Uuid,
        known: Option<Option<Found>>,
        log: &logs::LogRing,
    ) -> Result<(), AgentError> {
        self.ensure_runtime(id).await?;
        // What a listing found is used only if it is still the agent's own
        // container (another operation may have made it again since).
        let generation = self.state(id)?.record.generation;
        let ours = match known {
            Some(known) if known.as_ref().is_none_or(|f| f.generation == generation) => known,
            _ => self.current(id).await?,
        };
        self.check_disk_before_start(id, ours.as_ref()).await?;
        let (record, ours) = self.move_off_a_taken_port(id, ours, log).await?;
        let container = match ours {
            Some(found) => found.id,
            None => {
                log.push("Container missing; creating it again");
                self.make_container(&record, log).await?
            }
        };
        self.launch_and_wait(&record, &container, log).await
    }

    /// A start under the operation lock the caller holds.
    pub(super) async fn start_now_locked(
        &self,
        id: Uuid,
        log: &logs::LogRing,
    ) -> Result<AgentView, AgentError> {
        let result = self.start_attempt(id, Some(None), log).await;
        self.finish_start(id, result, log).await
    }

    /// Stops the agent's container, giving the gateway the stop timeout to exit
    /// before Podman kills it.
    pub async fn stop(&self, id: Uuid) -> Result<AgentView, AgentError> {
        self.detached(move |this| async move { this.stop_now(id).await })
            .await
    }

    pub(super) async fn stop_now(&self, id: Uuid) -> Result<AgentView, AgentError> {
        // A stop while the agent starts ends that start now, not after its health
        // budget; an update it ends does not bring the gateway back.
        self.transition(id, Input::StopAsked)?;
        self.cancel_start(id);
        let _serial = self.serial(id).await?;
        self.transition(id, Input::Begin(Op::Stop))?;
        let log = self.log_ring(id)?;
        log.push("Stopping agent...");
        let result = match self.current(id).await {
            Ok(Some(found)) => self
                .containers()
                .stop(&found.id, self.settings().stop_timeout)
                .await
                .map(|()| Some(found.id)),
            Ok(None) => Ok(None),
            // The engine is gone (machine stopped): so is the container's process.
            Err(e) if e.engine_unreachable() => Ok(None),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                log.push("Agent stopped");
                self.transition(id, Input::Stopped)?;
                self.get(id).ok_or(AgentError::NotFound)
            }
            Err(err) => {
                log.push(format!("ERROR: {err}"));
                self.settle_after_failure(id, format!("Stop failed: {err}"))
                    .await?;
                Err(err.into())
            }
        }
    }

    /// Starts every agent that is not running, in parallel.
    pub async fn start_all(&self) -> Vec<(Uuid, Result<AgentView, AgentError>)> {
        let ids: Vec<Uuid> = self
            .list()
            .into_iter()
            .filter(|a| a.status != AgentStatus::Running && a.activity.is_none())
            .map(|a| a.id)
            .collect();
        let runs = ids
            .into_iter()
            .map(|id| async move { (id, self.start(id).await) });
        futures::future::join_all(runs).await
    }

    /// Stops every running agent, in parallel.
    pub async fn stop_all(&self) -> Vec<(Uuid, Result<AgentView, AgentError>)> {
        let ids: Vec<Uuid> = self
            .list()
            .into_iter()
            .filter(|a| a.status == AgentStatus::Running || a.activity.is_some())
            .map(|a| a.id)
            .collect();
        let runs = ids
            .into_iter()
            .map(|id| async move { (id, self.stop(id).await) });
        futures::future::join_all(runs).await
    }

    /// Starts again, in the background, the agents that ran when the app last
    /// quit (or when the engine went away). `listing`: this folder's containers as
    /// just listed, so no agent lists them again.
    pub(crate) fn restore(&self, ids: Vec<Uuid>, listing: Option<&[Found]>) {
        for id in ids {
            let generation = self.state(id).ok().and_then(|s| s.record.generation);
            let known = listing.map(|all| {
                let mine = all
                    .iter()
                    .filter(|f| f.agent == Some(id))
                    .cloned()
                    .collect();
                super::own::pick_current(mine, generation.as_deref()).0
            });
            let started = self.inner.tasks.spawn_op({
                let this = self.clone();
                async move {
                    if let Err(e) = this.start_now(id, known).await {
                        tracing::warn!(agent = %id, error = %e, "could not restore agent");
                    }
                }
            });
            if started.is_none() {
                return;
            }
        }
    }

    /// A container found running that no operation started (at launch, or
    /// started outside Clawdock): the agent is shown running once its gateway
    /// answers within the health budget. One that does not is stopped, and its
    /// crash loop starts it again; one that dies meanwhile is a death like any.
    pub(super) async fn verify(&self, id: Uuid) -> Result<(), AgentError> {
        let _serial = self.serial(id).await?;
        self.refuse_when_shutting_down()?;
        let current = self.state(id)?;
        let still_to_check = current.live.activity == Some(Activity::Starting)
            && current.live.container == Container::Running
            && current.record.status != AgentStatus::Running;
        if !still_to_check {
            return Ok(());
        }
        let Some(container) = current.live.container_id.clone() else {
            return Ok(());
        };
        self.transition(id, Input::Begin(Op::Verify))?;
        let log = self.log_ring(id)?;
        let record = current.record;
        let answered = self
            .unless_interrupted(id, self.wait_healthy(&record, &container, &log))
            .await;
        match answered {
            Ok(()) => {
                log.push(format!(
                    "The gateway, running since before, answers at ws://127.0.0.1:{}",
                    record.port
                ));
                self.transition(id, Input::Verified)?;
                self.follow_readiness(id, record.port);
            }
            Err(_) if self.inner.tasks.is_closing() => {
                self.transition(id, Input::Interrupted)?;
            }
            Err(e) if self.state(id)?.live.container == Container::Running => {
                let message = format!(
                    "The gateway was running but did not answer ({e}); Clawdock stopped it and starts it again."
                );
                log.push(format!("ERROR: {message}"));
                self.containers()
                    .stop(&container, self.settings().stop_timeout)
                    .await?;
                self.transition(id, Input::VerifyFailed { message })?;
            }
            // It died meanwhile: a death like any other, now that the check ended.
            Err(_) => {
                self.transition(id, Input::Ended)?;
            }
        }
        Ok(())
    }

    /// Cancels the create, start or restart in progress: its wait (for the machine,
    /// the image pull or the gateway's health) ends at once and its container is
    /// removed. A cancelled create removes the agent too. `None` when the agent is
    /// gone; the agent unchanged when nothing was in progress.
    pub async fn cancel(&self, id: Uuid) -> Result<Option<AgentView>, AgentError> {
        self.detached(move |this| async move {
            let creating = this.state(id)?.record.status == AgentStatus::Creating;
            if !this.cancel_start(id) {
                return Ok(this.get(id));
            }
            let _serial = this.serial(id).await?;
            if !creating {
                return Ok(this.get(id));
            }
            this.transition(id, Input::Begin(Op::Delete))?;
            this.remove_now(id).await?;
            Ok(None)
        })
        .await
    }

    /// Cancels the agent's create, start or restart if one runs; says whether one did.
    pub(super) fn cancel_start(&self, id: Uuid) -> bool {
        let running = self.get(id).and_then(|a| a.activity).is_some_and(|a| {
            matches!(
                a,
                Activity::Creating | Activity::Starting | Activity::Restarting | Activity::Updating
            )
        });
        if running {
            self.cancel_token(id).cancel();
        }
        running
    }
}
