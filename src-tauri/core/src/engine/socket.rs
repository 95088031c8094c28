//! Where the engine's API socket is: one given outright, the machine's own (vm
//! mode, from `podman machine inspect`), the user's `podman.socket` when it
//! answers, or else a `podman system service` Clawdock starts and owns on a socket
//! in its data folder (native mode).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Child;

use crate::engine::client::{EngineClient, Request};
use crate::engine::{Call, Podman, PodmanError};

/// How long an owned service lives on with no client connected. It is not tied
/// to Clawdock: a service ended with it would cut what it was doing (measured,
/// Podman 4.3.1: a SIGTERM to the service mid-stop dropped the answer and left
/// the container `Stopping`). So after a crash it finishes what it was asked,
/// then ends by itself this long after the last connection closed. While
/// Clawdock runs, its event stream keeps a connection open.
pub const OWNED_IDLE_SECS: u32 = 30;

/// How long a started service may take to answer its first ping.
const FIRST_ANSWER: Duration = Duration::from_secs(20);

/// Unix socket paths are limited to about 100 bytes.
const MAX_SOCKET_PATH: usize = 100;

/// Where the engine's socket comes from on this host.
#[derive(Debug, Clone)]
pub enum Source {
    /// This socket, as given (`CLAWDOCK_ENGINE_SOCKET`): nothing is started.
    Given(PathBuf),
    /// The Podman machine's own socket or pipe, asked of `podman machine inspect`.
    Machine { name: Option<String> },
    /// The user's `podman.socket` if it answers, else a service Clawdock owns on
    /// `owned`.
    Native {
        user: Option<PathBuf>,
        owned: PathBuf,
    },
}

/// The user's own API socket on Linux: root's system socket, or the one systemd's
/// `podman.socket` user unit listens on.
pub fn user_socket() -> Option<PathBuf> {
    if cfg!(not(target_os = "linux")) {
        return None;
    }
    if is_root() {
        return Some(PathBuf::from("/run/podman/podman.sock"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|dir| PathBuf::from(dir).join("podman/podman.sock"))
}

fn is_root() -> bool {
    process_uid() == Some(0)
}

/// This process's user on Linux: the owner of `/proc/self` (no `unsafe` getuid).
#[cfg(unix)]
pub(crate) fn process_uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok()
}

#[cfg(not(unix))]
pub(crate) fn process_uid() -> Option<u32> {
    None
}

/// The socket of a service owned by the instance in `home`: in the data folder,
/// or in the temporary folder when that path would be too long for a socket.
pub fn owned_socket(home: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let here = home.join("engine.sock");
    if here.as_os_str().len() <= MAX_SOCKET_PATH {
        return here;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    home.hash(&mut hasher);
    std::env::temp_dir().join(format!("clawdock-{:016x}.sock", hasher.finish()))
}

/// Finds the socket, starts the owned service when it is needed, and ends it at
/// exit.
pub struct EngineSocket {
    podman: Podman,
    source: Source,
    owned: tokio::sync::Mutex<Option<Child>>,
}

impl EngineSocket {
    pub fn new(podman: Podman, source: Source) -> Self {
        Self {
            podman,
            source,
            owned: tokio::sync::Mutex::new(None),
        }
    }

    /// A socket that answers now, pointed `client` at it. Starts (or starts
    /// again) the owned service when nothing else answers.
    pub async fn connect(&self, client: &EngineClient) -> Result<PathBuf, PodmanError> {
        let path = match &self.source {
            Source::Given(path) => path.clone(),
            Source::Machine { name } => self.machine_socket(name.as_deref()).await?,
            Source::Native { user, owned } => match user {
                Some(user) if answers(user).await => user.clone(),
                _ => self.own(owned).await?,
            },
        };
        client.set_endpoint(Some(path.clone()));
        client
            .call(Request::get("/_ping").timeout(Duration::from_secs(30)))
            .await?;
        Ok(path)
    }

    async fn machine_socket(&self, name: Option<&str>) -> Result<PathBuf, PodmanError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Inspected {
            connection_info: ConnectionInfo,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct ConnectionInfo {
            podman_socket: Option<Endpoint>,
            podman_pipe: Option<Endpoint>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Endpoint {
            path: String,
        }
        let mut args = vec!["machine".to_string(), "inspect".into()];
        args.extend(name.map(str::to_string));
        let rows: Vec<Inspected> = self
            .podman
            .run_json(Call::new(args).timeout(Duration::from_secs(30)))
            .await?;
        let info = rows.into_iter().next().unwrap_or_default().connection_info;
        // Windows has a pipe and no socket; macOS a socket.
        let chosen = if cfg!(windows) {
            info.podman_pipe.or(info.podman_socket)
        } else {
            info.podman_socket.or(info.podman_pipe)
        };
        chosen
            .map(|e| PathBuf::from(e.path))
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| PodmanError::BadOutput {
                args: "machine inspect".into(),
                reason: "the machine names no API socket".into(),
            })
    }

    /// The owned service's socket, the service started if it is not running.
    async fn own(&self, socket: &Path) -> Result<PathBuf, PodmanError> {
        let mut owned = self.owned.lock().await;
        let alive = match owned.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        };
        if alive && answers(socket).await {
            return Ok(socket.to_path_buf());
        }
        if !alive && owned.is_none() && answers(socket).await {
            // A service an earlier Clawdock started and left to its idle end.
            tracing::info!(socket = %socket.display(), "using the engine service already running");
            return Ok(socket.to_path_buf());
        }
        if let Some(mut old) = owned.take() {
            tracing::warn!("the engine service stopped answering; starting it again");
            let _gone = old.start_kill();
            let _reaped = old.wait().await;
        }
        let child = self.start_service(socket).await?;
        *owned = Some(child);
        let began = tokio::time::Instant::now();
        while began.elapsed() < FIRST_ANSWER {
            if answers(socket).await {
                tracing::info!(socket = %socket.display(), "engine service started");
                return Ok(socket.to_path_buf());
            }
            if let Some(child) = owned.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(PodmanError::Failed {
                        args: "system service".into(),
                        code: crate::engine::ExitCode(status.code()),
                        stderr_tail: "the engine service ended at once".into(),
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(PodmanError::TimedOut {
            args: "system service".into(),
            after: FIRST_ANSWER,
            stderr_tail: String::new(),
        })
    }

    async fn start_service(&self, socket: &Path) -> Result<Child, PodmanError> {
        if let Some(dir) = socket.parent() {
            let _exists = std::fs::create_dir_all(dir);
        }
        // A socket file left by a service that died would refuse the new one.
        if let Err(e) = std::fs::remove_file(socket) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(socket = %socket.display(), error = %e, "could not remove an old socket");
            }
        }
        let args = vec![
            "system".to_string(),
            "service".into(),
            format!("--time={OWNED_IDLE_SECS}"),
            format!("unix://{}", socket.display()),
        ];
        self.podman.spawn_service(&args).map_err(|e| {
            tracing::warn!(error = %e, "could not start the engine service");
            e
        })
    }

    /// Ends the owned service (the containers live on under conmon). A service
    /// this Clawdock did not start is left running.
    pub async fn close(&self) {
        let Some(mut child) = self.owned.lock().await.take() else {
            return;
        };
        terminate(&mut child);
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(_) => tracing::info!("engine service ended"),
            Err(_) => {
                tracing::warn!("engine service did not end on SIGTERM; killing it");
                let _gone = child.start_kill();
                let _reaped = child.wait().await;
            }
        }
    }
}

/// Asks the service to end (SIGTERM): it closes its socket and its connections.
#[cfg(unix)]
#[allow(unsafe_code)]
fn terminate(child: &mut Child) {
    let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: kill(2) touches no memory of ours; the pid is a child not yet
    // reaped (its `Child` is held), so it names no other process.
    let _refused = unsafe { libc::kill(pid, libc::SIGTERM) };
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _gone = child.start_kill();
}

/// Whether a socket answers a ping now (without moving the client's endpoint).
async fn answers(socket: &Path) -> bool {
    let probe = EngineClient::new(Duration::from_secs(5));
    probe.set_endpoint(Some(socket.to_path_buf()));
    probe.call(Request::get("/_ping")).await.is_ok()
}
