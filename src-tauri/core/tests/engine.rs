//! Issue 17, on the fake podman in vm mode: the Podman machine goes away under
//! running agents (stopped from a terminal, a crash, a sleep it does not survive),
//! and Clawdock notices, says so, and brings everything back on Start.

mod support;

use std::time::Duration;

use clawdock_core::agents::state::ENGINE_LOST;
use clawdock_core::agents::{AgentError, CreateRequest};
use clawdock_core::status::StateName;
use clawdock_core::store::AgentStatus;
use clawdock_core::view::Activity;
use clawdock_core::Clawdock;
use serde_json::json;
use support::engine_proxy::{EngineProxy, Fault, Rule};
use support::{eventually, fake_calls, machine_row, running_containers, Home};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

/// A core in vm mode on a running simulated machine, whose containers (this data
/// folder's) live "inside" it: a machine stop kills them and ends the streams.
/// The machine's API socket is handed out behind a proxy the test can break.
async fn vm_core(home: &Home) -> (Clawdock, std::path::PathBuf, EngineProxy) {
    let (settings, state, proxy) = home.fake_vm_behind_proxy(true);
    let core = Clawdock::start(settings).await.expect("core");
    home.containers_inside_the_machine(&state);
    (core, state, proxy)
}

const PING: &str = "/v*/libpod/_ping";

fn status_of(core: &Clawdock, name: &str) -> Option<AgentStatus> {
    core.agents()
        .list()
        .into_iter()
        .find(|a| a.name == name)
        .map(|a| a.status)
}

/// Runs the fake's `podman machine stop` as a user in a terminal would.
fn stop_machine_from_outside(home: &Home) {
    let out = std::process::Command::new(home.path().join("bin/podman"))
        .args(["machine", "stop"])
        .output()
        .expect("podman machine stop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fault: after `podman machine stop` from a terminal (streams ended, containers
/// killed), the agents still showed Running, a Start did not start the machine,
/// and the agents never came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_stopped_from_outside_is_seen_and_start_brings_everything_back() {
    let home = Home::new();
    let (core, state, _proxy) = vm_core(&home).await;
    let (a, b) = (unique("gone-a"), unique("gone-b"));
    let agents = core.agents();
    let first = agents.create_and_wait(req(&a)).await.expect("create a");
    agents.create_and_wait(req(&b)).await.expect("create b");
    let starts_before = fake_calls(&state, "machine start");

    stop_machine_from_outside(&home);
    assert!(
        eventually(Duration::from_secs(5), || {
            core.runtime_status().state == StateName::Stopped
                && status_of(&core, &a) == Some(AgentStatus::Stopped)
                && status_of(&core, &b) == Some(AgentStatus::Stopped)
        })
        .await,
        "within 5 s the runtime and the agents say stopped: {:?} {:?}",
        core.runtime_status().state,
        agents.list()
    );
    let view = agents.get(first.id).expect("a");
    assert_eq!(view.notice.as_deref(), Some(ENGINE_LOST), "{view:?}");
    assert_eq!(view.error, None, "a lost machine is not the agent's error");

    // Start on one agent starts the machine; the other comes back on its own.
    let started = agents
        .start(first.id)
        .await
        .expect("start brings the machine back");
    assert_eq!(started.status, AgentStatus::Running);
    assert_eq!(fake_calls(&state, "machine start"), starts_before + 1);
    assert!(
        eventually(Duration::from_secs(30), || status_of(&core, &b)
            == Some(AgentStatus::Running))
        .await,
        "the agent that ran when the machine went away starts again: {:?}",
        agents.list()
    );
    assert_eq!(agents.get(first.id).expect("a").notice, None);

    // Again, with Starts of both agents at once: one machine start for both.
    stop_machine_from_outside(&home);
    assert!(
        eventually(Duration::from_secs(5), || agents
            .list()
            .iter()
            .all(|x| x.status == AgentStatus::Stopped))
        .await,
        "within 5 s of the second stop both agents say stopped: {:#?}",
        agents.list()
    );
    let ids: Vec<_> = agents.list().into_iter().map(|x| x.id).collect();
    let before = fake_calls(&state, "machine start");
    let results = futures::future::join_all(ids.iter().map(|id| agents.start(*id))).await;
    for r in results {
        let view = r.expect("start");
        assert_eq!(view.status, AgentStatus::Running, "{view:?}");
    }
    assert_eq!(
        fake_calls(&state, "machine start"),
        before + 1,
        "one machine start"
    );
    let report = core.shutdown().await;
    assert!(report.leftover.is_empty(), "{report:?}");
    let label = std::fs::read_to_string(home.path().join("data/instance-id")).expect("label");
    assert!(running_containers(label.trim()).is_empty());
}

/// Fault: with the machine gone but Clawdock's event stream still up, a failing
/// podman call did not make Clawdock doubt its "ready", and the user read podman's
/// raw socket text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_call_that_finds_the_engine_gone_flips_the_runtime_and_start_recovers() {
    let home = Home::new();
    let (core, state, proxy) = vm_core(&home).await;
    let name = unique("quiet");
    let agents = core.agents();
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    // The machine "stops" without a word: the stream stays, the containers too,
    // and its socket refuses.
    support::edit_fake_state(&state, "state['machines'][0]['Running'] = False");
    proxy.set_refusing(true);
    assert_eq!(
        core.runtime_status().state,
        StateName::Ready,
        "nothing noticed yet"
    );

    match agents.container_logs(agent.id, 5).await {
        Err(e @ AgentError::EngineUnreachable(_)) => {
            assert_eq!(e.to_string(), "Podman's machine is not running.");
            assert!(
                e.details().is_some_and(|d| d.contains("connect")),
                "podman's words stay under the details"
            );
        }
        other => panic!("expected the engine to be unreachable, got {other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            core.runtime_status().state == StateName::Stopped
                && status_of(&core, &name) == Some(AgentStatus::Stopped)
        })
        .await,
        "the first failing call flips the runtime: {:?} {:?}",
        core.runtime_status().state,
        agents.list()
    );
    let before = fake_calls(&state, "machine start");
    proxy.set_refusing(false);
    let started = agents.start(agent.id).await.expect("start recovers");
    assert_eq!(started.status, AgentStatus::Running);
    assert_eq!(fake_calls(&state, "machine start"), before + 1);
    let report = core.shutdown().await;
    assert!(report.leftover.is_empty(), "{report:?}");
}

/// The core's container of `name`, killed from outside as a crash would.
fn kill_container(name: &str) {
    support::podman_out(&["kill", &format!("clawdock-{name}")]);
}

/// Waits (events, not polling) for the agent's next death, within `limit`.
async fn died_within(
    events: &mut tokio::sync::broadcast::Receiver<clawdock_core::events::Event>,
    id: uuid::Uuid,
    limit: Duration,
) -> bool {
    use clawdock_core::events::{Change, Event};
    tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(Event::Agent {
                    agent,
                    change: Some(Change::Died { .. }),
                }) if agent.id == id => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .is_ok()
}

/// Fault (issue 29): in vm mode the first state was announced before the engine's
/// events were followed and its containers listed: a launch answered with what the
/// store last said (a gateway started outside meanwhile shown stopped). The first
/// state now comes once the engine was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_in_vm_mode_announces_its_first_state_once_the_engine_was_read() {
    let home = Home::new();
    let (core, _state, proxy) = vm_core(&home).await;
    let name = unique("read-first");
    let agent = core
        .agents()
        .create_and_wait(req(&name))
        .await
        .expect("create");
    core.shutdown().await;
    drop(core);
    // Started outside while Clawdock was closed.
    support::podman_out(&["start", &format!("clawdock-{name}")]);

    let label = std::fs::read_to_string(home.path().join("data/instance-id")).expect("label");
    let (mut settings, _state) = home.fake_vm(json!({
        "machines": [machine_row(true, false)],
        "api_socket": proxy.path(),
        "vm_label": label.trim(),
    }));
    settings.restore_agents = false;
    let core = Clawdock::start(settings).await.expect("relaunch");
    let view = core.agents().get(agent.id).expect("agent");
    assert!(
        view.status == AgentStatus::Running || view.activity == Some(Activity::Starting),
        "the first state is the engine's, not the store's: {view:?}"
    );
    assert!(
        eventually(Duration::from_secs(20), || status_of(&core, &name)
            == Some(AgentStatus::Running))
        .await
    );
    core.shutdown().await;
}

/// Fault (issue 22, item 5): one failed `podman info` on the check path marked
/// every running agent stopped ("Podman's machine stopped"), and left it not
/// wanted any more, so its later deaths were silent. Lost means confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_probe_is_not_a_lost_engine() {
    let home = Home::new();
    let (core, _state, proxy) = vm_core(&home).await;
    let name = unique("blip");
    let agents = core.agents();
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    let pings = proxy.calls("GET", PING);
    proxy.fault(
        Rule::new(
            "GET",
            PING,
            Fault::fail(500, "injected: the engine did not answer"),
        )
        .once(),
    );
    let runtime = core.check_engine().await;
    assert!(
        proxy.calls("GET", PING) > pings,
        "the check probed the engine"
    );
    assert_eq!(runtime, clawdock_core::machine::RuntimeState::Ready);
    let view = agents.get(agent.id).expect("agent");
    assert_eq!(view.status, AgentStatus::Running, "{view:?}");
    assert_eq!(view.notice, None, "{view:?}");

    // Still wanted: a death is one, not a silent stop.
    let mut events = core.subscribe();
    kill_container(&name);
    assert!(
        died_within(&mut events, agent.id, Duration::from_secs(10)).await,
        "the death after a false alarm is seen as one: {:?}",
        agents.get(agent.id)
    );
    core.shutdown().await;
}

/// Fault (issue 22, item 2): in vm mode, when `podman events` ended while the
/// engine was fine, the watch looked mid-probe, saw "not ready" and waited for a
/// Ready event that never came (the state had not changed): from then on no death
/// was seen. It must follow Podman again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_follows_podman_again_after_its_stream_ends_with_the_engine_fine() {
    let home = Home::new();
    let (core, _state, proxy) = vm_core(&home).await;
    let name = unique("follow");
    let agents = core.agents();
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    // The check's probe outlasts the watch's first look after the stream ends.
    proxy.fault(Rule::new(
        "GET",
        PING,
        Fault::Delay(Duration::from_millis(1500)),
    ));
    let listing = "/v*/libpod/containers/json";
    let (pings, listings) = (proxy.calls("GET", PING), proxy.calls("GET", listing));
    // The event stream ends; the engine is fine.
    proxy.cut_connections();
    // The check that follows the stream's end has probed and listed again.
    assert!(
        eventually(Duration::from_secs(20), || {
            proxy.calls("GET", PING) > pings && proxy.calls("GET", listing) > listings
        })
        .await,
        "the engine was checked after the stream ended: {:#?}",
        proxy.log()
    );
    let mut events = core.subscribe();
    kill_container(&name);
    assert!(
        died_within(&mut events, agent.id, Duration::from_secs(15)).await,
        "a death after the stream ended is seen: {:?}",
        agents.get(agent.id)
    );
    core.shutdown().await;
}
