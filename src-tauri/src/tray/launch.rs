//! The tray app's start and end: the data folder taken (or handed over to the
//! instance that holds it), the core and its API up, and the one ending, the
//! shutdown routine then the API closed, which the shell and the platform's event
//! loop share.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clawdock_core::api::ApiServer;
use clawdock_core::app::StartError;
use clawdock_core::events::Event;
use clawdock_core::instance::LockError;
use clawdock_core::settings::Settings;
use clawdock_core::Clawdock;
use tokio::sync::broadcast;

/// The end of the process: the shutdown routine, then the API closed. Shared with
/// the platform's event loop, which runs it itself when the system ends the loop
/// without asking (macOS at logout).
pub struct Ending {
    core: Clawdock,
    api: Mutex<Option<ApiServer>>,
    finished: AtomicBool,
}

impl Ending {
    /// Runs the shutdown routine (or joins the one under way) and closes the API;
    /// the exit code says whether containers were left running.
    pub async fn finish(&self) -> ExitCode {
        let report = self.core.shutdown().await;
        let api = lock(&self.api).take();
        if let Some(api) = api {
            api.close().await;
        }
        self.finished.store(true, Ordering::SeqCst);
        if report.clean() {
            ExitCode::SUCCESS
        } else {
            tracing::error!(still_running = ?report.leftover, "quitting with containers still running");
            ExitCode::from(clawdock::exit::LEFT_RUNNING)
        }
    }

    /// Whether [`Ending::finish`] ran to its end (the loop's own end need not).
    #[cfg(any(windows, target_os = "macos"))]
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

/// The core and its API, up; what the shell needs to run.
pub struct Launched {
    pub core: Clawdock,
    pub ending: Arc<Ending>,
    pub api_url: String,
    pub api_token: String,
    pub log_dir: std::path::PathBuf,
    /// Taken before the API answers, so a second launch never finds nobody to ask.
    pub window_wanted: broadcast::Receiver<()>,
    /// Taken before the tray's first content is read, so no change falls between.
    pub events: broadcast::Receiver<Event>,
    /// Installed before the core starts any container: from then on a signal is a
    /// graceful exit, never the default action's instant death.
    pub termination: Pin<Box<dyn Future<Output = &'static str> + Send>>,
}

/// Takes the data folder and starts the core and the API. When another instance
/// holds the folder, asks it to show its window and ends (the code to exit with).
pub async fn launch(settings: Settings, port: u16) -> Result<Launched, ExitCode> {
    let termination = Box::pin(clawdock::exit::termination());
    let home = settings.home.clone();
    let log_dir = clawdock_core::settings::default_log_dir(&home);
    let core = match Clawdock::launch(settings) {
        Ok(core) => core,
        Err(held @ StartError::AlreadyRunning(LockError::AlreadyRunning { .. })) => {
            return Err(super::handoff::to_first(&home, &held).await);
        }
        Err(e) => {
            clawdock::tell!("clawdock: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let window_wanted = core.window_requests();
    let events = core.subscribe();
    core.install_panic_hook();
    clawdock::wake::follow(&core);
    let api = match ApiServer::start(core.clone(), port).await {
        Ok(api) => Ok(api),
        // Another program holds the usual port: take any free one; clients find
        // it in api.json.
        Err(e) if port != 0 => {
            tracing::warn!(error = %e, "API port taken; using a free one");
            ApiServer::start(core.clone(), 0).await
        }
        Err(e) => Err(e),
    };
    let api = match api {
        Ok(api) => api,
        Err(e) => {
            clawdock::tell!("clawdock: {e}");
            // Agents restored at launch must not outlive the app.
            core.shutdown().await;
            return Err(ExitCode::FAILURE);
        }
    };
    Ok(Launched {
        api_url: api.url(),
        api_token: api.token.clone(),
        ending: Arc::new(Ending {
            core: core.clone(),
            api: Mutex::new(Some(api)),
            finished: AtomicBool::new(false),
        }),
        core,
        log_dir,
        window_wanted,
        events,
        termination,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
