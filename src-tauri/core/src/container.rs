//! What a container is to Clawdock: the labels that make one an agent's, the
//! states it is seen in, its identity, and what a listing or an event says of it.
//! Data only; [`crate::containers`] asks the engine for it.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub const LABEL_AGENT: &str = "io.clawdock.agent";
pub const LABEL_HOME: &str = "io.clawdock.home";
pub const LABEL_NAME: &str = "io.clawdock.name";
/// Which of an agent's containers this is: made fresh for each container, and
/// recorded as the agent's (`AgentRecord::generation`) when it becomes its own.
/// Labels cannot change after a create, so a container's role (the agent's own,
/// or the one an interrupted update made beside it) is read against the record,
/// never from its name, which a user or another agent can take.
pub const LABEL_GENERATION: &str = "io.clawdock.generation";
/// The image reference the agent names (the container is made from an image ID):
/// a record rebuilt from its container gets it back.
pub const LABEL_IMAGE: &str = "io.clawdock.image";

/// What Podman last said about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Not looked at yet.
    Unknown,
    Missing,
    Running,
    /// Exited with a code, or never started (`None`).
    Exited(Option<i32>),
    /// Killed by the kernel for using more than its memory limit (Podman says
    /// `OOMKilled`; exit code 137).
    OutOfMemory,
}

/// How containers must be set up on this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostTraits {
    /// Rootless Podman on Linux: map the host user to the gateway's uid so the
    /// agent folder stays the user's.
    pub rootless_native: bool,
    /// Rootful Podman on Linux: the agent folder is handed to the gateway's uid.
    pub rootful_native: bool,
    /// Bind mounts need an SELinux label on Linux hosts that enforce it.
    pub relabel: bool,
    /// cgroup v1 with the cgroupfs manager, rootful: Podman's `OOMKilled` stays
    /// false there, so each agent's container gets a cgroup parent of its own
    /// whose memory peak outlives the container (see [`memory_peak_reached`]).
    pub cgroup_v1: bool,
}

/// A container's full ID, as Podman gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0[..self.0.len().min(12)])
    }
}

/// A container of this data folder, as listed.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: ContainerId,
    /// The agent it belongs to (`None`: labelled as ours but with no valid id).
    pub agent: Option<Uuid>,
    pub name: String,
    pub state: Container,
    /// The image it was made from, by ID.
    pub image_id: String,
    /// Its [`LABEL_GENERATION`] (`None`: made by a version without it).
    pub generation: Option<String>,
}

/// What a container of ours says of the agent that made it, enough to rebuild a
/// lost record.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub agent: Uuid,
    pub name: String,
    pub port: u16,
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub image: String,
    pub state: Container,
    /// The container's memory limit, in MiB (`None` without one).
    pub memory_mib: Option<u64>,
    /// The container's CPU limit, in CPUs (`None` without one).
    pub cpus: Option<f64>,
    /// The image it was made from, by ID.
    pub image_id: String,
    pub generation: Option<String>,
}

/// What a container itself takes on the disk: its writable layer, and its log
/// where the log is a file this host can read (native mode).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footprint {
    pub layer_bytes: u64,
    pub log_path: Option<std::path::PathBuf>,
}

/// What the engine says of a container beyond its state: when it last ended, and
/// whether it has a restart policy (containers of Clawdock 0.1.0 do; Clawdock owns
/// restarts since, and both restarting one would fight).
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub state: Container,
    /// The image it was made from, by ID.
    pub image_id: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub restart_policy: Option<String>,
}

/// What an event line says of one of our agents' containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Happened {
    pub agent: Uuid,
    pub container_id: ContainerId,
    pub container: Container,
    pub at: Option<DateTime<Utc>>,
}
