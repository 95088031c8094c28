//! Host-side access to files under an agent's folder, which the agent itself can
//! write (it is mounted into its container): opened without following symbolic
//! links, only regular files (or, for the folders, directories), size-capped, and
//! ownership changed on the open descriptor, never by path. A link the agent planted
//! (to `/etc/shadow`, an SSH key, `/dev/zero`, a FIFO) is then an error, not a read,
//! a hang or a `chown` of someone else's file. The functions block: async code calls
//! them through [`blocking`].

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest `openclaw.json` Clawdock reads (the gateway's is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A file under an agent's folder that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentFileError {
    /// A link, a FIFO, a device or a folder where a file belongs (or a file where
    /// a folder belongs).
    #[error(
        "{} is not a regular {what} (a link or a special file?); Clawdock does not follow links \
         or open special files in an agent's folder. Remove it, or delete the agent",
        .path.display()
    )]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{} is larger than {limit} bytes", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// The blocking pool dropped the work (the runtime is shutting down).
    #[error("file work was dropped: {0}")]
    Blocking(String),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl AgentFileError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Opens `path` for reading without following a link in its last part, without
/// blocking on a FIFO, and requires what it opened to be a regular file.
pub fn open_regular(path: &Path) -> Result<File, AgentFileError> {
    open_kind(path, false)
}

/// Opens the folder `path` without following a link in its last part (a link, a
/// file or a special file there is refused).
pub fn open_folder(path: &Path) -> Result<File, AgentFileError> {
    open_kind(path, true)
}

/// The content of the regular file `path`, refused above `limit` bytes (a file
/// that grows while read is cut there and refused too).
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, AgentFileError> {
    let file = open_regular(path)?;
    let io = |source| AgentFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = file.metadata().map_err(io)?.len();
    if len > limit {
        return Err(AgentFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(AgentFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Hands the regular file or the folder at `path` (a link is refused) to
/// `uid:gid`, through its open descriptor.
pub fn chown(path: &Path, dir: bool, uid: u32, gid: u32) -> Result<(), AgentFileError> {
    let file = open_kind(path, dir)?;
    #[cfg(unix)]
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(|source| {
        AgentFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    #[cfg(not(unix))]
    let _ = (file, uid, gid);
    Ok(())
}

fn open_kind(path: &Path, dir: bool) -> Result<File, AgentFileError> {
    let what = if dir { "folder" } else { "file" };
    let not_regular = || AgentFileError::NotRegular {
        path: path.to_path_buf(),
        what,
    };
    let file = open_no_follow(path, dir).map_err(|source| {
        if is_link_refusal(&source) {
            not_regular()
        } else {
            AgentFileError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let meta = file.metadata().map_err(|source| AgentFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fits = if dir { meta.is_dir() } else { meta.is_file() };
    if !fits {
        return Err(not_regular());
    }
    Ok(file)
}

#[cfg(unix)]
fn open_no_follow(path: &Path, dir: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

/// Elsewhere: the link is refused by looking first (a race remains where the OS
/// has no O_NOFOLLOW; the agents run on Linux in either case).
#[cfg(not(unix))]
fn open_no_follow(path: &Path, _dir: bool) -> io::Result<File> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::other("a symbolic link"));
    }
    File::open(path)
}

/// ELOOP: the last part of the path is a link (O_NOFOLLOW); ENOTDIR: not a folder
/// (O_DIRECTORY); ENXIO: a socket or a FIFO without a writer.
#[cfg(unix)]
fn is_link_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::ENXIO)
    )
}

#[cfg(not(unix))]
fn is_link_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other
}

/// Removes the folder `root` and everything in it, however deep the agent nested
/// it, without following a link: a link (at `root` too) is removed, never its
/// target. One folder is open at a time, not one per level (std's
/// `remove_dir_all` held a descriptor per level and failed with "Too many open
/// files" at about a thousand levels): names are removed with `unlinkat` relative
/// to the open folder, and the way back up (`..`) is checked against the device and
/// inode seen on the way down, so a folder moved meanwhile stops the removal
/// rather than sending it elsewhere. A `root` that is not there is no error.
/// Blocking.
#[cfg(unix)]
pub fn remove_tree(root: &Path) -> io::Result<()> {
    use rustix::fs::{fstat, open, openat, unlinkat, AtFlags, Mode};
    use rustix::io::Errno;
    let folder = match open(root, tree_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        // A link or a file where the folder was: the name goes, not its target.
        Err(Errno::LOOP | Errno::NOTDIR) => return std::fs::remove_file(root),
        Err(e) => return Err(e.into()),
    };
    let mut current = folder;
    // Each folder above `current`: its identity, and the name `current` has in it.
    let mut above = Vec::new();
    loop {
        match empty_but_one_folder(&current)? {
            Some(name) => {
                let child = match openat(&current, name.as_c_str(), tree_flags(), Mode::empty()) {
                    Ok(child) => child,
                    // Gone, or no longer a folder, since it was listed.
                    Err(Errno::NOENT) => continue,
                    Err(Errno::LOOP | Errno::NOTDIR) => {
                        unlinkat(&current, name.as_c_str(), AtFlags::empty())?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let here = fstat(&current)?;
                above.push(((here.st_dev, here.st_ino), name));
                current = child;
            }
            None => {
                let Some((seen, name)) = above.pop() else {
                    break;
                };
                let parent = openat(&current, c"..", tree_flags(), Mode::empty())?;
                let there = fstat(&parent)?;
                if (there.st_dev, there.st_ino) != seen {
                    return Err(io::Error::other(
                        "a folder moved while it was being removed; nothing outside it was touched",
                    ));
                }
                unlinkat(&parent, name.as_c_str(), AtFlags::REMOVEDIR)?;
                current = parent;
            }
        }
    }
    drop(current);
    std::fs::remove_dir(root)
}

/// Elsewhere (Windows): std's `remove_dir_all` for a folder (it removes a link or
/// junction in it without following it), `remove_file` for anything else.
#[cfg(not(unix))]
pub fn remove_tree(root: &Path) -> io::Result<()> {
    let removed = match std::fs::symlink_metadata(root) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(root),
        Ok(_) => std::fs::remove_file(root),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// How `remove_tree` opens a folder: never through a link, never blocking on a
/// FIFO put in its place, not inherited by the processes Clawdock starts.
#[cfg(unix)]
fn tree_flags() -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC
}

/// Removes every entry of the open folder `dir` that is not a folder, up to the
/// first folder it finds, whose name it returns (`None`: `dir` is empty now).
/// Listing again from the start after each folder is emptied costs only the
/// entries still there.
#[cfg(unix)]
fn empty_but_one_folder(dir: &rustix::fd::OwnedFd) -> io::Result<Option<std::ffi::CString>> {
    use rustix::fs::{statat, unlinkat, AtFlags, Dir, FileType};
    use rustix::io::Errno;
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            },
            known => known,
        };
        if kind == FileType::Directory {
            return Ok(Some(name.to_owned()));
        }
        match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Runs blocking file work on tokio's blocking pool, off the async workers.
pub async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<AgentFileError>,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(AgentFileError::Blocking(e.to_string()).into()),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_folders_are_refused_and_files_capped() {
        let tmp = tempfile::tempdir().expect("tmp");
        let target = tmp.path().join("secret");
        std::fs::write(&target, b"canary").expect("write");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        let zero = tmp.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("link");
        for bad in [&link, &zero, &tmp.path().to_path_buf()] {
            let err = read_regular(bad, 10).expect_err("refused");
            assert!(matches!(err, AgentFileError::NotRegular { .. }), "{err:?}");
        }
        let fifo = tmp.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = read_regular(&fifo, 10).expect_err("a FIFO");
        assert!(matches!(err, AgentFileError::NotRegular { .. }), "{err:?}");
        let err = chown(&link, false, 0, 0).expect_err("a link");
        assert_eq!(std::fs::read(&target).expect("target"), b"canary");
        assert!(matches!(err, AgentFileError::NotRegular { .. }), "{err:?}");
        let err = read_regular(&target, 3).expect_err("too large");
        assert!(matches!(err, AgentFileError::TooLarge { .. }), "{err:?}");
        assert_eq!(read_regular(&target, 6).expect("fits"), b"canary");
        assert!(read_regular(&tmp.path().join("none"), 6)
            .expect_err("missing")
            .is_not_found());
        let own = std::fs::metadata(tmp.path()).expect("meta");
        use std::os::unix::fs::MetadataExt;
        chown(tmp.path(), true, own.uid(), own.gid()).expect("a folder by descriptor");
        let err = chown(&target, true, own.uid(), own.gid()).expect_err("not a folder");
        assert!(matches!(err, AgentFileError::NotRegular { .. }), "{err:?}");
    }
}
