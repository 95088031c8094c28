//! Issue 12's hardening of the core, each point against the real thing: the
//! runner's bounds on what podman prints (a shell stands in for podman) and on what
//! the engine's API streams (a real container's log), the store
//! refusing agent folders outside its agents folder (real Podman), and the API's
//! edges (a fresh token per start, `[::1]`, security headers, own origins only).

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawdock_core::agents::AgentError;
use clawdock_core::api::{ApiServer, UI_CSP};
use clawdock_core::engine::client::{EngineClient, Request};
use clawdock_core::engine::{Call, Podman, PodmanError, Stream, CUT_MARK, MAX_LINE};
use clawdock_core::Clawdock;
use reqwest::StatusCode;
use support::{Home, IMAGE};

/// A stand-in "podman" that is a shell, so a test can make it print anything.
fn shell() -> Podman {
    Podman::new(Some(PathBuf::from("/bin/sh")))
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
}

// --- Bounded reads -----------------------------------------------------------

#[tokio::test]
async fn endless_stdout_is_cut_at_64_mib_and_the_child_killed() {
    let pid_file = tempfile::NamedTempFile::new().expect("tmp");
    let script = format!("echo $$ > {}; exec yes", pid_file.path().display());
    let started = Instant::now();
    let err = shell()
        .run(Call::new(["-c", script.as_str()]).timeout(Duration::from_secs(120)))
        .await
        .expect_err("too much output");
    assert!(
        matches!(err, PodmanError::OutputTooLarge { limit, .. } if limit == 64 * 1024 * 1024),
        "{err:?}"
    );
    assert!(err.to_string().contains("more than 64 MiB"), "{err}");
    // Not the timeout: the cap ended it.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let pid = std::fs::read_to_string(pid_file.path()).expect("pid");
    assert!(!alive(&pid), "the child was killed");
}

#[tokio::test]
async fn seventy_mib_then_a_clean_exit_is_still_an_error() {
    // One 70 MiB line, then exit 0: not a success with the output cut short.
    let err = shell()
        .run(
            Call::new(["-c", "head -c 73400320 /dev/zero | tr '\\0' 'x'"])
                .timeout(Duration::from_secs(120)),
        )
        .await
        .expect_err("too much output");
    assert!(matches!(err, PodmanError::OutputTooLarge { .. }), "{err:?}");
    // Under the cap, all of it arrives.
    let out = shell()
        .run(
            Call::new(["-c", "head -c 20971520 /dev/zero | tr '\\0' 'x'"])
                .timeout(Duration::from_secs(120)),
        )
        .await
        .expect("20 MiB is fine");
    assert_eq!(out.stdout.len(), 20 * 1024 * 1024);
}

const LONG_LINE: &str =
    "printf 'first\\n'; head -c 102400 /dev/zero | tr '\\0' 'y'; printf '\\nlast\\n'";

#[tokio::test]
async fn a_100_kib_line_reaches_callbacks_cut_and_marked() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let out = shell()
        .run(
            Call::new(["-c", LONG_LINE]).on_line(Arc::new(move |which, line: &str| {
                sink.lock().expect("lock").push((which, line.to_string()))
            })),
        )
        .await
        .expect("runs");
    // The call's own stdout is whole: a long JSON line must still parse.
    assert_eq!(
        out.stdout.len(),
        "first\n".len() + 102400 + "\nlast\n".len()
    );
    let lines = seen.lock().expect("lock").clone();
    let texts: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        texts.len(),
        3,
        "{:?}",
        texts.iter().map(|t| t.len()).collect::<Vec<_>>()
    );
    assert_eq!(texts[0], "first");
    assert_eq!(texts[1].len(), MAX_LINE + CUT_MARK.len());
    assert!(texts[1].starts_with("yyyy") && texts[1].ends_with(" [... cut]"));
    assert_eq!(texts[2], "last");
    assert!(lines.iter().all(|(w, _)| *w == Stream::Stdout));
}

/// The lines of a container that ran `script`, read as the engine's API streams
/// its log (Docker's frames): the stream Clawdock follows for the log view.
async fn streamed_log_of(script: &str) -> Vec<(Stream, String)> {
    support::ensure_test_images();
    let dir = tempfile::tempdir().expect("tmp");
    let engine = support::ProxiedEngine::start(dir.path()).await;
    let name = format!("clawdock-security-stream-{}", uuid::Uuid::new_v4().simple());
    support::podman_out(&["run", "--name", &name, IMAGE, "sh", "-c", script]);
    let client = EngineClient::new(Duration::from_secs(30));
    client.set_endpoint(Some(engine.proxy.path().to_path_buf()));
    let mut stream = client
        .stream(
            Request::get(format!("/containers/{name}/logs?stdout=true&stderr=true")),
            true,
        )
        .await
        .expect("stream");
    let mut lines = Vec::new();
    while let Some(line) = stream.next_line().await {
        lines.push(line);
    }
    stream.finish().await;
    support::podman_out(&["rm", "--force", &name]);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kib_line_in_a_stream_is_cut_and_the_stream_goes_on() {
    let lines = streamed_log_of(LONG_LINE).await;
    let texts: Vec<&String> = lines.iter().map(|(_, l)| l).collect();
    assert_eq!(
        texts.len(),
        3,
        "{:?}",
        texts.iter().map(|t| t.len()).collect::<Vec<_>>()
    );
    assert_eq!(texts[0], "first");
    assert_eq!(texts[1].len(), 16 * 1024 + CUT_MARK.len());
    assert!(texts[1].ends_with(CUT_MARK));
    assert_eq!(texts[2], "last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_decoded_lossily_instead_of_ending_a_stream() {
    // Fault: `lines()` on the pipe failed at the first invalid byte and the stream
    // ended there, silently (an `events` stream would look like a lost engine).
    let script = "printf 'ok\\n'; printf 'bad \\377\\376 bytes\\n'; printf 'after\\n'; printf 'err \\377\\n' >&2; printf 'half \\342\\202'";
    let lines = streamed_log_of(script).await;
    assert_eq!(
        lines,
        [
            (Stream::Stdout, "ok".to_string()),
            (Stream::Stdout, "bad \u{FFFD}\u{FFFD} bytes".to_string()),
            (Stream::Stdout, "after".to_string()),
            (Stream::Stderr, "err \u{FFFD}".to_string()),
            (Stream::Stdout, "half \u{FFFD}".to_string()),
        ]
    );
    // And in a call's output.
    let out = shell()
        .run(Call::new(["-c", "printf 'a\\377b\\n'"]))
        .await
        .expect("runs");
    assert_eq!(out.stdout, "a\u{FFFD}b\n");
}

// --- The store is input too -----------------------------------------------------

/// A record as a hostile or broken `agents.json` could hold it.
fn record(name: &str, dir: &std::path::Path, deleting: bool) -> serde_json::Value {
    serde_json::json!({
        "id": uuid::Uuid::new_v4(),
        "name": name,
        "status": "stopped",
        "port": 18789,
        "dir": dir,
        "token": "0123456789abcdef0123456789abcdef",
        "createdAt": "2026-01-01T00:00:00Z",
        "wanted": "stopped",
        "deleting": deleting,
        "image": IMAGE,
    })
}

#[tokio::test]
async fn agent_folders_outside_the_agents_folder_are_refused_and_never_touched() {
    let home = Home::new();
    let mut settings = home.native(IMAGE);
    // The data folder one level down, so `<data>/agents/../../outside` is a folder
    // of this test (never /etc: before the fix this test deleted what it named).
    settings.home = home.path().join("data");
    let agents_dir = settings.agents_dir();
    let outside = home.path().join("outside");
    let elsewhere = home.path().join("elsewhere");
    for dir in [&outside, &elsewhere] {
        std::fs::create_dir_all(dir.join("config")).expect("mkdir");
        std::fs::write(dir.join("config/keep.txt"), "mine").expect("write");
    }
    let legit = agents_dir.join("0b7e3e2a-0000-4000-8000-000000000001");
    std::fs::create_dir_all(&legit).expect("mkdir");
    let records = vec![
        // Being deleted when the app quit: the next start finishes the delete.
        record("climber", &agents_dir.join("../../outside"), true),
        record("absolute", &elsewhere, false),
        record("relative", std::path::Path::new("agents/x"), false),
        // A legitimate half-deleted agent: its folder goes at the first listing,
        // which says the listing ran.
        record("legit", &legit, true),
        record(
            "kept",
            &agents_dir.join("0b7e3e2a-0000-4000-8000-000000000002"),
            false,
        ),
    ];
    let refused_ids: Vec<uuid::Uuid> = records[..3]
        .iter()
        .map(|r| r["id"].as_str().expect("id").parse().expect("uuid"))
        .collect();
    std::fs::create_dir_all(&settings.home).expect("data");
    std::fs::write(
        settings.agents_file(),
        serde_json::to_vec_pretty(&records).expect("json"),
    )
    .expect("agents.json");

    let core = Clawdock::start(settings.clone()).await.expect("core");
    let names: Vec<String> = core.agents().list().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["kept"], "refused records are not loaded");
    let warning = core
        .runtime_status()
        .store_warning
        .expect("a store warning");
    for name in ["climber", "absolute", "relative"] {
        assert!(warning.contains(name), "{name} in {warning}");
    }
    assert!(
        warning.contains(&agents_dir.display().to_string()),
        "{warning}"
    );

    // Kept as they were beside agents.json, and gone from it.
    let kept_in: Vec<PathBuf> = std::fs::read_dir(&settings.home)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("agents.json.refused-"))
        .collect();
    assert_eq!(kept_in.len(), 1, "{kept_in:?}");
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kept_in[0]).expect("read")).expect("json");
    assert_eq!(kept.as_array().expect("array").len(), 3);
    assert_eq!(kept[0]["dir"], records[0]["dir"]);
    let store = std::fs::read_to_string(settings.agents_file()).expect("agents.json");
    assert!(
        !store.contains("outside") && !store.contains("elsewhere"),
        "{store}"
    );

    // The first listing ran (it finished the legitimate delete)...
    assert!(
        support::eventually(Duration::from_secs(20), || !legit.exists()).await,
        "the legitimate half-deleted agent's folder goes"
    );
    // ...and no operation reaches a refused record.
    for id in &refused_ids {
        assert!(matches!(
            core.agents().delete(*id).await,
            Err(AgentError::NotFound)
        ));
        assert!(matches!(
            core.agents().start(*id).await,
            Err(AgentError::NotFound)
        ));
        assert!(matches!(
            core.agents().stop(*id).await,
            Err(AgentError::NotFound)
        ));
    }
    let all = core.agents().stop_all().await;
    assert!(all.iter().all(|(id, _)| !refused_ids.contains(id)));
    core.shutdown().await;
    for dir in [&outside, &elsewhere] {
        assert_eq!(
            std::fs::read_to_string(dir.join("config/keep.txt")).expect("still there"),
            "mine"
        );
    }
}

// --- The API's edges ---------------------------------------------------------------

#[tokio::test]
async fn every_start_has_a_fresh_token_and_the_old_token_file_goes() {
    let home = Home::new();
    let settings = home.native(IMAGE);
    std::fs::create_dir_all(&settings.home).expect("home");
    std::fs::write(settings.token_file(), "f".repeat(64)).expect("old token");
    let core = Clawdock::start(settings.clone()).await.expect("core");
    let first = ApiServer::start(core.clone(), 0).await.expect("api");
    assert!(
        !settings.token_file().exists(),
        "the stale secret is removed"
    );
    assert_ne!(first.token, "f".repeat(64));
    let first_token = first.token.clone();
    first.close().await;
    let second = ApiServer::start(core.clone(), 0).await.expect("api");
    assert_ne!(second.token, first_token, "a new token every start");
    assert_eq!(second.token.len(), 64);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(settings.api_file()).expect("api.json"))
            .expect("json");
    assert_eq!(info["token"], second.token.as_str());
    let http = reqwest::Client::new();
    let old = http
        .get(format!("{}/agents", second.url()))
        .bearer_auth(&first_token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old token is dead"
    );
    second.close().await;
    core.shutdown().await;
}

#[tokio::test]
async fn the_api_answers_on_ipv6_loopback_with_security_headers_everywhere() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let api = ApiServer::start(core.clone(), 0).await.expect("api");
    let port = api.addr.port();
    let v6 = api.addr_v6.expect("this host has ::1");
    assert_eq!(v6.port(), port, "one port for both");
    let http = reqwest::Client::new();

    let resp = http
        .get(format!("http://[::1]:{port}/agents"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("[::1]");
    assert_eq!(resp.status(), StatusCode::OK);

    let header = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let base = api.url();
    // The UI's files: the policy, and every file it names is one the policy allows.
    for path in ["/", "/index.html", "/ui/app.js", "/ui/style.css"] {
        let resp = http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&resp, "content-security-policy").as_deref(),
            Some(UI_CSP),
            "{path}"
        );
    }
    let page = http.get(format!("{base}/")).send().await.expect("get");
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    assert!(UI_CSP.contains("frame-ancestors 'none'") && UI_CSP.contains("default-src 'self'"));

    // Every answer: success, refusals, errors, refused preflights.
    let answers = [
        http.get(format!("{base}/agents")).bearer_auth(&api.token),
        http.get(format!("{base}/agents")),
        http.get(format!("{base}/agents"))
            .bearer_auth(&api.token)
            .header("Origin", "http://evil.example"),
        http.get(format!("{base}/nope")).bearer_auth(&api.token),
        http.request(reqwest::Method::OPTIONS, format!("{base}/agents"))
            .header("Origin", "tauri://localhost"),
        http.get(format!("http://[::1]:{port}/")),
    ];
    for req in answers {
        let resp = req.send().await.expect("send");
        let what = format!("{} {}", resp.status(), resp.url());
        assert_eq!(
            header(&resp, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(&resp, "referrer-policy").as_deref(),
            Some("no-referrer"),
            "{what}"
        );
    }

    // The window loads the UI from this address (issue 15), so the only origins let
    // in are the API's own; Tauri's (`tauri://localhost`, and `http(s)://tauri.localhost`
    // that any page could be served under) are foreign now, on every platform.
    let from = |origin: String| {
        http.get(format!("{base}/agents"))
            .bearer_auth(&api.token)
            .header("Origin", origin)
            .send()
    };
    for own in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
    ] {
        let resp = from(own.clone()).await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK, "{own}");
        assert!(header(&resp, "access-control-allow-origin").is_none());
    }
    for foreign in [
        "tauri://localhost",
        "http://tauri.localhost",
        "https://tauri.localhost",
        "http://127.0.0.1:1",
        "null",
    ] {
        assert_eq!(
            from(foreign.into()).await.expect("send").status(),
            StatusCode::FORBIDDEN,
            "{foreign}"
        );
    }
    api.close().await;
    core.shutdown().await;
}

#[tokio::test]
async fn another_program_on_ipv6_loopback_of_the_port_is_not_shared() {
    // Someone holds [::1]:P: a fixed port P is refused (the desktop then picks a
    // free one), never served on 127.0.0.1 alone beside a squatter.
    let squatter = std::net::TcpListener::bind("[::1]:0").expect("bind ::1");
    let port = squatter.local_addr().expect("addr").port();
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let Err(e) = ApiServer::start(core.clone(), port).await else {
        panic!("served on 127.0.0.1 beside a squatter on [::1]:{port}");
    };
    assert!(e.to_string().contains("[::1]"), "{e}");
    let api = ApiServer::start(core.clone(), 0)
        .await
        .expect("port 0 finds a free pair");
    assert_eq!(api.addr_v6.map(|a| a.port()), Some(api.addr.port()));
    api.close().await;
    core.shutdown().await;
}
