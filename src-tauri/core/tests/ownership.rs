//! What Clawdock owns and what it must leave alone (issue 11), against real Podman:
//! containers of the same name that another program (or another Clawdock on another
//! data folder) made, a second core on the same data folder, a corrupt
//! `agents.json` while containers exist, a shutdown racing starts, and the bounds of
//! the shutdown (machine stop, a hanging kill) with the fake podman in vm mode.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use clawdock_core::agents::{AgentError, CreateRequest, ErrorCode};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use serde_json::json;
use support::{
    containers, eventually, fake_calls, fake_state, running_containers, Home, IMAGE, STUBBORN_IMAGE,
};
use tokio::sync::RwLock;

/// The machine test needs no unlabelled container running on the engine while it
/// shuts down (Clawdock stops a machine only when nothing else runs on it), and the
/// foreign containers of the other tests are exactly that: it runs alone.
static ENGINE: RwLock<()> = RwLock::const_new(());

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

/// An agent name no other test (of this run or a parallel one) uses.
fn unique(stem: &str, suffix: &str) -> String {
    format!("{stem}{}{suffix}", std::process::id() % 10_000)
}

async fn start_core(home: &Home, image: &str) -> Clawdock {
    Clawdock::start(home.native(image))
        .await
        .expect("core starts")
}

fn label(home: &Home) -> String {
    home.label().expect("instance label").trim().to_string()
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().expect("podman")
}

/// `(id, running)` of a container, `None` when it does not exist.
fn inspect(name_or_id: &str) -> Option<(String, bool)> {
    let out = podman(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Id}} {{.State.Running}}",
        name_or_id,
    ]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    Some((words.next()?.to_string(), words.next()? == "true"))
}

/// Who made the foreign container.
#[derive(Clone, Copy, Debug)]
enum Maker {
    /// Another program, by hand: no labels at all.
    Hand,
    /// A second Clawdock on another data folder: Clawdock's labels, other values.
    OtherInstance,
}

/// A container named like one of our agents' that Clawdock did not make. It prints a
/// unique marker, then sleeps. Removed (by id) when the test ends, passed or not.
struct Foreign {
    id: String,
    marker: String,
}

impl Foreign {
    fn run(name: &str, maker: Maker, agent_name: &str) -> Self {
        let marker = format!(
            "FOREIGN-MARKER-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        );
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
        if let Maker::OtherInstance = maker {
            for label in [
                format!("io.clawdock.home=other-{}", uuid::Uuid::new_v4()),
                format!("io.clawdock.agent={}", uuid::Uuid::new_v4()),
                format!("io.clawdock.name={agent_name}"),
            ] {
                args.push("--label".into());
                args.push(label);
            }
        }
        args.extend([
            IMAGE.to_string(),
            "sh".into(),
            "-c".into(),
            format!("echo {marker}; exec sleep 600"),
        ]);
        let out = Command::new("podman")
            .args(&args)
            .output()
            .expect("podman run");
        assert!(
            out.status.success(),
            "could not run the foreign container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let this = Self { id, marker };
        // Its output is there before the test goes on: a log without it means something.
        let end = Instant::now() + Duration::from_secs(15);
        while !String::from_utf8_lossy(&podman(&["logs", &this.id]).stdout).contains(&this.marker) {
            assert!(
                Instant::now() < end,
                "the foreign container printed nothing"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        this
    }

    /// Panics unless the very same container still exists and runs.
    fn assert_untouched(&self, when: &str) {
        match inspect(&self.id) {
            Some((id, true)) if id == self.id => {}
            Some((_, false)) => panic!("{when}: the foreign container was stopped"),
            _ => panic!("{when}: the foreign container was removed"),
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _removed = podman(&["rm", "-f", "-t", "0", &self.id]);
    }
}

async fn create_refuses_a_foreign_name(maker: Maker, suffix: &str) {
    let _engine = ENGINE.read().await;
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    core.start_runtime().await.expect("the engine is ready");
    let name = unique("dev", suffix);
    let foreign = Foreign::run(&format!("clawdock-{name}"), maker, &name);

    match core.agents().create(req(&name)).await {
        Err(err) if matches!(err, AgentError::ContainerNameTaken { .. }) => {
            assert!(
                matches!(err.code(), ErrorCode::ContainerNameTaken),
                "code of {err:?}"
            );
        }
        other => panic!("a create over a foreign `clawdock-{name}` was not refused: {other:?}"),
    }
    let recorded = |core: &Clawdock| {
        core.agents()
            .list()
            .iter()
            .any(|a| a.name.eq_ignore_ascii_case(&name))
    };
    assert!(!recorded(&core), "the refused agent was recorded");
    foreign.assert_untouched("right after the refused create");
    // Nothing goes on in the background either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!recorded(&core), "the refused agent was recorded later");
    foreign.assert_untouched("3 s after the refused create");
    let report = core.shutdown().await;
    assert!(report.leftover.is_empty(), "{report:?}");
    foreign.assert_untouched("after shutdown");
}

/// Fault: creating agent `dev` removed (`podman rm -f`) a `clawdock-dev` container
/// that another program made by hand, or took it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_agent_refuses_the_name_of_a_container_made_by_hand() {
    create_refuses_a_foreign_name(Maker::Hand, "h").await;
}

/// Fault: creating agent `dev` destroyed the `clawdock-dev` container of a second
/// Clawdock on another data folder (other `io.clawdock.home` and agent labels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_agent_refuses_the_name_of_another_instances_container() {
    create_refuses_a_foreign_name(Maker::OtherInstance, "o").await;
}

async fn a_replaced_container_is_left_alone(maker: Maker, suffix: &str) {
    let _engine = ENGINE.read().await;
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let agents = core.agents();
    let name = unique("dev", suffix);
    let container = format!("clawdock-{name}");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    agents.stop(agent.id).await.expect("stop");
    // Someone removes our container, then another `clawdock-<name>` appears.
    let out = podman(&["rm", "-f", &container]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(containers(&label(&home)).is_empty());
    let foreign = Foreign::run(&container, maker, &name);

    let started = agents.start(agent.id).await;
    assert!(
        started.is_err(),
        "start over a foreign container succeeded: {started:?}"
    );
    foreign.assert_untouched("after the start");
    let (log, _) = agents.follow_logs(agent.id).expect("log");
    assert!(
        !log.iter().any(|l| l.contains(&foreign.marker)),
        "the agent's log shows the foreign container's output:\n{}",
        log.join("\n")
    );

    agents
        .stop(agent.id)
        .await
        .expect("stop after the failed start");
    foreign.assert_untouched("after the stop");
    agents.delete(agent.id).await.expect("delete");
    foreign.assert_untouched("after the delete");
    assert!(agents.get(agent.id).is_none(), "the agent is gone");
    let report = core.shutdown().await;
    assert!(
        !report.leftover.iter().any(|c| c == &container),
        "the foreign container is not ours to report: {report:?}"
    );
    foreign.assert_untouched("after shutdown");
}

/// Fault: with its own container removed outside Clawdock, starting, stopping and
/// deleting agent `dev` acted on a hand-made `clawdock-dev` by name (stopped and
/// removed it, and showed its output as the agent's log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_container_was_replaced_by_hand_leaves_the_foreign_one_alone() {
    a_replaced_container_is_left_alone(Maker::Hand, "rh").await;
}

/// Fault: the same, with the `clawdock-dev` of a second Clawdock on another data
/// folder: stop and delete by name destroyed the other instance's agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_container_was_replaced_by_another_instance_leaves_it_alone() {
    a_replaced_container_is_left_alone(Maker::OtherInstance, "ro").await;
}

/// Fault: two cores on one data folder both ran, each rewriting `agents.json` and
/// each treating the other's containers as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_core_on_the_same_folder_is_refused_until_the_first_shut_down() {
    let _engine = ENGINE.read().await;
    let home = Home::new();
    let first = start_core(&home, IMAGE).await;
    match Clawdock::start(home.native(IMAGE)).await {
        Err(clawdock_core::app::StartError::AlreadyRunning { .. }) => {}
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a second core started on the same data folder"),
    }
    first.shutdown().await;
    let again = Clawdock::start(home.native(IMAGE))
        .await
        .expect("the folder is free once the first core shut down");
    again.shutdown().await;
}

/// Fault: a corrupt `agents.json` was moved aside and every container of the data
/// folder, now unknown, was removed as an orphan (the agents and their containers
/// were lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_keeps_every_container_and_adopts_the_agents_again() {
    let _engine = ENGINE.read().await;
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let agents = core.agents();
    let (a_name, b_name) = (unique("keep", "a"), unique("keep", "b"));
    let a = agents
        .create_and_wait(req(&a_name))
        .await
        .expect("create a");
    let b = agents
        .create_and_wait(req(&b_name))
        .await
        .expect("create b");
    agents.stop(b.id).await.expect("stop b");
    let report = core.shutdown().await;
    assert!(report.leftover.is_empty(), "{report:?}");
    drop(core);
    let label = label(&home);
    // As after a crash: one container runs, the other has exited.
    let out = podman(&["start", &format!("clawdock-{a_name}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(containers(&label).len(), 2);
    std::fs::write(home.path().join("agents.json"), b"\x00{ garbage [[[").expect("corrupt");

    let core = start_core(&home, IMAGE).await;
    let warning = core.runtime_status().store_warning;
    assert!(warning.is_some(), "the corrupt store is reported");
    let both_listed = |core: &Clawdock| {
        let list = core.agents().list();
        [&a, &b].iter().all(|want| {
            list.iter()
                .any(|got| got.id == want.id && got.name == want.name && got.port == want.port)
        })
    };
    let listed = eventually(Duration::from_secs(15), || both_listed(&core)).await;
    // Time for any clean-up of "unknown" containers to have happened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = containers(&label);
    assert_eq!(left.len(), 2, "every container still exists: {left:?}");
    assert_eq!(
        running_containers(&label),
        vec![format!("clawdock-{a_name}")],
        "the running one still runs"
    );
    assert!(
        listed,
        "both agents are listed again with their ids, names and ports: {:?}",
        core.agents().list()
    );
    assert!(
        eventually(Duration::from_secs(30), || core
            .agents()
            .get(a.id)
            .is_some_and(
                |x| x.status == AgentStatus::Running && x.activity.is_none()
            ))
        .await,
        "the agent whose container runs is running: {:?}",
        core.agents().get(a.id)
    );

    // An adopted agent works: it starts and its gateway answers.
    let again = core.agents().start(b.id).await.expect("start adopted b");
    assert_eq!(again.status, AgentStatus::Running);
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", again.port))
        .await
        .expect("health");
    assert!(health.status().is_success());
    let report = core.shutdown().await;
    assert!(report.leftover.is_empty(), "{report:?}");
    assert!(running_containers(&label).is_empty());
}

/// Fault: a shutdown during `start_all` let starts finish after the stop pass
/// (containers left running after the app quit), or turned the interrupted agents
/// into `error: Clawdock is shutting down.`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_during_start_all_leaves_nothing_running_and_no_agent_in_error() {
    let _engine = ENGINE.read().await;
    let home = Home::new();
    let core = start_core(&home, IMAGE).await;
    let creates = (0..3).map(|i| {
        core.agents()
            .create_and_wait(req(&unique("race", &i.to_string())))
    });
    let ids: Vec<_> = futures::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.expect("create").id)
        .collect();
    for (id, result) in core.agents().stop_all().await {
        result.unwrap_or_else(|e| panic!("stop {id}: {e}"));
    }
    let label = label(&home);
    assert!(running_containers(&label).is_empty());

    let starter = core.clone();
    let starts = tokio::spawn(async move { starter.agents().start_all().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = core.shutdown().await;
    assert!(report.leftover.is_empty(), "{report:?}");
    let _results = tokio::time::timeout(Duration::from_secs(60), starts)
        .await
        .expect("start_all returns")
        .expect("start_all task");
    assert!(
        running_containers(&label).is_empty(),
        "running after shutdown: {:?}",
        running_containers(&label)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        running_containers(&label).is_empty(),
        "running 3 s after shutdown: {:?}",
        running_containers(&label)
    );
    for id in ids {
        assert!(
            eventually(Duration::from_secs(10), || core
                .agents()
                .get(id)
                .is_some_and(|a| a.activity.is_none()))
            .await,
            "{:?}",
            core.agents().get(id)
        );
        let agent = core.agents().get(id).expect("agent");
        let error = agent.error.clone().unwrap_or_default().to_lowercase();
        assert!(!error.contains("shutting down"), "{agent:?}");
        assert_eq!(agent.status, AgentStatus::Stopped, "{agent:?}");
    }
}

/// Fault: the shutdown's own bound (stop timeout + a margin) cut off the stop of the
/// machine Clawdock had started, leaving the VM running after quit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_slow_stop_of_the_machine_it_started() {
    let _engine = ENGINE.write().await;
    let home = Home::new();
    let (mut settings, state) = home.fake_vm(json!({
        "machines": [support::machine_row(false, false)],
        "delays": { "machine stop": 20 }
    }));
    settings.stop_timeout = Duration::from_secs(1);
    let core = Clawdock::start(settings).await.expect("core");
    core.start_runtime()
        .await
        .expect("Clawdock starts the machine");
    assert_eq!(fake_state(&state)["machines"][0]["Running"], true);
    let began = Instant::now();
    let report = core.shutdown().await;
    assert!(
        report.machine_stopped,
        "{report:?} after {:?}",
        began.elapsed()
    );
    assert_eq!(fake_calls(&state, "machine stop"), 1);
    assert_eq!(
        fake_state(&state)["machines"][0]["Running"],
        false,
        "the machine is stopped"
    );
}

/// Fault: a `podman kill` that never returns held the shutdown (and the quit) for
/// good, and the report did not say which container was left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_within_its_bound_when_kill_hangs_and_names_the_leftover() {
    let _engine = ENGINE.read().await;
    support::ensure_test_images();
    let home = Home::new();
    // The machine's API socket behind a proxy that can hang the kill.
    let proxy = support::engine_proxy::EngineProxy::start(
        &home.path().join("proxy.sock"),
        &home.path().join("podman-machine-default-api.sock"),
    )
    .expect("proxy");
    let (mut settings, _state) = home.fake_vm(json!({
        "machines": [support::machine_row(true, false)],
        "api_socket": proxy.path(),
    }));
    settings.agent_image = STUBBORN_IMAGE.into();
    settings.stop_timeout = Duration::from_secs(1);
    let core = Clawdock::start(settings).await.expect("core");
    let name = unique("hang", "");
    core.agents()
        .create_and_wait(req(&name))
        .await
        .expect("create");
    // The stubborn gateway ignores SIGTERM; neither the mass stop nor the kill
    // (both the engine's API) ever returns.
    for request in [
        "/v*/libpod/containers/*/stop",
        "/v*/libpod/containers/*/kill",
    ] {
        proxy.fault(support::engine_proxy::Rule::new(
            "POST",
            request,
            support::engine_proxy::Fault::Hang,
        ));
    }
    let began = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(120), core.shutdown())
        .await
        .expect("shutdown returns at all");
    let took = began.elapsed();
    assert!(took < Duration::from_secs(50), "shutdown took {took:?}");
    assert!(
        report.leftover.contains(&format!("clawdock-{name}")),
        "{report:?}"
    );
}
