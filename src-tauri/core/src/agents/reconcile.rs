//! The reconciler: one listing of this data folder's containers compared with
//! every record, and acted on. It runs at each (re)connect of the event stream,
//! at a bounded period while anything runs, and when an operation ends, so what
//! an event missed (a stream that never answers, a listing that raced it) is
//! found by looking again, as Kubernetes' kubelet does. A record with a journal
//! and no operation is an interrupted operation: it is finished or rolled back
//! ([`super::repair`]). Containers of the agent that are not its own are removed;
//! a container of ours with no record (the store was lost) is adopted back, never
//! removed.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use super::definition;
use super::own::pick_current;
use super::state::{AgentState, Container, Input, Live};
use super::Agents;
use crate::container::Found;
use crate::engine::PodmanError;
use crate::machine::Mode;
use crate::store::{AgentRecord, AgentStatus, Wanted};

/// How long the reconciler waits, once asked, for other operations to end too.
const SETTLE: Duration = Duration::from_millis(250);

/// The notice an adopted agent carries.
pub const RECOVERED: &str = "Recovered from its container: Clawdock's list of agents had lost it.";

impl Agents {
    /// Lists this data folder's containers and brings every record in line with
    /// what the engine holds. An agent that changed while the listing was taken
    /// is left for the next one: what the listing says of it may be stale.
    pub(crate) async fn sync_with_podman(&self) -> Result<Vec<Found>, PodmanError> {
        let before: Vec<(Uuid, u64)> = self
            .known_ids()
            .into_iter()
            .filter_map(|id| Some((id, self.epoch(id)?)))
            .collect();
        let found = self.containers().list().await?;
        let mut by_agent: HashMap<Uuid, Vec<Found>> = HashMap::new();
        let mut strays = Vec::new();
        for f in &found {
            match f.agent {
                Some(id) if before.iter().any(|(known, _)| *known == id) => {
                    by_agent.entry(id).or_default().push(f.clone());
                }
                _ => strays.push(f.clone()),
            }
        }
        for (id, epoch) in before {
            let mine = by_agent.remove(&id).unwrap_or_default();
            self.reconcile_agent(id, epoch, mine).await;
        }
        // Of several containers of one lost agent, the running one is adopted.
        strays.sort_by_key(|f| f.state != Container::Running);
        for stray in &strays {
            self.adopt_container(stray).await;
        }
        Ok(found)
    }

    /// One agent against its containers as listed (`epoch`: its transition count
    /// when the listing began).
    async fn reconcile_agent(&self, id: Uuid, epoch: u64, mine: Vec<Found>) {
        let Ok(current) = self.state(id) else {
            return;
        };
        let idle = current.live.activity.is_none();
        if current.record.deleting {
            if idle {
                self.run_later(id, "finish an interrupted delete", |this| async move {
                    this.finish_delete(id).await
                });
            }
            return;
        }
        if current.record.journal.is_some() {
            if idle {
                self.run_later(id, "repair an interrupted operation", |this| async move {
                    this.repair(id).await
                });
            }
            return;
        }
        if self.epoch(id) != Some(epoch) {
            return;
        }
        // A record left `creating` by a crash has no operation running any more.
        let _gone = self.transition(id, Input::FoundInterrupted);
        let (own, others) = pick_current(mine, current.record.generation.as_deref());
        if idle && !others.is_empty() {
            self.run_later(
                id,
                "remove containers that are not the agent's own",
                |this| async move { this.remove_left_overs(id).await },
            );
        }
        let first_look = current.live.container == Container::Unknown;
        let mut finished_at = None;
        if let (Some(own), true) = (&own, first_look) {
            if current.record.image_id.is_none() {
                // An agent of an older version: pinned to the image it runs.
                let _gone = self.transition(
                    id,
                    Input::Pinned {
                        generation: own.generation.clone(),
                        image_id: Some(own.image_id.clone()),
                    },
                );
            }
            let ended = matches!(own.state, Container::Exited(_) | Container::OutOfMemory);
            let legacy = own.generation.is_none();
            if legacy || (ended && current.record.wanted == Wanted::Running) {
                match self.containers().details(&own.id).await {
                    Ok(details) => {
                        finished_at = details.finished_at;
                        if legacy && details.restart_policy.is_some() {
                            self.run_later(id, "make an old container again", |this| async move {
                                this.remake_legacy(id).await
                            });
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(agent = %id, error = %e, "could not inspect the agent's container")
                    }
                }
            }
        }
        let _gone = self.transition(
            id,
            Input::Seen {
                container: own.as_ref().map_or(Container::Missing, |f| f.state),
                id: own.map(|f| f.id),
                finished_at,
            },
        );
    }

    /// Runs `work` as an operation of its own (it takes the agent's lock, so it
    /// waits for whatever holds it); said in the log if it fails.
    pub(super) fn run_later<F, Fut>(&self, id: Uuid, what: &'static str, work: F)
    where
        F: FnOnce(Agents) -> Fut,
        Fut: std::future::Future<Output = Result<(), super::AgentError>> + Send + 'static,
    {
        let running = work(self.clone());
        let spawned = self.inner.tasks.spawn_op(async move {
            if let Err(e) = running.await {
                tracing::warn!(agent = %id, error = %e, "could not {what}");
            }
        });
        if spawned.is_none() {
            tracing::info!(agent = %id, "shutting down; the next launch will {what}");
        }
    }

    /// The reconciler's own beat: a listing every `period` while any agent is
    /// known and the engine is ready, and one soon after each operation ends
    /// ([`Agents::reconcile_soon`]). Spawn it once, as a background task.
    pub(crate) async fn reconcile_forever(self, period: Duration) {
        let period = period.max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.inner.resync.notified() => {
                    // Operations often end together (Start all, a launch's
                    // restore): one listing for the lot.
                    tokio::time::sleep(SETTLE).await;
                }
            }
            if self.known_ids().is_empty() {
                continue;
            }
            if self.machine().mode() == Mode::Vm && !self.machine().is_ready() {
                // Nothing to list while the machine is down; its return is
                // followed by the engine monitor.
                continue;
            }
            if let Err(e) = self.sync_with_podman().await {
                tracing::debug!(error = %e, "the reconciler's listing failed");
            }
        }
    }

    /// Asks the reconciler to look again soon (an operation ended: a death it
    /// only noted is acted on, what it left is checked).
    pub(super) fn reconcile_soon(&self) {
        self.inner.resync.notify_one();
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
            // Running once its gateway answers (the next listing checks it).
            status: AgentStatus::Stopped,
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
            disk_mib: None,
            rejected_image: None,
            generation: recovered.generation,
            image_id: Some(recovered.image_id),
            journal: None,
            crash: None,
            healthy_since: None,
            extra: serde_json::Map::new(),
        };
        let name = record.name.clone();
        let state = AgentState {
            record,
            live: Live {
                container_id: Some(stray.id.clone()),
                notice: Some(RECOVERED.into()),
                ..Live::default()
            },
        };
        match self.adopt(state) {
            Ok(()) => {
                tracing::warn!(agent = %name, container = %stray.id, "recovered an agent from its container");
                // The next listing looks at it as at any agent (a running one is
                // shown running once its gateway answers).
                self.reconcile_soon();
            }
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "could not recover an agent from its container")
            }
        }
    }
}
