//! One agent's lifecycle as data: `apply(state, input)` changes the state for every
//! input (the user's operations and their outcomes, what Podman says of the
//! container, the gateway's readiness, the shutdown) and returns the effects the
//! caller must carry out. No I/O, so every rule is a row in a table test.

use chrono::{DateTime, Utc};

pub use crate::containers::Container;
use crate::events::Change;
use crate::store::{AgentRecord, AgentStatus, Wanted};
use crate::view::{Activity, AgentView};

/// What is known of an agent while the app runs, beside its saved record.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub activity: Option<Activity>,
    /// When this app last launched the container, to tell a late `died` of an
    /// earlier run from a real one.
    pub started_at: Option<DateTime<Utc>>,
    pub container: Container,
    /// The gateway answered `/readyz`.
    pub ready: bool,
    pub notice: Option<String>,
    /// The shutdown routine has taken this agent over: outcomes of operations
    /// still in flight no longer change what it decided.
    pub shutting_down: bool,
    /// Podman's own words behind the record's error, when the error is advice.
    pub error_details: Option<String>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            activity: None,
            started_at: None,
            container: Container::Unknown,
            ready: false,
            notice: None,
            shutting_down: false,
            error_details: None,
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
}

/// Everything that can happen to an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Begin(Op),
    /// The container is about to be started (noted before `podman start`: a
    /// gateway that dies at once sends its `died` before the start returns).
    Launching {
        at: DateTime<Utc>,
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
    /// Podman said this of the container (event or listing); `at` is when, for
    /// events that carry a time this clock shares.
    Seen {
        container: Container,
        at: Option<DateTime<Utc>>,
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
    /// The agent's provider settings were rewritten.
    Edited {
        provider_type: Option<String>,
        notice: Option<String>,
    },
    /// The next launch took note that the agent ran at the last quit.
    RestoreNoted,
    /// Podman's engine went away (the machine stopped, slept or crashed): the
    /// container is gone with it, whatever the last event said.
    EngineLost,
    ShutdownBegan,
    ShutdownEnded,
}

/// What the caller must do after a transition, besides saving and announcing the
/// new state (which follow from what changed).
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Tell listeners why, beyond the state (a notification).
    Announce(Change),
    /// The shutdown must stop this agent's container.
    StopForShutdown,
}

pub const INTERRUPTED_CREATE: &str =
    "Creation was interrupted before it finished; start the agent to try again, or delete it.";
pub const ENGINE_LOST: &str =
    "Podman's machine stopped; the agent starts again when Podman is back (Start Podman).";
pub const REMOVED_OUTSIDE: &str =
    "The container was removed outside Clawdock; start the agent to create it again.";

impl AgentState {
    pub fn new(record: AgentRecord) -> Self {
        Self {
            record,
            live: Live::default(),
        }
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

    pub fn view(&self) -> AgentView {
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
        }
    }
}

/// Applies one input. The only place an agent's status, wish or error changes.
pub fn apply(s: &mut AgentState, input: Input) -> Vec<Effect> {
    let r = &mut s.record;
    let live = &mut s.live;
    let mut effects = Vec::new();
    match input {
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
        Input::Launching { at } => {
            live.container = Container::Running;
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
            r.status = AgentStatus::Running;
            r.error = None;
            r.wanted = Wanted::Running;
            effects.push(Effect::Announce(Change::Ready));
        }
        Input::StartFailed { message, details } => {
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
            }
        }
        Input::Cancelled => {
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
        Input::Seen { container, at } => {
            if let Some(change) = observe(s, container, at) {
                effects.push(Effect::Announce(change));
            }
        }
        Input::Inspected { container } => {
            if live.activity.is_some() || r.deleting || live.shutting_down {
                live.container = container;
            } else if let Some(change) = observe(s, container, None) {
                effects.push(Effect::Announce(change));
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
        } => {
            r.provider_type = provider_type;
            live.notice = notice;
        }
        Input::RestoreNoted => r.running_at_quit = false,
        Input::EngineLost => {
            let up = s.is_up();
            let r = &mut s.record;
            let live = &mut s.live;
            live.ready = false;
            if live.activity.is_some() || r.deleting || live.shutting_down {
                // The operation in flight meets the lost engine itself.
                live.container = Container::Unknown;
            } else if up {
                // Like a quit: remembered to start again when the engine is back,
                // and a late exit seen then is no death.
                r.running_at_quit = r.wanted == Wanted::Running;
                r.wanted = Wanted::Stopped;
                r.status = AgentStatus::Stopped;
                live.container = Container::Unknown;
                live.notice = Some(ENGINE_LOST.into());
                effects.push(Effect::Announce(Change::EngineLost));
            }
        }
        Input::ShutdownBegan => {
            if !r.deleting {
                live.shutting_down = true;
                if s.is_up() {
                    let r = &mut s.record;
                    r.running_at_quit = r.wanted == Wanted::Running;
                    r.wanted = Wanted::Stopped;
                    s.live.activity = Some(Activity::Stopping);
                    effects.push(Effect::StopForShutdown);
                }
            }
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
    effects
}

/// What Podman says of the container, applied: while an operation runs only the
/// container is noted (the operation decides the status); otherwise the status
/// follows, and an exit nobody asked for is a death.
fn observe(s: &mut AgentState, seen: Container, at: Option<DateTime<Utc>>) -> Option<Change> {
    let r = &mut s.record;
    let live = &mut s.live;
    let exited = matches!(seen, Container::Exited(_) | Container::OutOfMemory);
    if let (true, Some(at), Some(started)) = (exited, at, live.started_at) {
        // A `died` from before the last launch belongs to an earlier run: events
        // can arrive after the start they precede has finished.
        if at < started {
            return None;
        }
    }
    if live.activity.is_some() || r.deleting || live.shutting_down {
        // A listing taken while an operation starts the container may still show
        // it `created`; only real exits count then.
        if seen != Container::Exited(None) {
            live.container = seen;
        }
        return None;
    }
    live.container = seen;
    match seen {
        Container::Running => {
            r.status = AgentStatus::Running;
            r.error = None;
            None
        }
        Container::Exited(_) | Container::OutOfMemory => {
            live.ready = false;
            if r.wanted == Wanted::Running {
                let code = s.view().exit_code;
                let r = &mut s.record;
                r.status = AgentStatus::Error;
                r.error = Some(death_message(seen, r.memory_mib));
                r.wanted = Wanted::Stopped;
                Some(Change::Died { exit_code: code })
            } else {
                if r.status != AgentStatus::Error {
                    r.status = AgentStatus::Stopped;
                }
                None
            }
        }
        Container::Missing => {
            live.ready = false;
            if r.wanted == Wanted::Running {
                r.status = AgentStatus::Error;
                r.error = Some(REMOVED_OUTSIDE.into());
                r.wanted = Wanted::Stopped;
                Some(Change::Died { exit_code: None })
            } else {
                if r.status == AgentStatus::Running {
                    r.status = AgentStatus::Stopped;
                }
                None
            }
        }
        Container::Unknown => None,
    }
}

/// Why a gateway nobody stopped is gone, in a sentence. Exit code 137 is a
/// SIGKILL: with a memory limit set and no stop asked for, the kernel's OOM killer
/// is the likely one, even where Podman cannot tell (`OOMKilled` stays false on
/// cgroup v1 hosts).
pub fn death_message(seen: Container, memory_mib: Option<u64>) -> String {
    let limit = memory_mib.map_or_else(|| "its limit".into(), |m| format!("{m} MiB"));
    match seen {
        Container::OutOfMemory => format!(
            "The gateway ran out of memory ({limit}) and was killed. Give the agent more memory, or use it less."
        ),
        Container::Exited(Some(137)) => format!(
            "The gateway was killed (exit code 137). If nobody killed it, it used more than its memory limit ({limit})."
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
            id: uuid::Uuid::nil(),
            status: from.status,
            created_at: t(0),
            wanted: from.wanted,
            ..crate::store::sample_record("a")
        };
        let mut s = AgentState::new(record);
        s.live.activity = from.activity;
        s.live.container = from.container;
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

    fn died(code: i32) -> Input {
        Input::Seen {
            container: C::Exited(Some(code)),
            at: None,
        }
    }

    fn seen(container: C) -> Input {
        Input::Seen {
            container,
            at: None,
        }
    }

    /// Each row: where an agent is, what happens, where it ends, and whether a
    /// change is announced.
    #[test]
    fn transitions() {
        let ready = Some(Effect::Announce(Change::Ready));
        let rows: Vec<(&str, Shape, Input, Shape, Option<Effect>)> = vec![
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
                None,
            ),
            (
                "restart begins like a start, said as a restart",
                shape(S::Running, W::Running, None, C::Running),
                Input::Begin(Op::Restart),
                shape(S::Running, W::Running, Some(A::Restarting), C::Running),
                None,
            ),
            (
                "an update with nothing new leaves the agent as it was",
                shape(S::Running, W::Running, Some(A::Updating), C::Running),
                Input::Ended,
                shape(S::Running, W::Running, None, C::Running),
                None,
            ),
            (
                "a cancelled create is stopped, not an error",
                shape(S::Creating, W::Running, Some(A::Creating), C::Missing),
                Input::Cancelled,
                shape(S::Stopped, W::Stopped, None, C::Missing),
                None,
            ),
            (
                "a cancelled start is stopped and not wanted running",
                shape(S::Error, W::Running, Some(A::Starting), C::Missing),
                Input::Cancelled,
                shape(S::Stopped, W::Stopped, None, C::Missing),
                None,
            ),
            (
                "launch notes the container up before podman answers",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Missing),
                Input::Launching { at: t(10) },
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                None,
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
                Some(Effect::Announce(Change::StartFailed {
                    message: "boom".into(),
                })),
            ),
            (
                "stop begins",
                shape(S::Running, W::Running, None, C::Running),
                Input::Begin(Op::Stop),
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                None,
            ),
            (
                "stopped",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Input::Stopped,
                shape(S::Stopped, W::Stopped, None, C::Exited(None)),
                None,
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
                None,
            ),
            (
                "a `created` listing during a start is not an exit",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                seen(C::Exited(None)),
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                None,
            ),
            (
                "an inspect during a start is the truth, `created` included",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                Input::Inspected {
                    container: C::Exited(None),
                },
                shape(S::Stopped, W::Running, Some(A::Starting), C::Exited(None)),
                None,
            ),
            (
                "a death nobody asked for",
                shape(S::Running, W::Running, None, C::Running),
                died(137),
                shape(S::Error, W::Stopped, None, C::Exited(Some(137))),
                Some(Effect::Announce(Change::Died {
                    exit_code: Some(137),
                })),
            ),
            (
                "an exit after a stop is no death",
                shape(S::Stopped, W::Stopped, None, C::Exited(None)),
                died(0),
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                None,
            ),
            (
                "removed outside while wanted",
                shape(S::Running, W::Running, None, C::Running),
                seen(C::Missing),
                shape(S::Error, W::Stopped, None, C::Missing),
                Some(Effect::Announce(Change::Died { exit_code: None })),
            ),
            (
                "removed outside while stopped",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                seen(C::Missing),
                shape(S::Stopped, W::Stopped, None, C::Missing),
                None,
            ),
            (
                "started outside Clawdock",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                seen(C::Running),
                shape(S::Running, W::Stopped, None, C::Running),
                None,
            ),
            (
                "a failed stop of a container still up stays running",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Input::OpFailed {
                    message: "Stop failed".into(),
                    seen: Some(C::Running),
                },
                shape(S::Running, W::Stopped, None, C::Running),
                None,
            ),
            (
                "a failed delete of a container gone is an error",
                shape(S::Stopped, W::Stopped, Some(A::Deleting), C::Running),
                Input::OpFailed {
                    message: "Delete failed".into(),
                    seen: Some(C::Exited(Some(1))),
                },
                shape(S::Error, W::Stopped, None, C::Exited(Some(1))),
                None,
            ),
            (
                "a create a crash cut short",
                shape(S::Creating, W::Running, None, C::Missing),
                Input::FoundInterrupted,
                shape(S::Error, W::Stopped, None, C::Missing),
                None,
            ),
            (
                "a create still running is not cut short",
                shape(S::Creating, W::Running, Some(A::Creating), C::Missing),
                Input::FoundInterrupted,
                shape(S::Creating, W::Running, Some(A::Creating), C::Missing),
                None,
            ),
            (
                "shutdown takes a running agent",
                shape(S::Running, W::Running, None, C::Running),
                Input::ShutdownBegan,
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Some(Effect::StopForShutdown),
            ),
            (
                "shutdown takes an agent being started",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Missing),
                Input::ShutdownBegan,
                shape(S::Stopped, W::Stopped, Some(A::Stopping), C::Missing),
                Some(Effect::StopForShutdown),
            ),
            (
                "shutdown leaves a stopped agent alone",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                Input::ShutdownBegan,
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                None,
            ),
            (
                "the engine goes away under a running agent",
                shape(S::Running, W::Running, None, C::Running),
                Input::EngineLost,
                shape(S::Stopped, W::Stopped, None, C::Unknown),
                Some(Effect::Announce(Change::EngineLost)),
            ),
            (
                "the engine goes away under a stopped agent",
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                Input::EngineLost,
                shape(S::Stopped, W::Stopped, None, C::Exited(Some(0))),
                None,
            ),
            (
                "the engine goes away during a start: the start meets it",
                shape(S::Stopped, W::Running, Some(A::Starting), C::Running),
                Input::EngineLost,
                shape(S::Stopped, W::Running, Some(A::Starting), C::Unknown),
                None,
            ),
            (
                "shutdown ends: stopped",
                shape(S::Running, W::Stopped, Some(A::Stopping), C::Running),
                Input::ShutdownEnded,
                shape(S::Stopped, W::Stopped, None, C::Exited(None)),
                None,
            ),
        ];
        for (name, from, input, to, effect) in rows {
            let mut s = state(from);
            let effects = apply(&mut s, input);
            assert_eq!(shape_of(&s), to, "{name}");
            assert_eq!(effects.first().cloned(), effect, "{name}");
        }
    }

    /// Fixed in 8b74d82: the `died` of an earlier stop arriving after the next
    /// start began must not fail that start or mark the agent dead.
    #[test]
    fn a_late_died_from_before_the_launch_is_ignored() {
        let mut s = state(shape(S::Stopped, W::Running, Some(A::Starting), C::Missing));
        apply(&mut s, Input::Launching { at: t(10) });
        apply(&mut s, Input::Started);
        let late = Input::Seen {
            container: C::Exited(Some(143)),
            at: Some(t(9)),
        };
        assert!(apply(&mut s, late).is_empty());
        assert_eq!(
            shape_of(&s),
            shape(S::Running, W::Running, None, C::Running)
        );
        let real = Input::Seen {
            container: C::Exited(Some(1)),
            at: Some(t(11)),
        };
        assert_eq!(
            apply(&mut s, real),
            vec![Effect::Announce(Change::Died { exit_code: Some(1) })]
        );
        assert_eq!(s.record.status, S::Error);
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
            apply(&mut s, Input::ShutdownBegan);
            assert!(apply(&mut s, outcome.clone()).is_empty(), "{outcome:?}");
            apply(&mut s, Input::ShutdownEnded);
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
        apply(&mut creating, Input::ShutdownBegan);
        apply(&mut creating, Input::Interrupted);
        apply(&mut creating, Input::ShutdownEnded);
        assert_eq!(creating.record.status, S::Stopped);
        assert!(creating.record.running_at_quit);
    }

    /// Issue 17: an agent running when the machine went away is stopped with a
    /// notice, starts again when the engine is back (unless the user stopped it
    /// meanwhile), and the exit seen when the engine returns is no death.
    #[test]
    fn an_agent_lost_with_the_engine_comes_back_unless_stopped_meanwhile() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply(&mut s, Input::EngineLost);
        assert!(s.record.running_at_quit, "remembered to start again");
        assert_eq!(s.live.notice.as_deref(), Some(ENGINE_LOST));
        assert!(
            apply(&mut s, died(137)).is_empty(),
            "no death when the engine returns"
        );
        assert_eq!(s.record.status, S::Stopped);
        apply(&mut s, Input::Begin(Op::Start));
        assert!(!s.record.running_at_quit);
        assert_eq!(s.live.notice, None, "the notice goes with the start");

        let mut stopped_meanwhile = state(shape(S::Running, W::Running, None, C::Running));
        apply(&mut stopped_meanwhile, Input::EngineLost);
        apply(&mut stopped_meanwhile, Input::Begin(Op::Stop));
        apply(&mut stopped_meanwhile, Input::Stopped);
        assert!(
            !stopped_meanwhile.record.running_at_quit,
            "not started again"
        );
    }

    #[test]
    fn a_death_for_memory_says_so() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        s.record.memory_mib = Some(2048);
        let effects = apply(&mut s, seen(C::OutOfMemory));
        assert_eq!(
            effects,
            vec![Effect::Announce(Change::Died {
                exit_code: Some(137)
            })]
        );
        let error = s.record.error.clone().expect("error");
        assert!(error.contains("ran out of memory (2048 MiB)"), "{error}");
        assert_eq!(s.view().exit_code, Some(137));
        let mut likely = state(shape(S::Running, W::Running, None, C::Running));
        likely.record.memory_mib = Some(512);
        apply(&mut likely, died(137));
        let error = likely.record.error.expect("error");
        assert!(
            error.contains("memory limit (512 MiB)") && error.contains("137"),
            "{error}"
        );
    }

    #[test]
    fn a_deleting_agent_is_not_taken_by_the_shutdown() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply(&mut s, Input::Begin(Op::Delete));
        assert!(apply(&mut s, Input::ShutdownBegan).is_empty());
        apply(&mut s, Input::ShutdownEnded);
        assert_eq!(s.live.activity, Some(A::Deleting));
        assert!(s.record.deleting);
    }

    #[test]
    fn start_clears_the_last_error_and_the_restore_mark() {
        let mut s = state(shape(S::Error, W::Stopped, None, C::Missing));
        s.record.error = Some("old".into());
        s.record.running_at_quit = true;
        apply(&mut s, Input::Begin(Op::Start));
        assert_eq!(s.record.error, None);
        assert!(!s.record.running_at_quit);
    }

    #[test]
    fn readiness_needs_a_running_container_and_a_running_status() {
        let mut s = state(shape(S::Running, W::Running, None, C::Running));
        apply(&mut s, Input::GatewayReady);
        assert!(s.view().ready);
        apply(&mut s, died(1));
        assert!(!s.view().ready);
        apply(&mut s, Input::GatewayReady);
        assert!(!s.view().ready, "an exited container is never ready");
    }
}
