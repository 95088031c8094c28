//! Logging: warnings to stderr, and everything useful (the podman commands run and
//! their failures) to a daily-rotated file in the platform log folder. The folder
//! is private (0700) and so is every file in it (0600): the log names agents, paths
//! and podman's own output.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Files kept: a week of daily logs.
const KEPT_FILES: usize = 7;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("CLAWDOCK_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// Sets up logging; keep the guard alive for the life of the process so the file
/// writer flushes.
pub fn init(log_dir: &Path, file_prefix: &str) -> Option<WorkerGuard> {
    if let Err(e) = clawdock_core::store::create_private_dir(log_dir) {
        crate::tell!("clawdock: no private log folder {}: {e}", log_dir.display());
    }
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter("warn"));
    let appender = PrivateDaily::open(log_dir, file_prefix);
    match appender {
        Ok(appender) => {
            // Files of older versions (tracing-appender's, opened with the umask).
            private_files(log_dir);
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter(
                "info,clawdock_core=debug,clawdock=debug,clawdock_app=debug,clawdock_window=debug",
            ));
            let _already_set = tracing_subscriber::registry()
                .with(stderr)
                .with(file)
                .try_init();
            Some(guard)
        }
        Err(e) => {
            let _already_set = tracing_subscriber::registry().with(stderr).try_init();
            tracing::warn!(error = %e, dir = %log_dir.display(), "no log file; logging to stderr only");
            None
        }
    }
}

/// A log file per day (UTC), `PREFIX.YYYY-MM-DD.log` as tracing-appender named
/// them, each created 0600: tracing-appender opens its files with the umask and has
/// no mode option, so a file a rotation opened was readable by others (behind only
/// the folder's 0700). The oldest beyond [`KEPT_FILES`] go at each rotation.
struct PrivateDaily {
    dir: PathBuf,
    prefix: String,
    /// The day of the open file, and the file.
    current: Option<(String, std::fs::File)>,
}

impl PrivateDaily {
    fn open(dir: &Path, prefix: &str) -> std::io::Result<Self> {
        let mut this = Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            current: None,
        };
        this.file_for(&utc_day(std::time::SystemTime::now()))?;
        Ok(this)
    }

    /// The file of `day`, opened (and older ones pruned) when the day changed.
    fn file_for(&mut self, day: &str) -> std::io::Result<&mut std::fs::File> {
        if self.current.as_ref().is_none_or(|(d, _)| d != day) {
            let path = self.dir.join(format!("{}.{day}.log", self.prefix));
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let file = options.open(path)?;
            self.current = Some((day.to_string(), file));
            self.prune();
        }
        match &mut self.current {
            Some((_, file)) => Ok(file),
            None => Err(std::io::Error::other("no log file open")),
        }
    }

    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let head = format!("{}.", self.prefix);
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&head) && n.ends_with(".log"))
            })
            .collect();
        logs.sort();
        let extra = logs.len().saturating_sub(KEPT_FILES);
        for old in &logs[..extra] {
            if let Err(e) = std::fs::remove_file(old) {
                crate::tell!(
                    "clawdock: could not remove the old log {}: {e}",
                    old.display()
                );
            }
        }
    }
}

impl Write for PrivateDaily {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file_for(&utc_day(std::time::SystemTime::now()))?
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.current {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// `YYYY-MM-DD` of `at` in UTC (days to a civil date, after Howard Hinnant).
fn utc_day(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Makes every file in the log folder readable by its owner only.
fn private_files(log_dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(entries) = std::fs::read_dir(log_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file {
                let path = entry.path();
                if let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                {
                    crate::tell!("clawdock: could not make {} private: {e}", path.display());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = log_dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(utc_day(at(0)), "1970-01-01");
        assert_eq!(utc_day(at(951_782_400)), "2000-02-29");
        assert_eq!(utc_day(at(1_796_383_662)), "2026-12-04");
    }

    /// Issue 23: a file a rotation opened had the umask's mode (0644) until the
    /// next start.
    #[cfg(unix)]
    #[test]
    fn every_rotated_file_is_0600_from_its_creation_and_a_week_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PrivateDaily::open(dir.path(), "clawdock").expect("open");
        for day in 1..=9 {
            let day = format!("2026-01-{day:02}");
            log.file_for(&day)
                .expect("rotate")
                .write_all(b"line\n")
                .expect("write");
            let path = dir.path().join(format!("clawdock.{day}.log"));
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let left = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(left, KEPT_FILES);
        assert!(!dir.path().join("clawdock.2026-01-01.log").exists());
    }
}
