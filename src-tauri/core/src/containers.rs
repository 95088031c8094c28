//! The only place that speaks to Podman about containers and images, over its API
//! socket (the mass stop at quit, the panic hook's stop and pulls stay on the
//! command line). An agent's container is found by our labels (agent id and
//! data-folder label), never by its name, and every stop, kill, rm, logs and
//! inspect acts on the ID found: a name is something a user or another program
//! can also take.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::agent_proxy::{AgentProxy, CA_TARGET};
use crate::engine::client::{query_value, EngineClient, Request};
use crate::engine::{Call, LineStream, Podman, PodmanError};
use crate::progress::PullReport;
use crate::store::AgentRecord;

pub const LABEL_AGENT: &str = "io.clawdock.agent";
pub const LABEL_HOME: &str = "io.clawdock.home";
pub const LABEL_NAME: &str = "io.clawdock.name";

/// Port the gateway listens on inside its container.
pub const GATEWAY_PORT: u16 = 18789;
/// The uid of the `node` user the gateway image runs as.
pub const GATEWAY_UID: u32 = 1000;

/// What Podman last said about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Not looked at yet.
    Unknown,
    Missing,
    Running,
    /// Exited with a code, or never started (`None`).
    Exited(Option<i32>),
    /// Killed by the kernel for using more than its memory limit (Podman says
    /// `OOMKilled`; exit code 137).
    OutOfMemory,
}

/// How containers must be set up on this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostTraits {
    /// Rootless Podman on Linux: map the host user to the gateway's uid so the
    /// agent folder stays the user's.
    pub rootless_native: bool,
    /// Rootful Podman on Linux: the agent folder is handed to the gateway's uid.
    pub rootful_native: bool,
    /// Bind mounts need an SELinux label on Linux hosts that enforce it.
    pub relabel: bool,
    /// cgroup v1 with the cgroupfs manager, rootful: Podman's `OOMKilled` stays
    /// false there, so each agent's container gets a cgroup parent of its own
    /// whose memory peak outlives the container (see [`memory_peak_reached`]).
    pub cgroup_v1: bool,
}

/// What an agent's container may use and do. The gateway runs tools an LLM
/// chooses, so it is treated as reachable by prompt injection: no capabilities,
/// no privilege gain, bounded memory and processes, a read-only root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_mib: u64,
    pub pids: u32,
    /// CPUs the gateway may use (1.5: one and a half); `None`: as many as it finds.
    pub cpus: Option<f64>,
}

/// The `--cpus` value of a CPU limit: at most three decimals (Podman's own
/// precision is a thousandth of a CPU), no trailing zeros.
pub fn cpus_arg(cpus: f64) -> String {
    let s = format!("{cpus:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The gateway's token variable.
pub const TOKEN_VAR: &str = "OPENCLAW_GATEWAY_TOKEN";

/// Where the gateway keeps its config folder (it reads `openclaw.json` there and
/// rewrites it at start, so the folder must be writable).
pub const CONFIG_DIR: &str = "/home/node/.openclaw";
/// The agent's workspace, inside the config folder.
pub const WORKSPACE_DIR: &str = "/home/node/.openclaw/workspace";
/// The gateway's cache (it writes there too).
pub const CACHE_DIR: &str = "/home/node/.cache";

/// The gateway's health check: how often, how long one may take, how many may
/// fail in a row.
pub const HEALTH_INTERVAL_SECS: u32 = 30;
pub const HEALTH_TIMEOUT_SECS: u32 = 10;
pub const HEALTH_RETRIES: u32 = 3;
/// The gateway's liveness and readiness paths.
pub const HEALTH_PATH: &str = "/healthz";
pub const READY_PATH: &str = "/readyz";

/// The plain variables of the gateway's environment (the token is apart: it is a
/// secret and never an argument).
pub fn gateway_env(time_zone: &str) -> [(&'static str, String); 2] {
    [
        ("TZ", time_zone.to_string()),
        // The gateway colours its log even without a terminal; plain text reads
        // better in the agent's log view.
        ("NO_COLOR", "1".to_string()),
    ]
}

/// The gateway command given after the image (the image's `CMD`, upstream's own).
pub fn gateway_command() -> Vec<String> {
    let port = GATEWAY_PORT.to_string();
    [
        "node",
        "dist/index.js",
        "gateway",
        "--bind",
        "lan",
        "--port",
        &port,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Processes one gateway may run (measured: 29 at rest).
pub const PIDS_LIMIT: u32 = 1024;

/// True for an image name without a registry ("openclaw", "library/x:1"), which
/// Podman resolves by the user's registries.conf. A transport ("docker://",
/// "oci-archive:") counts as a registry.
fn is_short_name(image: &str) -> bool {
    match image.split_once('/') {
        Some((first, _)) => !(first.contains(['.', ':']) || first == "localhost"),
        None => true,
    }
}

/// How long a pull may take: images are large and links slow.
const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One line of a pull's answer: Docker's progress messages (`status`, `id`,
/// `progressDetail`) or libpod's (`stream`, `images`); `error` in both.
#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct PullMessage {
    status: String,
    id: String,
    progress_detail: ProgressDetail,
    stream: String,
    images: Vec<String>,
    error: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct ProgressDetail {
    current: u64,
    total: u64,
}

/// What a pull's answer said so far.
#[derive(Default)]
struct PullReading {
    /// The blobs named so far, and whether each is done. Docker's last word, the
    /// image pulled, is a "Download complete" of the image's ID, which is also its
    /// config blob's: so a "complete" of a blob not in copy is the last word.
    blobs: HashMap<String, bool>,
    pulled: bool,
}

impl PullReading {
    fn read(&mut self, message: PullMessage, on_report: &impl Fn(PullReport)) {
        use crate::progress::CopyState;
        if !message.stream.is_empty() {
            for line in message.stream.lines().filter(|l| !l.trim().is_empty()) {
                on_report(PullReport::Line(line.to_string()));
            }
        }
        if !message.images.is_empty() {
            self.pulled = true;
        }
        let id = message.id.as_str();
        let (state, skipped) = match message.status.as_str() {
            "" => return,
            "Pulling fs layer" => (CopyState::Named, false),
            "Downloading" => match message.progress_detail {
                ProgressDetail { current, total } if total > 0 => (
                    CopyState::Counting {
                        done: current.min(total),
                        total,
                    },
                    false,
                ),
                _ => (CopyState::Named, false),
            },
            "Already exists" => (CopyState::Finished, true),
            "Download complete" | "Pull complete" if self.blobs.get(id) != Some(&false) => {
                self.pulled = true;
                return;
            }
            "Download complete" | "Pull complete" => (CopyState::Finished, false),
            other => {
                on_report(PullReport::Line(other.to_string()));
                return;
            }
        };
        self.blobs
            .insert(id.to_string(), state == CopyState::Finished);
        on_report(PullReport::blob(id, state, skipped));
    }
}

/// A container's full ID, as Podman gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0[..self.0.len().min(12)])
    }
}

/// A container of this data folder, as listed.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: ContainerId,
    /// The agent it belongs to (`None`: labelled as ours but with no valid id).
    pub agent: Option<Uuid>,
    pub name: String,
    pub state: Container,
    /// The image it was made from, by ID.
    pub image_id: String,
}

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(
        "The container name `{name}` is taken by a container Clawdock did not make{}; \
         Clawdock leaves it alone. Remove or rename it, or choose another agent name.",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    NameTaken {
        name: String,
        holder: Option<String>,
    },
    /// The image is not on this machine: pull it, then create again. Checked by
    /// the create itself (the engine's create never pulls) rather than an image
    /// inspect first, which cost every create one more request.
    #[error(transparent)]
    ImageMissing(PodmanError),
    #[error(transparent)]
    Podman(#[from] PodmanError),
}

/// What a container of ours says of the agent that made it, enough to rebuild a
/// lost record.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub agent: Uuid,
    pub name: String,
    pub port: u16,
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub image: String,
    pub state: Container,
    /// The container's memory limit, in MiB (`None` without one).
    pub memory_mib: Option<u64>,
    /// The container's CPU limit, in CPUs (`None` without one).
    pub cpus: Option<f64>,
}

/// What the engine's stats say of one container, in bytes and nanoseconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawStats {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub name: String,
    pub mem_usage: u64,
    pub mem_limit: u64,
    /// CPU time used since the container started.
    #[serde(rename = "CPUNano")]
    pub cpu_nano: u64,
    /// When the sample was taken (monotonic nanoseconds).
    pub system_nano: u64,
    #[serde(rename = "PIDs")]
    pub pids: u64,
}

/// A row of the engine's container list. `Labels` is `null` when there are none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PsRow {
    id: String,
    names: Vec<String>,
    state: String,
    exit_code: Option<i32>,
    labels: Option<HashMap<String, String>>,
    #[serde(rename = "ImageID")]
    image_id: String,
}

impl PsRow {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }

    fn container(&self) -> Container {
        match self.state.as_str() {
            "running" => Container::Running,
            // Made but never started.
            "created" | "configured" => Container::Exited(None),
            _ => Container::Exited(self.exit_code),
        }
    }
}

/// A line of the engine's event stream (Docker's shape).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct EventLine {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: Actor,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Actor {
    #[serde(rename = "ID")]
    id: String,
    /// The container's labels, with `containerExitCode` (a string) beside them.
    attributes: Option<HashMap<String, String>>,
}

/// What an event line says of one of our agents' containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Happened {
    pub agent: Uuid,
    pub container_id: ContainerId,
    pub container: Container,
    pub at: Option<DateTime<Utc>>,
}

/// The containers of one data folder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Containers {
    podman: Podman,
    engine: EngineClient,
    home: String,
    /// Told whenever a call finds the engine unreachable: the machine may have
    /// gone away (sleep, a crash, a stop from a terminal) without a word.
    engine_lost: Arc<Notify>,
}

impl Containers {
    /// `home` is the data folder's label value, so two instances (or test runs) on
    /// one Podman never touch each other's containers.
    pub fn new(podman: Podman, engine: EngineClient, home: String) -> Self {
        Self {
            podman,
            engine,
            home,
            engine_lost: Arc::new(Notify::new()),
        }
    }

    pub fn home_label(&self) -> &str {
        &self.home
    }

    /// Resolves after a call found the engine unreachable (or someone said so with
    /// [`Containers::suspect_engine`]) since the last time it resolved.
    pub async fn engine_suspect(&self) {
        self.engine_lost.notified().await;
    }

    /// Says the engine may be gone (the event stream ended): whoever follows
    /// [`Containers::engine_suspect`] checks the machine.
    pub fn suspect_engine(&self) {
        self.engine_lost.notify_one();
    }

    async fn run(&self, call: Call) -> Result<crate::engine::Output, PodmanError> {
        let result = self.podman.run(call).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    /// One request to the engine; a connection refused or dropped says the
    /// engine may be gone.
    async fn call(&self, request: Request) -> Result<crate::engine::client::Answer, PodmanError> {
        let result = self.engine.call(request).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        request: Request,
    ) -> Result<T, PodmanError> {
        let what = request.describe();
        self.call(request).await?.json(&what)
    }

    /// The containers a label selects (`all`: stopped ones too).
    async fn rows(&self, label: Option<String>, all: bool) -> Result<Vec<PsRow>, PodmanError> {
        let mut path = format!("/containers/json?all={all}");
        if let Some(label) = label {
            let filters = serde_json::json!({ "label": [label] }).to_string();
            path.push_str(&format!("&filters={}", query_value(&filters)));
        }
        self.call_json(Request::get(path)).await
    }

    /// Every container of this data folder, running or not.
    pub async fn list(&self) -> Result<Vec<Found>, PodmanError> {
        self.ps(true).await
    }

    /// Containers of this data folder that run now.
    pub async fn running(&self) -> Result<Vec<Found>, PodmanError> {
        self.ps(false).await
    }

    async fn ps(&self, all: bool) -> Result<Vec<Found>, PodmanError> {
        let rows = self
            .rows(Some(format!("{LABEL_HOME}={}", self.home)), all)
            .await?;
        Ok(rows
            .into_iter()
            // Checked again here: the filter is only a first cut.
            .filter(|r| r.label(LABEL_HOME) == Some(self.home.as_str()))
            .map(|r| Found {
                id: ContainerId(r.id.clone()),
                agent: r.label(LABEL_AGENT).and_then(|v| v.parse().ok()),
                name: r.names.first().cloned().unwrap_or_default(),
                state: r.container(),
                image_id: r.image_id.clone(),
            })
            .collect())
    }

    /// The agent's container, found by its labels.
    pub async fn find(&self, agent: Uuid) -> Result<Option<Found>, PodmanError> {
        Ok(self.all_of(agent).await?.into_iter().next())
    }

    /// Every container of the agent, the one with its name first: more than one
    /// only during an update, or after one that was cut short.
    pub async fn all_of(&self, agent: Uuid) -> Result<Vec<Found>, PodmanError> {
        let rows = self
            .rows(Some(format!("{LABEL_AGENT}={agent}")), true)
            .await?;
        let agent_text = agent.to_string();
        let mut ours: Vec<PsRow> = rows
            .into_iter()
            .filter(|r| {
                r.label(LABEL_HOME) == Some(self.home.as_str())
                    && r.label(LABEL_AGENT) == Some(agent_text.as_str())
            })
            .collect();
        // During an update the working container waits aside (`…-previous`)
        // beside the new one: the agent's container is the one with its name.
        ours.sort_by_key(|r| r.names.iter().any(|n| n.ends_with("-previous")));
        Ok(ours
            .into_iter()
            .map(|r| Found {
                id: ContainerId(r.id.clone()),
                agent: Some(agent),
                name: r.names.first().cloned().unwrap_or_default(),
                state: r.container(),
                image_id: r.image_id.clone(),
            })
            .collect())
    }

    /// True when a container that is not this agent's holds `name`. Reads only
    /// whether the name is taken, nothing of the container.
    pub async fn name_taken_by_another(
        &self,
        name: &str,
        agent: Uuid,
    ) -> Result<bool, PodmanError> {
        let path = format!("/containers/{}/exists", path_value(name));
        match self.call(Request::get(path)).await {
            Ok(_) => Ok(self.find(agent).await?.is_none_or(|f| f.name != name)),
            Err(PodmanError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes the agent's container and returns its ID. A container of that name
    /// left by an earlier, interrupted attempt of this agent is used; one that is
    /// not this agent's is refused and left alone.
    pub async fn create(
        &self,
        agent: &AgentRecord,
        host: HostTraits,
        time_zone: &str,
        limits: Limits,
        proxy: &AgentProxy,
    ) -> Result<ContainerId, CreateError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let spec = create_spec(agent, &self.home, time_zone, host, limits, proxy);
        match self
            .call_json::<Created>(Request::post("/containers/create").json(&spec))
            .await
        {
            Ok(created) => Ok(ContainerId(created.id)),
            Err(e) if e.says("already in use") => match self.find(agent.id).await? {
                Some(ours) => Ok(ours.id),
                None => Err(CreateError::NameTaken {
                    name: agent.container_name(),
                    holder: holder_of(e.stderr()),
                }),
            },
            Err(e) if e.says("image not known") => Err(CreateError::ImageMissing(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a container another name (an update keeps the working one aside,
    /// by ID, until the new one is healthy).
    pub async fn rename(&self, id: &ContainerId, name: &str) -> Result<(), PodmanError> {
        let path = format!("/containers/{}/rename?name={}", id.0, query_value(name));
        self.call(Request::post(path)).await?;
        Ok(())
    }

    /// Starts a container, after any stop of it in progress has ended.
    pub async fn start(&self, id: &ContainerId) -> Result<(), PodmanError> {
        self.settle_stop(id).await;
        self.call(Request::post(format!("/containers/{}/start", id.0)))
            .await?;
        Ok(())
    }

    /// Waits while the container is `stopping` (a stop another client began, or
    /// one a Clawdock that crashed left to the engine): a start in the middle of
    /// it is answered as done, and the stop then ends the gateway just started,
    /// which reads as a crash. Bounded: a stop that never ends is the start's
    /// error to meet.
    async fn settle_stop(&self, id: &ContainerId) {
        let began = tokio::time::Instant::now();
        while began.elapsed() < self.engine.call_timeout() {
            match self.state_of(id).await {
                Ok(state) if state.status == "stopping" => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return,
            }
        }
        tracing::warn!(container = %id, "still stopping; starting it anyway");
    }

    /// Stops a container and checks that it did: an answer of 0 from podman is not
    /// trusted alone. What is still up after the timeout is killed.
    pub async fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let request = Request::post(format!("/containers/{}/stop?timeout={secs}", id.0))
            .timeout(timeout + self.engine.call_timeout());
        match self.call(request).await {
            Ok(_) | Err(PodmanError::TimedOut { .. } | PodmanError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        if self.inspect(id).await != Some(Container::Running) {
            return Ok(());
        }
        tracing::warn!(container = %id, "still running after stop; killing it");
        self.kill(std::slice::from_ref(id), self.engine.call_timeout())
            .await
    }

    /// Stops every container of this data folder in one podman process, which
    /// selects them by label itself: no listing first. `workers` containers are
    /// stopped at once (podman's default pool is a few per core, so ten stubborn
    /// containers would wait out the timeout in turns). Each gateway gets SIGTERM
    /// and `timeout` to exit before SIGKILL (no restart policy brings them back:
    /// Clawdock owns restarts). `limit` bounds the whole call (podman is killed past
    /// it): give it room over `timeout`.
    pub async fn stop_all(
        &self,
        workers: usize,
        timeout: Duration,
        limit: Duration,
    ) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let args = [
            format!("--max-workers={}", workers.max(1)),
            "stop".into(),
            "--filter".into(),
            format!("label={LABEL_HOME}={}", self.home),
            "--time".into(),
            secs.to_string(),
        ];
        match self.run(Call::new(args).timeout(limit)).await {
            Ok(_) | Err(PodmanError::TimedOut { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Kills containers at once, all asked together.
    pub async fn kill(&self, ids: &[ContainerId], limit: Duration) -> Result<(), PodmanError> {
        let kills = ids.iter().map(|id| async move {
            let request = Request::post(format!("/containers/{}/kill", id.0)).timeout(limit);
            match self.call(request).await {
                Ok(_) => Ok(()),
                // Not running (any more), or gone: nothing to kill.
                Err(e) if e.says("state improper") || e.says("no such container") => Ok(()),
                Err(e) => Err(e),
            }
        });
        futures::future::join_all(kills)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    /// Removes a container with its anonymous volumes, stopping it first within
    /// `timeout`, and checks that it is gone.
    pub async fn remove(&self, id: &ContainerId, timeout: Duration) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let request = Request::delete(format!(
            "/containers/{}?force=true&v=true&timeout={secs}",
            id.0
        ))
        .timeout(timeout + self.engine.call_timeout());
        match self.call(request).await {
            Ok(_) | Err(PodmanError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        match self.inspect(id).await {
            Some(Container::Missing) | None => Ok(()),
            Some(_) => Err(PodmanError::BadOutput {
                args: format!("rm {id}"),
                reason: "podman said the container was removed, but it is still there".into(),
            }),
        }
    }

    /// The `State` of the engine's inspect of a container.
    async fn state_of(&self, id: &ContainerId) -> Result<InspectedState, PodmanError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Inspected {
            state: InspectedState,
        }
        let request = Request::get(format!("/containers/{}/json", id.0));
        Ok(self.call_json::<Inspected>(request).await?.state)
    }

    /// The container's state as Podman reports it now (`None` when it cannot tell).
    pub async fn inspect(&self, id: &ContainerId) -> Option<Container> {
        let answer = self.state_of(id).await;
        match answer {
            Ok(state) => {
                let (status, code, oom) = (state.status, state.exit_code, state.oom_killed);
                Some(match status.as_str() {
                    "running" => Container::Running,
                    "exited" | "stopped" if oom => Container::OutOfMemory,
                    "exited" | "stopped" => Container::Exited(code),
                    // Never started (e.g. a start answered but did nothing).
                    "created" | "configured" => Container::Exited(None),
                    _ => return None,
                })
            }
            Err(e) if e.says("no such") => Some(Container::Missing),
            Err(_) => None,
        }
    }

    /// What a container of ours tells about its agent, to rebuild a lost record.
    pub async fn recover(&self, id: &ContainerId) -> Result<Recovered, PodmanError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Inspected {
            created: Option<DateTime<Utc>>,
            image_name: String,
            config: InspectedConfig,
            host_config: InspectedHost,
            state: InspectedState,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct InspectedConfig {
            env: Vec<String>,
            labels: Option<HashMap<String, String>>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct InspectedHost {
            port_bindings: Option<HashMap<String, Option<Vec<Binding>>>>,
            /// Bytes; 0 without a limit.
            memory: u64,
            /// Billionths of a CPU; 0 without a limit.
            nano_cpus: u64,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Binding {
            host_port: String,
        }
        let args = format!("inspect {id}");
        let bad = |reason: &str| PodmanError::BadOutput {
            args: args.clone(),
            reason: reason.to_string(),
        };
        let c: Inspected = self
            .call_json(Request::get(format!("/containers/{}/json", id.0)))
            .await?;
        let labels = c.config.labels.unwrap_or_default();
        if labels.get(LABEL_HOME) != Some(&self.home) {
            return Err(bad("not a container of this data folder"));
        }
        let agent = labels
            .get(LABEL_AGENT)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("no agent label"))?;
        let name = labels
            .get(LABEL_NAME)
            .cloned()
            .ok_or_else(|| bad("no name label"))?;
        let port = c
            .host_config
            .port_bindings
            .unwrap_or_default()
            .get(&format!("{GATEWAY_PORT}/tcp"))
            .and_then(|b| b.as_ref()?.first()?.host_port.parse().ok())
            .ok_or_else(|| bad("no published gateway port"))?;
        let token = c
            .config
            .env
            .iter()
            .find_map(|e| e.strip_prefix(TOKEN_VAR)?.strip_prefix('='))
            .map(str::to_string)
            .ok_or_else(|| bad("no gateway token"))?;
        let memory_mib = (c.host_config.memory > 0).then_some(c.host_config.memory / (1024 * 1024));
        #[allow(clippy::cast_precision_loss)] // a CPU count, far below 2^52
        let cpus = (c.host_config.nano_cpus > 0).then(|| c.host_config.nano_cpus as f64 / 1e9);
        let state = match c.state.status.as_str() {
            "running" => Container::Running,
            "created" | "configured" => Container::Exited(None),
            _ => Container::Exited(c.state.exit_code),
        };
        Ok(Recovered {
            agent,
            name,
            port,
            token,
            created_at: c.created.unwrap_or_else(Utc::now),
            image: c.image_name,
            state,
            memory_mib,
            cpus,
        })
    }

    /// The last lines of the container's own output, stdout and stderr as they
    /// were interleaved.
    pub async fn tail_logs(
        &self,
        id: &ContainerId,
        tail: usize,
    ) -> Result<Vec<String>, PodmanError> {
        let answer = self
            .call(Request::get(format!(
                "/containers/{}/logs?stdout=true&stderr=true&tail={tail}",
                id.0
            )))
            .await?;
        let mut lines = Vec::new();
        let mut out = crate::engine::lines::LineSplitter::new(false);
        let mut err = crate::engine::lines::LineSplitter::new(false);
        crate::engine::client::Demux::default().push(&answer.body, |which, chunk| {
            let splitter = if which == crate::engine::lines::Stream::Stderr {
                &mut err
            } else {
                &mut out
            };
            splitter.push(chunk, |line| lines.push(line));
        });
        lines.extend(out.finish());
        lines.extend(err.finish());
        let extra = lines.len().saturating_sub(tail);
        lines.drain(..extra);
        Ok(lines)
    }

    /// The container's output as it comes (`follow`), after its last `tail` lines.
    pub async fn stream_logs(
        &self,
        id: &ContainerId,
        tail: usize,
        follow: bool,
    ) -> Result<LineStream, PodmanError> {
        let path = format!(
            "/containers/{}/logs?stdout=true&stderr=true&tail={tail}&follow={follow}",
            id.0
        );
        self.engine.stream(Request::get(path), true).await
    }

    /// The engine's events about this data folder's containers, as they happen.
    pub async fn events(&self) -> Result<LineStream, PodmanError> {
        let filters = serde_json::json!({
            "type": ["container"],
            "label": [format!("{LABEL_HOME}={}", self.home)],
        })
        .to_string();
        // No `since` to replay the moments before: a replayed death of a
        // container that was started again since (a machine stopped, then started
        // at once; the container keeps its ID) read as a crash of the new run.
        let path = format!("/events?stream=true&filters={}", query_value(&filters));
        let result = self.engine.stream(Request::get(path), false).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    /// Reads one line of [`Containers::events`]: what happened to which of our
    /// agents, if it is about one. `clock_shared`: the engine's clock is this
    /// machine's (native mode), so the event's time can be compared with ours.
    pub fn parse_event(&self, line: &str, clock_shared: bool) -> Option<Happened> {
        let event: EventLine = serde_json::from_str(line).ok()?;
        if event.kind != "container" {
            return None;
        }
        let attributes = event.actor.attributes.as_ref()?;
        if attributes.get(LABEL_HOME) != Some(&self.home) {
            return None;
        }
        let agent = attributes.get(LABEL_AGENT)?.parse().ok()?;
        let container = match event.action.as_str() {
            "start" | "restart" => Container::Running,
            "died" => Container::Exited(Some(
                attributes
                    .get("containerExitCode")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
            )),
            "remove" => Container::Missing,
            _ => return None,
        };
        let at = (clock_shared && event.time_nano > 0)
            .then(|| DateTime::from_timestamp_nanos(event.time_nano));
        Some(Happened {
            agent,
            container_id: ContainerId(event.actor.id),
            container,
            at,
        })
    }

    /// True when every running container carries the agent label (ours or another
    /// Clawdock's): only then may Clawdock stop the machine.
    pub async fn only_agents_run(&self) -> Result<bool, PodmanError> {
        let rows = self.rows(None, false).await?;
        Ok(rows.iter().all(|r| r.label(LABEL_AGENT).is_some()))
    }

    /// One sample of the named containers' resource use (names or IDs), raw
    /// numbers.
    pub async fn stats(&self, containers: &[String]) -> Result<Vec<RawStats>, PodmanError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Sampled {
            stats: Option<Vec<RawStats>>,
        }
        if containers.is_empty() {
            return Ok(Vec::new());
        }
        let mut path = "/containers/stats?stream=false".to_string();
        for c in containers {
            path.push_str(&format!("&containers={}", query_value(c)));
        }
        let sampled: Sampled = self.call_json(Request::get(path)).await?;
        Ok(sampled.stats.unwrap_or_default())
    }

    /// The ID of the image a reference names now; `None` when there is none.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, PodmanError> {
        Ok(self.image(image).await?.map(|i| i.id))
    }

    async fn image(&self, image: &str) -> Result<Option<ImageInspected>, PodmanError> {
        let path = format!("/images/{}/json", path_value(image));
        match self.call_json(Request::get(path)).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.says("image not known") || e.says("no such image") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The registry digest (`name@sha256:...`) of `image` (a name or an ID), the one
    /// whose name matches `named` if several; `None` when the image has none (built
    /// or imported here) or is not on this machine.
    pub async fn repo_digest(
        &self,
        image: &str,
        named: &str,
    ) -> Result<Option<String>, PodmanError> {
        let digests = self
            .image(image)
            .await?
            .and_then(|i| i.repo_digests)
            .unwrap_or_default();
        Ok(pick_digest(&digests, named))
    }

    /// Pulls `image` through the engine's API, telling `on_report` how it goes.
    /// A name with its registry goes to Docker's pull, which counts the bytes of
    /// every blob (libpod's counts none in Podman 4); a short name to libpod's,
    /// which resolves it by the user's registries.conf where Docker's would take it
    /// for Docker Hub's, and says how it goes in lines. `login`: an
    /// `X-Registry-Auth` value for the image's registry. Dropping the future cuts
    /// the pull in the engine (nothing is left half-made).
    pub async fn pull(
        &self,
        image: &str,
        login: Option<String>,
        on_report: impl Fn(PullReport) + Send,
    ) -> Result<(), PodmanError> {
        let request = if is_short_name(image) {
            Request::post(format!("/images/pull?reference={}", query_value(image)))
        } else {
            Request::post(format!("/images/create?fromImage={}", query_value(image))).docker()
        }
        // Podman 5 holds back even the answer's head until the first blob or the
        // registry's refusal: the whole pull's bound is the head's too.
        .timeout(PULL_TIMEOUT)
        .registry_auth(login);
        let what = request.describe();
        let pulling = async {
            let mut answer = self.engine.answer_lines(request).await?;
            let mut reading = PullReading::default();
            while let Some((_, line)) = answer.next_line().await {
                let message: PullMessage =
                    serde_json::from_str(&line).map_err(|e| PodmanError::BadOutput {
                        args: what.clone(),
                        reason: format!("{e}: {line}"),
                    })?;
                if !message.error.is_empty() {
                    // The answer began 200 before the pull failed: Docker's API puts
                    // the error in the stream. It is the engine's failure all the same.
                    let err = PodmanError::Api {
                        request: what.clone(),
                        status: 500,
                        message: message.error,
                    };
                    tracing::warn!(request = %what, error = %err, "pull failed");
                    return Err(err);
                }
                reading.read(message, &on_report);
            }
            if reading.pulled {
                Ok(())
            } else {
                Err(PodmanError::Unreachable {
                    request: what.clone(),
                    reason: "the answer ended before the pull did".into(),
                })
            }
        };
        tokio::time::timeout(PULL_TIMEOUT, pulling)
            .await
            .unwrap_or_else(|_| {
                Err(PodmanError::TimedOut {
                    args: what.clone(),
                    after: PULL_TIMEOUT,
                    stderr_tail: String::new(),
                })
            })
    }

    /// How containers must be set up on this host (Linux, native mode only).
    pub async fn host_traits(&self) -> HostTraits {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Info {
            host: Host,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Host {
            security: Security,
            cgroup_version: String,
            cgroup_manager: String,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Security {
            rootless: bool,
            selinux_enabled: bool,
        }
        match self.call_json::<Info>(Request::get("/info")).await {
            Ok(info) => {
                let rootless = info.host.security.rootless;
                let v1 = info.host.cgroup_version == "v1" && info.host.cgroup_manager == "cgroupfs";
                HostTraits {
                    rootless_native: rootless,
                    rootful_native: !rootless,
                    relabel: info.host.security.selinux_enabled,
                    cgroup_v1: v1 && !rootless && std::path::Path::new(CGROUP_V1_MEMORY).is_dir(),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the engine's info failed; assuming rootful without SELinux");
                HostTraits::default()
            }
        }
    }

    /// Stops every running container of this data folder from a thread with no
    /// async runtime, each gateway given `grace` before podman kills it, the whole
    /// within `limit`: the panic hook's last resort. Returns how many it found.
    pub fn stop_all_blocking(&self, grace: Duration, limit: Duration) -> usize {
        let filter = format!("label={LABEL_HOME}={}", self.home);
        let listed = self.podman.run_blocking(
            &["ps".into(), "--quiet".into(), "--filter".into(), filter],
            limit,
        );
        let ids: Vec<String> = listed
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let secs = grace.as_secs().max(1).to_string();
            let mut args = vec!["stop".to_string(), "--time".to_string(), secs];
            args.extend(ids.iter().cloned());
            if self.podman.run_blocking(&args, limit).is_none() {
                // The panic hook's: `eprintln!` would panic in it on a closed stderr.
                let _unwritable = writeln!(
                    std::io::stderr(),
                    "clawdock: could not stop the agents' containers: {ids:?}"
                );
            }
        }
        ids.len()
    }
}

/// Of an image's registry digests, the one of `named`'s repository
/// (`ghcr.io/x/y:tag` → `ghcr.io/x/y@sha256:...`), else the first.
pub fn pick_digest(digests: &[String], named: &str) -> Option<String> {
    let without_digest = named.split('@').next().unwrap_or(named);
    // A `:` after the last `/` starts the tag; one before it is a registry's port.
    let repo = match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    };
    digests
        .iter()
        .find(|d| d.split('@').next() == Some(repo))
        .or_else(|| digests.first())
        .cloned()
}

/// The holder's ID from podman's "already in use by <id>" answer.
fn holder_of(stderr: &str) -> Option<String> {
    let rest = stderr.split("already in use by ").nth(1)?;
    let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (id.len() >= 12).then(|| id[..12].to_string())
}

/// What the engine's inspect of a container says of its state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct InspectedState {
    status: String,
    exit_code: Option<i32>,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
}

/// What the engine's image inspect says that Clawdock reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ImageInspected {
    id: String,
    repo_digests: Option<Vec<String>>,
}

/// A name, ID or image reference as a path segment of a request: `/` and `:`
/// stay (an image reference has them and the engine's routes take them), the
/// rest is percent-encoded so no `?` or `#` ends the path.
fn path_value(value: &str) -> String {
    value
        .split('/')
        .map(|part| {
            part.split(':')
                .map(query_value)
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// What `--read-only` gives a container on the command line: private writable
/// tmpfs at these folders (the API gives none unless asked).
const READ_ONLY_TMPFS: [&str; 3] = ["/tmp", "/var/tmp", "/run"];

/// The agent's container as the engine's create takes it (libpod's spec): data,
/// so user text never passes through a shell or a YAML file. The sandbox is the
/// one `podman create` would build from Clawdock's flags: the same inspect
/// (measured on Podman 4.3.1, field by field).
pub fn create_spec(
    agent: &AgentRecord,
    home_label: &str,
    time_zone: &str,
    host: HostTraits,
    limits: Limits,
    proxy: &AgentProxy,
) -> serde_json::Value {
    use serde_json::json;
    let dir = &agent.dir;
    let bind = |sub: &str, target: &str| {
        let mut options = vec!["rbind"];
        if host.relabel {
            options.push("Z");
        }
        json!({
            "type": "bind",
            "source": dir.join(sub).display().to_string(),
            "destination": target,
            "options": options,
        })
    };
    let mut mounts = vec![
        bind("config", CONFIG_DIR),
        bind("workspace", WORKSPACE_DIR),
        bind("cache", CACHE_DIR),
    ];
    if let Some(bundle) = &proxy.ca_bundle {
        // Never relabelled: the file is the user's, shared by every agent.
        mounts.push(json!({
            "type": "bind",
            "source": bundle.display().to_string(),
            "destination": CA_TARGET,
            "options": ["rbind", "ro"],
        }));
    }
    for target in READ_ONLY_TMPFS {
        mounts.push(json!({
            "type": "tmpfs",
            "source": "tmpfs",
            "destination": target,
            "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
        }));
    }
    let mut env = serde_json::Map::new();
    let plain = gateway_env(time_zone).into_iter().chain(proxy.plain_env());
    for (key, value) in plain.chain(proxy.secret_env()) {
        env.insert(key.to_string(), json!(value));
    }
    // Secrets travel in the request's body over the socket: no argument line.
    env.insert(TOKEN_VAR.into(), json!(agent.token));
    let memory = limits.memory_mib * 1024 * 1024;
    let mut resources = json!({
        // No swap beyond the limit.
        "memory": { "limit": memory, "swap": memory },
        "pids": { "limit": limits.pids },
    });
    if let Some(cpus) = limits.cpus {
        resources["cpu"] = json!({ "quota": cpu_quota(cpus), "period": CPU_PERIOD });
    }
    let health_cmd = format!(
        "wget -Y off -qO- http://127.0.0.1:{GATEWAY_PORT}{HEALTH_PATH} >/dev/null 2>&1 || curl -sf --noproxy '*' http://127.0.0.1:{GATEWAY_PORT}{HEALTH_PATH}"
    );
    let seconds = |s: u32| u64::from(s) * 1_000_000_000;
    let mut spec = json!({
        "name": agent.container_name(),
        "hostname": hostname(agent),
        "labels": {
            LABEL_AGENT: agent.id.to_string(),
            LABEL_HOME: home_label,
            LABEL_NAME: agent.name,
        },
        "image": agent.image,
        "command": gateway_command(),
        "env": env,
        // The engine's own proxy variables stay out, whatever the proxy setting
        // says (the agent's come through `env`).
        "httpproxy": false,
        "portmappings": [{
            "host_ip": "127.0.0.1",
            "host_port": agent.port,
            "container_port": GATEWAY_PORT,
            "protocol": "tcp",
        }],
        "mounts": mounts,
        "healthconfig": {
            "Test": ["CMD-SHELL", health_cmd],
            "Interval": seconds(HEALTH_INTERVAL_SECS),
            "Timeout": seconds(HEALTH_TIMEOUT_SECS),
            "Retries": HEALTH_RETRIES,
        },
        // No restart policy: Clawdock starts a gateway that died again itself,
        // after a back-off, and says so (agents::state, the crash loop).
        //
        // The gateway's user whatever the image says: a root image would meet the
        // uid-1000 folders without capabilities and die with EACCES in a loop.
        "user": format!("{GATEWAY_UID}:{GATEWAY_UID}"),
        // The sandbox. The real gateway runs with all of it (measured: healthy,
        // 0.7 GB, 29 processes). It writes only its config folder, ~/.cache (both
        // mounted from the agent's folder: podman 4 loses a tmpfs's mode when a
        // container restarts) and the tmpfs folders.
        "cap_drop": ["all"],
        "no_new_privileges": true,
        "read_only_filesystem": true,
        "resource_limits": resources,
        "sdnotifyMode": "container",
    });
    if host.cgroup_v1 {
        spec["cgroup_parent"] = json!(cgroup_parent(agent.id));
    }
    if host.rootless_native {
        spec["userns"] = json!({
            "nsmode": "keep-id",
            "value": format!("uid={GATEWAY_UID},gid={GATEWAY_UID}"),
        });
    }
    spec
}

/// The CFS period a CPU limit is counted in (the command line's `--cpus` uses
/// the same).
const CPU_PERIOD: u64 = 100_000;

/// The CFS quota of a CPU limit, at Podman's precision (a thousandth of a CPU).
fn cpu_quota(cpus: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a few CPUs
    let thousandths = (cpus * 1000.0).round().max(1.0) as u64;
    thousandths * CPU_PERIOD / 1000
}

/// Where cgroup v1's memory controller is mounted.
const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// The cgroup parent of an agent's container on cgroup v1 hosts: it stays when
/// the container's own cgroup goes with it, so its memory peak can be read after
/// a death.
pub fn cgroup_parent(agent: Uuid) -> String {
    format!("/clawdock/{}", agent.simple())
}

/// On cgroup v1 hosts, whether the agent's container used its whole memory limit
/// since its last launch (the peak of its cgroup parent, within 1 MiB of the
/// limit): a SIGKILL then was the memory limit's. `None` where it cannot tell.
pub fn memory_peak_reached(agent: Uuid, limit_mib: u64) -> Option<bool> {
    let path = format!(
        "{CGROUP_V1_MEMORY}{}/memory.max_usage_in_bytes",
        cgroup_parent(agent)
    );
    let peak: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Some(peak + 1024 * 1024 >= limit_mib * 1024 * 1024)
}

/// Forgets the agent's memory peak before a launch (cgroup v1 hosts), so a peak
/// read after a death is this run's.
pub fn reset_memory_peak(agent: Uuid) {
    let path = format!(
        "{CGROUP_V1_MEMORY}{}/memory.max_usage_in_bytes",
        cgroup_parent(agent)
    );
    if let Err(e) = std::fs::write(&path, b"0") {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::debug!(path, error = %e, "could not reset the memory peak");
        }
    }
}

/// Removes the agent's cgroup parent from every v1 hierarchy (after its delete).
pub fn remove_cgroup_parent(agent: Uuid) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let dir = h.path().join(cgroup_parent(agent).trim_start_matches('/'));
        if dir.is_dir() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::debug!(dir = %dir.display(), error = %e, "could not remove a cgroup parent");
            }
        }
    }
}

/// A fixed hostname per agent: the gateway's owner lease records it, and a new
/// container with another hostname would wait up to 300 s after a kill.
pub fn hostname(agent: &AgentRecord) -> String {
    format!("agent-{}", &agent.id.simple().to_string()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentStatus, Wanted};

    /// What Podman 4.3.1's Docker endpoint said of a pull of two new layers on a
    /// base layer it had (the `progress` bars left out).
    const DOCKER_PULL: &[&str] = &[
        r#"{"status":"Already exists","progressDetail":{},"id":"2c240430122d"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"9c8b129f97cc"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":12032768,"total":24003280},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":12001718,"total":12001718},"id":"9c8b129f97cc"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"9c8b129f97cc"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":24003280,"total":24003280},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"7a420f775501"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"7a420f775501"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"7a420f775501"}"#,
    ];

    fn read_pull(lines: &[&str]) -> (Vec<PullReport>, bool) {
        let reports = std::sync::Mutex::new(Vec::new());
        let mut reading = PullReading::default();
        for line in lines {
            let message: PullMessage = serde_json::from_str(line).expect("json");
            reading.read(message, &|r| reports.lock().expect("reports").push(r));
        }
        (reports.into_inner().expect("reports"), reading.pulled)
    }

    #[test]
    fn a_docker_pull_answer_reads_as_blobs_and_ends_with_the_image() {
        use crate::progress::CopyState;
        let (reports, pulled) = read_pull(DOCKER_PULL);
        assert!(pulled);
        assert_eq!(
            reports.len(),
            DOCKER_PULL.len() - 1,
            "all but the last word are blobs"
        );
        assert_eq!(
            reports[0],
            PullReport::blob("2c240430122d", CopyState::Finished, true)
        );
        assert_eq!(
            reports[3],
            PullReport::blob(
                "4eebd4eb00d3",
                CopyState::Counting {
                    done: 12_032_768,
                    total: 24_003_280
                },
                false
            )
        );
        let PullReport::Blob { line, .. } = &reports[3] else {
            panic!("a blob")
        };
        assert_eq!(line, "Copying blob 4eebd4eb00d3 11.5MiB / 22.9MiB");
    }

    #[test]
    fn an_answer_cut_after_the_config_blob_is_not_a_pull() {
        // The config blob's "complete" has the image's ID too: only its second one
        // is the last word.
        let (_, pulled) = read_pull(&DOCKER_PULL[..DOCKER_PULL.len() - 1]);
        assert!(!pulled);
    }

    #[test]
    fn a_libpod_pull_answer_reads_as_lines_and_ends_with_the_image() {
        let (reports, pulled) = read_pull(&[
            r#"{"stream":"Trying to pull 127.0.0.1:5000/x:latest...\n"}"#,
            r#"{"stream":"Getting image source signatures\nCopying blob sha256:2c24\n"}"#,
            r#"{"images":["7a420f775501aa"],"id":"7a420f775501aa"}"#,
        ]);
        assert!(pulled);
        assert_eq!(
            reports,
            [
                "Trying to pull 127.0.0.1:5000/x:latest...",
                "Getting image source signatures",
                "Copying blob sha256:2c24"
            ]
            .map(|l| PullReport::Line(l.into()))
        );
    }

    #[test]
    fn short_names_are_the_ones_without_a_registry() {
        for short in ["openclaw", "openclaw:latest", "library/busybox", "a/b/c:1"] {
            assert!(is_short_name(short), "{short}");
        }
        for full in [
            "ghcr.io/openclaw/openclaw:latest",
            "localhost/clawdock-test-gateway:latest",
            "registry:5000/x",
            "docker://ghcr.io/openclaw/openclaw",
            "oci-archive:/tmp/x.tar",
        ] {
            assert!(!is_short_name(full), "{full}");
        }
    }

    fn agent() -> AgentRecord {
        AgentRecord {
            status: AgentStatus::Creating,
            port: 18800,
            dir: "/data/agents/1".into(),
            token: "tok".into(),
            wanted: Wanted::Running,
            image: "img:1".into(),
            // A name never valid, but it must still stay one argument.
            ..crate::store::sample_record("x; rm -rf /")
        }
    }

    #[test]
    fn container_definition_is_data() {
        let agent = agent();
        let spec = create_spec(
            &agent,
            "home1",
            "Europe/Paris",
            HostTraits {
                rootless_native: true,
                rootful_native: false,
                relabel: true,
                cgroup_v1: false,
            },
            Limits {
                memory_mib: 2048,
                pids: PIDS_LIMIT,
                cpus: Some(1.5),
            },
            &AgentProxy::default(),
        );
        assert_eq!(spec["name"], "clawdock-x; rm -rf /", "one value, no shell");
        assert_eq!(
            spec["portmappings"][0],
            serde_json::json!({"host_ip": "127.0.0.1", "host_port": 18800, "container_port": 18789, "protocol": "tcp"})
        );
        assert_eq!(spec["labels"]["io.clawdock.agent"], agent.id.to_string());
        assert_eq!(spec["labels"]["io.clawdock.home"], "home1");
        assert_eq!(
            spec["mounts"][0],
            serde_json::json!({"type": "bind", "source": "/data/agents/1/config", "destination": "/home/node/.openclaw", "options": ["rbind", "Z"]})
        );
        assert_eq!(spec["env"]["TZ"], "Europe/Paris");
        assert_eq!(spec["env"][TOKEN_VAR], "tok", "the token only in the body");
        assert_eq!(spec["httpproxy"], false);
        assert_eq!(spec["userns"]["nsmode"], "keep-id");
        assert_eq!(spec["userns"]["value"], "uid=1000,gid=1000");
        assert!(
            spec.get("restart_policy").is_none(),
            "Clawdock owns restarts"
        );
        assert_eq!(spec["user"], "1000:1000");
        assert!(spec.get("cgroup_parent").is_none());
        assert_eq!(spec["cap_drop"], serde_json::json!(["all"]));
        assert_eq!(spec["no_new_privileges"], true);
        assert_eq!(spec["read_only_filesystem"], true);
        let tmpfs: Vec<&str> = spec["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter(|m| m["type"] == "tmpfs")
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(
            tmpfs, READ_ONLY_TMPFS,
            "what --read-only gives on the command line"
        );
        let limits = &spec["resource_limits"];
        assert_eq!(limits["memory"]["limit"], 2048_u64 * 1024 * 1024);
        assert_eq!(
            limits["memory"]["swap"],
            2048_u64 * 1024 * 1024,
            "no swap beyond the limit"
        );
        assert_eq!(limits["cpu"]["quota"], 150_000);
        assert_eq!(limits["cpu"]["period"], 100_000);
        assert_eq!(cpu_quota(1.0 / 3.0), 33_300, "Podman's precision");
        assert_eq!(cpus_arg(2.0), "2");
        assert_eq!(cpus_arg(0.25), "0.25");
        assert_eq!(limits["pids"]["limit"], 1024);
        assert_eq!(spec["image"], "img:1");
        assert_eq!(
            spec["command"],
            serde_json::json!([
                "node",
                "dist/index.js",
                "gateway",
                "--bind",
                "lan",
                "--port",
                "18789"
            ])
        );
        assert_eq!(hostname(&agent), hostname(&agent.clone()));
    }

    #[test]
    fn names_and_references_stay_one_path_segment_each() {
        assert_eq!(
            path_value("localhost:5000/openclaw/openclaw:latest"),
            "localhost:5000/openclaw/openclaw:latest"
        );
        assert_eq!(path_value("x?y#z w"), "x%3Fy%23z%20w");
    }

    #[test]
    fn the_digest_of_the_agents_repository_is_picked() {
        let digests = [
            "docker.io/other/name@sha256:aa".to_string(),
            "localhost:5000/openclaw/openclaw@sha256:bb".to_string(),
        ];
        assert_eq!(
            pick_digest(&digests, "localhost:5000/openclaw/openclaw:latest").as_deref(),
            Some("localhost:5000/openclaw/openclaw@sha256:bb")
        );
        assert_eq!(
            pick_digest(&digests, "quay.io/x").as_deref(),
            Some("docker.io/other/name@sha256:aa")
        );
        assert_eq!(pick_digest(&[], "x"), None);
    }

    #[test]
    fn the_holder_of_a_taken_name_is_read_from_podman_s_answer() {
        let stderr = "Error: creating container storage: the container name \"clawdock-dev\" is already in use by 4f1c2d9e8a7b6c5d4e3f2a1b. You have to remove that container to be able to reuse that name: that name is already in use";
        assert_eq!(holder_of(stderr).as_deref(), Some("4f1c2d9e8a7b"));
        assert_eq!(holder_of("Error: name already in use"), None);
    }

    #[test]
    fn events_of_another_data_folder_or_no_agent_are_not_ours() {
        let c = Containers::new(
            Podman::new(None),
            EngineClient::new(Duration::from_secs(1)),
            "home1".into(),
        );
        let id = Uuid::new_v4();
        // As Podman 4.3.1's API streams them.
        let line = |home: &str, action: &str| {
            format!(
                r#"{{"status":"{action}","id":"abc","Type":"container","Action":"{action}","Actor":{{"ID":"abc",
                "Attributes":{{"containerExitCode":"137","io.clawdock.agent":"{id}","io.clawdock.home":"{home}","name":"x"}}}},
                "scope":"local","time":1796395031,"timeNano":1796395031034535872}}"#
            )
        };
        let died = c.parse_event(&line("home1", "died"), true).expect("ours");
        assert_eq!(died.agent, id);
        assert_eq!(died.container_id, ContainerId("abc".into()));
        assert_eq!(died.container, Container::Exited(Some(137)));
        assert_eq!(
            died.at.map(|t| t.timestamp_nanos_opt()),
            Some(Some(1_796_395_031_034_535_872))
        );
        assert!(c
            .parse_event(&line("home1", "died"), false)
            .expect("ours")
            .at
            .is_none());
        assert_eq!(
            c.parse_event(&line("home1", "start"), true)
                .map(|h| h.container),
            Some(Container::Running)
        );
        assert!(c.parse_event(&line("home2", "died"), true).is_none());
        assert!(c.parse_event(&line("home1", "exec"), true).is_none());
        assert!(c.parse_event("garbage", true).is_none());
        assert!(c
            .parse_event(
                r#"{"Action":"died","Type":"container","Actor":{"ID":"a","Attributes":{"io.clawdock.home":"home1"}}}"#,
                true
            )
            .is_none());
    }
}
