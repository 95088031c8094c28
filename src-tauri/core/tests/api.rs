//! The HTTP API in-process on port 0 against real Podman: the seed's routes and
//! shapes, the event stream, the guards (token, Origin, Host), and bad input.

mod support;

use std::time::Duration;

use clawdock_core::api::ApiServer;
use clawdock_core::Clawdock;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::api_client::Api;
use support::{containers, running_containers, Home, IMAGE};
use tokio::sync::mpsc;

/// Waits for an event matching `want`.
async fn expect_event(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    limit: Duration,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(v)) if want(&v) => return v,
            Ok(Some(_)) => {}
            _ => panic!("no matching event within {limit:?}"),
        }
    }
}

fn no_secret(v: &Value, token: &str) {
    let text = v.to_string();
    assert!(!text.contains("\"token\""), "a token field leaked: {text}");
    assert!(!text.contains(token), "a token value leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_the_seed_contract_and_events_follow() {
    let api = Api::start().await;
    let mut events = api.events().await;
    let first = events.recv().await.expect("snapshot");
    assert_eq!(first["type"], "snapshot");

    let (status, body) = api.call(Method::GET, "/agents/runtime-status", None).await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "available",
        "machineInitialized",
        "machineRunning",
        "needsSetup",
    ] {
        assert!(body[key].is_boolean(), "{key} in {body}");
    }
    assert_eq!(body["mode"], "native");
    assert!(body["podmanVersion"].is_string());

    let (status, body) = api
        .call(
            Method::POST,
            "/agents/create",
            Some(json!({"name": "api-one", "providerType": "openai", "apiKey": "sk-secret-key"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent = body["agent"].clone();
    let id = agent["id"].as_str().expect("id").to_string();
    assert_eq!(agent["name"], "api-one");
    assert_eq!(agent["status"], "creating");
    assert!(agent["port"].is_u64() && agent["createdAt"].is_string() && agent["dir"].is_string());
    assert!(!agent.to_string().contains("sk-secret-key"));

    let running = expect_event(&mut events, Duration::from_secs(40), |e| {
        e["type"] == "agent" && e["agent"]["id"] == id.as_str() && e["agent"]["status"] == "running"
    })
    .await;
    assert_eq!(running["change"]["kind"], "ready");

    let (status, list) = api.call(Method::GET, "/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["agents"].as_array().expect("list").len(), 1);
    let token = std::fs::read_to_string(api.core.agents().list()[0].dir.join("../../agents.json"))
        .expect("store");
    let stored: Value = serde_json::from_str(&token).expect("json");
    let gateway_token = stored[0]["token"].as_str().expect("token").to_string();
    no_secret(&list, &gateway_token);
    assert!(!list.to_string().contains("sk-secret-key"));

    // Logs: the replay, as SSE of JSON strings.
    let resp = api
        .req(Method::GET, &format!("/agents/{id}/logs?follow=false"))
        .send()
        .await
        .expect("logs");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("text");
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<String>(d).expect("JSON string"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("OpenClaw gateway is ready")),
        "{lines:?}"
    );

    let (status, body) = api
        .call(Method::POST, &format!("/agents/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "stopped");
    expect_event(&mut events, Duration::from_secs(5), |e| {
        e["type"] == "agent" && e["agent"]["status"] == "stopped"
    })
    .await;

    // Chat on a stopped agent: a clear 409.
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/agents/{id}/chat"),
            Some(json!({"message": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "The agent is not running.");

    let (status, body) = api
        .call(Method::POST, &format!("/agents/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "running");
    assert_eq!(body["agent"]["id"], id.as_str());

    // Killed from outside: an event, with the exit code, no polling.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("podman")
        .args(["kill", "clawdock-api-one"])
        .output()
        .expect("kill");
    assert!(killed.status.success());
    let died = expect_event(&mut events, Duration::from_secs(2), |e| {
        e["type"] == "agent" && e["change"]["kind"] == "died"
    })
    .await;
    assert_eq!(died["change"]["exitCode"], 137);
    assert_eq!(died["agent"]["status"], "error");
    no_secret(&died, &gateway_token);

    let (status, body) = api
        .call(Method::DELETE, &format!("/agents/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true}));
    expect_event(&mut events, Duration::from_secs(5), |e| {
        e["type"] == "agentRemoved" && e["id"] == id.as_str()
    })
    .await;
    assert!(containers(&api.label()).is_empty());
    let (status, _) = api
        .call(Method::DELETE, &format!("/agents/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_origin_and_host_are_enforced() {
    let api = Api::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/agents", api.base);
    assert_eq!(
        http.get(&url).send().await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = http
        .get(&url)
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.json::<Value>().await.expect("json")["error"].is_string());
    for path in ["/events", "/agents/runtime-status", "/shutdown"] {
        let r = http
            .request(
                if path == "/shutdown" {
                    Method::POST
                } else {
                    Method::GET
                },
                format!("{}{path}", api.base),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The UI's files need no token.
    let page = http
        .get(format!("{}/", api.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));

    let foreign = api
        .req(Method::GET, "/agents")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let rebinding = api
        .req(Method::GET, "/agents")
        .header(
            "Host",
            format!(
                "evil.example:{}",
                api.server.as_ref().expect("s").addr.port()
            ),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(rebinding.status(), StatusCode::FORBIDDEN);
    let page_rebinding = http
        .get(format!("{}/", api.base))
        .header("Host", "evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(page_rebinding.status(), StatusCode::FORBIDDEN);

    // The window loads the UI from the API's own address (issue 15): its old origin
    // (tauri://localhost) is a foreign one now, and no CORS answer is given to anyone.
    let old_window = api
        .req(Method::GET, "/agents")
        .header("Origin", "tauri://localhost")
        .send()
        .await
        .expect("send");
    assert_eq!(old_window.status(), StatusCode::FORBIDDEN);
    assert!(old_window
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let preflight = http
        .request(Method::OPTIONS, &url)
        .header("Origin", "tauri://localhost")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), StatusCode::FORBIDDEN);
    assert!(preflight
        .headers()
        .get("access-control-allow-headers")
        .is_none());
    let own = api
        .req(Method::GET, "/agents")
        .header("Origin", api.base.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(own.status(), StatusCode::OK);

    // The discovery file: 0600, the right URL and token.
    let path = api.core.settings().api_file();
    let info: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("api.json")).expect("json");
    assert_eq!(info["url"], api.base.as_str());
    assert_eq!(info["token"], api.token.as_str());
    assert_eq!(info["pid"], std::process::id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
    // The token lives in api.json only, made fresh at every start.
    assert!(!api.core.settings().token_file().exists());
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_loses_nothing() {
    let api = Api::start().await;
    let store = api.core.settings().agents_file();
    let raw = |body: Vec<u8>, ct: Option<&str>| {
        let mut r = api.req(Method::POST, "/agents/create").body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "no body",
            raw(vec![], Some("application/json")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "malformed",
            raw(b"{\"name\": ".to_vec(), Some("application/json")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            raw(b"[1,2]".to_vec(), Some("application/json")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing name",
            raw(b"{}".to_vec(), Some("application/json")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "name not a string",
            raw(b"{\"name\": 5}".to_vec(), Some("application/json")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong content type",
            raw(b"{\"name\":\"a\"}".to_vec(), Some("text/plain")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            raw(b"{\"name\":\"a\"}".to_vec(), None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "oversize",
            raw(
                format!("{{\"name\":\"{}\"}}", "a".repeat(2 * 1024 * 1024)).into_bytes(),
                Some("application/json"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, request, want) in cases {
        let resp = request.send().await.expect(what);
        assert_eq!(resp.status(), want, "{what}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
    }
    for name in [
        "../etc",
        "a/b",
        "a\\b",
        "x\u{0}y",
        "tab\there",
        "new\nline",
        &"z".repeat(10 * 1024),
        "",
        " ",
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/agents/create",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
        let msg = body["error"].as_str().expect("error");
        assert!(msg.len() < 400, "the message stays short: {}", msg.len());
    }
    let (status, body) = api
        .call(
            Method::POST,
            "/agents/create",
            Some(json!({ "name": "ok", "providerType": "custom", "baseUrl": "ftp://x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    for (method, path) in [
        (Method::POST, "/agents/not-a-uuid/start"),
        (
            Method::POST,
            "/agents/00000000-0000-0000-0000-000000000000/stop",
        ),
        (
            Method::DELETE,
            "/agents/00000000-0000-0000-0000-000000000000",
        ),
        (Method::GET, "/agents/%2e%2e%2fetc/logs"),
        (Method::GET, "/nope"),
    ] {
        let (status, body) = api.call(method.clone(), path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert!(body["error"].is_string());
    }
    let (status, body) = api.call(Method::PUT, "/agents", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, _) = api
        .call(
            Method::POST,
            "/runtime/setup",
            Some(json!({"cpus": 0, "memoryMiB": 1, "diskGiB": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Still serving, and the store is still valid (nothing was created).
    let (status, list) = api.call(Method::GET, "/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["agents"], json!([]));
    if store.exists() {
        let saved: Value =
            serde_json::from_slice(&std::fs::read(&store).expect("store")).expect("valid JSON");
        assert_eq!(saved, json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_is_409_and_shutdown_answers_after_containers_stopped() {
    let api = Api::start().await;
    let (status, body) = api
        .call(Method::POST, "/agents/create", Some(json!({"name": "Dup"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .call(Method::POST, "/agents/create", Some(json!({"name": "dup"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("already exists"));
    assert_eq!(body["code"], "name_taken", "{body}");
    let id = api.core.agents().list()[0].id;
    assert!(
        support::eventually(Duration::from_secs(30), || api
            .core
            .agents()
            .get(id)
            .is_some_and(|a| a.status == clawdock_core::store::AgentStatus::Running))
        .await
    );
    let (status, body) = api.call(Method::POST, "/shutdown", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    // When the answer arrives, the containers have stopped.
    assert!(running_containers(&api.label()).is_empty());
    tokio::time::timeout(Duration::from_secs(5), api.core.shutdown_begun())
        .await
        .expect("the process's owner learns the shutdown began");
    assert_eq!(body["report"]["leftover"], json!([]), "{body}");
    let (status, _) = api
        .call(
            Method::POST,
            "/agents/create",
            Some(json!({"name": "late"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_agents_creates_patch_edits_and_the_dashboard_carries_the_gateway_token() {
    let api = Api::start().await;
    let (status, body) = api
        .call(
            Method::POST,
            "/agents",
            Some(json!({"name": "patched", "providerType": "openai", "apiKey": "sk-first-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "POST /agents creates: {body}");
    let id = body["agent"]["id"].as_str().expect("id").to_string();
    let path = format!("/agents/{id}");

    // A create in progress is busy: 409, the config unchanged.
    let (status, body) = api
        .call(Method::PATCH, &path, Some(json!({"modelId": "gpt-5"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "busy", "{body}");
    let (status, body) = api
        .call(Method::GET, &format!("{path}/dashboard"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not running yet: {body}");
    let (status, body) = api
        .call(Method::POST, &format!("{path}/dashboard"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no one-time address yet: {body}"
    );
    assert!(
        support::eventually(Duration::from_secs(30), || api
            .core
            .agents()
            .get(id.parse().expect("uuid"))
            .is_some_and(|a| a.status == clawdock_core::store::AgentStatus::Running))
        .await
    );

    let (status, body) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"apiKey": "sk-second-2", "modelId": "gpt-5"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "running");
    assert_eq!(body["agent"]["providerType"], "openai");
    let text = body.to_string();
    assert!(!text.contains("sk-"), "no key in the answer: {text}");
    let dir = body["agent"]["dir"].as_str().expect("dir");
    let config = std::fs::read_to_string(format!("{dir}/config/openclaw.json")).expect("config");
    assert!(
        config.contains("sk-second-2") && !config.contains("sk-first-1"),
        "{config}"
    );

    for (bad, code) in [
        (json!({}), "invalid_input"),
        (json!({"model": "typo"}), "bad_request"),
        (json!({"providerType": "nope"}), "invalid_input"),
        (json!({"baseUrl": "ftp://x"}), "invalid_input"),
    ] {
        let (status, body) = api.call(Method::PATCH, &path, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], code, "{bad}: {body}");
    }
    let unknown = format!("/agents/{}", uuid::Uuid::new_v4());
    let (status, _) = api
        .call(Method::PATCH, &unknown, Some(json!({"modelId": "m"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/config/openclaw.json")).expect("config"),
        config,
        "refused edits changed nothing"
    );

    let (status, body) = api
        .call(Method::GET, &format!("{path}/dashboard"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["url"].as_str().expect("url");
    let port = body_port(&api, &id).await;
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/#token=")),
        "{url}"
    );

    // The one-time address (issue 23): no token in it, no bearer token needed,
    // one visit, a redirect to the dashboard above.
    let (status, body) = api
        .call(Method::POST, &format!("{path}/dashboard"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expiresInSecs"], 30);
    let once = body["url"].as_str().expect("url").to_string();
    assert!(
        once.starts_with(&format!("{}/dashboard/", api.base)),
        "{once}"
    );
    assert!(!once.contains(url.rsplit('=').next().expect("token")));
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let first = browser.get(&once).send().await.expect("visit");
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], url);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let again = browser.get(&once).send().await.expect("visit");
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "one visit only");
    let guessed = browser
        .get(format!("{}/dashboard/{}", api.base, "0".repeat(64)))
        .send()
        .await
        .expect("visit");
    assert_eq!(guessed.status(), StatusCode::NOT_FOUND);
    let (_, list) = api.call(Method::GET, "/agents", None).await;
    let gateway_token = url.rsplit('=').next().expect("token");
    assert!(
        !list.to_string().contains(gateway_token),
        "the list never carries the gateway token"
    );
    // `serve` has no login item: said as such, not an error of the server.
    let (status, body) = api.call(Method::GET, "/settings", None).await;
    assert_eq!(status, StatusCode::OK);
    // No proxy for the agents unless set: loopback would bypass one anyway.
    assert_eq!(
        body,
        json!({"launchAtLogin": null, "agentProxy": {
            "httpsProxy": null, "httpProxy": null, "noProxy": "localhost,127.0.0.1,::1",
            "caBundle": null, "source": "none"}})
    );
    let (status, body) = api
        .call(
            Method::PUT,
            "/settings",
            Some(json!({"launchAtLogin": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "no_login_item");
    let (status, _) = api
        .call(
            Method::PUT,
            "/settings",
            Some(json!({"launchAtLogn": true})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a misspelt setting is refused"
    );

    let (status, body) = api
        .call(Method::POST, &format!("{path}/update"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["updated"], false, "nothing newer: {body}");
    assert_eq!(body["agent"]["status"], "running");
    let (status, body) = api.call(Method::POST, "/agents/update-all", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["updated"], false, "{body}");
    let (status, body) = api
        .call(Method::POST, &format!("{path}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["agent"]["status"], "running",
        "nothing to cancel: {body}"
    );
    let (status, _) = api.call(Method::POST, "/shutdown", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn body_port(api: &Api, id: &str) -> u64 {
    let (_, body) = api.call(Method::GET, &format!("/agents/{id}"), None).await;
    body["agent"]["port"].as_u64().expect("port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_sampled_only_while_someone_watches() {
    let home = Home::new();
    let (podman, calls) = support::counting_podman(home.path());
    let engine = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native_through(IMAGE, &engine);
    settings.podman = podman;
    let core = Clawdock::start(settings).await.expect("core");
    let server = ApiServer::start(core.clone(), 0).await.expect("api");
    let agent = core
        .agents()
        .create_and_wait(clawdock_core::agents::CreateRequest {
            name: "measured".into(),
            memory_mib: Some(512),
            ..Default::default()
        })
        .await
        .expect("create");
    let stats_calls = || engine.calls("GET", "/containers/stats");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stats_calls(), 0, "no watcher, no stats asked");
    assert!(!core.agents().stats_sampling());
    let listings = || engine.calls("GET", "/containers/json");
    let listings_before = listings();

    let resp = reqwest::Client::new()
        .get(format!("{}/agents/stats", server.url()))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("stats");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut samples = Box::pin(clawdock_core::api::sse_data_lines(resp.bytes_stream()));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let data = tokio::time::timeout(Duration::from_secs(10), samples.next())
            .await
            .expect("a sample within 10 s")
            .expect("stream open");
        let sample: Value = serde_json::from_str(&data).expect("json");
        let ours = sample["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["id"] == agent.id.to_string())
            .cloned()
            .expect("our agent in the sample");
        seen.push(ours);
    }
    assert!(
        seen[0]["memoryBytes"].as_u64().expect("memory") > 0,
        "{seen:?}"
    );
    assert_eq!(seen[0]["memoryLimitBytes"], 512 * 1024 * 1024, "{seen:?}");
    assert!(
        seen[1]["cpuPercent"].as_f64().is_some(),
        "CPU from two samples: {seen:?}"
    );

    // Which containers run comes from the event stream: a sample is one stats
    // request, no listing (a listing every 2 s doubled an open window's cost).
    assert!(stats_calls() >= 2, "{:#?}", engine.proxy.log());
    assert_eq!(listings(), listings_before, "no listing while sampling");
    assert_eq!(
        support::podman_processes(&calls),
        Vec::<String>::new(),
        "no podman process for the stats (issue 24)"
    );
    drop(samples);
    assert!(
        support::eventually(Duration::from_secs(3), || !core.agents().stats_sampling()).await,
        "the sampler stops when the last watcher leaves"
    );
    let after = stats_calls();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(stats_calls(), after, "no stats asked once nobody watches");
    server.close().await;
    core.shutdown().await;
}

/// The window and the CLI take the server's rules from `/meta` (and the snapshot),
/// not from a copy: what `/meta` says is what the server then enforces.
/// A second launch of the tray app asks the first to show its window through
/// `POST /window`: the one holding the requests gets it; `serve` has nobody who can.
#[tokio::test]
async fn the_window_is_shown_by_whoever_holds_it_and_serve_says_it_has_none() {
    let api = Api::start().await;
    let (status, body) = api.call(Method::POST, "/window", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "no_window");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("serve")));

    let mut wanted = api.core.window_requests();
    let (status, _) = api.call(Method::POST, "/window", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(wanted.try_recv().is_ok(), "the holder was asked");
    let anonymous = api
        .http
        .post(format!("{}/window", api.base))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(wanted.try_recv().is_err(), "nothing without the token");
}

#[tokio::test]
async fn the_ui_s_rules_come_from_meta() {
    let api = Api::start().await;
    let anonymous = api
        .http
        .get(format!("{}/meta", api.base))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let (status, meta) = api.call(Method::GET, "/meta", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut events = api.events().await;
    let first = events.recv().await.expect("snapshot");
    assert_eq!(first["meta"], meta, "the snapshot carries the same rules");

    // The name rule: what it refuses, the server refuses, with the same sentence.
    let rule = meta["name"]["rule"].as_str().expect("rule");
    assert_eq!(meta["name"]["maxLength"], 63);
    assert!(meta["name"]["pattern"]
        .as_str()
        .expect("pattern")
        .starts_with('^'));
    let too_long = "a".repeat(64);
    for bad in ["-dash", too_long.as_str()] {
        let (status, body) = api
            .call(Method::POST, "/agents/create", Some(json!({ "name": bad })))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["error"].as_str().expect("error").contains(rule),
            "{body}"
        );
    }

    // Providers: "none" first, every built-in, and custom with its required base URL.
    let ids: Vec<&str> = meta["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.first(), Some(&""));
    for id in [
        "anthropic",
        "openai",
        "google",
        "openrouter",
        "moonshot",
        "groq",
        "mistral",
        "custom",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let custom = meta["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["id"] == "custom")
        .expect("custom");
    assert!(custom["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .any(|f| f["name"] == "baseUrl" && f["required"] == true));
    let (status, body) = api
        .call(
            Method::POST,
            "/agents/create",
            Some(json!({ "name": "nourl", "providerType": "custom" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Machine bounds and the memory tables.
    let machine = &meta["machine"];
    assert_eq!(machine["cpus"], json!({"min": 1, "max": 64}));
    assert_eq!(machine["memoryMiB"], json!({"min": 1024, "max": 262144}));
    assert_eq!(machine["diskGiB"], json!({"min": 10, "max": 2048}));
    let need = meta["memory"]["needMiB"].as_array().expect("need");
    assert_eq!(
        need.len() as u64,
        machine["plannedAgents"]["max"].as_u64().expect("max") + 1
    );
    assert_eq!(need[3], json!(512 + 3 * 1300));
    assert_eq!(meta["memory"]["agentMiB"], status_agent_memory(&api).await);
}

async fn status_agent_memory(api: &Api) -> Value {
    let (_, status) = api.call(Method::GET, "/agents/runtime-status", None).await;
    status["agentMemoryMib"].clone()
}
