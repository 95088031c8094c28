//! The agents of one instance in memory: their states, logs and locks;
//! `transition`, which applies an input to one agent, saves `agents.json` when the
//! record changed and announces the change; and the transitions of every agent at
//! once (restore at launch, the engine going away, the shutdown).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::definition::{self, Provider};
use super::gateway::Gateway;
use super::logs::LogRing;
use super::state::{self, AgentState, Effect, Input};
use super::AgentError;
use crate::container::HostTraits;
use crate::containers::Containers;
use crate::events::Event;
use crate::machine::Machine;
use crate::settings::Settings;
use crate::store::{AgentRecord, AgentStatus, Store, StoreError, Wanted};
use crate::tasks::Tasks;
use crate::view::{Activity, AgentView};

/// A new agent's settings, made by a create or a restore.
pub(super) struct NewAgent {
    pub id: Uuid,
    pub name: String,
    pub provider_type: Option<String>,
    /// A custom provider's base URL as Clawdock wrote it (the record keeps it).
    pub provider_base_url: Option<String>,
    pub image: String,
    /// The image pinned by ID (a restore's, when the engine has it).
    pub image_id: Option<String>,
    pub memory_mib: u64,
    pub cpus: Option<f64>,
    /// The agent's disk limit (its folders, layer and log).
    pub disk_mib: u64,
}

/// Lines of a crashed gateway's output kept in the view.
const CRASH_LOG_LINES: usize = 10;

pub(super) struct Entry {
    pub state: AgentState,
    pub logs: LogRing,
    /// Serializes operations on this agent. Never taken while `entries` is held.
    pub op: Arc<tokio::sync::Mutex<()>>,
    /// Cancels the operation running now (a create, start, restart or update);
    /// every operation begins with a fresh one.
    pub cancel: CancellationToken,
    /// Cancels the crash loop's pending start (its back-off timer).
    pub revive: CancellationToken,
    /// Counts the agent's transitions: a listing applies what it saw only to
    /// agents that did not change while it was taken (what it saw may be stale).
    pub epoch: u64,
}

impl Entry {
    fn new(state: AgentState) -> Self {
        Self {
            state,
            logs: LogRing::default(),
            op: Arc::new(tokio::sync::Mutex::new(())),
            cancel: CancellationToken::new(),
            revive: CancellationToken::new(),
            epoch: 0,
        }
    }

    /// Clients see an agent until its delete is under way.
    fn visible(&self) -> bool {
        !self.state.record.deleting || self.state.live.activity == Some(Activity::Deleting)
    }
}

/// The agents of one Clawdock instance. Clone to share.
#[derive(Clone)]
pub struct Agents {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub settings: Settings,
    pub machine: Machine,
    pub containers: Containers,
    pub gateway: Gateway,
    pub store: Store,
    pub time_zone: String,
    /// Probed once, by the first operation that needs it; others wait for it.
    pub host: tokio::sync::OnceCell<HostTraits>,
    entries: Mutex<BTreeMap<Uuid, Entry>>,
    /// Serializes writes of `agents.json` so they land in order.
    save: Mutex<()>,
    pub events: broadcast::Sender<Event>,
    pub tasks: Tasks,
    pub stats: Arc<super::stats::StatsHub>,
    /// Wakes the reconciler before its period (an operation ended).
    pub resync: tokio::sync::Notify,
    /// The agents' proxy relay, started by the first container that needs it.
    pub relay: tokio::sync::Mutex<Option<Arc<crate::proxy_relay::Relay>>>,
}

impl Agents {
    /// Loads the records. A corrupt `agents.json` is moved aside, and records whose
    /// folder is outside the agents folder are refused; either comes back as the
    /// warning (the containers are adopted back at the first listing).
    pub fn load(
        settings: Settings,
        machine: Machine,
        events: broadcast::Sender<Event>,
        tasks: Tasks,
    ) -> Result<(Self, Option<String>), StoreError> {
        let store = Store::new(settings.agents_file());
        let loaded = store.load_within(&settings.agents_dir())?;
        let moved = loaded.moved_aside.map(|(path, reason)| {
            format!(
                "agents.json could not be read ({reason}); it was moved to {}. \
                 Agents whose containers still exist are recovered from them.",
                path.display()
            )
        });
        let refused = loaded.refused.map(|r| {
            format!(
                "agents.json held agents whose folder is not in {}; they were not loaded \
                 and were kept in {}: {}.",
                settings.agents_dir().display(),
                r.kept_in.display(),
                r.records.join("; ")
            )
        });
        let warning = match (moved, refused) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        };
        let home_label = super::identity::instance_label(&settings)?;
        let entries = loaded
            .agents
            .into_iter()
            .map(|r| (r.id, Entry::new(loaded_state(r, Utc::now()))))
            .collect();
        let containers = Containers::new(machine.engine().clone(), home_label);
        let agents = Self {
            inner: Arc::new(Inner {
                time_zone: iana_time_zone::get_timezone().unwrap_or_else(|_| "UTC".into()),
                settings,
                machine,
                containers,
                gateway: Gateway::default(),
                store,
                host: tokio::sync::OnceCell::new(),
                relay: tokio::sync::Mutex::new(None),
                entries: Mutex::new(entries),
                save: Mutex::new(()),
                events,
                tasks,
                stats: Arc::default(),
                resync: tokio::sync::Notify::new(),
            }),
        };
        Ok((agents, warning))
    }

    pub fn home_label(&self) -> &str {
        self.inner.containers.home_label()
    }

    pub fn list(&self) -> Vec<AgentView> {
        let entries = self.entries();
        let mut views: Vec<AgentView> = entries
            .values()
            .filter(|e| !e.state.record.deleting)
            .map(|e| e.state.view())
            .collect();
        views.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        views
    }

    pub fn get(&self, id: Uuid) -> Option<AgentView> {
        self.entries()
            .get(&id)
            .filter(|e| !e.state.record.deleting)
            .map(|e| e.state.view())
    }

    /// Applies one input to one agent: the only way an agent's state changes. Saves
    /// `agents.json` when the record changed and announces the new view when it (or
    /// the reason) changed.
    pub(super) fn transition(&self, id: Uuid, input: Input) -> Result<Vec<Effect>, AgentError> {
        let now = Utc::now();
        let mut revive = None;
        let begins = matches!(input, Input::Begin(_));
        let mut verify = false;
        let mut undo = None;
        let (effects, record_changed, announce) = {
            let mut entries = self.entries();
            let entry = entries.get_mut(&id).ok_or(AgentError::NotFound)?;
            if begins {
                undo = Some(entry.state.clone());
            }
            if let Input::Begin(_) = input {
                // A cancel belongs to one operation: each begins with its own token,
                // so one meant for an earlier operation never reaches it.
                entry.cancel = CancellationToken::new();
            }
            let before_record = entry.state.record.clone();
            let before_view = entry.state.view_at(now);
            let effects = state::apply(&mut entry.state, input, now);
            entry.epoch += 1;
            let view = entry.state.view_at(now);
            for effect in &effects {
                match effect {
                    Effect::CancelRevive => revive = Some(None),
                    Effect::Revive { after, due } => revive = Some(Some((*after, *due))),
                    Effect::Verify => verify = true,
                    Effect::Announce(_) | Effect::StopForShutdown => {}
                }
            }
            let change = effects.iter().find_map(|e| match e {
                Effect::Announce(change) => Some(change.clone()),
                _ => None,
            });
            let announce = (entry.visible() && (view != before_view || change.is_some()))
                .then_some((view, change));
            (effects, entry.state.record != before_record, announce)
        };
        let saved = if record_changed {
            self.persist()
        } else {
            Ok(())
        };
        if let Err(e) = saved {
            if let Some(before) = undo {
                // An operation that could not record its beginning does not begin:
                // the agent stays as it was (visible, not `deleting`).
                if let Some(entry) = self.entries().get_mut(&id) {
                    entry.state = before;
                }
                return Err(e.into());
            }
            // What Podman said stays true in memory, unsaved; said, and told.
            tracing::error!(agent = %id, error = %e, "could not save agents.json");
            self.after_transition(id, announce, revive, verify);
            return Err(e.into());
        }
        self.after_transition(id, announce, revive, verify);
        Ok(effects)
    }

    /// Announces a transition's new view and moves the crash loop's timer: the old
    /// one ends, a new one starts if asked.
    #[allow(clippy::type_complexity)]
    fn after_transition(
        &self,
        id: Uuid,
        announce: Option<(AgentView, Option<crate::events::Change>)>,
        revive: Option<Option<(std::time::Duration, chrono::DateTime<Utc>)>>,
        verify: bool,
    ) {
        if verify {
            self.verify_later(id);
        }
        if let Some((agent, change)) = announce {
            let _no_listener = self.inner.events.send(Event::Agent { agent, change });
        }
        if let Some(next) = revive {
            let cancel = self.entries().get_mut(&id).map(|entry| {
                entry.revive.cancel();
                entry.revive = CancellationToken::new();
                entry.revive.clone()
            });
            if let (Some((after, due)), Some(cancel)) = (next, cancel) {
                self.revive_later(id, after, due, cancel);
            }
        }
    }

    /// Runs [`Agents::verify`] as an operation of its own (it takes the agent's
    /// lock, so it waits for whatever holds it).
    fn verify_later(&self, id: Uuid) {
        let this = self.clone();
        let spawned = self.inner.tasks.spawn_op(async move {
            if let Err(e) = this.verify(id).await {
                tracing::warn!(agent = %id, error = %e, "could not check a running gateway");
            }
        });
        if spawned.is_none() {
            tracing::info!(agent = %id, "shutting down; a running gateway is not checked");
        }
    }

    /// Schedules the crash loops the store kept: each tries again when its
    /// back-off says (at once if that passed while Clawdock was closed).
    pub(crate) fn resume_crash_loops(&self) {
        let now = Utc::now();
        for s in self.states() {
            let due = s.live.crash.as_ref().and_then(|c| c.next_try);
            let Some(due) = due.filter(|_| s.live.activity.is_none() && !s.record.deleting) else {
                continue;
            };
            let after = (due - now).to_std().unwrap_or_default();
            let cancel = self.entries().get_mut(&s.record.id).map(|entry| {
                entry.revive.cancel();
                entry.revive = CancellationToken::new();
                entry.revive.clone()
            });
            if let Some(cancel) = cancel {
                self.revive_later(s.record.id, after, due, cancel);
            }
        }
    }

    /// The agent's transition count (see [`Entry::epoch`]).
    pub(super) fn epoch(&self, id: Uuid) -> Option<u64> {
        self.entries().get(&id).map(|e| e.epoch)
    }

    /// The crash loop's timer, owned by the core: reads the dead gateway's last
    /// lines for the view, waits out the back-off (a stop, a delete or the shutdown
    /// cancels it), then starts the agent again as an operation of its own.
    fn revive_later(
        &self,
        id: Uuid,
        after: std::time::Duration,
        due: chrono::DateTime<Utc>,
        cancel: CancellationToken,
    ) {
        let this = self.clone();
        self.inner.tasks.spawn_background(async move {
            let lines = async {
                let found = this.current(id).await.ok()??;
                this.containers()
                    .tail_logs(&found.id, CRASH_LOG_LINES)
                    .await
                    .ok()
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                lines = lines => if let Some(lines) = lines {
                    let _gone = this.transition(id, Input::CrashLogs { lines });
                },
            }
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(after) => {
                    let revived = this.inner.tasks.spawn_op({
                        let this = this.clone();
                        async move {
                            if let Err(e) = this.revive(id, due).await {
                                tracing::warn!(agent = %id, error = %e, "could not start a crashed agent again");
                            }
                        }
                    });
                    if revived.is_none() {
                        tracing::info!(agent = %id, "shutting down; the crashed agent is not started again");
                    }
                }
            }
        });
    }

    /// Records a new agent as `creating`, with a port no other agent holds.
    pub(super) fn record_new(
        &self,
        id: Uuid,
        name: String,
        provider: &Provider,
        memory_mib: u64,
        cpus: Option<f64>,
        disk_mib: u64,
    ) -> Result<AgentView, AgentError> {
        let shown = |port| {
            definition::provider_input_of_config(&definition::openclaw_config(port, provider))
        };
        self.insert_creating(
            NewAgent {
                id,
                name,
                provider_type: provider.type_name(),
                provider_base_url: provider.base_url().map(str::to_string),
                image: self.settings().agent_image.clone(),
                image_id: None,
                memory_mib,
                cpus,
                disk_mib,
            },
            provider.notice(),
            shown,
        )
    }

    /// Records an agent a restore made (its folder is in place) as `creating`,
    /// with a port no other agent holds and a fresh gateway token.
    pub(super) fn record_restored(
        &self,
        new: NewAgent,
        config: &serde_json::Value,
    ) -> Result<AgentView, AgentError> {
        let shown = |_| definition::provider_input_of_config(config);
        self.insert_creating(new, None, shown)
    }

    fn insert_creating(
        &self,
        new: NewAgent,
        notice: Option<String>,
        shown: impl FnOnce(u16) -> definition::ProviderInput,
    ) -> Result<AgentView, AgentError> {
        let id = new.id;
        let view = {
            let mut entries = self.entries();
            if entries
                .values()
                .any(|e| e.state.record.name.eq_ignore_ascii_case(&new.name))
            {
                return Err(AgentError::Duplicate(new.name));
            }
            let held: Vec<u16> = entries.values().map(|e| e.state.record.port).collect();
            let port = super::ports::free_port(self.settings().first_agent_port, &held)?;
            let record = AgentRecord {
                id,
                name: new.name,
                status: AgentStatus::Creating,
                port,
                dir: definition::agent_dir(&self.settings().agents_dir(), &id),
                token: super::identity::random_hex(32),
                created_at: Utc::now(),
                error: None,
                provider_type: new.provider_type,
                provider_base_url: new.provider_base_url,
                wanted: Wanted::Running,
                running_at_quit: false,
                deleting: false,
                image: new.image,
                memory_mib: Some(new.memory_mib),
                cpus: new.cpus,
                disk_mib: Some(new.disk_mib),
                rejected_image: None,
                generation: None,
                image_id: new.image_id,
                journal: None,
                crash: None,
                healthy_since: None,
                extra: serde_json::Map::new(),
            };
            let memory_notice = self.memory_notice(entries.len() + 1);
            let shown = shown(record.port);
            let mut state = AgentState::new(record);
            state.live.activity = Some(Activity::Creating);
            state.live.model_id = shown.model_id;
            state.live.base_url = shown.base_url;
            state.live.notice = match (notice, memory_notice) {
                (Some(a), Some(b)) => Some(format!("{a} {b}")),
                (a, b) => a.or(b),
            };
            let view = state.view();
            entries.insert(id, Entry::new(state));
            view
        };
        if let Err(e) = self.persist() {
            self.entries().remove(&id);
            return Err(e.into());
        }
        let _no_listener = self.inner.events.send(Event::Agent {
            agent: view.clone(),
            change: None,
        });
        Ok(view)
    }

    /// Adds an agent rebuilt from its container (the store lost it).
    pub(super) fn adopt(&self, state: AgentState) -> Result<(), AgentError> {
        let id = state.record.id;
        {
            let mut entries = self.entries();
            let name = &state.record.name;
            if entries.contains_key(&id)
                || entries
                    .values()
                    .any(|e| e.state.record.name.eq_ignore_ascii_case(name))
            {
                return Err(AgentError::Duplicate(name.clone()));
            }
            entries.insert(id, Entry::new(state));
        }
        self.persist()?;
        if let Some(agent) = self.get(id) {
            let _no_listener = self.inner.events.send(Event::Agent {
                agent,
                change: None,
            });
        }
        Ok(())
    }

    /// Drops a deleted agent's record and tells listeners.
    pub(super) fn forget(&self, id: Uuid) -> Result<(), AgentError> {
        self.entries().remove(&id);
        self.persist()?;
        let _no_listener = self.inner.events.send(Event::AgentRemoved { id });
        Ok(())
    }

    /// A delete that cannot finish now: listeners see the agent go; its record
    /// stays (`deleting`) until the next listing finishes the delete.
    pub(super) fn hide_until_deleted(&self, id: Uuid) -> Result<(), AgentError> {
        self.transition(id, Input::DeletePostponed)?;
        let _no_listener = self.inner.events.send(Event::AgentRemoved { id });
        Ok(())
    }

    pub(super) fn state(&self, id: Uuid) -> Result<AgentState, AgentError> {
        self.entries()
            .get(&id)
            .map(|e| e.state.clone())
            .ok_or(AgentError::NotFound)
    }

    pub(super) fn states(&self) -> Vec<AgentState> {
        self.entries().values().map(|e| e.state.clone()).collect()
    }

    pub(super) fn log_ring(&self, id: Uuid) -> Result<LogRing, AgentError> {
        self.entries()
            .get(&id)
            .map(|e| e.logs.clone())
            .ok_or(AgentError::NotFound)
    }

    /// The agent's operation lock; an agent being deleted takes no new operation.
    pub(super) fn op_lock(&self, id: Uuid) -> Result<Arc<tokio::sync::Mutex<()>>, AgentError> {
        self.entries()
            .get(&id)
            .filter(|e| !e.state.record.deleting)
            .map(|e| e.op.clone())
            .ok_or(AgentError::NotFound)
    }

    /// The operation lock of any agent, one being deleted included.
    pub(super) fn entry_lock(&self, id: Uuid) -> Result<Arc<tokio::sync::Mutex<()>>, AgentError> {
        self.entries()
            .get(&id)
            .map(|e| e.op.clone())
            .ok_or(AgentError::NotFound)
    }

    /// The token of the agent's current create, start or restart (an unknown
    /// agent's is cancelled already).
    pub(super) fn cancel_token(&self, id: Uuid) -> CancellationToken {
        self.entries()
            .get(&id)
            .map(|e| e.cancel.clone())
            .unwrap_or_else(|| {
                let gone = CancellationToken::new();
                gone.cancel();
                gone
            })
    }

    /// A fresh token for a part of an operation that a cancel must not end (an
    /// update's rollback to the container that worked).
    pub(super) fn fresh_cancel(&self, id: Uuid) {
        if let Some(entry) = self.entries().get_mut(&id) {
            entry.cancel = CancellationToken::new();
        }
    }

    pub(super) fn known_ids(&self) -> Vec<Uuid> {
        self.entries().keys().copied().collect()
    }

    pub(super) fn refuse_when_shutting_down(&self) -> Result<(), AgentError> {
        if self.inner.tasks.is_closing() {
            Err(AgentError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    pub(crate) fn containers(&self) -> &Containers {
        &self.inner.containers
    }

    pub(super) fn gateway(&self) -> &Gateway {
        &self.inner.gateway
    }

    pub(crate) fn machine(&self) -> &Machine {
        &self.inner.machine
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<Event> {
        &self.inner.events
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Entry>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self) -> Result<(), StoreError> {
        let _ordered = self
            .inner
            .save
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let records: Vec<AgentRecord> = {
            let entries = self.entries();
            let mut records: Vec<AgentRecord> =
                entries.values().map(|e| e.state.record.clone()).collect();
            records.sort_by_key(|r| r.created_at);
            records
        };
        self.inner.store.save(&records)
    }
}

/// Transitions of every agent at once: the restore list, the engine going away,
/// the shutdown taking the agents over and handing them back.
impl Agents {
    /// Ids of the agents that ran when the app last quit, noted as taken.
    pub(crate) fn take_running_at_quit(&self) -> Vec<Uuid> {
        let ids: Vec<Uuid> = self
            .states()
            .into_iter()
            .filter(|s| s.record.running_at_quit && !s.record.deleting)
            .map(|s| s.record.id)
            .collect();
        for id in &ids {
            if let Err(e) = self.transition(*id, Input::RestoreNoted) {
                tracing::error!(error = %e, "could not save agents.json");
            }
        }
        ids
    }

    /// The engine went away. In vm mode every agent that ran is stopped with a
    /// notice and remembered to start again when it is back; in native mode the
    /// gateways serve on under conmon, and only say the engine does not answer.
    /// Returns how many agents it touched.
    pub(crate) fn engine_lost(&self) -> usize {
        let containers_survive = self.machine().mode() == crate::machine::Mode::Native;
        let mut lost = 0;
        for s in self.states() {
            match self.transition(s.record.id, Input::EngineLost { containers_survive }) {
                Ok(effects) if !effects.is_empty() => lost += 1,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not save agents.json"),
            }
        }
        if lost > 0 {
            tracing::warn!(
                agents = lost,
                containers_survive,
                "Podman's engine went away"
            );
        }
        lost
    }

    /// Hands every agent that runs (or is being started) to the shutdown: it is
    /// remembered as running at quit and marked stopping. Returns how many.
    pub(crate) fn begin_shutdown(&self) -> usize {
        let mut taken = 0;
        for s in self.states() {
            match self.transition(s.record.id, Input::ShutdownBegan) {
                Ok(effects) if effects.contains(&state::Effect::StopForShutdown) => taken += 1,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not save agents.json at shutdown"),
            }
        }
        taken
    }

    /// Ids of the agents the shutdown took over.
    pub(crate) fn end_shutdown(&self) -> Vec<Uuid> {
        let mut stopped = Vec::new();
        for s in self.states() {
            if s.live.activity == Some(Activity::Stopping) && s.live.shutting_down {
                stopped.push(s.record.id);
            }
            if let Err(e) = self.transition(s.record.id, Input::ShutdownEnded) {
                tracing::error!(error = %e, "could not save agents.json at shutdown");
            }
        }
        stopped
    }
}

/// An agent as loaded, with what its `openclaw.json` says of its model (read
/// as the agent left it: a link or special file there reads as nothing).
fn loaded_state(record: AgentRecord, now: chrono::DateTime<Utc>) -> AgentState {
    let path = record.dir.join(super::config::CONFIG_FILE);
    let config = crate::agent_files::read_regular(&path, crate::agent_files::MAX_CONFIG_BYTES)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let mut state = AgentState::loaded(record, now);
    if let Some(config) = config {
        let shown = definition::provider_input_of_config(&config);
        state.live.model_id = shown.model_id;
        state.live.base_url = shown.base_url;
    }
    state
}
