//! Live agent state: one stream of the engine's events, and a listing of this data
//! folder's containers at start and after each reconnect, keep every agent current,
//! so reading state never spawns a process. A container of ours with no record
//! (the store was lost) is adopted back, never removed.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::definition;
use super::state::{AgentState, Container, Input, Live};
use super::Agents;
use crate::container::{ContainerId, Found};
use crate::engine::{PodmanError, Stream};
use crate::machine::Mode;
use crate::store::{AgentRecord, AgentStatus, Wanted};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// The notice an adopted agent carries.
pub const RECOVERED: &str = "Recovered from its container: Clawdock's list of agents had lost it.";

impl Agents {
    /// Follows Podman until the shutdown. Spawn it once, as a background task.
    /// `first_listing` gets the containers as the first successful listing found
    /// them.
    pub(crate) async fn watch(self, mut first_listing: Option<oneshot::Sender<Vec<Found>>>) {
        let mut retry = FIRST_RETRY;
        loop {
            // In vm mode there is nothing to follow while the machine is down: wait
            // for the engine to be ready again (readiness itself, not a state event:
            // a check that forgot and found it again announces no change).
            if self.machine().mode() == Mode::Vm {
                self.machine().wait_ready().await;
            }
            let began = tokio::time::Instant::now();
            match self.follow_once(&mut first_listing).await {
                Ok(()) => tracing::warn!("the engine's events ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "the engine's events failed; reconnecting"),
            }
            if began.elapsed() > Duration::from_secs(10) {
                retry = FIRST_RETRY;
            }
            // The stream may have ended because the engine went away: whoever
            // follows the engine checks it now, and reconciles the agents.
            self.containers().suspect_engine();
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    async fn follow_once(
        &self,
        first_listing: &mut Option<oneshot::Sender<Vec<Found>>>,
    ) -> Result<(), PodmanError> {
        let mut stream = self.containers().events().await?;
        // Listed after the stream's request is sent. The engine takes the
        // subscription within moments of it (it sends nothing back, not even the
        // answer's head, until an event comes, so there is nothing to wait on): a
        // change in those moments shows at the container's next event or the next
        // reconnect.
        let listing = self.sync_with_podman().await?;
        if let Some(tell) = first_listing.take() {
            let _nobody_waits = tell.send(listing);
        }
        let clock_shared = self.machine().mode() == Mode::Native;
        while let Some((which, line)) = stream.next_line().await {
            match which {
                Stream::Stdout => {
                    if let Some(mut happened) = self.containers().parse_event(&line, clock_shared) {
                        if happened.container == Container::Exited(Some(137)) {
                            happened.container = self
                                .why_killed(happened.agent, &happened.container_id)
                                .await;
                        } else if happened.container == Container::Running
                            && !self.known_to_run(happened.agent)
                        {
                            // A start nobody here is making, or the late word of
                            // one from before a stop (the engine's events come a
                            // moment after the fact): what is true now decides.
                            if let Some(now) =
                                self.containers().inspect(&happened.container_id).await
                            {
                                happened.container = now;
                            }
                        }
                        let _gone = self.transition(
                            happened.agent,
                            Input::Event {
                                container: happened.container,
                                at: happened.at,
                                id: happened.container_id,
                            },
                        );
                    }
                }
                Stream::Stderr => tracing::debug!(%line, "the engine's events: stderr"),
            }
        }
        stream.finish().await;
        tracing::debug!("the engine's events ended");
        Ok(())
    }

    /// Whether the agent's container is known to run, or is being started by an
    /// operation of Clawdock's (whose own start event is expected).
    fn known_to_run(&self, id: Uuid) -> bool {
        self.state(id)
            .is_ok_and(|s| s.live.container == Container::Running || s.live.activity.is_some())
    }

    /// Lists this data folder's containers and brings every record in line: at
    /// start, and after each reconnect of the event stream.
    pub(crate) async fn sync_with_podman(&self) -> Result<Vec<Found>, PodmanError> {
        let found = self.containers().list().await?;
        let known = self.known_ids();
        let mut by_agent: HashMap<Uuid, &Found> = HashMap::new();
        let mut strays = Vec::new();
        for f in &found {
            match f.agent {
                Some(id) if known.contains(&id) => {
                    // An update keeps the working container aside (`…-previous`)
                    // beside the new one: the agent's is the one with its name.
                    let aside = f.name.ends_with("-previous");
                    if !aside || !by_agent.contains_key(&id) {
                        by_agent.insert(id, f);
                    }
                }
                _ => strays.push(f),
            }
        }
        for id in known {
            let Ok(current) = self.state(id) else {
                continue;
            };
            if current.record.deleting {
                if current.live.activity.is_none() {
                    self.finish_delete_later(id);
                }
                continue;
            }
            // A record left `creating` by a crash has no operation running any more.
            let _gone = self.transition(id, Input::FoundInterrupted);
            let found = by_agent.get(&id);
            let _gone = self.transition(
                id,
                Input::Seen {
                    container: found.map_or(Container::Missing, |f| f.state),
                    id: found.map(|f| f.id.clone()),
                },
            );
        }
        for stray in strays {
            self.adopt_container(stray).await;
        }
        Ok(found)
    }

    /// A container killed (exit 137): for its memory limit, or by someone. Podman
    /// says `OOMKilled` where it knows (cgroup v2); on cgroup v1 hosts it never
    /// does, and the agent's memory peak against its limit decides.
    pub(super) async fn why_killed(&self, id: Uuid, container: &ContainerId) -> Container {
        if let Some(Container::OutOfMemory) = self.containers().inspect(container).await {
            return Container::OutOfMemory;
        }
        let traits = self.inner.host.get().copied().unwrap_or_default();
        let limit = self
            .state(id)
            .ok()
            .map(|s| self.limits_of(&s.record).memory_mib);
        match limit {
            Some(limit) if traits.cgroup_v1 => {
                if crate::cgroup_v1::memory_peak_reached(id, limit) == Some(true) {
                    Container::OutOfMemory
                } else {
                    Container::Exited(Some(137))
                }
            }
            _ => Container::Exited(Some(137)),
        }
    }

    fn finish_delete_later(&self, id: Uuid) {
        let this = self.clone();
        let spawned = self.inner.tasks.spawn_op(async move {
            if let Err(e) = this.finish_delete(id).await {
                tracing::warn!(agent = %id, error = %e, "could not finish an interrupted delete");
            }
        });
        if spawned.is_none() {
            tracing::info!(agent = %id, "shutting down; the delete finishes at the next start");
        }
    }

    /// Rebuilds the record of a container of ours that has none, from its labels,
    /// its settings and the agent's folder. Never removes anything.
    async fn adopt_container(&self, stray: &Found) {
        let recovered = match self.containers().recover(&stray.id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(container = %stray.id, name = %stray.name, error = %e,
                    "a container of this data folder has no agent and cannot be recovered; leaving it alone");
                return;
            }
        };
        let dir = definition::agent_dir(&self.settings().agents_dir(), &recovered.agent);
        // Read without following a link: the agent can write this file.
        let config_path = dir.join(super::config::CONFIG_FILE);
        let provider_type = crate::agent_files::blocking(move || {
            crate::agent_files::read_regular(&config_path, crate::agent_files::MAX_CONFIG_BYTES)
        })
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .and_then(|config| definition::provider_of_config(&config));
        let running = recovered.state == Container::Running;
        let record = AgentRecord {
            id: recovered.agent,
            name: recovered.name,
            status: if running {
                AgentStatus::Running
            } else {
                AgentStatus::Stopped
            },
            port: recovered.port,
            dir,
            token: recovered.token,
            created_at: recovered.created_at,
            error: None,
            provider_type,
            // The agent's folder is the agent's: its provider's address is not
            // Clawdock's record, so none is adopted (the export then lets out 443
            // only and says so).
            provider_base_url: None,
            wanted: if running {
                Wanted::Running
            } else {
                Wanted::Stopped
            },
            running_at_quit: false,
            deleting: false,
            image: recovered.image,
            memory_mib: recovered.memory_mib,
            cpus: recovered.cpus,
            rejected_image: None,
            extra: serde_json::Map::new(),
        };
        let name = record.name.clone();
        let state = AgentState {
            record,
            live: Live {
                container: recovered.state,
                container_id: Some(stray.id.clone()),
                notice: Some(RECOVERED.into()),
                ..Live::default()
            },
        };
        match self.adopt(state) {
            Ok(()) => {
                tracing::warn!(agent = %name, container = %stray.id, "recovered an agent from its container")
            }
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "could not recover an agent from its container")
            }
        }
    }
}
