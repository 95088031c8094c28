//! The one shutdown routine: stop every running agent in parallel within the stop
//! timeout, kill what is left, remember which agents ran, then stop the machine if
//! Clawdock started it and nothing else runs on it. Every exit path ends here.

use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use crate::agents::Agents;
use crate::events::Event;
use crate::machine::Mode;
use crate::podman::Call;

/// What the routine did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownReport {
    /// Agents that ran and were stopped.
    pub stopped: Vec<Uuid>,
    /// Containers still up after the stop timeout, killed.
    pub killed: usize,
    pub machine_stopped: bool,
    pub elapsed_ms: u128,
}

/// Extra time over the stop timeout for podman itself.
const PODMAN_MARGIN: Duration = Duration::from_secs(10);

/// Runs the routine. `force` skips the graceful stop (a second Quit).
pub async fn run(agents: &Agents, force: bool) -> ShutdownReport {
    let began = Instant::now();
    agents.begin_shutdown();
    let targets = agents.mark_stopping_for_shutdown();
    let events = agents.events();
    let _no_listener = events.send(Event::Shutdown {
        stopping: targets.len(),
    });
    let podman = agents.machine().podman().clone();
    let stop_timeout = agents.settings().stop_timeout;
    if !force {
        let secs = stop_timeout.as_secs_f64().ceil() as u64;
        let stops = targets.iter().map(|(_, name)| {
            let podman = podman.clone();
            async move {
                let call = Call::new(["stop", "--ignore", "--time", &secs.to_string(), name])
                    .timeout(stop_timeout + PODMAN_MARGIN);
                if let Err(e) = podman.run(call).await {
                    tracing::warn!(container = %name, error = %e, "stop during shutdown failed");
                }
            }
        });
        futures::future::join_all(stops).await;
    }
    let killed = kill_leftovers(agents).await;
    let stopped: Vec<Uuid> = targets.iter().map(|(id, _)| *id).collect();
    agents.mark_stopped_after_shutdown(&stopped);
    let _no_listener = events.send(Event::Shutdown { stopping: 0 });

    let machine = agents.machine();
    let mut machine_stopped = false;
    if machine.mode() == Mode::Vm && machine.started_by_us() {
        match agents.only_agents_run().await {
            Ok(true) => match machine.stop().await {
                Ok(()) => machine_stopped = true,
                Err(e) => tracing::warn!(error = %e, "could not stop the machine at exit"),
            },
            Ok(false) => tracing::info!("other containers run; leaving the machine up"),
            Err(e) => tracing::warn!(error = %e, "could not list containers at exit"),
        }
    }
    let report = ShutdownReport {
        stopped,
        killed,
        machine_stopped,
        elapsed_ms: began.elapsed().as_millis(),
    };
    tracing::info!(?report, "shutdown finished");
    report
}

/// Kills every container of this instance that still runs.
pub async fn kill_leftovers(agents: &Agents) -> usize {
    let podman = agents.machine().podman();
    let filter = format!(
        "label={}={}",
        crate::agents::definition::LABEL_HOME,
        agents.home_label()
    );
    let listed = podman
        .run(Call::new(["ps", "--quiet", "--filter", &filter]))
        .await;
    let ids: Vec<String> = match listed {
        Ok(out) => out.stdout.split_whitespace().map(str::to_string).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list containers to kill");
            return 0;
        }
    };
    if ids.is_empty() {
        return 0;
    }
    tracing::warn!(
        count = ids.len(),
        "killing containers that did not stop in time"
    );
    let mut args = vec!["kill".to_string()];
    args.extend(ids.iter().cloned());
    if let Err(e) = podman.run(Call::new(args)).await {
        tracing::warn!(error = %e, "kill at shutdown failed");
    }
    ids.len()
}
