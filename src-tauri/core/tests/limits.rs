//! An agent's memory and CPU limits through the HTTP API against real Podman
//! (issue 22 item 4, issue 23 item 6): `PATCH /agents/{id}` with `memoryMiB` or
//! `cpus` makes the container again with the same name, port, token, config and
//! workspace; a running agent runs again, a stopped one has them at its next start;
//! bad values change nothing.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::api_client::Api;

const MIB: u64 = 1024 * 1024;

/// What these tests ask of the API beyond a call.
trait Agents {
    async fn running_agent(&self, body: Value) -> String;
    async fn agent(&self, id: &str) -> Value;
    async fn gateway_token(&self, id: &str) -> String;
}

impl Agents for Api {
    /// Creates an agent and waits until it runs; its id.
    async fn running_agent(&self, body: Value) -> String {
        let (status, created) = self.call(Method::POST, "/agents/create", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["agent"]["id"].as_str().expect("id").to_string();
        assert!(
            support::eventually(Duration::from_secs(60), || {
                self.core
                    .agents()
                    .get(id.parse().expect("uuid"))
                    .is_some_and(|a| {
                        a.status == clawdock_core::store::AgentStatus::Running
                            && a.activity.is_none()
                    })
            })
            .await,
            "the agent runs"
        );
        id
    }

    async fn agent(&self, id: &str) -> Value {
        let (status, body) = self.call(Method::GET, &format!("/agents/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["agent"].clone()
    }

    /// The gateway token, from the dashboard address's fragment.
    async fn gateway_token(&self, id: &str) -> String {
        let (status, body) = self
            .call(Method::GET, &format!("/agents/{id}/dashboard"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = body["url"].as_str().expect("url");
        url.rsplit_once("#token=").expect("token").1.to_string()
    }
}

/// What `podman inspect` says of the agent's container now.
struct Inspected {
    id: String,
    running: bool,
    memory: u64,
    nano_cpus: u64,
    port: String,
    env: Vec<String>,
}

fn inspect(name: &str) -> Inspected {
    let out = support::podman_out(&["inspect", "--type", "container", name]);
    let rows: Value = serde_json::from_str(&out).expect("inspect json");
    let c = &rows[0];
    Inspected {
        id: c["Id"].as_str().expect("Id").to_string(),
        running: c["State"]["Running"].as_bool() == Some(true),
        memory: c["HostConfig"]["Memory"].as_u64().unwrap_or(0),
        nano_cpus: c["HostConfig"]["NanoCpus"].as_u64().unwrap_or(0),
        port: c["HostConfig"]["PortBindings"]["18789/tcp"][0]["HostPort"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        env: c["Config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn name(what: &str) -> String {
    format!("{what}{}", std::process::id() % 10_000)
}

async fn healthy(port: &str) -> bool {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    http.get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Issue 22 item 4 and issue 23 item 6. Failed on the old code: `memoryMiB` was an
/// unknown field of `PATCH /agents/{id}` (400 bad_request), and no `--cpus` existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_limits_remakes_a_running_agent_with_the_same_port_token_and_workspace() {
    let api = Api::start().await;
    let agent_name = name("limrun");
    let container = format!("clawdock-{agent_name}");
    let id = api
        .running_agent(json!({"name": agent_name, "memoryMiB": 1024, "cpus": 1}))
        .await;
    let path = format!("/agents/{id}");
    let before = inspect(&container);
    assert_eq!(before.memory, 1024 * MIB);
    assert_eq!(before.nano_cpus, 1_000_000_000, "the create's CPU limit");
    let view = api.agent(&id).await;
    assert_eq!(view["memoryMiB"], 1024, "{view}");
    assert_eq!(view["cpus"], 1.0, "{view}");
    let token = api.gateway_token(&id).await;
    let dir = view["dir"].as_str().expect("dir").to_string();
    let kept = format!("{dir}/workspace/kept.txt");
    std::fs::write(&kept, "mine").expect("workspace file");

    let (status, body) = api
        .call(Method::PATCH, &path, Some(json!({"memoryMiB": 768})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "running", "{body}");
    assert_eq!(body["agent"]["memoryMiB"], 768, "{body}");
    let after = inspect(&container);
    assert_ne!(after.id, before.id, "a new container");
    assert!(after.running);
    assert_eq!(after.memory, 768 * MIB, "the new memory limit");
    assert_eq!(after.nano_cpus, before.nano_cpus, "the CPU limit kept");
    assert_eq!(after.port, before.port, "the same port");
    assert!(
        after.env.contains(&format!(
            "{}={token}",
            clawdock_core::container_spec::TOKEN_VAR
        )),
        "the same gateway token"
    );
    assert_eq!(api.gateway_token(&id).await, token);
    assert!(healthy(&after.port).await, "the gateway answers");
    assert_eq!(
        std::fs::read_to_string(&kept).expect("kept"),
        "mine",
        "the workspace kept"
    );
    assert_eq!(
        support::containers(&api.home.label().expect("label")).len(),
        1,
        "the old container is gone"
    );

    let (status, body) = api
        .call(Method::PATCH, &path, Some(json!({"cpus": 0.5})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["cpus"], 0.5, "{body}");
    let halved = inspect(&container);
    assert_eq!(halved.nano_cpus, 500_000_000);
    assert_eq!(halved.memory, 768 * MIB, "the memory limit kept");
    assert!(halved.running && healthy(&halved.port).await);

    // Bad values: 400, and nothing changes.
    let max_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    for bad in [
        json!({"memoryMiB": 100}),
        json!({"memoryMiB": 70000}),
        json!({"cpus": 0}),
        json!({"cpus": -1}),
        json!({"cpus": max_cpus + 1}),
        json!({"cpus": "two"}),
        json!({"memoryMiB": 512, "cpus": 0}),
    ] {
        let (status, body) = api.call(Method::PATCH, &path, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let untouched = inspect(&container);
    assert_eq!(untouched.id, halved.id, "refused edits made no container");
    let view = api.agent(&id).await;
    assert_eq!(
        (view["memoryMiB"].clone(), view["cpus"].clone()),
        (json!(768), json!(0.5))
    );

    // `null` removes the CPU limit.
    let (status, body) = api
        .call(Method::PATCH, &path, Some(json!({"cpus": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["agent"]["cpus"].is_null(), "{body}");
    assert_eq!(inspect(&container).nano_cpus, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_gets_its_new_limits_at_its_next_start() {
    let api = Api::start().await;
    let agent_name = name("limstop");
    let container = format!("clawdock-{agent_name}");
    let id = api.running_agent(json!({"name": agent_name})).await;
    let path = format!("/agents/{id}");
    let token = api.gateway_token(&id).await;
    let (status, body) = api.call(Method::POST, &format!("{path}/stop"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let port = inspect(&container).port;

    let (status, body) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"memoryMiB": 640, "cpus": 1.5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "stopped", "{body}");
    assert!(!inspect(&container).running, "still stopped");

    let (status, body) = api.call(Method::POST, &format!("{path}/start"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = inspect(&container);
    assert!(started.running);
    assert_eq!(started.memory, 640 * MIB);
    assert_eq!(started.nano_cpus, 1_500_000_000);
    assert_eq!(started.port, port);
    assert!(started.env.contains(&format!(
        "{}={token}",
        clawdock_core::container_spec::TOKEN_VAR
    )));
    assert!(healthy(&started.port).await);
}

/// A provider change and a limit change in one PATCH: one restart, both applied,
/// and the view shows the model (never the key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_and_a_limit_change_together() {
    let api = Api::start().await;
    let agent_name = name("limboth");
    let container = format!("clawdock-{agent_name}");
    let id = api
        .running_agent(json!({
            "name": agent_name,
            "providerType": "custom",
            "baseUrl": "http://192.0.2.1:8080/v1",
            "modelId": "first",
            "apiKey": "sk-limits-1",
        }))
        .await;
    let view = api.agent(&id).await;
    assert_eq!(view["modelId"], "first", "{view}");
    assert_eq!(view["baseUrl"], "http://192.0.2.1:8080/v1", "{view}");
    let before = inspect(&container);

    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/agents/{id}"),
            Some(json!({"modelId": "second", "memoryMiB": 896})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "running", "{body}");
    assert_eq!(body["agent"]["modelId"], "second", "{body}");
    assert!(!body.to_string().contains("sk-limits"), "never the key");
    let after = inspect(&container);
    assert_ne!(after.id, before.id);
    assert_eq!(after.memory, 896 * MIB);
    let dir = body["agent"]["dir"].as_str().expect("dir");
    let config = std::fs::read_to_string(format!("{dir}/config/openclaw.json")).expect("config");
    assert!(
        config.contains("second") && config.contains("sk-limits-1"),
        "{config}"
    );
}

/// Issue 30, item 1: the gateway token never changed, so one that leaked (read
/// from an opener's command line, a pasted URL) opened the agent for good.
/// `POST /agents/{id}/rotate-token` makes the container again, through the same
/// swap as new limits, with a new token in its environment and on record: same
/// port, limits and workspace; the old token is nowhere in the container, and a
/// stopped agent has the new one at its next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_token_remakes_the_container_with_a_new_token_and_keeps_the_rest() {
    use clawdock_core::container_spec::TOKEN_VAR;
    let api = Api::start().await;
    let agent_name = name("rotate");
    let container = format!("clawdock-{agent_name}");
    let id = api
        .running_agent(json!({"name": agent_name, "memoryMiB": 640}))
        .await;
    let before = inspect(&container);
    let old = api.gateway_token(&id).await;
    let view = api.agent(&id).await;
    let kept = format!("{}/workspace/kept.txt", view["dir"].as_str().expect("dir"));
    std::fs::write(&kept, "mine").expect("workspace file");

    let path = format!("/agents/{id}/rotate-token");
    let (status, body) = api.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "running", "{body}");
    assert!(!body.to_string().contains(&old), "no token in the answer");
    let new = api.gateway_token(&id).await;
    assert_ne!(new, old, "a new token");
    assert_eq!(new.len(), 64, "256 random bits");
    let after = inspect(&container);
    assert_ne!(
        after.id, before.id,
        "a new container: its environment is fixed"
    );
    assert!(after.running && healthy(&after.port).await);
    assert_eq!(after.port, before.port, "the same port");
    assert_eq!(after.memory, 640 * MIB, "the same limits");
    assert!(
        after.env.contains(&format!("{TOKEN_VAR}={new}")),
        "the new token"
    );
    assert!(
        !after.env.iter().any(|e| e.contains(&old)),
        "the old token is not in the container"
    );
    assert_eq!(std::fs::read_to_string(&kept).expect("kept"), "mine");
    assert_eq!(
        support::containers(&api.home.label().expect("label")).len(),
        1,
        "the old container is gone"
    );
    let store = std::fs::read_to_string(api.core.settings().agents_file()).expect("store");
    assert!(store.contains(&new) && !store.contains(&old), "on record");

    // A stopped agent: the new token is recorded, and its next start has it.
    let (status, body) = api
        .call(Method::POST, &format!("/agents/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "stopped", "{body}");
    let (status, body) = api
        .call(Method::POST, &format!("/agents/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let third = api.gateway_token(&id).await;
    assert_ne!(third, new);
    assert!(inspect(&container)
        .env
        .contains(&format!("{TOKEN_VAR}={third}")));

    let (status, body) = api
        .call(
            Method::POST,
            "/agents/00000000-0000-0000-0000-000000000000/rotate-token",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{}{path}", api.base))
        .send()
        .await
        .expect("send");
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "the API token is needed"
    );
}
