//! Agents as real Podman containers (native mode): create, stop, start, delete,
//! ports and names, live state from events, the shutdown routine, a corrupt store,
//! and (with the fake podman in vm mode) one machine bring-up for many creates.

mod support;

use std::time::{Duration, Instant};

use clawdock_core::agents::definition::ProviderInput;
use clawdock_core::agents::{AgentError, CreateRequest, EditRequest};
use clawdock_core::events::{Change, Event};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use serde_json::json;
use support::{
    containers, derived_image, eventually, fake_calls, podman_out, running_containers, Home, IMAGE,
    STUBBORN_IMAGE,
};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

async fn start_core(home: &Home, image: &str) -> Clawdock {
    Clawdock::start(home.native(image))
        .await
        .expect("core starts")
}

fn label(home: &Home) -> String {
    home.label().expect("instance label")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stop_start_delete_leaves_nothing() {
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let agents = core.agents();
    let created = agents.create_and_wait(req("alpha")).await.expect("create");
    assert_eq!(created.status, AgentStatus::Running);
    assert_eq!(
        created.gateway_url.as_deref(),
        Some(format!("ws://127.0.0.1:{}", created.port).as_str())
    );
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", created.port))
        .await
        .expect("health");
    assert!(health.status().is_success());
    assert_eq!(
        running_containers(&label(&home)),
        vec!["clawdock-alpha".to_string()]
    );

    // The config is private and in the gateway's shape; the log has the seed's lines.
    let config = created.dir.join("config/openclaw.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&config)
                .expect("config")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let store_mode = std::fs::metadata(home.path().join("agents.json"))
            .expect("store")
            .permissions()
            .mode();
        assert_eq!(store_mode & 0o777, 0o600);
    }
    let (log, _) = agents.follow_logs(created.id).expect("logs");
    let joined = log.join("\n");
    for line in [
        "Checking container runtime...",
        "Container runtime ready",
        "Waiting for gateway to be ready...",
        "OpenClaw gateway is ready at ws://127.0.0.1:",
    ] {
        assert!(joined.contains(line), "missing `{line}` in:\n{joined}");
    }
    assert!(
        log[0].starts_with('[') && log[0].as_bytes()[9] == b']',
        "time prefix: {}",
        log[0]
    );

    let stopped = agents.stop(created.id).await.expect("stop");
    assert_eq!(stopped.status, AgentStatus::Stopped);
    assert!(running_containers(&label(&home)).is_empty());
    let again = agents.start(created.id).await.expect("start");
    assert_eq!(again.status, AgentStatus::Running);
    assert_eq!(running_containers(&label(&home)).len(), 1);

    agents.delete(created.id).await.expect("delete");
    assert!(agents.list().is_empty());
    assert!(containers(&label(&home)).is_empty(), "no container left");
    assert!(!created.dir.exists(), "folder removed");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("agents.json")).expect("store"))
            .expect("json");
    assert_eq!(saved, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_never_shared_and_bad_names_are_refused() {
    let home = Home::new();
    let settings = home.native(IMAGE);
    let first_port = settings.first_agent_port;
    // Hold the first port with another program: it must be skipped.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", first_port)).expect("bind");
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents();
    let a = agents.create(req("one")).await.expect("one");
    let b = agents.create(req("two")).await.expect("two");
    assert_ne!(a.port, b.port);
    assert_ne!(a.port, first_port, "a port in use elsewhere is skipped");
    // A stopped agent keeps its port.
    assert!(
        eventually(Duration::from_secs(30), || agents
            .get(a.id)
            .is_some_and(|x| x.activity.is_none()))
        .await
    );
    agents.stop(a.id).await.expect("stop");
    let c = agents.create(req("three")).await.expect("three");
    assert!(c.port != a.port && c.port != b.port);

    for bad in ["a/b", "..", "x\ny", &"n".repeat(64), "", "-lead", "sp ace"] {
        match agents.create(req(bad)).await {
            Err(AgentError::InvalidName(msg)) => assert!(
                msg.contains("letters, digits") || msg.contains("required"),
                "{msg}"
            ),
            other => panic!("`{bad}` was not refused: {other:?}"),
        }
    }
    match agents.create(req("ONE")).await {
        Err(AgentError::Duplicate(name)) => assert_eq!(name, "ONE"),
        other => panic!("duplicate in other case accepted: {other:?}"),
    }
    assert_eq!(agents.list().len(), 3);
    for agent in agents.list() {
        assert!(
            eventually(Duration::from_secs(30), || agents
                .get(agent.id)
                .is_some_and(|x| x.activity.is_none()))
            .await
        );
        agents.delete(agent.id).await.expect("delete");
    }
    assert!(containers(&label(&home)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_outside_turns_its_agent_within_two_seconds() {
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let mut events = core.subscribe();
    let agent = core
        .agents()
        .create_and_wait(req("victim"))
        .await
        .expect("create");
    // Let the event stream attach (it starts in the background with the core).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = std::process::Command::new("podman")
        .args(["kill", "clawdock-victim"])
        .output()
        .expect("kill");
    assert!(status.status.success());
    // Timed from the death (`podman kill` returns once the container is dead), not
    // from the start of a kill that a loaded machine makes slow.
    let killed_at = Instant::now();
    let mut died = None;
    while killed_at.elapsed() < Duration::from_secs(2) {
        match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            Ok(Ok(Event::Agent {
                agent: a,
                change: Some(Change::Died { exit_code }),
            })) if a.id == agent.id => {
                died = Some((a, exit_code));
                break;
            }
            _ => {}
        }
    }
    let (seen, exit_code) = died.expect("a Died event within 2 s");
    assert_eq!(seen.status, AgentStatus::Error);
    assert_eq!(exit_code, Some(137));
    assert!(seen.error.as_deref().unwrap_or_default().contains("137"));
    // And the next start brings it back.
    let back = core.agents().start(agent.id).await.expect("restart");
    assert_eq!(back.status, AgentStatus::Running);
    core.shutdown().await;
    assert!(running_containers(&label(&home)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_of_five_stubborn_agents_is_parallel_and_leaves_nothing_running() {
    let home = Home::new();
    let core = start_core(&home, STUBBORN_IMAGE).await;
    let agents = core.agents();
    let creates = (0..5).map(|i| agents.create_and_wait(req(&format!("stubborn{i}"))));
    for r in futures::future::join_all(creates).await {
        assert_eq!(r.expect("create").status, AgentStatus::Running);
    }
    assert_eq!(running_containers(&label(&home)).len(), 5);
    let began = Instant::now();
    let report = core.shutdown().await;
    let took = began.elapsed();
    // Each stop takes the full 2 s timeout; one by one that would be 10 s.
    assert!(took < Duration::from_secs(7), "shutdown took {took:?}");
    assert_eq!(report.stopped.len(), 5);
    assert!(running_containers(&label(&home)).is_empty());
    // They ran at quit: the next start of the app brings them back.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("agents.json")).expect("store"))
            .expect("json");
    assert!(
        saved
            .as_array()
            .expect("array")
            .iter()
            .all(|a| a["runningAtQuit"] == true),
        "{saved}"
    );
    drop(core);
    let core = start_core(&home, STUBBORN_IMAGE).await;
    assert!(
        eventually(Duration::from_secs(60), || core
            .agents()
            .list()
            .iter()
            .all(|a| a.status == AgentStatus::Running))
        .await,
        "{:?}",
        core.agents().list()
    );
    core.shutdown().await;
    assert!(running_containers(&label(&home)).is_empty());
}

#[tokio::test]
async fn a_corrupt_store_is_moved_aside_and_reported() {
    let home = Home::new();
    let path = home.path().join("agents.json");
    std::fs::write(&path, b"[{\"id\": \"not even json").expect("write");
    let core = start_core(&home, IMAGE).await;
    let warning = core.runtime_status().store_warning.expect("reported");
    assert!(warning.contains("moved to"), "{warning}");
    assert!(core.agents().list().is_empty());
    let aside: Vec<_> = std::fs::read_dir(home.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("agents.json.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read(aside[0].path()).expect("evidence"),
        b"[{\"id\": \"not even json"
    );
}

/// The stand-in gateway, made to exit with code 3 at start.
fn crashing_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-crashing:latest",
        "ENV FAKE_GATEWAY_EXIT=3",
    )
}

/// The stand-in gateway, never healthy within a health budget.
fn never_ready_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-never-ready:latest",
        "ENV FAKE_GATEWAY_DELAY=600",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_crashes_at_start_is_an_error_with_its_logs() {
    let home = Home::new();
    let core = start_core(&home, crashing_image()).await;
    let started = Instant::now();
    let err = core
        .agents()
        .create_and_wait(req("crasher"))
        .await
        .expect_err("fails");
    // The exit is noticed from the events, not after the whole health budget.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("exit code 3"), "{err}");
    let agent = core.agents().list().pop().expect("agent kept");
    assert_eq!(agent.status, AgentStatus::Error);
    assert!(agent
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("exit code 3"));
    let (log, _) = core.agents().follow_logs(agent.id).expect("log");
    let joined = log.join("\n");
    assert!(joined.contains("ERROR: "), "{joined}");
    assert!(
        joined.contains("--- Container logs ---") && joined.contains("simulated startup failure"),
        "{joined}"
    );
    assert!(running_containers(&label(&home)).is_empty());
    core.agents().delete(agent.id).await.expect("delete");
    assert!(containers(&label(&home)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_creates_at_once_in_vm_mode_run_one_init_and_one_start() {
    let home = Home::new();
    let (settings, state) =
        home.fake_vm(json!({ "delays": { "machine init": 0.5, "machine start": 0.5 } }));
    support::ensure_test_images();
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents();
    let creates = (0..10).map(|i| agents.create_and_wait(req(&format!("vm{i}"))));
    let results = futures::future::join_all(creates).await;
    for r in results {
        assert_eq!(r.expect("create").status, AgentStatus::Running);
    }
    assert_eq!(fake_calls(&state, "machine init"), 1);
    assert_eq!(fake_calls(&state, "machine start"), 1);
    let report = core.shutdown().await;
    assert_eq!(report.stopped.len(), 10);
    // Clawdock started the machine and only its containers ran: it stops it.
    assert!(report.machine_stopped);
    assert_eq!(fake_calls(&state, "machine stop"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_mode_warns_when_another_agent_would_not_fit_in_memory() {
    let home = Home::new();
    // A running 2 GiB machine: one gateway fits, two do not.
    let (settings, _state) =
        home.fake_vm(json!({ "machines": [support::machine_row(true, false)] }));
    support::ensure_test_images();
    let core = Clawdock::start(settings).await.expect("core");
    assert_eq!(core.runtime_status().machine_memory_mib, Some(2048));
    let tag = std::process::id() % 10_000;
    let first = core
        .agents()
        .create(req(&format!("mem{tag}a")))
        .await
        .expect("first");
    assert!(first.notice.is_none(), "{:?}", first.notice);
    let second = core
        .agents()
        .create(req(&format!("mem{tag}b")))
        .await
        .expect("second");
    let notice = second.notice.expect("a memory warning");
    assert!(
        notice.contains("2 agents need about 3.0 GiB but the Podman machine has 2.0 GiB"),
        "{notice}"
    );
    core.shutdown().await;
    for a in core.agents().list() {
        assert!(
            support::eventually(Duration::from_secs(30), || core
                .agents()
                .get(a.id)
                .is_some_and(|x| x.activity.is_none()))
            .await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_while_stopped_moves_the_agent_to_a_free_one() {
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let agents = core.agents();
    let name = format!("porter{}", std::process::id() % 10_000);
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    agents.stop(agent.id).await.expect("stop");
    // Another program takes the port while the agent is stopped.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", agent.port)).expect("take the port");
    let again = agents
        .start(agent.id)
        .await
        .expect("starts on another port");
    assert_eq!(again.status, AgentStatus::Running);
    assert_ne!(again.port, agent.port);
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", again.port))
        .await
        .expect("health");
    assert!(health.status().is_success());
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(agent.dir.join("config/openclaw.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(
        config["gateway"]["controlUi"]["allowedOrigins"][0],
        format!("http://127.0.0.1:{}", again.port)
    );
    let (log, _) = agents.follow_logs(agent.id).expect("log");
    assert!(log
        .iter()
        .any(|l| l.contains("is taken by another program")));
    agents.delete(agent.id).await.expect("delete");
    assert!(containers(&label(&home)).is_empty());
}

/// An edit of the model alone.
fn model(id: &str) -> EditRequest {
    EditRequest {
        model_id: Some(id.into()),
        ..EditRequest::default()
    }
}

fn container_started_at(name: &str) -> (String, String) {
    let out = std::process::Command::new("podman")
        .args(["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", name])
        .output()
        .expect("podman inspect");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (id, at) = text.split_once(' ').expect("id and start time");
    (id.to_string(), at.to_string())
}

fn config_dir_text(dir: &std::path::Path) -> String {
    std::fs::read_dir(dir.join("config"))
        .expect("config folder")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).expect("read")).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_rewrites_the_key_and_model_in_place_and_restarts_the_same_container() {
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let agents = core.agents();
    let created = agents
        .create_and_wait(CreateRequest {
            name: "editme".into(),
            provider: ProviderInput {
                provider_type: Some("openai".into()),
                api_key: Some("sk-old-111".into()),
                model_id: Some("gpt-4".into()),
                ..ProviderInput::default()
            },
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    std::fs::write(created.dir.join("workspace/notes.md"), "remember this").expect("workspace");
    // The gateway's own backup of the file it rewrote at start holds the old key too.
    std::fs::write(
        created.dir.join("config/openclaw.json.bak"),
        std::fs::read(created.dir.join("config/openclaw.json")).expect("config"),
    )
    .expect("backup");
    let (container, started) = container_started_at("clawdock-editme");

    let edited = agents
        .edit(
            created.id,
            EditRequest {
                api_key: Some("sk-new-222".into()),
                model_id: Some("gpt-5".into()),
                ..EditRequest::default()
            },
        )
        .await
        .expect("edit");
    assert_eq!(edited.status, AgentStatus::Running);
    assert_eq!(edited.port, created.port, "same port");
    let answer = serde_json::to_string(&edited).expect("json");
    assert!(
        !answer.contains("sk-"),
        "the answer carries no key: {answer}"
    );

    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(created.dir.join("config/openclaw.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(config["env"]["vars"]["OPENAI_API_KEY"], "sk-new-222");
    assert_eq!(
        config["agents"]["defaults"]["model"]["primary"],
        "openai/gpt-5"
    );
    assert!(
        !config_dir_text(&created.dir).contains("sk-old-111"),
        "the old key is gone from the config folder"
    );
    assert_eq!(
        std::fs::read_to_string(created.dir.join("workspace/notes.md")).expect("workspace"),
        "remember this"
    );
    let (container_after, started_after) = container_started_at("clawdock-editme");
    assert_eq!(container_after, container, "the same container");
    assert_ne!(started_after, started, "restarted");
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", created.port))
        .await
        .expect("health");
    assert!(health.status().is_success());
    agents
        .edit(created.id, model("gpt-5"))
        .await
        .expect("an edit to the same values");
    assert_eq!(
        container_started_at("clawdock-editme").1,
        started_after,
        "nothing changed, nothing restarted"
    );

    // Stopped: the config changes, nothing starts.
    agents.stop(created.id).await.expect("stop");
    let quiet = agents
        .edit(created.id, model("gpt-5-mini"))
        .await
        .expect("edit while stopped");
    assert_eq!(quiet.status, AgentStatus::Stopped);
    assert!(running_containers(&label(&home)).is_empty());
    let config = std::fs::read_to_string(created.dir.join("config/openclaw.json")).expect("config");
    assert!(
        config.contains("openai/gpt-5-mini") && config.contains("sk-new-222"),
        "{config}"
    );

    // Bad input changes nothing.
    for bad in [
        EditRequest::default(),
        EditRequest {
            provider_type: Some("nope".into()),
            ..EditRequest::default()
        },
        EditRequest {
            api_key: Some("a\nb".into()),
            ..EditRequest::default()
        },
    ] {
        let err = agents.edit(created.id, bad).await.expect_err("refused");
        assert!(matches!(err, AgentError::InvalidInput(_)), "{err:?}");
    }
    assert_eq!(
        std::fs::read_to_string(created.dir.join("config/openclaw.json")).expect("config"),
        config
    );
    let unknown = agents
        .edit(uuid::Uuid::new_v4(), model("m"))
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, AgentError::NotFound), "{unknown:?}");

    // Busy: a create in progress cannot be edited.
    let other = agents.create(req("busy-one")).await.expect("create");
    let busy = agents.edit(other.id, model("m")).await.expect_err("busy");
    assert!(matches!(busy, AgentError::Busy(_)), "{busy:?}");
    core.shutdown().await;
}

async fn log_says(agents: &clawdock_core::agents::Agents, id: uuid::Uuid, line: &str) -> bool {
    eventually(Duration::from_secs(30), || {
        agents
            .follow_logs(id)
            .is_ok_and(|(lines, _)| lines.iter().any(|l| l.contains(line)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_create_or_start_at_once_and_leaves_nothing_behind() {
    let home = Home::new();
    let mut settings = home.native(never_ready_image());
    settings.health_timeout = Duration::from_secs(120);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents();

    // A create waiting for a gateway that never gets healthy: cancel undoes it.
    let created = agents.create(req("never-ready")).await.expect("create");
    assert!(log_says(agents, created.id, "Waiting for gateway").await);
    let began = Instant::now();
    let answer = agents.cancel(created.id).await.expect("cancel");
    assert!(answer.is_none(), "the cancelled create is gone: {answer:?}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        began.elapsed()
    );
    assert!(agents.get(created.id).is_none());
    assert!(containers(&label(&home)).is_empty(), "no container left");
    assert!(!created.dir.exists(), "no folder left");
    let saved = std::fs::read_to_string(home.path().join("agents.json")).expect("store");
    assert!(
        !saved.contains("never-ready"),
        "no creating record: {saved}"
    );

    // Nothing in progress: cancel changes nothing.
    let idle = agents.create(req("idle")).await.expect("create");
    assert!(log_says(agents, idle.id, "Waiting for gateway").await);
    agents.stop(idle.id).await.expect("stop");
    let unchanged = agents.cancel(idle.id).await.expect("cancel").expect("kept");
    assert_eq!(unchanged.status, AgentStatus::Stopped);

    // Stop while a start waits for health: the start ends now, not after 120 s.
    let start = tokio::spawn({
        let agents = agents.clone();
        let id = idle.id;
        async move { agents.start(id).await }
    });
    assert!(
        eventually(Duration::from_secs(30), || running_containers(&label(
            &home
        ))
        .len()
            == 1)
        .await
    );
    let began = Instant::now();
    let stopped = agents.stop(idle.id).await.expect("stop");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "stop during a start took {:?}",
        began.elapsed()
    );
    assert_eq!(stopped.status, AgentStatus::Stopped);
    let start = start.await.expect("join");
    assert!(matches!(start, Err(AgentError::Cancelled)), "{start:?}");
    assert!(running_containers(&label(&home)).is_empty());
    assert!(
        stopped.error.is_none(),
        "a cancel is not an error: {:?}",
        stopped.error
    );
    core.shutdown().await;
}

/// Runs podman, asserts it succeeded, and gives back its trimmed stdout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_moves_to_the_image_the_reference_names_now_and_rolls_back_one_that_never_starts() {
    support::ensure_test_images();
    let never_ready = never_ready_image();
    let reference = format!(
        "localhost/clawdock-test-update-{}:latest",
        std::process::id()
    );
    let image_of = |image: &str| podman_out(&["image", "inspect", "--format", "{{.Id}}", image]);
    let container_image = || podman_out(&["inspect", "--format", "{{.Image}}", "clawdock-updated"]);
    support::tag_image(IMAGE, &reference);
    let home = Home::new();
    let mut settings = home.native(&reference);
    settings.health_timeout = Duration::from_secs(8);
    settings.stop_timeout = Duration::from_secs(1);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents();
    let agent = agents
        .create_and_wait(req("updated"))
        .await
        .expect("create");
    std::fs::write(agent.dir.join("workspace/notes.md"), "kept").expect("workspace");

    let same = agents.update(agent.id).await.expect("update");
    assert!(!same.updated, "nothing new, nothing changed");
    assert_eq!(container_image(), image_of(IMAGE));

    support::tag_image(STUBBORN_IMAGE, &reference);
    let moved = agents.update(agent.id).await.expect("update");
    assert!(moved.updated && moved.rolled_back.is_none(), "{moved:?}");
    assert_eq!(moved.agent.status, AgentStatus::Running);
    assert_eq!(
        (moved.agent.port, moved.agent.name.as_str()),
        (agent.port, "updated")
    );
    assert_eq!(container_image(), image_of(STUBBORN_IMAGE));
    assert_eq!(
        std::fs::read_to_string(agent.dir.join("workspace/notes.md")).expect("workspace"),
        "kept"
    );
    assert_eq!(
        containers(&label(&home)).len(),
        1,
        "the old container is gone"
    );

    support::tag_image(never_ready, &reference);
    let back = agents.update(agent.id).await.expect("update");
    assert!(!back.updated, "{back:?}");
    assert!(
        back.rolled_back
            .as_deref()
            .is_some_and(|w| w.contains("went back")),
        "{back:?}"
    );
    assert_eq!(back.agent.status, AgentStatus::Running);
    assert_eq!(container_image(), image_of(STUBBORN_IMAGE), "rolled back");
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", agent.port))
        .await
        .expect("health");
    assert!(health.status().is_success());
    core.shutdown().await;
    support::untag_image(&reference);
}

/// Issue 14, item 4: a launch that restores agents listed the containers twice (once
/// itself, once for the event stream) and once more per agent it restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_that_restores_five_agents_lists_the_containers_once() {
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let names: Vec<String> = (0..5).map(|i| format!("restored-{i}")).collect();
    for name in &names {
        core.agents()
            .create_and_wait(req(name))
            .await
            .expect("create");
    }
    core.shutdown().await;
    drop(core);
    assert!(running_containers(&label(&home)).is_empty());

    let (podman, calls) = support::counting_podman(home.path());
    let engine = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native_through(IMAGE, &engine);
    settings.podman = podman;
    let core = Clawdock::start(settings).await.expect("core");
    assert!(
        eventually(Duration::from_secs(60), || running_containers(&label(
            &home
        ))
        .len()
            == 5)
        .await,
        "the five agents run again"
    );
    assert!(
        eventually(Duration::from_secs(10), || core
            .agents()
            .list()
            .iter()
            .all(|a| a.status == AgentStatus::Running && a.activity.is_none()))
        .await
    );
    // The reconciler lists again once operations end (and at its period): the
    // launch and its restore, up to the last start, list once.
    let log = engine.proxy.log();
    let last_start = log
        .iter()
        .rposition(|l| l.starts_with("POST") && l.ends_with("/start"))
        .expect("the restore's starts");
    let listings = log[..last_start]
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains("/containers/json"))
        .count();
    assert_eq!(
        listings, 1,
        "one listing for the launch and its restore:\n{log:#?}"
    );
    assert_eq!(
        support::podman_processes(&calls),
        Vec::<String>::new(),
        "no podman process for the restore"
    );
    core.shutdown().await;
}

/// Issue 14, item 4: five creates at once each ran the host probe (`podman info`
/// for rootless and SELinux), because the result was kept only after the first
/// probe returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_concurrent_creates_probe_the_host_once_and_ask_for_no_image() {
    let home = Home::new();
    let (podman, calls) = support::counting_podman(home.path());
    let engine = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native_through(IMAGE, &engine);
    settings.podman = podman;
    let core = Clawdock::start(settings).await.expect("core");
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..5 {
        let core = core.clone();
        creates.spawn(async move {
            core.agents()
                .create_and_wait(req(&format!("probe-{i}")))
                .await
        });
    }
    while let Some(created) = creates.join_next().await {
        created.expect("join").expect("create");
    }
    assert_eq!(running_containers(&label(&home)).len(), 5);
    let log = engine.proxy.log();
    assert_eq!(
        engine.calls("GET", "/info"),
        1,
        "one host probe for five creates:\n{log:#?}"
    );
    // Item 2: the create itself finds a missing image; no image inspect before it.
    assert_eq!(engine.calls("GET", "/images/*/json"), 0, "{log:#?}");
    assert_eq!(engine.calls("POST", "/containers/create"), 5, "{log:#?}");
    assert_eq!(engine.calls("POST", "/containers/*/start"), 5, "{log:#?}");
    // Issue 24: the engine's API, not a podman process per operation. Listed,
    // stats and logs read too, while the agents ran.
    let first = core.agents().list()[0].id;
    core.agents().container_logs(first, 10).await.expect("logs");
    let stopped = core.agents().stop(first).await.expect("stop");
    assert_eq!(stopped.status, AgentStatus::Stopped);
    assert_eq!(
        engine.calls("POST", "/containers/*/stop"),
        1,
        "{:#?}",
        engine.proxy.log()
    );
    assert_eq!(
        support::podman_processes(&calls),
        Vec::<String>::new(),
        "no podman process for five creates, their starts, listings, logs and a stop"
    );
    core.shutdown().await;
}

/// Issue 14, item 7: a failed pull said podman's raw text ("pinging container
/// registry ...: dial tcp: lookup ... no such host"). A registry that cannot be
/// reached (`.invalid` never resolves) gets one sentence with a next step; Podman's
/// words (now the API's, in the pull's answer) stay as the details, in the agent
/// and in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_said_in_a_sentence_with_podman_s_words_as_details() {
    let home = Home::new();
    let core = start_core(&home, "clawdock-test.invalid/openclaw/openclaw:latest").await;
    let agents = core.agents();
    let err = agents
        .create_and_wait(req("unreachable"))
        .await
        .expect_err("no registry");
    let said = err.to_string();
    assert!(
        said.starts_with("Clawdock could not reach clawdock-test.invalid.")
            && said.ends_with("then try again."),
        "{said}"
    );
    // Issue 32, item 5: the core's sentence names no button and no command; the
    // window and the terminal each add their own way to try again.
    assert!(
        !said.contains("press Start") && !said.contains("clawdock agents"),
        "{said}"
    );
    assert!(!said.contains("dial tcp"), "{said}");
    let agent = agents.list().pop().expect("agent");
    assert_eq!(agent.status, AgentStatus::Error);
    assert_eq!(agent.error.as_deref(), Some(said.as_str()));
    let details = agent.error_details.clone().expect("details");
    assert!(
        details.contains("POST /images/create") && details.contains("no such host"),
        "{details}"
    );
    let (log, _) = agents.follow_logs(agent.id).expect("log");
    assert!(
        log.iter()
            .any(|l| l.contains("Details:") && l.contains("no such host")),
        "{log:?}"
    );
    core.shutdown().await;
}

/// Issue 14, item 3: the shutdown ran a `podman stop` (and an `inspect`) per agent,
/// processes that fought over two cores, so it grew with the number of agents.
/// Issue 29: the one `podman stop` that replaced them went to podman's default
/// connection, not necessarily the engine in use. Now one listing and a stop
/// request per agent, all at once, to the engine in use; no podman process, and
/// agents that stop in time are not killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_stops_five_agents_at_once_through_the_engine_and_kills_none() {
    let home = Home::new();
    let (podman, calls) = support::counting_podman(home.path());
    let engine = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native_through(IMAGE, &engine);
    settings.podman = podman;
    let core = Clawdock::start(settings).await.expect("core");
    for i in 0..5 {
        core.agents()
            .create_and_wait(req(&format!("stopped-{i}")))
            .await
            .expect("create");
    }
    let before = std::fs::read_to_string(&calls)
        .unwrap_or_default()
        .lines()
        .count();
    engine.proxy.clear();
    let report = core.shutdown().await;
    let during: Vec<String> = std::fs::read_to_string(&calls)
        .unwrap_or_default()
        .lines()
        .skip(before)
        .map(str::to_string)
        .collect();
    assert_eq!(report.stopped.len(), 5, "{report:?}");
    assert_eq!(
        report.killed, 0,
        "every gateway stopped in time: {report:?}"
    );
    assert!(running_containers(&label(&home)).is_empty());
    assert_eq!(during, Vec::<String>::new(), "no podman process");
    // One listing to find them, one to check after the stops.
    let log = engine.proxy.log();
    assert_eq!(engine.calls("POST", "/containers/*/stop"), 5, "{log:#?}");
    assert_eq!(engine.calls("GET", "/containers/json"), 2, "{log:#?}");
    assert_eq!(engine.calls("POST", "/containers/*/kill"), 0, "{log:#?}");
    assert_eq!(engine.calls("GET", "/containers/*/json"), 0, "{log:#?}");
}
