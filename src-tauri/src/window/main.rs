//! `clawdock-window`, the window: the UI from the API's own address in the
//! platform's web view. The tray app starts it when the window is opened and tells
//! it on its stdin where the API is; closing the window ends this process, and the
//! web view's memory with it. It also ends when the tray app does (its stdin
//! closes). It holds no state of its own: the page talks to the API.

mod page;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clawdock::window_link::{self, FromWindow, ToWindow};
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};

const WINDOW: &str = "main";

fn main() -> ExitCode {
    without_gdk_gl();
    let mut tray = std::io::BufReader::new(std::io::stdin());
    let (url, token, route, log_dir) = match first_line(&mut tray) {
        Ok(ToWindow::Open {
            url,
            token,
            route,
            log_dir,
        }) => (url, token, route, log_dir),
        Ok(other) => {
            clawdock::tell!("clawdock-window: told {other:?} first; the Clawdock tray app (`clawdock`) opens this window");
            return ExitCode::from(2);
        }
        Err(e) => {
            clawdock::tell!(
                "clawdock-window: {e}; the Clawdock tray app (`clawdock`) opens this window"
            );
            return ExitCode::from(2);
        }
    };
    let _log = clawdock::logging::init(&log_dir, "window");
    // Set when the window closes on its own account (its close button, the tray
    // app gone): the process then ends without quitting Clawdock.
    let closing = Arc::new(AtomicBool::new(false));
    let (on_close, on_tray_gone) = (closing.clone(), closing.clone());
    let app = tauri::Builder::default()
        .setup(move |app| {
            open(app.handle(), &url, &token, &route)?;
            follow_tray(app.handle().clone(), tray, on_tray_gone);
            Ok(())
        })
        .on_window_event(move |_window, event| match event {
            WindowEvent::Focused(focused) => tell_tray(&FromWindow::Focused { focused: *focused }),
            WindowEvent::CloseRequested { .. } => on_close.store(true, Ordering::SeqCst),
            _ => {}
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            clawdock::tell!("clawdock: could not open the window: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(move |_app, event| {
        // The loop ends with the window still there: the user quit from the app
        // menu (macOS: Cmd+Q, Dock > Quit), which quits Clawdock, as it always did.
        if let RunEvent::Exit = event {
            if !closing.load(Ordering::SeqCst) {
                tell_tray(&FromWindow::Quit);
            }
        }
    });
    ExitCode::SUCCESS
}

/// The tray app's first line: where the API is.
fn first_line(tray: &mut impl BufRead) -> Result<ToWindow, OpenError> {
    let mut line = String::new();
    if tray.read_line(&mut line)? == 0 {
        return Err(OpenError::NothingSaid);
    }
    Ok(window_link::read(&line)?)
}

#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("nothing on stdin")]
    NothingSaid,
    #[error("stdin: {0}")]
    Read(#[from] std::io::Error),
    #[error("stdin is not the tray app's: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// GTK initialises OpenGL when it opens the display, to choose its visuals: Mesa's
/// driver and LLVM, tens of megabytes, loaded and relocated in this process.
/// Nothing here draws with GL, and WebKit shows its page without it (its web
/// process renders on its own; the desktop and WebDriver tests see the page). A
/// `GDK_GL` the user set wins.
fn without_gdk_gl() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none() {
        // Set before any thread exists: nothing else reads the environment yet.
        std::env::set_var("GDK_GL", "disable");
    }
}

/// Builds the window: the UI from the API's own address, exactly as a browser
/// shows it (one origin, so no CORS, and the API's own Content-Security-Policy).
fn open(app: &AppHandle, api_url: &str, token: &str, route: &str) -> Result<(), BuildError> {
    let page = page::window_url(api_url, route).map_err(|source| BuildError::Url {
        url: api_url.to_owned(),
        source,
    })?;
    let boot = serde_json::json!({ "url": api_url, "token": token });
    let own = page.clone();
    WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::External(page.clone()))
        .title("Clawdock")
        .inner_size(980.0, 700.0)
        .min_inner_size(640.0, 480.0)
        .initialization_script(page::boot_script(&page, &boot))
        // The window shows only the UI: a navigation elsewhere goes to the default
        // browser instead; the dashboard's one-time address through the tray, which
        // opens it as its own "Open dashboard" does (a private page: nothing on
        // the opener's command line signs in), any other address as it is.
        .on_navigation(move |url| {
            if page::stays_in_window(&own, url) {
                return true;
            }
            leave_window(&own, url);
            false
        })
        // The web view opens no window of its own (WebKitGTK drops a `window.open`
        // without a user's click just before, and opens none of its own after one):
        // web addresses go to the default browser.
        .on_new_window(move |url, _features| {
            leave_window(&page, &url);
            tauri::webview::NewWindowResponse::Deny
        })
        .build()?;
    Ok(())
}

/// Where an address the page asked for goes: a dashboard's one-time address to
/// the tray, anything else to the default browser.
fn leave_window(page: &tauri::Url, url: &tauri::Url) {
    if page::is_dashboard_link(page, url) {
        tell_tray(&FromWindow::OpenDashboard {
            link: url.as_str().to_owned(),
        });
    } else {
        page::open_in_browser(url);
    }
}

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("the API address {url} is not a URL: {source}")]
    Url {
        url: String,
        source: url::ParseError,
    },
    #[error("could not build the window: {0}")]
    Tauri(#[from] tauri::Error),
}

/// Brings the window to the front at a route of the UI (`""`: where it is).
fn show(app: &AppHandle, route: &str) {
    let Some(window) = app.get_webview_window(WINDOW) else {
        return;
    };
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
}

/// Reads what the tray app says until its end, which ends the window too.
fn follow_tray(app: AppHandle, tray: impl BufRead + Send + 'static, closing: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("tray-link".into())
        .spawn(move || {
            for line in tray.lines() {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        tracing::warn!(error = %e, "the tray app's pipe broke");
                        break;
                    }
                };
                match window_link::read::<ToWindow>(&line) {
                    Ok(ToWindow::Show { route }) => {
                        let shown = app.clone();
                        if let Err(e) = app.run_on_main_thread(move || show(&shown, &route)) {
                            tracing::warn!(error = %e, "could not show the window");
                        }
                    }
                    Ok(ToWindow::Open { .. }) => {
                        tracing::warn!("told to open while open; the window stays as it is");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %line, "unreadable line from the tray app")
                    }
                }
            }
            tracing::info!("the tray app closed the window");
            closing.store(true, Ordering::SeqCst);
            app.exit(0);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot follow the tray app; the window stays until closed");
    }
}

/// Says something to the tray app. A failure means the tray app is gone, and this
/// window goes too once its stdin ends.
fn tell_tray(message: &FromWindow) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(window_link::line(message).as_bytes())
        .and_then(|()| out.flush());
    if let Err(e) = written {
        tracing::debug!(error = %e, ?message, "the tray app did not hear");
    }
}
