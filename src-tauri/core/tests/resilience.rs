//! Resilience: the event stream's podman killed (state recovers within 2 s), 50
//! concurrent mixed operations (no invalid state, no orphaned container), and a
//! property-based fuzz of the API's JSON bodies and paths (no 5xx but Podman
//! faults, no crash).

mod support;

use std::time::{Duration, Instant};

use clawdock_core::agents::{AgentError, CreateRequest};
use clawdock_core::api::ApiServer;
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{containers, eventually, Home, IMAGE};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_event_stream_recovers_within_two_seconds() {
    let home = Home::new();
    let engine = support::ProxiedEngine::start(home.path()).await;
    let settings = home.native_through(IMAGE, &engine);
    let core = Clawdock::start(settings).await.expect("core");
    let name = format!("ev{}", std::process::id() % 10_000);
    let agent = core
        .agents()
        .create_and_wait(req(&name))
        .await
        .expect("create");
    let streams = || engine.calls("GET", "/events");
    assert!(
        eventually(Duration::from_secs(10), || streams() > 0).await,
        "stream runs"
    );
    let before = streams();
    // The stream's connection is cut (and every other open one).
    engine.proxy.cut_connections();
    // The container dies while the stream is down: the state must still follow.
    let killed = std::process::Command::new("podman")
        .args(["kill", &format!("clawdock-{name}")])
        .output()
        .expect("kill");
    assert!(killed.status.success());
    let began = Instant::now();
    assert!(
        eventually(Duration::from_secs(2), || core
            .agents()
            .get(agent.id)
            .is_some_and(|a| a.status == AgentStatus::Error))
        .await,
        "state recovered in {:?}: {:?}",
        began.elapsed(),
        core.agents().get(agent.id)
    );
    assert!(
        eventually(Duration::from_secs(10), || streams() > before).await,
        "the stream was opened again: {:#?}",
        engine.proxy.log()
    );
    core.agents().delete(agent.id).await.expect("delete");
}

/// A tiny deterministic generator for the operation mix: one seed, one mix.
struct Mix(u64);

impl Mix {
    fn pick(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_mixed_operations_leave_a_valid_state() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let agents = core.agents().clone();
    let tag = std::process::id() % 10_000;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            agents
                .create_and_wait(req(&format!("mix{tag}-{i}")))
                .await
                .expect("create")
                .id,
        );
    }
    // A new mix every run, printed so that a failing one can be run again:
    // CLAWDOCK_MIX_SEED=<seed> cargo test -p clawdock-core --test resilience
    let seed = std::env::var("CLAWDOCK_MIX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(42, |d| d.as_nanos() as u64)
        });
    println!("operation mix seed: {seed} (CLAWDOCK_MIX_SEED={seed} runs this mix again)");
    let mut mix = Mix(seed);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        // Most operations hit the first agent; the rest spread over the others.
        let id = ids[if mix.pick(2) == 0 {
            0
        } else {
            mix.pick(3) as usize
        }];
        let op = mix.pick(10);
        let agents = agents.clone();
        tasks.push(tokio::spawn(async move {
            let result = match op {
                0..=3 => agents.start(id).await.map(|_| ()),
                4..=7 => agents.stop(id).await.map(|_| ()),
                _ => agents.delete(id).await,
            };
            match result {
                Ok(()) | Err(AgentError::NotFound) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }));
    }
    for t in tasks {
        t.await.expect("no panic").expect("no unexpected error");
    }
    let label = home.label().expect("label");
    assert!(
        eventually(Duration::from_secs(10), || agents
            .list()
            .iter()
            .all(|a| a.activity.is_none()))
        .await
    );
    let now = containers(&label);
    for a in agents.list() {
        let mine: Vec<_> = now
            .iter()
            .filter(|(n, _)| n == &format!("clawdock-{}", a.name))
            .collect();
        assert!(mine.len() <= 1);
        let runs = mine.first().is_some_and(|(_, s)| s == "running");
        assert_eq!(runs, a.status == AgentStatus::Running, "{a:?} vs {mine:?}");
        assert!(
            matches!(a.status, AgentStatus::Running | AgentStatus::Stopped),
            "{a:?}"
        );
    }
    for (name, _) in &now {
        assert!(
            agents
                .list()
                .iter()
                .any(|a| &format!("clawdock-{}", a.name) == name),
            "orphan {name}"
        );
    }
    for a in agents.list() {
        agents.delete(a.id).await.expect("delete");
    }
    assert!(containers(&label).is_empty());
}

/// A core whose machine can never be made (vm mode, init always fails): creates are
/// recorded and fail in the background without containers, so the fuzz can create
/// freely. Podman's refusals are the only 5xx allowed.
async fn fuzz_target() -> (Home, Clawdock, ApiServer) {
    let home = Home::new();
    let (settings, _state) = home.fake_vm(json!({
        "faults": { "machine init": { "mode": "fail", "times": -1, "message": "Error: no network (fuzz)" } }
    }));
    let core = Clawdock::start(settings).await.expect("core");
    let api = ApiServer::start(core.clone(), 0).await.expect("api");
    (home, core, api)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,70}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("providerType".to_string()),
                    Just("apiKey".to_string()),
                    Just("baseUrl".to_string()),
                    Just("modelId".to_string()),
                    Just("message".to_string()),
                    Just("cpus".to_string()),
                    Just("memoryMiB".to_string()),
                    Just("diskGiB".to_string()),
                    ".{0,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn allowed(status: u16) -> bool {
    // 502/503: the gateway or Podman refused (here the fake machine always fails).
    status < 500 || status == 502 || status == 503
}

#[test]
fn fuzzed_bodies_and_paths_never_get_a_5xx_or_crash() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (home, core, api) = rt.block_on(fuzz_target());
    let base = api.url();
    let token = api.token.clone();
    let http = reqwest::Client::new();
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let routes = [
        "/agents/create",
        "/runtime/setup",
        "/agents/00000000-0000-0000-0000-000000000000/chat",
    ];
    proptest!(config, |(body in json_value(), route in 0..routes.len(), raw in prop::collection::vec(any::<u8>(), 0..200), use_raw in any::<bool>())| {
        let status = rt.block_on(async {
            let mut r = http.post(format!("{base}{}", routes[route])).bearer_auth(&token).header("content-type", "application/json");
            r = if use_raw { r.body(raw.clone()) } else { r.body(body.to_string()) };
            r.send().await.map(|resp| resp.status().as_u16())
        });
        let status = status.expect("the server answers");
        prop_assert!(allowed(status), "{} {} -> {}", routes[route], body, status);
    });
    let segments = "[a-zA-Z0-9%./_~-]{0,30}";
    proptest!(config, |(a in segments, b in segments, method in 0..3usize)| {
        let path = format!("/agents/{a}/{b}");
        let status = rt.block_on(async {
            let m = [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE][method].clone();
            http.request(m, format!("{base}{path}")).bearer_auth(&token).send().await.map(|r| r.status().as_u16())
        });
        match status {
            Ok(code) => prop_assert!(allowed(code), "{path} -> {code}"),
            // reqwest refuses some URLs before sending; nothing reached the server.
            Err(e) => prop_assert!(e.is_builder() || e.is_request(), "{path}: {e}"),
        }
    });
    // Still serving, and the store is valid JSON.
    let alive = rt.block_on(async {
        http.get(format!("{base}/agents"))
            .bearer_auth(&token)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(alive.expect("alive"), 200);
    let store = std::fs::read(core.settings().agents_file()).unwrap_or_else(|_| b"[]".to_vec());
    assert!(serde_json::from_slice::<Value>(&store)
        .expect("agents.json parses")
        .is_array());
    let label = std::fs::read_to_string(home.path().join("data/instance-id")).expect("label");
    assert!(containers(label.trim()).is_empty(), "no container was made");
    rt.block_on(api.close());
}
