//! Issue 29 on real Podman (native mode): Clawdock's state is level-triggered. What
//! an event misses the reconciler finds by looking again, a death noted while an
//! operation held the agent is acted on when it ends, containers are told apart by
//! labels (never by name), re-creations use the image the record pins, a rollback's
//! working container is never removed, and agent-writable data cannot panic an
//! operation. Each test is a failure found by trying the product.

mod support;

use std::time::Duration;

use clawdock_core::agents::{CreateRequest, EditRequest};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use support::engine_proxy::{Fault, Rule};
use support::{derived_image, eventually, podman_out, Home, IMAGE};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

/// The image a container runs, by ID.
fn image_of_container(container: &str) -> String {
    podman_out(&["inspect", "--format", "{{.Image}}", container])
}

fn image_id(image: &str) -> String {
    podman_out(&["image", "inspect", "--format", "{{.Id}}", image])
}

/// The IDs of the containers carrying the agent's label.
fn containers_of(agent: uuid::Uuid) -> Vec<String> {
    podman_out(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.clawdock.agent={agent}"),
        "--format",
        "{{.ID}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// An agent made and running, then Clawdock quit (which stops it, to start it
/// again at the next launch).
async fn created_then_quit(home: &Home, name: &str) -> clawdock_core::view::AgentView {
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let agent = core
        .agents()
        .create_and_wait(req(name))
        .await
        .expect("create");
    core.shutdown().await;
    agent
}

/// A stand-in whose gateway never answers within any test's budget.
fn never_ready_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-never-ready:latest",
        "ENV FAKE_GATEWAY_DELAY=600",
    )
}

/// A stand-in whose gateway exits at once (exit 1).
fn exits_at_once_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-exits:latest",
        "ENV FAKE_GATEWAY_EXIT=1",
    )
}

/// A healthy stand-in with another image ID (a newer image of the same gateway).
fn newer_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-newer:latest",
        "LABEL io.clawdock.test.newer=1",
    )
}

/// Fault (issue 29): with the event stream accepted but never answered (every
/// other request works), a container killed from outside was shown `running` for
/// ever. The reconciler's listing sees it within its period, and the crash loop
/// starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_death_the_events_never_tell_is_found_by_the_reconciler() {
    let home = Home::new();
    let engine = support::ProxiedEngine::start(home.path()).await;
    engine
        .proxy
        .fault(Rule::new("GET", "/v*/libpod/events", Fault::Hang));
    let mut settings = home.native_through(IMAGE, &engine);
    settings.resync_period = Duration::from_secs(2);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let name = unique("deaf");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    assert_eq!(agent.status, AgentStatus::Running);
    podman_out(&["kill", &format!("clawdock-{name}")]);
    support::until_agent(
        &agents,
        agent.id,
        Duration::from_secs(10),
        "the death is seen without any event",
        |a| a.status != AgentStatus::Running || a.crash_loop.is_some(),
    )
    .await;
    support::until_agent(
        &agents,
        agent.id,
        Duration::from_secs(20),
        "started again by the crash loop",
        |a| {
            a.status == AgentStatus::Running
                && a.crash_loop.as_ref().is_some_and(|c| c.crashes == 1)
        },
    )
    .await;
    core.shutdown().await;
}

/// Fault (issue 29): an update whose pull hangs (a slow registry) holds the agent;
/// its container killed meanwhile was only noted, and after the update ended the
/// agent stayed `running` with no container running. The death is acted on when
/// the update ends: the crash loop starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_death_during_a_hung_pull_is_acted_on_when_the_update_ends() {
    let home = Home::new();
    // A reference with a registry, so the update pulls; the registry never
    // answers (no network here), after the engine's answer was held 6 s.
    let reference = format!(
        "registry.invalid:5000/clawdock/hung-pull-{}:latest",
        std::process::id()
    );
    support::tag_image(IMAGE, &reference);
    let engine = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native_through(&reference, &engine);
    settings.resync_period = Duration::from_secs(3600);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let name = unique("hungpull");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    let pull = engine.proxy.fault(Rule::new(
        "POST",
        "/images/create",
        Fault::Delay(Duration::from_secs(6)),
    ));
    let update = tokio::spawn({
        let agents = agents.clone();
        async move { agents.update(agent.id).await }
    });
    assert!(eventually(Duration::from_secs(10), || engine.proxy.fired(pull) > 0).await);
    podman_out(&["kill", &format!("clawdock-{name}")]);
    let updated = update.await.expect("join");
    assert!(updated.is_err(), "the pull fails: {updated:?}");
    support::until_agent(
        &agents,
        agent.id,
        Duration::from_secs(15),
        "the death noted during the update is one, and the gateway runs again",
        |a| {
            a.status == AgentStatus::Running
                && a.crash_loop.as_ref().is_some_and(|c| c.crashes == 1)
        },
    )
    .await;
    assert_eq!(
        podman_out(&[
            "inspect",
            "--format",
            "{{.State.Status}}",
            &format!("clawdock-{name}")
        ]),
        "running"
    );
    core.shutdown().await;
    support::untag_image(&reference);
}

/// Fault (issue 29): the container an update kept aside was recognised by its
/// name (`…-previous`): an agent named `x-previous` beside `x` blocked `x`'s
/// update (the name was taken) and was taken for its left-over; a delete left a
/// `-previous` that brought the agent back. Labels tell containers apart now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_named_x_and_x_previous_keep_their_own_containers() {
    let home = Home::new();
    let reference = format!(
        "localhost/clawdock-test-xprev-{}:latest",
        std::process::id()
    );
    support::tag_image(IMAGE, &reference);
    let core = Clawdock::start(home.native(&reference))
        .await
        .expect("core");
    let agents = core.agents().clone();
    let x = unique("x");
    let xp = format!("{x}-previous");
    let agent_x = agents.create_and_wait(req(&x)).await.expect("create x");
    let agent_xp = agents
        .create_and_wait(req(&xp))
        .await
        .expect("create x-previous");
    let xp_container = containers_of(agent_xp.id);
    assert_eq!(xp_container.len(), 1);

    support::tag_image(newer_image(), &reference);
    let updated = agents.update(agent_x.id).await.expect("update x");
    assert!(updated.updated, "{updated:?}");
    assert_eq!(
        image_of_container(&format!("clawdock-{x}")),
        image_id(newer_image())
    );
    assert_eq!(containers_of(agent_x.id).len(), 1, "one container for x");
    assert_eq!(
        containers_of(agent_xp.id),
        xp_container,
        "x-previous untouched"
    );
    assert_eq!(
        podman_out(&["inspect", "--format", "{{.State.Status}}", &xp_container[0]]),
        "running"
    );

    agents.delete(agent_x.id).await.expect("delete x");
    assert!(containers_of(agent_x.id).is_empty(), "nothing of x is left");
    assert_eq!(containers_of(agent_xp.id), xp_container);
    core.shutdown().await;
    drop(core);

    let core = Clawdock::start(home.native(&reference))
        .await
        .expect("relaunch");
    let names: Vec<String> = core.agents().list().into_iter().map(|a| a.name).collect();
    assert_eq!(names, vec![xp.clone()], "x does not come back");
    core.shutdown().await;
    support::untag_image(&reference);
}

/// Fault (issue 29): a rollback did not stick. The record kept the moving tag, so
/// a limits change (and a container made again for any reason) made the image
/// the update had just rejected. Re-creations use the pinned image ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_sticks_through_a_limits_change_and_a_container_made_again() {
    let home = Home::new();
    let reference = format!(
        "localhost/clawdock-test-sticks-{}:latest",
        std::process::id()
    );
    support::tag_image(IMAGE, &reference);
    let mut settings = home.native(&reference);
    settings.health_timeout = Duration::from_secs(6);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let name = unique("sticks");
    let container = format!("clawdock-{name}");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    let working = image_id(IMAGE);

    support::tag_image(never_ready_image(), &reference);
    let back = agents.update(agent.id).await.expect("update");
    assert!(!back.updated && back.rolled_back.is_some(), "{back:?}");
    assert_eq!(image_of_container(&container), working);

    let edited = agents
        .edit(
            agent.id,
            EditRequest {
                memory_mib: Some(1024),
                ..EditRequest::default()
            },
        )
        .await
        .expect("new limits on the working image");
    assert_eq!(edited.status, AgentStatus::Running);
    assert_eq!(
        image_of_container(&container),
        working,
        "not the rejected tag"
    );

    agents.stop(agent.id).await.expect("stop");
    podman_out(&["rm", "-f", &container]);
    let started = agents.start(agent.id).await.expect("start makes it again");
    assert_eq!(started.status, AgentStatus::Running);
    assert_eq!(
        image_of_container(&container),
        working,
        "not the rejected tag"
    );
    core.shutdown().await;
    support::untag_image(&reference);
}

/// Fault (issue 29): a Cancel during an update's rollback, while the working
/// container was being started again, removed that container: the agent was left
/// with none, and its next start made the rejected image. The working container
/// is stopped, never removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_the_rollback_keeps_the_working_container() {
    let home = Home::new();
    let reference = format!(
        "localhost/clawdock-test-keepold-{}:latest",
        std::process::id()
    );
    support::tag_image(IMAGE, &reference);
    let engine = support::ProxiedEngine::start(home.path()).await;
    let settings = home.native_through(&reference, &engine);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let name = unique("keepold");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    let old = containers_of(agent.id);
    assert_eq!(old.len(), 1);
    let old_id = podman_out(&["inspect", "--format", "{{.Id}}", &old[0]]);

    // The new image dies at once; the rollback's start of the working container
    // is held 3 s at the socket, and cancelled meanwhile.
    support::tag_image(exits_at_once_image(), &reference);
    let relaunch = engine.proxy.fault(
        Rule::new(
            "POST",
            &format!("/v*/libpod/containers/{old_id}/start"),
            Fault::Delay(Duration::from_secs(3)),
        )
        .once(),
    );
    let update = tokio::spawn({
        let agents = agents.clone();
        async move { agents.update(agent.id).await }
    });
    assert!(
        eventually(Duration::from_secs(30), || engine.proxy.fired(relaunch) > 0).await,
        "the rollback starts the working container again"
    );
    agents.cancel(agent.id).await.expect("cancel");
    let _outcome = update.await.expect("join");
    support::until_agent(
        &agents,
        agent.id,
        Duration::from_secs(10),
        "done with the update",
        |a| a.activity.is_none(),
    )
    .await;
    let left = containers_of(agent.id);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        podman_out(&["inspect", "--format", "{{.Id}}", &left[0]]),
        old_id,
        "the working container is kept"
    );
    let started = agents.start(agent.id).await.expect("start");
    assert_eq!(started.status, AgentStatus::Running);
    assert_eq!(image_of_container(&left[0]), image_id(IMAGE));
    core.shutdown().await;
    support::untag_image(&reference);
}

/// Fault (issue 29): `openclaw.json` is the agent's to write. One that is not a JSON
/// object (here `[]`) panicked the start that moved the agent off a taken port,
/// and the agent stayed `starting`. It is an error that names the file now, and
/// the agent is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_is_not_an_object_is_an_error_not_a_panic() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let agents = core.agents().clone();
    let name = unique("notobj");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    agents.stop(agent.id).await.expect("stop");
    std::fs::write(agent.dir.join("config/openclaw.json"), "[]").expect("write");

    let edited = agents
        .edit(
            agent.id,
            EditRequest {
                provider_type: Some("anthropic".into()),
                api_key: Some("sk-test".into()),
                ..EditRequest::default()
            },
        )
        .await;
    let err = edited.expect_err("an edit of a config that is not an object");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    assert_eq!(agents.get(agent.id).and_then(|a| a.activity), None);

    // The agent's port taken by another program: the start moves it, which
    // rewrites the config.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", agent.port)).expect("bind");
    let started = agents.start(agent.id).await;
    let err = started.expect_err("a start that must rewrite the config");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    let view = agents.get(agent.id).expect("agent");
    assert_eq!(view.activity, None, "not left starting: {view:?}");
    assert_eq!(view.status, AgentStatus::Error);
    core.shutdown().await;
}

/// Fault (issue 29): in native mode the engine's service going away does not take
/// the containers with it (conmon keeps them), but agents were marked `stopped`
/// while their gateways served on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_native_mode_a_lost_engine_leaves_the_agents_running() {
    let home = Home::new();
    let engine = support::ProxiedEngine::start(home.path()).await;
    let settings = home.native_through(IMAGE, &engine);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let agent = agents
        .create_and_wait(req(&unique("serveson")))
        .await
        .expect("create");
    engine.proxy.set_refusing(true);
    core.check_engine().await;
    let view = agents.get(agent.id).expect("agent");
    assert_eq!(view.status, AgentStatus::Running, "{view:?}");
    assert!(
        view.notice.as_deref().is_some_and(|n| n.contains("engine")),
        "{view:?}"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", agent.port))
        .await
        .expect("the gateway serves on");
    assert!(health.status().is_success());
    engine.proxy.set_refusing(false);
    core.check_engine().await;
    let view = agents.get(agent.id).expect("agent");
    assert_eq!(view.status, AgentStatus::Running);
    assert_eq!(view.notice, None, "{view:?}");
    core.shutdown().await;
}

/// Fault (issue 29): an agent restored at launch while its container already ran
/// (started outside meanwhile) kept `wanted: stopped`: its next death was not
/// one, and nothing started it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restored_while_its_container_runs_is_supervised() {
    let home = Home::new();
    let name = unique("restored");
    let agent = created_then_quit(&home, &name).await;
    let container = format!("clawdock-{name}");
    podman_out(&["start", &container]);

    let core = Clawdock::start(home.native(IMAGE)).await.expect("relaunch");
    let agents = core.agents().clone();
    support::until_agent(&agents, agent.id, Duration::from_secs(20), "running", |a| {
        a.status == AgentStatus::Running && a.activity.is_none()
    })
    .await;
    podman_out(&["kill", &container]);
    support::until_agent(
        &agents,
        agent.id,
        Duration::from_secs(20),
        "its death is one, and it runs again",
        |a| a.status == AgentStatus::Running && a.crash_loop.is_some(),
    )
    .await;
    core.shutdown().await;
}

/// Fault (issue 29): containers made by Clawdock 0.1.0 keep `--restart
/// unless-stopped`, so Podman and Clawdock's own crash loop both restart them. The
/// next launch makes such a container again without it (same image, same port
/// and token), and the agent runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_a_restart_policy_is_made_again_without_it() {
    let home = Home::new();
    let name = unique("legacy");
    let agent = created_then_quit(&home, &name).await;

    // The container and record as 0.1.0 left them: no generation, no pinned
    // image, a restart policy.
    let container = format!("clawdock-{name}");
    let token = podman_out(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &container,
    ])
    .lines()
    .find_map(|l| {
        l.strip_prefix("OPENCLAW_GATEWAY_TOKEN=")
            .map(str::to_string)
    })
    .expect("token");
    let label = home.label().expect("label");
    podman_out(&["rm", "-f", &container]);
    podman_out(&[
        "create",
        "--name",
        &container,
        "--label",
        &format!("io.clawdock.agent={}", agent.id),
        "--label",
        &format!("io.clawdock.home={}", label.trim()),
        "--label",
        &format!("io.clawdock.name={name}"),
        "--restart",
        "unless-stopped",
        "--env",
        &format!("OPENCLAW_GATEWAY_TOKEN={token}"),
        "--publish",
        &format!("127.0.0.1:{}:18789", agent.port),
        IMAGE,
        "node",
        "dist/index.js",
        "gateway",
        "--bind",
        "lan",
        "--port",
        "18789",
    ]);
    let store = home.path().join("agents.json");
    let mut records: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).expect("store")).expect("json");
    for record in records.as_array_mut().expect("records") {
        let record = record.as_object_mut().expect("record");
        record.remove("generation");
        record.remove("imageId");
    }
    std::fs::write(&store, serde_json::to_vec_pretty(&records).expect("json")).expect("store");

    let core = Clawdock::start(home.native(IMAGE)).await.expect("relaunch");
    let agents = core.agents().clone();
    support::until_agent(&agents, agent.id, Duration::from_secs(30), "running", |a| {
        a.status == AgentStatus::Running && a.activity.is_none()
    })
    .await;
    let left = containers_of(agent.id);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        podman_out(&[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}}|{{index .Config.Labels \"io.clawdock.generation\"}}",
            &left[0]
        ])
        .split('|')
        .map(str::is_empty)
        .collect::<Vec<_>>(),
        vec![true, false],
        "no restart policy, a generation"
    );
    assert_eq!(image_of_container(&left[0]), image_id(IMAGE));
    core.shutdown().await;
}
