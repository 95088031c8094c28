//! Where the engine's API socket is: one given outright, the machine's own (vm
//! mode, from `podman machine inspect`), the user's `podman.socket` when it
//! answers, or else a `podman system service` Clawdock starts and owns on a socket
//! in a folder only this user can enter (native mode); and the life of that
//! service: started again only when it exited or refuses connections, never
//! killed under requests. Every socket is trusted only when the process behind
//! it is this user's or root's ([`crate::engine::client`]).

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

/// How long one ping may take before the socket counts as slow (not dead).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
    if process_uid() == Some(0) {
        return Some(PathBuf::from("/run/podman/podman.sock"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|dir| PathBuf::from(dir).join("podman/podman.sock"))
}

/// This process's (effective) user.
#[cfg(unix)]
pub(crate) fn process_uid() -> Option<u32> {
    Some(euid())
}

#[cfg(unix)]
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(not(unix))]
pub(crate) fn process_uid() -> Option<u32> {
    None
}

/// The socket of a service owned by the instance in `home`: in the data folder
/// (private, 0700) when the path fits in a socket address; else in a folder of
/// its own, `clawdock-<uid>-<hash of home>`, under `$XDG_RUNTIME_DIR` (the user's
/// alone) or else the temporary folder. Its folder is made private, or checked to
/// be, before anything listens or is trusted there ([`EngineSocket`]); a folder
/// someone else made first is never used.
pub fn owned_socket(home: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let here = home.join("engine.sock");
    if fits(&here) {
        return here;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    home.hash(&mut hasher);
    let folder = format!(
        "clawdock-{}-{:016x}",
        process_uid().unwrap_or_default(),
        hasher.finish()
    );
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    runtime
        .into_iter()
        .chain([std::env::temp_dir()])
        .map(|base| base.join(&folder).join("engine.sock"))
        .find(|p| fits(p))
        .unwrap_or_else(|| std::env::temp_dir().join(folder).join("engine.sock"))
}

/// Whether a path fits in a Unix socket address.
fn fits(path: &Path) -> bool {
    path.as_os_str().len() <= MAX_SOCKET_PATH
}

/// Makes `dir` (mode 0700) if it is not there, then checks what is there
/// without following a link: a folder, this user's, open to nobody else.
/// Whoever can enter the folder of a socket can take its name first.
#[cfg(unix)]
fn private_folder(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make it: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    let ours = process_uid().unwrap_or_default();
    if !meta.file_type().is_dir() {
        Err("it is not a folder (a link?)".into())
    } else if meta.uid() != ours {
        Err(format!(
            "it belongs to uid {}, not to this user (uid {ours})",
            meta.uid()
        ))
    } else if meta.mode() & 0o077 != 0 {
        Err(format!(
            "others may enter it (mode {:o})",
            meta.mode() & 0o777
        ))
    } else {
        Ok(())
    }
}

#[cfg(not(unix))]
fn private_folder(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// A fresh private folder for the owned service's socket, named at random: the
/// way out when the folder meant for it is not private (someone else made it
/// first). `mkdir` fails on any name already taken, so no one can have made it.
fn fresh_private_socket() -> Result<PathBuf, PodmanError> {
    let failed = |reason: String| PodmanError::Spawn {
        args: "system service".into(),
        reason,
    };
    for _ in 0..8 {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| failed(format!("no random name: {e}")))?;
        let name = format!("clawdock-{}", u64::from_le_bytes(random));
        let dir = std::env::temp_dir().join(name);
        #[cfg(unix)]
        let made = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)
        };
        #[cfg(not(unix))]
        let made = std::fs::create_dir(&dir);
        match made {
            Ok(()) => {
                private_folder(&dir).map_err(failed)?;
                return Ok(dir.join("engine.sock"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(failed(format!("{}: {e}", dir.display()))),
        }
    }
    Err(failed("no free name for a private folder".into()))
}

/// Finds the socket, starts the owned service when it is needed, and ends it at
/// exit.
pub struct EngineSocket {
    podman: Podman,
    source: Source,
    owned: tokio::sync::Mutex<Owned>,
}

/// The service Clawdock owns, and where it listens.
#[derive(Default)]
struct Owned {
    child: Option<Child>,
    /// Where the service listens, once its folder was found private: the path of
    /// [`Source::Native`], or a fresh folder's when that one was not private.
    socket: Option<PathBuf>,
    /// The socket's folder is a fresh one of this run's: removed at exit.
    fresh: bool,
}

/// What one ping of a socket found.
#[derive(Debug)]
enum Probe {
    Answers,
    /// Nothing to connect to: no socket file, or nobody listening on it.
    Refused,
    /// Connected, and no answer yet: a busy service is not a dead one.
    Slow,
    /// Anything else: an error status, a dropped connection, a socket that is not
    /// this user's.
    Failed(PodmanError),
}

impl EngineSocket {
    pub fn new(podman: Podman, source: Source) -> Self {
        Self {
            podman,
            source,
            owned: tokio::sync::Mutex::new(Owned::default()),
        }
    }

    /// A socket that answers now, pointed `client` at it. Starts (or starts
    /// again) the owned service when nothing else answers.
    pub async fn connect(&self, client: &EngineClient) -> Result<PathBuf, PodmanError> {
        let path = match &self.source {
            Source::Given(path) => path.clone(),
            Source::Machine { name } => self.machine_socket(name.as_deref()).await?,
            Source::Native { user, owned } => match user {
                Some(user) if matches!(probe(user).await, Probe::Answers) => user.clone(),
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

    /// The owned service's socket, the service started if it is not running. A
    /// service is started again only when it exited or refuses connections: one
    /// slow to answer may be busy with requests, and is left to them.
    async fn own(&self, meant: &Path) -> Result<PathBuf, PodmanError> {
        let mut owned = self.owned.lock().await;
        let socket = match owned.socket.clone() {
            Some(socket) => socket,
            None => {
                let (socket, fresh) = self.private_socket(meant)?;
                owned.socket = Some(socket.clone());
                owned.fresh = fresh;
                socket
            }
        };
        let exited = match owned.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.to_string()),
                Err(e) => Some(e.to_string()),
            },
            None => None,
        };
        let ours_runs = owned.child.is_some() && exited.is_none();
        match probe(&socket).await {
            Probe::Answers => {
                if !ours_runs {
                    // A service an earlier Clawdock started and left to its idle end.
                    tracing::info!(socket = %socket.display(), "using the engine service already running");
                }
                return Ok(socket);
            }
            Probe::Slow => {
                tracing::warn!(socket = %socket.display(), "the engine service is slow to answer; leaving it to its work");
                return Ok(socket);
            }
            Probe::Failed(e) if ours_runs => {
                tracing::warn!(socket = %socket.display(), error = %e, "the engine service answered with an error; leaving it running");
                return Ok(socket);
            }
            Probe::Failed(e) => {
                tracing::warn!(socket = %socket.display(), error = %e, "the socket of the owned engine service does not answer");
            }
            Probe::Refused => {}
        }
        if let Some(old) = owned.child.take() {
            match &exited {
                Some(how) => {
                    tracing::warn!(status = %how, "the engine service ended; starting it again")
                }
                None => tracing::warn!("the engine service refuses connections; starting another"),
            }
            retire(old);
        }
        let child = self.start_service(&socket).await?;
        owned.child = Some(child);
        let began = tokio::time::Instant::now();
        while began.elapsed() < FIRST_ANSWER {
            if matches!(probe(&socket).await, Probe::Answers) {
                tracing::info!(socket = %socket.display(), "engine service started");
                return Ok(socket);
            }
            if let Some(child) = owned.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    owned.child = None;
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

    /// `meant` if its folder is private (made so if Clawdock makes it), else a
    /// socket in a fresh private folder: a folder another user made first, or
    /// can enter, is never listened in nor trusted.
    /// Returns the socket and whether its folder is a fresh one.
    fn private_socket(&self, meant: &Path) -> Result<(PathBuf, bool), PodmanError> {
        let why = match meant.parent() {
            Some(folder) => match private_folder(folder) {
                Ok(()) => return Ok((meant.to_path_buf(), false)),
                Err(why) => format!("{}: {why}", folder.display()),
            },
            None => "it has no folder".into(),
        };
        tracing::warn!(socket = %meant.display(), %why, "the engine socket's folder is not private; using a fresh one");
        Ok((fresh_private_socket()?, true))
    }

    async fn start_service(&self, socket: &Path) -> Result<Child, PodmanError> {
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
        let mut owned = self.owned.lock().await;
        let Some(mut child) = owned.child.take() else {
            return;
        };
        terminate(&mut child);
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(_) => tracing::info!("engine service ended"),
            Err(_) => {
                tracing::warn!("engine service did not end on SIGTERM; killing it");
                if let Err(e) = child.start_kill() {
                    tracing::warn!(error = %e, "could not kill the engine service");
                }
                if let Err(e) = child.wait().await {
                    tracing::warn!(error = %e, "could not reap the engine service");
                }
            }
        }
        if let (true, Some(socket)) = (owned.fresh, owned.socket.take()) {
            // Nobody finds this folder again: its name was random.
            let folder = socket.parent().map(Path::to_path_buf);
            let removed = std::fs::remove_file(&socket)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .and_then(|()| folder.map_or(Ok(()), std::fs::remove_dir));
            if let Err(e) = removed {
                tracing::warn!(socket = %socket.display(), error = %e, "could not remove the engine socket's folder");
            }
        }
    }
}

/// A service being replaced: SIGTERM, so it finishes the requests it has and
/// ends (it no longer takes connections on the path, which the new one binds);
/// reaped on a task of its own.
fn retire(mut old: Child) {
    terminate(&mut old);
    tokio::spawn(async move {
        match old.wait().await {
            Ok(status) => tracing::info!(%status, "the replaced engine service ended"),
            Err(e) => tracing::warn!(error = %e, "could not reap the replaced engine service"),
        }
    });
}

/// Asks the service to end (SIGTERM): it closes its socket and its connections.
#[cfg(unix)]
fn terminate(child: &mut Child) {
    let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // The pid is a child not yet reaped (its `Child` is held), so it names no
    // other process.
    if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
        tracing::warn!(error = %e, "could not send SIGTERM to the engine service");
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    if let Err(e) = child.start_kill() {
        tracing::warn!(error = %e, "could not end the engine service");
    }
}

/// Pings a socket now (without moving the client's endpoint).
async fn probe(socket: &Path) -> Probe {
    if refuses(socket).await {
        return Probe::Refused;
    }
    let probe = EngineClient::new(PROBE_TIMEOUT);
    probe.set_endpoint(Some(socket.to_path_buf()));
    match probe.call(Request::get("/_ping")).await {
        Ok(_) => Probe::Answers,
        Err(PodmanError::TimedOut { .. }) => Probe::Slow,
        Err(e) => Probe::Failed(e),
    }
}

/// Whether nothing listens at `socket` (no file, or no process behind it).
#[cfg(unix)]
async fn refuses(socket: &Path) -> bool {
    use std::io::ErrorKind;
    let connecting = tokio::net::UnixStream::connect(socket);
    match tokio::time::timeout(PROBE_TIMEOUT, connecting).await {
        Ok(Err(e)) => matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused),
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[cfg(not(unix))]
async fn refuses(_socket: &Path) -> bool {
    false
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_socket_folder_is_made_private_or_refused_unless_it_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let made = dir.path().join("made");
        private_folder(&made).expect("made");
        let mode = std::fs::metadata(&made).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Made again: already there and private, fine.
        private_folder(&made).expect("again");

        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let why = private_folder(&open).expect_err("open to others");
        assert!(why.contains("mode 777"), "{why}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&made, &link).expect("link");
        let why = private_folder(&link).expect_err("a link is not followed");
        assert!(why.contains("not a folder"), "{why}");
    }

    #[test]
    fn a_long_data_folder_puts_the_socket_in_a_folder_of_its_own() {
        let short = owned_socket(Path::new("/home/a/.local/share/clawdock"));
        assert_eq!(
            short,
            Path::new("/home/a/.local/share/clawdock/engine.sock")
        );
        let long = PathBuf::from(format!("/home/a/{}", "x".repeat(110)));
        let socket = owned_socket(&long);
        assert!(fits(&socket), "{}", socket.display());
        let folder = socket.parent().and_then(Path::file_name).expect("folder");
        assert!(
            folder
                .to_string_lossy()
                .starts_with(&format!("clawdock-{}-", euid())),
            "{}",
            socket.display()
        );
    }
}
