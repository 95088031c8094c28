//! Live agent state: one `podman events` stream, and a container listing at start
//! and after each reconnect, keep every agent current, so reading state never
//! spawns a process.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use super::definition::{LABEL_AGENT, LABEL_HOME};
use super::{Agents, Container};
use crate::events::Change;
use crate::machine::{MachineEvent, Mode, RuntimeState};
use crate::podman::{Call, PodmanError, Stream};
use crate::store::{AgentStatus, Wanted};

/// A row of `podman ps --format json`. `Labels` is `null` when there are none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct PsRow {
    pub id: String,
    pub state: String,
    pub exit_code: Option<i32>,
    pub labels: Option<HashMap<String, String>>,
}

impl PsRow {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// A line of `podman events --format json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EventLine {
    status: String,
    #[serde(rename = "Type")]
    kind: String,
    attributes: Option<HashMap<String, String>>,
    /// Omitted when the exit code is 0.
    container_exit_code: Option<i32>,
    /// RFC 3339 with nanoseconds.
    time: String,
}

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

impl Agents {
    /// Follows Podman for as long as the app runs. Spawn it once.
    pub async fn watch(self) {
        let mut retry = FIRST_RETRY;
        let mut machine_events = self.machine().subscribe();
        loop {
            if self.is_shutting_down() {
                return;
            }
            // In vm mode there is nothing to follow while the machine is down; wait
            // for it to come up instead of retrying on a timer.
            if self.machine().mode() == Mode::Vm && !self.machine().is_ready() {
                loop {
                    match machine_events.recv().await {
                        Ok(MachineEvent::State {
                            state: RuntimeState::Ready,
                        }) => break,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            if self.machine().is_ready() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
            let began = tokio::time::Instant::now();
            match self.follow_once().await {
                Ok(()) => tracing::warn!("podman events ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "podman events failed; reconnecting"),
            }
            if began.elapsed() > Duration::from_secs(10) {
                retry = FIRST_RETRY;
            }
            if self.machine().mode() == Mode::Vm {
                // The stream may have ended because the machine stopped: read it again.
                self.machine().invalidate();
                self.machine().refresh().await;
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    async fn follow_once(&self) -> Result<(), PodmanError> {
        let mut stream = self.machine().podman().stream(&[
            "events",
            "--format",
            "json",
            "--filter",
            "type=container",
        ])?;
        // Listed after the stream is open, so no change falls between the two.
        self.sync_with_podman().await?;
        while let Some((which, line)) = stream.next_line().await {
            match which {
                Stream::Stdout => self.on_event_line(&line),
                Stream::Stderr => tracing::debug!(%line, "podman events stderr"),
            }
        }
        let code = stream.finish().await;
        tracing::debug!(%code, "podman events exited");
        Ok(())
    }

    fn on_event_line(&self, line: &str) {
        let Ok(event) = serde_json::from_str::<EventLine>(line) else {
            tracing::debug!(%line, "unreadable podman event");
            return;
        };
        if event.kind != "container" {
            return;
        }
        let Some(id) = event
            .attributes
            .as_ref()
            .and_then(|a| a.get(LABEL_AGENT))
            .and_then(|v| v.parse::<Uuid>().ok())
        else {
            return;
        };
        let seen = match event.status.as_str() {
            "start" | "restart" => Container::Running,
            "died" => Container::Exited(Some(event.container_exit_code.unwrap_or(0))),
            "remove" => Container::Missing,
            _ => return,
        };
        // Only a native engine shares this clock; a VM's may drift.
        let at = (self.machine().mode() == Mode::Native)
            .then(|| chrono::DateTime::parse_from_rfc3339(&event.time).ok())
            .flatten()
            .map(|t| t.with_timezone(&chrono::Utc));
        self.observe_at(id, seen, at);
    }

    /// Applies what Podman says of a container. While an operation runs, only the
    /// container state is noted: the operation decides the status.
    fn observe(&self, id: Uuid, seen: Container) {
        self.observe_at(id, seen, None);
    }

    /// `at`: when Podman saw it (events carry a time; listings are "now"). An exit
    /// from before the agent last started belongs to an earlier run and is ignored:
    /// events can arrive after the start they precede has finished.
    fn observe_at(&self, id: Uuid, seen: Container, at: Option<chrono::DateTime<chrono::Utc>>) {
        let change = self.update(id, |e| {
            if let (Container::Exited(_), Some(at), Some(started)) = (seen, at, e.started_at) {
                if at < started {
                    return None;
                }
            }
            let before = (e.record.status, e.record.error.clone());
            if e.activity.is_some() || e.record.deleting {
                // A listing taken while an operation starts the container may still
                // show it `created`; only real exits count then.
                if seen != Container::Exited(None) {
                    e.container = seen;
                }
                return None;
            }
            e.container = seen;
            let mut change = None;
            match seen {
                Container::Running => {
                    e.record.status = AgentStatus::Running;
                    e.record.error = None;
                }
                Container::Exited(code) => {
                    e.ready = false;
                    if e.record.wanted == Wanted::Running {
                        e.record.status = AgentStatus::Error;
                        e.record.error = Some(format!(
                            "The gateway stopped on its own (exit code {}).",
                            code.map_or_else(|| "unknown".into(), |c| c.to_string())
                        ));
                        e.record.wanted = Wanted::Stopped;
                        change = Some(Change::Died { exit_code: code });
                    } else if e.record.status != AgentStatus::Error {
                        e.record.status = AgentStatus::Stopped;
                    }
                }
                Container::Missing => {
                    e.ready = false;
                    if e.record.wanted == Wanted::Running {
                        e.record.status = AgentStatus::Error;
                        e.record.error =
                            Some("The container was removed outside Clawdock; start the agent to create it again.".into());
                        e.record.wanted = Wanted::Stopped;
                        change = Some(Change::Died { exit_code: None });
                    } else if e.record.status == AgentStatus::Running {
                        e.record.status = AgentStatus::Stopped;
                    }
                }
                Container::Unknown => {}
            }
            let after = (e.record.status, e.record.error.clone());
            (before != after || change.is_some()).then_some(change)
        });
        if let Ok(Some(change)) = change {
            if let Err(e) = self.persist() {
                tracing::error!(error = %e, "could not save agents.json");
            }
            self.emit(id, change);
        }
    }

    /// Lists this instance's containers and brings every record in line: at start,
    /// and after each reconnect of the event stream.
    pub(crate) async fn sync_with_podman(&self) -> Result<(), PodmanError> {
        let rows: Vec<PsRow> = self
            .machine()
            .podman()
            .run_json(Call::new([
                "ps",
                "--all",
                "--format",
                "json",
                "--filter",
                &format!("label={LABEL_HOME}={}", self.home_label()),
            ]))
            .await?;
        let mut by_agent: HashMap<Uuid, &PsRow> = HashMap::new();
        let mut orphans = Vec::new();
        let known: Vec<Uuid> = self.lock().keys().copied().collect();
        for row in &rows {
            match row.label(LABEL_AGENT).and_then(|v| v.parse::<Uuid>().ok()) {
                Some(id) if known.contains(&id) => {
                    by_agent.insert(id, row);
                }
                _ => orphans.push(row.id.clone()),
            }
        }
        let mut unfinished = Vec::new();
        for id in known {
            let seen = match by_agent.get(&id) {
                Some(row) if row.state == "running" => Container::Running,
                Some(row) if row.state == "created" || row.state == "configured" => {
                    Container::Exited(None)
                }
                Some(row) => Container::Exited(row.exit_code),
                None => Container::Missing,
            };
            // A record left `creating` or `deleting` by a crash has no operation
            // running any more: finish or fail it here.
            let (creating_orphaned, deleting) = self
                .update(id, |e| {
                    let orphaned = e.activity.is_none() && e.record.status == AgentStatus::Creating;
                    if orphaned {
                        e.record.status = AgentStatus::Error;
                        e.record.wanted = Wanted::Stopped;
                        e.record.error = Some(
                            "Creation was interrupted before it finished; start the agent to try again, or delete it."
                                .into(),
                        );
                    }
                    (orphaned, e.record.deleting && e.activity.is_none())
                })
                .unwrap_or((false, false));
            if deleting {
                unfinished.push(id);
                continue;
            }
            if creating_orphaned {
                if let Err(e) = self.persist() {
                    tracing::error!(error = %e, "could not save agents.json");
                }
                self.emit(id, None);
            }
            self.observe(id, seen);
        }
        for container in orphans {
            tracing::warn!(%container, "removing a Clawdock container no agent owns");
            let call = Call::new(["rm", "--force", "--volumes", "--ignore", &container])
                .timeout(self.settings().stop_timeout + self.machine().podman().call_timeout());
            if let Err(e) = self.machine().podman().run(call).await {
                tracing::warn!(error = %e, "could not remove an orphaned container");
            }
        }
        for id in unfinished {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.finish_delete(id).await {
                    tracing::warn!(agent = %id, error = %e, "could not finish an interrupted delete");
                }
            });
        }
        Ok(())
    }
}
