//! Fault suite: the fake podman (setup, runtime start) or a proxy in front of the
//! engine's API socket (create, start, stop, delete) fails, hangs, answers garbage
//! or answers "already exists / running" at each step.
//! Each case must end in a clear error (or a recovery where the answer is benign),
//! state consistent with Podman, no panic, and a retry that works.

mod support;

use std::path::Path;
use std::time::Duration;

use clawdock_core::agents::CreateRequest;
use clawdock_core::engine::Podman;
use clawdock_core::machine::MachineSpec;
use clawdock_core::status::StateName;
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use serde_json::{json, Value};
use support::engine_proxy::{EngineProxy, Fault, Rule};
use support::{containers, running_containers, Home};

const MODES: &[&str] = &["fail", "hang", "garbage", "already"];

/// Sets (or clears) a fault while fake processes may be running: under the fake's
/// own lock, written atomically.
fn set_fault(state: &Path, step: &str, mode: Option<&str>) {
    let fault = match mode {
        // "already" keeps the fake's own Podman wording ("VM already exists").
        Some("already") => json!({ "mode": "already", "times": 1 }),
        Some(m) => {
            json!({ "mode": m, "times": 1, "message": format!("Error: injected {m} at {step}") })
        }
        None => Value::Null,
    };
    let script = format!(
        "import json,os,sys\np={state:?}\ns=json.load(open(p))\nf=s.setdefault('faults',{{}})\nv=json.loads({fault:?})\n\
         f.pop({step:?},None) if v is None else f.__setitem__({step:?},v)\nt=p+'.t'\njson.dump(s,open(t,'w'))\nos.replace(t,p)\n",
        state = state.display().to_string(),
        fault = fault.to_string(),
        step = step,
    );
    let lock = format!("{}.lock", state.display());
    let ok = std::process::Command::new("flock")
        .args([&lock, "python3", "-c", &script])
        .status()
        .expect("flock");
    assert!(ok.success(), "could not set the fault");
}

fn name(tag: &str) -> String {
    format!("f{}-{tag}", std::process::id() % 10_000)
}

/// The request of a container step, as the proxy matches it.
fn request_of(step: &str) -> (&'static str, &'static str) {
    match step {
        "container create" => ("POST", "/v*/libpod/containers/create"),
        "container start" => ("POST", "/v*/libpod/containers/*/start"),
        "container stop" => ("POST", "/v*/libpod/containers/*/stop"),
        "container rm" => ("DELETE", "/v*/libpod/containers/*"),
        other => panic!("no request for {other}"),
    }
}

/// Sets a fault on the engine's API for one request of `step`, as the fake does
/// on the command line: `already` lets the engine do it, then answers what Podman
/// answers when it was already done.
fn set_engine_fault(proxy: &EngineProxy, step: &str, mode: Option<&str>) {
    proxy.clear();
    let Some(mode) = mode else { return };
    let (method, path) = request_of(step);
    let fault = match (mode, step) {
        ("fail", _) => Fault::fail(500, format!("injected fail at {step}")),
        ("hang", _) => Fault::Hang,
        ("garbage", _) => Fault::Garbage,
        ("already", "container create") => Fault::after(Fault::fail(
            500,
            "creating container storage: the container name is already in use by 0123456789abcdef: that name is already in use",
        )),
        ("already", "container rm") => Fault::after(Fault::fail(404, "no such container")),
        // Started or stopped already: Podman's 304.
        ("already", _) => Fault::after(Fault::fail(304, "")),
        (other, _) => panic!("no fault {other}"),
    };
    proxy.fault(Rule::new(method, path, fault).once());
}

/// A core on the fake podman in vm mode with short call timeouts; the machine's
/// API socket is handed out behind a fault-injecting proxy.
async fn vm_core(
    home: &Home,
    machine_running: bool,
) -> (Clawdock, std::path::PathBuf, EngineProxy) {
    let (mut settings, state_path, proxy) = home.fake_vm_behind_proxy(machine_running);
    settings.podman = Podman::new(settings.podman.bin().map(Path::to_path_buf))
        .with_call_timeout(Duration::from_secs(3));
    settings.machine_timings.init = Duration::from_secs(3);
    settings.machine_timings.start = Duration::from_secs(3);
    settings.machine_timings.list = Duration::from_secs(3);
    support::ensure_test_images();
    (
        Clawdock::start(settings).await.expect("core"),
        state_path,
        proxy,
    )
}

fn label(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("data/instance-id"))
        .expect("label")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_faults_end_in_a_clear_error_or_recovery_and_a_retry_works() {
    let spec = MachineSpec {
        cpus: 2,
        memory_mib: 2048,
        disk_gib: 20,
    };
    for step in ["machine init", "machine start"] {
        for mode in MODES {
            let home = Home::new();
            let (core, state, _proxy) = vm_core(&home, false).await;
            set_fault(&state, step, Some(mode));
            core.setup_runtime(spec).expect("setup starts");
            assert!(
                support::eventually(Duration::from_secs(20), || core
                    .runtime_status()
                    .setup
                    .is_some_and(|s| !s.running))
                .await,
                "{step}/{mode}: setup ends"
            );
            let status = core.runtime_status();
            let setup = status.setup.clone().expect("setup");
            match (*mode, step) {
                // "Already exists" / "already running" are answers to build on.
                ("already", _) => {
                    assert_eq!(status.state, StateName::Ready, "{step}/{mode}: {status:?}")
                }
                // Garbage with exit 0 from init/start: the state read after it decides.
                ("garbage", _) => {
                    if status.state != StateName::Ready {
                        assert!(setup.error.is_some(), "{step}/{mode}: {status:?}");
                    }
                }
                _ => {
                    let err = setup
                        .error
                        .clone()
                        .unwrap_or_else(|| panic!("{step}/{mode}: no error: {status:?}"));
                    let wanted = if *mode == "hang" {
                        "did not finish within"
                    } else {
                        "injected"
                    };
                    assert!(err.contains(wanted), "{step}/{mode}: {err}");
                    assert!(err.len() < 300, "a short message: {err}");
                    // Consistent with Podman: an init that failed leaves no machine
                    // and the setup is offered again.
                    if step == "machine init" {
                        assert_eq!(status.state, StateName::Absent, "{step}/{mode}");
                        assert!(status.setup_needed());
                    } else {
                        assert_ne!(status.state, StateName::Ready);
                    }
                }
            }
            // The fault fired once; a retry works.
            core.setup_runtime(spec).expect("retry starts");
            assert!(
                support::eventually(Duration::from_secs(20), || core.runtime_status().state
                    == StateName::Ready)
                .await,
                "{step}/{mode}: retry: {:?}",
                core.runtime_status()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_faults_leave_an_error_no_running_container_and_a_working_retry() {
    let home = Home::new();
    let (core, _state, proxy) = vm_core(&home, true).await;
    let agents = core.agents();
    for step in ["container create", "container start"] {
        for mode in MODES {
            let n = name(&format!("{}-{mode}", step.replace("container ", "")));
            set_engine_fault(&proxy, step, Some(mode));
            let result = agents
                .create_and_wait(CreateRequest {
                    name: n.clone(),
                    ..Default::default()
                })
                .await;
            let agent = agents
                .list()
                .into_iter()
                .find(|a| a.name == n)
                .expect("agent recorded");
            match result {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("Failed to start OpenClaw containers")
                            || msg.contains("did not start"),
                        "{step}/{mode}: {msg}"
                    );
                    assert!(msg.len() < 300, "{step}/{mode}: short: {msg}");
                    assert_eq!(agent.status, AgentStatus::Error, "{step}/{mode}");
                    assert!(
                        !running_containers(&label(&home)).contains(&format!("clawdock-{n}")),
                        "{step}/{mode}: nothing half-alive"
                    );
                    set_engine_fault(&proxy, step, None);
                    let again = agents
                        .start(agent.id)
                        .await
                        .unwrap_or_else(|e| panic!("{step}/{mode}: retry: {e}"));
                    assert_eq!(again.status, AgentStatus::Running);
                }
                // Garbage with a 200 from `start` on a created container is
                // harmless (Clawdock checks the container itself), and an answer
                // lost after the engine did the work is met by finding the work
                // done: the container by its labels, the start by its state.
                Ok(a) => assert!(
                    (*mode == "garbage" || *mode == "already") && a.status == AgentStatus::Running,
                    "{step}/{mode}: {a:?}"
                ),
            }
            agents
                .delete(agent.id)
                .await
                .unwrap_or_else(|e| panic!("{step}/{mode}: delete: {e}"));
        }
    }
    assert!(containers(&label(&home)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_delete_faults_keep_state_consistent_with_podman() {
    let home = Home::new();
    let (core, _state, proxy) = vm_core(&home, true).await;
    let agents = core.agents();
    for (step, op) in [("container stop", "stop"), ("container rm", "delete")] {
        for mode in MODES {
            let n = name(&format!("{op}-{mode}"));
            let agent = agents
                .create_and_wait(CreateRequest {
                    name: n.clone(),
                    ..Default::default()
                })
                .await
                .expect("create");
            set_engine_fault(&proxy, step, Some(mode));
            let result = if op == "stop" {
                agents.stop(agent.id).await.map(|_| ())
            } else {
                agents.delete(agent.id).await
            };
            let running = running_containers(&label(&home)).contains(&format!("clawdock-{n}"));
            match result {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.len() < 300 && !msg.is_empty(), "{step}/{mode}: {msg}");
                    let now = agents
                        .get(agent.id)
                        .expect("still recorded after a failed op");
                    // What Clawdock shows matches what Podman runs.
                    assert_eq!(
                        now.status == AgentStatus::Running,
                        running,
                        "{step}/{mode}: {now:?}"
                    );
                    assert!(now.error.is_some(), "{step}/{mode}: {now:?}");
                    set_engine_fault(&proxy, step, None);
                    // Retry.
                    if op == "stop" {
                        let stopped = agents.stop(agent.id).await.expect("retry stop");
                        assert_eq!(stopped.status, AgentStatus::Stopped);
                    } else {
                        agents.delete(agent.id).await.expect("retry delete");
                    }
                }
                Ok(()) => {
                    // Garbage with exit 0: Clawdock checked Podman itself.
                    if op == "stop" {
                        assert!(!running, "{step}/{mode}: reported stopped but runs");
                        assert_eq!(
                            agents.get(agent.id).expect("agent").status,
                            AgentStatus::Stopped
                        );
                    } else {
                        assert!(agents.get(agent.id).is_none());
                        assert!(
                            !containers(&label(&home))
                                .iter()
                                .any(|(c, _)| c == &format!("clawdock-{n}")),
                            "{step}/{mode}: container left"
                        );
                    }
                }
            }
            set_engine_fault(&proxy, step, None);
            if agents.get(agent.id).is_some() {
                agents.delete(agent.id).await.expect("cleanup delete");
            }
        }
    }
    assert!(containers(&label(&home)).is_empty());
}

/// Fault (issue 29): one failed `GET /info` was kept as this host's traits for
/// the whole session (rootless, SELinux, rootful, cgroup v1 all false): every
/// create after it made a container set up for another host. A failure is not
/// kept: the next create asks again and uses what the engine says (rootful
/// here, so the agent's folder is handed to the gateway's uid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_engine_info_is_not_kept_and_the_next_create_asks_again() {
    use std::os::unix::fs::MetadataExt;
    let home = Home::new();
    let engine = support::ProxiedEngine::start(home.path()).await;
    let settings = home.native_through(support::IMAGE, &engine);
    let agents_dir = settings.agents_dir();
    let core = Clawdock::start(settings).await.expect("core");
    let info = "/v*/libpod/info";
    engine.proxy.fault(
        Rule::new(
            "GET",
            info,
            Fault::fail(500, "injected: the engine's info failed"),
        )
        .once(),
    );
    let first = core.agents().create_and_wait(req(&name("info-a"))).await;
    let second = core
        .agents()
        .create_and_wait(req(&name("info-b")))
        .await
        .expect("the next create works");
    let asked = engine.proxy.calls("GET", info);
    let owner = std::fs::metadata(agents_dir.join(second.id.to_string()).join("config"))
        .expect("the agent's folder")
        .uid();
    core.shutdown().await;
    assert_eq!(
        asked, 2,
        "the next create asked the engine again: {first:?}"
    );
    assert_eq!(
        owner,
        clawdock_core::container_spec::GATEWAY_UID,
        "the real traits (rootful) were used"
    );
}

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}
