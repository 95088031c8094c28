//! What clients see of an agent: the view the API serves, the event stream carries
//! and the CLI reads back. Never holds the gateway token or an API key.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::AgentStatus;

/// An operation in progress on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    Creating,
    Starting,
    /// Stopping and starting again with new settings.
    Restarting,
    /// Pulling a newer image and moving the agent to it.
    Updating,
    Stopping,
    Deleting,
}

impl Activity {
    /// The wire word, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Starting => "starting",
            Self::Restarting => "restarting",
            Self::Updating => "updating",
            Self::Stopping => "stopping",
            Self::Deleting => "deleting",
        }
    }
}

/// An agent as clients see it: no token, no API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub status: AgentStatus,
    pub port: u16,
    pub dir: PathBuf,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Podman's own words behind `error`, when `error` is advice drawn from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    #[serde(default)]
    pub activity: Option<Activity>,
    /// The gateway answered `/readyz`.
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub image: String,
    /// Something the user should know, e.g. a local provider that must listen
    /// beyond 127.0.0.1, or that the agent was recovered from its container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// The gateway died without being asked to and Clawdock starts it again after
    /// a back-off; absent once it ran healthy for ten minutes, or was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_loop: Option<CrashLoopView>,
    /// The container's memory limit (absent for agents of older versions: the
    /// `CLAWDOCK_AGENT_MEMORY` default).
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// The container's CPU limit in CPUs; `null`: none.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// What the agent may take on the disk: its folders, its container's writable
    /// layer and log.
    #[serde(default, rename = "diskMiB", skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    /// What it took when last measured (every minute while it runs), in MiB.
    #[serde(
        default,
        rename = "diskUsedMiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_used_mib: Option<u64>,
    /// The model in the agent's `openclaw.json`, for Settings (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// A custom provider's base URL in the agent's `openclaw.json`, as the
    /// container reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The registry has a newer build of the agent's image (Update moves it there).
    #[serde(default)]
    pub update_available: bool,
}

/// What the tray says once of agents whose image has a newer build ("2 agents
/// have an update"); `None` when none has.
pub fn updates_line(agents: &[AgentView]) -> Option<String> {
    match agents.iter().filter(|a| a.update_available).count() {
        0 => None,
        1 => Some("1 agent has an update".into()),
        n => Some(format!("{n} agents have an update")),
    }
}

/// An agent whose gateway keeps dying, as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashLoopView {
    /// Deaths in this loop (since the gateway last ran healthy for ten minutes).
    pub crashes: u32,
    /// When Clawdock starts it again; absent while it starts or runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try_at: Option<DateTime<Utc>>,
    /// Seconds from this view to `nextTryAt`, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try_in_secs: Option<u64>,
    /// The last death's exit code (137 for a kill, a memory death included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
    /// The last death was the memory limit's.
    #[serde(default)]
    pub out_of_memory: bool,
    /// The gateway's last lines before it died.
    #[serde(default)]
    pub last_logs: Vec<String>,
    /// The above in a sentence: "crashed 4 times; next try in 16 s".
    pub summary: String,
}
