//! `clawdock serve`: the core and the API with no tray or window. SIGTERM, SIGINT and
//! `POST /shutdown` run the shutdown routine, then the process exits 0.

use std::process::ExitCode;
use std::time::Duration;

use clawdock_core::api::ApiServer;
use clawdock_core::settings::{self, Settings};
use clawdock_core::Clawdock;

/// Time over the stop timeout the shutdown may take before what is left is killed.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(15);

pub fn run(port: u16) -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clawdock: {e}");
            return ExitCode::from(2);
        }
    };
    let _log = crate::logging::init(&settings::default_log_dir(&settings.home), "serve");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawdock: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(settings, port))
}

async fn serve(settings: Settings, port: u16) -> ExitCode {
    let core = match Clawdock::start(settings).await {
        Ok(core) => core,
        Err(e) => {
            eprintln!("clawdock: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(warning) = core.runtime_status().store_warning {
        eprintln!("clawdock: warning: {warning}");
    }
    let api = match ApiServer::start(core.clone(), port).await {
        Ok(api) => api,
        Err(e) => {
            eprintln!("clawdock: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Clawdock API listening on {}", api.url());
    println!("Web UI: {}/#token={}", api.url(), api.token);
    let exit = api.exit_requested();
    let reason = tokio::select! {
        s = termination() => s,
        () = exit.notified() => "POST /shutdown",
    };
    tracing::info!(%reason, "shutting down");
    eprintln!("clawdock: {reason}: stopping agents...");
    stop_bounded(&core).await;
    api.close();
    ExitCode::SUCCESS
}

/// Runs the shutdown routine within the stop timeout plus a margin; past that, kills
/// what is left. Shared by every exit path of the headless server and the app.
pub async fn stop_bounded(core: &Clawdock) {
    let bound = core.settings().stop_timeout + SHUTDOWN_MARGIN;
    match tokio::time::timeout(bound, core.shutdown()).await {
        Ok(report) => tracing::info!(?report, "agents stopped"),
        Err(_) => {
            let killed = core.force_shutdown().await;
            tracing::warn!(killed, "shutdown overran its bound; killed what was left");
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C), naming it.
pub async fn termination() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            (term, int) => {
                tracing::warn!(
                    ?term,
                    ?int,
                    "no signal handlers; only Ctrl-C ends the server"
                );
                ctrl_c().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await
    }
}

async fn ctrl_c() -> &'static str {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot wait for Ctrl-C");
        // Nothing can end the server now but a kill; do not return at once.
        std::future::pending::<()>().await;
    }
    "Ctrl-C"
}
