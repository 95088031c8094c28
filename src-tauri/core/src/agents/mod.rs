//! The agents and what can be done to them: create, start, stop, delete, start-all,
//! stop-all, logs, chat and export. Every mutating operation runs detached from its caller
//! (a client that hangs up changes nothing) and holds the agent's lock for its whole
//! run; it acts through `containers` and `gateway` and feeds each outcome to
//! `transition`, the one place an agent's state changes, is saved and announced.

pub mod definition;
mod error;
pub mod gateway;
pub mod logs;
mod registry;
pub mod state;
pub mod stats;
mod steps;
mod watch;

use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::container::{ContainerId, Found};
use crate::engine::LineStream;
use crate::store::AgentStatus;
pub use crate::view::{Activity, AgentView};
use definition::ProviderInput;
pub use error::{AgentError, ErrorCode};
pub use registry::Agents;
use state::{Container, Input, Op};
pub use steps::random_hex;

/// Lines of container output copied into the agent's log when something fails.
const FAILURE_LOG_LINES: usize = 50;
/// Lines of a crashed gateway's output kept in the view.
const CRASH_LOG_LINES: usize = 10;

/// `POST /agents/create`, as the replaced runtime took it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub name: String,
    #[serde(flatten)]
    pub provider: ProviderInput,
    /// The container's memory limit; the `CLAWDOCK_AGENT_MEMORY` default if absent.
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// The container's CPU limit in CPUs (1.5); none if absent.
    #[serde(default)]
    pub cpus: Option<f64>,
}

/// `PATCH /agents/{id}`: the provider settings and limits to change; an absent or
/// blank field keeps its value. Unknown fields are refused, so a misspelt one is
/// not lost quietly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditRequest {
    pub provider_type: Option<String>,
    pub provider_name: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model_id: Option<String>,
    /// A new memory limit for the container (made again with it).
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// A new CPU limit: absent keeps it, `null` removes it, a number sets it.
    #[serde(default, deserialize_with = "present")]
    pub cpus: Option<Option<f64>>,
}

/// A field that is present, `null` included (`Some(None)`), apart from an absent
/// one (`None`, by `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl EditRequest {
    /// The provider part, and the limits part.
    fn split(self) -> (ProviderInput, LimitsEdit) {
        (
            ProviderInput {
                provider_type: self.provider_type,
                provider_name: self.provider_name,
                base_url: self.base_url,
                api_key: self.api_key,
                model_id: self.model_id,
            },
            LimitsEdit {
                memory_mib: self.memory_mib,
                cpus: self.cpus,
            },
        )
    }
}

/// The limits an edit changes; `None`: kept.
#[derive(Debug, Clone, Copy, Default)]
struct LimitsEdit {
    memory_mib: Option<u64>,
    cpus: Option<Option<f64>>,
}

impl LimitsEdit {
    fn is_empty(&self) -> bool {
        self.memory_mib.is_none() && self.cpus.is_none()
    }
}

/// How `swap_container` ended.
enum Swapped {
    /// The new container runs (or is made, for an agent that was not running).
    Done,
    /// Nothing changed: the old container could not be put aside.
    NotBegun(AgentError),
    /// Failed half-way (`made`: after the new container was made): roll back.
    Failed { failure: AgentError, made: bool },
}

/// Limits in words, for the agent's log.
fn limits_words(limits: &crate::container_spec::Limits) -> String {
    let memory = format!("memory {} MiB", limits.memory_mib);
    match limits.cpus {
        Some(cpus) => format!("{memory}, {} CPUs", crate::container_spec::cpus_arg(cpus)),
        None => format!("{memory}, no CPU limit"),
    }
}

/// What `update` did: `updated` when the agent now has the newer image;
/// `rolledBack` says why it went back to the previous one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOutcome {
    pub agent: AgentView,
    pub updated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

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

    /// Starts a stopped agent, making its container again when it is missing, and
    /// answers when the gateway is healthy (or the start failed).
    pub async fn start(&self, id: Uuid) -> Result<AgentView, AgentError> {
        self.detached(move |this| async move { this.start_now(id, None).await })
            .await
    }

    /// `known`: the agent's container as a listing just found it (`Some(None)`:
    /// it has none), which spares a look of its own.
    async fn start_now(
        &self,
        id: Uuid,
        known: Option<Option<Found>>,
    ) -> Result<AgentView, AgentError> {
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
        self.refuse_when_shutting_down()?;
        let current = self.state(id)?;
        if current.live.container == Container::Running
            && current.record.status == AgentStatus::Running
        {
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
    async fn revive(&self, id: Uuid, due: chrono::DateTime<chrono::Utc>) -> Result<(), AgentError> {
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
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

    async fn start_attempt(
        &self,
        id: Uuid,
        known: Option<Option<Found>>,
        log: &logs::LogRing,
    ) -> Result<(), AgentError> {
        self.ensure_runtime(id).await?;
        let ours = match known {
            Some(known) => known,
            None => self.containers().find(id).await?,
        };
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
                "Nothing to change: give providerType, providerName, baseUrl, apiKey, modelId, memoryMiB or cpus."
                    .into(),
            ));
        }
        if let Some(m) = limits.memory_mib {
            steps::check_memory(m)?;
        }
        if let Some(Some(cpus)) = limits.cpus {
            self.check_cpus(cpus)?;
        }
        self.detached(move |this| async move { this.edit_now(id, edit, limits).await })
            .await
    }

    async fn edit_now(
        &self,
        id: Uuid,
        edit: ProviderInput,
        limits: LimitsEdit,
    ) -> Result<AgentView, AgentError> {
        let (_serial, current) = self.when_idle(id)?;
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
            return Box::pin(self.remake_with_limits(id, current, wanted, provider.as_ref())).await;
        }
        let Some(provider) = provider else {
            return self.get(id).ok_or(AgentError::NotFound);
        };
        let running = current.live.container == Container::Running
            || current.record.status == AgentStatus::Running;
        if !running {
            self.rewrite_provider(&current.record, &provider).await?;
            return self.get(id).ok_or(AgentError::NotFound);
        }
        self.transition(id, Input::Begin(Op::Restart))?;
        let log = self.log_ring(id)?;
        log.push("Restarting agent with new settings...");
        let result = async {
            if let Some(found) = self.containers().find(id).await? {
                self.containers()
                    .stop(&found.id, self.settings().stop_timeout)
                    .await?;
            }
            // Written while the gateway is down: it may write the file itself.
            self.rewrite_provider(&current.record, &provider).await?;
            self.start_attempt(id, None, &log).await
        }
        .await;
        self.finish_start(id, result, &log).await
    }

    /// Stops the agent's container, giving the gateway the stop timeout to exit
    /// before Podman kills it.
    pub async fn stop(&self, id: Uuid) -> Result<AgentView, AgentError> {
        self.detached(move |this| async move { this.stop_now(id).await })
            .await
    }

    async fn stop_now(&self, id: Uuid) -> Result<AgentView, AgentError> {
        // A stop while the agent starts ends that start now, not after its health
        // budget.
        self.cancel_start(id);
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
        self.transition(id, Input::Begin(Op::Stop))?;
        let log = self.log_ring(id)?;
        log.push("Stopping agent...");
        let result = match self.containers().find(id).await {
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

    /// Moves the agent to the newest image its reference names: pulled first
    /// (except `localhost/` references, which only this machine makes), and when
    /// it differs from the container's, the container is made again from it with
    /// the same config, workspace, port, name and token, and started if it ran. A
    /// new image whose gateway does not get healthy is rolled back.
    pub async fn update(&self, id: Uuid) -> Result<UpdateOutcome, AgentError> {
        self.detached(move |this| async move { this.update_now(id).await })
            .await
    }

    /// Renames the working container `old` to `aside` for a swap. A swap cut
    /// short (Clawdock crashed or was killed in it) may have left containers of
    /// this agent behind, one of them holding `aside`: only `old` is the working
    /// one, so the others go first.
    async fn set_aside(
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

    /// `update` for every agent, in parallel.
    pub async fn update_all(&self) -> Vec<(Uuid, Result<UpdateOutcome, AgentError>)> {
        let runs = self
            .list()
            .into_iter()
            .map(|a| async move { (a.id, self.update(a.id).await) });
        futures::future::join_all(runs).await
    }

    async fn update_now(&self, id: Uuid) -> Result<UpdateOutcome, AgentError> {
        let (_serial, current) = self.when_idle(id)?;
        let record = current.record;
        let log = self.log_ring(id)?;
        self.transition(id, Input::Begin(Op::Update))?;
        let checked = async {
            self.ensure_runtime(id).await?;
            if !record.image.starts_with("localhost/") {
                self.pull(id, &record.image, &log).await?;
            }
            let Some(newest) = self.containers().image_id(&record.image).await? else {
                return Err(AgentError::Gateway(format!(
                    "The image {} is not on this machine.",
                    record.image
                )));
            };
            Ok((newest, self.containers().find(id).await?))
        }
        .await;
        let old = match checked {
            // Without a container the next start makes one from the newest image.
            Ok((newest, Some(old))) if old.image_id != newest => {
                if record.rejected_image.as_deref() == Some(newest.as_str()) {
                    log.push(format!(
                        "The newest {} did not start before and was rolled back; it is not tried again until a newer one appears",
                        record.image
                    ));
                    self.transition(id, Input::Ended)?;
                    return Ok(UpdateOutcome {
                        agent: self.get(id).ok_or(AgentError::NotFound)?,
                        updated: false,
                        rolled_back: None,
                    });
                }
                (newest, old)
            }
            Ok((_, found)) => {
                if found.is_some() {
                    log.push(format!("{} is up to date", record.image));
                }
                self.transition(id, Input::Ended)?;
                return Ok(UpdateOutcome {
                    agent: self.get(id).ok_or(AgentError::NotFound)?,
                    updated: false,
                    rolled_back: None,
                });
            }
            Err(e) => {
                log.push(format!("Update failed: {e}"));
                self.transition(id, Input::Ended)?;
                return Err(e);
            }
        };
        let (newest, old) = old;
        // The new container needs the config handed to the gateway's user; a link
        // or special file the agent put there would fail that after the old
        // container is gone: refused now, with the agent as it was.
        if let Err(e) = self.config_can_be_handed_over(&record).await {
            log.push(format!("Update failed: {e}"));
            self.transition(id, Input::Ended)?;
            return Err(e);
        }
        let was_running = old.state == Container::Running;
        log.push(format!("Updating to the newest {}...", record.image));
        let (failure, made) =
            match Box::pin(self.swap_container(&record, &old, was_running, async { Ok(()) }, &log))
                .await
            {
                Swapped::Done => {
                    self.transition(id, Input::ImageRejected { image_id: None })?;
                    let agent = if was_running {
                        self.finish_start(id, Ok(()), &log).await?
                    } else {
                        self.transition(id, Input::Stopped)?;
                        log.push("Updated; the agent runs the new image at its next start");
                        self.get(id).ok_or(AgentError::NotFound)?
                    };
                    return Ok(UpdateOutcome {
                        agent,
                        updated: true,
                        rolled_back: None,
                    });
                }
                Swapped::NotBegun(e) => {
                    log.push(format!("Update failed: {e}"));
                    self.transition(id, Input::Ended)?;
                    return Err(e);
                }
                Swapped::Failed { failure, made } => (failure, made),
            };
        // Roll back, whatever failed (a create, the start, the health, a cancel, a
        // stop or the shutdown): the new container goes, the old one comes back.
        let cancelled = matches!(failure, AgentError::Cancelled);
        let why = if cancelled {
            "Update cancelled; the agent went back to the previous image.".to_string()
        } else {
            format!(
                "The new image did not start ({failure}); the agent went back to the previous one."
            )
        };
        log.push(if cancelled {
            why.clone()
        } else {
            format!("ERROR: {why}")
        });
        let new_image_failed = !matches!(
            failure,
            AgentError::Cancelled | AgentError::ShuttingDown | AgentError::EngineUnreachable(_)
        ) && made;
        if new_image_failed {
            // Not tried again by every "Update all" until a newer image appears.
            self.transition(
                id,
                Input::ImageRejected {
                    image_id: Some(newest),
                },
            )?;
        }
        let failure = Box::pin(self.roll_back(id, &old, was_running, made, failure, &log)).await?;
        if cancelled || !made {
            return Err(failure);
        }
        Ok(UpdateOutcome {
            agent: self.get(id).ok_or(AgentError::NotFound)?,
            updated: false,
            rolled_back: Some(why),
        })
    }

    /// Records the limits the agent's container now has (or its next one will).
    fn limits_set(
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
    async fn remake_with_limits(
        &self,
        id: Uuid,
        current: state::AgentState,
        limits: crate::container_spec::Limits,
        provider: Option<&definition::Provider>,
    ) -> Result<AgentView, AgentError> {
        let record = crate::store::AgentRecord {
            memory_mib: Some(limits.memory_mib),
            cpus: limits.cpus,
            ..current.record
        };
        let log = self.log_ring(id)?;
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
            Ok::<_, AgentError>(self.containers().find(id).await?)
        };
        let running =
            current.live.container == Container::Running || record.status == AgentStatus::Running;
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
        let (failure, made) =
            match Box::pin(self.swap_container(&record, &old, was_running, rewrite, &log)).await {
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
        let failure = Box::pin(self.roll_back(id, &old, was_running, made, failure, &log)).await?;
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
    async fn settle_edit_failure(
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

    /// A start under the operation lock the caller holds.
    async fn start_now_locked(
        &self,
        id: Uuid,
        log: &logs::LogRing,
    ) -> Result<AgentView, AgentError> {
        let result = self.start_attempt(id, Some(None), log).await;
        self.finish_start(id, result, log).await
    }

    /// Makes the agent's container again from `record` (its image and limits)
    /// beside the working one, `old`: `old` is renamed aside and runs on while the
    /// new one is made; if it ran, it is then stopped for the new one to take the
    /// port, `between` runs while no gateway runs, and the new one starts and must
    /// get healthy. On success `old` is removed; on failure `roll_back` brings it
    /// back.
    async fn swap_container(
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
    async fn roll_back(
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

    /// The agent's operation lock and state, refused (`busy`) rather than waited
    /// for when another operation runs: an edit or update queued behind a start
    /// would act on what the user no longer sees.
    fn when_idle(
        &self,
        id: Uuid,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, state::AgentState), AgentError> {
        let Ok(serial) = self.op_lock(id)?.try_lock_owned() else {
            return Err(self.busy(id));
        };
        self.refuse_when_shutting_down()?;
        let current = self.state(id)?;
        if current.live.activity.is_some() {
            return Err(self.busy(id));
        }
        Ok((serial, current))
    }

    fn busy(&self, id: Uuid) -> AgentError {
        match self.get(id).and_then(|a| a.activity) {
            Some(activity) => AgentError::Busy(activity.as_str().into()),
            None => AgentError::Busy("another operation runs".into()),
        }
    }

    /// Records a create, start or update that failed (or was cancelled) and
    /// gives back its error.
    async fn start_failed(&self, id: Uuid, err: AgentError, log: &logs::LogRing) -> AgentError {
        match self.finish_start(id, Err(err), log).await {
            Err(e) => e,
            Ok(_) => AgentError::Internal("a failed start was recorded as a success".into()),
        }
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
            let op = this.op_lock(id)?;
            let _serial = op.lock().await;
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
    fn cancel_start(&self, id: Uuid) -> bool {
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

    /// Removes the container (with its anonymous volumes), the agent folder and the
    /// record. `deleting` is saved first, so a crash half-way is finished at the
    /// next start.
    pub async fn delete(&self, id: Uuid) -> Result<(), AgentError> {
        self.detached(move |this| async move {
            this.cancel_start(id);
            let op = this.op_lock(id)?;
            let _serial = op.lock().await;
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
            let op = this.entry_lock(id)?;
            let _serial = op.lock().await;
            this.transition(id, Input::Begin(Op::ResumeDelete))?;
            this.remove_now(id).await
        })
        .await
    }

    async fn remove_now(&self, id: Uuid) -> Result<(), AgentError> {
        let found = match self.containers().find(id).await {
            Ok(found) => found,
            Err(e) if e.engine_unreachable() => {
                // The record stays, marked `deleting` and hidden; the next listing
                // of the containers finishes the delete.
                tracing::warn!(agent = %id, error = %e, "engine unreachable during delete; finishing it later");
                return self.hide_until_deleted(id);
            }
            Err(e) => return self.delete_failed(id, e.into()).await,
        };
        if let Some(found) = found {
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
        // std's remove_dir_all removes links the agent left without following them;
        // a large workspace takes a while: off the async workers.
        let removed = crate::agent_files::blocking(move || {
            steps::remove_dir(&dir)
                .map_err(|e| AgentError::Folder(format!("could not remove {}: {e}", dir.display())))
        })
        .await;
        if let Err(err) = removed {
            // Half-way: the container is gone, the folder is not. The agent comes
            // back into view with the error, and a delete can be tried again.
            return self.delete_failed(id, err).await;
        }
        self.forget(id)?;
        self.stop_machine_if_idle().await;
        Ok(())
    }

    async fn delete_failed(&self, id: Uuid, err: AgentError) -> Result<(), AgentError> {
        self.settle_after_failure(id, format!("Delete failed: {err}"))
            .await?;
        Err(err)
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
            let known = listing.map(|all| all.iter().find(|f| f.agent == Some(id)).cloned());
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

    /// The log lines so far and a receiver for new ones.
    pub fn follow_logs(
        &self,
        id: Uuid,
    ) -> Result<(Vec<String>, broadcast::Receiver<String>), AgentError> {
        Ok(self.log_ring(id)?.follow())
    }

    /// The last lines of the container's own output (none when it has no container).
    pub async fn container_logs(&self, id: Uuid, tail: usize) -> Result<Vec<String>, AgentError> {
        match self.own_container(id).await? {
            Some(container) => Ok(self.containers().tail_logs(&container, tail).await?),
            None => Ok(Vec::new()),
        }
    }

    /// The container's own output as it comes, after its last `tail` lines.
    pub async fn container_log_stream(
        &self,
        id: Uuid,
        tail: usize,
        follow: bool,
    ) -> Result<Option<LineStream>, AgentError> {
        match self.own_container(id).await? {
            Some(container) => Ok(Some(
                self.containers()
                    .stream_logs(&container, tail, follow)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    async fn own_container(&self, id: Uuid) -> Result<Option<ContainerId>, AgentError> {
        self.get(id).ok_or(AgentError::NotFound)?;
        Ok(self.containers().find(id).await?.map(|f| f.id))
    }

    /// Streams the gateway's `/v1/chat/completions` answer (OpenAI-style SSE) as raw
    /// bytes.
    pub async fn chat_stream(
        &self,
        id: Uuid,
        message: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>, AgentError>
    {
        let view = self.get(id).ok_or(AgentError::NotFound)?;
        if view.status != AgentStatus::Running {
            return Err(AgentError::NotRunning);
        }
        let token = self.state(id)?.record.token;
        Ok(self.gateway().chat(view.port, &token, message).await?)
    }

    /// The address of the agent's own Control UI with its gateway token in the
    /// fragment, which the browser keeps to itself (never sent to a server).
    pub fn dashboard_url(&self, id: Uuid) -> Result<String, AgentError> {
        let view = self.get(id).ok_or(AgentError::NotFound)?;
        if view.status != AgentStatus::Running {
            return Err(AgentError::NotRunning);
        }
        let token = self.state(id)?.record.token;
        Ok(format!("http://127.0.0.1:{}/#token={token}", view.port))
    }

    /// The agent as a Kustomize folder for Kubernetes (see [`crate::export`]): its
    /// record, its `openclaw.json` as on disk (a link or special file there is
    /// refused, never followed: the agent can write that file), and its
    /// container's limits. Holds the gateway token and the provider key.
    pub async fn export_kubernetes(
        &self,
        id: Uuid,
        options: &crate::export::Options,
    ) -> Result<crate::export::Export, AgentError> {
        self.get(id).ok_or(AgentError::NotFound)?;
        let record = self.state(id)?.record;
        let config_path = record.dir.join(steps::CONFIG_FILE);
        let bytes = crate::agent_files::blocking(move || {
            crate::agent_files::read_regular(&config_path, crate::agent_files::MAX_CONFIG_BYTES)
        })
        .await?;
        let config = String::from_utf8(bytes).map_err(|e| {
            AgentError::Folder(format!("the agent's openclaw.json is not UTF-8 ({e})"))
        })?;
        // The image the container runs (by ID: the tag may have moved since), else
        // the one the agent names.
        let running = self.containers().find(id).await?.map(|f| f.image_id);
        let image_digest = self
            .containers()
            .repo_digest(running.as_deref().unwrap_or(&record.image), &record.image)
            .await?;
        let source = crate::export::Source {
            record: &record,
            config: &config,
            limits: self.limits_of(&record),
            time_zone: &self.inner.time_zone,
            image_digest: image_digest.as_deref(),
        };
        Ok(crate::export::render(source, options)?)
    }

    /// Runs an operation detached from the caller and waits for it: dropping this
    /// future (a client that hung up) leaves the operation running to its end.
    async fn detached<T, F, Fut>(&self, work: F) -> Result<T, AgentError>
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
}
