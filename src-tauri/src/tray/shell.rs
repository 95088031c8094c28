//! The tray app's shell, the same on every platform: once launched (`launch`),
//! keeps the tray's menu, icon and tooltip current, runs what the menu asks, tells the user what happened without
//! them, shows the window (a process of its own) and runs the one exit. The
//! platform's tray is a [`TrayView`]; everything reaches the shell as an [`Input`],
//! handled one at a time.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawdock_core::events::{Change, Event};
use clawdock_core::self_update::Outcome;
use clawdock_core::status::StateName;
use clawdock_core::Clawdock;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::launch::{Ending, Launched};
use super::menu::{self, Action, Effect, MenuState};
use super::notify::Notifier;
use super::window::{Window, WindowNews};
use clawdock::window_link::FromWindow;

/// How the app was started.
pub struct Start {
    /// By the login item: the tray only, no window.
    pub at_login: bool,
    /// No agents file yet: the window opens to greet the user.
    pub first_run: bool,
    /// Started by the version this one replaced (its version): no window, a
    /// notification that the update is in and the agents ran on.
    pub updated_from: Option<String>,
}

/// What the tray shows. Drawn again only when it changed: a redraw replaces a menu
/// the user may have open.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayContent {
    pub items: Vec<menu::Item>,
    /// The PNG of the state's icon (see `icons`).
    pub icon: &'static [u8],
    pub tooltip: String,
}

/// The platform's tray, as the shell drives it.
pub trait TrayView {
    /// Shows `content`: menu, icon and tooltip.
    fn show(&self, content: &TrayContent) -> impl Future<Output = Result<(), TrayError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum TrayError {
    #[cfg(target_os = "linux")]
    #[error("the tray could not be put on the session bus: {0}")]
    Bus(#[from] ksni::Error),
    #[cfg(any(windows, target_os = "macos"))]
    #[error("the tray icon could not be made: {0}")]
    Icon(#[from] tray_icon::Error),
    #[cfg(any(windows, target_os = "macos"))]
    #[error("the tray's icon is unreadable: {0}")]
    Picture(#[from] tray_icon::BadIcon),
    #[cfg(any(windows, target_os = "macos"))]
    #[error("the tray's menu could not be made: {0}")]
    Menu(#[from] tray_icon::menu::Error),
    #[error("the tray is gone")]
    Gone,
}

/// What the tray shows for the core's state now.
pub fn content(core: &Clawdock, stopping: Option<usize>) -> TrayContent {
    let status = core.runtime_status();
    let agents = core.agents().list();
    let launch_at_login = core.launch_at_login().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read the login item");
        None
    });
    let update = core.self_update_status();
    let state = MenuState {
        status: &status,
        agents: &agents,
        stopping,
        launch_at_login,
        update: Some(&update),
    };
    let line = menu::status_line(&state);
    TrayContent {
        items: menu::model(&state),
        icon: super::icons::png(status.state, stopping.is_some()),
        tooltip: format!("Clawdock — {line}"),
    }
}

/// Everything that reaches the shell.
enum Input {
    /// An event of the core; `None` when some were missed (the state is read
    /// again anyway).
    Core(Option<Box<Event>>),
    Clicked(Action),
    /// What a clicked action came to.
    Done(Effect),
    Window(WindowNews),
    /// Another launch asked for the window.
    WindowWanted,
    /// Podman and the machine were looked at the first time.
    Probed,
    /// The desktop has no tray host: nothing will draw the tray.
    NoTrayHost,
    Exit(ExitRequest),
    /// The shutdown routine ended: the process exits with this code.
    Finished(ExitCode),
}

/// A request to end the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitRequest {
    /// The menu's Quit, a signal: a second one while stopping kills what is left
    /// (the menu then says "Quit now (kill agents)").
    Quit,
    /// The shutdown began elsewhere (`POST /shutdown`, the window's own Quit, or
    /// this shell's): followed, never escalated.
    Follow,
}

/// Runs the tray app until its exit; `shown` is what the tray shows already.
/// `no_tray_host` resolves if the desktop turns out to have no tray to show it:
/// the window then opens and says where the controls are.
pub async fn run(
    launched: Launched,
    tray: &impl TrayView,
    mut clicks: mpsc::UnboundedReceiver<Action>,
    start: Start,
    shown: TrayContent,
    no_tray_host: impl Future<Output = ()> + Send + 'static,
) -> ExitCode {
    let Launched {
        core,
        ending,
        api_url,
        api_token,
        log_dir,
        mut window_wanted,
        mut events,
        termination,
    } = launched;
    let (inputs, mut next) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    {
        let to = inputs.clone();
        tasks.spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => Some(Box::new(e)),
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if to.send(Input::Core(event)).is_err() {
                    return;
                }
            }
        });
        let to = inputs.clone();
        tasks.spawn(async move {
            while let Some(action) = clicks.recv().await {
                if to.send(Input::Clicked(action)).is_err() {
                    return;
                }
            }
        });
        let to = inputs.clone();
        tasks.spawn(async move {
            loop {
                match window_wanted.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        if to.send(Input::WindowWanted).is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let to = inputs.clone();
        tasks.spawn(async move {
            let which = termination.await;
            tracing::info!(signal = which, "exit requested");
            let _gone = to.send(Input::Exit(ExitRequest::Quit));
        });
        let to = inputs.clone();
        let begun = core.clone();
        tasks.spawn(async move {
            begun.shutdown_begun().await;
            let _gone = to.send(Input::Exit(ExitRequest::Follow));
        });
        let to = inputs.clone();
        tasks.spawn(async move {
            no_tray_host.await;
            let _gone = to.send(Input::NoTrayHost);
        });
        let to = inputs.clone();
        let probed = core.clone();
        tasks.spawn(async move {
            probed.probed().await;
            let _gone = to.send(Input::Probed);
        });
    }
    let window_news = {
        let to = inputs.clone();
        move |news| {
            // Only at the exit is nobody listening any more.
            let _gone = to.send(Input::Window(news));
        }
    };
    let mut shell = Shell {
        window: Window::new(api_url, api_token, log_dir, Arc::new(window_news)),
        notifier: Notifier::default(),
        core,
        ending,
        start,
        inputs,
        tasks,
        shown,
        stopping: None,
        exiting: false,
        window_focused: false,
        engine_lost_told: None,
        update_told: None,
    };
    if let Some(from) = shell.start.updated_from.clone() {
        let running = shell.core.agents().list().len();
        shell.notify(
            "Clawdock is updated",
            &format!(
                "Clawdock {} replaced {from}. Your agents ran on through the update ({running} in all).",
                clawdock_core::self_update::VERSION
            ),
        );
    }
    shell.core.check_for_updates_daily();
    loop {
        let Some(input) = next.recv().await else {
            // The shell holds a sender itself: this does not happen.
            tracing::error!("the tray app's inputs ended");
            return ExitCode::FAILURE;
        };
        if let Some(code) = shell.handle(input, tray).await {
            shell.window.close().await;
            return code;
        }
        while shell.tasks.try_join_next().is_some() {}
    }
}

struct Shell {
    core: Clawdock,
    ending: Arc<Ending>,
    start: Start,
    window: Window,
    notifier: Notifier,
    inputs: mpsc::UnboundedSender<Input>,
    /// Feeders, clicked actions, notifications, the exit: all end with the shell.
    tasks: JoinSet<()>,
    shown: TrayContent,
    /// Set while the shutdown routine runs: agents left to stop. Stays set (at 0)
    /// until the process exits, so the menu keeps offering "Quit now".
    stopping: Option<usize>,
    exiting: bool,
    /// The window has the focus: the user sees what happens there.
    window_focused: bool,
    /// When the user was last told the machine went away.
    engine_lost_told: Option<Instant>,
    /// The newer Clawdock the user was last told of: once per version.
    update_told: Option<String>,
}

impl Shell {
    /// Handles one input; `Some` when the app is done, with its exit code.
    async fn handle(&mut self, input: Input, tray: &impl TrayView) -> Option<ExitCode> {
        match input {
            Input::Core(event) => {
                if let Some(event) = event.as_deref() {
                    self.notify_for(event);
                    if let Event::Shutdown { stopping } = event {
                        self.stopping = Some(*stopping);
                    }
                }
                self.redraw(tray).await;
            }
            Input::Clicked(action) => {
                let core = self.core.clone();
                let to = self.inputs.clone();
                self.tasks.spawn(async move {
                    let effect = menu::perform(&core, action).await;
                    let _gone = to.send(Input::Done(effect));
                });
            }
            Input::Done(effect) => match effect {
                Effect::None => {}
                Effect::ShowWindow(route) => self.window.show(&route).await,
                Effect::OpenDashboard(link) => self.open_dashboard(&link),
                Effect::Quit => self.exit(ExitRequest::Quit),
                Effect::Failed(message) | Effect::Told(message) => {
                    self.notify("Clawdock", &message);
                }
            },
            Input::Window(WindowNews::Said(FromWindow::Focused { focused })) => {
                self.window_focused = focused;
            }
            Input::Window(WindowNews::Said(FromWindow::OpenDashboard { link })) => {
                // Only a one-time address of this instance's API (the window's
                // page is the API's own, but its pipe is checked all the same).
                if link.starts_with(&format!("{}/dashboard/", self.window.api_url())) {
                    self.open_dashboard(&link);
                } else {
                    tracing::warn!(%link, "the window asked to open something that is not a dashboard address");
                }
            }
            Input::Window(WindowNews::Said(FromWindow::Quit)) => {
                tracing::info!("quit from the window");
                self.exit(ExitRequest::Follow);
            }
            Input::Window(WindowNews::Ended(generation)) => {
                if self.window.ended(generation).await {
                    self.window_focused = false;
                }
            }
            Input::WindowWanted => self.window.show("").await,
            Input::Probed => self.first_look().await,
            Input::NoTrayHost => {
                tracing::warn!("no tray host on this desktop: opening the window to say where the controls are");
                self.window.show("no-tray").await;
            }
            Input::Exit(request) => self.exit(request),
            Input::Finished(code) => return Some(code),
        }
        None
    }

    async fn redraw(&mut self, tray: &impl TrayView) {
        let content = content(&self.core, self.stopping);
        if content != self.shown {
            if let Err(e) = tray.show(&content).await {
                tracing::warn!(error = %e, "could not update the tray");
            }
            self.shown = content;
        }
    }

    /// What to show first, once podman's first answer is in.
    async fn first_look(&mut self) {
        let status = self.core.runtime_status();
        let needs_setup = status.setup_needed() || !status.is_available();
        if self.start.at_login || self.start.updated_from.is_some() {
            if needs_setup {
                self.notify(
                    "Clawdock",
                    "Podman needs setting up: open Clawdock from the tray.",
                );
            }
        } else if self.start.first_run || needs_setup {
            self.window
                .show(if needs_setup { "setup" } else { "" })
                .await;
        }
    }

    /// Starts the shutdown routine once; the app exits when it is done.
    fn exit(&mut self, request: ExitRequest) {
        if !self.exiting {
            self.exiting = true;
            let ending = self.ending.clone();
            let to = self.inputs.clone();
            self.tasks.spawn(async move {
                let code = ending.finish().await;
                let _gone = to.send(Input::Finished(code));
            });
            return;
        }
        if request == ExitRequest::Quit {
            let core = self.core.clone();
            self.tasks.spawn(async move {
                let leftover = core.force_shutdown().await;
                tracing::warn!(?leftover, "quit again while stopping: killed what was left");
            });
        }
    }

    /// Tells the user of what happened without them: an agent ready, failed or
    /// died, the machine gone, setup done. Not while the window has the focus: it
    /// shows the user's own feedback there.
    fn notify_for(&mut self, event: &Event) {
        if self.window_focused {
            return;
        }
        match event {
            Event::Agent {
                agent,
                change: Some(change),
            } => match change {
                Change::Ready => self.notify(&agent.name, "The agent is ready."),
                Change::StartFailed { message } => {
                    self.notify(&format!("{} failed to start", agent.name), message);
                }
                Change::OverDisk { message } => {
                    self.notify(&format!("{} stopped: disk limit", agent.name), message);
                }
                Change::Died { exit_code } => self.notify(
                    &format!("{} stopped", agent.name),
                    &format!(
                        "The gateway exited on its own (exit code {}).",
                        exit_code.map_or("?".into(), |c| c.to_string())
                    ),
                ),
                Change::EngineLost => {
                    // One notification for all the agents one loss took down.
                    if self
                        .engine_lost_told
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(30))
                    {
                        self.engine_lost_told = Some(Instant::now());
                        self.notify(
                            "Podman's machine stopped",
                            "Its agents stopped with it. They start again when Podman is back: choose Start Podman machine in the menu.",
                        );
                    }
                }
            },
            Event::SelfUpdate { status } => {
                if let Some(outcome @ Outcome::Available { release, .. }) = &status.last {
                    if self.update_told.as_deref() != Some(release.version.as_str()) {
                        self.update_told = Some(release.version.clone());
                        self.notify("Clawdock update", &menu::update_sentence(outcome));
                    }
                }
            }
            Event::Restarting { version } => self.notify(
                "Clawdock is restarting",
                &format!("Into Clawdock {version}, just installed. Your agents keep running."),
            ),
            Event::Runtime { status } => {
                if let Some(setup) = &status.setup {
                    if !setup.running {
                        match &setup.error {
                            Some(e) => self.notify("Podman setup failed", e),
                            None if status.state == StateName::Ready => {
                                self.notify("Podman is ready", "You can create agents now.");
                            }
                            None => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Opens an agent's dashboard from its one-time address, the way the CLI does
    /// (see `clawdock::browser`); a failure is told.
    fn open_dashboard(&mut self, link: &str) {
        let home = self.core.settings().home.clone();
        if let Err(e) = clawdock::browser::open_dashboard(&home, link) {
            tracing::warn!(error = %e, "could not open the dashboard");
            self.notify("Clawdock", &format!("Could not open the dashboard: {e}"));
        }
    }

    fn notify(&mut self, title: &str, body: &str) {
        let notifier = self.notifier.clone();
        let (title, body) = (title.to_owned(), body.to_owned());
        self.tasks
            .spawn(async move { notifier.show(&title, &body).await });
    }
}
