//! Logging: warnings to stderr, and everything useful (the podman commands run and
//! their failures) to a daily-rotated file in the platform log folder. The folder
//! is private (0700) and so is every file in it (0600): the log names agents, paths
//! and podman's own output.

use std::path::Path;

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
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(file_prefix)
        .filename_suffix("log")
        .max_log_files(KEPT_FILES)
        .build(log_dir);
    match appender {
        Ok(appender) => {
            // tracing-appender opens its files with the process's umask and has no
            // mode option; the folder's 0700 already keeps them from other users,
            // and this makes today's file (just opened) and older ones 0600 as
            // well. A file a rotation opens while the process runs stays behind the
            // folder's 0700 until the next start.
            private_files(log_dir);
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter(
                    "info,clawdock_core=debug,clawdock=debug,clawdock_app=debug",
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
