//! Issue 29 with the real `clawdock serve`: what an interruption leaves is repaired
//! at the next launch. `kill -9` at each step of an update (the engine's answer
//! held at the socket by the test's proxy until the kill), a crash loop and a death
//! while Clawdock was closed told across launches, and a container found running at
//! launch shown running only once its gateway answers. After each: one container
//! per agent, the image the record pins, and the state the engine shows.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use common::api::running_and_idle;
use common::engine_proxy::{Fault, ProxiedEngine, Rule};
use common::{images, Home, Serve, IMAGE};

fn image_id(image: &str) -> String {
    images::image_id(image).unwrap_or_else(|| panic!("{image}: no such image"))
}

/// The stand-in with one Dockerfile `change`, made once.
fn derived(name: &str, change: &str) -> String {
    images::derive_image(IMAGE, name, change);
    name.to_string()
}

fn newer_image() -> String {
    derived(
        "localhost/clawdock-test-gateway-newer:latest",
        "LABEL io.clawdock.test.newer=1",
    )
}

fn never_ready_image() -> String {
    derived(
        "localhost/clawdock-test-gateway-never-ready:latest",
        "ENV FAKE_GATEWAY_DELAY=600",
    )
}

/// `(id, image id, state, name)` of every container of the agent.
fn containers_of(agent: &str) -> Vec<(String, String, String, String)> {
    let listed = images::podman_out(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.clawdock.agent={agent}"),
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = serde_json::from_str(&listed).expect("podman ps json");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    rows.iter()
        .map(|r| {
            (
                text(&r["Id"]),
                text(&r["ImageID"]),
                text(&r["State"]),
                text(&r["Names"][0]),
            )
        })
        .collect()
}

/// A first agent port of the test's own (the tests of this file run side by side).
fn port_base(slot: u16) -> String {
    (26_000 + (std::process::id() % 40) as u16 * 20 + slot * 2).to_string()
}

fn serve(
    home: &Path,
    engine: &ProxiedEngine,
    image: &str,
    slot: u16,
    extra: &[(&str, &str)],
) -> Serve {
    let socket = engine.proxy.path().display().to_string();
    let ports = port_base(slot);
    let mut env = vec![
        ("CLAWDOCK_ENGINE_SOCKET", socket.as_str()),
        ("CLAWDOCK_AGENT_IMAGE", image),
        ("CLAWDOCK_PORT_BASE", ports.as_str()),
    ];
    env.extend_from_slice(extra);
    Serve::start_with(home, &env)
}

/// The step of an update at which `serve` is killed, and what repairs it.
#[derive(Clone, Copy, Debug)]
#[repr(u16)]
enum Step {
    /// The journal is written; the new container's create is held.
    BeforeCreate,
    /// The new container is made; the working one's stop is held.
    AfterCreate,
    /// The working container is stopped, the new one's gateway never answers.
    HealthWait,
    /// The new one was healthy and is the agent's; its rename is held.
    Rename,
    /// The new one never answered; the rollback's removal of it is held.
    RollbackRemove,
}

/// `kill -9` of `serve` at `step` of an update, then the next launches: one
/// container for the agent, running the image the record pins, and the API says
/// what the engine shows.
async fn kill_during_update_at(step: Step) {
    common::ensure_images();
    let home = Home::new();
    let engine = ProxiedEngine::start(home.path()).await;
    let reference = format!(
        "localhost/clawdock-test-interrupted-{}-{step:?}:latest",
        std::process::id()
    )
    .to_lowercase();
    images::tag_image(IMAGE, &reference);
    let health = [("CLAWDOCK_HEALTH_TIMEOUT", "4")];
    let mut first = serve(home.path(), &engine, &reference, step as u16, &health);
    let api = first.api();
    let agent = api
        .create_running(&format!("upd{step:?}").to_lowercase())
        .await;
    let id = agent["id"].as_str().expect("id").to_string();
    let working = image_id(IMAGE);
    let (new_image, expected) = match step {
        Step::HealthWait | Step::RollbackRemove => (never_ready_image(), working.clone()),
        Step::Rename => (newer_image(), image_id(&newer_image())),
        Step::BeforeCreate | Step::AfterCreate => (newer_image(), working.clone()),
    };
    images::tag_image(&new_image, &reference);
    let held = match step {
        Step::BeforeCreate => Some(Rule::new(
            "POST",
            "/v*/libpod/containers/create",
            Fault::Hang,
        )),
        Step::AfterCreate => Some(Rule::new(
            "POST",
            "/v*/libpod/containers/*/stop",
            Fault::Hang,
        )),
        Step::Rename => Some(Rule::new(
            "POST",
            "/v*/libpod/containers/*/rename",
            Fault::Hang,
        )),
        Step::RollbackRemove => Some(Rule::new("DELETE", "/v*/libpod/containers/*", Fault::Hang)),
        Step::HealthWait => None,
    }
    .map(|rule| engine.proxy.fault(rule));
    api.fire(reqwest::Method::POST, &format!("/agents/{id}/update"), None);
    let reached = common::wait_for(Duration::from_secs(60), || match held {
        Some(rule) => engine.proxy.fired(rule) > 0,
        // The new container runs (its gateway never answers).
        None => containers_of(&id)
            .iter()
            .any(|(_, image, state, _)| *image == image_id(&new_image) && state == "running"),
    });
    assert!(reached, "the update never reached {step:?}");
    first.kill9();
    engine.proxy.clear();

    // At most two launches later, all is repaired.
    let mut settled = None;
    for _ in 0..2 {
        let next = serve(home.path(), &engine, &reference, step as u16, &health);
        let repaired = common::until_ok(Duration::from_secs(45), async || {
            let view = next.api().agent(&id).await;
            let all = containers_of(&id);
            let repaired = all.len() == 1
                && all[0].1 == expected
                && all[0].2 == "running"
                && view.as_ref().is_some_and(running_and_idle);
            if repaired {
                Ok(all)
            } else {
                Err(())
            }
        })
        .await;
        if let Ok(all) = repaired {
            settled = Some((all, next));
            break;
        }
    }
    let Some((all, mut last)) = settled else {
        panic!(
            "{step:?}: not repaired within two launches: {:#?}",
            containers_of(&id)
        );
    };
    assert_eq!(
        all[0].3,
        format!("clawdock-upd{step:?}").to_lowercase(),
        "the agent's name"
    );
    let port = agent["port"].as_u64().expect("port");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("the gateway answers");
    assert!(health.status().is_success());
    let store: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("agents.json")).expect("agents.json"),
    )
    .expect("json");
    let record = &store[0];
    assert!(record.get("journal").is_none(), "{record:#}");
    assert_eq!(record["imageId"], expected, "the pinned image");
    assert_eq!(last.stop().and_then(|s| s.code()), Some(0));
    images::untag_image(&reference);
}

/// Fault (issue 29): `kill -9` before the update's create left a journal of
/// nothing; the agent keeps its working container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_an_updates_create_the_working_container_stays() {
    kill_during_update_at(Step::BeforeCreate).await;
}

/// Fault (issue 29): `kill -9` after the update's create left two containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_an_updates_create_the_new_container_goes() {
    kill_during_update_at(Step::AfterCreate).await;
}

/// Fault (issue 29): `kill -9` in an update's health wait left the new,
/// never-healthy image running as the agent and the working one exited; no
/// rollback ever happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_an_updates_health_wait_the_agent_goes_back_to_the_working_image() {
    kill_during_update_at(Step::HealthWait).await;
}

/// `kill -9` once the new container was healthy and the agent's: the update is
/// finished (the old container goes, the new one takes the agent's name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_an_update_renames_its_new_container_the_update_is_finished() {
    kill_during_update_at(Step::Rename).await;
}

/// `kill -9` in the middle of a rollback: the next launch finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_an_updates_rollback_the_rollback_is_finished() {
    kill_during_update_at(Step::RollbackRemove).await;
}

/// Fault (issue 29): the crash loop lived in memory only: every launch began its
/// back-off again (a launch at login, or Clawdock's own crash, made a tight loop),
/// and a death while Clawdock was closed read as a fresh crash with no time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_and_a_death_while_closed_are_told_across_launches() {
    common::ensure_images();
    let home = Home::new();
    let engine = ProxiedEngine::start(home.path()).await;
    let dying = derived(
        "localhost/clawdock-test-gateway-dying:latest",
        r#"ENTRYPOINT ["/bin/sh","-c","\"$@\" & until wget -q -O /dev/null http://127.0.0.1:18789/healthz; do usleep 100000; done; sleep 2; echo \"[gateway] fatal: dying 2 s after ready (test image)\" >&2; exit 3","gateway"]"#,
    );
    let mut first = serve(home.path(), &engine, &dying, 5, &[]);
    let api = first.api();
    let agent = api.create_running("looping").await;
    let id = agent["id"].as_str().expect("id").to_string();
    let looping = api
        .until_agent(&id, Duration::from_secs(60), |a| {
            a["crashLoop"]["crashes"].as_u64() >= Some(3)
        })
        .await;
    let crashes = looping["crashLoop"]["crashes"].as_u64().expect("crashes");
    first.kill9();

    let mut second = serve(home.path(), &engine, &dying, 5, &[]);
    let api = second.api();
    let kept = common::throughout(Duration::from_secs(5), async || {
        let view = api.agent(&id).await.expect("agent");
        let now = view["crashLoop"]["crashes"].as_u64().unwrap_or(0);
        if now >= crashes {
            Ok(())
        } else {
            Err(view)
        }
    })
    .await;
    if let Err(view) = kept {
        panic!("the loop's count goes on from {crashes}, not again from 1: {view:#}");
    }
    second.kill9();

    // A healthy agent, Clawdock gone, the gateway killed meanwhile.
    let mut third = serve(home.path(), &engine, IMAGE, 6, &[]);
    let api = third.api();
    let healthy = api.create_running("closed").await;
    let healthy_id = healthy["id"].as_str().expect("id").to_string();
    third.kill9();
    images::podman_out(&["kill", "clawdock-closed"]);
    let mut fourth = serve(home.path(), &engine, IMAGE, 6, &[]);
    let api = fourth.api();
    let told = api
        .until_agent(&healthy_id, Duration::from_secs(20), |a| {
            a["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("While Clawdock was closed"))
        })
        .await;
    assert!(
        told["error"].as_str().is_some_and(|e| e.contains("137")),
        "{told:#}"
    );
    api.until_agent(&healthy_id, Duration::from_secs(20), |a| {
        a["status"] == "running"
    })
    .await;
    assert_eq!(fourth.stop().and_then(|s| s.code()), Some(0));
}

/// Fault (issue 29): a container found running at launch was shown `running` at
/// once, whether its gateway answered or not. Its gateway here takes 5 s after a
/// restart: `running` is said only once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_found_running_at_launch_is_running_once_its_gateway_answers() {
    common::ensure_images();
    let home = Home::new();
    let engine = ProxiedEngine::start(home.path()).await;
    let slow = derived(
        "localhost/clawdock-test-gateway-slow5:latest",
        "ENV FAKE_GATEWAY_DELAY=5",
    );
    let mut first = serve(home.path(), &engine, &slow, 7, &[]);
    let api = first.api();
    let agent = api.create_running("slowpoke").await;
    let id = agent["id"].as_str().expect("id").to_string();
    let port = agent["port"].as_u64().expect("port");
    first.kill9();
    images::podman_out(&["restart", "--time", "1", "clawdock-slowpoke"]);

    let mut second = serve(home.path(), &engine, &slow, 7, &[]);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    // The first view that says running, and at once whether the gateway answers.
    let view = second
        .api()
        .wait_agent(&id, Duration::from_secs(30), |v| v["status"] == "running")
        .await
        .unwrap_or_else(|last| panic!("running once it answers; last seen: {last:#?}"));
    let answers = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(
        answers,
        "shown running before its gateway answered: {view:#}"
    );
    assert_eq!(second.stop().and_then(|s| s.code()), Some(0));
}

/// Fault (issue 29): Ctrl-C in the terminal that runs `clawdock serve` reached its
/// whole process group, the owned engine service included: pressed during an
/// update's health wait, both containers were left, and the next launch ran the
/// aside one while the agent's own stayed exited. Now the signal reaches Clawdock
/// alone, which rolls the update back and quits in order: one container, the
/// working image, started again at the next launch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_an_updates_health_wait_rolls_back_and_quits_in_order() {
    common::ensure_images();
    let home = Home::new();
    let reference = format!(
        "localhost/clawdock-test-ctrlc-{}:latest",
        std::process::id()
    );
    images::tag_image(IMAGE, &reference);
    let ports = port_base(8);
    // A group of its own, as a shell gives a job in a terminal; its own engine
    // service (no socket given), which the signal must not reach.
    let mut serve = Serve::launch(home.path())
        .env("CLAWDOCK_AGENT_IMAGE", &reference)
        .env("CLAWDOCK_STOP_TIMEOUT", "2")
        .env("CLAWDOCK_PORT_BASE", &ports)
        .stdout(std::process::Stdio::null())
        .own_process_group()
        .start();
    let pid = serve.pid();
    let api = serve.api();
    let agent = api.create_running("ctrlc").await;
    let id = agent["id"].as_str().expect("id").to_string();
    images::tag_image(&never_ready_image(), &reference);
    api.fire(reqwest::Method::POST, &format!("/agents/{id}/update"), None);
    let new_image = image_id(&never_ready_image());
    assert!(
        common::wait_for(Duration::from_secs(60), || containers_of(&id)
            .iter()
            .any(|(_, image, state, _)| *image == new_image && state == "running")),
        "the update's new container runs, its gateway awaited"
    );

    // What the terminal does on Ctrl-C: SIGINT to the foreground process group.
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{pid}")])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = serve
        .wait_exit(Duration::from_secs(60))
        .expect("serve did not exit after SIGINT");
    assert_eq!(status.code(), Some(0), "{status}");
    let left = containers_of(&id);
    assert_eq!(left.len(), 1, "the rollback completed: {left:#?}");
    assert_eq!(left[0].1, image_id(IMAGE), "the working image");
    assert_eq!(left[0].3, "clawdock-ctrlc");
    let record = serve.api().stored(&id);
    assert!(record.get("journal").is_none(), "{record:#}");
    assert_eq!(record["runningAtQuit"], true, "{record:#}");

    let next = Serve::start_with(
        home.path(),
        &[
            ("CLAWDOCK_AGENT_IMAGE", reference.as_str()),
            ("CLAWDOCK_PORT_BASE", ports.as_str()),
        ],
    );
    next.api()
        .until_agent(&id, Duration::from_secs(30), running_and_idle)
        .await;
    let running = containers_of(&id);
    assert_eq!(running.len(), 1, "{running:#?}");
    assert_eq!(running[0].1, image_id(IMAGE));
    drop(next);
    images::untag_image(&reference);
}

/// Fault (the check of the whole change): `kill -9` once an edit's stop had
/// happened in the engine but before Clawdock heard of it (the answer held at the
/// socket). The journal still said the edit had only begun, so the next launch
/// did not start the agent again and took the stop for a death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_an_edits_stop_the_agent_runs_again() {
    common::ensure_images();
    let home = Home::new();
    let engine = ProxiedEngine::start(home.path()).await;
    let mut first = serve(home.path(), &engine, IMAGE, 9, &[]);
    let api = first.api();
    let agent = api.create_running("edited").await;
    let id = agent["id"].as_str().expect("id").to_string();
    let held = engine.proxy.fault(Rule::new(
        "POST",
        "/v*/libpod/containers/*/stop",
        Fault::After(Box::new(Fault::Hang)),
    ));
    api.fire(
        reqwest::Method::PATCH,
        &format!("/agents/{id}"),
        Some(serde_json::json!({"providerType": "openai", "apiKey": "sk-edit-1"})),
    );
    assert!(
        common::wait_for(Duration::from_secs(60), || engine.proxy.fired(held) > 0
            && containers_of(&id).iter().all(|c| c.2 != "running")),
        "the edit's stop never happened: {:#?}",
        containers_of(&id)
    );
    first.kill9();
    engine.proxy.clear();

    let mut next = serve(home.path(), &engine, IMAGE, 9, &[]);
    let view = next
        .api()
        .until_agent(&id, Duration::from_secs(45), running_and_idle)
        .await;
    assert!(
        view["crashLoop"].is_null(),
        "the edit's stop is no death: {view:#}"
    );
    let all = containers_of(&id);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].2, "running");
    let record = next.api().stored(&id);
    assert!(record.get("journal").is_none(), "{record:#}");
    assert_eq!(next.stop().and_then(|s| s.code()), Some(0));
}
