//! The window's page: where it loads the UI from, the script that hands the page
//! the API's address and token, and which navigations stay in the window.

/// The UI's page on the API's address, at a route (`setup`, `logs/<id>`).
pub fn window_url(api_url: &str, route: &str) -> Result<tauri::Url, url::ParseError> {
    let mut url = tauri::Url::parse(api_url)?.join("/")?;
    if !route.is_empty() {
        url.set_fragment(Some(route));
    }
    Ok(url)
}

/// The script that hands the window its API address and token. Tauri runs an
/// initialization script in whatever page the web view shows and has no per-origin
/// variant, so the script itself checks that the page is the API's own (the origin
/// of `page`) before it says anything: a page the window was navigated to elsewhere
/// learns nothing.
pub fn boot_script(page: &tauri::Url, boot: &serde_json::Value) -> String {
    let origin = serde_json::Value::String(page.origin().ascii_serialization());
    format!(
        "(function () {{\n\
         if (location.origin === {origin}) {{ window.__CLAWDOCK__ = {boot}; }}\n\
         }})();"
    )
}

/// Whether a navigation of the window stays in it: the UI's own pages, not the
/// dashboard's one-time addresses (which lead to an agent's gateway), nor another
/// origin.
pub fn stays_in_window(page: &tauri::Url, url: &tauri::Url) -> bool {
    url.origin() == page.origin() && !url.path().starts_with("/dashboard/")
}

/// Whether an address is one of the dashboard's one-time addresses on the API's
/// own origin.
pub fn is_dashboard_link(page: &tauri::Url, url: &tauri::Url) -> bool {
    url.origin() == page.origin() && url.path().starts_with("/dashboard/")
}

/// Hands a web address the UI asked to open (`window.open`) to the default
/// browser; other schemes (`file:`, custom handlers) are refused. Only addresses
/// without a secret in them come here (the dashboard's one-time address goes to the
/// tray, which opens it through a private page), since the opener's command line is
/// readable by every local user.
pub fn open_in_browser(url: &tauri::Url) {
    if !matches!(url.scheme(), "http" | "https") {
        tracing::warn!(scheme = url.scheme(), "refused to open a non-web address");
        return;
    }
    if let Err(e) = open::that_detached(url.as_str()) {
        tracing::warn!(error = %e, "could not open the browser");
    }
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
