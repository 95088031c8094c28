//! Quitting in the middle of the machine's life, on the fake podman in vm mode (a
//! real VM cannot run here): a setup in flight ends by its own bounds instead of
//! being killed half-way, nothing starts the machine again once the shutdown
//! began, and the stop at quit goes to the engine Clawdock uses. Natively, on
//! real Podman: an engine that cannot be reached at quit is not a clean exit.

mod support;

use std::time::Duration;

use clawdock_core::agents::AgentError;
use clawdock_core::machine::MachineSpec;
use clawdock_core::Clawdock;
use serde_json::json;
use support::engine_proxy::EngineProxy;
use support::{eventually, fake_calls, fake_state, machine_row, running_containers, Home};

fn req(name: &str) -> clawdock_core::agents::CreateRequest {
    clawdock_core::agents::CreateRequest {
        name: name.into(),
        ..Default::default()
    }
}

fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

/// The containers of `label` as `(name, state, exit code)`.
fn exits(label: &str) -> Vec<(String, String, i64)> {
    support::instance_containers::rows(label)
        .iter()
        .map(|r| {
            (
                r["Names"][0].as_str().unwrap_or_default().to_string(),
                r["State"].as_str().unwrap_or_default().to_string(),
                r["ExitCode"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Fault: the readiness attempt ran on an untracked task; a quit during the
/// wizard returned while `machine init` still ran, and the end of the process
/// dropped it half-way, leaving a broken machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_during_the_setup_lets_the_machine_init_finish() {
    let home = Home::new();
    // Longer than the routine waits for operations (stop timeout + 5 s).
    let (mut settings, state) = home.fake_vm(json!({ "delays": { "machine init": 10 } }));
    settings.stop_timeout = Duration::from_secs(1);
    let core = Clawdock::start(settings).await.expect("core");
    core.setup_runtime(MachineSpec {
        cpus: 2,
        memory_mib: 2048,
        disk_gib: 20,
    })
    .expect("setup begins");
    assert!(
        eventually(Duration::from_secs(10), || fake_calls(
            &state,
            "machine init"
        ) == 1)
        .await,
        "machine init never ran"
    );

    let report = core.shutdown().await;

    let machines = fake_state(&state)["machines"].clone();
    assert_eq!(
        machines.as_array().map(Vec::len),
        Some(1),
        "init ran to its end before the shutdown returned: {machines}"
    );
    assert_eq!(
        machines[0]["Running"], false,
        "the machine Clawdock started for the setup is stopped again: {machines}"
    );
    assert!(report.machine_stopped, "{report:?}");
}

/// Fault: `POST /runtime/start` (and the tray's Start Podman) during the shutdown
/// started the machine the routine had just stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_runtime_start_once_the_shutdown_began() {
    let home = Home::new();
    let (settings, state) = home.fake_vm(json!({ "machines": [machine_row(false, false)] }));
    let core = Clawdock::start(settings).await.expect("core");
    core.start_runtime()
        .await
        .expect("Clawdock starts the machine");
    let report = core.shutdown().await;
    assert!(report.machine_stopped, "{report:?}");

    let again = core.start_runtime().await;

    assert!(
        matches!(again, Err(AgentError::ShuttingDown)),
        "refused: {again:?}"
    );
    assert_eq!(fake_calls(&state, "machine start"), 1);
    assert_eq!(fake_state(&state)["machines"][0]["Running"], false);
}

/// Fault (issue 29): the quit's mass stop was one `podman stop --filter ...` on
/// the command line, which goes to podman's default connection, not to the
/// engine Clawdock uses. With `CLAWDOCK_MACHINE_NAME` naming a machine other than
/// the default (which is down), that stop reached nothing ("Cannot connect"), and
/// the agents were SIGKILLed by the forced phase. The stop at quit now goes to the
/// engine Clawdock uses: the gateway is stopped, not killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_at_quit_reaches_the_engine_clawdock_uses() {
    let home = Home::new();
    let proxy = EngineProxy::start(
        &home.path().join("proxy.sock"),
        &home.path().join("work-api.sock"),
    )
    .expect("proxy");
    let mut work = machine_row(true, false);
    work["Name"] = json!("work");
    work["Default"] = json!(false);
    work["Port"] = json!(44036);
    let (mut settings, state) = home.fake_vm(json!({
        "machines": [machine_row(false, false), work],
        "api_socket": proxy.path(),
    }));
    settings.machine_name = Some("work".into());
    let core = Clawdock::start(settings).await.expect("core");
    core.agents()
        .create_and_wait(req(&unique("named-vm")))
        .await
        .expect("create");
    let label = std::fs::read_to_string(home.path().join("data/instance-id")).expect("label");

    let report = core.shutdown().await;

    let stops = proxy.calls("POST", "/v*/libpod/containers/*/stop");
    assert!(
        stops >= 1,
        "no stop reached the engine in use: {:#?}",
        proxy.log()
    );
    assert_eq!(
        fake_calls(&state, "container stop"),
        0,
        "no stop went to podman's default connection"
    );
    assert_eq!(report.killed, 0, "stopped, not killed: {report:?}");
    let left = exits(label.trim());
    assert!(
        left.iter()
            .all(|(_, state, code)| state == "exited" && *code != 137),
        "{left:?}"
    );
    assert!(report.clean(), "{report:?}");
}

/// Fault (issue 29): natively, containers live on under conmon while the engine
/// is away; a quit that could not reach the engine said "clean" (exit 0) with
/// the agents still running. Now they are named as not known to be stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_unreachable_at_quit_is_not_a_clean_exit_natively() {
    let home = Home::new();
    let engine = support::ProxiedEngine::start(home.path()).await;
    let settings = home.native_through(support::IMAGE, &engine);
    let core = Clawdock::start(settings).await.expect("core");
    let name = unique("unreached");
    core.agents()
        .create_and_wait(req(&name))
        .await
        .expect("create");
    let label = home.label().expect("label");
    engine.proxy.set_refusing(true);
    engine.proxy.cut_connections();

    let report = core.shutdown().await;

    assert!(
        !report.clean(),
        "an unreachable engine is no clean exit: {report:?}"
    );
    assert!(
        report.leftover.iter().any(|l| l.contains(&name)),
        "the agent's container is named: {report:?}"
    );
    assert_eq!(
        running_containers(&label).len(),
        1,
        "and it does run on: nothing else stopped it"
    );
}

/// Natively the engine service Clawdock owns is started again at quit when it is
/// gone, so the agents are stopped, not left to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owned_service_gone_at_quit_is_started_again_to_stop_the_agents() {
    let home = Home::new();
    let mut settings = home.native(support::IMAGE);
    settings.user_engine_socket = None;
    let socket = clawdock_core::engine::socket::owned_socket(&settings.home);
    let core = Clawdock::start(settings).await.expect("core");
    core.agents()
        .create_and_wait(req(&unique("revived")))
        .await
        .expect("create");
    let label = home.label().expect("label");
    let service = support::services_on(&socket);
    assert_eq!(service.len(), 1, "the owned service runs: {service:?}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &service[0].to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());

    let report = core.shutdown().await;

    assert!(report.clean(), "{report:?}");
    let left = exits(label.trim());
    assert!(
        left.iter()
            .all(|(_, state, code)| state == "exited" && *code != 137),
        "stopped by the quit, not left or killed: {left:?}"
    );
}

/// In vm mode an engine that cannot be reached at quit is a machine that is
/// down, its containers with it: the exit stays clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_down_at_quit_is_a_clean_exit() {
    let home = Home::new();
    let (settings, state, _proxy) = home.fake_vm_behind_proxy(true);
    let core = Clawdock::start(settings).await.expect("core");
    let label = home.containers_inside_the_machine(&state);
    core.agents()
        .create_and_wait(req(&unique("vm-down")))
        .await
        .expect("create");
    let stopped = std::process::Command::new(home.path().join("bin/podman"))
        .args(["machine", "stop"])
        .output()
        .expect("podman machine stop");
    assert!(stopped.status.success());

    let report = core.shutdown().await;

    assert!(report.clean(), "{report:?}");
    assert!(running_containers(&label).is_empty());
}

/// Fault (issue 29): the panic hook's last-resort stop was a podman command line,
/// which goes to podman's default connection. It now goes to the engine Clawdock
/// uses, from a thread with no async runtime as the hook's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_hooks_stop_reaches_the_engine_clawdock_uses() {
    let home = Home::new();
    support::ensure_test_images();
    let engine = support::ProxiedEngine::start(home.path()).await;
    let label = format!("panic-{}", uuid::Uuid::new_v4().simple());
    let name = format!("clawdock-{label}");
    support::podman_out(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("io.clawdock.home={label}"),
        support::IMAGE,
    ]);
    let client = clawdock_core::engine::client::EngineClient::new(Duration::from_secs(30));
    client.set_endpoint(Some(engine.proxy.path().to_path_buf()));
    let containers = clawdock_core::containers::Containers::new(client, label.clone());

    let asked = tokio::task::spawn_blocking(move || {
        containers.stop_all_blocking(Duration::from_secs(5), Duration::from_secs(20))
    })
    .await
    .expect("thread");

    let left = exits(&label);
    support::remove_containers(&label);
    assert_eq!(asked, 1);
    assert_eq!(engine.calls("POST", "/containers/*/stop"), 1);
    assert!(
        left.iter()
            .all(|(_, state, code)| state == "exited" && *code != 137),
        "{left:?}"
    );
}
