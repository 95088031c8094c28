//! What an agent's folders take on the disk: the blocks of every file, counted one
//! folder open at a time without following a link, however deep the agent nested
//! them (a descriptor per level would run out at about a thousand), each file with
//! several names counted once. The agent writes these folders and may race the
//! count; a count that ran out of time is a lower bound, said so.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// A count of the bytes a folder's files hold on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Measured {
    pub bytes: u64,
    /// False when the count stopped at its time bound: `bytes` is a lower bound.
    pub complete: bool,
}

/// The bytes under `root` (its own included), counted within `budget`. A `root`
/// that is not there takes nothing. Blocking.
#[cfg(unix)]
pub fn measure(root: &Path, budget: Duration) -> io::Result<Measured> {
    use std::collections::HashSet;
    use std::ffi::CString;

    use rustix::fs::{fstat, open, openat, Mode};
    use rustix::io::Errno;

    let began = Instant::now();
    let mut current = match open(root, folder_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => return Ok(Measured::default()),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = 0u64;
    // Files with more than one name, counted at their first.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    // Each open level: its identity and the folders in it still to count.
    let mut levels: Vec<((u64, u64), Vec<CString>)> = Vec::new();
    let here = fstat(&current)?;
    bytes += blocks(&here);
    levels.push((
        (here.st_dev as u64, here.st_ino as u64),
        list(&current, &mut bytes, &mut seen)?,
    ));
    loop {
        if began.elapsed() > budget {
            return Ok(Measured {
                bytes,
                complete: false,
            });
        }
        let Some((_, pending)) = levels.last_mut() else {
            break;
        };
        match pending.pop() {
            Some(name) => {
                let child = match openat(&current, name.as_c_str(), folder_flags(), Mode::empty()) {
                    Ok(child) => child,
                    // Gone, or not a folder any more, since it was listed.
                    Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
                    Err(e) => return Err(e.into()),
                };
                let stat = fstat(&child)?;
                bytes += blocks(&stat);
                let names = list(&child, &mut bytes, &mut seen)?;
                levels.push(((stat.st_dev as u64, stat.st_ino as u64), names));
                current = child;
            }
            None => {
                levels.pop();
                let Some((above, _)) = levels.last() else {
                    break;
                };
                let parent = openat(&current, c"..", folder_flags(), Mode::empty())?;
                let stat = fstat(&parent)?;
                if (stat.st_dev as u64, stat.st_ino as u64) != *above {
                    // Moved meanwhile: the way back is not the way down. What was
                    // counted stands, as a lower bound.
                    return Ok(Measured {
                        bytes,
                        complete: false,
                    });
                }
                current = parent;
            }
        }
    }
    Ok(Measured {
        bytes,
        complete: true,
    })
}

/// Counts the files of the open folder `dir` and returns its folders' names.
#[cfg(unix)]
fn list(
    dir: &rustix::fd::OwnedFd,
    bytes: &mut u64,
    seen: &mut std::collections::HashSet<(u64, u64)>,
) -> io::Result<Vec<std::ffi::CString>> {
    use rustix::fs::{statat, AtFlags, Dir, FileType};
    use rustix::io::Errno;
    let mut folders = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if entry.file_type() == FileType::Directory {
            folders.push(name.to_owned());
            continue;
        }
        let stat = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            folders.push(name.to_owned());
        } else if stat.st_nlink <= 1 || seen.insert((stat.st_dev as u64, stat.st_ino as u64)) {
            *bytes += blocks(&stat);
        }
    }
    Ok(folders)
}

/// What a file holds on the disk (a sparse file counts only what it holds).
#[cfg(unix)]
fn blocks(stat: &rustix::fs::Stat) -> u64 {
    // st_blocks counts 512-byte units on every unix.
    (stat.st_blocks as u64).saturating_mul(512)
}

#[cfg(unix)]
fn folder_flags() -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC
}

/// Elsewhere (Windows): file lengths, walked by path without following links or
/// junctions.
#[cfg(not(unix))]
pub fn measure(root: &Path, budget: Duration) -> io::Result<Measured> {
    let began = Instant::now();
    let mut bytes = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if began.elapsed() > budget {
            return Ok(Measured {
                bytes,
                complete: false,
            });
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    Ok(Measured {
        bytes,
        complete: true,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn files_at_any_depth_count_once_and_links_are_not_followed() {
        use rustix::fs::{mkdirat, openat, Mode, OFlags};
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("workspace");
        std::fs::create_dir(&root).expect("root");
        // 2,000 levels: more than the descriptors a process may hold by default,
        // made one level at a time (the whole path is longer than a path may be).
        let mut fd = std::fs::File::open(&root).expect("open");
        for _ in 0..2000 {
            mkdirat(fd.as_fd(), c"d", Mode::RWXU).expect("mkdir");
            let next = openat(
                fd.as_fd(),
                c"d",
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .expect("open");
            fd = std::fs::File::from(next);
        }
        let folders = measure(&root, Duration::from_secs(60)).expect("measure");
        assert!(folders.complete);
        let big = openat(
            fd.as_fd(),
            c"big",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::RUSR | Mode::WUSR,
        )
        .expect("create");
        let mut big = std::fs::File::from(big);
        std::io::Write::write_all(&mut big, &vec![7u8; 4 << 20]).expect("write");
        big.sync_all().expect("sync");
        // A link to a big file outside, and a second name of a file inside.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, vec![1u8; 8 << 20]).expect("outside");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("link");
        std::fs::write(root.join("one"), vec![2u8; 1 << 20]).expect("one");
        std::fs::hard_link(root.join("one"), root.join("two")).expect("hard link");
        let measured = measure(&root, Duration::from_secs(60)).expect("measure");
        assert!(measured.complete);
        let added = (measured.bytes - folders.bytes) as f64 / f64::from(1 << 20);
        assert!(
            (5.0..5.5).contains(&added),
            "4 MiB at the bottom + 1 MiB once, not the link's 8 MiB: {added:.2} MiB"
        );
        let cut = measure(&root, Duration::ZERO).expect("measure");
        assert!(!cut.complete, "out of time: a lower bound, said so");
        assert_eq!(
            measure(&dir.path().join("none"), Duration::from_secs(1)).expect("missing"),
            Measured::default()
        );
    }
}
