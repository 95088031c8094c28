//! One agent's lifecycle as data: `apply(state, input)` changes the state for every
//! input (the user's operations and their outcomes, what Podman says of the
//! container, the gateway's readiness, the shutdown) and returns the effects the
//! caller must carry out. No I/O, so every rule is a row in a table test.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::container::{Container, ContainerId};
use crate::events::Change;
use crate::store::{AgentRecord, AgentStatus, CrashRecord, Journal, Step, Wanted};
use crate::view::{Activity, AgentView, CrashLoopView};

/// The wait before a gateway that died is started again: 1 s, doubled at each
/// death of the same loop, at most [`LAST_REVIVE`].
pub const FIRST_REVIVE: Duration = Duration::from_secs(1);
pub const LAST_REVIVE: Duration = Duration::from_secs(300);
/// Healthy this long, the next death begins a new loop (counted from one again).
pub const HEALTHY_RESET: Duration = Duration::from_secs(600);

/// The wait before the start that follows the `crashes`-th death of a loop.
pub fn revive_delay(crashes: u32) -> Duration {
    let doublings = crashes.saturating_sub(1).min(16);
    (FIRST_REVIVE * 2u32.pow(doublings)).min(LAST_REVIVE)
}

/// A gateway that died without being asked to: Clawdock starts it again after a
/// back-off, until a Stop (or a delete, the shutdown, the engine going away).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrashLoop {
    /// Deaths since the gateway last ran healthy for [`HEALTHY_RESET`].
    pub crashes: u32,
    /// When the next start is due; `None` while it runs (or the gateway runs).
    pub next_try: Option<DateTime<Utc>>,
    pub last_exit_code: Option<i32>,
    pub out_of_memory: bool,
    /// The gateway's last lines before the last death.
    pub last_logs: Vec<String>,
    /// The start in flight is this loop's (begun then), not the user's: its
    /// failure is one more death, not the end of the loop. Kept in the record, so
    /// a Clawdock that died in it counts it as a death at its next launch.
    pub reviving_since: Option<DateTime<Utc>>,
}

impl CrashLoop {
    fn pending(&self) -> bool {
        self.next_try.is_some()
    }

    fn reviving(&self) -> bool {
        self.reviving_since.is_some()
    }

    /// The loop as the record keeps it (not the lines: they are the engine's).
    fn kept(&self) -> CrashRecord {
        CrashRecord {
            crashes: self.crashes,
            next_try: self.next_try,
            last_exit_code: self.last_exit_code,
            out_of_memory: self.out_of_memory,
            reviving_since: self.reviving_since,
        }
    }

    fn from_kept(kept: &CrashRecord) -> Self {
        Self {
            crashes: kept.crashes,
            next_try: kept.next_try,
            last_exit_code: kept.last_exit_code,
            out_of_memory: kept.out_of_memory,
            last_logs: Vec::new(),
            reviving_since: kept.reviving_since,
        }
    }
}

/// What is known of an agent while the app runs, beside its saved record.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub activity: Option<Activity>,
    /// When this app last launched the container, to tell a late `died` of an
    /// earlier run from a real one.
    pub started_at: Option<DateTime<Utc>>,
    pub container: Container,
    /// The agent's container now, once known: events of any other (a replaced
    /// one's late `remove`) are not about this agent.
    pub container_id: Option<ContainerId>,
    /// The gateway answered `/readyz`.
    pub ready: bool,
    pub notice: Option<String>,
    /// The shutdown routine has taken this agent over: outcomes of operations
    /// still in flight no longer change what it decided.
    pub shutting_down: bool,
    /// Podman's own words behind the record's error, when the error is advice.
    pub error_details: Option<String>,
    /// The gateway keeps dying; Clawdock starts it again after a back-off.
    pub crash: Option<CrashLoop>,
    /// When the gateway last became healthy: a death after [`HEALTHY_RESET`] of
    /// health begins a new crash loop.
    pub up_since: Option<DateTime<Utc>>,
    /// The engine went away under the running agent: still wanted, an exit seen
    /// when it is back is no death, and a container found running again (a false
    /// alarm) is simply running.
    pub engine_away: bool,
    /// The engine went away while an operation held the agent: that operation's
    /// failing start (or check) is the loss, not a death or an error of the agent's.
    pub engine_lost_in_op: bool,
    /// The agent's disk use when last measured, in bytes.
    pub disk_used: Option<u64>,
    /// What the agent's `openclaw.json` says of its model and base URL (read at
    /// load, create and edit): shown in Settings, never the key.
    pub model_id: Option<String>,
    pub base_url: Option<String>,
    /// The registry has a newer build of the agent's image than the one it runs
    /// (asked at launch and about daily; cleared by an update).
    pub update_available: bool,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            activity: None,
            started_at: None,
            container: Container::Unknown,
            container_id: None,
            ready: false,
            notice: None,
            shutting_down: false,
            error_details: None,
            crash: None,
            up_since: None,
            engine_away: false,
            engine_lost_in_op: false,
            disk_used: None,
            model_id: None,
            base_url: None,
            update_available: false,
        }
    }
}

/// An agent: its saved record and what is known of it now.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentState {
    pub record: AgentRecord,
    pub live: Live,
}

/// A user operation beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    /// A start that first stops the running container (new settings).
    Restart,
    /// A newer image: the container made again from it (started if it ran).
    Update,
    Stop,
    Delete,
    /// A delete that a crash interrupted, finished at the next listing.
    ResumeDelete,
    /// The crash loop's own start, once its back-off has passed.
    Revive,
    /// A container found running that no operation started (at launch, or
    /// started outside Clawdock): running once its gateway answers.
    Verify,
}

/// Everything that can happen to an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Begin(Op),
    /// The container is about to be started (noted before `podman start`: a
    /// gateway that dies at once sends its `died` before the start returns).
    Launching {
        at: DateTime<Utc>,
        container_id: ContainerId,
    },
    /// A create or start ended with the gateway healthy.
    Started,
    /// A create or start failed.
    StartFailed {
        message: String,
        /// Podman's own words when `message` is advice drawn from them.
        details: Option<String>,
    },
    /// A create or start was cut short by the shutdown: not the agent's fault.
    Interrupted,
    /// A create, start or restart cancelled by the user; its container is gone.
    Cancelled,
    /// An operation ended without touching the container (an update that found
    /// nothing new, or failed before it changed anything).
    Ended,
    /// A stop ended with the container down.
    Stopped,
    /// A stop or delete failed; `seen` is what Podman says of the container now.
    OpFailed {
        message: String,
        seen: Option<Container>,
    },
    /// Podman said this of the agent's container (a listing, or what an
    /// operation found); `id` is the container's when one exists, `finished_at`
    /// when it last ended, where that was asked (an exit first seen at launch).
    Seen {
        container: Container,
        id: Option<ContainerId>,
        finished_at: Option<DateTime<Utc>>,
    },
    /// An event of a container of this agent; `at` is when, for events that
    /// carry a time this clock shares. Only the agent's current container counts.
    Event {
        container: Container,
        at: Option<DateTime<Utc>>,
        id: ContainerId,
    },
    /// Podman, asked just now (`inspect`), says this of the container: unlike a
    /// listing, its `created` is the truth even while an operation runs (a start
    /// that answered 0 but started nothing).
    Inspected {
        container: Container,
    },
    /// The gateway answered `/readyz`.
    GatewayReady,
    /// Found `creating` with no operation running: a crash cut the create short.
    FoundInterrupted,
    /// The agent moved to another host port (its old one was taken).
    PortMoved {
        port: u16,
    },
    /// The agent's provider settings were rewritten (`base_url`: the custom
    /// provider's, as Clawdock wrote it, which the record keeps).
    Edited {
        provider_type: Option<String>,
        notice: Option<String>,
        model_id: Option<String>,
        base_url: Option<String>,
    },
    /// The agent's container was made again with these limits.
    LimitsSet {
        memory_mib: u64,
        cpus: Option<f64>,
    },
    /// The agent's container was made again with a new gateway token (the old
    /// one leaked): the record keeps it from now on.
    TokenSet {
        token: String,
    },
    /// The next launch took note that the agent ran at the last quit.
    RestoreNoted,
    /// Podman's engine went away. In vm mode (the machine stopped, slept or
    /// crashed) the container is gone with it, whatever the last event said; in
    /// native mode (`containers_survive`) only the engine's service is, and the
    /// gateway serves on under conmon.
    EngineLost {
        containers_survive: bool,
    },
    ShutdownBegan,
    ShutdownEnded,
    /// An update rolled back from the image `image_id` (it is not tried again
    /// until a newer one appears); `None`: an update succeeded.
    ImageRejected {
        image_id: Option<String>,
    },
    /// A delete that cannot finish now (the engine is away): the agent stays
    /// hidden, marked `deleting`, until the next listing finishes it.
    DeletePostponed,
    /// The agent's registry was asked whether its image has a newer build.
    UpdateChecked {
        newer: bool,
    },
    /// The dead gateway's last lines, read after its death, for the view.
    CrashLogs {
        lines: Vec<String>,
    },
    /// A journaled operation wrote its plan (`Some`) or ended (`None`).
    Journaled(Option<Journal>),
    /// A journaled operation got this far.
    Reached(Step),
    /// A swap's new container became the agent's: its generation, image, limits
    /// and gateway token (in its environment) are the record's now, and the swap
    /// is committed, in one save: a crash cannot leave the record with a token
    /// the agent's container does not have.
    SwapCommitted {
        generation: String,
        image_id: String,
        memory_mib: u64,
        cpus: Option<f64>,
        token: String,
    },
    /// The agent's container is this generation (about to be made, or one of an
    /// older version seen the first time), made from this image (`None`: as
    /// before, or not known yet).
    Pinned {
        generation: Option<String>,
        image_id: Option<String>,
    },
    /// Asked to run while its container already does (a launch's restore): it is
    /// supervised from now on.
    WantRunning,
    /// A stop was asked; noted before it waits for the operation in flight, which
    /// then does not bring the gateway back (an update's rollback).
    StopAsked,
    /// The agent's disk limit changed (Clawdock enforces it; the container stays).
    DiskLimitSet {
        disk_mib: u64,
    },
    /// The agent's disk use, as just measured.
    DiskMeasured {
        bytes: u64,
    },
    /// A stop for the disk limit ended with the container down: said as the
    /// agent's error, and not started again until the user does.
    StoppedOverDisk {
        message: String,
    },
    /// A container found running answered: running, said quietly (it was
    /// running before, not just started).
    Verified,
    /// A container found running did not answer within the health budget: it was
    /// stopped, and counts as a death of the crash loop.
    VerifyFailed {
        message: String,
    },
}

/// What the caller must do after a transition, besides saving and announcing the
/// new state (which follow from what changed).
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Tell listeners why, beyond the state (a notification).
    Announce(Change),
    /// The shutdown must stop this agent's container.
    StopForShutdown,
    /// Start the agent again after `after` (the crash loop's back-off), unless the
    /// loop has moved on by then (the start due at `due` is the one to run).
    Revive { after: Duration, due: DateTime<Utc> },
    /// The pending start of the crash loop is off (a stop, delete, shutdown...).
    CancelRevive,
    /// A container runs that no operation started: ask its gateway before it is
    /// shown running.
    Verify,
}

pub const INTERRUPTED_CREATE: &str =
    "Creation was interrupted before it finished; start the agent to try again, or delete it.";
pub const ENGINE_LOST: &str =
    "Podman's machine stopped; the agent starts again when Podman is back (Start Podman).";
pub const REMOVED_OUTSIDE: &str =
    "The container was removed outside Clawdock; start the agent to create it again.";
pub const ENGINE_UNREACHABLE: &str =
    "Podman's engine does not answer; the gateway keeps running, and Clawdock reaches the engine again by itself.";

impl AgentState {
    pub fn new(record: AgentRecord) -> Self {
        Self {
            record,
            live: Live::default(),
        }
    }

    /// An agent as loaded at launch, at `now`: what ran before is not known to
    /// run (nothing is shown running before its gateway answers); the crash loop
    /// and its back-off go on where they were, and a start of the loop that a
    /// death of Clawdock cut short counts as a death, so relaunching never
    /// restarts the back-off (the loop's next try is scheduled once the engine
    /// was looked at: `Agents::resume_crash_loops`).
    pub fn loaded(mut record: AgentRecord, now: DateTime<Utc>) -> Self {
        if record.status == AgentStatus::Running {
            record.status = AgentStatus::Stopped;
        }
        let mut live = Live {
            up_since: record.healthy_since,
            crash: record.crash.as_ref().map(CrashLoop::from_kept),
            ..Live::default()
        };
        if let Some(c) = live.crash.as_mut().filter(|c| c.reviving()) {
            let (code, oom) = (c.last_exit_code, c.out_of_memory);
            count_death(c, code, oom, now);
        }
        let mut s = Self { record, live };
        s.keep();
        s
    }

    /// Copies what must outlive this process from the live state into the record.
    fn keep(&mut self) {
        self.record.crash = self.live.crash.as_ref().map(CrashLoop::kept);
        self.record.healthy_since = self.live.up_since;
    }

    /// True while the agent has, or is getting, a running container.
    fn is_up(&self) -> bool {
        self.live.container == Container::Running
            || self.record.status == AgentStatus::Running
            || matches!(
                self.live.activity,
                Some(
                    Activity::Creating
                        | Activity::Starting
                        | Activity::Restarting
                        | Activity::Updating
                )
            )
    }

    /// True while a start of the crash loop is waiting for its back-off.
    fn revive_pending(&self) -> bool {
        self.live.crash.as_ref().is_some_and(CrashLoop::pending)
    }

    /// The view as of now.
    pub fn view(&self) -> AgentView {
        self.view_at(Utc::now())
    }

    /// The view as of `now` (the crash loop's countdown depends on it).
    pub fn view_at(&self, now: DateTime<Utc>) -> AgentView {
        let r = &self.record;
        let running = r.status == AgentStatus::Running;
        let healthy_long = running
            && self
                .live
                .up_since
                .is_some_and(|u| now - u >= chrono_of(HEALTHY_RESET));
        let crash_loop = self
            .live
            .crash
            .as_ref()
            .filter(|_| !healthy_long)
            .map(|c| crash_view(c, now));
        AgentView {
            id: r.id,
            name: r.name.clone(),
            status: r.status,
            port: r.port,
            dir: r.dir.clone(),
            created_at: r.created_at,
            error: r.error.clone(),
            error_details: r.error.as_ref().and(self.live.error_details.clone()),
            provider_type: r.provider_type.clone(),
            activity: self.live.activity,
            ready: running && self.live.ready,
            gateway_url: running.then(|| format!("ws://127.0.0.1:{}", r.port)),
            exit_code: match self.live.container {
                Container::Exited(code) => code,
                Container::OutOfMemory => Some(137),
                _ => None,
            },
            image: r.image.clone(),
            notice: self.live.notice.clone(),
            crash_loop,
            memory_mib: r.memory_mib,
            cpus: r.cpus,
            disk_mib: r.disk_mib,
            disk_used_mib: self.live.disk_used.map(|b| b.div_ceil(1024 * 1024)),
            model_id: self.live.model_id.clone(),
            base_url: self.live.base_url.clone(),
            update_available: self.live.update_available,
        }
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn crash_view(c: &CrashLoop, now: DateTime<Utc>) -> CrashLoopView {
    let next_try_in_secs = c.next_try.map(|at| {
        let ms = (at - now).num_milliseconds().max(0) as u64;
        ms.div_ceil(1000)
    });
    let times = if c.crashes == 1 {
        "once".to_string()
    } else {
        format!("{} times", c.crashes)
    };
    let summary = match (next_try_in_secs, c.reviving()) {
        (Some(secs), _) => format!("crashed {times}; next try in {secs} s"),
        (None, true) => format!("crashed {times}; starting again"),
        (None, false) => format!("crashed {times}; running again"),
    };
    CrashLoopView {
        crashes: c.crashes,
        next_try_at: c.next_try,
        next_try_in_secs,
        last_exit_code: c.last_exit_code,
        out_of_memory: c.out_of_memory,
        last_logs: c.last_logs.clone(),
        summary,
    }
}

/// Applies one input at `now`. The only place an agent's status, wish or error
/// changes.
pub fn apply(s: &mut AgentState, input: Input, now: DateTime<Utc>) -> Vec<Effect> {
    let mut effects = Vec::new();
    if let Input::Begin(Op::Start | Op::Restart | Op::Stop | Op::Delete) = input {
        // The user's word ends the crash loop (a start begins afresh).
        if s.live.crash.take().is_some_and(|c| c.pending()) {
            effects.push(Effect::CancelRevive);
        }
    }
    if let Input::Begin(_) = input {
        s.live.engine_away = false;
        s.live.engine_lost_in_op = false;
    }
    let start_ended_without_engine = s.live.engine_lost_in_op
        && !s.live.shutting_down
        && !s.record.deleting
        && match input {
            Input::StartFailed { .. } | Input::VerifyFailed { .. } => true,
            Input::Ended => s.live.activity == Some(Activity::Starting),
            _ => false,
        };
    if start_ended_without_engine {
        s.live.activity = None;
        s.live.engine_lost_in_op = false;
        engine_gone(s, &mut effects);
        s.keep();
        return effects;
    }
    let r = &mut s.record;
    let live = &mut s.live;
    match input {
        Input::Begin(Op::Revive) => {
            live.activity = Some(Activity::Starting);
            r.running_at_quit = false;
            if let Some(c) = live.crash.as_mut() {
                c.next_try = None;
                c.reviving_since = Some(now);
            }
        }
        Input::Begin(Op::Verify) => live.activity = Some(Activity::Starting),
        Input::Begin(op @ (Op::Start | Op::Restart)) => {
            live.activity = Some(if op == Op::Restart {
                Activity::Restarting
            } else {
                Activity::Starting
            });
            r.wanted = Wanted::Running;
            r.error = None;
            live.error_details = None;
            r.running_at_quit = false;
            if live.notice.as_deref() == Some(ENGINE_LOST) {
                live.notice = None;
            }
        }
        Input::Begin(Op::Stop) => {
            live.activity = Some(Activity::Stopping);
            r.wanted = Wanted::Stopped;
            r.running_at_quit = false;
            if live.notice.as_deref() == Some(ENGINE_LOST) {
                live.notice = None;
            }
        }
        Input::Begin(Op::Update) => {
            live.activity = Some(Activity::Updating);
            r.error = None;
        }
        Input::Begin(Op::Delete) => {
            live.activity = Some(Activity::Deleting);
            r.deleting = true;
            r.wanted = Wanted::Stopped;
        }
        Input::Begin(Op::ResumeDelete) => live.activity = Some(Activity::Deleting),
        Input::Launching { at, container_id } => {
            live.container = Container::Running;
            live.container_id = Some(container_id);
            live.started_at = Some(at);
        }
        Input::Started | Input::StartFailed { .. } | Input::Interrupted | Input::Cancelled
            if live.shutting_down =>
        {
            // The shutdown owns the agent now; it records how it ends.
            if r.status == AgentStatus::Creating {
                r.status = AgentStatus::Stopped;
            }
        }
        Input::Started => {
            live.activity = None;
            live.up_since = Some(now);
            if let Some(c) = live.crash.as_mut() {
                c.reviving_since = None;
            }
            r.status = AgentStatus::Running;
            r.error = None;
            r.wanted = Wanted::Running;
            effects.push(Effect::Announce(Change::Ready));
        }
        Input::StartFailed { message, details }
            if live.crash.as_ref().is_some_and(CrashLoop::reviving) =>
        {
            // The loop's own start failed: one more death, and another try later.
            live.activity = None;
            live.ready = false;
            live.error_details = details;
            r.status = AgentStatus::Error;
            r.error = Some(message);
            let code = match live.container {
                Container::Exited(code) => code,
                Container::OutOfMemory => Some(137),
                _ => None,
            };
            let oom = live.container == Container::OutOfMemory;
            if let Some(c) = live.crash.as_mut() {
                effects.push(count_death(c, code, oom, now));
            }
        }
        Input::StartFailed { message, details } => {
            live.crash = None;
            live.activity = None;
            live.ready = false;
            live.error_details = details;
            r.status = AgentStatus::Error;
            r.error = Some(message.clone());
            r.wanted = Wanted::Stopped;
            effects.push(Effect::Announce(Change::StartFailed { message }));
        }
        Input::Interrupted => {
            live.activity = None;
            if r.status == AgentStatus::Creating {
                r.status = AgentStatus::Stopped;
            }
        }
        Input::Ended => {
            if !live.shutting_down {
                live.activity = None;
                // A death noted while the operation held the agent is acted on
                // now that it ended.
                let noted = live.container;
                observe(s, noted, None, now, &mut effects);
            }
        }
        Input::Cancelled => {
            live.crash = None;
            live.activity = None;
            live.ready = false;
            r.status = AgentStatus::Stopped;
            r.error = None;
            r.wanted = Wanted::Stopped;
        }
        Input::Stopped => {
            live.activity = None;
            live.ready = false;
            r.status = AgentStatus::Stopped;
            r.error = None;
            if live.container == Container::Running {
                live.container = Container::Exited(None);
            }
        }
        Input::OpFailed { message, seen } => {
            live.activity = None;
            r.deleting = false;
            if let Some(seen) = seen {
                live.container = seen;
            }
            r.status = if live.container == Container::Running {
                AgentStatus::Running
            } else {
                AgentStatus::Error
            };
            r.error = Some(message);
        }
        Input::Seen {
            container,
            id,
            finished_at,
        } => {
            if container == Container::Missing {
                live.container_id = None;
            } else if id.is_some() {
                live.container_id = id;
            }
            if live.notice.as_deref() == Some(ENGINE_UNREACHABLE) {
                live.notice = None;
            }
            observe(s, container, finished_at, now, &mut effects);
        }
        Input::Event { container, at, id } => {
            if live
                .container_id
                .as_ref()
                .is_none_or(|current| *current == id)
            {
                observe(s, container, at, now, &mut effects);
            }
        }
        Input::Inspected { container } => {
            if live.activity.is_some() || r.deleting || live.shutting_down {
                live.container = container;
            } else {
                observe(s, container, None, now, &mut effects);
            }
        }
        Input::ImageRejected { image_id } => {
            // An update that took (`None`) runs the newest build: no notice.
            if image_id.is_none() {
                live.update_available = false;
            }
            r.rejected_image = image_id;
        }
        Input::DeletePostponed => {
            if r.deleting {
                live.activity = None;
            }
        }
        Input::UpdateChecked { newer } => live.update_available = newer,
        Input::CrashLogs { lines } => {
            if let Some(c) = live.crash.as_mut() {
                c.last_logs = lines;
            }
        }
        Input::GatewayReady => {
            if live.container == Container::Running {
                live.ready = true;
            }
        }
        Input::FoundInterrupted => {
            if live.activity.is_none() && r.status == AgentStatus::Creating {
                r.status = AgentStatus::Error;
                r.wanted = Wanted::Stopped;
                r.error = Some(INTERRUPTED_CREATE.into());
            }
        }
        Input::PortMoved { port } => r.port = port,
        Input::Edited {
            provider_type,
            notice,
            model_id,
            base_url,
        } => {
            r.provider_type = provider_type;
            r.provider_base_url.clone_from(&base_url);
            live.notice = notice;
            live.model_id = model_id;
            live.base_url = base_url;
        }
        Input::LimitsSet { memory_mib, cpus } => {
            r.memory_mib = Some(memory_mib);
            r.cpus = cpus;
        }
        Input::TokenSet { token } => r.token = token,
        Input::RestoreNoted => r.running_at_quit = false,
        Input::EngineLost {
            containers_survive: true,
        } => {
            // The gateway serves on; only changes to it wait for the engine.
            if s.is_up() && !s.record.deleting && !s.live.shutting_down {
                s.live.notice = Some(ENGINE_UNREACHABLE.into());
            }
        }
        Input::EngineLost {
            containers_survive: false,
        } => {
            let up = s.is_up() || s.revive_pending();
            s.live.ready = false;
            if s.live.activity.is_some() || s.record.deleting || s.live.shutting_down {
                // The operation in flight meets the lost engine itself; a start's
                // failure then is this loss (see `start_ended_without_engine`).
                s.live.container = Container::Unknown;
                s.live.engine_lost_in_op = s.live.activity.is_some();
            } else if up {
                engine_gone(s, &mut effects);
            }
        }
        Input::ShutdownBegan => {
            if !r.deleting {
                live.shutting_down = true;
                if live.engine_away {
                    // Remembered at the loss; nothing runs to stop.
                    r.wanted = Wanted::Stopped;
                } else if s.revive_pending() {
                    // Nothing runs to stop. The loop is kept: the next launch
                    // tries again when its back-off says, not at once.
                    s.record.wanted = Wanted::Stopped;
                    effects.push(Effect::CancelRevive);
                } else if s.is_up() {
                    let r = &mut s.record;
                    r.running_at_quit = r.wanted == Wanted::Running;
                    r.wanted = Wanted::Stopped;
                    s.live.activity = Some(Activity::Stopping);
                    effects.push(Effect::StopForShutdown);
                }
            }
        }
        Input::Journaled(journal) => r.journal = journal,
        Input::Reached(step) => {
            if let Some(journal) = r.journal.as_mut() {
                journal.step = step;
            }
        }
        Input::SwapCommitted {
            generation,
            image_id,
            memory_mib,
            cpus,
            token,
        } => {
            r.token = token;
            r.generation = Some(generation);
            r.image_id = Some(image_id);
            r.memory_mib = Some(memory_mib);
            r.cpus = cpus;
            if let Some(journal) = r.journal.as_mut() {
                journal.step = Step::Committed;
            }
        }
        Input::Pinned {
            generation,
            image_id,
        } => {
            r.generation = generation;
            if image_id.is_some() {
                r.image_id = image_id;
            }
        }
        Input::WantRunning => {
            r.wanted = Wanted::Running;
            r.running_at_quit = false;
        }
        Input::StopAsked => r.wanted = Wanted::Stopped,
        Input::DiskLimitSet { disk_mib } => r.disk_mib = Some(disk_mib),
        Input::DiskMeasured { bytes } => live.disk_used = Some(bytes),
        Input::StoppedOverDisk { message } => {
            live.activity = None;
            live.ready = false;
            live.crash = None;
            r.status = AgentStatus::Error;
            r.error = Some(message.clone());
            r.wanted = Wanted::Stopped;
            if live.container == Container::Running {
                live.container = Container::Exited(None);
            }
            effects.push(Effect::Announce(Change::OverDisk { message }));
        }
        Input::Verified => {
            live.activity = None;
            live.up_since.get_or_insert(now);
            r.status = AgentStatus::Running;
            r.error = None;
            r.wanted = Wanted::Running;
            r.running_at_quit = false;
        }
        Input::VerifyFailed { message } => {
            live.activity = None;
            live.ready = false;
            r.status = AgentStatus::Error;
            r.error = Some(message);
            let code = match live.container {
                Container::Exited(code) => code,
                _ => None,
            };
            let crash = match live.crash.take() {
                Some(c) => live.crash.insert(c),
                None => {
                    effects.push(Effect::Announce(Change::Died { exit_code: code }));
                    live.crash.insert(CrashLoop::default())
                }
            };
            effects.push(count_death(crash, code, false, now));
        }
        Input::ShutdownEnded => {
            if !r.deleting {
                live.activity = None;
                live.ready = false;
                if r.status != AgentStatus::Error {
                    r.status = AgentStatus::Stopped;
                }
                if live.container == Container::Running {
                    live.container = Container::Exited(None);
                }
            }
        }
    }
    if s.live.activity.is_none() {
        s.live.engine_lost_in_op = false;
    }
    s.keep();
    effects
}

/// The engine went away under an agent that ran or was being started: stopped,
/// remembered to start again when the engine is back, still wanted (a false alarm
/// changes nothing the user asked for), and a late exit seen then is no death.
fn engine_gone(s: &mut AgentState, effects: &mut Vec<Effect>) {
    if s.revive_pending() {
        effects.push(Effect::CancelRevive);
    }
    let r = &mut s.record;
    let live = &mut s.live;
    r.running_at_quit = r.wanted == Wanted::Running;
    r.status = AgentStatus::Stopped;
    // A death seen just before (the machine's stop kills the containers before
    // the engine is found gone) was the loss too.
    r.error = None;
    live.error_details = None;
    live.engine_away = true;
    live.container = Container::Unknown;
    live.notice = Some(ENGINE_LOST.into());
    live.crash = None;
    effects.push(Effect::Announce(Change::EngineLost));
}

/// What Podman says of the container, applied: while an operation runs only the
/// container is noted (the operation decides the status); otherwise the status
/// follows, and an exit nobody asked for is a death, which the crash loop starts
/// again after its back-off (announced once per loop).
fn observe(
    s: &mut AgentState,
    seen: Container,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    effects: &mut Vec<Effect>,
) {
    let pending = s.revive_pending();
    let r = &mut s.record;
    let live = &mut s.live;
    let exited = matches!(seen, Container::Exited(_) | Container::OutOfMemory);
    if let (true, Some(at), Some(started)) = (exited, at, live.started_at) {
        // A `died` from before the last launch belongs to an earlier run: events
        // can arrive after the start they precede has finished.
        if at < started {
            return;
        }
    }
    if live.activity.is_some() || r.deleting || live.shutting_down {
        // A listing taken while an operation starts the container may still show
        // it `created`; only real exits count then.
        if seen != Container::Exited(None) {
            live.container = seen;
        }
        return;
    }
    if exited && pending {
        // The death the loop already counted, seen again (a listing).
        live.container = seen;
        return;
    }
    if live.engine_away {
        live.container = seen;
        live.ready = false;
        if seen == Container::Running {
            // A false alarm, or the engine back with the container: running.
            live.engine_away = false;
            r.running_at_quit = false;
            r.status = AgentStatus::Running;
            if live.notice.as_deref() == Some(ENGINE_LOST) {
                live.notice = None;
            }
        }
        return;
    }
    let was = live.container;
    live.container = seen;
    match seen {
        Container::Running if was != Container::Running => {
            // Running, and no operation of Clawdock's started it (a launch found
            // it, or it was started outside): shown running once its gateway
            // answers, not before.
            live.activity = Some(Activity::Starting);
            effects.push(Effect::Verify);
        }
        Container::Running => {
            // Seen running while known to run (a `start` event that arrives late,
            // a listing): an operation's failure since (a delete the engine
            // refused) stays; the error of an end before it is over.
            if r.status != AgentStatus::Running {
                r.error = None;
            }
            r.status = AgentStatus::Running;
        }
        Container::Exited(_) | Container::OutOfMemory => {
            live.ready = false;
            if r.wanted == Wanted::Running {
                let code = s.view_at(now).exit_code;
                let r = &mut s.record;
                let live = &mut s.live;
                r.status = AgentStatus::Error;
                r.error = Some(if was == Container::Unknown {
                    // The first look of this launch: it ended while Clawdock was
                    // closed (or had crashed), and is told so, with when.
                    died_while_closed(seen, r.memory_mib, at)
                } else {
                    death_message(seen, r.memory_mib)
                });
                let healthy_long = live
                    .up_since
                    .is_some_and(|u| now - u >= chrono_of(HEALTHY_RESET));
                let crash = match live.crash.take() {
                    Some(c) if !healthy_long => live.crash.insert(c),
                    _ => {
                        // A new loop: the one notification it gets.
                        effects.push(Effect::Announce(Change::Died { exit_code: code }));
                        live.crash.insert(CrashLoop::default())
                    }
                };
                let oom = seen == Container::OutOfMemory;
                effects.push(match at.filter(|_| was == Container::Unknown) {
                    Some(died) => count_death_at(crash, code, oom, died, now),
                    None => count_death(crash, code, oom, now),
                });
            } else if r.status != AgentStatus::Error {
                r.status = AgentStatus::Stopped;
            }
        }
        Container::Missing => {
            live.ready = false;
            if r.wanted == Wanted::Running {
                r.status = AgentStatus::Error;
                r.error = Some(REMOVED_OUTSIDE.into());
                r.wanted = Wanted::Stopped;
                if live.crash.take().is_some_and(|c| c.pending()) {
                    effects.push(Effect::CancelRevive);
                }
                effects.push(Effect::Announce(Change::Died { exit_code: None }));
            } else if r.status == AgentStatus::Running {
                r.status = AgentStatus::Stopped;
            }
        }
        Container::Unknown => {}
    }
}

/// One more death of a crash loop: counted, and the next start scheduled.
fn count_death(c: &mut CrashLoop, code: Option<i32>, oom: bool, now: DateTime<Utc>) -> Effect {
    c.crashes += 1;
    c.last_exit_code = code;
    c.out_of_memory = oom;
    c.reviving_since = None;
    let after = revive_delay(c.crashes);
    let due = now + chrono_of(after);
    c.next_try = Some(due);
    Effect::Revive { after, due }
}

/// [`count_death`] of a death at `died` (before `now`): the back-off runs from
/// the death, so a death long past is tried again at once.
fn count_death_at(
    c: &mut CrashLoop,
    code: Option<i32>,
    oom: bool,
    died: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Effect {
    let Effect::Revive { due, .. } = count_death(c, code, oom, died.min(now)) else {
        unreachable!("count_death schedules a revive")
    };
    let after = (due - now).to_std().unwrap_or_default();
    Effect::Revive { after, due }
}

/// Why a gateway nobody stopped is gone, in a sentence. Exit code 137 is a
/// SIGKILL: with a memory limit set and no stop asked for, the kernel's OOM killer
/// is the likely one, even where Podman cannot tell (`OOMKilled` stays false on
/// cgroup v1 hosts).
pub fn death_message(seen: Container, memory_mib: Option<u64>) -> String {
    let limit = memory_mib.map_or_else(|| "unknown".into(), size_words);
    match seen {
        Container::OutOfMemory => {
            format!("The gateway ran out of memory (limit {limit}): raise it in Settings.")
        }
        Container::Exited(Some(137)) => format!(
            "The gateway was killed (exit code 137). If nobody killed it, it used more than its memory limit ({})."
            , memory_mib.map_or_else(|| "its limit".into(), size_words)
        ),
        Container::Exited(code) => format!(
            "The gateway stopped on its own (exit code {}).",
            code.map_or_else(|| "unknown".into(), |c| c.to_string())
        ),
        Container::Unknown | Container::Missing | Container::Running => {
            "The gateway stopped on its own.".into()
        }
    }
}

/// [`death_message`] of a death while Clawdock was closed, at `at` when known.
pub fn died_while_closed(
    seen: Container,
    memory_mib: Option<u64>,
    at: Option<DateTime<Utc>>,
) -> String {
    let when = at.map_or_else(String::new, |at| {
        format!(
            " at {}",
            at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S")
        )
    });
    format!(
        "While Clawdock was closed{when}: {}",
        death_message(seen, memory_mib)
    )
}

/// A memory size as people say it: "2 GiB", "768 MiB".
fn size_words(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .expect("time")
    }

    /// A compact description of a state: status, wanted, activity, container.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Shape {
        status: AgentStatus,
        wanted: Wanted,
        activity: Option<Activity>,
        container: Container,
    }

    use Activity as A;
    use AgentStatus as S;
    use Container as C;
    use Wanted as W;

    fn shape(status: S, wanted: W, activity: Option<A>, container: C) -> Shape {
        Shape {
            status,
            wanted,
            activity,
            container,
        }
    }

    fn state(from: Shape) -> AgentState {
        let record = AgentRecord {
            deleting: from.activity == Some(A::Deleting),
            id: uuid::Uuid::nil(),
            status: from.status,
            created_at: t(0),
            wanted: from.wanted,
            ..crate::store::sample_record("a")
        };
        let mut s = AgentState::new(record);
        s.live.activity = from.activity;
        s.live.container = from.container;
        if from.container != C::Missing {
            s.live.container_id = Some(cid("c1"));
        }
        s
    }

    fn shape_of(s: &AgentState) -> Shape {
        shape(
            s.record.status,
            s.record.wanted,
            s.live.activity,
            s.live.container,
        )
    }

    fn apply_now(s: &mut AgentState, input: Input) -> Vec<Effect> {
        apply(s, input, t(100))
    }

    fn died(code: i32) -> Input {
        Input::Seen {
            container: C::Exited(Some(code)),
            id: None,
            finished_at: None,
        }
    }

    fn seen(container: C) -> Input {
        Input::Seen {
            container,
            id: None,
            finished_at: None,
        }
    }

    fn cid(id: &str) -> ContainerId {
        ContainerId(id.into())
    }

    fn event(container: C, at: DateTime<Utc>) -> Input {
        Input::Event {
            container,
            at: Some(at),
            id: cid("c1"),
        }
    }

    /// Each row: where an agent is, what happens, where it ends, and whether a
    /// change is announced.
    #[test]
    fn transitions() {
        let ready = vec![Effect::Announce(Change::Ready)];
        let rows: Vec<(&str, Shape, Input, Shape, Vec<Effect>)> = vec![
            (
                "start begins",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                Input::Begin(Op::Start),
                shape(
                    S::Stopped,
                    W::Running,
                    Some(A::Starting),
                    C::Exited(Some(0)),
                ),
                vec![],
            ),
            (
                "restart begins like a start, said as a restart",
                shape(S::Running, W::Running, None, C::Running),
                Input::Begin(Op::Restart),
                shape(S::Running, W::Running, Some(A::Restarting), C::Running),
                vec![],
            ),
            (
                "an update with nothing new leaves the agent as it was",
                shape(S::Running, W::Running, Some(A::Updating), C::Running),
                Input::Ended,
                shape(S::Running, W::Running, None, C::Running),
                vec![],
            ),
            (
                "a cancelled create is stopped, not an error",
                shape(S::Creating, W::Running, Some(A::Creating), C::Missing),
                Input::Cancelled,
                shape(S::Stopped, W::Stopped, None, C::Missing),
                vec![],
            ),
            (
                "a cancelled start is stopped and not wanted running",
                shape(S::Error, W::Running, Some(A::Starting), C::Missing),
                Input::Cancelled,
                shape(S::Stopped, W::Stopped, None, C::Missing),
                vec![],
            ),
            (
                "launch notes the container up before podman answers",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Missing),
                Input::Launching {
                    at: t(10),
                    container_id: cid("c1"),
                },
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                vec![],
            ),
            (
                "healthy: running",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                Input::Started,
                shape(S::Running, W::Running, None, C::Running),
                ready.clone(),
            ),
            (
                "create healthy: running",
                shape(S::Creating, W::Running, Some(A::Creating), C::Running),
                Input::Started,
                shape(S::Running, W::Running, None, C::Running),
                ready,
            ),
            (
                "start failed: error, not wanted any more",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Missing),
                Input::StartFailed {
                    message: "boom".into(),
                    details: None,
                },
                shape(S::Error, W::Stopped, None, C::Missing),
                vec![Effect::Announce(Change::StartFailed {
                    message: "boom".into(),
                })],
            ),
            (
                "stop begins",
                shape(S::Running, W::Running, None, C::Running),
                Input::Begin(Op::Stop),
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                vec![],
            ),
            (
                "stopped",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Input::Stopped,
                shape(S::Stopped, W::Stopped, None, C::Exited(None)),
                vec![],
            ),
            (
                "a death while an operation runs only notes the container",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                died(143),
                shape(
                    S::Running,
                    W::Stopped,
                    Some(A::Stopping),
                    C::Exited(Some(143)),
                ),
                vec![],
            ),
            (
                "a `created` listing during a start is not an exit",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                seen(C::Exited(None)),
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                vec![],
            ),
            (
                "an inspect during a start is the truth, `created` included",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                Input::Inspected {
                    container: C::Exited(None),
                },
                shape(S::Stopped, W::Running, Some(A::Starting), C::Exited(None)),
                vec![],
            ),
            (
                "a death nobody asked for: notified, started again in 1 s",
                shape(S::Running, W::Running, None, C::Running),
                died(137),
                shape(S::Error, W::Running, None, C::Exited(Some(137))),
                vec![
                    Effect::Announce(Change::Died {
                        exit_code: Some(137),
                    }),
                    Effect::Revive {
                        after: Duration::from_secs(1),
                        due: t(101),
                    },
                ],
            ),
            (
                "an event of another container (a replaced one) is not this agent's",
                shape(S::Running, W::Running, None, C::Running),
                Input::Event {
                    container: C::Missing,
                    at: None,
                    id: cid("old"),
                },
                shape(S::Running, W::Running, None, C::Running),
                vec![],
            ),
            (
                "a postponed delete stays hidden and idle",
                shape(S::Stopped, W::Stopped, Some(A::Deleting), C::Unknown),
                Input::DeletePostponed,
                shape(S::Stopped, W::Stopped, None, C::Unknown),
                vec![],
            ),
            (
                "an exit after a stop is no death",
                shape(S::Stopped, W::Stopped, None, C::Exited(None)),
                died(0),
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                vec![],
            ),
            (
                "removed outside while wanted",
                shape(S::Running, W::Running, None, C::Running),
                seen(C::Missing),
                shape(S::Error, W::Stopped, None, C::Missing),
                vec![Effect::Announce(Change::Died { exit_code: None })],
            ),
            (
                "removed outside while stopped",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                seen(C::Missing),
                shape(S::Stopped, W::Stopped, None, C::Missing),
                vec![],
            ),
            (
                "started outside Clawdock: running once its gateway answers",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                seen(C::Running),
                shape(S::Stopped, W::Stopped, Some(A::Starting), C::Running),
                vec![Effect::Verify],
            ),
            (
                "found running at launch: not shown running before it answers",
                shape(S::Stopped, W::Running, None, C::Unknown),
                seen(C::Running),
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                vec![Effect::Verify],
            ),
            (
                "it answered: running, quietly",
                shape(S::Stopped, W::Stopped, Some(A::Starting), C::Running),
                Input::Verified,
                shape(S::Running, W::Running, None, C::Running),
                vec![],
            ),
            (
                "a failed stop of a container still up stays running",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Input::OpFailed {
                    message: "Stop failed".into(),
                    seen: Some(C::Running),
                },
                shape(S::Running, W::Stopped, None, C::Running),
                vec![],
            ),
            (
                "a failed delete of a container gone is an error",
                shape(S::Stopped, W::Stopped, Some(A::Deleting), C::Running),
                Input::OpFailed {
                    message: "Delete failed".into(),
                    seen: Some(C::Exited(Some(1))),
                },
                shape(S::Error, W::Stopped, None, C::Exited(Some(1))),
                vec![],
            ),
            (
                "a create a crash cut short",
                shape(S::Creating, W::Running, None, C::Missing),
                Input::FoundInterrupted,
                shape(S::Error, W::Stopped, None, C::Missing),
                vec![],
            ),
            (
                "a create still running is not cut short",
                shape(S::Creating, W::Running, Some(A::Creating), C::Missing),
                Input::FoundInterrupted,
                shape(S::Creating, W::Running, Some(A::Creating), C::Missing),
                vec![],
            ),
            (
                "shutdown takes a running agent",
                shape(S::Running, W::Running, None, C::Running),
                Input::ShutdownBegan,
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                vec![Effect::StopForShutdown],
            ),
            (
                "shutdown takes an agent being started",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Missing),
                Input::ShutdownBegan,
                shape(S::Stopped, W::Stopped, Some(A::Stopping), C::Missing),
                vec![Effect::StopForShutdown],
            ),
            (
                "shutdown leaves a stopped agent alone",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                Input::ShutdownBegan,
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                vec![],
            ),
            (
                "the engine goes away under a running agent: still wanted",
                shape(S::Running, W::Running, None, C::Running),
                Input::EngineLost {
                    containers_survive: false,
                },
                shape(S::Stopped, W::Running, None, C::Unknown),
                vec![Effect::Announce(Change::EngineLost)],
            ),
            (
                "the engine goes away under a stopped agent",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                Input::EngineLost {
                    containers_survive: false,
                },
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                vec![],
            ),
            (
                "the engine goes away during a start: the start meets it",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                Input::EngineLost {
                    containers_survive: false,
                },
                shape(S::Stopped, W::Running, Some(A::Starting), C::Unknown),
                vec![],
            ),
            (
                "shutdown ends: stopped",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Input::ShutdownEnded,
                shape(S::Stopped, W::Stopped, None, C::Exited(None)),
                vec![],
            ),
        ];
        for (name, from, input, to, expected) in rows {
            let mut s = state(from);
            let effects = apply(&mut s, input, t(100));
            assert_eq!(shape_of(&s), to, "{name}");
            assert_eq!(effects, expected, "{name}: every effect, in order");
        }
    }

    /// Fixed in 8b74d82: the `died` of an earlier stop arriving after the next
    /// start began must not fail that start or mark the agent dead.
    #[test]
    fn a_late_died_from_before_the_launch_is_ignored() {
        let mut s = state(shape(S::Stopped, W::Running, Some(A::Starting), C::Missing));
        apply_now(
            &mut s,
            Input::Launching {
                at: t(10),
                container_id: cid("c1"),
            },
        );
        apply_now(&mut s, Input::Started);
        let late = event(C::Exited(Some(143)), t(9));
        assert!(apply_now(&mut s, late).is_empty());
        assert_eq!(
            shape_of(&s),
            shape(S::Running, W::Running, None, C::Running)
        );
        let real = event(C::Exited(Some(1)), t(11));
        assert_eq!(
            apply_now(&mut s, real),
            vec![
                Effect::Announce(Change::Died { exit_code: Some(1) }),
                Effect::Revive {
                    after: FIRST_REVIVE,
                    due: t(101)
                }
            ]
        );
        assert_eq!(s.record.status, S::Error);
    }

    /// Fault (seen by the fault suite once container work went to the engine's
    /// API): the `start` event of a container arrived after a delete of it had
    /// failed, and cleared the delete's error though nothing had changed.
    #[test]
    fn a_late_start_of_a_running_container_keeps_the_error_of_a_failed_delete() {
        let mut s = state(shape(S::Running, W::Running, Some(A::Deleting), C::Running));
        apply_now(
            &mut s,
            Input::OpFailed {
                message: "Delete failed: refused".into(),
                seen: Some(C::Running),
            },
        );
        assert!(apply_now(&mut s, event(C::Running, t(9))).is_empty());
        assert_eq!(s.record.error.as_deref(), Some("Delete failed: refused"));
        assert_eq!(
            shape_of(&s),
            shape(S::Running, W::Running, None, C::Running)
        );
        // A container that ended and runs again is another story: once its
        // gateway answers, the error goes.
        apply_now(&mut s, event(C::Exited(Some(1)), t(11)));
        assert_eq!(
            apply_now(&mut s, event(C::Running, t(12))),
            vec![Effect::Verify]
        );
        apply_now(&mut s, Input::Verified);
        assert_eq!(s.record.error, None);
    }

    /// Quit during a start: the start's end (success, failure or interruption)
    /// neither saves a shutdown error nor takes the agent back from the shutdown,
    /// and the agent is remembered to start again at the next launch.
    #[test]
    fn outcomes_after_the_shutdown_began_change_nothing() {
        for outcome in [
            Input::Started,
            Input::StartFailed {
                message: "Clawdock is shutting down.".into(),
                details: None,
            },
            Input::Interrupted,
        ] {
            let mut s = state(shape(S::Stopped, W::Running, Some(A::Starting), C::Running));
            apply_now(&mut s, Input::ShutdownBegan);
            assert!(apply_now(&mut s, outcome.clone()).is_empty(), "{outcome:?}");
            apply_now(&mut s, Input::ShutdownEnded);
            assert_eq!(s.record.status, S::Stopped, "{outcome:?}");
            assert_eq!(s.record.error, None, "{outcome:?}");
            assert!(s.record.running_at_quit, "{outcome:?}");
            assert_eq!(s.live.activity, None, "{outcome:?}");
        }
        let mut creating = state(shape(
            S::Creating,
            W::Running,
            Some(A::Creating),
            C::Missing,
        ));
        apply_now(&mut creating, Input::ShutdownBegan);
        apply_now(&mut creating, Input::Interrupted);
        apply_now(&mut creating, Input::ShutdownEnded);
        assert_eq!(creating.record.status, S::Stopped);
        assert!(creating.record.running_at_quit);
    }

    /// Issue 17: an agent running when the machine went away is stopped with a
    /// notice, starts again when the engine is back (unless the user stopped it
    /// meanwhile), and the exit seen when the engine returns is no death.
    #[test]
    fn an_agent_lost_with_the_engine_comes_back_unless_stopped_meanwhile() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply_now(
            &mut s,
            Input::EngineLost {
                containers_survive: false,
            },
        );
        assert!(s.record.running_at_quit, "remembered to start again");
        assert_eq!(s.live.notice.as_deref(), Some(ENGINE_LOST));
        assert!(
            apply_now(&mut s, died(137)).is_empty(),
            "no death when the engine returns"
        );
        assert_eq!(s.record.status, S::Stopped);
        apply_now(&mut s, Input::Begin(Op::Start));
        assert!(!s.record.running_at_quit);
        assert_eq!(s.live.notice, None, "the notice goes with the start");

        let mut stopped_meanwhile = state(shape(S::Running, W::Running, None, C::Running));
        apply_now(
            &mut stopped_meanwhile,
            Input::EngineLost {
                containers_survive: false,
            },
        );
        apply_now(&mut stopped_meanwhile, Input::Begin(Op::Stop));
        apply_now(&mut stopped_meanwhile, Input::Stopped);
        assert!(
            !stopped_meanwhile.record.running_at_quit,
            "not started again"
        );
    }

    /// New limits are the record's (saved) and the view's; an edit's model and base
    /// URL are the view's, never a key.
    #[test]
    fn new_limits_and_the_model_reach_the_view() {
        let mut s = state(shape(
            S::Running,
            W::Running,
            Some(A::Restarting),
            C::Running,
        ));
        let effects = apply_now(
            &mut s,
            Input::LimitsSet {
                memory_mib: 768,
                cpus: Some(1.5),
            },
        );
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!((s.record.memory_mib, s.record.cpus), (Some(768), Some(1.5)));
        let effects = apply_now(
            &mut s,
            Input::TokenSet {
                token: "new-token".into(),
            },
        );
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!(
            s.record.token, "new-token",
            "the record keeps the new token"
        );
        assert!(
            !serde_json::to_string(&s.view())
                .expect("json")
                .contains("new-token"),
            "never the view"
        );
        apply_now(
            &mut s,
            Input::Edited {
                provider_type: Some("custom".into()),
                notice: None,
                model_id: Some("m1".into()),
                base_url: Some("http://h/v1".into()),
            },
        );
        let view = s.view();
        assert_eq!((view.memory_mib, view.cpus), (Some(768), Some(1.5)));
        assert_eq!(view.model_id.as_deref(), Some("m1"));
        assert_eq!(view.base_url.as_deref(), Some("http://h/v1"));
        assert_eq!(
            shape_of(&s).activity,
            Some(A::Restarting),
            "the operation ends it"
        );
    }

    #[test]
    fn a_death_for_memory_says_so() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        s.record.memory_mib = Some(2048);
        let effects = apply_now(&mut s, seen(C::OutOfMemory));
        assert_eq!(
            effects,
            vec![
                Effect::Announce(Change::Died {
                    exit_code: Some(137)
                }),
                Effect::Revive {
                    after: FIRST_REVIVE,
                    due: t(101)
                }
            ]
        );
        assert!(s.view().crash_loop.is_some_and(|c| c.out_of_memory));
        let error = s.record.error.clone().expect("error");
        assert!(
            error.contains("ran out of memory (limit 2 GiB): raise it in Settings"),
            "{error}"
        );
        assert_eq!(s.view().exit_code, Some(137));
        let mut likely = state(shape(S::Running, W::Running, None, C::Running));
        likely.record.memory_mib = Some(512);
        apply_now(&mut likely, died(137));
        let error = likely.record.error.expect("error");
        assert!(
            error.contains("memory limit (512 MiB)") && error.contains("137"),
            "{error}"
        );
    }

    #[test]
    fn a_deleting_agent_is_not_taken_by_the_shutdown() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply_now(&mut s, Input::Begin(Op::Delete));
        assert!(apply_now(&mut s, Input::ShutdownBegan).is_empty());
        apply_now(&mut s, Input::ShutdownEnded);
        assert_eq!(s.live.activity, Some(A::Deleting));
        assert!(s.record.deleting);
    }

    #[test]
    fn start_clears_the_last_error_and_the_restore_mark() {
        let mut s = state(shape(S::Error, W::Stopped, None, C::Missing));
        s.record.error = Some("old".into());
        s.record.running_at_quit = true;
        apply_now(&mut s, Input::Begin(Op::Start));
        assert_eq!(s.record.error, None);
        assert!(!s.record.running_at_quit);
    }

    /// Issue 22, item 3: a gateway that keeps dying is started again after 1, 2,
    /// 4... s, at most 5 min; one notification per loop; a loop's failed start is
    /// one more death; ten healthy minutes begin a new loop; Stop ends it.
    #[test]
    fn a_crash_loop_backs_off_doubling_to_five_minutes() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        s.record.memory_mib = Some(2048);
        apply(&mut s, Input::Started, t(0));
        let mut now = 0;
        let mut delays = Vec::new();
        for death in 1..=11u32 {
            now += 2;
            let effects = apply(&mut s, died(3), t(now));
            let Some(Effect::Revive { after, due }) = effects.last().cloned() else {
                panic!("death {death}: {effects:?}");
            };
            assert_eq!(due, t(now) + chrono_of(after), "death {death}");
            let announced = effects
                .iter()
                .any(|e| matches!(e, Effect::Announce(Change::Died { .. })));
            assert_eq!(
                announced,
                death == 1,
                "one notification per loop: {effects:?}"
            );
            assert_eq!(effects.len(), if death == 1 { 2 } else { 1 }, "{effects:?}");
            delays.push(after.as_secs());
            let view = s.view_at(t(now));
            let crash = view.crash_loop.expect("crash loop in the view");
            assert_eq!(crash.crashes, death);
            assert_eq!(crash.next_try_in_secs, Some(after.as_secs()));
            assert_eq!(crash.last_exit_code, Some(3));
            let times = if death == 1 {
                "once".to_string()
            } else {
                format!("{death} times")
            };
            assert_eq!(
                crash.summary,
                format!("crashed {times}; next try in {} s", after.as_secs())
            );
            assert_eq!(view.status, S::Error);
            assert!(view.error.expect("error").contains("exit code 3"));
            // The loop's start: the back-off passed, the gateway comes up again.
            now += after.as_secs() as i64;
            assert!(apply(&mut s, Input::Begin(Op::Revive), t(now)).is_empty());
            assert_eq!(s.record.wanted, W::Running);
            assert_eq!(
                s.view_at(t(now)).crash_loop.expect("loop").summary,
                format!("crashed {times}; starting again")
            );
            apply(
                &mut s,
                Input::Launching {
                    at: t(now),
                    container_id: cid("c1"),
                },
                t(now),
            );
            apply(&mut s, Input::Started, t(now));
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(s.view_at(t(now)).status, S::Running);

        // A start of the loop that fails is one more death, not the loop's end.
        now += 2;
        apply(&mut s, died(3), t(now));
        apply(&mut s, Input::Begin(Op::Revive), t(now + 300));
        let failed = apply(
            &mut s,
            Input::StartFailed {
                message: "The gateway exited during start (exit code 3)".into(),
                details: None,
            },
            t(now + 301),
        );
        assert_eq!(
            failed,
            vec![Effect::Revive {
                after: LAST_REVIVE,
                due: t(now + 601)
            }]
        );
        assert_eq!(s.record.wanted, W::Running);
        assert_eq!(s.live.crash.as_ref().map(|c| c.crashes), Some(13));

        // Ten healthy minutes: the next death begins a new loop, notified again.
        now += 700;
        apply(&mut s, Input::Begin(Op::Revive), t(now));
        apply(&mut s, Input::Started, t(now));
        assert!(s.view_at(t(now + 599)).crash_loop.is_some());
        assert!(
            s.view_at(t(now + 600)).crash_loop.is_none(),
            "healthy 10 min"
        );
        now += 600;
        assert_eq!(
            apply(&mut s, died(1), t(now)),
            vec![
                Effect::Announce(Change::Died { exit_code: Some(1) }),
                Effect::Revive {
                    after: FIRST_REVIVE,
                    due: t(now + 1)
                },
            ]
        );

        // A listing that sees the same death again counts nothing.
        assert!(apply(&mut s, died(1), t(now)).is_empty());
        // Stop ends the loop and cancels its timer.
        assert_eq!(
            apply(&mut s, Input::Begin(Op::Stop), t(now)),
            vec![Effect::CancelRevive]
        );
        assert_eq!(s.live.crash, None);
        assert_eq!(s.view_at(t(now)).crash_loop, None);
    }

    /// The pending start of a crash loop is cancelled by a delete, the shutdown
    /// (remembered for the next launch) and the engine going away.
    #[test]
    fn a_pending_crash_loop_start_is_cancelled_by_delete_shutdown_and_engine_loss() {
        let looping = || {
            let mut s = state(shape(S::Running, W::Running, None, C::Running));
            apply_now(&mut s, died(3));
            s
        };
        let mut deleted = looping();
        assert_eq!(
            apply_now(&mut deleted, Input::Begin(Op::Delete)),
            vec![Effect::CancelRevive]
        );
        let mut quit = looping();
        assert_eq!(
            apply_now(&mut quit, Input::ShutdownBegan),
            vec![Effect::CancelRevive]
        );
        assert!(
            quit.record
                .crash
                .as_ref()
                .is_some_and(|c| c.next_try.is_some()),
            "the loop is kept: the next launch tries again when its back-off says"
        );
        assert!(
            !quit.record.running_at_quit,
            "not a restore, which would reset it"
        );
        assert_eq!(quit.record.wanted, W::Stopped);
        let mut lost = looping();
        assert_eq!(
            apply_now(
                &mut lost,
                Input::EngineLost {
                    containers_survive: false,
                }
            ),
            vec![Effect::CancelRevive, Effect::Announce(Change::EngineLost)]
        );
        assert!(lost.record.running_at_quit);
        let mut started = looping();
        assert_eq!(
            apply_now(&mut started, Input::Begin(Op::Start)),
            vec![Effect::CancelRevive]
        );
        assert_eq!(started.live.crash, None, "the user's start begins afresh");
    }

    /// Fault (CI, `engine.rs`): the machine stopped from a terminal kills the
    /// containers before Clawdock notices; the crash loop's start of one of them
    /// was in flight when the engine was found lost, and its failure then left the
    /// agent in `error`, counted as one more death and never restored, while the
    /// other agent said "stopped, Podman went away". The same for a start or a
    /// check of a running gateway in flight.
    #[test]
    fn an_engine_lost_under_a_start_in_flight_is_the_starts_end() {
        let failed = || Input::StartFailed {
            message: "cannot connect to Podman".into(),
            details: None,
        };
        let reviving = || {
            let mut s = state(shape(S::Running, W::Running, None, C::Running));
            apply_now(&mut s, died(137));
            apply_now(&mut s, Input::Begin(Op::Revive));
            s
        };
        let user_start = || {
            let mut s = state(shape(S::Stopped, W::Stopped, None, C::Exited(None)));
            apply_now(&mut s, Input::Begin(Op::Start));
            s
        };
        let checking = || {
            let mut s = state(shape(S::Stopped, W::Running, None, C::Unknown));
            apply_now(&mut s, seen(C::Running));
            apply_now(&mut s, Input::Begin(Op::Verify));
            s
        };
        for (what, mut s, end) in [
            ("a revive", reviving(), failed()),
            ("a user's start", user_start(), failed()),
            ("a check", checking(), Input::Ended),
        ] {
            apply_now(
                &mut s,
                Input::EngineLost {
                    containers_survive: false,
                },
            );
            let effects = apply_now(&mut s, end);
            assert!(
                effects.contains(&Effect::Announce(Change::EngineLost)),
                "{what}: {effects:?}"
            );
            assert!(
                !effects.iter().any(|e| matches!(e, Effect::Revive { .. })),
                "{what}: no death counted: {effects:?}"
            );
            assert_eq!(s.record.status, S::Stopped, "{what}");
            assert_eq!(s.live.activity, None, "{what}");
            assert_eq!(s.live.crash, None, "{what}");
            assert_eq!(s.live.notice.as_deref(), Some(ENGINE_LOST), "{what}");
            assert_eq!(s.record.error, None, "{what}");
            assert!(s.record.running_at_quit, "{what}: started when it is back");
            assert_eq!(s.record.wanted, W::Running, "{what}");
        }
        // Lost and back before the start ended: its failure is its own.
        let mut s = user_start();
        apply_now(
            &mut s,
            Input::EngineLost {
                containers_survive: false,
            },
        );
        apply_now(&mut s, Input::Started);
        apply_now(&mut s, Input::Begin(Op::Stop));
        apply_now(&mut s, Input::Stopped);
        apply_now(&mut s, Input::Begin(Op::Start));
        apply_now(&mut s, failed());
        assert_eq!(s.record.status, S::Error);
    }

    /// Issue 22, item 5: after a false alarm the agent is still wanted; the
    /// container found running is running again, and a real exit then is a death.
    #[test]
    fn a_false_alarm_of_a_lost_engine_keeps_what_the_user_wanted() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply_now(
            &mut s,
            Input::EngineLost {
                containers_survive: false,
            },
        );
        assert_eq!(s.record.wanted, W::Running);
        assert!(apply_now(&mut s, seen(C::Running)).is_empty());
        assert_eq!(
            shape_of(&s),
            shape(S::Running, W::Running, None, C::Running)
        );
        assert_eq!(s.live.notice, None);
        assert!(!s.record.running_at_quit);
        assert!(apply_now(&mut s, died(1))
            .contains(&Effect::Announce(Change::Died { exit_code: Some(1) })));
    }

    /// Issue 22, item 7: a rolled-back image is remembered (saved with the
    /// record) until an update succeeds.
    #[test]
    fn a_rolled_back_image_is_remembered_until_an_update_succeeds() {
        let mut s = state(shape(S::Running, W::Running, Some(A::Updating), C::Running));
        let bad = Input::ImageRejected {
            image_id: Some("sha256:bad".into()),
        };
        assert!(apply_now(&mut s, bad).is_empty());
        assert_eq!(s.record.rejected_image.as_deref(), Some("sha256:bad"));
        assert_eq!(
            shape_of(&s),
            shape(S::Running, W::Running, Some(A::Updating), C::Running)
        );
        apply_now(&mut s, Input::ImageRejected { image_id: None });
        assert_eq!(s.record.rejected_image, None);
    }

    #[test]
    fn readiness_needs_a_running_container_and_a_running_status() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply_now(&mut s, Input::GatewayReady);
        assert!(s.view().ready);
        apply_now(&mut s, died(1));
        assert!(!s.view().ready);
        apply_now(&mut s, Input::GatewayReady);
        assert!(!s.view().ready, "an exited container is never ready");
    }

    /// Fault (issue 29): a death noted while an operation held the agent (an
    /// update whose pull hung) was never acted on once the operation ended.
    #[test]
    fn a_death_noted_during_an_operation_is_acted_on_when_it_ends() {
        let mut s = state(shape(S::Running, W::Running, Some(A::Updating), C::Running));
        assert!(
            apply_now(&mut s, died(137)).is_empty(),
            "only noted meanwhile"
        );
        assert_eq!(s.record.status, S::Running);
        let effects = apply_now(&mut s, Input::Ended);
        assert_eq!(s.record.status, S::Error);
        assert!(
            effects.contains(&Effect::Revive {
                after: FIRST_REVIVE,
                due: t(101)
            }),
            "{effects:?}"
        );
    }

    /// Fault (issue 29): in native mode a lost engine marked agents stopped while
    /// their gateways served on under conmon.
    #[test]
    fn in_native_mode_a_lost_engine_leaves_the_gateways_running() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        assert!(apply_now(
            &mut s,
            Input::EngineLost {
                containers_survive: true
            }
        )
        .is_empty());
        assert_eq!(
            shape_of(&s),
            shape(S::Running, W::Running, None, C::Running)
        );
        assert_eq!(s.live.notice.as_deref(), Some(ENGINE_UNREACHABLE));
        // Seen again once the engine answers: the notice goes.
        apply_now(&mut s, seen(C::Running));
        assert_eq!(s.live.notice, None);
        assert_eq!(s.record.status, S::Running);
    }

    /// Fault (issue 29): a record saved `running` was shown running at the next
    /// launch before anything was looked at, and the crash loop's back-off began
    /// again at every launch.
    #[test]
    fn a_launch_shows_nothing_running_before_it_is_seen_and_keeps_the_back_off() {
        let mut record = AgentRecord {
            status: S::Error,
            wanted: W::Running,
            ..crate::store::sample_record("a")
        };
        record.crash = Some(CrashRecord {
            crashes: 4,
            next_try: Some(t(50)),
            last_exit_code: Some(1),
            out_of_memory: false,
            reviving_since: None,
        });
        let kept = AgentState::loaded(record.clone(), t(0));
        assert_eq!(kept.live.crash.as_ref().map(|c| c.crashes), Some(4));
        assert_eq!(
            kept.live.crash.as_ref().and_then(|c| c.next_try),
            Some(t(50))
        );
        // Clawdock died in the loop's start: that start counts as a death.
        record.crash = Some(CrashRecord {
            crashes: 4,
            next_try: None,
            reviving_since: Some(t(-5)),
            ..CrashRecord::default()
        });
        let cut = AgentState::loaded(record.clone(), t(0));
        let c = cut.live.crash.as_ref().expect("the loop");
        assert_eq!(c.crashes, 5);
        assert_eq!(c.next_try, Some(t(0) + chrono_of(revive_delay(5))));
        assert_eq!(
            cut.record.crash.as_ref().map(|c| c.crashes),
            Some(5),
            "kept"
        );
        record.status = S::Running;
        record.crash = None;
        let running = AgentState::loaded(record, t(0));
        assert_eq!(running.record.status, S::Stopped, "unknown until seen");
        assert_eq!(running.live.container, C::Unknown);
    }

    /// Fault (issue 29): a gateway that died while Clawdock was closed was told as
    /// a fresh crash at the next launch, with no time.
    #[test]
    fn a_death_while_clawdock_was_closed_is_said_as_such_and_backs_off_from_it() {
        let record = AgentRecord {
            status: S::Running,
            wanted: W::Running,
            ..crate::store::sample_record("a")
        };
        let mut s = AgentState::loaded(record, t(0));
        let effects = apply(
            &mut s,
            Input::Seen {
                container: C::Exited(Some(1)),
                id: Some(cid("c1")),
                finished_at: Some(t(-3600)),
            },
            t(0),
        );
        let error = s.record.error.clone().unwrap_or_default();
        assert!(
            error.starts_with("While Clawdock was closed at "),
            "{error}"
        );
        assert!(error.contains("exit code 1"), "{error}");
        assert!(
            effects.contains(&Effect::Revive {
                after: Duration::ZERO,
                due: t(-3600) + chrono_of(FIRST_REVIVE)
            }),
            "long past: tried again at once; {effects:?}"
        );
    }

    #[test]
    fn a_gateway_found_running_that_does_not_answer_is_a_death_of_the_loop() {
        let mut s = state(shape(S::Stopped, W::Running, Some(A::Starting), C::Running));
        let effects = apply_now(
            &mut s,
            Input::VerifyFailed {
                message: "did not answer".into(),
            },
        );
        assert_eq!(s.record.status, S::Error);
        assert_eq!(s.live.crash.as_ref().map(|c| c.crashes), Some(1));
        assert!(effects.contains(&Effect::Revive {
            after: FIRST_REVIVE,
            due: t(101)
        }));
    }

    #[test]
    fn a_journal_is_written_advanced_committed_and_cleared() {
        use crate::store::{JournalOp, Swap, SwapWhy};
        let mut s = state(shape(S::Running, W::Running, Some(A::Updating), C::Running));
        let journal = Journal {
            op: JournalOp::Swap(Swap {
                why: SwapWhy::Update,
                old_generation: Some("g1".into()),
                new_generation: "g2".into(),
                image_id: "sha256:new".into(),
                memory_mib: 1024,
                cpus: None,
                was_running: true,
            }),
            step: Step::Begun,
            began_at: t(0),
        };
        apply_now(&mut s, Input::Journaled(Some(journal)));
        apply_now(&mut s, Input::Reached(Step::Launched));
        assert_eq!(
            s.record.journal.as_ref().map(|j| j.step),
            Some(Step::Launched)
        );
        apply_now(
            &mut s,
            Input::SwapCommitted {
                generation: "g2".into(),
                image_id: "sha256:new".into(),
                memory_mib: 1024,
                cpus: None,
                token: "t2".into(),
            },
        );
        assert_eq!(s.record.generation.as_deref(), Some("g2"));
        assert_eq!(s.record.image_id.as_deref(), Some("sha256:new"));
        assert_eq!(s.record.token, "t2", "the token the new container has");
        assert_eq!(
            s.record.journal.as_ref().map(|j| j.step),
            Some(Step::Committed)
        );
        apply_now(&mut s, Input::Journaled(None));
        assert_eq!(s.record.journal, None);
    }

    /// Issue 32: the newer-image notice is the registry's answer until an update
    /// takes; it changes nothing else of the agent.
    #[test]
    fn the_update_notice_follows_the_registry_and_an_update_clears_it() {
        let mut s = AgentState::new(crate::store::sample_record("a"));
        let record = s.record.clone();
        apply_now(&mut s, Input::UpdateChecked { newer: true });
        assert!(s.view_at(t(100)).update_available);
        assert_eq!(s.record, record, "nothing saved");
        apply_now(
            &mut s,
            Input::ImageRejected {
                image_id: Some("sha256:bad".into()),
            },
        );
        assert!(
            s.live.update_available,
            "a rolled-back update leaves the newer image out"
        );
        apply_now(&mut s, Input::ImageRejected { image_id: None });
        assert!(
            !s.live.update_available,
            "an update that took runs the newest"
        );
        apply_now(&mut s, Input::UpdateChecked { newer: true });
        apply_now(&mut s, Input::UpdateChecked { newer: false });
        assert!(!s.view_at(t(100)).update_available);
    }
}
