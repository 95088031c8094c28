//! One data folder, one instance: an exclusive lock on `<data folder>/instance.lock`,
//! taken before anything else is read or written and held until the shutdown
//! routine ends (the operating system drops it if the process dies); and
//! `api.json`, where local programs find the instance that holds it.

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
        match file.try_lock() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
