//! The changes Clawdock announces to its listeners (the API's event stream, the
//! tray, notifications): runtime state, setup progress, agent state.

use serde::Serialize;
use uuid::Uuid;

use crate::agents::AgentView;
use crate::machine::SetupStep;
use crate::status::RuntimeStatus;

/// Why an agent's state changed, where it matters to the user beyond the state.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

/// One announcement.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    Runtime {
        status: RuntimeStatus,
    },
    SetupProgress {
        step: SetupStep,
        line: String,
    },
    Agent {
        agent: AgentView,
        #[serde(skip_serializing_if = "Option::is_none")]
        change: Option<Change>,
    },
    AgentRemoved {
        id: Uuid,
    },
    /// The shutdown routine runs; `stopping` agents remain.
    Shutdown {
        stopping: usize,
    },
}
