//! Issue 12's hardening as users of the real binary meet it: a stale `api.json`
//! gets "not running" and no request; the API key from stdin; the token printed
//! only to a terminal; a private log folder. Issue 23's: loopback never through a
//! proxy from the environment.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use clawdock_core::instance::InstanceLock;
use common::{clawdock, wait_for, Home, Serve, BIN};

fn write_api_json(home: &Path, url: &str, pid: u32) {
    let info = serde_json::json!({ "url": url, "token": "secret-token-for-nobody", "pid": pid });
    std::fs::write(
        home.join("api.json"),
        serde_json::to_vec(&info).expect("json"),
    )
    .expect("api.json");
}

/// A pid that was just used and is gone.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[test]
fn a_stale_api_json_is_not_running_and_gets_no_request() {
    // Whoever holds the port now (another user's program) must never see the token.
    let home = tempfile::tempdir().expect("home");
    let squatter = TcpListener::bind("127.0.0.1:0").expect("listen");
    squatter.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", squatter.local_addr().expect("addr"));
    // Its process is gone; then a live process (this test) that holds no lock.
    for pid in [dead_pid(), std::process::id()] {
        write_api_json(home.path(), &url, pid);
        for args in [
            &["status"][..],
            &["url"],
            &["agents", "list"],
            &["agents", "stop", "x"],
            &["quit"],
        ] {
            let out = clawdock(home.path(), args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{args:?} pid {pid}: {err}");
            assert!(
                err.contains("Clawdock is not running") && err.contains("stale"),
                "{err}"
            );
            assert!(!String::from_utf8_lossy(&out.stdout).contains("secret-token"));
        }
    }
    match squatter.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, from)) => panic!("the CLI connected to the port's new owner (from {from})"),
        Err(e) => panic!("accept: {e}"),
    }
}

/// One HTTP request as a scripted server sees it, answered with a 400.
fn answer_one(listener: TcpListener) -> std::thread::JoinHandle<(String, String)> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = std::io::BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        let answer = r#"{"error":"refused by the test","code":"bad_request"}"#;
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .expect("answer");
        (head, String::from_utf8_lossy(&body).into_owned())
    })
}

#[test]
fn the_api_key_can_come_from_stdin_and_help_says_why() {
    let help = Command::new(BIN)
        .args(["agents", "create", "--help"])
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--api-key-stdin"), "{text}");
    assert!(text.contains("visible to other local"), "{text}");
    assert!(text.contains("CLAWDOCK_API_KEY"), "{text}");

    // A live instance as the CLI checks it: this process holds the folder's lock
    // and api.json names it; the "API" is a scripted one that records the request.
    let home = tempfile::tempdir().expect("home");
    let _lock = InstanceLock::acquire(home.path()).expect("lock");
    let api = TcpListener::bind("127.0.0.1:0").expect("listen");
    let url = format!("http://{}", api.local_addr().expect("addr"));
    write_api_json(home.path(), &url, std::process::id());
    let seen = answer_one(api);
    let mut child = Command::new(BIN)
        .args([
            "agents",
            "create",
            "keyed",
            "--provider",
            "openai",
            "--api-key-stdin",
            "--no-wait",
        ])
        .env("CLAWDOCK_HOME", home.path())
        .env_remove("CLAWDOCK_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("create");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"  sk-from-stdin-123\n")
        .expect("key");
    let out = child.wait_with_output().expect("wait");
    let (head, body) = seen.join().expect("request");
    assert!(head.starts_with("POST /agents/create "), "{head}");
    assert!(
        head.contains("secret-token-for-nobody"),
        "the live instance gets the token"
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(body["apiKey"], "sk-from-stdin-123");
    assert_eq!(body["providerType"], "openai");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused by the test"));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn serve_prints_the_token_only_to_a_terminal_and_keeps_its_files_private() {
    let home = Home::new();
    // A token file from an older version: a secret that outlived its server.
    std::fs::write(home.path().join("api-token"), "a".repeat(64)).expect("old token");
    let mut serve = Serve::start(home.path());
    let printed = serve.printed.join("\n");
    let api_json = home.path().join("api.json");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&api_json).expect("api.json")).expect("json");
    let url = info["url"].as_str().expect("url");
    let token = info["token"].as_str().expect("token");
    assert_eq!(
        serve.printed.last().map(String::as_str),
        Some(
            format!(
                "Web UI: {url}/ (token in {}; `clawdock url` prints the link)",
                api_json.display()
            )
            .as_str()
        ),
        "{printed}"
    );
    assert!(
        !printed.contains(token) && !printed.contains("#token"),
        "{printed}"
    );
    assert!(
        !home.path().join("api-token").exists(),
        "the old token file is gone"
    );
    assert_ne!(token, "a".repeat(64));
    // To a pipe, the address without its token, unless asked (issue 23).
    let link = clawdock(home.path(), &["url"]);
    assert_eq!(
        String::from_utf8_lossy(&link.stdout).trim(),
        format!("{url}/")
    );
    assert!(String::from_utf8_lossy(&link.stderr).contains("--show-token"));
    let link = clawdock(home.path(), &["url", "--show-token"]);
    assert_eq!(
        String::from_utf8_lossy(&link.stdout).trim(),
        format!("{url}/#token={token}")
    );
    // The API on IPv6 loopback too, same port.
    let port = url.rsplit(':').next().expect("port");
    let v6 = tokio::runtime::Runtime::new().expect("rt").block_on(
        reqwest::Client::new()
            .get(format!("http://[::1]:{port}/agents"))
            .bearer_auth(token)
            .send(),
    );
    assert_eq!(v6.expect("[::1]").status(), reqwest::StatusCode::OK);
    #[cfg(unix)]
    {
        let logs = home.path().join("logs");
        assert_eq!(mode(&logs), 0o700, "log folder");
        let files: Vec<_> = std::fs::read_dir(&logs)
            .expect("logs")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        assert!(!files.is_empty(), "a log file");
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        assert_eq!(mode(&api_json), 0o600);
    }
    assert_eq!(serve.stop().and_then(|s| s.code()), Some(0));

    // On a terminal (a pty from `script`), the link carries the token.
    let second = Home::new();
    let mut tty = Command::new("script")
        .args(["-qefc", &format!("{BIN} serve --port 0"), "/dev/null"])
        .env("CLAWDOCK_HOME", second.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let printed = common::read_until_web_ui(tty.stdout.take().expect("stdout"));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(second.path().join("api.json")).expect("api.json"))
            .expect("json");
    let web_ui = printed.last().cloned().unwrap_or_default();
    assert_eq!(
        web_ui,
        format!(
            "Web UI: {}/#token={}",
            info["url"].as_str().expect("url"),
            info["token"].as_str().expect("token")
        ),
        "{printed:?}"
    );
    // Quit through the CLI: the shutdown routine runs and api.json goes.
    let quit = clawdock(second.path(), &["quit"]);
    assert!(
        quit.status.success(),
        "{}",
        String::from_utf8_lossy(&quit.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(30), || !second
            .path()
            .join("api.json")
            .exists()),
        "serve on the terminal quit"
    );
    drop(tty.stdin.take());
    let _reaped = tty.wait();
}

/// A "proxy" on loopback that counts the connections it gets and answers none of
/// them usefully.
struct CountingProxy {
    url: String,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingProxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _answered = stream.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self { url, seen }
    }

    fn connections(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Issue 23, item 3: with a proxy in the environment (as on many company laptops)
/// the core's health polls went to it (a new agent stayed `creating` and failed),
/// and so did the CLI's requests with the API token and chat with the gateway token.
#[test]
fn loopback_never_goes_through_a_proxy_from_the_environment() {
    common::ensure_images();
    let proxy = CountingProxy::start();
    let url = proxy.url.as_str();
    let env = [
        ("HTTP_PROXY", url),
        ("http_proxy", url),
        ("HTTPS_PROXY", url),
        ("https_proxy", url),
        ("ALL_PROXY", url),
        ("all_proxy", url),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
        ("CLAWDOCK_HEALTH_TIMEOUT", "20"),
        ("CLAWDOCK_PORT_BASE", &port_base(0)),
    ];
    let home = Home::new();
    let _serve = Serve::start_with(home.path(), &env);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("api.json")).expect("api.json"))
            .expect("json");
    let api = info["url"].as_str().expect("url").to_string();
    let token = info["token"].as_str().expect("token").to_string();
    // The test's own requests to the API, never through a proxy.
    let call = |method: &str, path: &str, body: Option<&str>| {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--noproxy", "*", "-X", method])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            curl.args(["--data", body]);
        }
        let out = curl.arg(format!("{api}{path}")).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };

    // The health polls: the agent gets healthy, the proxy sees none of them.
    let created: serde_json::Value = serde_json::from_str(&call(
        "POST",
        "/agents/create",
        Some(&format!(r#"{{"name":"proxied{}"}}"#, std::process::id())),
    ))
    .expect("json");
    let id = created["agent"]["id"].as_str().expect("id").to_string();
    let mut status = String::new();
    wait_for(Duration::from_secs(30), || {
        let agent: serde_json::Value =
            serde_json::from_str(&call("GET", &format!("/agents/{id}"), None)).unwrap_or_default();
        status = agent["agent"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        status != "creating"
    });
    assert_eq!(status, "running", "the agent became running");
    assert_eq!(proxy.connections(), 0, "the health polls went to the proxy");

    // The CLI, with the API token in every request.
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env("CLAWDOCK_HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .expect("run clawdock")
    };
    let list = cli(&["agents", "list", "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list[0]["status"], "running");
    assert_eq!(proxy.connections(), 0, "the CLI went to the proxy");

    // Chat through the API: the core calls the gateway with its token (the stand-in
    // answers chat with an error; what matters is where the request went).
    let chat = call(
        "POST",
        &format!("/agents/{id}/chat"),
        Some(r#"{"message":"hello"}"#),
    );
    assert!(chat.contains("gateway"), "the gateway answered: {chat}");
    assert_eq!(proxy.connections(), 0, "chat went to the proxy");
}

/// `curl` without a proxy and without following redirects: `CODE LOCATION`.
fn visit(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{redirect_url}", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Issue 23, item 2: "Open dashboard" gave the opener (`xdg-open`, then the browser)
/// `http://127.0.0.1:P/#token=<gateway token>`, where every local user reads it in
/// `/proc/*/cmdline`. Issue 30, item 1: its one-time address was no better there
/// (whoever fetched it first got the token). Now the opener gets only the path of
/// a private page, which holds the one-time address.
#[test]
fn open_dashboard_puts_nothing_usable_on_any_command_line() {
    common::ensure_images();
    let home = Home::new();
    let _serve = Serve::start_with(home.path(), &[("CLAWDOCK_PORT_BASE", &port_base(1))]);
    let name = format!("opened{}", std::process::id());
    let name = name.as_str();
    let created = clawdock(home.path(), &["agents", "create", name]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("api.json")).expect("api.json"))
            .expect("json");
    let api = info["url"].as_str().expect("url").to_string();
    let api_token = info["token"].as_str().expect("token").to_string();

    // A recording opener first on PATH: every argv it is given, one per line.
    let bin = tempfile::tempdir().expect("bin");
    let record = common::recording_openers(bin.path());
    let path = format!(
        "{}:{}",
        bin.path().join("openers").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let opened = Command::new(BIN)
        .args(["agents", "open", name])
        .env("CLAWDOCK_HOME", home.path())
        .env("PATH", &path)
        .env_remove("BROWSER")
        .stdin(Stdio::null())
        .output()
        .expect("open");
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&record)
            .is_ok_and(|t| t.lines().count() >= 2)),
        "the opener was run"
    );

    // The dashboard's own address, as the API gives it to an authenticated caller.
    let dashboard = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-H"])
        .arg(format!("Authorization: Bearer {api_token}"))
        .arg(format!(
            "{api}/agents/{}/dashboard",
            clawdock_id(home.path(), name)
        ))
        .output()
        .expect("curl");
    let dashboard: serde_json::Value = serde_json::from_slice(&dashboard.stdout).expect("json");
    let dashboard = dashboard["url"].as_str().expect("url").to_string();
    let gateway_token = dashboard
        .split_once("#token=")
        .map(|(_, t)| t.to_string())
        .expect("the dashboard's address holds its token");
    assert!(gateway_token.len() >= 32);
    let link = common::dashboard_page_link(&record, home.path(), &[&gateway_token, &api_token]);

    // The page's one-time address works once: a redirect to the dashboard, signed in.
    assert!(link.starts_with(&format!("{api}/dashboard/")), "{link}");
    assert_eq!(visit(&link), format!("303 {dashboard}"));
    assert!(visit(&link).starts_with("404"), "used once");

    // --print to a pipe: a one-time address too; the token only when asked.
    let printed = clawdock(home.path(), &["agents", "open", name, "--print"]);
    let printed = String::from_utf8_lossy(&printed.stdout).trim().to_string();
    assert!(
        printed.starts_with(&format!("{api}/dashboard/")) && !printed.contains(&gateway_token),
        "{printed}"
    );
    let shown = clawdock(
        home.path(),
        &["agents", "open", name, "--print", "--show-token"],
    );
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), dashboard);
    assert!(visit(&printed).starts_with("303"));

    // A token that leaked anyway is replaced (the container made again with a new
    // one; `limits.rs` and `openclaw.rs` prove the rest).
    let rotated = clawdock(home.path(), &["agents", "rotate-token", name]);
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        said.contains(&format!("New gateway token for {name}")),
        "{said}"
    );
    assert!(!said.contains(&gateway_token), "{said}");
    let shown = clawdock(
        home.path(),
        &["agents", "open", name, "--print", "--show-token"],
    );
    let shown = String::from_utf8_lossy(&shown.stdout).trim().to_string();
    assert!(
        shown.contains("#token=") && !shown.contains(&gateway_token),
        "a new token: {shown}"
    );
}

fn clawdock_id(home: &Path, name: &str) -> String {
    let out = clawdock(home, &["agents", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    list.as_array()
        .expect("array")
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["id"].as_str())
        .expect("id")
        .to_string()
}

/// Agent ports apart from other tests running at the same time.
fn port_base(slot: u16) -> String {
    (28000 + (std::process::id() % 50) as u16 * 20 + slot * 5).to_string()
}

/// Issue 30, item 7: `agents logs` printed what the agent wrote as it was, so its
/// terminal escapes reached the user's terminal: a title change, colours, a
/// one-byte CSI, an OSC 52 that writes the clipboard. To a terminal they are now
/// shown as text (`\x1b`); to a pipe or a file the bytes stay as the agent wrote
/// them.
#[test]
fn agents_logs_shows_an_agents_terminal_escapes_as_text_on_a_terminal() {
    common::ensure_images();
    let home = Home::new();
    let _serve = Serve::start_with(home.path(), &[("CLAWDOCK_PORT_BASE", &port_base(2))]);
    let name = format!("escapes{}", std::process::id());
    let created = clawdock(home.path(), &["agents", "create", &name]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // The agent writes to its container's output, as its gateway's log would.
    let wrote = Command::new("podman")
        .args(["exec", &format!("clawdock-{name}"), "sh", "-c"])
        .arg(r#"printf 'PWNED\033]0;title\007\033[31mred\033[0m\302\233\342\200\256end\033]52;c;Y2xpcA==\007\n' > /proc/1/fd/1"#)
        .status()
        .expect("podman exec");
    assert!(wrote.success());

    let piped = clawdock(home.path(), &["agents", "logs", &name, "--container"]);
    let piped = String::from_utf8_lossy(&piped.stdout).into_owned();
    assert!(
        piped.contains("PWNED\x1b]0;title\x07\x1b[31mred"),
        "to a pipe, as written: {piped:?}"
    );

    let tty = Command::new("script")
        .args([
            "-qefc",
            &format!("{BIN} agents logs {name} --container"),
            "/dev/null",
        ])
        .env("CLAWDOCK_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)");
    let shown = String::from_utf8_lossy(&tty.stdout).into_owned();
    let line = shown
        .lines()
        .find(|l| l.contains("PWNED"))
        .unwrap_or_else(|| panic!("the line is shown: {shown:?}"));
    assert!(
        !line.contains(['\x1b', '\x07', '\u{9b}', '\u{202e}']),
        "escapes reached the terminal: {line:?}"
    );
    assert!(
        line.contains(
            r"PWNED\x1b]0;title\x07\x1b[31mred\x1b[0m\u{9b}\u{202e}end\x1b]52;c;Y2xpcA==\x07"
        ),
        "shown as text: {line:?}"
    );
}
