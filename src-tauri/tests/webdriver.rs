//! The real window through WebDriver (tauri-driver over WebKitWebDriver, under Xvfb):
//! it shows the agents page from the API's own address (as a browser does),
//! reflects an agent created through the API, and its Dashboard button hands the
//! default browser a one-time address.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Home, Session, APP};
use serde_json::{json, Value};

/// Kills the WebDriver server when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn tauri_driver() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let path = home.join("bin/tauri-driver");
    path.exists().then_some(path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn window_shows_the_agents_page_and_an_agent_created_through_the_api() {
    let driver = tauri_driver()
        .expect("tauri-driver is installed (scripts/install-deps.sh: cargo install tauri-driver)");
    common::ensure_images();
    let home = Home::new();
    let opened = common::recording_openers(home.path());
    let session = Session::start();
    let port = free_port();
    let native_port = free_port();
    let driver_child = session
        .command(driver)
        .args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
            "--native-driver",
            "/usr/bin/WebKitWebDriver",
        ])
        .env("CLAWDOCK_HOME", home.path())
        .env("CLAWDOCK_API_PORT", "0")
        .env("CLAWDOCK_AGENT_IMAGE", common::IMAGE)
        // The app inherits it: the openers that only record their argv come first.
        .env(
            "PATH",
            format!(
                "{}:{}",
                home.path().join("openers").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("BROWSER")
        .env("CLAWDOCK_STOP_TIMEOUT", "2")
        .env(
            "CLAWDOCK_PORT_BASE",
            (26500 + (std::process::id() % 50) * 10).to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tauri-driver");
    let _driver = KillOnDrop(driver_child);

    let http = reqwest::Client::new();
    let wd = format!("http://127.0.0.1:{port}");
    let began = Instant::now();
    let session = loop {
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "wry", "tauri:options": {"application": APP}}}});
        if let Ok(resp) = http.post(format!("{wd}/session")).json(&caps).send().await {
            let v: Value = resp.json().await.expect("json");
            if let Some(id) = v["value"]["sessionId"].as_str() {
                break id.to_string();
            }
            panic!("no session: {v}");
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "tauri-driver answers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let run = |script: &'static str| {
        let http = &http;
        let url = format!("{wd}/session/{session}/execute/sync");
        async move {
            let v: Value = http
                .post(url)
                .json(&json!({"script": script, "args": []}))
                .send()
                .await
                .expect("execute")
                .json()
                .await
                .expect("json");
            v["value"].as_str().unwrap_or_default().to_string()
        }
    };
    let body_text = || run("return document.body.innerText");
    let wait_text = |want: &'static [&'static str], limit: Duration| {
        let body_text = &body_text;
        async move {
            let end = Instant::now() + limit;
            let mut last = String::new();
            while Instant::now() < end {
                last = body_text().await;
                if want.iter().all(|w| last.contains(w)) {
                    return last;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            panic!("the window never showed {want:?}; it shows:\n{last}");
        }
    };
    wait_text(&["Agents", "New agent"], Duration::from_secs(30)).await;

    let info: Value =
        serde_json::from_slice(&std::fs::read(home.path().join("api.json")).expect("api.json"))
            .expect("json");
    let api = info["url"].as_str().expect("url").to_string();
    let token = info["token"].as_str().expect("token").to_string();

    // The same page a browser gets, from the API's own address: its files come from
    // there, and the token was handed to that origin.
    assert_eq!(run("return location.href").await, format!("{api}/"));
    assert_eq!(
        run("return document.querySelector('link[rel=stylesheet]').href").await,
        format!("{api}/ui/style.css")
    );
    assert_eq!(
        run("return window.__CLAWDOCK__ ? window.__CLAWDOCK__.url : ''").await,
        api
    );

    // Create through the API, as another local program would.
    let created = http
        .post(format!("{api}/agents/create"))
        .bearer_auth(&token)
        .json(&json!({"name": "webdriven"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    wait_text(&["webdriven", "Running"], Duration::from_secs(40)).await;

    // Fault (issue 23): the Dashboard button asked for the address with the gateway
    // token and gave it to `window.open`, which the Tauri window drops. It now asks
    // for a one-time address and the window hands it to the default browser.
    let clicked = async {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let done = run("const b = document.querySelector('button.dashboard'); \
                 if (!b || b.hidden || b.disabled) return ''; b.click(); return 'clicked';")
            .await;
            if done == "clicked" {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    };
    assert!(
        clicked.await,
        "the Dashboard button showed once the agent was ready"
    );
    assert!(
        common::wait_for(Duration::from_secs(15), || std::fs::read_to_string(&opened)
            .is_ok_and(|log| log.lines().count() >= 2)),
        "the default browser was run: {:?}",
        std::fs::read_to_string(&opened)
    );
    let store: Value =
        serde_json::from_slice(&std::fs::read(home.path().join("agents.json")).expect("store"))
            .expect("json");
    let gateway_token = store[0]["token"].as_str().expect("gateway token");
    // Issue 30: the opener gets the path of a private page, nothing usable.
    let link = common::dashboard_page_link(&opened, home.path(), &[gateway_token, &token]);
    assert!(link.starts_with(&format!("{api}/dashboard/")), "{link}");
    let once = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let first = once.get(&link).send().await.expect("visit");
    assert_eq!(first.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(first.headers()["location"]
        .to_str()
        .expect("location")
        .contains(&format!("#token={gateway_token}")));

    // Leave nothing behind: stop the agents through the API before the session ends
    // (ending a WebDriver session kills the app without its exit path).
    let shut = http
        .post(format!("{api}/shutdown"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("shutdown");
    assert!(shut.status().is_success());
    let _closed = http.delete(format!("{wd}/session/{session}")).send().await;
}
