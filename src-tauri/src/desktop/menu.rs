//! The tray menu as data: typed actions, the menu model for a state (labels and
//! which items are enabled), and what each action does to the core. No Tauri here,
//! so all of it is unit-tested.

use clawdock_core::agents::{Activity, AgentView};
use clawdock_core::status::RuntimeStatus;
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use uuid::Uuid;

/// Every tray action. Menu item ids map to these through a table built with the
/// menu, never by parsing the id text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    StartAll,
    StopAll,
    SetupPodman,
    StartRuntime,
    OpenWindow,
    Quit,
    StartAgent(Uuid),
    StopAgent(Uuid),
    OpenLogs(Uuid),
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
}

/// Where the app is, as the menu needs it.
pub struct MenuState<'a> {
    pub status: &'a RuntimeStatus,
    pub agents: &'a [AgentView],
    /// Set while the shutdown routine runs: agents left to stop.
    pub stopping: Option<usize>,
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
        "unavailable" => "Podman is not installed".into(),
        "absent" => "Podman needs setting up".into(),
        "stopped" => "Podman machine stopped".into(),
        "starting" => "Podman is starting...".into(),
        "error" => format!(
            "Podman error: {}",
            state.status.error.as_deref().unwrap_or("unknown")
        ),
        _ => format!(
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
    let ready = state.status.state == "ready";
    let usable = !quitting && state.status.available && !matches!(state.status.state, "absent");
    let any_stopped = state
        .agents
        .iter()
        .any(|a| a.status != AgentStatus::Running && a.activity.is_none());
    let any_running = state
        .agents
        .iter()
        .any(|a| a.status == AgentStatus::Running || a.activity.is_some());
    let mut items = vec![Item::Label(status_line(state)), Item::Separator];
    if state.status.needs_setup {
        items.push(button("Set up Podman...", Action::SetupPodman, !quitting));
    }
    if state.status.state == "stopped" {
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
    if !state.agents.is_empty() {
        items.push(Item::Separator);
        for agent in state.agents {
            items.push(agent_menu(agent, usable));
        }
    }
    items.push(Item::Separator);
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

fn agent_menu(agent: &AgentView, usable: bool) -> Item {
    let busy = agent.activity.is_some();
    let running = agent.status == AgentStatus::Running;
    let state = match agent.activity {
        Some(Activity::Creating) => "creating...",
        Some(Activity::Starting) => "starting...",
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
    Quit,
    /// The action failed; tell the user.
    Failed(String),
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
        Action::OpenWindow => Effect::ShowWindow(String::new()),
        Action::Quit => Effect::Quit,
    }
}
