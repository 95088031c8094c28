//! Podman's JSON as the engine sends it: container list rows, event lines, the
//! parts of an inspect Clawdock reads, and stats. Raw shapes only; their meaning
//! is read in [`super`].

use std::collections::HashMap;

use serde::Deserialize;

use crate::container::Container;

/// What the engine's stats say of one container, in bytes and nanoseconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawStats {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub name: String,
    pub mem_usage: u64,
    pub mem_limit: u64,
    /// CPU time used since the container started.
    #[serde(rename = "CPUNano")]
    pub cpu_nano: u64,
    /// When the sample was taken (monotonic nanoseconds).
    pub system_nano: u64,
    #[serde(rename = "PIDs")]
    pub pids: u64,
}

/// A row of the engine's container list. `Labels` is `null` when there are none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct PsRow {
    pub(super) id: String,
    pub(super) names: Vec<String>,
    pub(super) state: String,
    pub(super) exit_code: Option<i32>,
    pub(super) labels: Option<HashMap<String, String>>,
    #[serde(rename = "ImageID")]
    pub(super) image_id: String,
}

impl PsRow {
    pub(super) fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }

    pub(super) fn container(&self) -> Container {
        match self.state.as_str() {
            "running" => Container::Running,
            // Made but never started.
            "created" | "configured" => Container::Exited(None),
            _ => Container::Exited(self.exit_code),
        }
    }
}

/// A line of the engine's event stream (Docker's shape).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct EventLine {
    #[serde(rename = "Type")]
    pub(super) kind: String,
    #[serde(rename = "Action")]
    pub(super) action: String,
    #[serde(rename = "Actor")]
    pub(super) actor: Actor,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub(super) time_nano: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct Actor {
    #[serde(rename = "ID")]
    pub(super) id: String,
    /// The container's labels, with `containerExitCode` (a string) beside them.
    pub(super) attributes: Option<HashMap<String, String>>,
}

/// What the engine's inspect of a container says that Clawdock reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct Inspected {
    pub(super) created: Option<chrono::DateTime<chrono::Utc>>,
    pub(super) image_name: String,
    /// The image's ID.
    pub(super) image: String,
    pub(super) config: InspectedConfig,
    pub(super) host_config: InspectedHost,
    pub(super) state: InspectedState,
    /// The writable layer's bytes, when asked for (`?size=true`).
    pub(super) size_rw: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct InspectedConfig {
    pub(super) env: Vec<String>,
    pub(super) labels: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct InspectedHost {
    pub(super) port_bindings: Option<HashMap<String, Option<Vec<Binding>>>>,
    /// Bytes; 0 without a limit.
    pub(super) memory: u64,
    /// Billionths of a CPU; 0 without a limit.
    pub(super) nano_cpus: u64,
    pub(super) restart_policy: Option<RestartPolicy>,
    pub(super) log_config: LogConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct Binding {
    pub(super) host_port: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RestartPolicy {
    pub(super) name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct LogConfig {
    pub(super) path: String,
}

/// What the engine's inspect of a container says of its state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct InspectedState {
    pub(super) status: String,
    pub(super) exit_code: Option<i32>,
    #[serde(rename = "OOMKilled")]
    pub(super) oom_killed: bool,
    /// Year 1 when it never ended.
    pub(super) finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl InspectedState {
    /// The state as Clawdock names it (`None` for a state it does not know).
    pub(super) fn container(&self) -> Option<Container> {
        Some(match self.status.as_str() {
            "running" => Container::Running,
            "exited" | "stopped" if self.oom_killed => Container::OutOfMemory,
            "exited" | "stopped" => Container::Exited(self.exit_code),
            // Never started (e.g. a start answered but did nothing).
            "created" | "configured" => Container::Exited(None),
            _ => return None,
        })
    }
}

/// What the engine's image inspect says that Clawdock reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct ImageInspected {
    pub(super) id: String,
    pub(super) repo_digests: Option<Vec<String>>,
}
