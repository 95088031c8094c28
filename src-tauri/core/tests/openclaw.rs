//! The real OpenClaw gateway end to end (image built offline by
//! tests/images/build-openclaw-image.sh): health, config kept as written, chat through
//! a fake OpenAI-compatible provider on the host (directly, and through the agents'
//! proxy), restart after a kill, a chat in flight at shutdown, delete. About 3
//! minutes on 2 cores; run alone with
//! `cargo test -p clawdock-core --test openclaw`.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use clawdock_core::agents::definition::{openclaw_config, Provider, ProviderInput};
use clawdock_core::agents::{CreateRequest, EditRequest};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{containers, running_containers, Home};

fn settings(home: &Home) -> clawdock_core::settings::Settings {
    let mut s = home.native(support::gateway_image());
    s.health_timeout = Duration::from_secs(60);
    s.stop_timeout = Duration::from_secs(5);
    s
}

/// The `Authorization` headers a fake provider received, in order.
type SeenKeys = Arc<Mutex<Vec<String>>>;

/// A fake OpenAI-compatible provider on the host, listening on every interface so
/// the container reaches it through the bridge. `slow` streams one token a second
/// for a long time (a chat still in flight).
async fn fake_provider(slow: bool) -> (SocketAddr, SeenKeys) {
    async fn models() -> Json<Value> {
        Json(json!({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}))
    }
    let seen = SeenKeys::default();
    let record = seen.clone();
    let chat = move |headers: HeaderMap, Json(_body): Json<Value>| async move {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        record.lock().expect("seen keys").push(auth);
        let tokens: Vec<String> = if slow {
            (0..600).map(|i| format!("tick{i} ")).collect()
        } else {
            vec!["Hello".into(), " from".into(), " the fake provider".into()]
        };
        let delay = if slow {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(20)
        };
        let chunks = futures::stream::iter(tokens.into_iter().enumerate()).then(move |(i, t)| async move {
            tokio::time::sleep(delay).await;
            let mut delta = json!({"content": t});
            if i == 0 {
                delta["role"] = json!("assistant");
            }
            Ok::<_, Infallible>(SseEvent::default().data(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake-model",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
                .to_string(),
            ))
        });
        let end = futures::stream::iter([
            Ok(SseEvent::default().data(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake-model",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                .to_string(),
            )),
            Ok(SseEvent::default().data("[DONE]")),
        ]);
        Sse::new(chunks.chain(end))
    };
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake provider stopped: {e}");
        }
    });
    (addr, seen)
}

fn custom(name: &str, provider: SocketAddr) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        provider: ProviderInput {
            provider_type: Some("custom".into()),
            provider_name: Some("fakeai".into()),
            api_key: Some("sk-test-not-secret".into()),
            // Loopback on purpose: Clawdock rewrites it to host.containers.internal.
            base_url: Some(format!("http://127.0.0.1:{}/v1", provider.port())),
            model_id: Some("fake-model".into()),
        },
        ..CreateRequest::default()
    }
}

async fn chat_text(core: &Clawdock, id: uuid::Uuid, message: &str) -> String {
    let mut stream = core
        .agents()
        .chat_stream(id, message)
        .await
        .expect("chat starts");
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.expect("chunk"));
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_gateway_runs_keeps_its_config_and_chats_through_a_host_provider() {
    let home = Home::new();
    let (provider, seen_keys) = fake_provider(false).await;
    let core = Clawdock::start(settings(&home)).await.expect("core");
    let req = custom("real-one", provider);
    let expected = Provider::from_input(&req.provider).expect("provider");
    let agent = core
        .agents()
        .create_and_wait(req)
        .await
        .expect("real gateway runs");
    assert_eq!(agent.status, AgentStatus::Running);
    assert!(
        agent
            .notice
            .as_deref()
            .unwrap_or_default()
            .contains("0.0.0.0"),
        "{:?}",
        agent.notice
    );
    let health: Value = reqwest::get(format!("http://127.0.0.1:{}/healthz", agent.port))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(health["ok"], true);

    // The gateway kept the config as written: no migration, no rewrite.
    let written = std::fs::read_to_string(agent.dir.join("config/openclaw.json")).expect("config");
    let written: Value = serde_json::from_str(&written).expect("json");
    assert_eq!(written, openclaw_config(agent.port, &expected));
    assert!(
        !agent.dir.join("config/openclaw.json.bak").exists(),
        "the gateway migrated the config"
    );
    assert!(
        support::eventually(Duration::from_secs(20), || core
            .agents()
            .get(agent.id)
            .is_some_and(|a| a.ready))
        .await,
        "readyz answered"
    );

    let text = chat_text(&core, agent.id, "Say hello").await;
    assert!(text.contains("Hello"), "{text}");
    assert!(text.contains("the fake provider"), "{text}");
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "ends cleanly: {text}"
    );

    assert_eq!(
        seen_keys.lock().expect("seen keys").as_slice(),
        ["Bearer sk-test-not-secret"]
    );

    // The dashboard: the Control UI at the agent's port, and the token in the
    // fragment is the one the gateway takes (a wrong one is refused).
    let url = core.agents().dashboard_url(agent.id).expect("dashboard");
    let (page, token) = url.split_once("/#token=").expect("token fragment");
    assert_eq!(page, format!("http://127.0.0.1:{}", agent.port));
    let http = reqwest::Client::new();
    let ui = http
        .get(format!("{page}/"))
        .send()
        .await
        .expect("control ui");
    assert!(ui.status().is_success(), "{}", ui.status());
    assert!(ui
        .text()
        .await
        .expect("html")
        .to_ascii_lowercase()
        .contains("<html"));
    let models = |bearer: String| {
        http.post(format!("{page}/v1/chat/completions"))
            .bearer_auth(bearer)
            .json(&json!({"model": "openclaw/default", "stream": false,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let wrong = models("not-the-token".into()).await.expect("wrong token");
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    let right = models(token.to_string()).await.expect("right token");
    assert_ne!(right.status(), reqwest::StatusCode::UNAUTHORIZED);
    drop(right.bytes().await);

    // Edit the key in place: the provider gets the new one, never the old again.
    seen_keys.lock().expect("seen keys").clear();
    let edited = core
        .agents()
        .edit(
            agent.id,
            EditRequest {
                api_key: Some("sk-rotated-key".into()),
                ..EditRequest::default()
            },
        )
        .await
        .expect("edit");
    assert_eq!(edited.status, AgentStatus::Running);
    assert_eq!(edited.port, agent.port);
    let text = chat_text(&core, agent.id, "Say hello again").await;
    assert!(text.contains("Hello"), "{text}");
    let seen = seen_keys.lock().expect("seen keys").clone();
    assert!(!seen.is_empty(), "the provider was called");
    assert!(
        seen.iter().all(|k| k == "Bearer sk-rotated-key"),
        "only the new key after the edit: {seen:?}"
    );

    // Issue 30, item 1: a new gateway token, for when the old one leaked. The real
    // gateway refuses the old token from then on and takes the new one.
    let rotated = core
        .agents()
        .rotate_token(agent.id)
        .await
        .expect("a new token");
    assert_eq!(rotated.status, AgentStatus::Running);
    assert_eq!(rotated.port, agent.port);
    let url = core.agents().dashboard_url(agent.id).expect("dashboard");
    let (_, new_token) = url.split_once("/#token=").expect("token fragment");
    assert_ne!(new_token, token);
    let old = models(token.to_string()).await.expect("old token");
    assert_eq!(
        old.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "the old token is refused"
    );
    let new = models(new_token.to_string()).await.expect("new token");
    assert_ne!(new.status(), reqwest::StatusCode::UNAUTHORIZED);
    drop(new.bytes().await);
    let text = chat_text(&core, agent.id, "Say hello once more").await;
    assert!(
        text.contains("Hello"),
        "chat goes on with the new token: {text}"
    );

    // Delete: container, volumes and folder gone.
    core.agents().delete(agent.id).await.expect("delete");
    assert!(containers(&home.label().expect("label")).is_empty());
    assert!(!agent.dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_gateway_starts_again_within_the_health_budget() {
    let home = Home::new();
    let core = Clawdock::start(settings(&home)).await.expect("core");
    let agent = core
        .agents()
        .create_and_wait(CreateRequest {
            name: "phoenix".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let killed = std::process::Command::new("podman")
        .args(["kill", "clawdock-phoenix"])
        .output()
        .expect("kill");
    assert!(killed.status.success());
    assert!(
        support::eventually(Duration::from_secs(5), || core
            .agents()
            .get(agent.id)
            .is_some_and(|a| a.status == AgentStatus::Error))
        .await
    );
    let began = Instant::now();
    let again = core.agents().start(agent.id).await.expect("starts again");
    assert_eq!(again.status, AgentStatus::Running);
    // Without a fixed hostname the gateway's owner lease would block this for 300 s.
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "took {:?}",
        began.elapsed()
    );
    core.shutdown().await;
    assert!(running_containers(&home.label().expect("label")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_in_flight_does_not_hold_up_shutdown_and_the_agent_starts_next_time() {
    let home = Home::new();
    let (provider, _) = fake_provider(true).await;
    let core = Clawdock::start(settings(&home)).await.expect("core");
    let agent = core
        .agents()
        .create_and_wait(custom("chatty", provider))
        .await
        .expect("create");
    let mut stream = core
        .agents()
        .chat_stream(agent.id, "Talk for a long time")
        .await
        .expect("chat");
    // Wait for the first streamed bytes so the chat is really in flight.
    let first = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("first chunk");
    assert!(first.is_some());
    let reader = tokio::spawn(async move { while stream.next().await.is_some() {} });
    let began = Instant::now();
    let report = core.shutdown().await;
    let took = began.elapsed();
    let bound = core.settings().stop_timeout + Duration::from_secs(10);
    assert!(took < bound, "shutdown took {took:?}, bound {bound:?}");
    assert_eq!(report.stopped, vec![agent.id]);
    assert!(running_containers(&home.label().expect("label")).is_empty());
    reader.abort();
    drop(core);

    // The next launch starts it again (it ran at quit), and it comes up.
    let core = Clawdock::start(settings(&home)).await.expect("core again");
    assert!(
        support::eventually(Duration::from_secs(90), || core
            .agents()
            .get(agent.id)
            .is_some_and(|a| a.status == AgentStatus::Running))
        .await,
        "{:?}",
        core.agents().get(agent.id)
    );
    core.agents().delete(agent.id).await.expect("delete");
    assert!(containers(&home.label().expect("label")).is_empty());
}

/// What the test proxy saw: each request's first line and whether it carried the
/// expected `Proxy-Authorization`.
type ProxySeen = Arc<Mutex<Vec<(String, bool)>>>;

/// A small HTTP proxy on the host's loopback only, where no container reaches it
/// (Clawdock's relay does, from the host): `CONNECT host:port` tunnels and
/// absolute-form requests are counted, then forwarded to the same port on the
/// host's loopback (the container names the host `host.containers.internal`, which
/// the host itself cannot resolve).
async fn counting_proxy(expected_auth: String) -> (SocketAddr, ProxySeen) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    let seen = ProxySeen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = record.clone();
            let expected_auth = expected_auth.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let first = text.lines().next().unwrap_or_default().to_string();
                let authorized = text.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("proxy-authorization:")
                        && l.contains(&expected_auth)
                });
                record
                    .lock()
                    .expect("proxy seen")
                    .push((first.clone(), authorized));
                let mut parts = first.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let authority = if method == "CONNECT" {
                    target.to_string()
                } else {
                    let rest = target.split_once("://").map_or(target, |(_, r)| r);
                    rest.split('/').next().unwrap_or_default().to_string()
                };
                let port = authority.rsplit(':').next().unwrap_or("80").to_string();
                let Ok(mut upstream) =
                    tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await
                else {
                    let _closed = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                if method == "CONNECT" {
                    if client
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                } else {
                    // Origin form for the provider; the rest of the head as is.
                    let path = target
                        .split_once("://")
                        .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
                        .unwrap_or_else(|| "/".into());
                    let rewritten = text.replacen(target, &path, 1);
                    if upstream.write_all(rewritten.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _done = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

/// Item 4 of issue 23: behind a company proxy the gateway could not reach its
/// provider. The proxy (with credentials) set for agents carries the gateway's
/// provider call; its credentials are on no podman argument line. Issue 30, item
/// 3: nor in the container: the gateway goes through Clawdock's relay, which adds
/// them on the host (the proxy listens on the host's loopback only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reaches_its_provider_through_the_agents_proxy() {
    let home = Home::new();
    let (provider, seen_keys) = fake_provider(false).await;
    let (user, pass) = ("proxyuser", "proxy-secret-pass");
    let expected_auth = base64(format!("{user}:{pass}").as_bytes());
    let (proxy, proxy_seen) = counting_proxy(expected_auth).await;
    let mut s = settings(&home);
    let argv_log = home.path().join("argv.log");
    s.podman = support::recording_podman(home.path(), &argv_log);
    // On the host's loopback, as a local authenticating proxy would be: the relay
    // reaches it from the host.
    let url = format!("http://{user}:{pass}@127.0.0.1:{}", proxy.port());
    s.agent_proxy = clawdock_core::agent_proxy::AgentProxy {
        https_proxy: Some(url.clone()),
        http_proxy: Some(url),
        source: clawdock_core::agent_proxy::ProxySource::Clawdock,
        ..Default::default()
    };
    let core = Clawdock::start(s).await.expect("core");
    let agent = core
        .agents()
        .create_and_wait(custom("proxied", provider))
        .await
        .expect("gateway runs behind the proxy");
    assert_eq!(agent.status, AgentStatus::Running);
    let text = chat_text(&core, agent.id, "Say hello").await;
    assert!(text.contains("the fake provider"), "{text}");
    assert_eq!(seen_keys.lock().expect("seen").len(), 1);
    let seen = proxy_seen.lock().expect("proxy seen").clone();
    let to_provider: Vec<_> = seen
        .iter()
        .filter(|(line, _)| line.contains(&format!(":{}", provider.port())))
        .collect();
    assert!(
        !to_provider.is_empty(),
        "the provider call went through the proxy: {seen:?}"
    );
    assert!(
        to_provider.iter().all(|(_, authorized)| *authorized),
        "with the proxy's credentials: {seen:?}"
    );
    let argv = std::fs::read_to_string(&argv_log).expect("argv log");
    assert!(
        !argv.contains("create"),
        "the create is a request to the engine's socket, no podman process: {argv}"
    );
    assert!(
        !argv.contains(pass),
        "the proxy's password was on a command line"
    );
    let inspected = support::podman_out(&["inspect", "--type", "container", "clawdock-proxied"]);
    assert!(
        !inspected.contains(pass) && !inspected.contains(user),
        "the proxy's credentials are in the container"
    );
    assert!(
        inspected.contains(&format!("HTTPS_PROXY=http://{}:", agent.id)),
        "the gateway's proxy is the relay, with the agent's own credential"
    );
    core.agents().delete(agent.id).await.expect("delete");
}

/// Standard base64 with padding (the `Basic` proxy credentials).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
