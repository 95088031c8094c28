//! The changes Clawdock announces to its listeners (the API's event stream, the
//! tray, notifications): runtime state, setup progress, agent state.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::machine::SetupStep;
use crate::meta::Meta;
use crate::status::RuntimeStatus;
use crate::view::AgentView;

/// Why an agent's state changed, where it matters to the user beyond the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Change {
    /// The gateway answered its health check after a create or start.
    Ready,
    /// A create or start failed.
    StartFailed { message: String },
    /// The container exited without being asked to.
    Died { exit_code: Option<i32> },
    /// Podman's machine (or engine) went away with the container.
    EngineLost,
    /// The agent took more disk than its limit and was stopped.
    OverDisk { message: String },
}

/// One announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// Everything at once: the first event of every stream, and again when a slow
    /// client missed some.
    Snapshot {
        status: RuntimeStatus,
        agents: Vec<AgentView>,
        /// The server's rules (`GET /meta`), so a client needs no other read.
        meta: Box<Meta>,
    },
    Runtime {
        status: RuntimeStatus,
    },
    SetupProgress {
        step: SetupStep,
        line: String,
    },
    Agent {
        agent: AgentView,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change: Option<Change>,
    },
    AgentRemoved {
        id: Uuid,
    },
    /// A line of the pull of an agent's image (at create, start or update), with
    /// the bytes of the blobs whose size the engine gave so far. Lines that only
    /// move the counters come at most five times a second.
    #[serde(rename_all = "camelCase")]
    PullProgress {
        id: Uuid,
        line: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        done_bytes: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_bytes: Option<u64>,
        /// Seconds left at the rate seen since the first counters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eta_secs: Option<u64>,
    },
    /// An app setting changed (`launchAtLogin`: `null` where there is none).
    #[serde(rename_all = "camelCase")]
    Settings {
        launch_at_login: Option<bool>,
    },
    /// The shutdown routine runs; `stopping` agents remain.
    Shutdown {
        stopping: usize,
    },
}
