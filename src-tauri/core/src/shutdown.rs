//! The one shutdown routine, every exit path's end: refuse new operations, let the
//! ones in flight reach a safe end, stop every agent's container in parallel
//! through the engine Clawdock uses, kill what is left, then stop the machine if
//! Clawdock started it and only agents ran on it. Each phase has its own bound;
//! whatever still runs at the end is named, and so is what may run on because
//! the engine could not be reached.

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agents::Agents;
use crate::container::ContainerId;
use crate::containers::Containers;
use crate::events::Event;
use crate::machine::Mode;
use crate::store::AgentStatus;
use crate::tasks::Tasks;

/// What the routine did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownReport {
    /// Agents that ran (or were being started) and were stopped.
    pub stopped: Vec<Uuid>,
    /// Containers still up after the stop phase, killed.
    pub killed: usize,
    /// Containers still running when the routine ended (by name): the exit is not
    /// clean, and the CLI's exit code says so.
    #[serde(default)]
    pub leftover: Vec<String>,
    pub machine_stopped: bool,
    pub elapsed_ms: u128,
}

impl ShutdownReport {
    /// Nothing of this data folder was left running.
    pub fn clean(&self) -> bool {
        self.leftover.is_empty()
    }

    /// The routine itself failed (it panicked): what runs is unknown, so the exit
    /// must not say clean.
    pub fn failed(why: &dyn std::fmt::Display) -> Self {
        Self {
            leftover: vec![format!("(unknown: the shutdown routine failed: {why})")],
            ..Self::default()
        }
    }
}

/// Time over the stop timeout for podman itself, and for operations in flight to
/// end after their waits were cancelled.
const MARGIN: Duration = Duration::from_secs(5);
/// How long the quit looks for an engine it cannot reach (natively: the owned
/// service started again, which answers within 20 s).
const REACH_BOUND: Duration = Duration::from_secs(25);
/// The forced phase: one listing, one kill, one listing.
const KILL_BOUND: Duration = Duration::from_secs(10);
/// What a gateway gets to exit when the process panicked, within [`KILL_BOUND`].
const PANIC_GRACE: Duration = Duration::from_secs(5);
/// Followers (the event stream) end at once when cancelled; this is a backstop.
const BACKGROUND_BOUND: Duration = Duration::from_secs(2);

/// Runs the routine. Called once, by `Clawdock::shutdown`.
pub(crate) async fn run(agents: &Agents, tasks: &Tasks) -> ShutdownReport {
    let began = Instant::now();
    tasks.close();
    // Named in the report should the engine be out of reach: natively their
    // containers would run on under conmon.
    let unknown_if_unreached = may_run(agents);
    let taken = agents.begin_shutdown();
    let events = agents.events();
    let _no_listener = events.send(Event::Shutdown { stopping: taken });
    let stop_timeout = agents.settings().stop_timeout;
    let containers = agents.containers();

    let in_flight = tasks.ops_running();
    if bounded(stop_timeout + MARGIN, tasks.ops_done())
        .await
        .is_none()
    {
        tracing::warn!(
            in_flight,
            left = tasks.ops_running(),
            "operations still running after their bound; stopping anyway"
        );
    }

    // The call's own bound is the stop timeout and a margin; stops still going
    // past it go on in the engine, and the forced phase looks after them.
    let reached = stop_all(agents, stop_timeout).await;
    let (killed, leftover) = match reached {
        Reached::Yes => kill_leftovers(containers).await,
        Reached::No => (0, unknown_if_unreached),
    };
    let stopped = agents.end_shutdown();
    let _no_listener = events.send(Event::Shutdown { stopping: 0 });

    // A setup or start of the machine in flight ends by its own bounds: dropped
    // at exit, `machine init` would be killed half-way and leave a broken machine.
    agents.machine().settled().await;
    let machine_stopped = stop_machine_if_ours(agents).await;
    if bounded(BACKGROUND_BOUND, tasks.background_done())
        .await
        .is_none()
    {
        tracing::warn!("followers still running at shutdown");
    }
    // Last: the stops and the listings above went through it.
    agents.machine().close_engine().await;
    let report = ShutdownReport {
        stopped,
        killed,
        leftover,
        machine_stopped,
        elapsed_ms: began.elapsed().as_millis(),
    };
    if report.clean() {
        tracing::info!(?report, "shutdown finished");
    } else {
        tracing::error!(?report, still_running = ?report.leftover, "shutdown finished with containers still running");
    }
    report
}

/// Whether the stop phase reached the engine.
enum Reached {
    /// It did, or nothing of Clawdock's can run (no podman, or a machine down
    /// and its containers with it).
    Yes,
    /// It could not, and the agents' containers may run on.
    No,
}

/// Stops every agent's container through the engine Clawdock uses. An engine
/// out of reach natively is looked for again (the service Clawdock owns started
/// again, within [`REACH_BOUND`]); in vm mode it is a machine that is down.
async fn stop_all(agents: &Agents, timeout: Duration) -> Reached {
    let containers = agents.containers();
    let limit = timeout + MARGIN;
    let lost = match containers.stop_all(timeout, limit).await {
        Ok(_) => return Reached::Yes,
        Err(e) if e.not_installed() => return Reached::Yes,
        Err(e) if !e.engine_unreachable() => {
            tracing::warn!(error = %e, "stop at shutdown failed");
            return Reached::Yes;
        }
        Err(e) => e,
    };
    let machine = agents.machine();
    if machine.mode() == Mode::Vm {
        tracing::info!(error = %lost, "the engine cannot be reached at quit: Podman's machine is down, and the agents' containers with it");
        return Reached::Yes;
    }
    tracing::warn!(error = %lost, "the engine cannot be reached at quit; looking for it again");
    match bounded(REACH_BOUND, machine.reach_engine()).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            tracing::error!(error = %e, "the engine cannot be reached: the agents' containers may run on");
            return Reached::No;
        }
        None => {
            tracing::error!(bound = ?REACH_BOUND, "the engine was not reached in time: the agents' containers may run on");
            return Reached::No;
        }
    }
    match containers.stop_all(timeout, limit).await {
        Ok(_) => Reached::Yes,
        Err(e) if e.engine_unreachable() => {
            tracing::error!(error = %e, "the engine went away again: the agents' containers may run on");
            Reached::No
        }
        Err(e) => {
            tracing::warn!(error = %e, "stop at shutdown failed");
            Reached::Yes
        }
    }
}

/// The containers of agents that may run, as the report names them when the
/// engine cannot be asked: those not stopped, and those shown stopped only
/// because the engine went away under them.
fn may_run(agents: &Agents) -> Vec<String> {
    agents
        .list()
        .into_iter()
        .filter(|a| {
            a.status != AgentStatus::Stopped
                || a.notice.as_deref() == Some(crate::agents::state::ENGINE_LOST)
        })
        .map(|a| {
            format!(
                "{} (not known to be stopped: the engine could not be reached)",
                crate::store::container_name(&a.name)
            )
        })
        .collect()
}

/// Kills every container of this data folder that still runs, then lists again:
/// how many were killed, and the names of any still running. Bounded.
pub(crate) async fn kill_leftovers(containers: &Containers) -> (usize, Vec<String>) {
    let began = Instant::now();
    let running = match bounded(KILL_BOUND, containers.running()).await {
        Some(Ok(running)) => running,
        Some(Err(e)) if e.engine_unreachable() || e.not_installed() => return (0, Vec::new()),
        Some(Err(e)) => {
            tracing::error!(error = %e, "could not list containers to kill");
            return (
                0,
                vec!["(unknown: podman could not list the containers)".into()],
            );
        }
        None => return (0, vec!["(unknown: listing the containers hung)".into()]),
    };
    if running.is_empty() {
        return (0, Vec::new());
    }
    let names: Vec<String> = running.iter().map(|f| f.name.clone()).collect();
    tracing::warn!(containers = ?names, "killing containers that did not stop in time");
    let ids: Vec<ContainerId> = running.into_iter().map(|f| f.id).collect();
    let left = KILL_BOUND.saturating_sub(began.elapsed());
    match containers.kill(&ids, left).await {
        Ok(()) => {}
        Err(e) => tracing::error!(error = %e, "kill at shutdown failed"),
    }
    let left = KILL_BOUND
        .saturating_sub(began.elapsed())
        .max(Duration::from_secs(2));
    let still = match bounded(left, containers.running()).await {
        Some(Ok(running)) => running.into_iter().map(|f| f.name).collect(),
        Some(Err(e)) if e.engine_unreachable() || e.not_installed() => Vec::new(),
        _ => names,
    };
    (ids.len(), still)
}

/// Stops the machine (vm mode) if Clawdock started it and only agents run on it,
/// within the machine's own stop bound.
async fn stop_machine_if_ours(agents: &Agents) -> bool {
    let machine = agents.machine();
    if machine.mode() != Mode::Vm || !machine.started_by_us() {
        return false;
    }
    match bounded(KILL_BOUND, agents.containers().only_agents_run()).await {
        Some(Ok(true)) => {}
        Some(Ok(false)) => {
            tracing::info!("other containers run; leaving the machine up");
            return false;
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "could not list containers at exit");
            return false;
        }
        None => return false,
    }
    match bounded(machine.stop_bound() + MARGIN, machine.stop()).await {
        Some(Ok(())) => true,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "could not stop the machine at exit");
            false
        }
        None => {
            tracing::warn!("stopping the machine overran its bound");
            false
        }
    }
}

async fn bounded<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, work).await.ok()
}

/// A panic on the main thread ends the process without the shutdown routine: stop
/// this data folder's containers then, synchronously, as a last resort (nothing
/// would look after them; a gateway gets a few seconds to exit, not a SIGKILL).
/// Panics on other threads (a failed task) leave the app running, and the agents
/// with it.
pub fn install_panic_hook(containers: Containers) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if std::thread::current().name() == Some("main") {
            let stopped = containers.stop_all_blocking(PANIC_GRACE, KILL_BOUND);
            // Never `eprintln!`: with the terminal gone it panics again, in the
            // hook, and the process aborts. Nothing is left to tell if this fails.
            let _unwritable = writeln!(
                std::io::stderr(),
                "clawdock: panicked; stopped {stopped} agent container(s)"
            );
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fault: a panic in the routine was reported as a clean exit (code 0).
    #[test]
    fn a_failed_routine_is_not_a_clean_shutdown() {
        assert!(ShutdownReport::default().clean());
        let failed = ShutdownReport::failed(&"task 7 panicked");
        assert!(!failed.clean());
        assert!(failed.leftover[0].contains("task 7 panicked"), "{failed:?}");
    }
}
