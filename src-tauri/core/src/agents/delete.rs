//! Delete: the container, the agent's folder and its record, finished at the next
//! listing when a crash or a lost engine cut it short; then the machine, if it
//! was Clawdock's and nothing else runs on it.

use uuid::Uuid;

use super::state::{Input, Op};
use super::{AgentError, Agents};
use crate::machine::Mode;

impl Agents {
    /// Removes the container (with its anonymous volumes), the agent folder, its
    /// snapshots (they hold its keys) and the record. `deleting` is saved first, so a crash half-way is finished at the
    /// next start.
    pub async fn delete(&self, id: Uuid) -> Result<(), AgentError> {
        self.detached(move |this| async move {
            this.cancel_start(id);
            let _serial = this.serial(id).await?;
            if this.state(id)?.record.deleting {
                return Err(AgentError::NotFound);
            }
            this.transition(id, Input::Begin(Op::Delete))?;
            this.remove_now(id).await
        })
        .await
    }

    /// Finishes a delete that a crash (or an unreachable engine) interrupted.
    pub(crate) async fn finish_delete(&self, id: Uuid) -> Result<(), AgentError> {
        self.detached(move |this| async move {
            let _serial = this.serial_any(id).await?;
            this.transition(id, Input::Begin(Op::ResumeDelete))?;
            this.remove_now(id).await
        })
        .await
    }

    /// Removes every container of the agent (its own and any an interrupted
    /// update left: one left behind would bring the agent back at the next
    /// launch), then its folder and record.
    pub(super) async fn remove_now(&self, id: Uuid) -> Result<(), AgentError> {
        if self.machine().mode() == Mode::Native {
            // Natively the engine is a service started on demand (just launched,
            // or started again): waited for, so a delete right after a launch
            // removes the containers now rather than later. A stopped machine
            // (vm mode) is not started for a delete.
            if let Err(e) = self.ensure_runtime(id).await {
                tracing::debug!(agent = %id, error = %e, "the engine is not ready for a delete");
            }
        }
        let found = match self.containers().all_of(id).await {
            Ok(found) => found,
            Err(e) if e.engine_unreachable() => {
                // The record stays, marked `deleting` and hidden; the next listing
                // of the containers finishes the delete.
                tracing::warn!(agent = %id, error = %e, "engine unreachable during delete; finishing it later");
                return self.hide_until_deleted(id);
            }
            Err(e) => return self.delete_failed(id, e.into()).await,
        };
        for found in found {
            if let Err(e) = self
                .containers()
                .remove(&found.id, self.settings().stop_timeout)
                .await
            {
                return self.delete_failed(id, e.into()).await;
            }
        }
        if self.inner.host.get().is_some_and(|h| h.cgroup_v1) {
            crate::cgroup_v1::remove_cgroup_parent(id);
        }
        let dir = self.state(id)?.record.dir;
        // remove_tree removes links the agent left without following them, however
        // deep it nested its folders; a large workspace takes a while: off the
        // async workers.
        let removed = crate::agent_files::blocking(move || {
            crate::agent_files::remove_tree(&dir)
                .map_err(|e| AgentError::Folder(format!("could not remove {}: {e}", dir.display())))
        })
        .await;
        if let Err(err) = removed.and_then(|()| self.remove_snapshots(id)) {
            // Half-way: the container is gone, the folder is not. The agent comes
            // back into view with the error, and a delete can be tried again.
            return self.delete_failed(id, err).await;
        }
        self.forget(id)?;
        self.stop_machine_if_idle().await;
        Ok(())
    }

    pub(super) async fn delete_failed(&self, id: Uuid, err: AgentError) -> Result<(), AgentError> {
        self.settle_after_failure(id, format!("Delete failed: {err}"))
            .await?;
        Err(err)
    }

    /// After the last agent is deleted: stop the machine if Clawdock started it and
    /// no container that is not an agent runs.
    pub(super) async fn stop_machine_if_idle(&self) {
        let machine = self.machine();
        if machine.mode() != Mode::Vm || !machine.started_by_us() || !self.known_ids().is_empty() {
            return;
        }
        match self.containers().only_agents_run().await {
            Ok(true) => {
                if let Err(e) = machine.stop().await {
                    tracing::warn!(error = %e, "could not stop the machine after the last agent");
                }
            }
            Ok(false) => tracing::info!("other containers run; leaving the machine up"),
            Err(e) => tracing::warn!(error = %e, "could not list containers"),
        }
    }
}
