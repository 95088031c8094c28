//! `clawdock-app`, the desktop app: wires the core to Tauri (tray, window,
//! notifications, exit). Holds no logic of its own beyond that wiring. It is the
//! only binary that loads the GUI libraries; `clawdock` with no arguments starts it.

mod menu;
mod tray;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use clawdock_core::api::ApiServer;
use clawdock_core::events::{Change, Event};
use clawdock_core::login_item::LoginItem;
use clawdock_core::settings::{self, Settings};
use clawdock_core::Clawdock;
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tauri_plugin_notification::NotificationExt;

use menu::{Action, Effect, MenuState};
use tray::ActionTable;

const WINDOW: &str = "main";
/// A window hidden this long is destroyed, so an idle tray app holds no webview.
const FREE_WEBVIEW_AFTER: Duration = Duration::from_secs(120);

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const DONE: u8 = 2;

/// What the shell keeps: the core, the API, and where the exit is.
struct Shell {
    core: Clawdock,
    api_url: String,
    api_token: String,
    api: Mutex<Option<ApiServer>>,
    exit: AtomicU8,
    stopping: Mutex<Option<usize>>,
    hidden_since: Mutex<Option<Instant>>,
    /// The menu and tooltip on display (the tooltip names the state, so it stands
    /// for the icon too).
    shown_menu: Mutex<Option<(Vec<menu::Item>, String)>>,
    /// When the user was last told the machine went away.
    engine_lost_told: Mutex<Option<Instant>>,
}

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    without_gdk_gl();
    run(args.at_login)
}

/// GTK 3 initialises OpenGL when it opens the display, to choose its visuals, so a
/// tray app that never shows a window still loads Mesa's driver and LLVM and
/// relocates them: 32 MB of the tray app's 122 MB PSS here (BENCH.md, section 2).
/// Nothing of Clawdock's draws with GL in this process, and WebKit shows its page
/// without it (the desktop and WebDriver tests see the window render; its web
/// process renders on its own). A `GDK_GL` the user set wins.
fn without_gdk_gl() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none() {
        // Set before any thread exists: nothing else reads the environment yet.
        std::env::set_var("GDK_GL", "disable");
    }
}

/// Runs the tray app; `at_login`: started by the login item, so no window.
fn run(at_login: bool) -> ExitCode {
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
    let first_run = !settings.agents_file().exists();
    let port = std::env::var("CLAWDOCK_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(settings::DEFAULT_API_PORT);

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            show_window(app, "");
        }))
        .plugin(tauri_plugin_notification::init())
        .manage(ActionTable::default())
        .setup(move |app| {
            let handle = app.handle().clone();
            let (core, api) = tauri::async_runtime::block_on(async {
                // A `clawdock serve` may hold this data folder (a second desktop
                // launch never gets here: the single-instance plugin shows the
                // first one's window instead).
                let core = Clawdock::launch(settings).inspect_err(|e| {
                    clawdock::tell!("clawdock: {e}");
                })?;
                core.install_panic_hook();
                clawdock::wake::follow(&core);
                let api = match ApiServer::start(core.clone(), port).await {
                    Ok(api) => Ok(api),
                    // Another program holds the usual port: take any free one;
                    // clients find it in api.json.
                    Err(e) if port != 0 => {
                        tracing::warn!(error = %e, "API port taken; using a free one");
                        ApiServer::start(core.clone(), 0).await
                    }
                    Err(e) => Err(e),
                };
                match api {
                    Ok(api) => Ok::<_, Box<dyn std::error::Error>>((core, api)),
                    Err(e) => {
                        // Agents restored at launch must not outlive the app.
                        core.shutdown().await;
                        Err(e.into())
                    }
                }
            })?;
            let shell = Shell {
                core: core.clone(),
                api_url: api.url(),
                api_token: api.token.clone(),
                exit: AtomicU8::new(RUNNING),
                stopping: Mutex::new(None),
                hidden_since: Mutex::new(None),
                shown_menu: Mutex::new(None),
                engine_lost_told: Mutex::new(None),
                api: Mutex::new(None),
            };
            *lock(&shell.api) = Some(api);
            app.manage(shell);

            let (items, icon, tooltip) = tray_content(&handle);
            if let Err(e) = tray::build_tray(&handle, &items, icon, &tooltip) {
                // The app will not run: the routine runs here or never.
                let shell = app.state::<Shell>();
                shell.exit.store(DONE, Ordering::SeqCst);
                let api = lock(&shell.api).take();
                tauri::async_runtime::block_on(async move {
                    core.shutdown().await;
                    if let Some(api) = api {
                        api.close().await;
                    }
                });
                return Err(e.into());
            }
            spawn_event_relay(&handle, &core);
            spawn_exit_triggers(&handle);

            // The tray is up; what to show first waits for podman's first answer.
            tauri::async_runtime::spawn(async move {
                core.probed().await;
                let status = core.runtime_status();
                if at_login {
                    if status.setup_needed() || !status.is_available() {
                        notify(
                            &handle,
                            "Clawdock",
                            "Podman needs setting up: open Clawdock from the tray.",
                        );
                    }
                } else if first_run || status.setup_needed() || !status.is_available() {
                    show_window(
                        &handle,
                        if status.setup_needed() || !status.is_available() {
                            "setup"
                        } else {
                            ""
                        },
                    );
                }
            });
            Ok(())
        })
        .on_menu_event(|app, event| {
            let Some(action) = app.state::<ActionTable>().lookup(event.id().as_ref()) else {
                return;
            };
            on_action(app, action);
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                // Closing hides: the app lives in the tray.
                api.prevent_close();
                if let Err(e) = window.hide() {
                    tracing::warn!(error = %e, "could not hide the window");
                }
                schedule_free_webview(window.app_handle());
            }
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            clawdock::tell!("clawdock: could not start the desktop app: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|app, event| match event {
        RunEvent::ExitRequested { api, code, .. } => {
            let shell = app.state::<Shell>();
            if shell.exit.load(Ordering::SeqCst) == DONE {
                return;
            }
            api.prevent_exit();
            // `code == None`: the last window went away (the webview was freed);
            // the app stays in the tray.
            if code.is_some() {
                begin_exit(app);
            }
        }
        // macOS Cmd+Q, Dock Quit and logout end the event loop without asking
        // (no `ExitRequested`): run the routine here, blocking, before the
        // process goes.
        RunEvent::Exit => {
            let shell = app.state::<Shell>();
            if shell.exit.swap(DONE, Ordering::SeqCst) != DONE {
                tracing::info!("the event loop is ending; running the shutdown routine");
                let core = shell.core.clone();
                let api = lock(&shell.api).take();
                let report = tauri::async_runtime::block_on(async move {
                    let report = core.shutdown().await;
                    if let Some(api) = api {
                        api.close().await;
                    }
                    report
                });
                if !report.clean() {
                    tracing::error!(still_running = ?report.leftover, "quitting with containers still running");
                    std::process::exit(i32::from(clawdock::exit::LEFT_RUNNING));
                }
            }
        }
        _ => {}
    });
    ExitCode::SUCCESS
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the shutdown routine once; the app exits when it is done. A second
/// request while it runs kills what is left.
fn begin_exit(app: &AppHandle) {
    let shell = app.state::<Shell>();
    match shell
        .exit
        .compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst)
    {
        Ok(_) => {
            let app = app.clone();
            let core = shell.core.clone();
            tauri::async_runtime::spawn(async move {
                let report = core.shutdown().await;
                let shell = app.state::<Shell>();
                let api = lock(&shell.api).take();
                if let Some(api) = api {
                    api.close().await;
                }
                shell.exit.store(DONE, Ordering::SeqCst);
                let code = if report.clean() {
                    0
                } else {
                    tracing::error!(still_running = ?report.leftover, "quitting with containers still running");
                    i32::from(clawdock::exit::LEFT_RUNNING)
                };
                app.exit(code);
            });
        }
        Err(STOPPING) => {
            let core = shell.core.clone();
            tauri::async_runtime::spawn(async move {
                let leftover = core.force_shutdown().await;
                tracing::warn!(?leftover, "quit again while stopping: killed what was left");
            });
        }
        Err(_) => {}
    }
}

fn on_action(app: &AppHandle, action: Action) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let core = app.state::<Shell>().core.clone();
        match menu::perform(&core, action).await {
            Effect::None => {}
            Effect::ShowWindow(route) => show_window(&app, &route),
            Effect::OpenDashboard(link) => {
                if let Err(e) = clawdock::browser::open_dashboard(&core.settings().home, &link) {
                    tracing::warn!(error = %e, "could not open the dashboard");
                    notify(
                        &app,
                        "Clawdock",
                        &format!("Could not open the dashboard: {e}"),
                    );
                }
            }
            Effect::Quit => begin_exit(&app),
            Effect::Failed(message) | Effect::Told(message) => notify(&app, "Clawdock", &message),
        }
    });
}

/// Shows the window (building it again if it was freed) at a route of the UI.
fn show_window(app: &AppHandle, route: &str) {
    let shell = app.state::<Shell>();
    *lock(&shell.hidden_since) = None;
    if let Some(window) = app.get_webview_window(WINDOW) {
        if !route.is_empty() {
            let script = format!(
                "location.hash = {};",
                serde_json::Value::String(route.into())
            );
            if let Err(e) = window.eval(&script) {
                tracing::warn!(error = %e, "could not route the window");
            }
        }
        let shown = window
            .show()
            .and_then(|()| window.unminimize())
            .and_then(|()| window.set_focus());
        if let Err(e) = shown {
            tracing::warn!(error = %e, "could not show the window");
        }
        return;
    }
    // The window shows the UI from the API's own address, exactly as a browser does:
    // one origin, so no CORS, and the API's own Content-Security-Policy applies.
    let page = match window_url(&shell.api_url, route) {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(error = %e, url = %shell.api_url, "the API address is not a URL");
            return;
        }
    };
    let boot = serde_json::json!({ "url": shell.api_url, "token": shell.api_token });
    let own = page.clone();
    let own_too = page.clone();
    let home = shell.core.settings().home.clone();
    let home_too = home.clone();
    let built = WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::External(page.clone()))
        .title("Clawdock")
        .inner_size(980.0, 700.0)
        .min_inner_size(640.0, 480.0)
        .initialization_script(boot_script(&page, &boot))
        // The window shows only the UI: a navigation elsewhere goes to the default
        // browser instead; the dashboard's one-time address the way the tray's
        // "Open dashboard" takes (a private page; nothing on the opener's
        // command line signs in), any other address as it is.
        .on_navigation(move |url| {
            if stays_in_window(&own, url) {
                return true;
            }
            if is_dashboard_link(&own, url) {
                if let Err(e) = clawdock::browser::open_dashboard(&home, url.as_str()) {
                    tracing::warn!(error = %e, "could not open the dashboard");
                }
            } else {
                open_in_browser(url);
            }
            false
        })
        // The webview opens no window of its own (WebKitGTK drops a `window.open`
        // without a user's click just before, and opens none of its own after one):
        // web addresses go to the default browser.
        .on_new_window(move |url, _features| {
            if is_dashboard_link(&own_too, &url) {
                if let Err(e) = clawdock::browser::open_dashboard(&home_too, url.as_str()) {
                    tracing::warn!(error = %e, "could not open the dashboard");
                }
            } else {
                open_in_browser(&url);
            }
            tauri::webview::NewWindowResponse::Deny
        })
        .build();
    if let Err(e) = built {
        tracing::error!(error = %e, "could not open the window");
    }
}

/// Whether a navigation of the window stays in it: the UI's own pages, not the
/// dashboard's one-time addresses (which lead to an agent's gateway), nor another
/// origin.
fn stays_in_window(page: &tauri::Url, url: &tauri::Url) -> bool {
    url.origin() == page.origin() && !url.path().starts_with("/dashboard/")
}

/// Whether a navigation of the window is to one of the dashboard's one-time
/// addresses on the API's own origin.
fn is_dashboard_link(page: &tauri::Url, url: &tauri::Url) -> bool {
    url.origin() == page.origin() && url.path().starts_with("/dashboard/")
}

/// Hands a web address the UI asked to open (`window.open`) to the default
/// browser; other schemes (`file:`, custom handlers) are refused. Only addresses
/// without a secret in them come here (the dashboard's one-time address goes
/// through [`clawdock::browser::open_dashboard`]), since the opener's command line
/// is readable by every local user.
fn open_in_browser(url: &tauri::Url) {
    if !matches!(url.scheme(), "http" | "https") {
        tracing::warn!(scheme = url.scheme(), "refused to open a non-web address");
        return;
    }
    if let Err(e) = open::that_detached(url.as_str()) {
        tracing::warn!(error = %e, "could not open the browser");
    }
}

/// The UI's page on the API's address, at a route (`setup`, `logs/<id>`).
fn window_url(api_url: &str, route: &str) -> Result<tauri::Url, url::ParseError> {
    let mut url = tauri::Url::parse(api_url)?.join("/")?;
    if !route.is_empty() {
        url.set_fragment(Some(route));
    }
    Ok(url)
}

/// The script that hands the window its API address and token. Tauri runs an
/// initialization script in whatever page the webview shows and has no per-origin
/// variant, so the script itself checks that the page is the API's own (the origin
/// of `page`) before it says anything: a page the window was navigated to elsewhere
/// learns nothing.
fn boot_script(page: &tauri::Url, boot: &serde_json::Value) -> String {
    let origin = serde_json::Value::String(page.origin().ascii_serialization());
    format!(
        "(function () {{\n\
         if (location.origin === {origin}) {{ window.__CLAWDOCK__ = {boot}; }}\n\
         }})();"
    )
}

fn schedule_free_webview(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let hidden_at = Instant::now();
    *lock(&shell.hidden_since) = Some(hidden_at);
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(FREE_WEBVIEW_AFTER).await;
        let shell = app.state::<Shell>();
        if *lock(&shell.hidden_since) == Some(hidden_at) {
            if let Some(window) = app.get_webview_window(WINDOW) {
                tracing::info!("freeing the hidden window's webview");
                if let Err(e) = window.destroy() {
                    tracing::warn!(error = %e, "could not free the webview");
                }
            }
        }
    });
}

fn tray_content(app: &AppHandle) -> (Vec<menu::Item>, tauri::image::Image<'static>, String) {
    let shell = app.state::<Shell>();
    let status = shell.core.runtime_status();
    let agents = shell.core.agents().list();
    let stopping = *lock(&shell.stopping);
    let launch_at_login = shell.core.launch_at_login().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read the login item");
        None
    });
    let state = MenuState {
        status: &status,
        agents: &agents,
        stopping,
        launch_at_login,
    };
    let line = menu::status_line(&state);
    (
        menu::model(&state),
        tray::icon_for(status.state, stopping.is_some()),
        format!("Clawdock — {line}"),
    )
}

/// Follows the core's events: keeps the tray current and tells the user of what
/// happened without them (an agent ready, failed or died; setup done).
fn spawn_event_relay(app: &AppHandle, core: &Clawdock) {
    let mut rx = core.subscribe();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => Some(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if let Some(event) = &event {
                notify_for(&app, event);
                if let Event::Shutdown { stopping } = event {
                    let shell = app.state::<Shell>();
                    let mut slot = lock(&shell.stopping);
                    // Stays set (at 0) until the process exits: the menu keeps
                    // offering "Quit now".
                    *slot = Some(*stopping);
                }
            }
            let (items, icon, tooltip) = tray_content(&app);
            // Rebuilt only when it changed: a rebuild replaces a menu the user may
            // have open.
            let shell = app.state::<Shell>();
            let mut shown = lock(&shell.shown_menu);
            if shown.as_ref() != Some(&(items.clone(), tooltip.clone())) {
                if let Err(e) = tray::update_tray(&app, &items, icon, &tooltip) {
                    tracing::warn!(error = %e, "could not update the tray");
                }
                *shown = Some((items, tooltip));
            }
        }
    });
}

fn notify_for(app: &AppHandle, event: &Event) {
    // The user sees the window's own feedback for what they just did there.
    let window_focused = app
        .get_webview_window(WINDOW)
        .is_some_and(|w| w.is_visible().unwrap_or(false) && w.is_focused().unwrap_or(false));
    match event {
        Event::Agent {
            agent,
            change: Some(change),
        } if !window_focused => match change {
            Change::Ready => notify(app, &agent.name, "The agent is ready."),
            Change::StartFailed { message } => {
                notify(app, &format!("{} failed to start", agent.name), message)
            }
            Change::Died { exit_code } => notify(
                app,
                &format!("{} stopped", agent.name),
                &format!(
                    "The gateway exited on its own (exit code {}).",
                    exit_code.map_or("?".into(), |c| c.to_string())
                ),
            ),
            Change::EngineLost => {
                // One notification for all the agents one loss took down.
                let shell = app.state::<Shell>();
                let mut last = lock(&shell.engine_lost_told);
                if last.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
                    *last = Some(Instant::now());
                    notify(
                        app,
                        "Podman's machine stopped",
                        "Its agents stopped with it. They start again when Podman is back: choose Start Podman machine in the menu.",
                    );
                }
            }
        },
        Event::Runtime { status } if !window_focused => {
            if let Some(setup) = &status.setup {
                if !setup.running {
                    match &setup.error {
                        Some(e) => notify(app, "Podman setup failed", e),
                        None if status.state == clawdock_core::status::StateName::Ready => {
                            notify(app, "Podman is ready", "You can create agents now.")
                        }
                        None => {}
                    }
                }
            }
        }
        _ => {}
    }
}

fn notify(app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!(error = %e, "notification not shown");
    }
}

/// Signals and console events (Tauri does not turn them into an exit on Linux)
/// and a shutdown begun elsewhere (`POST /shutdown`) all go through the app's
/// exit, and so the shutdown routine.
fn spawn_exit_triggers(app: &AppHandle) {
    let app_signal = app.clone();
    tauri::async_runtime::spawn(async move {
        let which = clawdock::exit::termination().await;
        tracing::info!(signal = which, "exit requested");
        begin_exit(&app_signal);
    });
    let app_api = app.clone();
    let core = app.state::<Shell>().core.clone();
    tauri::async_runtime::spawn(async move {
        core.shutdown_begun().await;
        begin_exit(&app_api);
    });
}

#[cfg(test)]
mod tests {
    use super::{boot_script, window_url};

    /// Runs the boot script (for an API at 127.0.0.1:9105) under node in a page at
    /// `url`; says whether the page got the API address and token.
    fn injected_at(url: &str) -> bool {
        let boot = serde_json::json!({ "url": "http://127.0.0.1:9105", "token": "t0k" });
        let page = window_url("http://127.0.0.1:9105", "setup").expect("url");
        let program = format!(
            "var location = new URL({url:?}); var window = {{}};\n{}\n\
             process.stdout.write(String(window.__CLAWDOCK__ ? window.__CLAWDOCK__.token : ''));",
            boot_script(&page, &boot)
        );
        let out = std::process::Command::new("node")
            .args(["-e", &program])
            .output()
            .expect("node (the UI tests need it too)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        match String::from_utf8_lossy(&out.stdout).as_ref() {
            "t0k" => true,
            "" => false,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn the_window_opens_the_api_s_own_page() {
        assert_eq!(
            window_url("http://127.0.0.1:9105", "")
                .expect("url")
                .as_str(),
            "http://127.0.0.1:9105/"
        );
        assert_eq!(
            window_url("http://127.0.0.1:9105", "logs/abc")
                .expect("url")
                .as_str(),
            "http://127.0.0.1:9105/#logs/abc"
        );
    }

    #[test]
    fn the_token_is_injected_into_the_api_s_own_pages_only() {
        assert!(injected_at("http://127.0.0.1:9105/#setup"));
        assert!(injected_at("http://127.0.0.1:9105/index.html"));
        for foreign in [
            "https://example.com/",
            "http://127.0.0.1:9106/",
            "http://localhost:9105/",
            "https://127.0.0.1:9105/",
            "http://127.0.0.1.evil.example:9105/",
            "tauri://localhost/index.html",
            "http://tauri.localhost/",
            "file:///tmp/x.html",
        ] {
            assert!(!injected_at(foreign), "{foreign}");
        }
    }
}
