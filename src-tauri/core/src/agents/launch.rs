//! Getting a container running: the engine ready, the image pulled, the
//! container made with the agent's limits, started, and its gateway healthy.
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::config::hand_to_gateway_user;
use super::logs::LogRing;
use super::state::{Container, Input};
use super::{AgentError, Agents};
use crate::agent_files;
use crate::container::ContainerId;
use crate::container_spec::NewContainer;
use crate::machine::Mode;
use crate::progress::Paced;
use crate::store::{self, AgentRecord};

impl Agents {
    /// Waits until the engine answers (starting the machine if needed); the
    /// shutdown cuts the wait short.
    pub(super) async fn ensure_runtime(&self, id: Uuid) -> Result<(), AgentError> {
        self.unless_interrupted(id, self.runtime_ready()).await
    }

    /// [`Agents::ensure_runtime`] for work that has no agent yet (a restore
    /// checks the engine before it writes anything); the shutdown cuts it short.
    pub(super) async fn runtime_ready(&self) -> Result<(), AgentError> {
        tokio::select! {
            ready = self.machine().ensure_ready() => ready?,
            () = self.inner.tasks.closed() => return Err(AgentError::ShuttingDown),
        }
        let containers = self.containers().clone();
        let native_linux = self.machine().mode() == Mode::Native && cfg!(target_os = "linux");
        // Kept once known; a failure is not kept: the next operation asks again.
        self.inner
            .host
            .get_or_try_init(|| async move {
                if native_linux {
                    containers.host_traits().await
                } else {
                    Ok(crate::container::HostTraits::default())
                }
            })
            .await?;
        Ok(())
    }

    /// The sandbox limits of an agent's container.
    pub(super) fn limits_of(&self, record: &AgentRecord) -> crate::container_spec::Limits {
        crate::container_spec::Limits {
            memory_mib: record
                .memory_mib
                .unwrap_or(self.settings().agent_memory_mib),
            pids: crate::container_spec::PIDS_LIMIT,
            cpus: record.cpus,
        }
    }

    /// Refuses a CPU limit outside what agents share here.
    pub(super) fn check_cpus(&self, cpus: f64) -> Result<(), AgentError> {
        let where_ = if self.machine().mode() == Mode::Vm {
            "Podman's machine"
        } else {
            "this computer"
        };
        crate::sizing::check_cpu_limit(cpus, self.machine().cpus(), where_)
            .map_err(AgentError::InvalidInput)
    }

    /// Makes the agent's own container (it has none): a new generation, recorded
    /// before the create so an interruption leaves no container that is not
    /// known, made from the image the record pins (the tag's, pulled if needed,
    /// for its first). Other containers of the agent are left-overs and go first.
    pub(super) async fn make_container(
        &self,
        record: &AgentRecord,
        log: &LogRing,
    ) -> Result<ContainerId, AgentError> {
        for left in self.containers().all_of(record.id).await? {
            tracing::info!(agent = %record.id, container = %left.name, "removing a container of the agent that is not its own");
            self.containers()
                .remove(&left.id, self.settings().stop_timeout)
                .await?;
        }
        let generation = new_generation();
        self.transition(
            record.id,
            Input::Pinned {
                generation: Some(generation.clone()),
                image_id: None,
            },
        )?;
        let name = record.container_name();
        let image = record.image_id.as_deref().unwrap_or(&record.image);
        let new = NewContainer {
            name: &name,
            generation: &generation,
            image,
        };
        let created = match self.create_container(record, new, log).await {
            Err(AgentError::ImageGone) if record.image_id.is_some() => {
                // The pinned image was removed from the engine (a prune): the
                // reference's image, unless that is one an update rejected.
                log.push(format!(
                    "The image this agent ran is no longer on this machine; making it from {}",
                    record.image
                ));
                self.pull_unless_local(record.id, &record.image, log)
                    .await?;
                let newest = self.containers().image_id(&record.image).await?;
                if newest.is_some() && newest == record.rejected_image {
                    return Err(AgentError::Gateway(format!(
                        "The image this agent ran is gone, and the newest {} did not start before (it was rolled back). Update the agent when a newer image is out, or delete it.",
                        record.image
                    )));
                }
                let new = NewContainer {
                    image: &record.image,
                    ..new
                };
                self.create_container(record, new, log).await?
            }
            other => other?,
        };
        let image_id = self.containers().details(&created).await?.image_id;
        self.transition(
            record.id,
            Input::Pinned {
                generation: Some(generation),
                image_id: Some(image_id),
            },
        )?;
        Ok(created)
    }

    /// Makes a container of the agent as `new` says, with the record's limits,
    /// pulling a named image first if the engine does not have it. An image ID
    /// it does not have is [`AgentError::ImageGone`].
    pub(super) async fn create_container(
        &self,
        record: &AgentRecord,
        new: NewContainer<'_>,
        log: &LogRing,
    ) -> Result<ContainerId, AgentError> {
        let host = self.inner.host.get().copied().unwrap_or_default();
        let dir = record.dir.clone();
        agent_files::blocking(move || {
            // Agents made by an earlier version have no cache folder yet.
            store::create_private_dir(&dir.join("cache"))
                .map_err(|e| AgentError::Folder(e.to_string()))?;
            if host.rootful_native {
                hand_to_gateway_user(&dir)?;
            }
            Ok::<_, AgentError>(())
        })
        .await?;
        self.refuse_when_shutting_down()?;
        let limits = self.limits_of(record);
        // The proxy's credentials stay on the host: the container gets the relay.
        let relay = self.relay_url(record.id).await?;
        let proxy = self.settings().agent_proxy.for_container(relay.as_deref());
        let create = || {
            self.containers()
                .create(record, new, host, &self.inner.time_zone, limits, &proxy)
        };
        let created = match create().await {
            Err(crate::containers::CreateError::ImageMissing(_)) if is_image_id(new.image) => {
                return Err(AgentError::ImageGone)
            }
            Err(crate::containers::CreateError::ImageMissing(_)) => {
                self.pull(record.id, new.image, log).await?;
                self.refuse_when_shutting_down()?;
                create().await
            }
            other => other,
        };
        created.map_err(|e| match e {
            crate::containers::CreateError::Podman(p) if !p.engine_unreachable() => {
                AgentError::from_step("Failed to start OpenClaw containers", p)
            }
            taken => taken.into(),
        })
    }

    /// Pulls `image` unless only this machine makes it (`localhost/`).
    pub(super) async fn pull_unless_local(
        &self,
        id: Uuid,
        image: &str,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        if image.starts_with("localhost/") {
            return Ok(());
        }
        self.pull(id, image, log).await
    }

    /// Pulls `image`: lines that say something new go to the agent's log, and
    /// progress (bytes summed over the image's blobs) to the event stream at most
    /// five times a second; the shutdown or a cancel ends it.
    pub(super) async fn pull(
        &self,
        id: Uuid,
        image: &str,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        log.push(format!("Pulling image {image}..."));
        let events = self.inner.events.clone();
        let log_lines = log.clone();
        let progress = Paced::new(move |reading| {
            // The log keeps what happened, not every redraw of a bar.
            if reading.news {
                log_lines.push(&reading.line);
            }
            let _no_listener = events.send(crate::events::Event::PullProgress {
                id,
                line: reading.line,
                done_bytes: reading.done_bytes,
                total_bytes: reading.total_bytes,
                eta_secs: reading.eta_secs,
            });
        });
        let files = self.settings().registry_auth_files.clone();
        let named = image.to_string();
        let login =
            tokio::task::spawn_blocking(move || crate::registry_auth::header_for(&files, &named))
                .await
                .unwrap_or_default();
        let pull = self
            .containers()
            .pull(image, login, |report| progress.report(&report));
        let result = self
            .unless_interrupted(id, async {
                pull.await
                    .map_err(|e| AgentError::from_step("Failed to pull OpenClaw image", e))
            })
            .await;
        progress.finish();
        result
    }

    /// Starts the container and waits for the gateway's health. Refused once the
    /// shutdown began: no container starts after it.
    pub(super) async fn launch_and_wait(
        &self,
        record: &AgentRecord,
        container: &ContainerId,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        self.refuse_when_shutting_down()?;
        // A container made at an earlier launch reaches the relay too.
        self.proxy_relay().await?;
        if self.inner.host.get().is_some_and(|h| h.cgroup_v1) {
            crate::cgroup_v1::reset_memory_peak(record.id);
        }
        self.transition(
            record.id,
            Input::Launching {
                at: Utc::now(),
                container_id: container.clone(),
            },
        )?;
        self.containers().start(container).await.map_err(|e| {
            if e.engine_unreachable() {
                AgentError::from(e)
            } else {
                AgentError::from_step("Failed to start OpenClaw containers", e)
            }
        })?;
        log.push("Waiting for gateway to be ready...");
        self.unless_interrupted(record.id, self.wait_healthy(record, container, log))
            .await?;
        log.push(format!(
            "OpenClaw gateway is ready at ws://127.0.0.1:{}",
            record.port
        ));
        self.follow_readiness(record.id, record.port);
        Ok(())
    }

    /// Polls the published `/healthz` within the health budget. Podman's own
    /// health check is not trusted: without systemd it never runs.
    pub(super) async fn wait_healthy(
        &self,
        record: &AgentRecord,
        container: &ContainerId,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        /// How long the gateway is asked every 50 ms before the pauses grow.
        const FAST_POLLS: Duration = Duration::from_secs(2);
        let budget = self.settings().health_timeout;
        let started = tokio::time::Instant::now();
        let mut last_note = 0;
        let mut last_look = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            if self.gateway().healthy(record.port).await {
                return Ok(());
            }
            // Events say it first; a look every few seconds covers the moments the
            // event stream is not attached (app start, reconnects).
            if last_look.elapsed() >= Duration::from_secs(3) {
                last_look = tokio::time::Instant::now();
                self.look_at(record.id, container).await?;
            }
            if let Container::Exited(_) | Container::OutOfMemory =
                self.state(record.id)?.live.container
            {
                // The `died` of an earlier stop can arrive after this start began:
                // Podman, asked now, decides.
                self.look_at(record.id, container).await?;
                let mut seen = self.state(record.id)?.live.container;
                if seen == Container::Exited(Some(137)) {
                    seen = self.why_killed(record.id, container).await;
                }
                match seen {
                    seen @ (Container::Exited(Some(137)) | Container::OutOfMemory) => {
                        return Err(AgentError::Gateway(super::state::death_message(
                            seen,
                            self.state(record.id)?.record.memory_mib,
                        )));
                    }
                    Container::Exited(Some(code)) => {
                        return Err(AgentError::Gateway(format!(
                            "The gateway exited during start (exit code {code})"
                        )))
                    }
                    Container::Exited(None) => {
                        return Err(AgentError::Gateway(
                            "The gateway's container did not start".into(),
                        ))
                    }
                    _ => {}
                }
            }
            let elapsed = started.elapsed();
            if elapsed >= budget {
                return Err(AgentError::Gateway(format!(
                    "Gateway did not become healthy within {} seconds",
                    budget.as_secs()
                )));
            }
            if elapsed.as_secs() >= last_note + 5 {
                last_note = elapsed.as_secs();
                log.push(format!("Starting gateway... {last_note}s"));
            }
            // Often up within a few hundred milliseconds (small images, warm
            // caches): every 50 ms for the first 2 s (a refused connection on
            // loopback costs next to nothing; doubling from the start saw a
            // gateway up at +100 ms only at +150 ms), then back off, doubling to
            // 1 s, so a slow gateway is not hammered.
            tokio::time::sleep(pause).await;
            if started.elapsed() >= FAST_POLLS {
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }

    pub(super) async fn look_at(
        &self,
        id: Uuid,
        container: &ContainerId,
    ) -> Result<(), AgentError> {
        if let Some(seen) = self.containers().inspect(container).await {
            self.transition(id, Input::Inspected { container: seen })?;
        }
        Ok(())
    }

    /// `/readyz` follows `/healthz` by a few seconds; report it when it comes.
    pub(super) fn follow_readiness(&self, id: Uuid, port: u16) {
        let this = self.clone();
        self.inner.tasks.spawn_background(async move {
            for _ in 0..60 {
                let running = this
                    .state(id)
                    .is_ok_and(|s| s.live.container == Container::Running);
                if !running {
                    return;
                }
                if this.gateway().ready(port).await {
                    let _gone = this.transition(id, Input::GatewayReady);
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// A fresh generation label for a container of an agent.
pub(super) fn new_generation() -> String {
    super::random_hex(6)
}

/// True for an image ID (64 hex digits, `sha256:` or not), which the engine has or
/// has not: it is never pulled.
fn is_image_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}
