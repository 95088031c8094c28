//! Writing an agent's folders into an archive. The agent writes them (it may be
//! prompt-injected), so nothing is followed: each folder is opened without
//! following a link and listed through its open descriptor (`/proc/self/fd` on
//! Linux, so a folder swapped for a link while the backup runs is not entered),
//! each file opened the same way and read only as far as its size said. Links are
//! kept as links when they point inside the agent's folder and left out (said in
//! the manifest) when they point out of it; FIFOs, sockets and devices are left
//! out with a note. Bytes, members and time are bounded.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{
    hex, link_stays_inside, AgentSettings, ArchiveError, Bounds, Consistency, Manifest, Member,
    Skipped, FORMAT, MANIFEST, MAX_DEPTH, PARTS, VERSION,
};
use crate::agent_files;

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct Packed {
    pub manifest: Manifest,
}

/// Writes the archive of the agent folder `agent_dir` to `out` (blocking).
pub fn pack(
    agent_dir: &Path,
    agent: AgentSettings,
    consistency: Consistency,
    out: impl Write,
    bounds: Bounds,
) -> Result<Packed, ArchiveError> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut walk = Walk {
        tar: tar::Builder::new(gz),
        members: Vec::new(),
        skipped: Vec::new(),
        bytes: 0,
        bounds,
        deadline: Instant::now() + bounds.max_time,
    };
    for part in PARTS {
        let path = agent_dir.join(part);
        match agent_files::open_folder(&path) {
            Ok(folder) => walk.folder(&Folder::new(folder, path), part, 0)?,
            Err(e) if e.is_not_found() => {}
            Err(e) => walk.skip(part, format!("not kept: {e}")),
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at: chrono::Utc::now(),
        clawdock: env!("CARGO_PKG_VERSION").into(),
        agent,
        consistency,
        members: walk.members,
        skipped: walk.skipped,
    };
    let mut json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ArchiveError::io(Path::new(MANIFEST))(io::Error::other(e)))?;
    json.push(b'\n');
    let mut header = header(tar::EntryType::Regular, json.len() as u64, 0o600, None);
    let written = (|| {
        walk.tar
            .append_data(&mut header, MANIFEST, json.as_slice())?;
        walk.tar.into_inner()?.finish()?.flush()
    })();
    written.map_err(ArchiveError::io(Path::new(MANIFEST)))?;
    Ok(Packed { manifest })
}

/// An open folder and how to reach what it holds: through its descriptor where
/// the system offers that, else (no `/proc`) by its path.
struct Folder {
    _file: File,
    base: PathBuf,
}

impl Folder {
    fn new(file: File, path: PathBuf) -> Self {
        let base = by_descriptor(&file).unwrap_or(path);
        Self { _file: file, base }
    }
}

#[cfg(target_os = "linux")]
fn by_descriptor(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    path.is_dir().then_some(path)
}

#[cfg(not(target_os = "linux"))]
fn by_descriptor(_file: &File) -> Option<PathBuf> {
    None
}

struct Walk<W: Write> {
    tar: tar::Builder<W>,
    members: Vec<Member>,
    skipped: Vec<Skipped>,
    bytes: u64,
    bounds: Bounds,
    deadline: Instant,
}

impl<W: Write> Walk<W> {
    fn skip(&mut self, path: &str, why: String) {
        tracing::info!(%path, %why, "left out of the backup");
        self.skipped.push(Skipped {
            path: path.into(),
            why,
        });
    }

    fn bounded(&self) -> Result<(), ArchiveError> {
        if self.members.len() as u64 >= self.bounds.max_members {
            return Err(ArchiveError::TooLarge(format!(
                "The agent's folder holds more than {} files and folders; a backup stops there.",
                self.bounds.max_members
            )));
        }
        if Instant::now() > self.deadline {
            return Err(ArchiveError::TooLarge(format!(
                "Reading the agent's folder took longer than {} s; a backup stops there.",
                self.bounds.max_time.as_secs()
            )));
        }
        Ok(())
    }

    fn folder(&mut self, folder: &Folder, rel: &str, depth: usize) -> Result<(), ArchiveError> {
        self.bounded()?;
        let meta = std::fs::metadata(&folder.base).map_err(ArchiveError::io(Path::new(rel)))?;
        let mode = mode_of(&meta) | 0o700;
        let mut header = header(tar::EntryType::Directory, 0, mode, meta.modified().ok());
        self.tar
            .append_data(&mut header, rel, io::empty())
            .map_err(ArchiveError::io(Path::new(rel)))?;
        self.members.push(Member::Dir {
            path: rel.into(),
            mode,
        });
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&folder.base)
            .map_err(ArchiveError::io(Path::new(rel)))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(ArchiveError::io(Path::new(rel)))?;
        names.sort();
        for name in names {
            let Some(text) = name.to_str() else {
                self.skip(
                    &format!("{rel}/{}", name.to_string_lossy()),
                    "its name is not UTF-8: not kept".into(),
                );
                continue;
            };
            if text.contains('\\') {
                self.skip(
                    &format!("{rel}/{text}"),
                    "its name has a backslash: not kept".into(),
                );
                continue;
            }
            let child = format!("{rel}/{text}");
            self.entry(folder, &name, &child, depth)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        folder: &Folder,
        name: &std::ffi::OsStr,
        rel: &str,
        depth: usize,
    ) -> Result<(), ArchiveError> {
        self.bounded()?;
        let path = folder.base.join(name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Gone since the listing: the agent removed it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ArchiveError::io(Path::new(rel))(e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(ArchiveError::io(Path::new(rel)))?;
            match target.to_str() {
                Some(text) if link_stays_inside(rel, &target) => {
                    let mut header = header(tar::EntryType::Symlink, 0, 0o777, None);
                    self.tar
                        .append_link(&mut header, rel, text)
                        .map_err(ArchiveError::io(Path::new(rel)))?;
                    self.members.push(Member::Link {
                        path: rel.into(),
                        target: text.into(),
                    });
                }
                _ => self.skip(
                    rel,
                    format!(
                        "a link pointing out of the agent's folder (to {}): not kept",
                        target.display()
                    ),
                ),
            }
        } else if kind.is_dir() {
            if depth + 1 > MAX_DEPTH {
                self.skip(rel, format!("deeper than {MAX_DEPTH} folders: not kept"));
                return Ok(());
            }
            // Opened without following: a folder the agent swapped for a link
            // since it was listed is refused here, not entered.
            match agent_files::open_folder(&path) {
                Ok(file) => self.folder(&Folder::new(file, path), rel, depth + 1)?,
                Err(e) => self.skip(rel, format!("changed while it was read, not kept: {e}")),
            }
        } else if kind.is_file() {
            match agent_files::open_regular(&path) {
                Ok(file) => self.file(file, rel)?,
                Err(e) => self.skip(rel, format!("changed while it was read, not kept: {e}")),
            }
        } else {
            self.skip(
                rel,
                format!("{}: special files are not kept", special(&meta)),
            );
        }
        Ok(())
    }

    fn file(&mut self, file: File, rel: &str) -> Result<(), ArchiveError> {
        let meta = file.metadata().map_err(ArchiveError::io(Path::new(rel)))?;
        let size = meta.len();
        if self.bytes + size > self.bounds.max_bytes {
            return Err(ArchiveError::TooLarge(format!(
                "The agent's files pass {} MiB (at {rel}); a backup stops there.",
                self.bounds.max_bytes / (1024 * 1024)
            )));
        }
        let mode = mode_of(&meta);
        let mut header = header(tar::EntryType::Regular, size, mode, meta.modified().ok());
        let mut reader = Exactly {
            file,
            left: size,
            short: false,
            hash: Sha256::new(),
            deadline: self.deadline,
        };
        self.tar
            .append_data(&mut header, rel, &mut reader)
            .map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => ArchiveError::TooLarge(format!(
                    "Reading the agent's folder took longer than {} s (at {rel}); a backup stops there.",
                    self.bounds.max_time.as_secs()
                )),
                _ => ArchiveError::io(Path::new(rel))(e),
            })?;
        if reader.short {
            // The agent shortened it while it was read: what was read is kept,
            // made up to the size the archive says, and said.
            self.skipped.push(Skipped {
                path: rel.into(),
                why: "it shrank while it was read: its end is zeros".into(),
            });
        }
        self.bytes += size;
        self.members.push(Member::File {
            path: rel.into(),
            size,
            sha256: hex(&reader.hash.finalize()),
            mode,
        });
        Ok(())
    }
}

/// A file read as far as its size when it was opened: one that grows is cut
/// there, one that shrinks is made up with zeros (the archive's header said the
/// size first); the hash is of what went into the archive.
struct Exactly {
    file: File,
    left: u64,
    short: bool,
    hash: Sha256,
    deadline: Instant,
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if Instant::now() > self.deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "backup time bound"));
        }
        let want = buf.len().min(self.left as usize);
        let n = if self.short {
            0
        } else {
            self.file.read(&mut buf[..want])?
        };
        let n = if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    modified: Option<std::time::SystemTime>,
) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    let mtime = modified
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    header.set_mtime(mtime);
    header
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else {
        0o644
    }
}

#[cfg(unix)]
fn special(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special(_meta: &std::fs::Metadata) -> &'static str {
    "a special file"
}
