//! Machine readiness against the fake podman in vm mode (a real VM cannot run on
//! the test machines): single flight, failures not cached, stop resets readiness,
//! "already running / exists" answers recovered, stale `Starting` recovered; and the
//! setup's byte progress, which Podman (and the fake) draws only on a terminal.

mod support;

use std::time::Duration;

use clawdock_core::engine::{Call, LineSink};
use clawdock_core::events::Event;
use clawdock_core::machine::{Machine, MachineSpec, MachineState, Mode, SetupStep};
use clawdock_core::progress::parse_counters;
use clawdock_core::status::SetupProgress;
use clawdock_core::Clawdock;
use serde_json::json;
use support::{fake_calls, fake_state, machine_row, Home};

fn machine(home: &Home, state: serde_json::Value) -> (Machine, std::path::PathBuf) {
    let (settings, state_path) = home.fake_vm(state);
    (
        Machine::new(settings.podman, Mode::Vm, None, settings.machine_timings),
        state_path,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_callers_cause_one_init_and_one_start() {
    // Fault 1 of the replaced runtime: two callers both ran `machine init`.
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({ "delays": { "machine init": 1.0, "machine start": 1.0 } }),
    );
    let calls = (0..100).map(|_| {
        let m = m.clone();
        tokio::spawn(async move { m.ensure_ready().await.map_err(|e| e.to_string()) })
    });
    let outcomes = futures::future::join_all(calls).await;
    for o in outcomes {
        assert_eq!(o.expect("task"), Ok(()));
    }
    assert_eq!(fake_calls(&state, "machine init"), 1);
    assert_eq!(fake_calls(&state, "machine start"), 1);
    assert!(m.is_ready() && m.started_by_us());
    let args = fake_state(&state)["last_init_args"].clone();
    let recommended = MachineSpec::recommended();
    assert!(
        args.as_array()
            .expect("args")
            .contains(&json!(recommended.memory_mib.to_string())),
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_reaches_every_waiter_and_is_not_cached() {
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({
            "delays": { "machine init": 0.5 },
            "faults": { "machine init": { "mode": "fail", "times": 1, "message": "Error: download failed: no network" } }
        }),
    );
    let calls = (0..20).map(|_| {
        let m = m.clone();
        tokio::spawn(async move { m.ensure_ready().await.map_err(|e| e.to_string()) })
    });
    let outcomes = futures::future::join_all(calls).await;
    for o in outcomes {
        let err = o.expect("task").expect_err("init fails");
        assert!(err.contains("download failed: no network"), "{err}");
    }
    assert_eq!(fake_calls(&state, "machine init"), 1);
    assert!(!m.is_ready());
    // The next call tries again and succeeds.
    m.ensure_ready().await.expect("second attempt");
    assert_eq!(fake_calls(&state, "machine init"), 2);
    assert_eq!(fake_calls(&state, "machine start"), 1);
}

#[tokio::test]
async fn stop_resets_readiness_so_the_next_call_starts_again() {
    // Fault 4 of the replaced runtime: the ready flag stayed true after a stop.
    let home = Home::new();
    let (m, state) = machine(&home, json!({ "machines": [machine_row(false, false)] }));
    m.ensure_ready().await.expect("ready");
    assert_eq!(fake_calls(&state, "machine start"), 1);
    m.ensure_ready().await.expect("still ready");
    assert_eq!(
        fake_calls(&state, "machine start"),
        1,
        "no second start while ready"
    );
    m.stop().await.expect("stop");
    assert!(!m.is_ready());
    assert_eq!(m.state().await.expect("state"), MachineState::Stopped);
    m.ensure_ready().await.expect("ready again");
    assert_eq!(fake_calls(&state, "machine start"), 2);
}

#[tokio::test]
async fn already_running_during_start_is_recovered() {
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({
            "machines": [machine_row(false, false)],
            "faults": { "machine start": { "mode": "already", "times": 1 } }
        }),
    );
    m.ensure_ready().await.expect("already running is fine");
    assert_eq!(fake_calls(&state, "machine start"), 1);
    assert!(m.is_ready());
    // Someone else started it: it is not ours to stop at exit.
    assert!(!m.started_by_us());
}

#[tokio::test]
async fn already_exists_during_init_continues() {
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({ "faults": { "machine init": { "mode": "already", "times": 1 } } }),
    );
    m.setup(MachineSpec {
        cpus: 2,
        memory_mib: 2048,
        disk_gib: 20,
    })
    .await
    .expect("continues");
    assert_eq!(fake_calls(&state, "machine init"), 1);
    assert_eq!(fake_calls(&state, "machine start"), 1);
    assert_eq!(m.state().await.expect("state"), MachineState::Running);
}

#[tokio::test]
async fn a_stale_starting_flag_is_cleared_and_the_machine_started() {
    let home = Home::new();
    let (m, state) = machine(&home, json!({ "machines": [machine_row(false, true)] }));
    assert_eq!(m.state().await.expect("state"), MachineState::Starting);
    m.ensure_ready().await.expect("recovers");
    assert!(
        fake_calls(&state, "machine stop") >= 1,
        "the stale flag was cleared by a stop"
    );
    assert_eq!(m.state().await.expect("state"), MachineState::Running);
}

#[tokio::test]
async fn garbage_from_machine_list_is_an_error_not_absent() {
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({ "machines": [machine_row(true, false)], "faults": { "machine list": { "mode": "garbage", "times": 1 } } }),
    );
    let err = m.ensure_ready().await.expect_err("garbage");
    assert!(err.to_string().contains("could not be read"), "{err}");
    assert_eq!(
        fake_calls(&state, "machine init"),
        0,
        "garbage never leads to an init"
    );
    m.ensure_ready().await.expect("next call works");
}

#[tokio::test]
async fn a_hanging_start_times_out_with_a_clear_error() {
    let home = Home::new();
    let (mut settings, _state) = home.fake_vm(json!({
        "machines": [machine_row(false, false)],
        "faults": { "machine start": { "mode": "hang", "times": 1 } }
    }));
    settings.machine_timings.start = Duration::from_secs(1);
    let m = Machine::new(settings.podman, Mode::Vm, None, settings.machine_timings);
    let err = m.ensure_ready().await.expect_err("hangs");
    assert!(err.to_string().contains("did not finish within"), "{err}");
    m.ensure_ready().await.expect("retry works");
}

#[tokio::test]
async fn init_reports_progress_lines() {
    let home = Home::new();
    let (m, _state) = machine(&home, json!({}));
    let mut events = m.subscribe();
    m.setup(MachineSpec {
        cpus: 1,
        memory_mib: 2048,
        disk_gib: 20,
    })
    .await
    .expect("setup");
    let mut lines = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let clawdock_core::machine::MachineEvent::Progress { line, .. } = e {
            lines.push(line);
        }
    }
    assert!(
        lines.iter().any(|l| parse_counters(l).is_some()),
        "byte counters arrive: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("started successfully")),
        "{lines:?}"
    );
}

fn collecting() -> (std::sync::Arc<std::sync::Mutex<Vec<String>>>, LineSink) {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    (
        lines,
        std::sync::Arc::new(move |_, line: &str| sink.lock().expect("lock").push(line.to_string())),
    )
}

#[tokio::test]
async fn the_fake_draws_byte_counters_only_on_a_terminal() {
    let home = Home::new();
    let (settings, _state) = home.fake_vm(json!({}));
    let counted = |lines: &[String]| lines.iter().filter(|l| parse_counters(l).is_some()).count();

    let (piped, sink) = collecting();
    settings
        .podman
        .run(Call::new(["machine", "init", "piped"]).on_line(sink))
        .await
        .expect("init on pipes");
    let piped = piped.lock().expect("lock").clone();
    assert!(
        piped.iter().any(|l| l.starts_with("Copying blob sha256:")),
        "{piped:?}"
    );
    assert_eq!(counted(&piped), 0, "no bytes on a pipe: {piped:?}");

    let (drawn, sink) = collecting();
    settings
        .podman
        .run(
            Call::new(["machine", "init", "drawn"])
                .on_terminal()
                .on_line(sink),
        )
        .await
        .expect("init on a terminal");
    let drawn = drawn.lock().expect("lock").clone();
    assert!(
        drawn.contains(&"Copying blob 8a4c2e7d1f3b [=========>----------------------------] 512.0MiB / 2.0GiB | 48.3 MiB/s".to_string()),
        "bars arrive cleaned of terminal codes: {drawn:?}"
    );
    assert!(
        counted(&drawn) >= 10,
        "every redraw of both bars: {drawn:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_gets_percent_and_bytes_of_the_download_from_a_terminal() {
    let home = Home::new();
    let (settings, _state) = home.fake_vm(json!({ "delays": { "machine init": 1.0 } }));
    let core = Clawdock::start(settings).await.expect("core");
    let mut events = core.subscribe();
    core.setup_runtime(MachineSpec {
        cpus: 1,
        memory_mib: 2048,
        disk_gib: 20,
    })
    .expect("setup starts");
    let mut seen: Vec<SetupProgress> = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(Event::Runtime { status }) => {
                    if let Some(setup) = status.setup {
                        let running = setup.running;
                        seen.push(setup);
                        if !running {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the setup ends");
    let last = seen.last().expect("progress");
    assert_eq!(last.error, None);
    let downloading: Vec<&SetupProgress> = seen
        .iter()
        .filter(|p| p.step == SetupStep::Init && p.line.starts_with("Copying"))
        .collect();
    // Both blobs summed: 2.0 GiB and 100.0 MiB.
    let both = (2 << 30) + 100 * (1 << 20);
    assert!(
        downloading.iter().any(|p| p.total_bytes == Some(both)
            && p.done_bytes == Some(both)
            && p.percent == Some(100.0)),
        "the download reaches 100% of both blobs: {downloading:?}"
    );
    assert!(
        downloading
            .iter()
            .all(|p| p.percent.is_some_and(|pc| (0.0..=100.0).contains(&pc))),
        "every download line has a percent: {downloading:?}"
    );
    assert!(
        seen.iter().any(|p| p.line.starts_with("Extracting")
            && p.done_bytes == Some(0)
            && p.total_bytes == parse_counters("0.0b / 2.1GiB").map(|(_, total)| total)),
        "the unpacking counts on its own, from zero: {seen:?}"
    );
}

/// Podman 6 on Apple silicon: libkrun is the default provider, and krunkit, the
/// program that runs its VM, is not in Homebrew's core, so `machine start` of a new
/// machine failed (`exec: "krunkit": executable file not found in $PATH`). Without
/// krunkit the wizard makes the machine with Apple's hypervisor (applehv).
#[tokio::test]
async fn podman_6_without_krunkit_sets_up_the_machine_with_applehv() {
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({ "version": "6.0.0", "provider": "libkrun", "krunkit_installed": false }),
    );
    m.setup(MachineSpec::recommended())
        .await
        .expect("the machine is set up and started");
    let args = fake_state(&state)["last_init_args"].clone();
    let args: Vec<&str> = args
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--provider", "applehv"]),
        "{args:?}"
    );
    assert_eq!(m.state().await.expect("state"), MachineState::Running);
}

/// With krunkit installed where Podman looks for it (`$BINDIR/../libexec/podman`),
/// Podman's own default stands.
#[tokio::test]
async fn with_krunkit_installed_podman_keeps_its_default_provider() {
    let home = Home::new();
    let (m, state) = machine(
        &home,
        json!({ "version": "6.0.0", "provider": "libkrun", "krunkit_installed": true }),
    );
    let helpers = home.path().join("libexec/podman");
    std::fs::create_dir_all(&helpers).expect("helpers");
    let krunkit = helpers.join("krunkit");
    std::fs::write(&krunkit, "#!/bin/sh\n").expect("krunkit");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&krunkit, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    m.setup(MachineSpec::recommended()).await.expect("set up");
    let args = fake_state(&state)["last_init_args"].to_string();
    assert!(!args.contains("--provider"), "{args}");
    assert_eq!(
        fake_state(&state)["machines"][0]["VMType"],
        json!("libkrun")
    );
}

/// A libkrun machine made before (by Podman itself) whose krunkit is missing: the
/// start's error says what to install, or how to get an applehv machine instead.
#[tokio::test]
async fn a_libkrun_machine_without_krunkit_says_what_to_install() {
    let home = Home::new();
    let mut row = machine_row(false, false);
    row["VMType"] = json!("libkrun");
    let (m, _state) = machine(
        &home,
        json!({ "version": "6.0.0", "provider": "libkrun", "machines": [row] }),
    );
    let err = m.ensure_ready().await.expect_err("no krunkit").to_string();
    assert!(err.contains("brew install krunkit"), "{err}");
    assert!(err.contains("applehv"), "{err}");
}
