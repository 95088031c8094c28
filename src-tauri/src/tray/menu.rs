//! The tray menu as data: typed actions, the menu model for a state (labels and
//! which items are enabled), and what each action does to the core. No Tauri here,
//! so all of it is unit-tested.

use clawdock_core::agents::{Activity, AgentView};
use clawdock_core::self_update::{self, Outcome, SelfUpdateStatus};
use clawdock_core::status::{RuntimeStatus, StateName};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use uuid::Uuid;

/// Every tray action. Menu item ids map to these through a table built with the
/// menu, never by parsing the id text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    StartAll,
    StopAll,
    UpdateAll,
    SetupPodman,
    StartRuntime,
    OpenWindow,
    /// Turn launching at login on (`true`) or off.
    LaunchAtLogin(bool),
    /// Ask the feed for a newer Clawdock now.
    CheckForUpdates,
    /// Install the newer Clawdock the last check found, and restart into it with
    /// the agents left running.
    InstallUpdate,
    /// Show the release notes of the newer Clawdock (the window's update view).
    ShowUpdate,
    Quit,
    StartAgent(Uuid),
    StopAgent(Uuid),
    OpenLogs(Uuid),
    OpenDashboard(Uuid),
}

/// One entry of the menu.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A line of text that cannot be clicked.
    Label(String),
    Separator,
    Button {
        label: String,
        action: Action,
        enabled: bool,
    },
    Submenu {
        label: String,
        items: Vec<Item>,
    },
    /// A check item; clicking it runs `action`.
    Check {
        label: String,
        action: Action,
        checked: bool,
    },
}

/// Where the app is, as the menu needs it.
pub struct MenuState<'a> {
    pub status: &'a RuntimeStatus,
    pub agents: &'a [AgentView],
    /// Set while the shutdown routine runs: agents left to stop.
    pub stopping: Option<usize>,
    /// Whether the app starts at login; `None` when that cannot be read.
    pub launch_at_login: Option<bool>,
    /// Where Clawdock's own update stands; `None` before the first look.
    pub update: Option<&'a SelfUpdateStatus>,
}

/// The status line of the menu and the tray tooltip.
pub fn status_line(state: &MenuState<'_>) -> String {
    if let Some(n) = state.stopping {
        return format!("Stopping {n} agent{}...", plural(n));
    }
    let running = state
        .agents
        .iter()
        .filter(|a| a.status == AgentStatus::Running)
        .count();
    match state.status.state {
        StateName::Unavailable => "Podman is not installed".into(),
        StateName::Absent => "Podman needs setting up".into(),
        StateName::Stopped => "Podman machine stopped".into(),
        StateName::Probing => "Looking for Podman...".into(),
        StateName::Starting => "Podman is starting...".into(),
        StateName::Error => format!(
            "Podman error: {}",
            state.status.error.as_deref().unwrap_or("unknown")
        ),
        StateName::Ready => format!(
            "{running} of {} agent{} running",
            state.agents.len(),
            plural(state.agents.len())
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The menu for a state. Items are enabled only when their action makes sense.
pub fn model(state: &MenuState<'_>) -> Vec<Item> {
    let quitting = state.stopping.is_some();
    let ready = state.status.state == StateName::Ready;
    let usable =
        !quitting && state.status.is_available() && state.status.state != StateName::Absent;
    let any_stopped = state
        .agents
        .iter()
        .any(|a| a.status != AgentStatus::Running && a.activity.is_none());
    let any_running = state
        .agents
        .iter()
        .any(|a| a.status == AgentStatus::Running || a.activity.is_some());
    let mut items = vec![Item::Label(status_line(state))];
    // Said once for all agents; the window says which (issue 32).
    items.extend(clawdock_core::view::updates_line(state.agents).map(Item::Label));
    items.push(Item::Separator);
    if state.status.setup_needed() {
        items.push(button("Set up Podman...", Action::SetupPodman, !quitting));
    }
    if state.status.state == StateName::Stopped {
        items.push(button(
            "Start Podman machine",
            Action::StartRuntime,
            !quitting,
        ));
    }
    items.push(button("Start all", Action::StartAll, usable && any_stopped));
    items.push(button(
        "Stop all",
        Action::StopAll,
        ready && !quitting && any_running,
    ));
    items.push(button(
        "Update all",
        Action::UpdateAll,
        usable && !state.agents.is_empty(),
    ));
    if !state.agents.is_empty() {
        items.push(Item::Separator);
        for agent in state.agents {
            items.push(agent_menu(agent, usable));
        }
    }
    items.push(Item::Separator);
    if let Some(on) = state.launch_at_login {
        items.push(Item::Check {
            label: "Launch at login".into(),
            action: Action::LaunchAtLogin(!on),
            checked: on,
        });
    }
    items.extend(update_items(state.update, quitting));
    items.push(button("Open Clawdock", Action::OpenWindow, true));
    items.push(button(
        if quitting {
            "Quit now (kill agents)"
        } else {
            "Quit"
        },
        Action::Quit,
        true,
    ));
    items
}

/// Clawdock's own update: "Check for Clawdock updates" always; when a newer version was
/// found, installing it (the user decides when) and its release notes.
fn update_items(update: Option<&SelfUpdateStatus>, quitting: bool) -> Vec<Item> {
    let busy = update.is_some_and(|u| u.busy || u.restarting_into.is_some());
    let mut items = Vec::new();
    if let Some(release) = update.and_then(SelfUpdateStatus::available) {
        items.push(button(
            &format!("Install Clawdock {} and restart", release.version),
            Action::InstallUpdate,
            !quitting && !busy,
        ));
        items.push(button(
            &format!("What's new in {}...", release.version),
            Action::ShowUpdate,
            true,
        ));
    }
    items.push(button(
        if update.is_some_and(|u| u.busy) {
            "Checking for Clawdock updates..."
        } else {
            "Check for Clawdock updates"
        },
        Action::CheckForUpdates,
        !quitting && !busy,
    ));
    items
}

/// What a check or an install came to, as the tray tells it.
pub fn update_sentence(outcome: &Outcome) -> String {
    match outcome {
        Outcome::UpToDate { current, offered } => match offered {
            Some(offered) if offered != current => format!(
                "Clawdock {current} is up to date. The feed offers {offered}, which is older: a downgrade is never installed."
            ),
            _ => format!("Clawdock {current} is up to date."),
        },
        Outcome::Available { release, .. } => {
            let notes = release
                .notes
                .as_deref()
                .and_then(|n| n.lines().find(|l| !l.trim().is_empty()))
                .map(|l| format!(" {l}"))
                .unwrap_or_default();
            format!(
                "Clawdock {} is available.{notes} Install it from the tray menu when it suits you; your agents keep running.",
                release.version
            )
        }
        Outcome::Installed { release, .. } => format!(
            "Clawdock {} is installed. Clawdock restarts into it; your agents keep running.",
            release.version
        ),
    }
}

fn agent_menu(agent: &AgentView, usable: bool) -> Item {
    let busy = agent.activity.is_some();
    let running = agent.status == AgentStatus::Running;
    let state = match agent.activity {
        Some(Activity::Creating) => "creating...",
        Some(Activity::Starting) => "starting...",
        Some(Activity::Restarting) => "restarting...",
        Some(Activity::Updating) => "updating...",
        Some(Activity::Stopping) => "stopping...",
        Some(Activity::Deleting) => "deleting...",
        None => match agent.status {
            AgentStatus::Running => "running",
            AgentStatus::Stopped => "stopped",
            AgentStatus::Creating => "creating...",
            AgentStatus::Error => "error",
        },
    };
    Item::Submenu {
        label: format!("{} — {state}", agent.name),
        items: vec![
            button(
                "Start",
                Action::StartAgent(agent.id),
                usable && !busy && !running,
            ),
            button(
                "Stop",
                Action::StopAgent(agent.id),
                usable && (running || busy) && agent.activity != Some(Activity::Stopping),
            ),
            button(
                "Open dashboard",
                Action::OpenDashboard(agent.id),
                running && !busy,
            ),
            button("Open logs", Action::OpenLogs(agent.id), true),
        ],
    }
}

fn button(label: &str, action: Action, enabled: bool) -> Item {
    Item::Button {
        label: label.into(),
        action,
        enabled,
    }
}

/// What the shell must do after an action the core handled (or could not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Show the window at a route of the UI (`""`, `"setup"`, `"logs/<id>"`).
    ShowWindow(String),
    /// Open the dashboard a one-time address leads to, in the default browser
    /// (through a private page: see `clawdock::browser`).
    OpenDashboard(String),
    Quit,
    /// The action failed; tell the user.
    Failed(String),
    /// The action ended with something to tell the user.
    Told(String),
}

/// Runs an action: the same core functions the API's routes call.
pub async fn perform(core: &Clawdock, action: Action) -> Effect {
    let agents = core.agents();
    let failures = |results: Vec<(Uuid, Result<AgentView, clawdock_core::agents::AgentError>)>| {
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|(_, r)| r.err().map(|e| e.to_string()))
            .collect();
        if errors.is_empty() {
            Effect::None
        } else {
            Effect::Failed(errors.join("\n"))
        }
    };
    match action {
        Action::StartAll => failures(agents.start_all().await),
        Action::StopAll => failures(agents.stop_all().await),
        Action::UpdateAll => {
            let results = agents.update_all().await;
            let mut said: Vec<String> = Vec::new();
            for (id, result) in results {
                let name = agents.get(id).map_or_else(|| id.to_string(), |a| a.name);
                match result {
                    Ok(o) if o.updated => said.push(format!("{name}: updated")),
                    Ok(o) => {
                        if let Some(why) = o.rolled_back {
                            said.push(format!("{name}: {why}"));
                        }
                    }
                    Err(e) => said.push(format!("{name}: {e}")),
                }
            }
            if said.is_empty() {
                Effect::Told("Every agent is up to date.".into())
            } else {
                Effect::Told(said.join("\n"))
            }
        }
        Action::StartAgent(id) => agents
            .start(id)
            .await
            .err()
            .map_or(Effect::None, |e| Effect::Failed(e.to_string())),
        Action::StopAgent(id) => agents
            .stop(id)
            .await
            .err()
            .map_or(Effect::None, |e| Effect::Failed(e.to_string())),
        Action::StartRuntime => core
            .start_runtime()
            .await
            .err()
            .map_or(Effect::None, |e| Effect::Failed(e.to_string())),
        Action::SetupPodman => Effect::ShowWindow("setup".into()),
        Action::OpenLogs(id) => Effect::ShowWindow(format!("logs/{id}")),
        // A one-time address, which the shell puts in a private page: the
        // opener's command line holds neither it nor the token.
        Action::OpenDashboard(id) => match core.dashboard_link(id) {
            Ok(url) => Effect::OpenDashboard(url),
            Err(e) => Effect::Failed(e.to_string()),
        },
        Action::OpenWindow => Effect::ShowWindow(String::new()),
        Action::LaunchAtLogin(on) => match core.set_launch_at_login(on) {
            Ok(()) => Effect::None,
            Err(Some(e)) => Effect::Failed(format!("Could not change launch at login: {e}")),
            Err(None) => Effect::None,
        },
        Action::CheckForUpdates => match core.self_update(self_update::Mode::Check).await {
            Ok(outcome) => Effect::Told(update_sentence(&outcome)),
            Err(e) => Effect::Failed(format!("Could not check for updates: {e}")),
        },
        Action::InstallUpdate => match core.self_update(self_update::Mode::Install).await {
            Ok(outcome) => Effect::Told(update_sentence(&outcome)),
            Err(e) => Effect::Failed(format!("The update was not installed: {e}")),
        },
        Action::ShowUpdate => Effect::ShowWindow("update".into()),
        Action::Quit => Effect::Quit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawdock_core::machine::{Mode, RuntimeState};

    /// The menu with no login item and no update of Clawdock's to show.
    fn plain_model(
        status: &RuntimeStatus,
        agents: &[AgentView],
        stopping: Option<usize>,
    ) -> Vec<Item> {
        model(&MenuState {
            status,
            agents,
            stopping,
            launch_at_login: None,
            update: None,
        })
    }

    fn status(state: RuntimeState, mode: Mode) -> RuntimeStatus {
        RuntimeStatus::new(&state, mode, Some("5.2.0".into()))
    }

    fn agent(name: &str, status: AgentStatus, activity: Option<Activity>) -> AgentView {
        AgentView {
            id: Uuid::new_v4(),
            name: name.into(),
            status,
            port: 18789,
            dir: "/tmp/x".into(),
            created_at: chrono_now(),
            error: None,
            error_details: None,
            provider_type: None,
            activity,
            ready: false,
            gateway_url: None,
            exit_code: None,
            image: "img".into(),
            notice: None,
            crash_loop: None,
            memory_mib: None,
            cpus: None,
            disk_mib: None,
            disk_used_mib: None,
            model_id: None,
            base_url: None,
            update_available: false,
        }
    }

    /// Issue 32: agents whose image has a newer build are said once, under the
    /// status line; none, no line.
    #[test]
    fn the_menu_says_once_how_many_agents_have_an_update() {
        let ready = status(RuntimeState::Ready, Mode::Native);
        let mut agents = vec![
            agent("a", AgentStatus::Running, None),
            agent("b", AgentStatus::Stopped, None),
            agent("c", AgentStatus::Running, None),
        ];
        let labels = |agents: &[AgentView]| -> Vec<String> {
            plain_model(&ready, agents, None)
                .into_iter()
                .filter_map(|i| match i {
                    Item::Label(l) => Some(l),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(labels(&agents), ["2 of 3 agents running"]);
        agents[0].update_available = true;
        agents[1].update_available = true;
        assert_eq!(
            labels(&agents),
            ["2 of 3 agents running", "2 agents have an update"]
        );
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }

    fn buttons(items: &[Item]) -> Vec<(String, Action, bool)> {
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Button {
                    label,
                    action,
                    enabled,
                } => out.push((label.clone(), *action, *enabled)),
                Item::Submenu { items, .. } => out.extend(buttons(items)),
                _ => {}
            }
        }
        out
    }

    fn enabled(items: &[Item], action: Action) -> bool {
        buttons(items)
            .into_iter()
            .find(|(_, a, _)| *a == action)
            .unwrap_or_else(|| panic!("no {action:?}"))
            .2
    }

    #[test]
    fn ready_with_one_running_and_one_stopped() {
        let st = status(RuntimeState::Ready, Mode::Native);
        let agents = [
            agent("a", AgentStatus::Running, None),
            agent("b", AgentStatus::Stopped, None),
        ];
        let items = plain_model(&st, &agents, None);
        assert_eq!(items[0], Item::Label("1 of 2 agents running".into()));
        assert!(enabled(&items, Action::OpenDashboard(agents[0].id)));
        assert!(
            !enabled(&items, Action::OpenDashboard(agents[1].id)),
            "a stopped agent has no dashboard to open"
        );
        assert!(enabled(&items, Action::StartAll));
        assert!(enabled(&items, Action::StopAll));
        assert!(
            !enabled(&items, Action::StartAgent(agents[0].id)),
            "running: no Start"
        );
        assert!(enabled(&items, Action::StopAgent(agents[0].id)));
        assert!(enabled(&items, Action::StartAgent(agents[1].id)));
        assert!(
            !enabled(&items, Action::StopAgent(agents[1].id)),
            "stopped: no Stop"
        );
        assert!(enabled(&items, Action::OpenLogs(agents[1].id)));
        assert!(!buttons(&items)
            .iter()
            .any(|(_, a, _)| *a == Action::SetupPodman));
        assert!(enabled(&items, Action::UpdateAll));
        assert!(matches!(&items[6], Item::Submenu { label, .. } if label == "a — running"));
    }

    #[test]
    fn launch_at_login_is_a_check_item_that_flips_it() {
        let st = status(RuntimeState::Ready, Mode::Native);
        for on in [false, true] {
            let items = model(&MenuState {
                status: &st,
                agents: &[],
                stopping: None,
                launch_at_login: Some(on),
                update: None,
            });
            assert!(
                items.contains(&Item::Check {
                    label: "Launch at login".into(),
                    action: Action::LaunchAtLogin(!on),
                    checked: on,
                }),
                "{items:?}"
            );
        }
        let unknown = plain_model(&st, &[], None);
        assert!(!unknown.iter().any(|i| matches!(i, Item::Check { .. })));
    }

    #[test]
    fn busy_agents_cannot_be_started_again() {
        let st = status(RuntimeState::Ready, Mode::Native);
        let agents = [agent("a", AgentStatus::Stopped, Some(Activity::Starting))];
        let items = plain_model(&st, &agents, None);
        assert!(!enabled(&items, Action::StartAgent(agents[0].id)));
        assert!(
            enabled(&items, Action::StopAgent(agents[0].id)),
            "a start can be cut short"
        );
        assert!(!enabled(&items, Action::StartAll), "nothing idle to start");
    }

    #[test]
    fn machine_absent_offers_setup_and_nothing_else() {
        let st = status(RuntimeState::Absent, Mode::Vm);
        let agents = [agent("a", AgentStatus::Stopped, None)];
        let items = plain_model(&st, &agents, None);
        assert_eq!(items[0], Item::Label("Podman needs setting up".into()));
        assert!(enabled(&items, Action::SetupPodman));
        assert!(!enabled(&items, Action::StartAll));
        assert!(!enabled(&items, Action::StartAgent(agents[0].id)));
        assert!(enabled(&items, Action::OpenWindow) && enabled(&items, Action::Quit));
    }

    #[test]
    fn stopped_machine_offers_to_start_it() {
        let st = status(RuntimeState::Stopped, Mode::Vm);
        let items = plain_model(&st, &[], None);
        assert!(enabled(&items, Action::StartRuntime));
        assert!(!enabled(&items, Action::StopAll));
    }

    #[test]
    fn podman_missing_disables_agent_actions() {
        let st = RuntimeStatus::new(&RuntimeState::Unavailable, Mode::Vm, None);
        let agents = [agent("a", AgentStatus::Stopped, None)];
        let items = plain_model(&st, &agents, None);
        assert_eq!(items[0], Item::Label("Podman is not installed".into()));
        assert!(!enabled(&items, Action::StartAll));
        assert!(!enabled(&items, Action::StartAgent(agents[0].id)));
    }

    #[test]
    fn while_stopping_only_quit_now_and_open_remain() {
        let st = status(RuntimeState::Ready, Mode::Native);
        let agents = [agent("a", AgentStatus::Running, Some(Activity::Stopping))];
        let items = plain_model(&st, &agents, Some(3));
        assert_eq!(items[0], Item::Label("Stopping 3 agents...".into()));
        let quit = buttons(&items)
            .into_iter()
            .find(|(_, a, _)| *a == Action::Quit)
            .expect("quit");
        assert_eq!(quit.0, "Quit now (kill agents)");
        assert!(quit.2);
        assert!(!enabled(&items, Action::StartAll) && !enabled(&items, Action::StopAll));
        assert!(!enabled(&items, Action::StopAgent(agents[0].id)));
    }

    /// Each action runs the core function the API runs, against real Podman.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actions_run_the_core_functions() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let built = std::process::Command::new(repo.join("tests/images/build-test-images.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("images");
        assert!(built.success());
        let home = tempfile::tempdir().expect("home");
        let podman = clawdock_core::engine::Podman::new(clawdock_core::engine::locate(
            None,
            std::env::var_os("PATH"),
        ));
        let mut settings =
            clawdock_core::settings::Settings::new(home.path().to_path_buf(), podman, Mode::Native);
        settings.agent_image = "localhost/clawdock-test-gateway:latest".into();
        settings.stop_timeout = std::time::Duration::from_secs(2);
        settings.first_agent_port = 23000 + (std::process::id() % 100) as u16 * 10;
        let core = Clawdock::start(settings).await.expect("core");
        let name = format!("menu{}", std::process::id() % 10_000);
        let created = core
            .agents()
            .create_and_wait(clawdock_core::agents::CreateRequest {
                name: name.clone(),
                ..Default::default()
            })
            .await
            .expect("create");
        let id = created.id;
        let status_of = |core: &Clawdock| core.agents().get(id).expect("agent").status;

        assert_eq!(perform(&core, Action::StopAgent(id)).await, Effect::None);
        assert_eq!(status_of(&core), AgentStatus::Stopped);
        assert_eq!(perform(&core, Action::StartAgent(id)).await, Effect::None);
        assert_eq!(status_of(&core), AgentStatus::Running);
        assert_eq!(perform(&core, Action::StopAll).await, Effect::None);
        assert_eq!(status_of(&core), AgentStatus::Stopped);
        assert_eq!(perform(&core, Action::StartAll).await, Effect::None);
        assert_eq!(status_of(&core), AgentStatus::Running);
        assert_eq!(
            perform(&core, Action::OpenLogs(id)).await,
            Effect::ShowWindow(format!("logs/{id}"))
        );
        assert_eq!(
            perform(&core, Action::SetupPodman).await,
            Effect::ShowWindow("setup".into())
        );
        assert_eq!(
            perform(&core, Action::OpenWindow).await,
            Effect::ShowWindow(String::new())
        );
        assert_eq!(perform(&core, Action::Quit).await, Effect::Quit);
        // A failing action is reported, not swallowed.
        let missing = perform(&core, Action::StartAgent(Uuid::new_v4())).await;
        assert_eq!(missing, Effect::Failed("No such agent.".into()));
        core.agents().delete(id).await.expect("delete");
    }
}
