//! One data folder, one instance: an exclusive lock on `<data folder>/instance.lock`,
//! taken before anything else is read or written and held until the shutdown
//! routine ends (the operating system drops it if the process dies); and
//! `api.json`, where local programs find the instance that holds it, trusted only
//! while that instance holds the lock ([`running_instance`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `api.json` holds, for local clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovery {
    pub url: String,
    pub token: String,
    pub pid: u32,
}

/// How often taking the lock is tried before another holder is believed.
const LOCK_TRIES: u32 = 5;

/// The lock, held.
#[derive(Debug)]
pub struct InstanceLock {
    file: Option<File>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Clawdock is already running for {} ({})", home.display(), holder_text(*pid, url.as_deref()))]
    AlreadyRunning {
        home: PathBuf,
        pid: Option<u32>,
        url: Option<String>,
    },
    #[error("could not lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn holder_text(pid: Option<u32>, url: Option<&str>) -> String {
    match (pid, url) {
        (Some(pid), Some(url)) => format!("pid {pid}, {url}"),
        (Some(pid), None) => format!("pid {pid}, still starting"),
        (None, _) => "another process".into(),
    }
}

impl InstanceLock {
    /// Takes the lock of `home` (which must exist), or says who holds it.
    pub fn acquire(home: &Path) -> Result<Self, LockError> {
        let path = home.join("instance.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // A client checking whether anyone runs holds a shared lock for an instant
        // (see `running_instance`): a few quick tries get past it.
        let mut tries = 0;
        let taken = loop {
            tries += 1;
            match file.try_lock() {
                Err(TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other,
            }
        };
        match taken {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                let url = std::fs::read(home.join("api.json"))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Discovery>(&bytes).ok())
                    .filter(|d| Some(d.pid) == pid)
                    .map(|d| d.url);
                return Err(LockError::AlreadyRunning {
                    home: home.to_path_buf(),
                    pid,
                    url,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // The holder's pid, for the sentence a second instance prints.
        file.set_len(0).map_err(io)?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(io)?;
        Ok(Self { file: Some(file) })
    }

    /// Lets another instance take the folder (the shutdown routine has ended).
    pub fn release(&mut self) {
        if let Some(file) = self.file.take() {
            if let Err(e) = file.unlock() {
                tracing::warn!(error = %e, "could not release the instance lock");
            }
        }
    }
}

/// Why `api.json` does not describe a running instance.
#[derive(Debug, thiserror::Error)]
pub enum NotRunning {
    #[error("no {}", path.display())]
    NoFile { path: PathBuf },
    #[error("{} is unreadable: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{} is stale: process {pid} is gone", path.display())]
    ProcessGone { path: PathBuf, pid: u32 },
    #[error("{} is stale: no Clawdock holds {}", path.display(), lock.display())]
    NotLocked { path: PathBuf, lock: PathBuf },
    #[error("{} is stale: {} is held by another process, not {pid}", path.display(), lock.display())]
    OtherHolder {
        path: PathBuf,
        lock: PathBuf,
        pid: u32,
    },
}

/// The instance running for `home`, as its `api.json` says, when that file can
/// be trusted: its process is alive ([`process_alive`]) and holds the folder's
/// lock (the pid in `instance.lock` is the file's). Otherwise the file is stale (a
/// crash, `kill -9`) and its address may belong to any program by now: a client
/// must not send it the token.
pub fn running_instance(home: &Path) -> Result<Discovery, NotRunning> {
    let path = home.join("api.json");
    let lock = home.join("instance.lock");
    let bytes = std::fs::read(&path).map_err(|_| NotRunning::NoFile { path: path.clone() })?;
    let info: Discovery = serde_json::from_slice(&bytes).map_err(|e| NotRunning::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if process_alive(info.pid) == Some(false) {
        return Err(NotRunning::ProcessGone {
            path,
            pid: info.pid,
        });
    }
    let not_locked = || NotRunning::NotLocked {
        path: path.clone(),
        lock: lock.clone(),
    };
    // Read-only and shared: probing creates nothing, and two clients probing at
    // once do not take each other for the instance.
    let file = File::open(&lock).map_err(|_| not_locked())?;
    match file.try_lock_shared() {
        // Nobody holds the folder; the lock goes with `file`.
        Ok(()) => return Err(not_locked()),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(_)) => return Err(not_locked()),
    }
    let holder: Option<u32> = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    if holder != Some(info.pid) {
        return Err(NotRunning::OtherHolder {
            path,
            lock,
            pid: info.pid,
        });
    }
    Ok(info)
}

/// Whether process `pid` exists, without signalling it (no unsafe code): on Linux
/// `/proc/<pid>` is there; on other Unixes (macOS) `ps -p <pid>` succeeds. `None`
/// where neither can tell (Windows): the lock decides alone there.
pub fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        return Some(Path::new("/proc").join(pid.to_string()).exists());
    }
    if cfg!(unix) {
        return std::process::Command::new("ps")
            .args(["-p", &pid.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .map(|s| s.success());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_discovery(home: &Path, pid: u32) {
        let info = Discovery {
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            pid,
        };
        std::fs::write(
            home.join("api.json"),
            serde_json::to_vec(&info).expect("json"),
        )
        .expect("write");
    }

    /// A pid that was just used and is gone.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn api_json_is_trusted_only_while_its_process_holds_the_lock() {
        let home = tempfile::tempdir().expect("home");
        let h = home.path();
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::NoFile { .. })
        ));
        std::fs::write(h.join("api.json"), b"{").expect("write");
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::Unreadable { .. })
        ));
        write_discovery(h, dead_pid());
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::ProcessGone { .. })
        ));
        // Alive (this process) but holding nothing.
        write_discovery(h, std::process::id());
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::NotLocked { .. })
        ));
        assert!(
            !h.join("instance.lock").exists(),
            "probing creates no lock file"
        );
        std::fs::write(h.join("instance.lock"), b"").expect("lock file");
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::NotLocked { .. })
        ));
        // Held, and api.json is the holder's.
        let mut lock = InstanceLock::acquire(h).expect("lock");
        assert_eq!(
            running_instance(h).expect("running").pid,
            std::process::id()
        );
        // Held by this process, but api.json names another live one (pid 1).
        write_discovery(h, 1);
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::OtherHolder { .. })
        ));
        lock.release();
        write_discovery(h, std::process::id());
        assert!(matches!(
            running_instance(h),
            Err(NotRunning::NotLocked { .. })
        ));
    }

    #[test]
    fn a_probe_does_not_keep_an_instance_from_starting() {
        let home = tempfile::tempdir().expect("home");
        std::fs::write(home.path().join("instance.lock"), b"").expect("lock file");
        let probe = File::open(home.path().join("instance.lock")).expect("open");
        probe.try_lock_shared().expect("shared");
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            drop(probe);
        });
        InstanceLock::acquire(home.path()).expect("taken once the probe let go");
        released.join().expect("join");
    }

    #[test]
    fn a_second_lock_on_one_folder_is_refused_until_released() {
        let home = tempfile::tempdir().expect("home");
        let mut first = InstanceLock::acquire(home.path()).expect("first");
        match InstanceLock::acquire(home.path()) {
            Err(LockError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()))
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        let other_home = tempfile::tempdir().expect("home");
        InstanceLock::acquire(other_home.path()).expect("another folder is free");
        first.release();
        InstanceLock::acquire(home.path()).expect("free after release");
    }
}
