//! The only place that speaks podman for containers and images. An agent's
//! container is found by our labels (agent id and data-folder label), never by its
//! name, and every stop, kill, rm, logs and inspect acts on the ID found: a name is
//! something a user or another program can also take.

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
use crate::podman::{Call, LineSink, LineStream, Podman, PodmanError};
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

/// True for an image name without a registry ("openclaw", "library/x:1"). Podman
/// resolves such a name by asking which registry to use when its input is a
/// terminal, and nobody would answer: on a pipe it picks by its rules or says why
/// it cannot. A transport ("docker://", "oci-archive:") counts as a registry.
fn is_short_name(image: &str) -> bool {
    match image.split_once('/') {
        Some((first, _)) => !(first.contains(['.', ':']) || first == "localhost"),
        None => true,
    }
}

/// How long a pull may take: images are large and links slow.
const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

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
    /// the create itself (`--pull never`) rather than an `image exists` first,
    /// which cost every create one more podman process.
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

/// What `podman stats` says of one container, in bytes and nanoseconds.
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

/// A row of `podman ps --format json`. `Labels` is `null` when there are none.
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

/// A line of `podman events --format json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EventLine {
    #[serde(rename = "ID")]
    id: String,
    status: String,
    #[serde(rename = "Type")]
    kind: String,
    attributes: Option<HashMap<String, String>>,
    /// Omitted when the exit code is 0.
    container_exit_code: Option<i32>,
    /// RFC 3339 with nanoseconds.
    time: String,
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
    home: String,
    /// Told whenever a call finds the engine unreachable: the machine may have
    /// gone away (sleep, a crash, a stop from a terminal) without a word.
    engine_lost: Arc<Notify>,
}

impl Containers {
    /// `home` is the data folder's label value, so two instances (or test runs) on
    /// one Podman never touch each other's containers.
    pub fn new(podman: Podman, home: String) -> Self {
        Self {
            podman,
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

    async fn run(&self, call: Call) -> Result<crate::podman::Output, PodmanError> {
        let result = self.podman.run(call).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    async fn run_json<T: serde::de::DeserializeOwned>(&self, call: Call) -> Result<T, PodmanError> {
        let result = self.podman.run_json(call).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    /// Every container of this data folder, running or not.
    pub async fn list(&self) -> Result<Vec<Found>, PodmanError> {
        self.ps(&["--all"]).await
    }

    /// Containers of this data folder that run now.
    pub async fn running(&self) -> Result<Vec<Found>, PodmanError> {
        self.ps(&[]).await
    }

    async fn ps(&self, extra: &[&str]) -> Result<Vec<Found>, PodmanError> {
        let filter = format!("label={LABEL_HOME}={}", self.home);
        let mut args = vec!["ps", "--format", "json", "--filter", &filter];
        args.extend_from_slice(extra);
        let rows: Vec<PsRow> = self.run_json(Call::new(args)).await?;
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
        let filter = format!("label={LABEL_AGENT}={agent}");
        let rows: Vec<PsRow> = self
            .run_json(Call::new([
                "ps", "--all", "--format", "json", "--filter", &filter,
            ]))
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
        match self.run(Call::new(["container", "exists", name])).await {
            Ok(_) => Ok(self.find(agent).await?.is_none_or(|f| f.name != name)),
            Err(PodmanError::Failed { code, .. }) if code.0 == Some(1) => Ok(false),
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
        let args = create_args(agent, &self.home, time_zone, host, limits, proxy);
        let mut call = Call::new(args).env(TOKEN_VAR, &agent.token);
        for (key, value) in proxy.secret_env() {
            call = call.env(key, value);
        }
        match self.run(call).await {
            Ok(out) => Ok(ContainerId(out.stdout.trim().to_string())),
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
        self.run(Call::new(["rename", &id.0, name])).await?;
        Ok(())
    }

    pub async fn start(&self, id: &ContainerId) -> Result<(), PodmanError> {
        self.run(Call::new(["start", &id.0])).await?;
        Ok(())
    }

    /// Stops a container and checks that it did: an answer of 0 from podman is not
    /// trusted alone. What is still up after the timeout is killed.
    pub async fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let call = Call::new(["stop", "--ignore", "--time", &secs.to_string(), &id.0])
            .timeout(timeout + self.podman.call_timeout());
        match self.run(call).await {
            Ok(_) | Err(PodmanError::TimedOut { .. }) => {}
            Err(e) => return Err(e),
        }
        if self.inspect(id).await != Some(Container::Running) {
            return Ok(());
        }
        tracing::warn!(container = %id, "still running after stop; killing it");
        self.kill(std::slice::from_ref(id), self.podman.call_timeout())
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

    /// Kills containers at once, in one podman call.
    pub async fn kill(&self, ids: &[ContainerId], limit: Duration) -> Result<(), PodmanError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["kill".to_string()];
        args.extend(ids.iter().map(|id| id.0.clone()));
        match self.run(Call::new(args).timeout(limit)).await {
            Ok(_) => Ok(()),
            Err(e) if e.says("not running") || e.says("no such container") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes a container with its anonymous volumes, stopping it first within
    /// `timeout`, and checks that it is gone.
    pub async fn remove(&self, id: &ContainerId, timeout: Duration) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let call = Call::new([
            "rm",
            "--force",
            "--volumes",
            "--ignore",
            "--time",
            &secs.to_string(),
            &id.0,
        ])
        .timeout(timeout + self.podman.call_timeout());
        self.run(call).await?;
        match self.inspect(id).await {
            Some(Container::Missing) | None => Ok(()),
            Some(_) => Err(PodmanError::BadOutput {
                args: format!("rm {id}"),
                reason: "podman said the container was removed, but it is still there".into(),
            }),
        }
    }

    /// The container's state as Podman reports it now (`None` when it cannot tell).
    pub async fn inspect(&self, id: &ContainerId) -> Option<Container> {
        let out = self
            .run(Call::new([
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
                &id.0,
            ]))
            .await;
        match out {
            Ok(out) => {
                let mut words = out.stdout.split_whitespace();
                let status = words.next().unwrap_or_default();
                let code = words.next().and_then(|c| c.parse().ok());
                let oom = words.next() == Some("true");
                Some(match status {
                    "running" => Container::Running,
                    "exited" | "stopped" if oom => Container::OutOfMemory,
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
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct InspectedState {
            status: String,
            exit_code: Option<i32>,
        }
        let args = format!("inspect {id}");
        let bad = |reason: &str| PodmanError::BadOutput {
            args: args.clone(),
            reason: reason.to_string(),
        };
        let rows: Vec<Inspected> = self
            .run_json(Call::new(["inspect", "--type", "container", &id.0]))
            .await?;
        let c = rows.into_iter().next().ok_or_else(|| bad("no container"))?;
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

    /// The last lines of the container's own output.
    pub async fn tail_logs(
        &self,
        id: &ContainerId,
        tail: usize,
    ) -> Result<Vec<String>, PodmanError> {
        let out = self
            .run(Call::new(["logs", "--tail", &tail.to_string(), &id.0]))
            .await?;
        // `podman logs` writes the container's stderr to its own stderr (the
        // runner keeps its end): both are kept, stderr last, since a dying
        // gateway's last words are usually its error. Their interleaving is lost.
        let mut lines: Vec<String> = out
            .stdout
            .lines()
            .chain(out.stderr_tail.lines())
            .map(str::to_string)
            .collect();
        let extra = lines.len().saturating_sub(tail);
        lines.drain(..extra);
        Ok(lines)
    }

    /// The container's output as it comes (`follow`), after its last `tail` lines.
    pub fn stream_logs(
        &self,
        id: &ContainerId,
        tail: usize,
        follow: bool,
    ) -> Result<LineStream, PodmanError> {
        let tail = tail.to_string();
        let mut args = vec!["logs", "--tail", &tail];
        if follow {
            args.push("--follow");
        }
        args.push(&id.0);
        self.podman.stream(&args)
    }

    /// Podman's container events, as they happen.
    pub fn events(&self) -> Result<LineStream, PodmanError> {
        let filter = format!("label={LABEL_HOME}={}", self.home);
        self.podman.stream(&[
            "events",
            "--format",
            "json",
            "--filter",
            "type=container",
            "--filter",
            &filter,
        ])
    }

    /// Reads one line of [`Containers::events`]: what happened to which of our
    /// agents, if it is about one. `clock_shared`: the engine's clock is this
    /// machine's (native mode), so the event's time can be compared with ours.
    pub fn parse_event(&self, line: &str, clock_shared: bool) -> Option<Happened> {
        let event: EventLine = serde_json::from_str(line).ok()?;
        if event.kind != "container" {
            return None;
        }
        let attributes = event.attributes.as_ref()?;
        if attributes.get(LABEL_HOME) != Some(&self.home) {
            return None;
        }
        let agent = attributes.get(LABEL_AGENT)?.parse().ok()?;
        let container = match event.status.as_str() {
            "start" | "restart" => Container::Running,
            "died" => Container::Exited(Some(event.container_exit_code.unwrap_or(0))),
            "remove" => Container::Missing,
            _ => return None,
        };
        let at = clock_shared
            .then(|| DateTime::parse_from_rfc3339(&event.time).ok())
            .flatten()
            .map(|t| t.with_timezone(&Utc));
        Some(Happened {
            agent,
            container_id: ContainerId(event.id),
            container,
            at,
        })
    }

    /// True when every running container carries the agent label (ours or another
    /// Clawdock's): only then may Clawdock stop the machine.
    pub async fn only_agents_run(&self) -> Result<bool, PodmanError> {
        let rows: Vec<PsRow> = self.run_json(Call::new(["ps", "--format", "json"])).await?;
        Ok(rows.iter().all(|r| r.label(LABEL_AGENT).is_some()))
    }

    /// One sample of each container's resource use (`podman stats`, raw numbers).
    /// One sample of the named containers (names or IDs).
    pub async fn stats(&self, containers: &[String]) -> Result<Vec<RawStats>, PodmanError> {
        if containers.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![
            "stats".to_string(),
            "--no-stream".into(),
            "--format".into(),
            "{{json .ContainerStats}}".into(),
        ];
        args.extend(containers.iter().cloned());
        let out = self.run(Call::new(args)).await?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The ID of the image a reference names now; `None` when there is none.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, PodmanError> {
        match self
            .run(Call::new([
                "image", "inspect", "--format", "{{.Id}}", image,
            ]))
            .await
        {
            Ok(out) => Ok(Some(out.stdout.trim().to_string())),
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
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Row {
            #[serde(default)]
            repo_digests: Option<Vec<String>>,
        }
        let rows: Vec<Row> = match self
            .run_json(Call::new(["image", "inspect", "--format", "json", image]))
            .await
        {
            Ok(rows) => rows,
            Err(e) if e.says("image not known") || e.says("no such image") => return Ok(None),
            Err(e) => return Err(e),
        };
        let digests = rows
            .into_iter()
            .next()
            .and_then(|r| r.repo_digests)
            .unwrap_or_default();
        Ok(pick_digest(&digests, named))
    }

    /// Pulls `image`, each line of podman's output to `on_line`. On a terminal, where
    /// Podman draws its byte counters; a short name stays on pipes (see
    /// [`is_short_name`]).
    pub async fn pull(&self, image: &str, on_line: LineSink) -> Result<(), PodmanError> {
        let mut call = Call::new(["pull", image])
            .timeout(PULL_TIMEOUT)
            .on_line(on_line);
        if !is_short_name(image) {
            call = call.on_terminal();
        }
        self.run(call).await.map(|_| ())
    }

    /// How containers must be set up on this host (Linux, native mode only).
    pub async fn host_traits(&self) -> HostTraits {
        let info = self
            .run(Call::new([
                "info",
                "--format",
                "{{.Host.Security.Rootless}} {{.Host.Security.SELinuxEnabled}} {{.Host.CgroupsVersion}} {{.Host.CgroupManager}}",
            ]))
            .await;
        match info {
            Ok(out) => {
                let mut words = out.stdout.split_whitespace();
                let rootless = words.next() == Some("true");
                let relabel = words.next() == Some("true");
                let v1 = words.next() == Some("v1") && words.next() == Some("cgroupfs");
                HostTraits {
                    rootless_native: rootless,
                    rootful_native: !rootless,
                    relabel,
                    cgroup_v1: v1 && !rootless && std::path::Path::new(CGROUP_V1_MEMORY).is_dir(),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "podman info failed; assuming rootful without SELinux");
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

/// `podman create` arguments for an agent. Built as an argument list: user text
/// never passes through a shell or a YAML file.
pub fn create_args(
    agent: &AgentRecord,
    home_label: &str,
    time_zone: &str,
    host: HostTraits,
    limits: Limits,
    proxy: &AgentProxy,
) -> Vec<String> {
    let dir = &agent.dir;
    let mount = |sub: &str, target: &str| {
        let suffix = if host.relabel { ":Z" } else { "" };
        format!("{}:{target}{suffix}", dir.join(sub).display())
    };
    let mut args: Vec<String> = vec![
        "create".into(),
        // A missing image is pulled by Clawdock, with progress, cancel and advice,
        // never silently by the create within its timeout.
        "--pull".into(),
        "never".into(),
        "--name".into(),
        agent.container_name(),
        "--hostname".into(),
        hostname(agent),
        "--label".into(),
        format!("{LABEL_AGENT}={}", agent.id),
        "--label".into(),
        format!("{LABEL_HOME}={home_label}"),
        "--label".into(),
        format!("{LABEL_NAME}={}", agent.name),
        "--publish".into(),
        format!("127.0.0.1:{}:{GATEWAY_PORT}", agent.port),
        // Named only: podman takes the value from its own environment (see
        // `Containers::create`), never from this argument line.
        "--env".into(),
        TOKEN_VAR.into(),
        // Podman would otherwise copy its own proxy variables into the container,
        // whatever the proxy setting says.
        "--http-proxy=false".into(),
    ];
    // Named only too: a proxy address may hold credentials.
    for (key, _) in proxy.secret_env() {
        args.push("--env".into());
        args.push(key.into());
    }
    for (key, value) in gateway_env(time_zone).into_iter().chain(proxy.plain_env()) {
        args.push("--env".into());
        args.push(format!("{key}={value}"));
    }
    if let Some(bundle) = &proxy.ca_bundle {
        // Never relabelled: the file is the user's, shared by every agent.
        args.push("--volume".into());
        args.push(format!("{}:{CA_TARGET}:ro", bundle.display()));
    }
    args.extend([
        "--volume".into(),
        mount("config", CONFIG_DIR),
        "--volume".into(),
        mount("workspace", WORKSPACE_DIR),
        "--health-cmd".into(),
        format!(
            "wget -Y off -qO- http://127.0.0.1:{GATEWAY_PORT}{HEALTH_PATH} >/dev/null 2>&1 || curl -sf --noproxy '*' http://127.0.0.1:{GATEWAY_PORT}{HEALTH_PATH}"
        ),
        "--health-interval".into(),
        format!("{HEALTH_INTERVAL_SECS}s"),
        "--health-timeout".into(),
        format!("{HEALTH_TIMEOUT_SECS}s"),
        "--health-retries".into(),
        HEALTH_RETRIES.to_string(),
        // No restart policy: Clawdock starts a gateway that died again itself,
        // after a back-off, and says so (agents::state, the crash loop).
        //
        // The gateway's user whatever the image says: a root image would meet the
        // uid-1000 folders without capabilities and die with EACCES in a loop.
        "--user".into(),
        format!("{GATEWAY_UID}:{GATEWAY_UID}"),
        // The sandbox. The real gateway runs with all of it (measured: healthy,
        // 0.7 GB, 29 processes). It writes only its config folder, ~/.cache (both
        // mounted from the agent's folder: podman 4 loses a tmpfs's mode when a
        // container restarts) and /tmp (podman's own tmpfs under --read-only).
        "--volume".into(),
        mount("cache", CACHE_DIR),
        "--cap-drop=all".into(),
        "--security-opt=no-new-privileges".into(),
        "--memory".into(),
        format!("{}m", limits.memory_mib),
        "--memory-swap".into(),
        format!("{}m", limits.memory_mib),
        "--pids-limit".into(),
        limits.pids.to_string(),
        "--read-only".into(),
    ]);
    if let Some(cpus) = limits.cpus {
        args.push("--cpus".into());
        args.push(cpus_arg(cpus));
    }
    if host.cgroup_v1 {
        args.push(format!("--cgroup-parent={}", cgroup_parent(agent.id)));
    }
    if host.rootless_native {
        args.push("--userns".into());
        args.push(format!("keep-id:uid={GATEWAY_UID},gid={GATEWAY_UID}"));
    }
    args.push(agent.image.clone());
    args.extend(gateway_command());
    args
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
        let args = create_args(
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
        assert!(args.contains(&"clawdock-x; rm -rf /".to_string()));
        assert!(args.contains(&"127.0.0.1:18800:18789".to_string()));
        assert!(args.contains(&format!("io.clawdock.agent={}", agent.id)));
        assert!(args.contains(&"io.clawdock.home=home1".to_string()));
        assert!(args.contains(&"/data/agents/1/config:/home/node/.openclaw:Z".to_string()));
        assert!(args.contains(&"TZ=Europe/Paris".to_string()));
        assert!(
            !args.iter().any(|a| a.contains("tok")),
            "no secret in the argument line"
        );
        assert!(args.contains(&"keep-id:uid=1000,gid=1000".to_string()));
        assert!(
            !args.iter().any(|a| a.starts_with("--restart")),
            "no restart policy: Clawdock owns restarts"
        );
        assert!(args.windows(2).any(|w| w == ["--user", "1000:1000"]));
        assert!(!args.iter().any(|a| a.starts_with("--cgroup-parent")));
        for sandbox in [
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--read-only",
        ] {
            assert!(args.contains(&sandbox.to_string()), "{sandbox}");
        }
        let after = |flag: &str| {
            let at = args.iter().position(|a| a == flag).expect(flag);
            args[at + 1].clone()
        };
        assert_eq!(after("--memory"), "2048m");
        assert_eq!(after("--memory-swap"), "2048m", "no swap beyond the limit");
        assert_eq!(after("--cpus"), "1.5");
        assert_eq!(cpus_arg(2.0), "2");
        assert_eq!(cpus_arg(0.25), "0.25");
        assert_eq!(cpus_arg(1.0 / 3.0), "0.333", "Podman's precision");
        assert_eq!(after("--pids-limit"), "1024");
        let at = args.iter().position(|a| a == "img:1").expect("image");
        assert_eq!(
            &args[at + 1..],
            [
                "node",
                "dist/index.js",
                "gateway",
                "--bind",
                "lan",
                "--port",
                "18789"
            ]
        );
        assert_eq!(hostname(&agent), hostname(&agent.clone()));
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
        let c = Containers::new(Podman::new(None), "home1".into());
        let id = Uuid::new_v4();
        let line = |home: &str, status: &str| {
            format!(
                r#"{{"ID":"abc","Status":"{status}","Type":"container","Time":"2026-11-30T10:00:00.5Z","ContainerExitCode":137,
                "Attributes":{{"io.clawdock.agent":"{id}","io.clawdock.home":"{home}"}}}}"#
            )
        };
        let died = c.parse_event(&line("home1", "died"), true).expect("ours");
        assert_eq!(died.agent, id);
        assert_eq!(died.container, Container::Exited(Some(137)));
        assert!(died.at.is_some());
        assert!(c
            .parse_event(&line("home1", "died"), false)
            .expect("ours")
            .at
            .is_none());
        assert!(c.parse_event(&line("home2", "died"), true).is_none());
        assert!(c.parse_event(&line("home1", "exec"), true).is_none());
        assert!(c.parse_event("garbage", true).is_none());
        assert!(c
            .parse_event(
                r#"{"Status":"died","Type":"container","Attributes":{"io.clawdock.home":"home1"}}"#,
                true
            )
            .is_none());
    }
}
