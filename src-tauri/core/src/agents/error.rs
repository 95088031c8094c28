//! What can go wrong with an agent operation: a sentence for the user, and a
//! stable code for programs (the API sends both).

use serde::{Deserialize, Serialize};

use crate::containers::CreateError;
use crate::engine::PodmanError;
use crate::machine::MachineError;
use crate::store::StoreError;

/// Stable, machine-readable reasons, sent as `code` beside the API's `error`
/// sentence. Programs match on these, never on the sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidName,
    InvalidInput,
    /// An agent of that name exists (names are unique ignoring case).
    NameTaken,
    /// The agent's container name is held by a container Clawdock did not make.
    ContainerNameTaken,
    /// Refused: the thing asked for is not Clawdock's to do (a machine it did not
    /// start, or that runs other containers), unless forced.
    NotOurs,
    NotFound,
    NotRunning,
    Busy,
    Cancelled,
    /// A setting this instance does not have (launch at login under `serve`).
    NoLoginItem,
    /// The platform refused to change the login item.
    LoginItemFailed,
    /// The window asked of an instance that has none (`clawdock serve`).
    NoWindow,
    PodmanUnavailable,
    /// Podman is installed but its engine (or machine) is not ready.
    RuntimeNotReady,
    ShuttingDown,
    NoFreePort,
    /// The agent takes more disk than its limit.
    DiskLimit,
    PodmanFailed,
    StoreFailed,
    FolderFailed,
    GatewayFailed,
    /// The self-update cannot run here: no feed or key in this build, or not
    /// installed from a package.
    UpdateUnavailable,
    /// The update feed or the package could not be reached.
    UpdateUnreachable,
    /// The update was refused: a bad signature, a version that differs from the
    /// signed one, a downgrade, not a package.
    UpdateRefused,
    /// The update's install failed (nothing else changed).
    UpdateFailed,
    /// The agents' proxy relay (which keeps the proxy's credentials on the host)
    /// could not start.
    ProxyFailed,
    /// An archive a restore refuses (a member that climbs out, a link pointing
    /// out, a device, a manifest that does not match).
    BadArchive,
    /// An archive, or an agent's files, past a backup's bounds.
    TooLarge,
    /// The snapshot an update, edit or limits change takes first could not be
    /// written: the operation did not begin.
    SnapshotFailed,
    // Codes of the API's own edges.
    Unauthorized,
    Forbidden,
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    Internal,
}

/// What can go wrong with an agent operation.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("An agent named `{0}` already exists.")]
    Duplicate(String),
    #[error(transparent)]
    ContainerNameTaken(CreateError),
    #[error("{0}")]
    NotOurs(String),
    #[error("No such agent.")]
    NotFound,
    #[error("The agent is not running.")]
    NotRunning,
    #[error("The agent is busy ({0}); try again when it is done.")]
    Busy(String),
    #[error("Cancelled.")]
    Cancelled,
    #[error("Podman is not available: {0}")]
    RuntimeUnavailable(String),
    #[error("Clawdock is shutting down.")]
    ShuttingDown,
    #[error("No free port for the agent between {0} and {1}.")]
    NoFreePort(u16, u16),
    #[error(transparent)]
    Podman(PodmanError),
    /// The engine did not answer: its machine stopped or went away. The podman
    /// text is kept for the log and the details, not shown as the sentence.
    #[error("Podman's machine is not running.")]
    EngineUnreachable(PodmanError),
    #[error("The container runtime is not ready: {0}")]
    Machine(#[from] MachineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Could not prepare the agent folder: {0}")]
    Folder(String),
    /// A file in the agent's folder (which the agent can write) refused or failed:
    /// a link, a special file, too large.
    #[error(transparent)]
    File(#[from] crate::agent_files::AgentFileError),
    #[error("{0}")]
    Gateway(String),
    /// The agent takes more disk than its limit (the sentence says how much, and
    /// what to do).
    #[error("{0}")]
    OverDisk(String),
    /// The image the agent's container is pinned to is no longer on this machine.
    #[error("The image this agent runs is no longer on this machine.")]
    ImageGone,
    /// A podman failure whose cause a person can act on: the sentence saying what
    /// to do, with podman's own words kept as the details.
    #[error("{advice}")]
    Advised {
        advice: String,
        cause: PodmanError,
        code: ErrorCode,
    },
    #[error(transparent)]
    ProxyRelay(#[from] crate::proxy_relay::RelayError),
    /// A backup or a restore that did not happen.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// The snapshot before an operation could not be kept; the operation did not
    /// begin.
    #[error(
        "Could not keep a snapshot of the agent before the {what} ({cause}); nothing was changed. \
         Free some disk space, or set CLAWDOCK_SNAPSHOTS=0 to go on without snapshots."
    )]
    Snapshot { what: &'static str, cause: String },
    #[error("Internal error: {0}")]
    Internal(String),
}

impl From<PodmanError> for AgentError {
    fn from(e: PodmanError) -> Self {
        if e.engine_unreachable() {
            Self::EngineUnreachable(e)
        } else if let Some(advice) = crate::engine::advice::for_podman(&e) {
            Self::Advised {
                advice,
                cause: e,
                code: ErrorCode::PodmanFailed,
            }
        } else {
            Self::Podman(e)
        }
    }
}

impl From<CreateError> for AgentError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Podman(p) | CreateError::ImageMissing(p) => p.into(),
            taken @ CreateError::NameTaken { .. } => Self::ContainerNameTaken(taken),
        }
    }
}

impl From<crate::export::InvalidOption> for AgentError {
    fn from(e: crate::export::InvalidOption) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

impl From<super::gateway::GatewayError> for AgentError {
    fn from(e: super::gateway::GatewayError) -> Self {
        Self::Gateway(e.0)
    }
}

impl AgentError {
    /// What a person may want beneath the sentence (the "Details" of a message):
    /// podman's own words where the sentence replaced them.
    pub fn details(&self) -> Option<String> {
        match self {
            Self::EngineUnreachable(e) | Self::Advised { cause: e, .. } => Some(e.to_string()),
            _ => None,
        }
    }

    /// A podman failure in one step of starting an agent: advice when the cause is
    /// one a person can act on, else the step's name with podman's words.
    pub fn from_step(step: &str, e: PodmanError) -> Self {
        if e.engine_unreachable() {
            return e.into();
        }
        match crate::engine::advice::for_podman(&e) {
            Some(advice) => Self::Advised {
                advice,
                cause: e,
                code: ErrorCode::GatewayFailed,
            },
            None => Self::Gateway(format!("{step}: {e}")),
        }
    }

    /// True when the engine did not answer: a start that meets it starts the
    /// machine and tries again.
    pub fn is_engine_unreachable(&self) -> bool {
        match self {
            Self::EngineUnreachable(_) => true,
            Self::Machine(crate::machine::MachineError::Podman(e)) => e.engine_unreachable(),
            _ => false,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidName(_) => ErrorCode::InvalidName,
            Self::InvalidInput(_) => ErrorCode::InvalidInput,
            Self::Duplicate(_) => ErrorCode::NameTaken,
            Self::ContainerNameTaken(_) => ErrorCode::ContainerNameTaken,
            Self::NotOurs(_) => ErrorCode::NotOurs,
            Self::NotFound => ErrorCode::NotFound,
            Self::NotRunning => ErrorCode::NotRunning,
            Self::Busy(_) => ErrorCode::Busy,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::RuntimeUnavailable(_) | Self::Podman(PodmanError::NotInstalled { .. }) => {
                ErrorCode::PodmanUnavailable
            }
            Self::EngineUnreachable(_) | Self::Machine(_) => ErrorCode::RuntimeNotReady,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
            Self::NoFreePort(..) => ErrorCode::NoFreePort,
            Self::OverDisk(_) => ErrorCode::DiskLimit,
            Self::Podman(_) => ErrorCode::PodmanFailed,
            Self::Store(_) => ErrorCode::StoreFailed,
            Self::Folder(_) | Self::File(_) => ErrorCode::FolderFailed,
            Self::Gateway(_) | Self::ImageGone => ErrorCode::GatewayFailed,
            Self::Advised { code, .. } => *code,
            Self::ProxyRelay(_) => ErrorCode::ProxyFailed,
            Self::Archive(crate::archive::ArchiveError::Refused(_)) => ErrorCode::BadArchive,
            Self::Archive(crate::archive::ArchiveError::TooLarge(_)) => ErrorCode::TooLarge,
            Self::Archive(crate::archive::ArchiveError::Io { .. }) => ErrorCode::FolderFailed,
            Self::Snapshot { .. } => ErrorCode::SnapshotFailed,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}
