//! The steps operations share: taking and building a create, recording how a start
//! ended, the agent's folder and config, the runtime and image, making and
//! launching the container, waiting for the gateway, moving off a taken port, and
//! the small rules (ports, tokens, the instance label) beneath.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::definition::{self, Provider};
use super::logs::{self, LogRing};
use super::state::{Container, Input};
use super::{AgentError, AgentView, Agents, CreateRequest, FAILURE_LOG_LINES};
use crate::agent_files;
use crate::container::{ContainerId, Found};
use crate::machine::Mode;
use crate::progress::Paced;
use crate::settings::Settings;
use crate::store::{self, AgentRecord, StoreError};

/// The agent's config, relative to its folder: the gateway (the agent) can write
/// it, so the host never follows a link there.
pub(super) const CONFIG_FILE: &str = "config/openclaw.json";

impl Agents {
    /// Writes the agent's folders and `openclaw.json` (0600: it holds the key).
    pub(super) async fn write_config(
        &self,
        record: &AgentRecord,
        provider: &Provider,
    ) -> Result<(), AgentError> {
        let agents_dir = self.settings().agents_dir();
        let dir = record.dir.clone();
        let config = definition::openclaw_config(record.port, provider);
        agent_files::blocking(move || {
            let folder = |e: std::io::Error| AgentError::Folder(e.to_string());
            store::create_private_dir(&agents_dir).map_err(folder)?;
            store::create_private_dir(&dir).map_err(folder)?;
            store::create_private_dir(&dir.join("config")).map_err(folder)?;
            store::create_private_dir(&dir.join("workspace")).map_err(folder)?;
            store::create_private_dir(&dir.join("cache")).map_err(folder)?;
            // Replaces whatever is there (a link the agent left is replaced, not
            // followed: the new file is renamed over it).
            write_json(&dir.join(CONFIG_FILE), &config)
        })
        .await
    }

    /// The agent's `openclaw.json` as it is now; a missing one reads as a fresh
    /// config without provider (an edit then repairs it). The agent can write this
    /// file: a link, a special file or more than a MiB is refused, never followed.
    pub(super) async fn read_config(
        &self,
        record: &AgentRecord,
    ) -> Result<serde_json::Value, AgentError> {
        let path = record.dir.join(CONFIG_FILE);
        let port = record.port;
        agent_files::blocking(move || {
            match agent_files::read_regular(&path, agent_files::MAX_CONFIG_BYTES) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    AgentError::Folder(format!(
                        "{} is not valid JSON ({e}); fix it or delete it",
                        path.display()
                    ))
                }),
                Err(e) if e.is_not_found() => {
                    Ok(definition::openclaw_config(port, &Provider::None))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Writes the agent's `openclaw.json` anew (0600, ours), handed to the gateway's
    /// user where a rootful engine needs that for the gateway to read it.
    async fn write_config_file(
        &self,
        record: &AgentRecord,
        config: &serde_json::Value,
    ) -> Result<(), AgentError> {
        let dir = record.dir.clone();
        let config = config.clone();
        let rootful = self.inner.host.get().is_some_and(|h| h.rootful_native);
        agent_files::blocking(move || {
            write_json(&dir.join(CONFIG_FILE), &config)?;
            if rootful {
                hand_to_gateway_user(&dir)?;
            }
            Ok(())
        })
        .await
    }

    /// Puts `provider` into the agent's `openclaw.json`, keeping the rest of the
    /// file, and records it.
    pub(super) async fn rewrite_provider(
        &self,
        record: &AgentRecord,
        provider: &Provider,
    ) -> Result<(), AgentError> {
        let config =
            definition::with_provider(&self.read_config(record).await?, record.port, provider);
        self.write_config_file(record, &config).await?;
        let config_dir = record.dir.join("config");
        agent_files::blocking(move || remove_config_backups(&config_dir)).await?;
        let shown = definition::provider_input_of_config(&config);
        self.transition(
            record.id,
            Input::Edited {
                provider_type: provider.type_name(),
                notice: provider.notice(),
                model_id: shown.model_id,
                base_url: shown.base_url,
            },
        )?;
        Ok(())
    }

    /// Waits until the engine answers (starting the machine if needed); the
    /// shutdown cuts the wait short.
    pub(super) async fn ensure_runtime(&self, id: Uuid) -> Result<(), AgentError> {
        self.unless_interrupted(id, async {
            self.machine().ensure_ready().await?;
            Ok(())
        })
        .await?;
        let containers = self.containers().clone();
        let native_linux = self.machine().mode() == Mode::Native && cfg!(target_os = "linux");
        self.inner
            .host
            .get_or_init(|| async move {
                if native_linux {
                    containers.host_traits().await
                } else {
                    crate::container::HostTraits::default()
                }
            })
            .await;
        Ok(())
    }

    /// Refuses, where a rootful engine needs `openclaw.json` handed to the gateway's
    /// user, a config that is not a regular file (a link, a FIFO): making the
    /// container would fail on it.
    pub(super) async fn config_can_be_handed_over(
        &self,
        record: &AgentRecord,
    ) -> Result<(), AgentError> {
        if !self.inner.host.get().is_some_and(|h| h.rootful_native) {
            return Ok(());
        }
        let path = record.dir.join(CONFIG_FILE);
        agent_files::blocking(move || agent_files::open_regular(&path).map(drop)).await?;
        Ok(())
    }

    /// Makes the agent's container from its image, pulling it first if needed.
    pub(super) async fn make_container(
        &self,
        record: &AgentRecord,
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
        let create = || {
            self.containers().create(
                record,
                host,
                &self.inner.time_zone,
                limits,
                &self.settings().agent_proxy,
            )
        };
        let created = match create().await {
            Err(crate::containers::CreateError::ImageMissing(_)) => {
                self.pull(record.id, &record.image, log).await?;
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

    /// Starts the container and waits for the gateway's health. Refused once the
    /// shutdown began: no container starts after it.
    pub(super) async fn launch_and_wait(
        &self,
        record: &AgentRecord,
        container: &ContainerId,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        self.refuse_when_shutting_down()?;
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
    async fn wait_healthy(
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

    async fn look_at(&self, id: Uuid, container: &ContainerId) -> Result<(), AgentError> {
        if let Some(seen) = self.containers().inspect(container).await {
            self.transition(id, Input::Inspected { container: seen })?;
        }
        Ok(())
    }

    /// `/readyz` follows `/healthz` by a few seconds; report it when it comes.
    fn follow_readiness(&self, id: Uuid, port: u16) {
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

    /// A port free at create may be taken by another program since. Then the agent
    /// moves to a free port: its config follows and its container is made again
    /// (a published port is fixed at create).
    /// `ours` is the agent's container as just found; it comes back unless the
    /// move removed it (its published port is the old one).
    pub(super) async fn move_off_a_taken_port(
        &self,
        id: Uuid,
        ours: Option<Found>,
        log: &LogRing,
    ) -> Result<(AgentRecord, Option<Found>), AgentError> {
        let record = self.state(id)?.record;
        if port_is_free(record.port) || ours.as_ref().is_some_and(|f| f.state == Container::Running)
        {
            return Ok((record, ours));
        }
        let held: Vec<u16> = self.states().iter().map(|s| s.record.port).collect();
        let port = free_port(self.settings().first_agent_port, &held)?;
        log.push(format!(
            "Port {} is taken by another program; the agent moves to port {port}",
            record.port
        ));
        let mut config = self.read_config(&record).await?;
        definition::move_config_to_port(&mut config, port);
        self.write_config_file(&record, &config).await?;
        if let Some(found) = ours {
            self.containers().remove(&found.id, Duration::ZERO).await?;
        }
        self.transition(id, Input::PortMoved { port })?;
        Ok((self.state(id)?.record, None))
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

/// The parts of a create and a start that come after the operation list: taking
/// a create, building it, and recording how a start ended.
impl Agents {
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
        let view = self.record_new(id, name, &provider, memory_mib, req.cpus)?;
        Ok((view, provider))
    }

    /// The background part of a create: folder, runtime, image, container, start.
    pub(super) async fn build(
        &self,
        id: Uuid,
        provider: Provider,
    ) -> Result<AgentView, AgentError> {
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
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

    /// A container that failed its start must not linger half-alive: its last
    /// lines go to the log, then it is removed; the next start makes it again.
    pub(super) async fn discard_failed_container(&self, id: Uuid, log: &logs::LogRing) {
        let container = match self.containers().find(id).await {
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
        let seen = match self.containers().find(id).await {
            Ok(Some(found)) => self.containers().inspect(&found.id).await,
            Ok(None) => Some(Container::Missing),
            Err(_) => None,
        };
        self.transition(id, Input::OpFailed { message, seen })?;
        Ok(())
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), AgentError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| AgentError::Folder(e.to_string()))?;
    bytes.push(b'\n');
    store::write_secret(path, &bytes)?;
    Ok(())
}

/// The gateway keeps `openclaw.json.bak*` copies of the file it rewrites at start:
/// after an edit they would keep the key the user meant to replace.
fn remove_config_backups(config_dir: &Path) -> Result<(), AgentError> {
    let entries = match std::fs::read_dir(config_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AgentError::Folder(e.to_string())),
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("openclaw.json.bak"))
        {
            std::fs::remove_file(entry.path())
                .map_err(|e| AgentError::Folder(format!("{}: {e}", entry.path().display())))?;
        }
    }
    Ok(())
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The lowest port from `first` that no agent holds and that is free on 127.0.0.1.
pub(super) fn free_port(first: u16, held: &[u16]) -> Result<u16, AgentError> {
    let last = first.saturating_add(999);
    (first..=last)
        .filter(|p| !held.contains(p))
        .find(|p| port_is_free(*p))
        .ok_or(AgentError::NoFreePort(first, last))
}

/// Hex of `bytes` random bytes from the OS.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut buf) {
        // No OS randomness is not something to limp on with a weak token.
        panic!("the operating system gave no random bytes: {e}");
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// This data folder's instance label, created once and kept in the folder.
pub(super) fn instance_label(settings: &Settings) -> Result<String, StoreError> {
    let path = settings.home.join("instance-id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
    }
    let id = random_hex(8);
    store::write_plain(&path, id.as_bytes())?;
    Ok(id)
}

/// Rootful Podman runs the gateway as uid 1000 with the folder owned by root (the
/// app runs as root then): hand the agent's folders to that uid so the gateway can
/// write its config. Rootless Podman maps the user into the container instead.
/// Each is changed through its own descriptor, opened without following a link: a
/// link the agent put at `openclaw.json` (to `/etc/shadow`) is refused, not handed
/// over. Blocking.
fn hand_to_gateway_user(dir: &Path) -> Result<(), agent_files::AgentFileError> {
    let uid = crate::container_spec::GATEWAY_UID;
    for (path, is_dir) in [
        (dir.to_path_buf(), true),
        (dir.join("config"), true),
        (dir.join("workspace"), true),
        (dir.join("cache"), true),
        (dir.join(CONFIG_FILE), false),
    ] {
        agent_files::chown(&path, is_dir, uid, uid)?;
    }
    Ok(())
}

pub(super) fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Refuses a memory limit outside its bounds.
pub(super) fn check_memory(memory_mib: u64) -> Result<(), AgentError> {
    crate::sizing::check_memory_limit(memory_mib).map_err(AgentError::InvalidInput)
}
