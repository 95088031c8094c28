//! Settings of one Clawdock instance: the data folder, the podman binary, the mode,
//! the agent image and timeouts, read once from the environment and passed down.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::Podman;
use crate::machine::{MachineTimings, Mode};
use crate::sizing::{
    AGENT_DISK_LIMIT_MIB, AGENT_MEMORY_LIMIT_MIB, DEFAULT_AGENT_DISK_MIB, DEFAULT_AGENT_MEMORY_MIB,
};

pub const DEFAULT_AGENT_IMAGE: &str = "ghcr.io/openclaw/openclaw:latest";
pub const DEFAULT_API_PORT: u16 = 9105;
pub const FIRST_AGENT_PORT: u16 = 18789;

/// The environment variables Clawdock reads, with what each does (for `--help`).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "CLAWDOCK_HOME",
        "data folder (agents.json, agent folders, api.json)",
    ),
    ("CLAWDOCK_PODMAN", "the podman binary to use"),
    (
        "CLAWDOCK_MACHINE_MODE",
        "`vm` or `native`: force the Podman machine mode",
    ),
    (
        "CLAWDOCK_MACHINE_NAME",
        "the Podman machine to use (default: the default machine)",
    ),
    ("CLAWDOCK_AGENT_IMAGE", "container image of new agents"),
    (
        "CLAWDOCK_STOP_TIMEOUT",
        "seconds an agent gets to stop before it is killed (default 10)",
    ),
    (
        "CLAWDOCK_HEALTH_TIMEOUT",
        "seconds a new gateway gets to answer /healthz (default 60)",
    ),
    (
        "CLAWDOCK_AGENT_DISK",
        "disk limit of new agents (their folders, container layer and log), in MiB (default 10240)",
    ),
    (
        "CLAWDOCK_DISK_CHECK_SECS",
        "seconds between measurements of each running agent's disk use (default 60)",
    ),
    (
        "CLAWDOCK_RESYNC_SECS",
        "seconds between the reconciler's listings of the containers (default 10)",
    ),
    (
        "CLAWDOCK_RESTORE_AGENTS",
        "`0` to not start again the agents that ran at quit",
    ),
    (
        "CLAWDOCK_PORT_BASE",
        "first host port for agents (default 18789)",
    ),
    (
        "CLAWDOCK_AGENT_PROXY",
        "proxy URL for agents, or `off` (default: the host's HTTPS_PROXY/HTTP_PROXY/NO_PROXY)",
    ),
    (
        "CLAWDOCK_AGENT_NO_PROXY",
        "comma-separated hosts agents reach without the proxy (loopback always)",
    ),
    (
        "CLAWDOCK_AGENT_CA_BUNDLE",
        "a PEM file on the host agents trust beside the public roots (NODE_EXTRA_CA_CERTS)",
    ),
    (
        "CLAWDOCK_AGENT_MEMORY",
        "memory limit of new agents' containers, in MiB (default 2048)",
    ),
    (
        "CLAWDOCK_SNAPSHOTS",
        "snapshots kept per agent, taken before each update, edit and limits change (default 5; 0: none)",
    ),
    (
        "CLAWDOCK_UPDATE_CHECK_SECS",
        "how often the registry is asked for a newer agent image (default 86400; 0: never)",
    ),
];

/// Snapshots kept per agent unless `CLAWDOCK_SNAPSHOTS` says: enough to step back
/// over a few changes, few enough that the keys they hold do not pile up.
pub const SNAPSHOTS_KEPT: usize = 5;
/// How often the registry is asked for a newer image: about daily, as package
/// managers' update notices do.
pub const UPDATE_CHECK_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// Everything configurable, with defaults. Built by [`Settings::from_env`] in the app,
/// and by hand in tests.
#[derive(Debug, Clone)]
pub struct Settings {
    pub home: PathBuf,
    pub podman: Podman,
    pub mode: Mode,
    pub machine_name: Option<String>,
    pub agent_image: String,
    pub stop_timeout: Duration,
    pub health_timeout: Duration,
    /// How often the reconciler lists the containers and compares them with the
    /// records while agents exist: the bound on how long a change the events
    /// missed goes unseen. 10 s, as Kubernetes' kubelet syncs; a listing over the
    /// socket costs about 2 ms.
    pub resync_period: Duration,
    pub restore_agents: bool,
    pub first_agent_port: u16,
    /// Memory limit of new agents' containers (MiB), unless the create says.
    pub agent_memory_mib: u64,
    /// Disk limit of agents (MiB), unless the create or an edit says.
    pub agent_disk_mib: u64,
    /// How often a running agent's disk use is measured against its limit.
    pub disk_check_period: Duration,
    pub machine_timings: MachineTimings,
    /// The proxy and CA bundle handed to agents (company networks). Empty unless
    /// read from the environment.
    pub agent_proxy: crate::agent_proxy::AgentProxy,
    /// The tray app's login item; `None` for `clawdock serve`, which has none.
    pub login_item: Option<crate::login_item::LoginItem>,
    /// The engine's API socket, given (`CLAWDOCK_ENGINE_SOCKET`): used as it is,
    /// in either mode, and nothing is started.
    pub engine_socket: Option<PathBuf>,
    /// The user's own API socket (native mode), used when it answers; otherwise
    /// Clawdock starts a service of its own.
    pub user_engine_socket: Option<PathBuf>,
    /// Where the user's registry logins are (`podman login`'s files), handed to
    /// the engine with a pull.
    pub registry_auth_files: Vec<PathBuf>,
    /// Snapshots kept per agent (taken before every update, edit and limits
    /// change, in `<data folder>/snapshots/<agent id>/`); 0: none taken.
    pub snapshots_kept: usize,
    /// How often the registry is asked whether an agent's image has a newer
    /// build (a HEAD of its manifest, no pull); `None`: never.
    pub update_check: Option<Duration>,
}

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl Settings {
    /// Defaults for a data folder, with podman found on PATH.
    pub fn new(home: PathBuf, podman: Podman, mode: Mode) -> Self {
        Self {
            home,
            podman,
            mode,
            machine_name: None,
            agent_image: DEFAULT_AGENT_IMAGE.to_string(),
            stop_timeout: Duration::from_secs(10),
            health_timeout: Duration::from_secs(60),
            resync_period: Duration::from_secs(10),
            restore_agents: true,
            first_agent_port: FIRST_AGENT_PORT,
            agent_memory_mib: DEFAULT_AGENT_MEMORY_MIB,
            agent_disk_mib: DEFAULT_AGENT_DISK_MIB,
            disk_check_period: Duration::from_secs(60),
            machine_timings: MachineTimings::default(),
            agent_proxy: crate::agent_proxy::AgentProxy::default(),
            login_item: None,
            engine_socket: None,
            user_engine_socket: crate::engine::socket::user_socket(),
            registry_auth_files: crate::registry_auth::default_files(),
            snapshots_kept: SNAPSHOTS_KEPT,
            update_check: Some(UPDATE_CHECK_PERIOD),
        }
    }

    /// Where the engine's socket comes from with these settings.
    pub fn engine_source(&self) -> crate::engine::socket::Source {
        use crate::engine::socket::Source;
        match (&self.engine_socket, self.mode) {
            (Some(given), _) => Source::Given(given.clone()),
            (None, Mode::Vm) => Source::Machine {
                name: self.machine_name.clone(),
            },
            (None, Mode::Native) => Source::Native {
                user: self.user_engine_socket.clone(),
                owned: crate::engine::socket::owned_socket(&self.home),
            },
        }
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let home = match var("CLAWDOCK_HOME") {
            Some(h) => PathBuf::from(h),
            None => default_home()?,
        };
        let mode = Mode::detect(var("CLAWDOCK_MACHINE_MODE").as_deref()).map_err(SettingsError)?;
        let mut s = Self::new(home, Podman::from_env(), mode);
        s.machine_name = var("CLAWDOCK_MACHINE_NAME");
        s.engine_socket = var("CLAWDOCK_ENGINE_SOCKET").map(PathBuf::from);
        s.agent_proxy = crate::agent_proxy::AgentProxy::from_vars(var);
        if let Some(image) = var("CLAWDOCK_AGENT_IMAGE") {
            s.agent_image = image;
        }
        if let Some(v) = var("CLAWDOCK_STOP_TIMEOUT") {
            s.stop_timeout = seconds("CLAWDOCK_STOP_TIMEOUT", &v)?;
        }
        if let Some(v) = var("CLAWDOCK_HEALTH_TIMEOUT") {
            s.health_timeout = seconds("CLAWDOCK_HEALTH_TIMEOUT", &v)?;
        }
        if let Some(v) = var("CLAWDOCK_AGENT_DISK") {
            s.agent_disk_mib = mib_within("CLAWDOCK_AGENT_DISK", &v, &AGENT_DISK_LIMIT_MIB)?;
        }
        if let Some(v) = var("CLAWDOCK_DISK_CHECK_SECS") {
            s.disk_check_period = seconds("CLAWDOCK_DISK_CHECK_SECS", &v)?;
        }
        if let Some(v) = var("CLAWDOCK_RESYNC_SECS") {
            s.resync_period = seconds("CLAWDOCK_RESYNC_SECS", &v)?;
        }
        if let Some(v) = var("CLAWDOCK_RESTORE_AGENTS") {
            s.restore_agents = !matches!(v.as_str(), "0" | "false" | "no" | "off");
        }
        if let Some(v) = var("CLAWDOCK_PORT_BASE") {
            s.first_agent_port = v.parse().ok().filter(|p| *p >= 1024).ok_or_else(|| {
                SettingsError(format!(
                    "CLAWDOCK_PORT_BASE must be a port >= 1024, not `{v}`"
                ))
            })?;
        }
        if let Some(v) = var("CLAWDOCK_SNAPSHOTS") {
            s.snapshots_kept = v.parse().ok().filter(|n| *n <= 100).ok_or_else(|| {
                SettingsError(format!(
                    "CLAWDOCK_SNAPSHOTS is how many snapshots to keep per agent (0 to 100), not `{v}`"
                ))
            })?;
        }
        if let Some(v) = var("CLAWDOCK_UPDATE_CHECK_SECS") {
            let every = seconds("CLAWDOCK_UPDATE_CHECK_SECS", &v)?;
            s.update_check = (!every.is_zero()).then_some(every);
        }
        if let Some(v) = var("CLAWDOCK_AGENT_MEMORY") {
            s.agent_memory_mib = mib_within("CLAWDOCK_AGENT_MEMORY", &v, &AGENT_MEMORY_LIMIT_MIB)?;
        }
        Ok(s)
    }

    /// `<data folder>/snapshots`: one folder per agent (0700), its snapshots
    /// in it (0600).
    pub fn snapshots_dir(&self) -> PathBuf {
        self.home.join("snapshots")
    }

    pub fn agents_file(&self) -> PathBuf {
        self.home.join("agents.json")
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.home.join("agents")
    }

    pub fn api_file(&self) -> PathBuf {
        self.home.join("api.json")
    }

    /// Where versions before the per-run token kept it; removed at start (see
    /// `api::ApiServer::start`).
    pub fn token_file(&self) -> PathBuf {
        self.home.join("api-token")
    }
}

fn mib_within(
    name: &str,
    value: &str,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<u64, SettingsError> {
    value
        .parse()
        .ok()
        .filter(|m| range.contains(m))
        .ok_or_else(|| {
            SettingsError(format!(
                "{name} must be MiB between {} and {}, not `{value}`",
                range.start(),
                range.end()
            ))
        })
}

fn seconds(name: &str, value: &str) -> Result<Duration, SettingsError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| SettingsError(format!("{name} must be a number of seconds, not `{value}`")))
}

/// The platform data folder (e.g. `~/.local/share/clawdock`).
pub fn default_home() -> Result<PathBuf, SettingsError> {
    directories::ProjectDirs::from("dev", "clawdock", "clawdock")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| SettingsError("no home folder; set CLAWDOCK_HOME".into()))
}

/// The platform log folder.
pub fn default_log_dir(home: &std::path::Path) -> PathBuf {
    if std::env::var_os("CLAWDOCK_HOME").is_some() {
        return home.join("logs");
    }
    directories::ProjectDirs::from("dev", "clawdock", "clawdock")
        .map(|d| d.cache_dir().join("logs"))
        .unwrap_or_else(|| home.join("logs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_fractions_and_refuse_junk() {
        assert_eq!(seconds("X", "2").ok(), Some(Duration::from_secs(2)));
        assert_eq!(seconds("X", "0.5").ok(), Some(Duration::from_millis(500)));
        assert!(seconds("X", "-1").is_err());
        assert!(seconds("X", "ten").is_err());
    }
}
