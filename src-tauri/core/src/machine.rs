//! The Podman machine (the Linux VM of macOS and Windows): its state read from
//! `podman machine list`, the mode (native or vm), and single-flight readiness.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::engine::client::EngineClient;
use crate::engine::socket::{EngineSocket, Source};
use crate::engine::{Call, Podman, PodmanError};
use crate::progress::Paced;

/// One row of `podman machine list --format json`, as Podman prints it (Go field
/// names). Fields that vary across versions are optional; unknown ones are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MachineRow {
    pub name: String,
    pub default: bool,
    pub running: bool,
    /// Since Podman 4.2; stays true after an interrupted start.
    pub starting: bool,
    #[serde(rename = "CPUs")]
    pub cpus: Option<serde_json::Value>,
    pub memory: Option<serde_json::Value>,
    pub disk_size: Option<serde_json::Value>,
    #[serde(rename = "VMType")]
    pub vm_type: Option<String>,
}

impl MachineRow {
    /// The machine's memory in MiB (`Memory` is a decimal byte string in Podman 4
    /// and 5, a number in some builds).
    pub fn memory_mib(&self) -> Option<u64> {
        let bytes = match self.memory.as_ref()? {
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok()?,
            serde_json::Value::Number(n) => n.as_u64()?,
            _ => return None,
        };
        Some(bytes / (1024 * 1024))
    }

    /// The machine's CPUs (`CPUs` is a number, a string in some builds).
    pub fn cpu_count(&self) -> Option<u32> {
        match self.cpus.as_ref()? {
            serde_json::Value::String(s) => s.trim().parse().ok(),
            serde_json::Value::Number(n) => n.as_u64()?.try_into().ok(),
            _ => None,
        }
    }
}

/// What the app needs to know of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    Absent,
    Stopped,
    Starting,
    Running,
}

/// Whether containers run natively (Linux) or inside a Podman machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Native,
    Vm,
}

impl Mode {
    /// `CLAWDOCK_MACHINE_MODE=vm|native` forces it; otherwise Linux is native.
    pub fn detect(forced: Option<&str>) -> Result<Self, String> {
        match forced.map(str::trim).filter(|s| !s.is_empty()) {
            Some("vm") => Ok(Self::Vm),
            Some("native") => Ok(Self::Native),
            Some(other) => Err(format!(
                "CLAWDOCK_MACHINE_MODE must be `vm` or `native`, not `{other}`"
            )),
            None if cfg!(target_os = "linux") => Ok(Self::Native),
            None => Ok(Self::Vm),
        }
    }
}

/// The machine Clawdock uses: the one named in settings, else the `Default` one.
/// Never "the first": users with several machines pick their default on purpose.
pub fn select<'a>(rows: &'a [MachineRow], wanted: Option<&str>) -> Option<&'a MachineRow> {
    match wanted {
        Some(name) => rows.iter().find(|r| r.name == name),
        None => rows
            .iter()
            .find(|r| r.default)
            .or_else(|| (rows.len() == 1).then(|| &rows[0])),
    }
}

/// The one place a machine row becomes a state.
pub fn state_of(rows: &[MachineRow], wanted: Option<&str>) -> MachineState {
    match select(rows, wanted) {
        None => MachineState::Absent,
        Some(row) if row.starting => MachineState::Starting,
        Some(row) if row.running => MachineState::Running,
        Some(_) => MachineState::Stopped,
    }
}

/// Parses the list. Garbage is an error, not an empty list: "no machine" must never
/// be concluded from output we could not read.
pub fn parse_list(json: &str) -> Result<Vec<MachineRow>, serde_json::Error> {
    let trimmed = json.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(trimmed)
}

/// Sizes of a new machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    pub cpus: u32,
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
    #[serde(rename = "diskGiB")]
    pub disk_gib: u64,
}

/// What `validate` accepts (and `GET /meta` tells clients).
pub const CPUS: RangeInclusive<u32> = 1..=64;
pub const MEMORY_MIB: RangeInclusive<u64> = 1024..=262_144;
pub const DISK_GIB: RangeInclusive<u64> = 10..=2048;
/// The sizes `recommended` proposes besides the CPUs.
pub const DEFAULT_MEMORY_MIB: u64 = 4096;
pub const DEFAULT_DISK_GIB: u64 = 40;

impl MachineSpec {
    /// Half the cores up to 4, 4 GiB, 40 GiB.
    pub fn recommended() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            cpus: recommended_cpus(cores),
            memory_mib: DEFAULT_MEMORY_MIB,
            disk_gib: DEFAULT_DISK_GIB,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !CPUS.contains(&self.cpus) {
            return Err(format!(
                "CPUs must be between {} and {}",
                CPUS.start(),
                CPUS.end()
            ));
        }
        if !MEMORY_MIB.contains(&self.memory_mib) {
            return Err(format!(
                "memory must be between {} and {} MiB",
                MEMORY_MIB.start(),
                MEMORY_MIB.end()
            ));
        }
        if !DISK_GIB.contains(&self.disk_gib) {
            return Err(format!(
                "disk must be between {} and {} GiB",
                DISK_GIB.start(),
                DISK_GIB.end()
            ));
        }
        Ok(())
    }
}

/// Half the cores, at least 1 and at most 4.
pub fn recommended_cpus(cores: u32) -> u32 {
    (cores / 2).clamp(1, 4)
}

/// Why the machine could not be made ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Podman(#[from] PodmanError),
    #[error("podman printed a machine list that could not be read: {0}")]
    BadList(String),
    #[error("the Podman machine stayed in `starting`; try stopping and starting it")]
    StuckStarting,
    #[error("the Podman machine started but the engine does not answer: {0}")]
    EngineSilent(String),
}

/// Events of the machine, for the UI and the tray.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum MachineEvent {
    /// The readiness state changed.
    State { state: RuntimeState },
    /// A line of output from `machine init` / `machine start`, with the bytes of
    /// the download (or unpacking) so far when Podman drew them. Redraws that only
    /// move the counters come at most five times a second.
    #[serde(rename_all = "camelCase")]
    Progress {
        step: SetupStep,
        line: String,
        done_bytes: Option<u64>,
        total_bytes: Option<u64>,
        eta_secs: Option<u64>,
    },
}

/// Where a setup run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetupStep {
    Init,
    Start,
}

/// The runtime as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RuntimeState {
    Unavailable,
    Absent,
    Stopped,
    Starting,
    Ready,
    Error { message: String },
}

/// Timings of machine operations; tests shorten them.
#[derive(Debug, Clone)]
pub struct MachineTimings {
    pub list: Duration,
    pub init: Duration,
    pub start: Duration,
    pub stop: Duration,
    /// How long a machine already `Starting` (started by someone else) may take
    /// before it is treated as a stale flag.
    pub starting_grace: Duration,
    /// The pause before a failed engine probe is asked again, to tell a blip from
    /// a lost engine.
    pub confirm: Duration,
}

impl Default for MachineTimings {
    fn default() -> Self {
        Self {
            list: Duration::from_secs(30),
            init: Duration::from_secs(30 * 60),
            start: Duration::from_secs(5 * 60),
            stop: Duration::from_secs(2 * 60),
            starting_grace: Duration::from_secs(60),
            confirm: Duration::from_millis(500),
        }
    }
}

type Attempt = Shared<BoxFuture<'static, Result<(), MachineError>>>;

/// The machine and the readiness of the engine behind it. Clone to share.
#[derive(Clone)]
pub struct Machine {
    inner: Arc<Inner>,
}

struct Inner {
    podman: Podman,
    /// The engine's API, pointed at its socket whenever the engine is found.
    engine: EngineClient,
    socket: EngineSocket,
    mode: Mode,
    name: Option<String>,
    timings: MachineTimings,
    /// Whether the engine answered since readiness was last forgotten; followers
    /// wait on it (a state event is sent only when the state changes).
    ready: tokio::sync::watch::Sender<bool>,
    /// Bumped by `stop()` so an attempt that finishes after a stop does not mark
    /// the engine ready.
    generation: AtomicU64,
    in_flight: Mutex<Option<(u64, Attempt)>>,
    started_by_us: AtomicBool,
    events: broadcast::Sender<MachineEvent>,
    last_state: Mutex<Option<RuntimeState>>,
    /// The sizes of the next automatic `init` (a container action on a machine
    /// that does not exist yet).
    spec: Mutex<Option<MachineSpec>>,
    /// Memory of the machine as last listed (vm mode), to warn before an agent
    /// would not fit.
    memory_mib: Mutex<Option<u64>>,
    /// CPUs of the machine as last listed (vm mode): an agent's CPU limit is at
    /// most these.
    cpus: Mutex<Option<u32>>,
}

impl Machine {
    /// A machine whose engine socket is found the default way for `mode`: the
    /// machine's own, or natively the user's or one of Clawdock's in the
    /// temporary folder (see [`Machine::with_engine`]).
    pub fn new(podman: Podman, mode: Mode, name: Option<String>, timings: MachineTimings) -> Self {
        let source = match mode {
            Mode::Vm => Source::Machine { name: name.clone() },
            Mode::Native => Source::Native {
                user: crate::engine::socket::user_socket(),
                owned: std::env::temp_dir()
                    .join(format!("clawdock-engine-{}.sock", std::process::id())),
            },
        };
        Self::with_engine(podman, mode, name, timings, source)
    }

    pub fn with_engine(
        podman: Podman,
        mode: Mode,
        name: Option<String>,
        timings: MachineTimings,
        source: Source,
    ) -> Self {
        let (events, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                engine: EngineClient::new(podman.call_timeout()),
                socket: EngineSocket::new(podman.clone(), source),
                podman,
                mode,
                name,
                timings,
                ready: tokio::sync::watch::Sender::new(false),
                generation: AtomicU64::new(0),
                in_flight: Mutex::new(None),
                started_by_us: AtomicBool::new(false),
                events,
                last_state: Mutex::new(None),
                spec: Mutex::new(None),
                memory_mib: Mutex::new(None),
                cpus: Mutex::new(None),
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn podman(&self) -> &Podman {
        &self.inner.podman
    }

    /// The engine's API client, pointed at the socket found last.
    pub fn engine(&self) -> &EngineClient {
        &self.inner.engine
    }

    /// Ends the engine service Clawdock started, if it did (at exit, after the
    /// agents stopped; the containers live on under conmon).
    pub async fn close_engine(&self) {
        self.inner.socket.close().await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<MachineEvent> {
        self.inner.events.subscribe()
    }

    /// Whether this app started the machine (and so may stop it at exit).
    pub fn started_by_us(&self) -> bool {
        self.inner.started_by_us.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Resolves once the engine is ready (at once if it is): for followers that
    /// must not miss a readiness no state event announced (the state was Ready
    /// before the check that forgot and found it again).
    pub async fn wait_ready(&self) {
        let mut ready = self.inner.ready.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _sender_lives = ready.wait_for(|r| *r).await;
    }

    /// Checks that the engine still answers (a call failed, the event stream
    /// ended, the system slept). One failed probe is not a lost engine: lost is
    /// confirmed by a second failed probe, or by the machine's own state; only
    /// then is readiness forgotten and the new state announced.
    pub async fn recheck(&self) -> RuntimeState {
        let machine_up = match self.state().await {
            Ok(MachineState::Running) => true,
            Ok(_) => false,
            // The list failed: the probes decide.
            Err(_) => true,
        };
        if machine_up && self.is_ready() {
            for attempt in 0..2 {
                match self.probe_engine().await {
                    Ok(()) => return RuntimeState::Ready,
                    Err(e) if attempt == 0 => {
                        tracing::info!(error = %e, "the engine did not answer once; asking again");
                        tokio::time::sleep(self.inner.timings.confirm).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "the engine did not answer twice"),
                }
            }
        }
        if self.is_ready() {
            // Only a readiness held is forgotten: bumping the generation while not
            // ready would void the attempt in flight (a start bringing the machine
            // up), and nobody would mark the engine ready or announce it.
            self.invalidate();
        }
        self.refresh().await
    }

    /// The machine's memory in MiB as last listed (vm mode only).
    pub fn memory_mib(&self) -> Option<u64> {
        *lock(&self.inner.memory_mib)
    }

    /// The CPUs agents share: the machine's as last listed (vm mode), this
    /// computer's natively (or before the machine was listed).
    pub fn cpus(&self) -> u32 {
        let here = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        match self.inner.mode {
            Mode::Vm => lock(&self.inner.cpus).unwrap_or(here),
            Mode::Native => here,
        }
    }

    /// The last state announced, if any.
    pub fn last_state(&self) -> Option<RuntimeState> {
        lock(&self.inner.last_state).clone()
    }

    /// Reads the machine state from podman (vm mode). Native mode has no machine and
    /// reports `Running`.
    pub async fn state(&self) -> Result<MachineState, MachineError> {
        if self.inner.mode == Mode::Native {
            return Ok(MachineState::Running);
        }
        let rows = self.list().await?;
        let chosen = select(&rows, self.inner.name.as_deref());
        *lock(&self.inner.memory_mib) = chosen.and_then(MachineRow::memory_mib);
        *lock(&self.inner.cpus) = chosen.and_then(MachineRow::cpu_count);
        Ok(state_of(&rows, self.inner.name.as_deref()))
    }

    pub async fn list(&self) -> Result<Vec<MachineRow>, MachineError> {
        let out = self
            .inner
            .podman
            .run(
                Call::new(["machine", "list", "--format", "json"]).timeout(self.inner.timings.list),
            )
            .await?;
        parse_list(&out.stdout).map_err(|e| MachineError::BadList(e.to_string()))
    }

    /// Makes the engine answer, initialising and starting the machine as needed.
    /// Concurrent callers share one attempt and its outcome; a failure is not kept,
    /// so the next call tries again.
    pub async fn ensure_ready(&self) -> Result<(), MachineError> {
        if self.is_ready() {
            return Ok(());
        }
        let (generation, attempt) = {
            let mut slot = lock(&self.inner.in_flight);
            match slot.as_ref() {
                Some((g, attempt)) => (*g, attempt.clone()),
                None => {
                    let generation = self.inner.generation.load(Ordering::SeqCst);
                    let this = self.clone();
                    // Spawned so the attempt finishes even when every caller gives up:
                    // an init half-done because a request was cancelled helps nobody.
                    let task = tokio::spawn(async move { this.attempt(generation).await });
                    let attempt: Attempt = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(MachineError::EngineSilent(format!(
                                "readiness task ended: {e}"
                            )))
                        })
                    }
                    .boxed()
                    .shared();
                    *slot = Some((generation, attempt.clone()));
                    (generation, attempt)
                }
            }
        };
        let outcome = attempt.await;
        let mut slot = lock(&self.inner.in_flight);
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
        }
        outcome
    }

    /// Resolves once no readiness attempt (an init or a start) is in flight, each
    /// ending by its own calls' bounds. The shutdown waits here: an attempt runs
    /// on a task of its own, which the end of the process would drop mid-call.
    pub async fn settled(&self) {
        let attempt = lock(&self.inner.in_flight)
            .as_ref()
            .map(|(_, attempt)| attempt.clone());
        if let Some(attempt) = attempt {
            tracing::info!("waiting for the Podman machine's setup or start to end");
            if let Err(e) = attempt.await {
                tracing::info!(error = %e, "the machine's setup or start ended in an error");
            }
        }
    }

    /// Creates the machine with the given sizes, then starts it: the setup wizard's
    /// path. Shares the single flight with `ensure_ready`.
    pub async fn setup(&self, spec: MachineSpec) -> Result<(), MachineError> {
        *lock(&self.inner.spec) = Some(spec);
        self.ensure_ready().await
    }

    async fn attempt(&self, generation: u64) -> Result<(), MachineError> {
        let result = self.bring_up().await;
        match &result {
            Ok(()) => {
                if self.inner.generation.load(Ordering::SeqCst) == generation {
                    self.inner.ready.send_replace(true);
                    self.announce(RuntimeState::Ready);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "runtime not ready");
                let state = match err {
                    MachineError::Podman(PodmanError::NotInstalled { .. }) => {
                        RuntimeState::Unavailable
                    }
                    // A failed init leaves no machine: clients must offer the setup
                    // again, not a start.
                    other => match self.state().await {
                        Ok(MachineState::Absent) => RuntimeState::Absent,
                        _ => RuntimeState::Error {
                            message: other.to_string(),
                        },
                    },
                };
                self.announce(state);
            }
        }
        result
    }

    async fn bring_up(&self) -> Result<(), MachineError> {
        if self.inner.mode == Mode::Vm {
            self.bring_up_machine().await?;
        }
        self.probe_engine().await
    }

    async fn bring_up_machine(&self) -> Result<(), MachineError> {
        let mut state = self.state().await?;
        if state == MachineState::Absent {
            // The wizard's sizes when it ran; otherwise (an agent action on a new
            // install) the recommended ones.
            // Kept until an init succeeds, so a retry uses the same sizes.
            let spec = (*lock(&self.inner.spec)).unwrap_or_else(MachineSpec::recommended);
            self.init(spec).await?;
            *lock(&self.inner.spec) = None;
            state = self.state().await?;
        }
        if state == MachineState::Starting {
            state = self.wait_while_starting().await?;
        }
        if state == MachineState::Stopped {
            self.start().await?;
        }
        Ok(())
    }

    async fn init(&self, spec: MachineSpec) -> Result<(), MachineError> {
        self.announce(RuntimeState::Starting);
        let mut args: Vec<String> = vec![
            "machine".into(),
            "init".into(),
            "--cpus".into(),
            spec.cpus.to_string(),
            "--memory".into(),
            spec.memory_mib.to_string(),
            "--disk-size".into(),
            spec.disk_gib.to_string(),
        ];
        if let Some(name) = &self.inner.name {
            args.push(name.clone());
        }
        let progress = self.progress(SetupStep::Init);
        // On a terminal: the image download's byte counters exist only there.
        let call = Call::new(args)
            .timeout(self.inner.timings.init)
            .on_terminal()
            .on_line(progress.sink());
        let result = self.inner.podman.run(call).await;
        progress.finish();
        match result {
            Ok(_) => Ok(()),
            // Someone (another app, a racing user) created it first: fine, use it.
            Err(e) if e.says("already exists") => {
                tracing::info!("machine already exists; continuing with it");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn start(&self) -> Result<(), MachineError> {
        self.announce(RuntimeState::Starting);
        let mut args: Vec<String> = vec!["machine".into(), "start".into()];
        if let Some(name) = &self.inner.name {
            args.push(name.clone());
        }
        let progress = self.progress(SetupStep::Start);
        let call = Call::new(args)
            .timeout(self.inner.timings.start)
            .on_line(progress.sink());
        match self.inner.podman.run(call).await {
            Ok(_) => {
                self.inner.started_by_us.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) if e.says("already running") || e.says("already starting") => {
                match self.state().await? {
                    MachineState::Running => Ok(()),
                    MachineState::Starting => match self.wait_while_starting().await? {
                        MachineState::Running => Ok(()),
                        _ => Err(MachineError::StuckStarting),
                    },
                    _ => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A machine in `Starting` is either being started by someone else or carries a
    /// stale flag from an interrupted start. Wait a while; if it never comes up,
    /// stop it (which clears the flag) and let the caller start it.
    async fn wait_while_starting(&self) -> Result<MachineState, MachineError> {
        self.announce(RuntimeState::Starting);
        let deadline = tokio::time::Instant::now() + self.inner.timings.starting_grace;
        loop {
            let state = self.state().await?;
            if state != MachineState::Starting {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("machine stuck in Starting; stopping it to clear the flag");
                self.stop_machine().await?;
                return Ok(MachineState::Stopped);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Finds the engine's socket (starting Clawdock's own service where that is
    /// the way) and succeeds only when it answers.
    async fn probe_engine(&self) -> Result<(), MachineError> {
        self.inner
            .socket
            .connect(&self.inner.engine)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                // Not silence: a refusal the user must read as it is.
                PodmanError::Untrusted { .. } => MachineError::Podman(e),
                e => MachineError::EngineSilent(e.to_string()),
            })
    }

    /// Looks for the engine again now, whatever readiness says (starting the
    /// service Clawdock owns again if it is gone): the quit's way back to an
    /// engine it could not reach.
    pub async fn reach_engine(&self) -> Result<(), MachineError> {
        self.probe_engine().await
    }

    /// Forgets readiness without stopping anything: the engine stopped answering
    /// (e.g. the event stream broke), so the next use must check again.
    pub fn invalidate(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.ready.send_replace(false);
    }

    /// How long `podman machine stop` may take.
    pub fn stop_bound(&self) -> Duration {
        self.inner.timings.stop
    }

    /// Stops the machine and forgets readiness (vm mode); in native mode only
    /// readiness is reset.
    pub async fn stop(&self) -> Result<(), MachineError> {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.ready.send_replace(false);
        if self.inner.mode == Mode::Native {
            return Ok(());
        }
        self.stop_machine().await?;
        self.inner.started_by_us.store(false, Ordering::SeqCst);
        self.announce(RuntimeState::Stopped);
        Ok(())
    }

    async fn stop_machine(&self) -> Result<(), MachineError> {
        let mut args: Vec<String> = vec!["machine".into(), "stop".into()];
        if let Some(name) = &self.inner.name {
            args.push(name.clone());
        }
        self.inner
            .podman
            .run(Call::new(args).timeout(self.inner.timings.stop))
            .await?;
        Ok(())
    }

    /// Reads the state and announces it: at start-up and after a failure.
    pub async fn refresh(&self) -> RuntimeState {
        let state = if self.inner.podman.bin().is_none() {
            RuntimeState::Unavailable
        } else if self.is_ready() {
            RuntimeState::Ready
        } else {
            match self.state().await {
                Ok(MachineState::Absent) => RuntimeState::Absent,
                Ok(MachineState::Stopped) => RuntimeState::Stopped,
                Ok(MachineState::Starting) => RuntimeState::Starting,
                // Running but not yet probed: ready once the engine answers.
                Ok(MachineState::Running) => match self.ensure_ready().await {
                    Ok(()) => RuntimeState::Ready,
                    Err(e) => RuntimeState::Error {
                        message: e.to_string(),
                    },
                },
                Err(MachineError::Podman(PodmanError::NotInstalled { .. })) => {
                    RuntimeState::Unavailable
                }
                Err(e) => RuntimeState::Error {
                    message: e.to_string(),
                },
            }
        };
        self.announce(state.clone());
        state
    }

    /// The output of one `machine init` or `start` as events: every line that
    /// says something new (logged too), and the byte counters at a pace.
    fn progress(&self, step: SetupStep) -> Arc<Paced> {
        let events = self.inner.events.clone();
        Paced::new(move |reading| {
            if reading.news {
                tracing::info!(step = ?step, "{}", reading.line);
            }
            let _no_listener = events.send(MachineEvent::Progress {
                step,
                line: reading.line,
                done_bytes: reading.done_bytes,
                total_bytes: reading.total_bytes,
                eta_secs: reading.eta_secs,
            });
        })
    }

    fn announce(&self, state: RuntimeState) {
        let mut last = lock(&self.inner.last_state);
        if last.as_ref() != Some(&state) {
            *last = Some(state.clone());
            let _no_listener = self.inner.events.send(MachineEvent::State { state });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODMAN5: &str = r#"[
      {"Name":"dev","Default":false,"Created":"2026-11-01T10:00:00Z","Running":true,"Starting":false,
       "LastUp":"2026-11-28T10:00:00Z","Stream":"default","VMType":"applehv","CPUs":4,
       "Memory":"8589934592","DiskSize":"107374182400","Port":50000,"RemoteUsername":"core",
       "IdentityPath":"/Users/a/.ssh/dev","UserModeNetworking":true},
      {"Name":"podman-machine-default","Default":true,"Created":"2026-11-01T10:00:00Z","Running":false,
       "Starting":false,"LastUp":"2026-11-20T10:00:00Z","Stream":"default","VMType":"applehv","CPUs":2,
       "Memory":"2147483648","DiskSize":"107374182400","Port":50001,"RemoteUsername":"core",
       "IdentityPath":"/Users/a/.ssh/podman-machine-default","UserModeNetworking":true,"FutureField":{"x":1}}
    ]"#;

    // Podman 4.x: no UserModeNetworking, Memory as a plain number string, LastUp as a time.
    const PODMAN4: &str = r#"[{"Name":"podman-machine-default*","Default":true,"Created":"2023-01-01T00:00:00Z",
      "Running":true,"Starting":false,"LastUp":"2023-01-02T00:00:00Z","Stream":"testing","VMType":"qemu",
      "CPUs":1,"Memory":"2147483648","DiskSize":"107374182400","Port":40000,"RemoteUsername":"core",
      "IdentityPath":"/home/a/.ssh/podman-machine-default"}]"#;

    #[test]
    fn empty_list_is_absent() {
        let rows = parse_list("[]").expect("parse");
        assert_eq!(state_of(&rows, None), MachineState::Absent);
        assert_eq!(
            state_of(&parse_list("").expect("parse"), None),
            MachineState::Absent
        );
    }

    #[test]
    fn default_machine_wins_over_the_first() {
        let rows = parse_list(PODMAN5).expect("parse");
        // The first row runs, the default one does not: the default decides.
        assert_eq!(state_of(&rows, None), MachineState::Stopped);
        assert_eq!(state_of(&rows, Some("dev")), MachineState::Running);
        assert_eq!(state_of(&rows, Some("missing")), MachineState::Absent);
    }

    #[test]
    fn podman4_rows_parse() {
        let rows = parse_list(PODMAN4).expect("parse");
        assert_eq!(rows.len(), 1);
        assert_eq!(state_of(&rows, None), MachineState::Running);
    }

    #[test]
    fn starting_is_not_running() {
        let rows = parse_list(r#"[{"Name":"m","Default":true,"Running":true,"Starting":true}]"#)
            .expect("parse");
        assert_eq!(state_of(&rows, None), MachineState::Starting);
        // A stale Starting after an interrupted start: Running false, Starting true.
        let rows = parse_list(r#"[{"Name":"m","Default":true,"Running":false,"Starting":true}]"#)
            .expect("parse");
        assert_eq!(state_of(&rows, None), MachineState::Starting);
    }

    #[test]
    fn missing_fields_do_not_break_parsing() {
        let rows = parse_list(r#"[{"Name":"m"}]"#).expect("parse");
        // A lone machine is the one to use even when no row says Default.
        assert_eq!(state_of(&rows, None), MachineState::Stopped);
        let rows = parse_list(r#"[{"Name":"a"},{"Name":"b"}]"#).expect("parse");
        assert_eq!(state_of(&rows, None), MachineState::Absent);
    }

    #[test]
    fn memory_reads_as_mib() {
        let rows = parse_list(PODMAN5).expect("parse");
        assert_eq!(
            select(&rows, None).and_then(MachineRow::memory_mib),
            Some(2048)
        );
        let rows =
            parse_list(r#"[{"Name":"m","Default":true,"Memory":4294967296}]"#).expect("parse");
        assert_eq!(rows[0].memory_mib(), Some(4096));
        assert_eq!(
            parse_list(r#"[{"Name":"m"}]"#).expect("parse")[0].memory_mib(),
            None
        );
    }

    #[test]
    fn garbage_is_an_error_not_absent() {
        assert!(parse_list("Error: something\x00{{").is_err());
        assert!(parse_list("{\"Name\":1}").is_err());
    }

    #[test]
    fn mode_can_be_forced() {
        assert_eq!(Mode::detect(Some("vm")), Ok(Mode::Vm));
        assert_eq!(Mode::detect(Some("native")), Ok(Mode::Native));
        assert!(Mode::detect(Some("qemu")).is_err());
        let default = Mode::detect(None).expect("mode");
        assert_eq!(default == Mode::Native, cfg!(target_os = "linux"));
    }

    #[test]
    fn spec_bounds() {
        assert!(MachineSpec::recommended().validate().is_ok());
        assert!(MachineSpec {
            cpus: 0,
            memory_mib: 4096,
            disk_gib: 40
        }
        .validate()
        .is_err());
        assert!(MachineSpec {
            cpus: 2,
            memory_mib: 10,
            disk_gib: 40
        }
        .validate()
        .is_err());
    }
}
