//! Where the engine's API socket comes from natively, on real Podman: the
//! service Clawdock owns, killed from outside, is started again with no agent
//! lost; the user's own socket is used when it answers and left running.

mod support;

use std::path::Path;
use std::time::Duration;

use clawdock_core::agents::CreateRequest;
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use support::{eventually, podman_out, running_containers, Home, IMAGE};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

/// Pids of the `podman system service` processes listening on `socket`.
fn services_on(socket: &Path) -> Vec<u32> {
    let needle = format!("unix://{}", socket.display());
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains("system service") && text.contains(&needle)
        })
        .collect()
}

fn started_at(container: &str) -> String {
    podman_out(&["inspect", "--format", "{{.State.StartedAt}}", container])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_service_killed_from_outside_is_started_again_and_no_agent_is_lost() {
    let home = Home::new();
    let mut settings = home.native(IMAGE);
    settings.user_engine_socket = None;
    let socket = clawdock_core::engine::socket::owned_socket(&settings.home);
    let core = Clawdock::start(settings).await.expect("core");
    let agent = core
        .agents()
        .create_and_wait(req("outlives"))
        .await
        .expect("create");
    let label = home.label().expect("label");
    let running = running_containers(&label);
    assert_eq!(running.len(), 1);
    let before = started_at(&running[0]);
    let services = services_on(&socket);
    assert_eq!(services.len(), 1, "Clawdock's own service: {services:?}");

    let _killed = std::process::Command::new("kill")
        .args(["-KILL", &services[0].to_string()])
        .status();
    // The event stream drops with it: the core looks at the engine again and
    // starts a new service.
    assert!(
        eventually(Duration::from_secs(30), || {
            let now = services_on(&socket);
            now.len() == 1 && now[0] != services[0]
        })
        .await,
        "no new service on {}",
        socket.display()
    );
    // Nothing was lost or restarted: the same container, never stopped.
    assert_eq!(running_containers(&label), running);
    assert_eq!(
        started_at(&running[0]),
        before,
        "the gateway was not restarted"
    );
    assert!(
        eventually(Duration::from_secs(20), || core
            .agents()
            .get(agent.id)
            .is_some_and(
                |a| a.status == AgentStatus::Running && a.activity.is_none()
            ))
        .await,
        "{:?}",
        core.agents().get(agent.id)
    );
    // And the new service serves: a stop and a start go through it.
    core.agents().stop(agent.id).await.expect("stop");
    assert!(running_containers(&label).is_empty());
    core.agents().start(agent.id).await.expect("start");
    assert_eq!(running_containers(&label).len(), 1);

    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
    assert!(
        eventually(Duration::from_secs(10), || services_on(&socket).is_empty()).await,
        "the service Clawdock owns ends at its exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_own_socket_is_used_and_left_running() {
    let home = Home::new();
    let mut users = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native(IMAGE);
    settings.user_engine_socket = Some(users.proxy.path().to_path_buf());
    let owned = clawdock_core::engine::socket::owned_socket(&settings.home);
    let core = Clawdock::start(settings).await.expect("core");
    core.agents()
        .create_and_wait(req("on-users-socket"))
        .await
        .expect("create");
    assert_eq!(users.calls("POST", "/containers/create"), 1);
    assert!(
        services_on(&owned).is_empty(),
        "no service of Clawdock's own"
    );
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
    assert!(users.service_runs(), "the user's service is left running");
}

/// Issue 24: a client request dropped mid-way never kills a mutating operation in
/// the engine. The caller gives up on a start the engine is slow to take (a delay
/// at the socket); the start still reaches the engine and happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_its_caller_gave_up_on_still_happens_in_the_engine() {
    use clawdock_core::engine::client::Request;
    use support::engine_proxy::{Fault, Rule};
    support::ensure_test_images();
    let dir = tempfile::tempdir().expect("tmp");
    let engine = support::ProxiedEngine::start(dir.path()).await;
    let name = format!("clawdock-given-up-{}", uuid::Uuid::new_v4().simple());
    podman_out(&["create", "--name", &name, IMAGE]);
    engine.proxy.fault(Rule::new(
        "POST",
        "/v*/libpod/containers/*/start",
        Fault::Delay(Duration::from_secs(1)),
    ));
    let client = client_through(&engine);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        client.call(Request::post(format!("/containers/{name}/start"))),
    )
    .await;
    assert!(gave_up.is_err(), "the caller gave up before the answer");
    let running = || podman_out(&["inspect", "--format", "{{.State.Status}}", &name]) == "running";
    let started = eventually(Duration::from_secs(15), running).await;
    podman_out(&["rm", "--force", "--time", "0", &name]);
    assert!(started, "the start the caller gave up on happened anyway");
}

/// Fault (the crash suite, once in a few runs): a Clawdock killed during a stop
/// left the stop to the engine; the next launch started the agent in the middle
/// of it (answered as done), the stop then ended the gateway, and the death read
/// as a crash. A start now waits for a stop in progress to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_during_another_clients_stop_starts_the_container_after_it() {
    use clawdock_core::container::ContainerId;
    use clawdock_core::containers::Containers;
    support::ensure_test_images();
    let dir = tempfile::tempdir().expect("tmp");
    let engine = support::ProxiedEngine::start(dir.path()).await;
    let name = format!("clawdock-mid-stop-{}", uuid::Uuid::new_v4().simple());
    // PID 1 ignores SIGTERM: the stop takes its whole timeout.
    let id = podman_out(&["run", "-d", "--name", &name, support::STUBBORN_IMAGE]);
    let client = client_through(&engine);
    let containers = Containers::new(support::real_podman(), client, "unused".into());
    let mut stop = std::process::Command::new("podman")
        .args(["stop", "--time", "3", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("podman stop");
    let status = || podman_out(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert!(
        eventually(Duration::from_secs(10), || status() == "stopping").await,
        "the stop began"
    );
    containers
        .start(&ContainerId(id.clone()))
        .await
        .expect("start");
    let _stopped = stop.wait();
    // The container runs after the stop ended: it was started after it, not
    // answered "already running" in its middle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = status();
    podman_out(&["rm", "--force", "--time", "0", &name]);
    assert_eq!(now, "running");
}

/// A client of the engine under test, through its proxy.
fn client_through(engine: &support::ProxiedEngine) -> clawdock_core::engine::client::EngineClient {
    let client = clawdock_core::engine::client::EngineClient::new(Duration::from_secs(30));
    client.set_endpoint(Some(engine.proxy.path().to_path_buf()));
    client
}
