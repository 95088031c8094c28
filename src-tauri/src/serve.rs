//! `clawdock serve`: the core and the API with no tray or window. SIGTERM, SIGINT,
//! SIGHUP and `POST /shutdown` run the shutdown routine, then the process exits: 0
//! when nothing was left running. The UI link with its token is printed only to a
//! terminal; otherwise the token is in `api.json` (0600) and `clawdock url`.

use std::io::IsTerminal;
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
    // Launched, not started: the API answers (status `starting`) while podman is
    // looked at, however slow it is.
    let core = match Clawdock::launch(settings) {
        Ok(core) => core,
        Err(e) => {
            eprintln!("clawdock: {e}");
            return ExitCode::FAILURE;
        }
    };
    core.install_panic_hook();
    crate::wake::follow(&core);
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
    // The token goes to a person's terminal only: piped or redirected, stdout may
    // end in a log that others can read.
    if std::io::stdout().is_terminal() {
        println!("Web UI: {}/#token={}", api.url(), api.token);
    } else {
        println!(
            "Web UI: {}/ (token in {}; `clawdock url` prints the link)",
            api.url(),
            api.discovery_file().display()
        );
    }
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
