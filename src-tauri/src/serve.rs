//! `clawdock serve`: the core and the API with no tray or window. SIGTERM, SIGINT,
//! SIGHUP and `POST /shutdown` run the shutdown routine, then the process exits: 0
//! when nothing was left running.

use std::process::ExitCode;

use clawdock_core::api::ApiServer;
use clawdock_core::settings::{self, Settings};
use clawdock_core::Clawdock;

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
    core.install_panic_hook();
    if let Some(warning) = core.runtime_status().store_warning {
        eprintln!("clawdock: warning: {warning}");
    }
    let api = match ApiServer::start(core.clone(), port).await {
        Ok(api) => api,
        Err(e) => {
            eprintln!("clawdock: {e}");
            // Agents restored at start must not outlive the failed server.
            core.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    println!("Clawdock API listening on {}", api.url());
    println!("Web UI: {}/#token={}", api.url(), api.token);
    let reason = tokio::select! {
        s = crate::exit::termination() => s,
        () = core.shutdown_begun() => "POST /shutdown",
    };
    tracing::info!(%reason, "shutting down");
    eprintln!("clawdock: {reason}: stopping agents...");
    let report = core.shutdown().await;
    api.close().await;
    crate::exit::code_of(&report)
}
