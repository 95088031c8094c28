//! Quitting in the middle of the machine's life, on the fake podman in vm mode (a
//! real VM cannot run here): a setup in flight ends by its own bounds instead of
//! being killed half-way, and nothing starts the machine again once the shutdown
//! began.

mod support;

use std::time::Duration;

use clawdock_core::agents::AgentError;
use clawdock_core::machine::MachineSpec;
use clawdock_core::Clawdock;
use serde_json::json;
use support::{eventually, fake_calls, fake_state, machine_row, Home};

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
