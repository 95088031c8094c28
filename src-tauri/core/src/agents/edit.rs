//! Edit: a new provider, model or key written into the agent's `openclaw.json`,
//! the rest of the file kept, and a running agent restarted in the same container.
//! New limits in the same edit go to [`super::limits`].

use chrono::Utc;
use uuid::Uuid;

use super::definition::{self, ProviderInput};
use super::requests::*;
use super::state::{Container, Input, Op};
use super::{AgentError, AgentView, Agents};
use crate::store::{AgentStatus, Journal, JournalOp, Step};

impl Agents {
    /// Changes the agent's provider settings in place: `openclaw.json` is rewritten
    /// (everything else in it kept) and a running agent restarts in the same
    /// container, with the same port, workspace and token. Refused while another
    /// operation runs on the agent.
    ///
    /// New limits (`memoryMiB`, `cpus`) make the container again beside the
    /// working one, with the same name, port, token, config and workspace (as
    /// `update` does): a running agent runs again with them, a stopped one has them
    /// at its next start; a new container that does not get healthy is rolled back.
    /// A provider change in the same edit is written while the gateway is down, in
    /// the same restart.
    pub async fn edit(&self, id: Uuid, edit: EditRequest) -> Result<AgentView, AgentError> {
        let (edit, limits) = edit.split();
        if edit.is_empty() && limits.is_empty() {
            return Err(AgentError::InvalidInput(
                "Nothing to change: give providerType, providerName, baseUrl, apiKey, modelId, memoryMiB, cpus or diskMiB."
                    .into(),
            ));
        }
        if let Some(m) = limits.memory_mib {
            super::limits::check_memory(m)?;
        }
        if let Some(Some(cpus)) = limits.cpus {
            self.check_cpus(cpus)?;
        }
        if let Some(d) = limits.disk_mib {
            crate::sizing::check_disk_limit(d).map_err(AgentError::InvalidInput)?;
        }
        self.detached(move |this| async move { this.edit_now(id, edit, limits).await })
            .await
    }

    pub(super) async fn edit_now(
        &self,
        id: Uuid,
        edit: ProviderInput,
        limits: LimitsEdit,
    ) -> Result<AgentView, AgentError> {
        let (_serial, current) = self.when_idle(id)?;
        if let Some(disk_mib) = limits.disk_mib {
            // Clawdock's own limit: the record changes, the container does not.
            self.transition(id, Input::DiskLimitSet { disk_mib })?;
            if edit.is_empty() && !limits.touches_container() {
                return self.get(id).ok_or(AgentError::NotFound);
            }
        }
        let config = self.read_config(&current.record).await?;
        let provider = if edit.is_empty() {
            None
        } else {
            let provider =
                definition::edited_provider(&definition::provider_input_of_config(&config), &edit)
                    .map_err(AgentError::InvalidInput)?;
            (definition::with_provider(&config, current.record.port, &provider) != config)
                .then_some(provider)
        };
        let now = self.limits_of(&current.record);
        let wanted = crate::container_spec::Limits {
            memory_mib: limits.memory_mib.unwrap_or(now.memory_mib),
            cpus: limits.cpus.unwrap_or(now.cpus),
            ..now
        };
        if wanted != now {
            // Boxed: the remake's future is large, and debug builds copy it around
            // on the worker's stack.
            let change = super::limits::Remake {
                limits: wanted,
                provider: provider.as_ref(),
                token: None,
            };
            return Box::pin(self.remake(id, current, change)).await;
        }
        let Some(provider) = provider else {
            return self.get(id).ok_or(AgentError::NotFound);
        };
        let running = current.live.container == Container::Running
            || current.record.status == AgentStatus::Running;
        // The config as it was (the key being replaced included), before anything
        // is written; without it the edit does not begin.
        let log = self.log_ring(id)?;
        self.snapshot(&current.record, running, id, "edit", &log)
            .await?;
        if !running {
            self.rewrite_provider(&current.record, &provider).await?;
            return self.get(id).ok_or(AgentError::NotFound);
        }
        self.transition(id, Input::Begin(Op::Restart))?;
        log.push("Restarting agent with new settings...");
        let journal = Journal {
            op: JournalOp::Edit,
            step: Step::Begun,
            began_at: Utc::now(),
        };
        let result = async {
            // Journaled: a launch after an interruption here starts the agent
            // again (with whichever config the file holds), not reads its stop
            // as a death.
            self.transition(id, Input::Journaled(Some(journal)))?;
            if let Some(found) = self.current(id).await? {
                self.containers()
                    .stop(&found.id, self.settings().stop_timeout)
                    .await?;
            }
            // Written while the gateway is down: it may write the file itself.
            self.rewrite_provider(&current.record, &provider).await?;
            self.start_attempt(id, None, &log).await
        }
        .await;
        if let Err(e) = self.transition(id, Input::Journaled(None)) {
            tracing::error!(agent = %id, error = %e, "could not clear an edit's journal");
        }
        self.finish_start(id, result, &log).await
    }
}
