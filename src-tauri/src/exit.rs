//! How the process learns it must end, shared by `serve` and the desktop app: the
//! signals and console events of each platform, all leading to the core's one
//! shutdown routine, and the exit code that says whether anything was left running.

use std::process::ExitCode;

use clawdock_core::shutdown::ShutdownReport;

/// Exit code when the shutdown left containers running (named in the log and the
/// report): scripts can tell an unclean exit from a clean one.
pub const LEFT_RUNNING: u8 = 4;

/// Takes over the signals (or console events) that ask this process to end, at
/// once: from this call on none of them ends the process by its default action.
/// The future resolves when one comes, naming it: SIGTERM, SIGINT (Ctrl-C), SIGHUP
/// (terminal closed, ssh dropped) on Unix; Ctrl-C, Ctrl-Break, console close,
/// logoff and system shutdown on Windows. Call it inside the runtime.
pub fn termination() -> impl std::future::Future<Output = &'static str> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int), Ok(mut hup)) => tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                    _ = hup.recv() => "SIGHUP",
                },
                (term, int, hup) => {
                    tracing::error!(
                        term = term.is_ok(),
                        int = int.is_ok(),
                        hup = hup.is_ok(),
                        "could not install every signal handler; only Ctrl-C ends the process cleanly"
                    );
                    ctrl_c().await
                }
            }
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows;
        let handlers = (
            windows::ctrl_c(),
            windows::ctrl_break(),
            windows::ctrl_close(),
            windows::ctrl_logoff(),
            windows::ctrl_shutdown(),
        );
        // Windows gives a console process a few seconds after close, logoff or
        // shutdown before it ends it: the routine's first phases fit in that.
        async move {
            match handlers {
                (Ok(mut c), Ok(mut brk), Ok(mut close), Ok(mut logoff), Ok(mut shutdown)) => {
                    tokio::select! {
                        _ = c.recv() => "Ctrl-C",
                        _ = brk.recv() => "Ctrl-Break",
                        _ = close.recv() => "console closed",
                        _ = logoff.recv() => "logoff",
                        _ = shutdown.recv() => "system shutdown",
                    }
                }
                _ => {
                    tracing::error!("could not install every console handler");
                    ctrl_c().await
                }
            }
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        ctrl_c()
    }
}

#[allow(dead_code)] // not reached on platforms whose handlers all install
async fn ctrl_c() -> &'static str {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot wait for Ctrl-C");
        // Nothing can end the process now but a kill; do not return at once.
        std::future::pending::<()>().await;
    }
    "Ctrl-C"
}

/// The process's exit code after a shutdown, saying so on stderr when it was
/// not clean.
pub fn code_of(report: &ShutdownReport) -> ExitCode {
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        crate::tell!(
            "clawdock: still running after the shutdown: {}",
            report.leftover.join(", ")
        );
        ExitCode::from(LEFT_RUNNING)
    }
}

/// Starts the installed update in this process's place, once the core handed over
/// (the agents left running for it to adopt): on Unix the program replaces this
/// process (same pid, so whoever started it still holds it, and the terminal of
/// `serve` stays attached); on Windows the installer runs now that nothing holds
/// the files, and starts the app itself. `program` is the path as it was at start.
pub fn restart(
    restart: &clawdock_core::self_update::Restart,
    program: Option<&std::path::Path>,
    args: &[std::ffi::OsString],
) -> ExitCode {
    use clawdock_core::self_update::AfterInstall;
    tracing::info!(from = %restart.from, to = %restart.to, "restarting into the update");
    let (program, args): (std::path::PathBuf, Vec<std::ffi::OsString>) = match &restart.after {
        AfterInstall::RunInstaller { program, args } => {
            (program.clone(), args.iter().map(Into::into).collect())
        }
        AfterInstall::Relaunch => match program {
            Some(p) => (p.to_path_buf(), args.to_vec()),
            None => {
                crate::tell!(
                    "clawdock: Clawdock {} is installed; start it again (its own path is unknown).",
                    restart.to
                );
                return ExitCode::SUCCESS;
            }
        },
    };
    let mut command = std::process::Command::new(&program);
    command.args(&args);
    #[cfg(unix)]
    if restart.after == AfterInstall::Relaunch {
        use std::os::unix::process::CommandExt;
        let failed = command.exec();
        crate::tell!(
            "clawdock: Clawdock {} is installed but could not start ({}: {failed}); start it again.",
            restart.to,
            program.display()
        );
        return ExitCode::FAILURE;
    }
    match command.spawn() {
        Ok(_started) => ExitCode::SUCCESS,
        Err(e) => {
            crate::tell!(
                "clawdock: could not start {} for Clawdock {}: {e}",
                program.display(),
                restart.to
            );
            ExitCode::FAILURE
        }
    }
}
