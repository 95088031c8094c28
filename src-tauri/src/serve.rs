//! `clawdock serve`: the core and the API with no tray or window. SIGTERM, SIGINT,
//! SIGHUP, `POST /shutdown` and a closed stdout or stderr run the shutdown
//! routine, then the process exits: 0 when nothing was left running. The UI link with its token is printed only to a
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
            crate::tell!("clawdock: {e}");
            return ExitCode::from(2);
        }
    };
    let _log = crate::logging::init(&settings::default_log_dir(&settings.home), "serve");
    let program = settings.self_update.program.clone();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            crate::tell!("clawdock: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(serve(settings, port)) {
        Ok(report) => report,
        Err(code) => return code,
    };
    drop(runtime);
    match &report.restart {
        // The same command line again, in the new version.
        Some(restart) => {
            let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
            crate::exit::restart(restart, program.as_deref(), &args)
        }
        None => crate::exit::code_of(&report),
    }
}

/// Serves until the end; the shutdown's report (or the code of a failed start).
async fn serve(
    settings: Settings,
    port: u16,
) -> Result<clawdock_core::shutdown::ShutdownReport, ExitCode> {
    // Before anything can start a container: a SIGHUP from here on is a graceful
    // shutdown, never the default action's instant death.
    let termination = crate::exit::termination();
    // Launched, not started: the API answers (status `starting`) while podman is
    // looked at, however slow it is.
    let core = match Clawdock::launch(settings) {
        Ok(core) => core,
        Err(e) => {
            crate::tell!("clawdock: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    core.install_panic_hook();
    crate::wake::follow(&core);
    if let Some(warning) = core.runtime_status().store_warning {
        crate::tell!("clawdock: warning: {warning}");
    }
    let api = match ApiServer::start(core.clone(), port).await {
        Ok(api) => api,
        Err(e) => {
            crate::tell!("clawdock: {e}");
            // Agents restored at start must not outlive the failed server.
            core.shutdown().await;
            return Err(ExitCode::FAILURE);
        }
    };
    let reason = match announce(&api) {
        Ok(()) => tokio::select! {
            s = termination => s,
            s = crate::console::reader_gone() => s,
            () = core.shutdown_begun() => "POST /shutdown",
        },
        Err(gone) => gone,
    };
    tracing::info!(%reason, "shutting down");
    if let Some(version) = core.self_update_status().restarting_into {
        crate::tell!("clawdock: restarting into Clawdock {version}; the agents keep running...");
    } else {
        crate::tell!("clawdock: {reason}: stopping agents...");
    }
    let report = core.shutdown().await;
    api.close().await;
    Ok(report)
}

/// Prints the API's address (and, to a terminal only, the UI link with its token).
/// A stdout nobody reads is the closed terminal's case: the caller shuts down.
fn announce(api: &ApiServer) -> Result<(), &'static str> {
    // The token goes to a person's terminal only: piped or redirected, stdout may
    // end in a log that others can read.
    let link = if std::io::stdout().is_terminal() {
        format!("Web UI: {}/#token={}", api.url(), api.token)
    } else {
        format!(
            "Web UI: {}/ (token in {}; `clawdock url` prints the link)",
            api.url(),
            api.discovery_file().display()
        )
    };
    let listening = format!("Clawdock API listening on {}", api.url());
    if crate::console::out(format_args!("{listening}"))
        && crate::console::out(format_args!("{link}"))
    {
        Ok(())
    } else {
        Err("stdout closed")
    }
}
