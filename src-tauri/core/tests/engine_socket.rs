//! Where the engine's API socket comes from natively, on real Podman: the
//! service Clawdock owns, killed from outside, is started again with no agent
//! lost; the user's own socket is used when it answers and left running.

mod support;

use std::path::Path;
use std::time::Duration;

use clawdock_core::agents::CreateRequest;
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use support::{eventually, podman_out, running_containers, services_on, Home, IMAGE};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
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
    let containers = Containers::new(client, "unused".into());
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

/// A data folder whose `engine.sock` is too long for a socket path (about 110
/// characters in all, as measured in issue 30), reached from `home`'s `data`
/// (so `Home`'s clean-up finds its instance).
fn long_data_folder(home: &support::Home) -> std::path::PathBuf {
    let long = home.path().join("a".repeat(110));
    std::fs::create_dir_all(&long).expect("long folder");
    std::os::unix::fs::symlink(&long, home.path().join("data")).expect("link");
    long
}

/// The agent's gateway token, as the neighbour would find it in a create body.
fn token_of(core: &Clawdock, id: uuid::Uuid) -> String {
    let store = clawdock_core::store::Store::new(core.settings().agents_file());
    store
        .load()
        .expect("agents.json")
        .agents
        .into_iter()
        .find(|a| a.id == id)
        .map(|a| a.token)
        .expect("the agent's record")
}

/// Issue 30, item 2: with a data folder too long for a socket, the owned service
/// listened on `/tmp/clawdock-<fixed hash>.sock`. A neighbour (another uid)
/// listening there first answered `_ping`, was trusted, and was then sent every
/// request, gateway tokens included. The neighbour takes whatever path Clawdock
/// would use (making its folder first where it can): Clawdock never sends it a
/// request, and runs the agent on a service of its own in a private folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_listening_first_where_the_owned_service_would_is_never_sent_a_request() {
    let home = Home::new();
    let mut settings = home.native(IMAGE);
    settings.user_engine_socket = None;
    settings.home = long_data_folder(&home);
    let predicted = clawdock_core::engine::socket::owned_socket(&settings.home);
    let neighbour = support::hostile_engine::HostileEngine::start(&predicted, true);
    let core = Clawdock::start(settings).await.expect("core");
    let created = core.agents().create_and_wait(req("private")).await;
    let seen = neighbour.requests();
    let token = created.as_ref().ok().map(|a| token_of(&core, a.id));
    let report = core.shutdown().await;
    assert!(
        seen.is_empty(),
        "the neighbour's socket was sent {} request(s), the token among them: {}: {seen:#?}",
        seen.len(),
        token.is_some_and(|t| seen.iter().any(|r| r.contains(&t)))
    );
    let agent = created.expect("the agent runs on a private service of Clawdock's own");
    assert_eq!(agent.status, AgentStatus::Running);
    assert!(report.clean(), "{report:?}");
}

/// A folder in `/tmp` that every user may write, as a neighbour's listener has.
fn shared_folder() -> tempfile::TempDir {
    let shared = tempfile::Builder::new()
        .prefix("clawdock-shared-")
        .tempdir_in("/tmp")
        .expect("shared folder");
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    shared
}

/// Issue 30, item 2: the user's own `podman.socket` was trusted because it
/// answered. One held by another user (a neighbour's listener where the user's
/// would be) is refused: never sent a request, and Clawdock runs its own service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_socket_held_by_another_uid_is_refused() {
    let home = Home::new();
    let shared = shared_folder();
    let neighbour =
        support::hostile_engine::HostileEngine::start(&shared.path().join("podman.sock"), false);
    let mut settings = home.native(IMAGE);
    settings.user_engine_socket = Some(neighbour.path.clone());
    let core = Clawdock::start(settings).await.expect("core");
    let created = core.agents().create_and_wait(req("not-theirs")).await;
    let seen = neighbour.requests();
    let report = core.shutdown().await;
    assert!(seen.is_empty(), "the neighbour was sent: {seen:#?}");
    assert_eq!(
        created
            .expect("the agent runs on Clawdock's own service")
            .status,
        AgentStatus::Running
    );
    assert!(report.clean(), "{report:?}");
}

/// Issue 30, item 2: a socket given outright (`CLAWDOCK_ENGINE_SOCKET`) but held
/// by another uid is refused with an error that says so, and sent nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_socket_held_by_another_uid_is_refused_with_a_clear_error() {
    let home = Home::new();
    let shared = shared_folder();
    let neighbour =
        support::hostile_engine::HostileEngine::start(&shared.path().join("engine.sock"), false);
    let mut settings = home.native(IMAGE);
    settings.engine_socket = Some(neighbour.path.clone());
    let core = Clawdock::start(settings).await.expect("core");
    let created = core.agents().create_and_wait(req("refused")).await;
    let status = core.runtime_status();
    let seen = neighbour.requests();
    core.shutdown().await;
    assert!(seen.is_empty(), "the neighbour was sent: {seen:#?}");
    assert!(created.is_err(), "{created:?}");
    let error = status.error.unwrap_or_default();
    assert!(
        error.contains(&format!("uid {}", support::hostile_engine::NEIGHBOUR)),
        "the error names the socket's owner: {error:?}"
    );
}

/// A podman whose `system service` listens beside the path Clawdock names
/// (`<path>.real`), so a test's proxy can stand at the path itself: a fault at the
/// socket, the real service behind it.
fn service_behind_a_proxy(dir: &Path) -> clawdock_core::engine::Podman {
    use std::os::unix::fs::PermissionsExt;
    let real = support::real_podman();
    let wrapper = dir.join("podman-service-aside");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1 $2\" = 'system service' ]; then exec '{real}' system service \"$3\" \"$4.real\"; fi\nexec '{real}' \"$@\"\n",
            real = real.bin().expect("podman").display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    clawdock_core::engine::Podman::new(Some(wrapper))
}

/// Fault (issue 29): a `_ping` slower than the probe's 5 s SIGKILLed the owned
/// service with requests in flight. A slow answer is not a dead service: the
/// check waits for it, and the stop in flight (a gateway that ignores SIGTERM
/// takes the whole stop timeout) finishes on the same service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ping_never_kills_the_owned_service_under_a_request() {
    use support::engine_proxy::{EngineProxy, Fault, Rule};
    let home = Home::new();
    let dir = tempfile::tempdir().expect("tmp");
    let mut settings = home.native(support::STUBBORN_IMAGE);
    settings.user_engine_socket = None;
    settings.podman = service_behind_a_proxy(dir.path());
    settings.stop_timeout = Duration::from_secs(9);
    let owned = clawdock_core::engine::socket::owned_socket(&settings.home);
    let real = std::path::PathBuf::from(format!("{}.real", owned.display()));
    let starting = tokio::spawn(Clawdock::start(settings));
    assert!(
        eventually(Duration::from_secs(30), || real.exists()).await,
        "the service never listened on {}",
        real.display()
    );
    let proxy = EngineProxy::start(&owned, &real).expect("proxy");
    let core = starting.await.expect("task").expect("core");
    let agent = core
        .agents()
        .create_and_wait(req("slow-ping"))
        .await
        .expect("create");
    let service = services_on(&real);
    assert_eq!(service.len(), 1, "{service:?}");

    let stopping = {
        let core = core.clone();
        tokio::spawn(async move { core.agents().stop(agent.id).await })
    };
    assert!(
        eventually(Duration::from_secs(10), || proxy
            .calls("POST", "/v*/libpod/containers/*/stop")
            == 1)
        .await,
        "the stop reached the engine: {:#?}",
        proxy.log()
    );
    proxy.fault(Rule::new(
        "GET",
        "/v*/libpod/_ping",
        Fault::Delay(Duration::from_secs(7)),
    ));
    let checked = core.check_engine().await;
    let stopped = stopping.await.expect("task");
    let after = services_on(&real);
    proxy.clear();
    let report = core.shutdown().await;

    assert_eq!(after, service, "the same service serves, never killed");
    assert_eq!(checked, clawdock_core::machine::RuntimeState::Ready);
    let stopped = stopped.expect("the stop in flight finished");
    assert_eq!(stopped.status, AgentStatus::Stopped, "{stopped:?}");
    assert!(report.clean(), "{report:?}");
}
