//! The agents: their records, their containers, live state from `podman events`,
//! logs, chat, and the operations create / start / stop / delete. Operations on one
//! agent are serialized by that agent's lock; different agents run in parallel.

pub mod definition;
pub mod logs;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::events::{Change, Event};
use crate::machine::{Machine, MachineError, Mode};
use crate::podman::{Call, PodmanError};
use crate::settings::Settings;
use crate::store::{self, AgentRecord, AgentStatus, Store, StoreError, Wanted};
use definition::{HostTraits, Provider, ProviderInput};
use logs::LogRing;

/// Lines of container output copied into the agent's log when something fails.
const FAILURE_LOG_LINES: usize = 50;

/// What can go wrong with an agent operation. The API maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("An agent named `{0}` already exists.")]
    Duplicate(String),
    #[error("No such agent.")]
    NotFound,
    #[error("The agent is not running.")]
    NotRunning,
    #[error("Podman is not available: {0}")]
    RuntimeUnavailable(String),
    #[error("Clawdock is shutting down.")]
    ShuttingDown,
    #[error("No free port for the agent between {0} and {1}.")]
    NoFreePort(u16, u16),
    #[error(transparent)]
    Podman(#[from] PodmanError),
    #[error("The container runtime is not ready: {0}")]
    Machine(#[from] MachineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Could not prepare the agent folder: {0}")]
    Folder(String),
    #[error("{0}")]
    Gateway(String),
}

/// An operation in progress on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    Creating,
    Starting,
    Stopping,
    Deleting,
}

/// An agent as clients see it: no token, no API key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub status: AgentStatus,
    pub port: u16,
    pub dir: PathBuf,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    pub activity: Option<Activity>,
    /// The gateway answered `/readyz`.
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub image: String,
    /// Something the user should know, e.g. a local provider that must listen
    /// beyond 127.0.0.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// `POST /agents/create`, as the replaced runtime took it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub name: String,
    #[serde(flatten)]
    pub provider: ProviderInput,
}

/// What Podman last said about an agent's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Unknown,
    Missing,
    Running,
    Exited(Option<i32>),
}

struct Entry {
    record: AgentRecord,
    activity: Option<Activity>,
    /// When this app last started the container, to tell a late `died` of an
    /// earlier run from a real one.
    started_at: Option<DateTime<Utc>>,
    container: Container,
    ready: bool,
    notice: Option<String>,
    logs: LogRing,
    /// Serializes operations on this agent. Never taken while `Inner::state` is held.
    op: Arc<tokio::sync::Mutex<()>>,
}

impl Entry {
    fn new(record: AgentRecord) -> Self {
        Self {
            record,
            activity: None,
            started_at: None,
            container: Container::Unknown,
            ready: false,
            notice: None,
            logs: LogRing::default(),
            op: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn view(&self) -> AgentView {
        let r = &self.record;
        let running = r.status == AgentStatus::Running;
        AgentView {
            id: r.id,
            name: r.name.clone(),
            status: r.status,
            port: r.port,
            dir: r.dir.clone(),
            created_at: r.created_at,
            error: r.error.clone(),
            provider_type: r.provider_type.clone(),
            activity: self.activity,
            ready: running && self.ready,
            gateway_url: running.then(|| format!("ws://127.0.0.1:{}", r.port)),
            exit_code: match self.container {
                Container::Exited(code) => code,
                _ => None,
            },
            image: r.image.clone(),
            notice: self.notice.clone(),
        }
    }
}

/// The agents of one Clawdock instance. Clone to share.
#[derive(Clone)]
pub struct Agents {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    machine: Machine,
    store: Store,
    /// Label value that marks containers of this data folder, so two instances
    /// (or test runs) on one Podman never touch each other's containers.
    home_label: String,
    time_zone: String,
    /// Probed once, by the first operation that needs it; others wait for it.
    host: tokio::sync::OnceCell<HostTraits>,
    http: reqwest::Client,
    state: Mutex<BTreeMap<Uuid, Entry>>,
    /// Serializes writes of `agents.json` so they land in order.
    save: Mutex<()>,
    events: broadcast::Sender<Event>,
    shutting_down: AtomicBool,
}

impl Agents {
    /// Loads the records. A corrupt `agents.json` is moved aside; its path and reason
    /// come back as the warning.
    pub fn load(
        settings: Settings,
        machine: Machine,
        events: broadcast::Sender<Event>,
    ) -> Result<(Self, Option<String>), StoreError> {
        let store = Store::new(settings.agents_file());
        let loaded = store.load()?;
        let warning = loaded.moved_aside.map(|(path, reason)| {
            format!(
                "agents.json could not be read ({reason}); it was moved to {} and Clawdock started without it.",
                path.display()
            )
        });
        let home_label = instance_label(&settings)?;
        let state = loaded
            .agents
            .into_iter()
            .map(|r| (r.id, Entry::new(r)))
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        let agents = Self {
            inner: Arc::new(Inner {
                time_zone: iana_time_zone::get_timezone().unwrap_or_else(|_| "UTC".into()),
                settings,
                machine,
                store,
                home_label,
                host: tokio::sync::OnceCell::new(),
                http,
                state: Mutex::new(state),
                save: Mutex::new(()),
                events,
                shutting_down: AtomicBool::new(false),
            }),
        };
        Ok((agents, warning))
    }

    pub fn home_label(&self) -> &str {
        &self.inner.home_label
    }

    pub fn list(&self) -> Vec<AgentView> {
        let state = self.lock();
        let mut views: Vec<AgentView> = state
            .values()
            .filter(|e| !e.record.deleting)
            .map(Entry::view)
            .collect();
        views.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        views
    }

    pub fn get(&self, id: Uuid) -> Option<AgentView> {
        self.lock()
            .get(&id)
            .filter(|e| !e.record.deleting)
            .map(Entry::view)
    }

    /// Number of agents whose container runs.
    pub fn running_count(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.record.status == AgentStatus::Running)
            .count()
    }

    /// Validates, records the agent as `creating` and answers; the container is
    /// made in the background (follow the agent's log and events). The record is
    /// saved before any container exists, so a crash never leaves an unknown one.
    pub async fn create(&self, req: CreateRequest) -> Result<AgentView, AgentError> {
        let (view, provider) = self.register(req).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let id = view.id;
            if let Err(e) = this.build(id, provider).await {
                tracing::warn!(agent = %id, error = %e, "create failed");
            }
        });
        Ok(view)
    }

    /// `create` that returns when the agent runs (or failed).
    pub async fn create_and_wait(&self, req: CreateRequest) -> Result<AgentView, AgentError> {
        let (view, provider) = self.register(req).await?;
        self.build(view.id, provider).await
    }

    async fn register(&self, req: CreateRequest) -> Result<(AgentView, Provider), AgentError> {
        self.refuse_when_shutting_down()?;
        let name = req.name.trim().to_string();
        definition::validate_name(&name).map_err(AgentError::InvalidName)?;
        let provider = Provider::from_input(&req.provider).map_err(AgentError::InvalidInput)?;
        if self.inner.machine.podman().bin().is_none() {
            return Err(AgentError::RuntimeUnavailable(
                crate::podman::install_hint().into(),
            ));
        }
        let id = Uuid::new_v4();
        let view = {
            let mut state = self.lock();
            if state
                .values()
                .any(|e| e.record.name.eq_ignore_ascii_case(&name))
            {
                return Err(AgentError::Duplicate(name));
            }
            let held: Vec<u16> = state.values().map(|e| e.record.port).collect();
            let port = free_port(self.inner.settings.first_agent_port, &held)?;
            let record = AgentRecord {
                id,
                name,
                status: AgentStatus::Creating,
                port,
                dir: definition::agent_dir(&self.inner.settings.agents_dir(), &id),
                token: random_hex(32),
                created_at: Utc::now(),
                error: None,
                provider_type: provider.type_name(),
                wanted: Wanted::Running,
                running_at_quit: false,
                deleting: false,
                image: self.inner.settings.agent_image.clone(),
            };
            let memory_notice = self.memory_notice(state.len() + 1);
            let mut entry = Entry::new(record);
            entry.activity = Some(Activity::Creating);
            entry.notice = match (provider.notice(), memory_notice) {
                (Some(a), Some(b)) => Some(format!("{a} {b}")),
                (a, b) => a.or(b),
            };
            let view = entry.view();
            state.insert(id, entry);
            view
        };
        if let Err(e) = self.persist() {
            self.lock().remove(&id);
            return Err(e.into());
        }
        self.emit(id, None);
        Ok((view, provider))
    }

    /// A warning when `agents` gateways would not fit in the Podman machine's memory.
    fn memory_notice(&self, agents: usize) -> Option<String> {
        use crate::status::{AGENT_MEMORY_MIB, MACHINE_BASE_MIB};
        if self.inner.machine.mode() != Mode::Vm {
            return None;
        }
        let have = self.inner.machine.memory_mib()?;
        let need = MACHINE_BASE_MIB + AGENT_MEMORY_MIB * agents as u64;
        (need > have).then(|| {
            format!(
                "{agents} agents need about {:.1} GiB but the Podman machine has {:.1} GiB: agents may fail or be killed. \
                 Give the machine more memory (podman machine stop; podman machine set --memory {}).",
                need as f64 / 1024.0,
                have as f64 / 1024.0,
                need.div_ceil(512) * 512
            )
        })
    }

    async fn build(&self, id: Uuid, provider: Provider) -> Result<AgentView, AgentError> {
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
        let log = self.log_ring(id)?;
        let result = async {
            let record = self.record(id)?;
            log.push("Checking container runtime...");
            self.ensure_runtime().await?;
            log.push("Container runtime ready");
            self.prepare_folder(&record, &provider)?;
            self.ensure_image(&record.image, &log).await?;
            self.refuse_when_shutting_down()?;
            self.create_container(&record).await.map_err(|e| {
                AgentError::Gateway(format!("Failed to start OpenClaw containers: {e}"))
            })?;
            self.start_container_and_wait(&record, &log).await
        }
        .await;
        self.finish_start(id, result, &log).await
    }

    /// Starts a stopped agent, recreating its container when it is missing, and
    /// answers when the gateway is healthy (or the start failed).
    pub async fn start(&self, id: Uuid) -> Result<AgentView, AgentError> {
        self.refuse_when_shutting_down()?;
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
        let log = self.log_ring(id)?;
        let record = self.record(id)?;
        if self.container_state(id) == Container::Running && record.status == AgentStatus::Running {
            return self.get(id).ok_or(AgentError::NotFound);
        }
        self.update(id, |e| {
            e.activity = Some(Activity::Starting);
            e.record.wanted = Wanted::Running;
            e.record.error = None;
            e.record.running_at_quit = false;
        })?;
        self.persist()?;
        self.emit(id, None);
        log.push("Starting agent...");
        let result = async {
            self.ensure_runtime().await?;
            let record = self.move_off_a_taken_port(record, &log).await?;
            if !self.container_exists(&record).await? {
                log.push("Container missing; creating it again");
                self.ensure_image(&record.image, &log).await?;
                self.create_container(&record).await?;
            }
            self.start_container_and_wait(&record, &log).await
        }
        .await;
        self.finish_start(id, result, &log).await
    }

    /// A port free at create may be taken by another program since. Then the agent
    /// moves to a free port: its config follows and its container is made again
    /// (a published port is fixed at create).
    async fn move_off_a_taken_port(
        &self,
        record: AgentRecord,
        log: &LogRing,
    ) -> Result<AgentRecord, AgentError> {
        if port_is_free(record.port)
            || self.inspect_container(&record.container_name()).await == Some(Container::Running)
        {
            return Ok(record);
        }
        let port = {
            let state = self.lock();
            let held: Vec<u16> = state.values().map(|e| e.record.port).collect();
            free_port(self.inner.settings.first_agent_port, &held)?
        };
        log.push(format!(
            "Port {} is taken by another program; the agent moves to port {port}",
            record.port
        ));
        let config = record.dir.join("config/openclaw.json");
        if let Ok(text) = std::fs::read_to_string(&config) {
            if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&text) {
                value["gateway"]["controlUi"]["allowedOrigins"] = serde_json::json!([
                    format!("http://127.0.0.1:{port}"),
                    format!("http://localhost:{port}")
                ]);
                let mut bytes = serde_json::to_vec_pretty(&value)
                    .map_err(|e| AgentError::Folder(e.to_string()))?;
                bytes.push(b'\n');
                store::write_secret(&config, &bytes)?;
            }
        }
        self.podman()
            .run(Call::new([
                "rm",
                "--force",
                "--ignore",
                &record.container_name(),
            ]))
            .await?;
        self.update(record.id, |e| e.record.port = port)?;
        self.persist()?;
        self.record(record.id)
    }

    /// Stops the agent's container, giving the gateway the stop timeout to exit
    /// before Podman kills it.
    pub async fn stop(&self, id: Uuid) -> Result<AgentView, AgentError> {
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
        let log = self.log_ring(id)?;
        let record = self.record(id)?;
        self.update(id, |e| {
            e.activity = Some(Activity::Stopping);
            e.record.wanted = Wanted::Stopped;
            e.record.running_at_quit = false;
        })?;
        self.persist()?;
        self.emit(id, None);
        log.push("Stopping agent...");
        let result = self.stop_container(&record.container_name()).await;
        let outcome = match result {
            Ok(()) => {
                log.push("Agent stopped");
                self.update(id, |e| {
                    e.activity = None;
                    e.ready = false;
                    e.record.status = AgentStatus::Stopped;
                    e.record.error = None;
                    if e.container == Container::Running {
                        e.container = Container::Exited(None);
                    }
                })
            }
            Err(err) => {
                log.push(format!("ERROR: {err}"));
                self.settle_after_failure(&record, format!("Stop failed: {err}"))
                    .await
                    .and(Err(err))
            }
        };
        self.persist()?;
        self.emit(id, None);
        outcome.and_then(|()| self.get(id).ok_or(AgentError::NotFound))
    }

    /// Removes the container (with its anonymous volumes), the agent folder and the
    /// record. A crash half-way is finished at the next start (`deleting` is saved
    /// first).
    pub async fn delete(&self, id: Uuid) -> Result<(), AgentError> {
        let op = self.op_lock(id)?;
        let _serial = op.lock().await;
        self.update(id, |e| {
            if e.record.deleting {
                return Err(AgentError::NotFound);
            }
            e.activity = Some(Activity::Deleting);
            e.record.deleting = true;
            e.record.wanted = Wanted::Stopped;
            Ok(())
        })??;
        self.persist()?;
        self.emit_deleting(id);
        self.remove_now(id).await
    }

    /// Finishes a delete that a crash interrupted.
    pub(crate) async fn finish_delete(&self, id: Uuid) -> Result<(), AgentError> {
        let op = self.update(id, |e| e.op.clone())?;
        let _serial = op.lock().await;
        self.update(id, |e| e.activity = Some(Activity::Deleting))?;
        self.remove_now(id).await
    }

    async fn remove_now(&self, id: Uuid) -> Result<(), AgentError> {
        let record = self.record(id)?;
        self.remove_everything(&record).await?;
        self.lock().remove(&id);
        self.persist()?;
        let _no_listener = self.inner.events.send(Event::AgentRemoved { id });
        self.stop_machine_if_idle().await;
        Ok(())
    }

    /// Listeners learn that the agent is going before it is gone.
    fn emit_deleting(&self, id: Uuid) {
        let view = self.lock().get(&id).map(Entry::view);
        if let Some(agent) = view {
            let _no_listener = self.inner.events.send(Event::Agent {
                agent,
                change: None,
            });
        }
    }

    async fn remove_everything(&self, record: &AgentRecord) -> Result<(), AgentError> {
        let timeout = self.stop_secs();
        let call = Call::new([
            "rm",
            "--force",
            "--volumes",
            "--ignore",
            "--time",
            &timeout.to_string(),
            &record.container_name(),
        ])
        .timeout(self.inner.settings.stop_timeout + self.podman().call_timeout());
        let removed = match self.podman().run(call).await {
            Ok(_) if self.container_exists(record).await? => Err(AgentError::Gateway(
                "Podman said the container was removed, but it is still there.".into(),
            )),
            Ok(_) => Ok(()),
            // The engine is gone (machine stopped): the folder and record can go; the
            // container, labelled as ours, is removed at the next listing.
            Err(e) if is_engine_unreachable(&e) => {
                tracing::warn!(error = %e, "engine unreachable during delete; removing the record");
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
        if let Err(err) = removed {
            self.settle_after_failure(record, format!("Delete failed: {err}"))
                .await?;
            self.persist()?;
            self.emit(record.id, None);
            return Err(err);
        }
        remove_dir(&record.dir).map_err(|e| AgentError::Folder(e.to_string()))
    }

    /// After a failed stop or delete, says what Podman says: a container still
    /// running is a running agent whose operation failed, not a stopped one.
    async fn settle_after_failure(
        &self,
        record: &AgentRecord,
        error: String,
    ) -> Result<(), AgentError> {
        let seen = self.inspect_container(&record.container_name()).await;
        self.update(record.id, |e| {
            e.activity = None;
            e.record.deleting = false;
            if let Some(seen) = seen {
                e.container = seen;
            }
            e.record.status = if e.container == Container::Running {
                AgentStatus::Running
            } else {
                AgentStatus::Error
            };
            e.record.error = Some(error);
        })
    }

    /// The log lines so far and a receiver for new ones.
    pub fn follow_logs(
        &self,
        id: Uuid,
    ) -> Result<(Vec<String>, broadcast::Receiver<String>), AgentError> {
        Ok(self.log_ring(id)?.follow())
    }

    /// The last lines of the container's own output.
    pub async fn container_logs(&self, id: Uuid, tail: usize) -> Result<Vec<String>, AgentError> {
        let record = self.record(id)?;
        Ok(self
            .tail_container_logs(&record.container_name(), tail)
            .await?)
    }

    /// Streams the gateway's `/v1/chat/completions` answer (OpenAI-style SSE).
    pub async fn chat(
        &self,
        id: Uuid,
        message: &str,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>>, AgentError> {
        let view = self.get(id).ok_or(AgentError::NotFound)?;
        if view.status != AgentStatus::Running {
            return Err(AgentError::NotRunning);
        }
        let token = self.record(id)?.token;
        let body = serde_json::json!({
            "model": "openclaw/default",
            "stream": true,
            "messages": [{ "role": "user", "content": message }],
        });
        let response = self
            .inner
            .http
            .post(format!(
                "http://127.0.0.1:{}/v1/chat/completions",
                view.port
            ))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| AgentError::Gateway(format!("The gateway did not answer: {e}")))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(AgentError::Gateway(gateway_failure(status, &text)));
        }
        Ok(response.bytes_stream())
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

    // ---- shared steps -------------------------------------------------------------

    fn prepare_folder(&self, record: &AgentRecord, provider: &Provider) -> Result<(), AgentError> {
        let folder = |e: std::io::Error| AgentError::Folder(e.to_string());
        store::create_private_dir(&self.inner.settings.agents_dir()).map_err(folder)?;
        store::create_private_dir(&record.dir).map_err(folder)?;
        let config_dir = record.dir.join("config");
        let workspace = record.dir.join("workspace");
        store::create_private_dir(&config_dir).map_err(folder)?;
        store::create_private_dir(&workspace).map_err(folder)?;
        let config = definition::openclaw_config(record.port, provider);
        let mut text =
            serde_json::to_vec_pretty(&config).map_err(|e| AgentError::Folder(e.to_string()))?;
        text.push(b'\n');
        store::write_secret(&config_dir.join("openclaw.json"), &text)?;
        if self.inner.host.get().is_some_and(|h| h.rootful_native) {
            hand_to_gateway_user(&[
                &record.dir,
                &config_dir,
                &workspace,
                &config_dir.join("openclaw.json"),
            ])
            .map_err(folder)?;
        }
        Ok(())
    }

    async fn ensure_runtime(&self) -> Result<(), AgentError> {
        self.inner.machine.ensure_ready().await?;
        self.inner.host.get_or_init(|| self.probe_host()).await;
        Ok(())
    }

    async fn probe_host(&self) -> HostTraits {
        if self.inner.machine.mode() != Mode::Native || !cfg!(target_os = "linux") {
            return HostTraits::default();
        }
        let info = self
            .podman()
            .run(Call::new([
                "info",
                "--format",
                "{{.Host.Security.Rootless}} {{.Host.Security.SELinuxEnabled}}",
            ]))
            .await;
        match info {
            Ok(out) => {
                let mut words = out.stdout.split_whitespace();
                let rootless = words.next() == Some("true");
                HostTraits {
                    rootless_native: rootless,
                    rootful_native: !rootless,
                    relabel: words.next() == Some("true"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "podman info failed; assuming rootful without SELinux");
                HostTraits::default()
            }
        }
    }

    async fn ensure_image(&self, image: &str, log: &LogRing) -> Result<(), AgentError> {
        let exists = self
            .podman()
            .run(Call::new(["image", "exists", image]))
            .await;
        match exists {
            Ok(_) => return Ok(()),
            Err(PodmanError::Failed { code, .. }) if code.0 == Some(1) => {}
            Err(e) => return Err(e.into()),
        }
        log.push(format!("Pulling image {image}..."));
        let sink_log = log.clone();
        let call = Call::new(["pull", image])
            .timeout(Duration::from_secs(30 * 60))
            .on_line(Arc::new(move |_, line: &str| sink_log.push(line)));
        self.podman()
            .run(call)
            .await
            .map(|_| ())
            .map_err(|e| AgentError::Gateway(format!("Failed to pull OpenClaw image: {e}")))
    }

    async fn create_container(&self, record: &AgentRecord) -> Result<(), AgentError> {
        let host = self.inner.host.get().copied().unwrap_or_default();
        let args = definition::create_args(
            record,
            &record.image,
            &self.inner.home_label,
            &self.inner.time_zone,
            host,
        );
        match self.podman().run(Call::new(args)).await {
            Ok(_) => Ok(()),
            // A container of that name from an earlier, interrupted attempt: if it is
            // this agent's, use it; otherwise refuse rather than touch someone else's.
            Err(e) if e.says("already in use") => {
                if self.container_exists(record).await? {
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// True when this agent's container exists (matched by label, not name).
    async fn container_exists(&self, record: &AgentRecord) -> Result<bool, AgentError> {
        let out = self
            .podman()
            .run(Call::new([
                "ps",
                "--all",
                "--quiet",
                "--filter",
                &format!("label={}={}", definition::LABEL_AGENT, record.id),
            ]))
            .await?;
        Ok(!out.stdout.trim().is_empty())
    }

    async fn start_container_and_wait(
        &self,
        record: &AgentRecord,
        log: &LogRing,
    ) -> Result<(), AgentError> {
        self.refuse_when_shutting_down()?;
        // Noted before the start: a gateway that dies at once sends its `died`
        // event before `podman start` returns, and that must not be overwritten.
        self.update(record.id, |e| {
            e.container = Container::Running;
            e.started_at = Some(Utc::now());
        })?;
        self.podman()
            .run(Call::new(["start", &record.container_name()]))
            .await
            .map_err(|e| {
                AgentError::Gateway(format!("Failed to start OpenClaw containers: {e}"))
            })?;
        log.push("Waiting for gateway to be ready...");
        self.wait_healthy(record, log).await?;
        log.push(format!(
            "OpenClaw gateway is ready at ws://127.0.0.1:{}",
            record.port
        ));
        Ok(())
    }

    /// Polls the published `/healthz` once a second within the health budget. Podman's
    /// own health check is not trusted: without systemd it never runs.
    async fn wait_healthy(&self, record: &AgentRecord, log: &LogRing) -> Result<(), AgentError> {
        let budget = self.inner.settings.health_timeout;
        let started = tokio::time::Instant::now();
        let url = format!("http://127.0.0.1:{}/healthz", record.port);
        let mut last_note = 0;
        let mut last_look = tokio::time::Instant::now();
        loop {
            if let Ok(resp) = self
                .inner
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if resp.status().is_success() {
                    break;
                }
            }
            // Events say it first; a look every few seconds covers the moments the
            // event stream is not attached (app start, reconnects).
            if last_look.elapsed() >= Duration::from_secs(3) {
                last_look = tokio::time::Instant::now();
                if let Some(seen) = self.inspect_container(&record.container_name()).await {
                    self.update(record.id, |e| e.container = seen)?;
                }
            }
            if let Container::Exited(_) = self.container_state(record.id) {
                // The `died` of an earlier stop can arrive after this start began:
                // Podman, asked now, decides.
                let seen = self.inspect_container(&record.container_name()).await;
                if let Some(seen) = seen {
                    self.update(record.id, |e| e.container = seen)?;
                }
                if let Container::Exited(code) = self.container_state(record.id) {
                    return Err(AgentError::Gateway(match code {
                        Some(code) => format!("The gateway exited during start (exit code {code})"),
                        None => "The gateway's container did not start".into(),
                    }));
                }
            }
            self.refuse_when_shutting_down()?;
            let elapsed = started.elapsed().as_secs();
            if started.elapsed() >= budget {
                return Err(AgentError::Gateway(format!(
                    "Gateway did not become healthy within {} seconds",
                    budget.as_secs()
                )));
            }
            if elapsed >= last_note + 5 {
                last_note = elapsed;
                log.push(format!("Starting gateway... {elapsed}s"));
            }
            // Often up within a second (small images, warm caches): look often at
            // first, then once a second like the replaced runtime.
            let pause = if started.elapsed() < Duration::from_secs(2) {
                100
            } else {
                1000
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        self.spawn_readiness_check(record.id, record.port);
        Ok(())
    }

    /// `/readyz` follows `/healthz` by a few seconds; report it when it comes.
    fn spawn_readiness_check(&self, id: Uuid, port: u16) {
        let this = self.clone();
        tokio::spawn(async move {
            let url = format!("http://127.0.0.1:{port}/readyz");
            for _ in 0..60 {
                if this.container_state(id) != Container::Running {
                    return;
                }
                if let Ok(resp) = this
                    .inner
                    .http
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    if resp.status().is_success() {
                        if this.update(id, |e| e.ready = true).is_ok() {
                            this.emit(id, None);
                        }
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Records how a create or start ended, with the container's last lines on failure.
    async fn finish_start(
        &self,
        id: Uuid,
        result: Result<(), AgentError>,
        log: &LogRing,
    ) -> Result<AgentView, AgentError> {
        match result {
            Ok(()) => {
                self.update(id, |e| {
                    e.activity = None;
                    e.record.status = AgentStatus::Running;
                    e.record.error = None;
                    e.record.wanted = Wanted::Running;
                })?;
                self.persist()?;
                self.emit(id, Some(Change::Ready));
                self.get(id).ok_or(AgentError::NotFound)
            }
            Err(err) => {
                let message = err.to_string();
                log.push(format!("ERROR: {message}"));
                let name = self.record(id).map(|r| r.container_name());
                if let Ok(name) = name {
                    if let Ok(lines) = self.tail_container_logs(&name, FAILURE_LOG_LINES).await {
                        log.push_raw("--- Container logs ---");
                        for line in lines {
                            log.push_raw(line);
                        }
                        log.push_raw("--- End container logs ---");
                    }
                    // A container that failed its start must not linger half-alive,
                    // and a stopped one would be brought back by its restart policy
                    // when it had exited on its own: remove it (its last lines are
                    // in the log above); the next start makes it again.
                    let rm = Call::new(["rm", "--force", "--ignore", "--time", "0", &name]);
                    match self.podman().run(rm).await {
                        Ok(_) => {
                            let _gone = self.update(id, |e| e.container = Container::Missing);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not remove a failed agent's container")
                        }
                    }
                }
                self.update(id, |e| {
                    e.activity = None;
                    e.ready = false;
                    e.record.status = AgentStatus::Error;
                    e.record.error = Some(message.clone());
                    e.record.wanted = Wanted::Stopped;
                })?;
                self.persist()?;
                self.emit(id, Some(Change::StartFailed { message }));
                Err(err)
            }
        }
    }

    /// Stops a container and checks that it did: an answer of 0 from podman is not
    /// trusted alone. What is still up after the stop timeout is killed.
    async fn stop_container(&self, name: &str) -> Result<(), AgentError> {
        let secs = self.stop_secs();
        let call = Call::new(["stop", "--ignore", "--time", &secs.to_string(), name])
            .timeout(self.inner.settings.stop_timeout + self.podman().call_timeout());
        match self.podman().run(call).await {
            Ok(_) => {}
            Err(e) if is_engine_unreachable(&e) => return Ok(()),
            Err(PodmanError::TimedOut { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match self.inspect_container(name).await {
            Some(Container::Running) => {}
            _ => return Ok(()),
        }
        tracing::warn!(container = name, "still running after stop; killing it");
        match self.podman().run(Call::new(["kill", name])).await {
            Ok(_) => Ok(()),
            Err(e) if e.says("not running") || e.says("no such container") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The container's state as Podman reports it now (`None` when it cannot tell).
    async fn inspect_container(&self, name: &str) -> Option<Container> {
        let out = self
            .podman()
            .run(Call::new([
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]))
            .await;
        match out {
            Ok(out) => {
                let mut words = out.stdout.split_whitespace();
                let status = words.next().unwrap_or_default();
                let code = words.next().and_then(|c| c.parse().ok());
                Some(match status {
                    "running" => Container::Running,
                    "exited" | "stopped" => Container::Exited(code),
                    // Never started (e.g. `podman start` answered 0 but did nothing).
                    "created" | "configured" => Container::Exited(None),
                    _ => return None,
                })
            }
            Err(e) if e.says("no such") => Some(Container::Missing),
            Err(_) => None,
        }
    }

    async fn tail_container_logs(
        &self,
        name: &str,
        tail: usize,
    ) -> Result<Vec<String>, PodmanError> {
        let out = self
            .podman()
            .run(Call::new(["logs", "--tail", &tail.to_string(), name]))
            .await?;
        // `podman logs` writes the container's stderr to its own stderr; the tail
        // kept by the runner holds only the end, so prefer stdout when present.
        let mut lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        if lines.is_empty() {
            lines = out.stderr_tail.lines().map(str::to_string).collect();
        }
        Ok(lines)
    }

    /// After the last agent is deleted: stop the machine if Clawdock started it and
    /// no container that is not an agent runs.
    async fn stop_machine_if_idle(&self) {
        let machine = &self.inner.machine;
        if machine.mode() != Mode::Vm || !machine.started_by_us() || !self.lock().is_empty() {
            return;
        }
        match self.only_agents_run().await {
            Ok(true) => {
                if let Err(e) = machine.stop().await {
                    tracing::warn!(error = %e, "could not stop the machine after the last agent");
                }
            }
            Ok(false) => tracing::info!("other containers run; leaving the machine up"),
            Err(e) => tracing::warn!(error = %e, "could not list containers"),
        }
    }

    /// True when every running container carries the agent label.
    pub(crate) async fn only_agents_run(&self) -> Result<bool, PodmanError> {
        let rows: Vec<watch::PsRow> = self
            .podman()
            .run_json(Call::new(["ps", "--format", "json"]))
            .await?;
        Ok(rows
            .iter()
            .all(|r| r.label(definition::LABEL_AGENT).is_some()))
    }

    // ---- state helpers -----------------------------------------------------------

    fn podman(&self) -> &crate::podman::Podman {
        self.inner.machine.podman()
    }

    pub(crate) fn machine(&self) -> &Machine {
        &self.inner.machine
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn stop_secs(&self) -> u64 {
        self.inner.settings.stop_timeout.as_secs_f64().ceil() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Entry>> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update<T>(&self, id: Uuid, f: impl FnOnce(&mut Entry) -> T) -> Result<T, AgentError> {
        self.lock().get_mut(&id).map(f).ok_or(AgentError::NotFound)
    }

    fn record(&self, id: Uuid) -> Result<AgentRecord, AgentError> {
        self.update(id, |e| e.record.clone())
    }

    fn log_ring(&self, id: Uuid) -> Result<LogRing, AgentError> {
        self.update(id, |e| e.logs.clone())
    }

    fn op_lock(&self, id: Uuid) -> Result<Arc<tokio::sync::Mutex<()>>, AgentError> {
        self.lock()
            .get(&id)
            .filter(|e| !e.record.deleting)
            .map(|e| e.op.clone())
            .ok_or(AgentError::NotFound)
    }

    fn container_state(&self, id: Uuid) -> Container {
        self.lock()
            .get(&id)
            .map_or(Container::Missing, |e| e.container)
    }

    fn persist(&self) -> Result<(), StoreError> {
        let _ordered = self
            .inner
            .save
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let records: Vec<AgentRecord> = {
            let state = self.lock();
            let mut records: Vec<AgentRecord> = state.values().map(|e| e.record.clone()).collect();
            records.sort_by_key(|r| r.created_at);
            records
        };
        self.inner.store.save(&records)
    }

    fn emit(&self, id: Uuid, change: Option<Change>) {
        if let Some(agent) = self.get(id) {
            let _no_listener = self.inner.events.send(Event::Agent { agent, change });
        }
    }

    fn refuse_when_shutting_down(&self) -> Result<(), AgentError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            Err(AgentError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<Event> {
        &self.inner.events
    }

    /// Marks every agent that runs (or is starting) as stopping for the shutdown and
    /// remembers it ran, so the next launch starts it again. Returns their ids and
    /// container names.
    pub(crate) fn mark_stopping_for_shutdown(&self) -> Vec<(Uuid, String)> {
        let mut targets = Vec::new();
        {
            let mut state = self.lock();
            for e in state.values_mut() {
                let up = e.container == Container::Running
                    || e.record.status == AgentStatus::Running
                    || matches!(e.activity, Some(Activity::Creating | Activity::Starting));
                if up && !e.record.deleting {
                    e.record.running_at_quit = e.record.wanted == Wanted::Running;
                    e.record.wanted = Wanted::Stopped;
                    e.activity = Some(Activity::Stopping);
                    targets.push((e.record.id, e.record.container_name()));
                }
            }
        }
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "could not save agents.json at shutdown");
        }
        for (id, _) in &targets {
            self.emit(*id, None);
        }
        targets
    }

    pub(crate) fn mark_stopped_after_shutdown(&self, ids: &[Uuid]) {
        {
            let mut state = self.lock();
            for id in ids {
                if let Some(e) = state.get_mut(id) {
                    e.activity = None;
                    e.ready = false;
                    if e.record.status != AgentStatus::Error {
                        e.record.status = AgentStatus::Stopped;
                    }
                }
            }
        }
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "could not save agents.json at shutdown");
        }
        for id in ids {
            self.emit(*id, None);
        }
    }

    /// Ids of the agents that ran when the app last quit.
    pub(crate) fn take_running_at_quit(&self) -> Vec<Uuid> {
        let ids: Vec<Uuid> = {
            let mut state = self.lock();
            state
                .values_mut()
                .filter(|e| e.record.running_at_quit)
                .map(|e| {
                    e.record.running_at_quit = false;
                    e.record.id
                })
                .collect()
        };
        if !ids.is_empty() {
            if let Err(e) = self.persist() {
                tracing::error!(error = %e, "could not save agents.json");
            }
        }
        ids
    }

    pub(crate) fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }
}

/// A short sentence for a failed gateway answer: its JSON error message when it has
/// one, never an HTML page.
fn gateway_failure(status: reqwest::StatusCode, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["error"].as_str())
                .or(v["message"].as_str())
                .map(str::to_string)
        })
        .or_else(|| {
            let line = body.lines().next().unwrap_or_default().trim();
            (!line.is_empty() && !line.starts_with('<')).then(|| line.chars().take(200).collect())
        });
    match detail {
        Some(d) => format!("The gateway answered {status}: {d}"),
        None => format!("The gateway answered {status}."),
    }
}

/// True for the answers Podman gives when its engine (or machine) is not reachable.
fn is_engine_unreachable(e: &PodmanError) -> bool {
    e.says("cannot connect to podman") || e.says("unable to connect to podman")
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The lowest port from `first` that no agent holds and that is free on 127.0.0.1.
fn free_port(first: u16, held: &[u16]) -> Result<u16, AgentError> {
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
fn instance_label(settings: &Settings) -> Result<String, StoreError> {
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
fn hand_to_gateway_user(paths: &[&std::path::Path]) -> std::io::Result<()> {
    #[cfg(unix)]
    for p in paths {
        std::os::unix::fs::chown(
            p,
            Some(definition::GATEWAY_UID),
            Some(definition::GATEWAY_UID),
        )?;
    }
    #[cfg(not(unix))]
    let _ = paths;
    Ok(())
}

fn remove_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Agents {
    /// Streams chat as raw bytes; a helper so API callers need not name the type.
    pub async fn chat_stream(
        &self,
        id: Uuid,
        message: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>, AgentError>
    {
        let stream = self.chat(id, message).await?;
        Ok(stream.map(|r| r.map_err(std::io::Error::other)).boxed())
    }
}
