//! Crash suite: `kill -9` of `clawdock serve` during create, stop and delete, at 20
//! pseudo-random points each (`CLAWDOCK_CRASH_POINTS` changes the count). After
//! each restart: `agents.json` parses, every agent's state matches Podman once
//! settled, nothing is duplicated, no orphaned container; at the end a shutdown
//! leaves no labelled container running. About 3 minutes.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::api::{running_and_idle, Api};
use common::{Home, Serve};

/// A small deterministic generator: the points differ per run of the loop, not per
/// run of the suite, so a failure can be replayed.
struct Points(u64);

impl Points {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

/// A data folder and the `serve` on it, started again after each kill.
struct Instance {
    /// Before `home`: dropped first (stopped, then its folder's containers go).
    serve: Option<Serve>,
    home: Home,
    port_base: u16,
}

impl Instance {
    fn new() -> Self {
        Self {
            serve: None,
            home: Home::new(),
            port_base: 28000 + (std::process::id() % 100) as u16 * 20,
        }
    }

    fn start(&mut self) {
        self.serve = Some(
            Serve::launch(self.home.path())
                .env("CLAWDOCK_STOP_TIMEOUT", "2")
                .env("CLAWDOCK_RESTORE_AGENTS", "0")
                .env("CLAWDOCK_PORT_BASE", self.port_base.to_string())
                .quiet()
                .start(),
        );
    }

    fn kill9(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            serve.kill9();
        }
    }

    fn api(&self) -> &Api {
        self.serve.as_ref().expect("running").api()
    }

    fn label(&self) -> String {
        common::instance_label(self.home.path()).expect("label")
    }

    /// `(agent id label, running)` of every container of this instance.
    fn containers(&self) -> Vec<(String, bool)> {
        common::instance_containers::rows(&self.label())
            .iter()
            .map(|r| {
                (
                    r["Labels"]["io.clawdock.agent"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    r["State"] == "running",
                )
            })
            .collect()
    }

    /// Checks the invariants, waiting for the state to settle (orphaned podman
    /// children of the killed process may still finish their work).
    async fn check(&self, context: &str) {
        let store =
            std::fs::read(self.home.path().join("agents.json")).unwrap_or_else(|_| b"[]".to_vec());
        let parsed: Value = serde_json::from_slice(&store)
            .unwrap_or_else(|e| panic!("{context}: agents.json does not parse: {e}"));
        assert!(parsed.is_array(), "{context}");
        let agreed = common::until_ok(Duration::from_secs(25), async || {
            match verdict(&self.api().agents().await, &self.containers()) {
                why if why.is_empty() => Ok(()),
                why => Err(why),
            }
        })
        .await;
        if let Err(why) = agreed {
            panic!("{context}: {why}");
        }
    }
}

/// Empty when the agents and containers agree; otherwise what is wrong.
fn verdict(agents: &[Value], containers: &[(String, bool)]) -> String {
    let mut names: Vec<String> = agents
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    names.sort();
    let before = names.len();
    names.dedup();
    if names.len() != before {
        return format!("duplicate agents: {agents:?}");
    }
    for a in agents {
        if !a["activity"].is_null() {
            return format!("still busy: {a}");
        }
        let id = a["id"].as_str().unwrap_or_default();
        let mine: Vec<&(String, bool)> = containers.iter().filter(|(c, _)| c == id).collect();
        if mine.len() > 1 {
            return format!("two containers for {id}");
        }
        let runs = mine.first().is_some_and(|(_, r)| *r);
        let says_running = a["status"] == "running";
        if runs != says_running {
            return format!(
                "agent says {} but its container runs={runs}: {a}",
                a["status"]
            );
        }
        if a["status"] == "creating" {
            return format!("left creating: {a}");
        }
    }
    for (id, _) in containers {
        if !agents.iter().any(|a| a["id"] == id.as_str()) {
            return format!("orphaned container of {id}");
        }
    }
    String::new()
}

/// Starts the agent if the operation before (`after`) left it stopped, then waits
/// until it runs.
async fn run_again(inst: &Instance, id: &str, after: &str) {
    if inst
        .api()
        .agent(id)
        .await
        .is_some_and(|a| a["status"] != "running")
    {
        let (code, body) = inst
            .api()
            .call(reqwest::Method::POST, &format!("/agents/{id}/start"), None)
            .await;
        assert_eq!(code, 200, "start after {after}: {body}");
    }
    wait_running(inst, id).await;
}

/// What Podman says of an agent's containers (state, health, published ports):
/// for the message of a wait that failed.
fn podman_view(id: &str) -> String {
    let out = std::process::Command::new("podman")
        .args([
            "ps",
            "--all",
            "--filter",
            &format!("label=io.clawdock.agent={id}"),
            "--format",
            "{{.ID}} {{.Names}} {{.Status}} {{.Ports}}",
        ])
        .output();
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("podman ps: {e}"),
    }
}

async fn wait_running(inst: &Instance, id: &str) {
    // Past the health budget (60 s by default): a create resumed after the kill
    // may wait it out once, and that must end in running, not hang.
    let ran = inst
        .api()
        .wait_agent(id, Duration::from_secs(90), running_and_idle)
        .await;
    if let Err(last) = ran {
        panic!(
            "{id} never ran: {last:?}\nits containers: {}",
            podman_view(id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_create_stop_and_delete_loses_nothing() {
    common::ensure_images();
    let points: u32 = std::env::var("CLAWDOCK_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = Points(0x9E37_79B9_7F4A_7C15);
    let mut inst = Instance::new();
    inst.start();
    let tag = std::process::id() % 10_000;
    use reqwest::Method;

    for i in 0..points {
        // Create, killed part-way.
        let name = format!("k{tag}c{i}");
        inst.api().fire(
            Method::POST,
            "/agents/create",
            Some(json!({ "name": name })),
        );
        // The kill point: how far the create got is the subject, not a wait.
        tokio::time::sleep(Duration::from_millis(rng.next_ms(1500))).await;
        inst.kill9();
        inst.start();
        inst.check(&format!("create #{i}")).await;
        // Keep the set small: delete what the create left (any state).
        for a in inst.api().agents().await {
            let (code, body) = inst
                .api()
                .call(
                    Method::DELETE,
                    &format!("/agents/{}", a["id"].as_str().unwrap_or_default()),
                    None,
                )
                .await;
            assert_eq!(code, 200, "delete after create #{i}: {body}");
        }
    }

    let (code, body) = inst
        .api()
        .call(
            Method::POST,
            "/agents/create",
            Some(json!({ "name": format!("k{tag}stop") })),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let id = body["agent"]["id"].as_str().expect("id").to_string();
    for i in 0..points {
        // Stop, killed part-way; then start it again for the next round.
        wait_running(&inst, &id).await;
        inst.api()
            .fire(Method::POST, &format!("/agents/{id}/stop"), None);
        // The kill point (as above).
        tokio::time::sleep(Duration::from_millis(rng.next_ms(1200))).await;
        inst.kill9();
        inst.start();
        inst.check(&format!("stop #{i}")).await;
        let (code, body) = inst
            .api()
            .call(Method::POST, &format!("/agents/{id}/start"), None)
            .await;
        assert_eq!(code, 200, "start after stop #{i}: {body}");
    }

    for i in 0..points {
        // Delete, killed part-way: at restart the delete is finished or undone.
        let name = format!("k{tag}d{i}");
        let (code, body) = inst
            .api()
            .call(
                Method::POST,
                "/agents/create",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(code, 201, "{body}");
        let did = body["agent"]["id"].as_str().expect("id").to_string();
        wait_running(&inst, &did).await;
        inst.api()
            .fire(Method::DELETE, &format!("/agents/{did}"), None);
        // The kill point (as above).
        tokio::time::sleep(Duration::from_millis(rng.next_ms(1200))).await;
        inst.kill9();
        inst.start();
        inst.check(&format!("delete #{i}")).await;
        if inst
            .api()
            .agents()
            .await
            .iter()
            .any(|a| a["id"] == did.as_str())
        {
            let (code, body) = inst
                .api()
                .call(Method::DELETE, &format!("/agents/{did}"), None)
                .await;
            assert_eq!(code, 200, "{body}");
        }
    }

    let (code, _) = inst.api().call(Method::POST, "/shutdown", None).await;
    assert_eq!(code, 200);
    assert!(
        inst.containers().iter().all(|(_, running)| !running),
        "a labelled container still runs"
    );
}

/// Fault: a request whose client hung up was dropped half-way by the server: an
/// agent left `creating`/`stopping`/`deleting` for good, a container running for a
/// `stopped` agent, a delete that left its record or container behind.
///
/// Create, stop and delete, each with a client that gives up after 100-1500 ms (a
/// floor of 100 ms so the request has reached the server), at 6 points
/// (`CLAWDOCK_CRASH_POINTS` lowers it). After each: the state settles and matches
/// Podman; a delete completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_at_a_random_point_loses_nothing() {
    common::ensure_images();
    let points: u32 = std::env::var("CLAWDOCK_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        .min(6);
    let mut rng = Points(0xD1B5_4A32_D192_ED03);
    let mut inst = Instance::new();
    // The other test of this file runs at the same time: other ports.
    inst.port_base += 10;
    inst.start();
    let tag = std::process::id() % 10_000;
    use reqwest::Method;

    for i in 0..points {
        let name = format!("h{tag}n{i}");
        let ms = 100 + rng.next_ms(1400);
        inst.api()
            .hang_up_after(
                Method::POST,
                "/agents/create",
                Some(json!({ "name": name })),
                Duration::from_millis(ms),
            )
            .await;
        inst.check(&format!("create #{i} (client gave up after {ms} ms)"))
            .await;
        // A client that gave up before the answer may have cancelled the create
        // before anything was made (the check above found no orphan): make it now.
        let id = match inst
            .api()
            .agents()
            .await
            .into_iter()
            .find(|a| a["name"] == name.as_str())
        {
            Some(a) => a["id"].as_str().expect("id").to_string(),
            None => {
                let (code, body) = inst
                    .api()
                    .call(
                        Method::POST,
                        "/agents/create",
                        Some(json!({ "name": name })),
                    )
                    .await;
                assert_eq!(code, 201, "create again after #{i}: {body}");
                body["agent"]["id"].as_str().expect("id").to_string()
            }
        };
        run_again(&inst, &id, &format!("create #{i}")).await;

        let ms = 100 + rng.next_ms(1400);
        inst.api()
            .hang_up_after(
                Method::POST,
                &format!("/agents/{id}/stop"),
                None,
                Duration::from_millis(ms),
            )
            .await;
        inst.check(&format!("stop #{i} (client gave up after {ms} ms)"))
            .await;
        run_again(&inst, &id, &format!("stop #{i}")).await;

        let ms = 100 + rng.next_ms(1400);
        inst.api()
            .hang_up_after(
                Method::DELETE,
                &format!("/agents/{id}"),
                None,
                Duration::from_millis(ms),
            )
            .await;
        let deleted = common::until_ok(Duration::from_secs(20), async || {
            let listed = inst.api().agent(&id).await;
            let has_container = inst.containers().iter().any(|(c, _)| c == &id);
            if listed.is_none() && !has_container {
                Ok(())
            } else {
                Err((listed, has_container))
            }
        })
        .await;
        if let Err((listed, has_container)) = deleted {
            panic!(
                "delete #{i} (client gave up after {ms} ms) did not complete: \
                 agent {listed:?}, container left: {has_container}"
            );
        }
        inst.check(&format!("delete #{i}")).await;
    }

    let (code, _) = inst.api().call(Method::POST, "/shutdown", None).await;
    assert_eq!(code, 200);
    assert!(
        inst.containers().iter().all(|(_, running)| !running),
        "a labelled container still runs"
    );
}
