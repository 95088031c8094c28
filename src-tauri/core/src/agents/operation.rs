//! How an operation runs: detached from its caller, holding the agent's lock (a
//! panic in it ends the operation, not the agent's state), refused while another
//! runs on the agent, and how a create, start or update that failed is recorded
//! (its container's last lines kept, the container removed).
use std::future::Future;

use tokio::sync::OwnedMutexGuard;

use uuid::Uuid;

use super::logs;
use super::state::{self, Container, Input};
use super::{AgentError, AgentView, Agents};

impl Agents {
    /// Runs an operation detached from the caller and waits for it: dropping this
    /// future (a client that hung up) leaves the operation running to its end.
    pub(super) async fn detached<T, F, Fut>(&self, work: F) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce(Agents) -> Fut,
        Fut: Future<Output = Result<T, AgentError>> + Send + 'static,
    {
        let handle = self
            .inner
            .tasks
            .spawn_op(work(self.clone()))
            .ok_or(AgentError::ShuttingDown)?;
        handle
            .await
            .map_err(|e| AgentError::Internal(format!("the operation failed: {e}")))?
    }

    /// Waits for the agent's operation lock (refused for an agent being deleted).
    pub(super) async fn serial(&self, id: Uuid) -> Result<Serial, AgentError> {
        let guard = self.op_lock(id)?.lock_owned().await;
        Ok(self.hold(id, guard))
    }

    /// Waits for the operation lock of any agent, one being deleted included.
    pub(super) async fn serial_any(&self, id: Uuid) -> Result<Serial, AgentError> {
        let guard = self.entry_lock(id)?.lock_owned().await;
        Ok(self.hold(id, guard))
    }

    fn hold(&self, id: Uuid, guard: OwnedMutexGuard<()>) -> Serial {
        Serial {
            _guard: guard,
            agents: self.clone(),
            id,
        }
    }

    /// The agent's operation lock and state, refused (`busy`) rather than waited
    /// for when another operation runs: an edit or update queued behind a start
    /// would act on what the user no longer sees.
    pub(super) fn when_idle(&self, id: Uuid) -> Result<(Serial, state::AgentState), AgentError> {
        let Ok(guard) = self.op_lock(id)?.try_lock_owned() else {
            return Err(self.busy(id));
        };
        let serial = self.hold(id, guard);
        self.refuse_when_shutting_down()?;
        let current = self.state(id)?;
        if current.live.activity.is_some() {
            return Err(self.busy(id));
        }
        Ok((serial, current))
    }

    pub(super) fn busy(&self, id: Uuid) -> AgentError {
        match self.get(id).and_then(|a| a.activity) {
            Some(activity) => AgentError::Busy(activity.as_str().into()),
            None => AgentError::Busy("another operation runs".into()),
        }
    }

    /// Records a create, start or update that failed (or was cancelled) and
    /// gives back its error.
    pub(super) async fn start_failed(
        &self,
        id: Uuid,
        err: AgentError,
        log: &logs::LogRing,
    ) -> AgentError {
        match self.finish_start(id, Err(err), log).await {
            Err(e) => e,
            Ok(_) => AgentError::Internal("a failed start was recorded as a success".into()),
        }
    }

    /// Records how a create or start ended. A failure leaves its container's last
    /// lines in the log and removes the container (ours, by ID); an interruption by
    /// the shutdown leaves the container for the shutdown to stop.
    pub(super) async fn finish_start(
        &self,
        id: Uuid,
        result: Result<(), AgentError>,
        log: &logs::LogRing,
    ) -> Result<AgentView, AgentError> {
        match result {
            Ok(()) => {
                self.transition(id, Input::Started)?;
                self.get(id).ok_or(AgentError::NotFound)
            }
            Err(AgentError::Cancelled) if !self.inner.tasks.is_closing() => {
                log.push("Cancelled.");
                self.discard_failed_container(id, log).await;
                self.transition(id, Input::Cancelled)?;
                Err(AgentError::Cancelled)
            }
            Err(AgentError::OverDisk(message)) => {
                log.push(format!("ERROR: {message}"));
                self.transition(
                    id,
                    Input::StoppedOverDisk {
                        message: message.clone(),
                    },
                )?;
                Err(AgentError::OverDisk(message))
            }
            Err(_) if self.inner.tasks.is_closing() => {
                log.push("Interrupted: Clawdock is quitting.");
                self.transition(id, Input::Interrupted)?;
                Err(AgentError::ShuttingDown)
            }
            Err(err) => {
                let message = err.to_string();
                log.push(format!("ERROR: {message}"));
                self.discard_failed_container(id, log).await;
                let details = err.details();
                if let Some(details) = &details {
                    log.push(format!("Details: {details}"));
                }
                self.transition(id, Input::StartFailed { message, details })?;
                Err(err)
            }
        }
    }

    /// Records a start that failed where its container is kept (the one an
    /// update's rollback went back to), and gives back its error.
    pub(super) fn start_kept(&self, id: Uuid, err: AgentError, log: &logs::LogRing) -> AgentError {
        let message = err.to_string();
        log.push(format!("ERROR: {message}"));
        let details = err.details();
        if let Err(e) = self.transition(id, Input::StartFailed { message, details }) {
            tracing::error!(agent = %id, error = %e, "could not record a failed start");
        }
        err
    }

    /// A container that failed its start must not linger half-alive: its last
    /// lines go to the log, then it is removed; the next start makes it again
    /// (from the image the record pins).
    pub(super) async fn discard_failed_container(&self, id: Uuid, log: &logs::LogRing) {
        let container = match self.current(id).await {
            Ok(Some(found)) => found.id,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not find a failed agent's container");
                return;
            }
        };
        if let Ok(lines) = self
            .containers()
            .tail_logs(&container, FAILURE_LOG_LINES)
            .await
        {
            log.push_raw("--- Container logs ---");
            for line in lines {
                log.push_raw(line);
            }
            log.push_raw("--- End container logs ---");
        }
        match self
            .containers()
            .remove(&container, std::time::Duration::ZERO)
            .await
        {
            Ok(()) => {
                let _gone = self.transition(
                    id,
                    Input::Seen {
                        container: Container::Missing,
                        id: None,
                        finished_at: None,
                    },
                );
            }
            Err(e) => tracing::warn!(error = %e, "could not remove a failed agent's container"),
        }
    }

    /// After a failed stop or delete, says what Podman says: a container still
    /// running is a running agent whose operation failed, not a stopped one.
    pub(super) async fn settle_after_failure(
        &self,
        id: Uuid,
        message: String,
    ) -> Result<(), AgentError> {
        let seen = match self.current(id).await {
            Ok(Some(found)) => self.containers().inspect(&found.id).await,
            Ok(None) => Some(Container::Missing),
            Err(_) => None,
        };
        self.transition(id, Input::OpFailed { message, seen })?;
        Ok(())
    }

    /// Waits for `work` unless the shutdown begins or the user cancels the agent's
    /// operation: both end the wait at once (a dropped pull is cut in the engine).
    pub(super) async fn unless_interrupted<T>(
        &self,
        id: Uuid,
        work: impl std::future::Future<Output = Result<T, AgentError>>,
    ) -> Result<T, AgentError> {
        let cancel = self.cancel_token(id);
        tokio::select! {
            done = work => done,
            () = self.inner.tasks.closed() => Err(AgentError::ShuttingDown),
            () = cancel.cancelled() => Err(AgentError::Cancelled),
        }
    }
}

/// An agent's operation lock, held for an operation's whole run. An operation
/// that panics (a bug, or data nobody foresaw) does not leave its agent in the
/// middle of it: the panic is recorded as the operation's failure.
pub(super) struct Serial {
    _guard: OwnedMutexGuard<()>,
    agents: Agents,
    id: Uuid,
}

impl Drop for Serial {
    fn drop(&mut self) {
        // The operation ended: the reconciler looks again (a death the operation
        // only noted is acted on now).
        self.agents.reconcile_soon();
        if std::thread::panicking() {
            let failed = self.agents.transition(
                self.id,
                Input::OpFailed {
                    message:
                        "Internal error: the operation failed unexpectedly (see Clawdock's log)."
                            .into(),
                    seen: None,
                },
            );
            if let Err(e) = failed {
                tracing::error!(agent = %self.id, error = %e, "could not record a failed operation");
            }
        }
    }
}

/// Lines of container output copied into the agent's log when something fails.
pub(super) const FAILURE_LOG_LINES: usize = 50;
