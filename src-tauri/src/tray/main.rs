//! `clawdock-app`, the tray app: the core and its API, the tray icon and menu,
//! notifications and the one exit. What runs all day, so it loads no web view, and
//! on Linux no GUI toolkit (the tray is a StatusNotifierItem over D-Bus). The window
//! is a process of its own, `clawdock-window`, started when it is opened and gone
//! when it is closed. `clawdock` with no arguments starts this program.

mod handoff;
mod icons;
mod launch;
mod menu;
#[cfg(any(windows, target_os = "macos"))]
mod native;
mod notify;
mod shell;
#[cfg(target_os = "linux")]
mod sni;
mod window;

use std::process::ExitCode;

use clap::Parser;
use clawdock_core::login_item::LoginItem;
use clawdock_core::settings::{self, Settings};

/// The app's arguments: none but the login item's.
#[derive(Parser)]
#[command(
    name = "clawdock-app",
    version,
    about = "The Clawdock tray app (`clawdock` with no arguments starts it)."
)]
struct Args {
    /// Started by the login item: the tray only, no window.
    #[arg(long = "at-login", hide = true)]
    at_login: bool,
    /// Started by the version it replaced, after installing this one (its
    /// version): the tray only, and a notification that says so.
    #[arg(long = "updated-from", hide = true)]
    updated_from: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            clawdock::tell!("clawdock: {e}");
            return ExitCode::from(2);
        }
    };
    match std::env::current_exe() {
        Ok(exe) => {
            let app = clawdock_core::login_item::app_to_launch(
                &exe,
                std::env::var_os("APPIMAGE").as_deref(),
            );
            settings.login_item = Some(LoginItem::new(app));
        }
        Err(e) => tracing::warn!(error = %e, "no login item: the app's own path is unknown"),
    }
    let _log = clawdock::logging::init(&settings::default_log_dir(&settings.home), "app");
    let program = settings.self_update.program.clone();
    let start = shell::Start {
        at_login: args.at_login,
        updated_from: args.updated_from,
        first_run: !settings.agents_file().exists(),
    };
    let port = std::env::var("CLAWDOCK_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(settings::DEFAULT_API_PORT);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            clawdock::tell!("clawdock: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let launched = match runtime.block_on(launch::launch(settings, port)) {
        Ok(launched) => launched,
        Err(code) => return code,
    };
    let ending = launched.ending.clone();
    #[cfg(target_os = "linux")]
    let code = sni::run(&runtime, launched, start);
    #[cfg(any(windows, target_os = "macos"))]
    let code = native::run(&runtime, launched, start);
    drop(runtime);
    match ending.restart() {
        Some(restart) => {
            let args = ["--updated-from".into(), restart.from.clone().into()];
            clawdock::exit::restart(&restart, program.as_deref(), &args)
        }
        None => code,
    }
}
