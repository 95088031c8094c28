//! Reading an archive back: [`check`] reads it whole and writes nothing, refusing
//! what a restore must never write (a member that climbs out by `..` or an
//! absolute path, a link pointing out of the agent's folder or a member beneath a
//! link, a device, a FIFO or a hard link, a member twice, one past the size bound,
//! anything the manifest does not list with the same SHA-256); [`extract`] then
//! writes it into a folder made for it, links last (so no member is written
//! through one), each file hashed again as it is written.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{
    hex, link_stays_inside, member_path, ArchiveError, Bounds, Manifest, Member, FORMAT, MANIFEST,
    MAX_MANIFEST_BYTES, VERSION,
};

/// An archive found whole and as its manifest says.
#[derive(Debug, Clone)]
pub struct Checked {
    pub manifest: Manifest,
}

/// What a header and its extensions may take of the stream between members.
const BETWEEN_MEMBERS: u64 = MAX_MANIFEST_BYTES;

/// The archive's members as a stream, each read within a budget: the bytes the
/// member's header declared (set before it is read), or what a header may take
/// between members; a member longer than it said, a header extension without end
/// or a gzip bomb meets the budget, not the memory.
struct Budgeted<R> {
    inner: R,
    left: Rc<Cell<u64>>,
    deadline: Instant,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() > self.deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "time bound"));
        }
        let left = self.left.get();
        if left == 0 {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "size bound"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

type Reader = Budgeted<flate2::read::GzDecoder<BufReader<File>>>;

fn open(
    archive: &Path,
    bounds: Bounds,
) -> Result<(tar::Archive<Reader>, Rc<Cell<u64>>), ArchiveError> {
    let file = File::open(archive).map_err(ArchiveError::io(archive))?;
    let left = Rc::new(Cell::new(BETWEEN_MEMBERS));
    let reader = Budgeted {
        inner: flate2::read::GzDecoder::new(BufReader::new(file)),
        left: left.clone(),
        deadline: Instant::now() + bounds.max_time,
    };
    Ok((tar::Archive::new(reader), left))
}

/// Says what an error of the stream means for a restore.
fn stream_error(e: io::Error, bounds: Bounds) -> ArchiveError {
    match e.kind() {
        io::ErrorKind::TimedOut => ArchiveError::TooLarge(format!(
            "Reading the archive took longer than {} s; refused.",
            bounds.max_time.as_secs()
        )),
        io::ErrorKind::FileTooLarge => ArchiveError::Refused(
            "a member or header is longer than it said, or than any header may be".into(),
        ),
        _ => ArchiveError::Refused(format!(
            "it is not a gzipped tar archive, or it is damaged ({e})"
        )),
    }
}

/// One member as read, before it is compared with the manifest.
struct Read1 {
    member: Member,
    /// The manifest's own bytes, for the manifest member.
    manifest: Option<Vec<u8>>,
}

/// Reads one member: its path and kind judged, its content hashed (or, for the
/// manifest, kept). `content` counts the file bytes so far, against the bound.
fn read_member(
    entry: &mut tar::Entry<'_, Reader>,
    left: &Rc<Cell<u64>>,
    content: &mut u64,
    bounds: Bounds,
    mut sink: impl FnMut(&str, &[u8]) -> Result<(), ArchiveError>,
) -> Result<Read1, ArchiveError> {
    let raw = entry
        .path()
        .map_err(|e| ArchiveError::Refused(format!("a member's name cannot be read ({e})")))?
        .into_owned();
    let path = member_path(&raw).map_err(ArchiveError::Refused)?;
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o600) & 0o777;
    let kind = header.entry_type();
    let member = match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = entry.size();
            if path == MANIFEST {
                if size > MAX_MANIFEST_BYTES {
                    return Err(ArchiveError::Refused(format!(
                        "{MANIFEST} is {size} bytes, more than a manifest can be"
                    )));
                }
                left.set(size);
                let mut bytes = Vec::with_capacity(size as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| stream_error(e, bounds))?;
                left.set(BETWEEN_MEMBERS);
                return Ok(Read1 {
                    member: Member::File {
                        path,
                        size,
                        sha256: String::new(),
                        mode,
                    },
                    manifest: Some(bytes),
                });
            }
            if size > bounds.max_bytes.saturating_sub(*content) {
                return Err(ArchiveError::TooLarge(format!(
                    "The archive is refused: `{path}` is {size} bytes, past the bound of {} MiB for an agent's files.",
                    bounds.max_bytes / (1024 * 1024)
                )));
            }
            left.set(size);
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0u64;
            loop {
                let n = entry.read(&mut buf).map_err(|e| stream_error(e, bounds))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                sink(&path, &buf[..n])?;
                got += n as u64;
            }
            left.set(BETWEEN_MEMBERS);
            if got != size {
                return Err(ArchiveError::Refused(format!(
                    "`{path}` ends before its size ({got} of {size} bytes)"
                )));
            }
            *content += size;
            Member::File {
                path,
                size,
                sha256: hex(&hash.finalize()),
                mode,
            }
        }
        tar::EntryType::Directory => Member::Dir {
            path,
            mode: mode | 0o700,
        },
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(|e| {
                    ArchiveError::Refused(format!("`{path}`: its link cannot be read ({e})"))
                })?
                .ok_or_else(|| ArchiveError::Refused(format!("`{path}` is a link to nothing")))?
                .into_owned();
            let text = target
                .to_str()
                .ok_or_else(|| ArchiveError::Refused(format!("`{path}`: its link is not UTF-8")))?;
            if !link_stays_inside(&path, &target) {
                return Err(ArchiveError::Refused(format!(
                    "`{path}` is a link pointing out of the agent's folder (to {text})"
                )));
            }
            Member::Link {
                path,
                target: text.into(),
            }
        }
        other => {
            let what = match other {
                tar::EntryType::Link => "a hard link",
                tar::EntryType::Char | tar::EntryType::Block => "a device",
                tar::EntryType::Fifo => "a FIFO",
                _ => "of a kind Clawdock does not restore",
            };
            return Err(ArchiveError::Refused(format!(
                "`{path}` is {what}: only files, folders and links are restored"
            )));
        }
    };
    Ok(Read1 {
        member,
        manifest: None,
    })
}

/// Reads the archive whole, writing nothing, and gives back its manifest when
/// every member is allowed and as the manifest lists it (and the manifest lists
/// nothing more).
pub fn check(archive: &Path, bounds: Bounds) -> Result<Checked, ArchiveError> {
    let (mut tar, left) = open(archive, bounds)?;
    let mut seen: BTreeMap<String, Member> = BTreeMap::new();
    let mut manifest_bytes = None;
    let mut content = 0u64;
    let entries = tar.entries().map_err(|e| stream_error(e, bounds))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_error(e, bounds))?;
        if seen.len() as u64 >= bounds.max_members {
            return Err(ArchiveError::TooLarge(format!(
                "The archive is refused: more than {} members.",
                bounds.max_members
            )));
        }
        if manifest_bytes.is_some() {
            return Err(ArchiveError::Refused(format!(
                "a member follows {MANIFEST}, which ends a Clawdock backup"
            )));
        }
        let read = read_member(&mut entry, &left, &mut content, bounds, |_, _| Ok(()))?;
        if let Some(bytes) = read.manifest {
            manifest_bytes = Some(bytes);
            continue;
        }
        let path = read.member.path().to_string();
        if seen.insert(path.clone(), read.member).is_some() {
            return Err(ArchiveError::Refused(format!("`{path}` is in it twice")));
        }
    }
    let bytes = manifest_bytes.ok_or_else(|| {
        ArchiveError::Refused(format!("it has no {MANIFEST}: it is not a Clawdock backup"))
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::Refused(format!("its {MANIFEST} cannot be read ({e})")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(ArchiveError::Refused(format!(
            "its {MANIFEST} is of another kind or version ({} {}; this Clawdock reads {FORMAT} {VERSION})",
            manifest.format, manifest.version
        )));
    }
    let listed: BTreeMap<&str, &Member> = manifest.members.iter().map(|m| (m.path(), m)).collect();
    if listed.len() != manifest.members.len() {
        return Err(ArchiveError::Refused(format!(
            "its {MANIFEST} lists a member twice"
        )));
    }
    for (path, member) in &seen {
        match listed.get(path.as_str()) {
            Some(said) if *said == member => {}
            Some(_) => {
                return Err(ArchiveError::Refused(format!(
                    "`{path}` is not what {MANIFEST} says (its SHA-256, size, kind or mode differs)"
                )))
            }
            None => {
                return Err(ArchiveError::Refused(format!(
                    "`{path}` is not in {MANIFEST}"
                )))
            }
        }
    }
    if let Some(missing) = listed.keys().find(|p| !seen.contains_key(**p)) {
        return Err(ArchiveError::Refused(format!(
            "`{missing}` is in {MANIFEST} but not in the archive"
        )));
    }
    for path in seen.keys() {
        let mut above = Path::new(path).parent();
        while let Some(dir) = above.filter(|d| !d.as_os_str().is_empty()) {
            match dir.to_str().and_then(|d| seen.get(d)) {
                Some(Member::Dir { .. }) | None => {}
                Some(_) => {
                    return Err(ArchiveError::Refused(format!(
                        "`{path}` lies beneath `{}`, which is not a folder",
                        dir.display()
                    )))
                }
            }
            above = dir.parent();
        }
    }
    Ok(Checked { manifest })
}

/// Writes a checked archive into `dest`, a folder that must not exist yet (made
/// 0700). Files are created new (never through a link: links come last), each
/// hashed again as written; `owner` (uid, gid) is given every file, folder and
/// link made (the gateway's user, under rootful Podman). On an error `dest` is
/// left for the caller to remove.
pub fn extract(
    archive: &Path,
    checked: &Checked,
    dest: &Path,
    owner: Option<(u32, u32)>,
    bounds: Bounds,
) -> Result<(), ArchiveError> {
    crate::store::create_private_dir_new(dest).map_err(ArchiveError::io(dest))?;
    let wanted: BTreeMap<&str, &Member> = checked
        .manifest
        .members
        .iter()
        .map(|m| (m.path(), m))
        .collect();
    let (mut tar, left) = open(archive, bounds)?;
    let mut content = 0u64;
    let mut links = Vec::new();
    let mut dirs = vec![dest.to_path_buf()];
    let entries = tar.entries().map_err(|e| stream_error(e, bounds))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_error(e, bounds))?;
        let raw = entry
            .path()
            .map_err(|e| ArchiveError::Refused(format!("a member's name cannot be read ({e})")))?
            .into_owned();
        let path = member_path(&raw).map_err(ArchiveError::Refused)?;
        if path == MANIFEST {
            break;
        }
        let target = dest.join(&path);
        let is_file = matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        );
        let mut out = if is_file {
            let parent = target.parent().unwrap_or(dest);
            make_dirs(dest, parent, &mut dirs)?;
            Some(create_new(&target)?)
        } else {
            None
        };
        let read = read_member(&mut entry, &left, &mut content, bounds, |_, bytes| {
            if let Some(out) = out.as_mut() {
                out.write_all(bytes).map_err(ArchiveError::io(&target))?;
            }
            Ok(())
        })?;
        if wanted.get(path.as_str()) != Some(&&read.member) {
            return Err(ArchiveError::Refused(format!(
                "`{path}` changed since the archive was checked"
            )));
        }
        match read.member {
            Member::File { mode, .. } => {
                let file = out
                    .take()
                    .ok_or_else(|| ArchiveError::io(&target)(io::Error::other("not open")))?;
                finish_file(&file, &target, mode, entry.header().mtime().ok(), owner)?;
            }
            Member::Dir { mode, .. } => {
                make_dirs(dest, &target, &mut dirs)?;
                set_mode(&target, mode)?;
            }
            Member::Link { target: to, .. } => links.push((target, to)),
        }
    }
    for (at, to) in links {
        let parent = at.parent().unwrap_or(dest).to_path_buf();
        make_dirs(dest, &parent, &mut dirs)?;
        make_link(&to, &at, owner)?;
    }
    if let Some((uid, gid)) = owner {
        for dir in dirs {
            crate::agent_files::chown(&dir, true, uid, gid)
                .map_err(|e| ArchiveError::io(&dir)(io::Error::other(e.to_string())))?;
        }
    }
    Ok(())
}

/// Makes the folders from `dest` down to `dir` (no links exist under `dest` yet:
/// they are made last), noting each made.
fn make_dirs(dest: &Path, dir: &Path, made: &mut Vec<PathBuf>) -> Result<(), ArchiveError> {
    let Ok(rest) = dir.strip_prefix(dest) else {
        return Err(ArchiveError::Refused(format!(
            "`{}` is outside",
            dir.display()
        )));
    };
    let mut at = dest.to_path_buf();
    for part in rest.components() {
        at.push(part);
        match std::fs::create_dir(&at) {
            Ok(()) => {
                set_mode(&at, 0o700)?;
                made.push(at.clone());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !std::fs::symlink_metadata(&at)
                    .map_err(ArchiveError::io(&at))?
                    .is_dir()
                {
                    return Err(ArchiveError::Refused(format!(
                        "`{}` is a folder and a file at once",
                        at.display()
                    )));
                }
            }
            Err(e) => return Err(ArchiveError::io(&at)(e)),
        }
    }
    Ok(())
}

fn create_new(path: &Path) -> Result<File, ArchiveError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).map_err(ArchiveError::io(path))
}

fn finish_file(
    file: &File,
    path: &Path,
    mode: u32,
    mtime: Option<u64>,
    owner: Option<(u32, u32)>,
) -> Result<(), ArchiveError> {
    let io = ArchiveError::io(path);
    let done = (|| {
        file.sync_all()?;
        if let Some(secs) = mtime {
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
            }
        }
        #[cfg(not(unix))]
        let _ = (mode, owner);
        Ok(())
    })();
    done.map_err(io)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(ArchiveError::io(path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(unix)]
fn make_link(to: &str, at: &Path, owner: Option<(u32, u32)>) -> Result<(), ArchiveError> {
    std::os::unix::fs::symlink(to, at).map_err(ArchiveError::io(at))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(at, Some(uid), Some(gid)).map_err(ArchiveError::io(at))?;
    }
    Ok(())
}

/// Links need a privilege on Windows: there the link is left out, said in the log.
#[cfg(not(unix))]
fn make_link(to: &str, at: &Path, _owner: Option<(u32, u32)>) -> Result<(), ArchiveError> {
    tracing::warn!(link = %at.display(), %to, "links are not restored on this system");
    Ok(())
}
