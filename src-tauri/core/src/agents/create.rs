//! Create: the checks and the record that answer the caller, then, detached, the
//! agent's folder and config, the runtime, the image and the first start.

use tokio::sync::oneshot;
use uuid::Uuid;

use super::definition::{self, Provider};
use super::limits::check_memory;
use super::requests::*;
use super::{AgentError, AgentView, Agents};
use crate::machine::Mode;

impl Agents {
    /// Validates, records the agent as `creating` and answers; the container is
    /// made in the background (follow the agent's log and events). The record is
    /// saved before any container exists, so a crash never leaves an unknown one.
    pub async fn create(&self, req: CreateRequest) -> Result<AgentView, AgentError> {
        let (recorded, _done) = self.spawn_create(req)?;
        recorded
            .await
            .map_err(|_| AgentError::Internal("the create ended before it answered".into()))?
    }

    /// `create` that returns when the agent runs (or failed).
    pub async fn create_and_wait(&self, req: CreateRequest) -> Result<AgentView, AgentError> {
        let (recorded, done) = self.spawn_create(req)?;
        recorded
            .await
            .map_err(|_| AgentError::Internal("the create ended before it answered".into()))??;
        done.await
            .map_err(|e| AgentError::Internal(format!("the create failed: {e}")))?
    }

    /// Starts a create: the first receiver answers once the agent is recorded, the
    /// handle when it runs or failed.
    #[allow(clippy::type_complexity)]
    pub(super) fn spawn_create(
        &self,
        req: CreateRequest,
    ) -> Result<
        (
            oneshot::Receiver<Result<AgentView, AgentError>>,
            tokio::task::JoinHandle<Result<AgentView, AgentError>>,
        ),
        AgentError,
    > {
        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        let handle = self
            .inner
            .tasks
            .spawn_op(async move {
                let (view, provider) = match this.register(req).await {
                    Ok(registered) => registered,
                    Err(e) => {
                        let message = e.to_string();
                        let code = e.code();
                        let _gone = tx.send(Err(e));
                        return Err(AgentError::Internal(format!("{code:?}: {message}")));
                    }
                };
                let id = view.id;
                let _gone = tx.send(Ok(view));
                let built = this.build(id, provider).await;
                if let Err(e) = &built {
                    tracing::warn!(agent = %id, error = %e, "create failed");
                }
                built
            })
            .ok_or(AgentError::ShuttingDown)?;
        Ok((rx, handle))
    }

    /// The part of a create that answers the caller: checks, a port, the record.
    pub(super) async fn register(
        &self,
        req: CreateRequest,
    ) -> Result<(AgentView, Provider), AgentError> {
        self.refuse_when_shutting_down()?;
        let name = req.name.trim().to_string();
        definition::validate_name(&name).map_err(AgentError::InvalidName)?;
        let provider = Provider::from_input(&req.provider).map_err(AgentError::InvalidInput)?;
        if let Some(m) = req.memory_mib {
            check_memory(m)?;
        }
        if let Some(cpus) = req.cpus {
            self.check_cpus(cpus)?;
        }
        if let Some(d) = req.disk_mib {
            crate::sizing::check_disk_limit(d).map_err(AgentError::InvalidInput)?;
        }
        let memory_mib = req.memory_mib.unwrap_or(self.settings().agent_memory_mib);
        if self.machine().podman().bin().is_none() {
            return Err(AgentError::RuntimeUnavailable(
                crate::engine::install_hint().into(),
            ));
        }
        let id = Uuid::new_v4();
        let container_name = crate::store::container_name(&name);
        if self.machine().is_ready() {
            // Said now, while the caller listens; the create itself checks again.
            match self
                .containers()
                .name_taken_by_another(&container_name, id)
                .await
            {
                Ok(true) => {
                    return Err(crate::containers::CreateError::NameTaken {
                        name: container_name,
                        holder: None,
                    }
                    .into())
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "could not check the container name"),
            }
        }
        let disk_mib = req.disk_mib.unwrap_or(self.settings().agent_disk_mib);
        let view = self.record_new(id, name, &provider, memory_mib, req.cpus, disk_mib)?;
        Ok((view, provider))
    }

    /// The background part of a create: folder, runtime, image, container, start.
    pub(super) async fn build(
        &self,
        id: Uuid,
        provider: Provider,
    ) -> Result<AgentView, AgentError> {
        let _serial = self.serial(id).await?;
        let log = self.log_ring(id)?;
        let result = async {
            let record = self.state(id)?.record;
            // Written first: a create cut short keeps its config (and key), and a
            // later start finishes it.
            self.write_config(&record, &provider).await?;
            log.push("Checking container runtime...");
            self.ensure_runtime(id).await?;
            log.push("Container runtime ready");
            let container = self.make_container(&record, &log).await?;
            self.launch_and_wait(&record, &container, &log).await
        }
        .await;
        self.finish_start(id, result, &log).await
    }

    /// A warning when `agents` gateways would not fit in the Podman machine's memory.
    pub(super) fn memory_notice(&self, agents: usize) -> Option<String> {
        if self.machine().mode() != Mode::Vm {
            return None;
        }
        let have = self.machine().memory_mib()?;
        let need = crate::sizing::memory_need_mib(agents as u64);
        (need > have).then(|| {
            format!(
                "{agents} agents need about {:.1} GiB but the Podman machine has {:.1} GiB: agents may fail or be killed. \
                 Give the machine more memory (podman machine stop; podman machine set --memory {}).",
                need as f64 / 1024.0,
                have as f64 / 1024.0,
                crate::sizing::machine_memory_step_up(need)
            )
        })
    }
}
