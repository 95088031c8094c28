//! One Clawdock instance: the settings, the machine, the agents and the event
//! channel, started together. The tray, the API and the CLI all drive this.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::broadcast;

use crate::agents::{AgentError, Agents};
use crate::engine::Installation;
use crate::events::Event;
use crate::instance::{InstanceLock, LockError};
use crate::machine::{Machine, MachineEvent, MachineSpec, RuntimeState, SetupStep};
use crate::settings::Settings;
use crate::shutdown::{self, ShutdownReport};
use crate::status::{RuntimeStatus, SetupProgress};
use crate::store::StoreError;
use crate::tasks::Tasks;

/// A running Clawdock core. Cheap to clone.
#[derive(Clone)]
pub struct Clawdock {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    machine: Machine,
    agents: Agents,
    events: broadcast::Sender<Event>,
    podman_version: Mutex<Option<String>>,
    setup: Mutex<Option<(Instant, SetupProgress)>>,
    store_warning: Option<String>,
    tasks: Tasks,
    /// The shutdown routine, once begun: every caller awaits the same run, which
    /// belongs to no caller (a client that hangs up cannot cancel it).
    shutdown: Mutex<Option<Shared<BoxFuture<'static, ShutdownReport>>>>,
    /// Held for the life of the instance; released when the shutdown ends.
    lock: Mutex<InstanceLock>,
    /// The status last sent, so listeners get changes only.
    last_published: Mutex<Option<RuntimeStatus>>,
    /// Becomes true once podman and the machine were looked at the first time.
    probed: tokio::sync::watch::Sender<bool>,
    /// Where this instance's API listens (set by the API when it starts): the
    /// one-time dashboard addresses are made on it.
    api_url: Mutex<Option<String>>,
    /// The one-time dashboard addresses given out and not yet used.
    dashboard_tickets: Mutex<crate::dashboard::Tickets>,
    /// Asks to show the window; the tray app listens, `serve` has nobody who can.
    window_wanted: broadcast::Sender<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not create the data folder {0}: {1}")]
    Home(String, std::io::Error),
    #[error(transparent)]
    AlreadyRunning(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This instance has no window to show: it is `clawdock serve`.
#[derive(Debug, thiserror::Error)]
#[error("This Clawdock has no window: it runs as `clawdock serve`.")]
pub struct NoWindow;

/// How long a launch's restore waits for the event stream's first listing before
/// its agents look for their containers themselves.
const FIRST_LISTING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Clawdock {
    /// `launch`, then waits until podman and the machine were looked at, so the
    /// first status is settled.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        let this = Self::launch(settings)?;
        this.probed().await;
        Ok(this)
    }

    /// Takes the data folder's lock and loads the agents, and returns at once:
    /// podman and the machine are looked at in the background (the status says
    /// `starting` until then), so a server can answer before a slow or wedged
    /// podman does. Agents that ran at the last quit are then started again
    /// (unless the setting says not to).
    pub fn launch(settings: Settings) -> Result<Self, StartError> {
        crate::store::create_private_dir(&settings.home)
            .map_err(|e| StartError::Home(settings.home.display().to_string(), e))?;
        let lock = InstanceLock::acquire(&settings.home)?;
        // Ours alone now: what a backup or restore cut short left goes.
        crate::agents::sweep_leftovers(&settings);
        let tasks = Tasks::default();
        let (events, _) = broadcast::channel(1024);
        let machine = Machine::with_engine(
            settings.podman.clone(),
            settings.mode,
            settings.machine_name.clone(),
            settings.machine_timings.clone(),
            settings.engine_source(),
        );
        let (agents, store_warning) = Agents::load(
            settings.clone(),
            machine.clone(),
            events.clone(),
            tasks.clone(),
        )?;
        let this = Self {
            inner: Arc::new(Inner {
                settings,
                machine,
                agents,
                events,
                podman_version: Mutex::new(None),
                setup: Mutex::new(None),
                store_warning,
                tasks,
                shutdown: Mutex::new(None),
                lock: Mutex::new(lock),
                last_published: Mutex::new(None),
                probed: tokio::sync::watch::channel(false).0,
                api_url: Mutex::new(None),
                dashboard_tickets: Mutex::new(crate::dashboard::Tickets::default()),
                window_wanted: broadcast::channel(4).0,
            }),
        };
        this.spawn_machine_relay();
        let machine = this.inner.machine.clone();
        let agents = this.inner.agents.clone();
        let restore = this.inner.settings.restore_agents;
        let to_restore = agents.take_running_at_quit();
        let tasks = this.inner.tasks.clone();
        let probing = this.clone();
        let resync_period = this.inner.settings.resync_period;
        let update_check = this.inner.settings.update_check;
        let disk_period = this.inner.settings.disk_check_period;
        this.inner.tasks.spawn_background(async move {
            probing.check_podman().await;
            let first_state = machine.refresh().await;
            // After the restore list is taken: from now on, agents the engine
            // takes down are the monitor's to bring back.
            probing.spawn_engine_monitor();
            probing.spawn_resume_watch();
            // The event stream's first listing is the launch's only one: the
            // restore reads it rather than listing again, per agent; and when the
            // engine is there, the first state is announced once it was read
            // (subscribed first, then listed), never the store's guess before it.
            let (listed, first_listing) = tokio::sync::oneshot::channel();
            tasks.spawn_background(agents.clone().watch(Some(listed)));
            let mut first_listing = Some(first_listing);
            let mut listing = None;
            if first_state == RuntimeState::Ready {
                listing = wait_first_listing(&mut first_listing).await;
            }
            probing.inner.probed.send_replace(true);
            probing.publish_status();
            agents.resume_crash_loops();
            tasks.spawn_background(agents.clone().reconcile_forever(resync_period));
            if let Some(every) = update_check {
                tasks.spawn_background(agents.clone().check_updates_forever(every));
            }
            tasks.spawn_background(agents.clone().watch_disk(disk_period));
            if restore && !to_restore.is_empty() {
                // Bring a stopped machine up only when there are agents to bring
                // back: starting a VM unasked is rude.
                if first_state != RuntimeState::Ready && machine.ensure_ready().await.is_ok() {
                    listing = wait_first_listing(&mut first_listing).await;
                }
                agents.restore(to_restore, listing.as_deref());
            }
        });
        Ok(this)
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Returns once podman and the machine were looked at the first time.
    pub async fn probed(&self) {
        let mut probed = self.inner.probed.subscribe();
        let _closed = probed.wait_for(|done| *done).await;
    }

    /// Whether the tray app starts at login; `None` without a login item (`serve`).
    pub fn launch_at_login(&self) -> Result<Option<bool>, crate::login_item::LoginItemError> {
        self.inner
            .settings
            .login_item
            .as_ref()
            .map(crate::login_item::LoginItem::enabled)
            .transpose()
    }

    /// Writes or removes the login item; `Err(None)` without one (`serve`).
    pub fn set_launch_at_login(
        &self,
        on: bool,
    ) -> Result<(), Option<crate::login_item::LoginItemError>> {
        let item = self.inner.settings.login_item.as_ref().ok_or(None)?;
        item.set(on).map_err(Some)?;
        tracing::info!(on, "launch at login changed");
        let _no_listener = self.inner.events.send(Event::Settings {
            launch_at_login: Some(on),
        });
        Ok(())
    }

    pub fn agents(&self) -> &Agents {
        &self.inner.agents
    }

    /// Records where this instance's API listens (`None` once it closed).
    pub fn set_api_url(&self, url: Option<String>) {
        *lock(&self.inner.api_url) = url;
    }

    /// "Open dashboard": a one-time address on Clawdock's own API that takes the
    /// visitor to the agent's dashboard signed in (see [`crate::dashboard`]). It
    /// holds no token, so it may go on a command line (the opener's).
    pub fn dashboard_link(&self, id: uuid::Uuid) -> Result<String, AgentError> {
        // Refused now, while the caller listens, when the agent does not run.
        self.inner.agents.dashboard_url(id)?;
        let base = lock(&self.inner.api_url).clone().ok_or_else(|| {
            AgentError::Internal(
                "Clawdock's API is not listening, so there is no address to open the dashboard from"
                    .into(),
            )
        })?;
        let ticket = lock(&self.inner.dashboard_tickets).issue(id, Instant::now());
        Ok(format!("{base}{}{ticket}", crate::dashboard::ROUTE_PREFIX))
    }

    /// The dashboard's address with its token that the one-time `ticket` stands
    /// for; `None` when the ticket is unknown, used or expired (it is used now).
    pub fn redeem_dashboard_link(&self, ticket: &str) -> Option<Result<String, AgentError>> {
        let id = lock(&self.inner.dashboard_tickets).redeem(ticket, Instant::now())?;
        Some(self.inner.agents.dashboard_url(id))
    }

    pub fn machine(&self) -> &Machine {
        &self.inner.machine
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Asks whoever shows this instance's window (the tray app) to show it: a
    /// second launch of the app on the same data folder does, through the API.
    pub fn show_window(&self) -> Result<(), NoWindow> {
        self.inner
            .window_wanted
            .send(())
            .map(|_listeners| ())
            .map_err(|_nobody| NoWindow)
    }

    /// The requests of [`Clawdock::show_window`], for the one who can show the
    /// window; while nobody holds one, the requests are refused.
    pub fn window_requests(&self) -> broadcast::Receiver<()> {
        self.inner.window_wanted.subscribe()
    }

    /// Asks podman for its version again (the wizard's "Check again").
    pub async fn check_podman(&self) -> RuntimeStatus {
        let version = match self.inner.settings.podman.installation().await {
            Installation::Installed { version, .. } => Some(version),
            Installation::Missing { .. } => None,
        };
        *lock(&self.inner.podman_version) = version;
        if self.inner.machine.last_state().is_some() {
            self.inner.machine.refresh().await;
        }
        self.runtime_status()
    }

    /// The runtime as last observed. Spawns no process.
    pub fn runtime_status(&self) -> RuntimeStatus {
        let version = lock(&self.inner.podman_version).clone();
        if !*self.inner.probed.borrow() {
            let mut status = RuntimeStatus::probing(self.inner.machine.mode());
            status.store_warning = self.inner.store_warning.clone();
            return status;
        }
        let state = if version.is_none() {
            RuntimeState::Unavailable
        } else {
            self.inner
                .machine
                .last_state()
                .unwrap_or(RuntimeState::Starting)
        };
        let mut status = RuntimeStatus::new(&state, self.inner.machine.mode(), version);
        status.setup = lock(&self.inner.setup)
            .as_ref()
            .map(|(began, p)| SetupProgress {
                elapsed_secs: began.elapsed().as_secs(),
                ..p.clone()
            });
        if let Some(setup) = &status.setup {
            if setup.running && setup.step == SetupStep::Init {
                // The machine is being created: not there yet, but no setup to offer.
                status.machine_initialized = Some(false);
                status.needs_setup = Some(false);
            }
        }
        status.store_warning = self.inner.store_warning.clone();
        if self.inner.machine.mode() == crate::machine::Mode::Vm {
            status.machine_memory_mib = self.inner.machine.memory_mib();
        }
        status.machine_cpus = Some(self.inner.machine.cpus());
        status
    }

    /// Creates and starts the Podman machine in the background (the wizard's
    /// step 3 and 4). Progress and the outcome arrive as events.
    pub fn setup_runtime(&self, spec: MachineSpec) -> Result<(), AgentError> {
        spec.validate().map_err(AgentError::InvalidInput)?;
        if lock(&self.inner.podman_version).is_none() {
            return Err(AgentError::RuntimeUnavailable(
                crate::engine::install_hint().into(),
            ));
        }
        *lock(&self.inner.setup) = Some((
            Instant::now(),
            SetupProgress {
                running: true,
                step: SetupStep::Init,
                line: "Preparing...".into(),
                done_bytes: None,
                total_bytes: None,
                percent: None,
                eta_secs: None,
                elapsed_secs: 0,
                error: None,
            },
        ));
        self.publish_status();
        let this = self.clone();
        let spawned = self.inner.tasks.spawn_op(async move {
            let result = this.inner.machine.setup(spec).await;
            if let Some((_, p)) = lock(&this.inner.setup).as_mut() {
                p.running = false;
                p.error = result.as_ref().err().map(ToString::to_string);
            }
            this.publish_status();
        });
        spawned.map(drop).ok_or(AgentError::ShuttingDown)
    }

    /// Starts the machine (or checks the engine in native mode). An operation like
    /// any other: refused once the shutdown began (it would start the machine the
    /// routine is stopping), and waited for by it.
    pub async fn start_runtime(&self) -> Result<RuntimeStatus, AgentError> {
        let this = self.clone();
        let handle = self
            .inner
            .tasks
            .spawn_op(async move { this.inner.machine.ensure_ready().await })
            .ok_or(AgentError::ShuttingDown)?;
        handle
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        Ok(self.runtime_status())
    }

    /// Stops the agents, then the machine. Only a machine Clawdock started and on
    /// which only agents run, unless `force`: someone else's work may be on it.
    /// Runs detached: a client that hangs up does not leave it half-stopped.
    pub async fn stop_runtime(&self, force: bool) -> Result<RuntimeStatus, AgentError> {
        let machine = &self.inner.machine;
        if machine.mode() == crate::machine::Mode::Vm && !force {
            if !machine.started_by_us() {
                return Err(AgentError::NotOurs(
                    "Clawdock did not start this Podman machine; stop it yourself, or ask with force."
                        .into(),
                ));
            }
            if !self.inner.agents.containers().only_agents_run().await? {
                return Err(AgentError::NotOurs(
                    "Other containers run on this Podman machine; stopping it would stop them too. Ask with force to stop it anyway."
                        .into(),
                ));
            }
        }
        let this = self.clone();
        let handle = self
            .inner
            .tasks
            .spawn_op(async move {
                this.inner.agents.stop_all().await;
                this.inner.machine.stop().await
            })
            .ok_or(AgentError::ShuttingDown)?;
        handle
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        Ok(self.runtime_status())
    }

    /// Runs the shutdown routine once; every caller, now or later, gets the same
    /// report. The routine runs on its own task, bounded phase by phase, and
    /// releases the data folder's lock when it ends.
    pub async fn shutdown(&self) -> ShutdownReport {
        let run = {
            let mut slot = lock(&self.inner.shutdown);
            slot.get_or_insert_with(|| {
                let this = self.clone();
                let task = tokio::spawn(async move {
                    let report = shutdown::run(&this.inner.agents, &this.inner.tasks).await;
                    lock(&this.inner.lock).release();
                    report
                });
                async move {
                    task.await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "the shutdown routine failed");
                        ShutdownReport::failed(&e)
                    })
                }
                .boxed()
                .shared()
            })
            .clone()
        };
        run.await
    }

    /// Resolves once the shutdown has begun, whoever began it (`POST /shutdown`,
    /// the tray): the owner of the process then waits for it and exits.
    pub async fn shutdown_begun(&self) {
        self.inner.tasks.closed().await;
    }

    /// Kills what is left right away (a second Quit while stopping). Returns the
    /// names of containers still running after.
    pub async fn force_shutdown(&self) -> Vec<String> {
        self.inner.tasks.close();
        let (killed, leftover) = shutdown::kill_leftovers(self.inner.agents.containers()).await;
        tracing::warn!(killed, ?leftover, "forced shutdown");
        leftover
    }

    /// Kills this data folder's containers if the process panics on its main
    /// thread (see [`shutdown::install_panic_hook`]).
    pub fn install_panic_hook(&self) {
        shutdown::install_panic_hook(self.inner.agents.containers().clone());
    }

    /// Reads the machine and the engine again now (after a wake-up, a failed call,
    /// an ended event stream) and brings the agents in line: if the engine is gone
    /// (confirmed: see [`Machine::recheck`]), the agents that ran are stopped with a
    /// notice; if it is there, the listing corrects every agent.
    pub async fn check_engine(&self) -> RuntimeState {
        let state = self.inner.machine.recheck().await;
        if state == RuntimeState::Ready {
            if let Err(e) = self.inner.agents.sync_with_podman().await.map(drop) {
                tracing::warn!(error = %e, "could not list the containers after an engine check");
            }
        } else {
            self.inner.agents.engine_lost();
        }
        state
    }

    /// Follows the engine: any sign it went away (a call that found it
    /// unreachable, the event stream ending) makes it be checked at once; when it
    /// is back, the agents it took down start again.
    fn spawn_engine_monitor(&self) {
        let this = self.clone();
        let mut machine_events = self.inner.machine.subscribe();
        self.inner.tasks.spawn_background(async move {
            let agents = this.inner.agents.clone();
            loop {
                tokio::select! {
                    () = agents.containers().engine_suspect() => {
                        let state = this.check_engine().await;
                        tracing::info!(?state, "engine checked");
                    }
                    event = machine_events.recv() => match event {
                        Ok(MachineEvent::State { state: RuntimeState::Ready }) => {
                            let back = agents.take_running_at_quit();
                            if !back.is_empty() && this.inner.settings.restore_agents {
                                tracing::info!(agents = back.len(), "engine back; starting the agents it took down");
                                agents.restore(back, None);
                            }
                        }
                        Ok(MachineEvent::State {
                            state: RuntimeState::Stopped | RuntimeState::Absent | RuntimeState::Error { .. },
                        }) => {
                            agents.engine_lost();
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }

    /// Runs a follower of the shell's (a system signal) as one of the core's
    /// tasks, so the shutdown cancels it.
    pub fn spawn_background(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn_background(work);
    }

    /// Notices a resume from sleep on any platform: the monotonic clock stands
    /// still while the system sleeps, the wall clock does not. Then the engine is
    /// checked, as after logind's signal.
    fn spawn_resume_watch(&self) {
        const TICK: std::time::Duration = std::time::Duration::from_secs(5);
        const SLEPT: std::time::Duration = std::time::Duration::from_secs(10);
        let this = self.clone();
        self.inner.tasks.spawn_background(async move {
            let mut wall = std::time::SystemTime::now();
            let mut mono = Instant::now();
            loop {
                tokio::time::sleep(TICK).await;
                let (wall_now, mono_now) = (std::time::SystemTime::now(), Instant::now());
                let wall_passed = wall_now.duration_since(wall).unwrap_or_default();
                if wall_passed > mono_now.duration_since(mono) + SLEPT {
                    tracing::info!(?wall_passed, "the system slept; checking Podman");
                    this.check_engine().await;
                }
                (wall, mono) = (wall_now, mono_now);
            }
        });
    }

    /// Turns machine events into app events: state changes become runtime status,
    /// init output becomes setup progress.
    fn spawn_machine_relay(&self) {
        let mut rx = self.inner.machine.subscribe();
        let this = self.clone();
        self.inner.tasks.spawn_background(async move {
            loop {
                match rx.recv().await {
                    Ok(MachineEvent::State { .. }) => this.publish_status(),
                    Ok(MachineEvent::Progress {
                        step,
                        line,
                        done_bytes,
                        total_bytes,
                        eta_secs,
                    }) => {
                        if let Some((_, p)) = lock(&this.inner.setup).as_mut() {
                            if p.step != step {
                                p.done_bytes = None;
                                p.total_bytes = None;
                                p.percent = None;
                                p.eta_secs = None;
                            }
                            p.step = step;
                            p.line = line.clone();
                            if let (Some(done), Some(total)) = (done_bytes, total_bytes) {
                                p.done_bytes = Some(done);
                                p.total_bytes = Some(total);
                                p.percent = Some(done as f64 * 100.0 / total as f64);
                                p.eta_secs = eta_secs;
                            }
                        }
                        let _no_listener =
                            this.inner.events.send(Event::SetupProgress { step, line });
                        this.publish_status();
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => this.publish_status(),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn publish_status(&self) {
        // Computed under the lock: a status computed before another caller's newer
        // one must not be sent after it (the page would end on the stale one).
        let mut last = lock(&self.inner.last_published);
        let status = self.runtime_status();
        if last.as_ref() != Some(&status) {
            *last = Some(status.clone());
            let _no_listener = self.inner.events.send(Event::Runtime { status });
        }
    }
}

/// The event stream's first listing, if it comes within [`FIRST_LISTING_WAIT`]
/// (once: a second wait gets nothing).
async fn wait_first_listing(
    first: &mut Option<tokio::sync::oneshot::Receiver<Vec<crate::container::Found>>>,
) -> Option<Vec<crate::container::Found>> {
    let receiver = first.take()?;
    tokio::time::timeout(FIRST_LISTING_WAIT, receiver)
        .await
        .ok()
        .and_then(Result::ok)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
