//! Shared set-up of the core's tests: data folders, settings for real Podman
//! (native) and for the fake podman (vm), the local test images, and clean-up.
#![allow(dead_code)] // each test target uses a different part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Once;
use std::time::Duration;

use clawdock_core::engine::Podman;
use clawdock_core::machine::{MachineTimings, Mode};
use clawdock_core::settings::Settings;
use serde_json::Value;

pub const IMAGE: &str = "localhost/clawdock-test-gateway:latest";
pub const STUBBORN_IMAGE: &str = "localhost/clawdock-test-gateway-stubborn:latest";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Builds the stand-in gateway images once per test process (cached by recipe, so
/// this is quick after the first time).
pub fn ensure_test_images() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let status = std::process::Command::new(repo().join("tests/images/build-test-images.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run build-test-images.sh");
        assert!(status.success(), "building the test images failed");
    });
}

pub fn real_podman() -> Podman {
    let path =
        clawdock_core::engine::locate(None, std::env::var_os("PATH")).expect("podman on PATH");
    Podman::new(Some(path))
}

/// The real podman behind a wrapper that notes each call's arguments, one line per
/// call, in the returned file: to count what Clawdock runs.
pub fn counting_podman(dir: &Path) -> (Podman, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let calls = dir.join("podman-calls.log");
    let wrapper = dir.join("podman-counting");
    let real = real_podman();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            real.bin().expect("podman").display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (Podman::new(Some(wrapper)), calls)
}

/// The stand-in image with one Dockerfile `change` applied, made once.
pub fn derived_image(name: &'static str, change: &str) -> &'static str {
    ensure_test_images();
    images::derive_image(IMAGE, name, change);
    name
}

/// The calls noted by `counting_podman` whose arguments start with `prefix`.
pub fn calls_starting(calls: &Path, prefix: &str) -> usize {
    std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// The real OpenClaw gateway image (tests/images/build-openclaw-image.sh), asserted
/// present.
pub fn gateway_image() -> &'static str {
    const GATEWAY_IMAGE: &str = "localhost/openclaw-gateway:test";
    let exists = std::process::Command::new("podman")
        .args(["image", "exists", GATEWAY_IMAGE])
        .status()
        .expect("podman");
    assert!(
        exists.success(),
        "{GATEWAY_IMAGE} is missing: run tests/images/build-openclaw-image.sh"
    );
    GATEWAY_IMAGE
}

/// A first agent port unlikely to be used by another test running at the same time.
pub fn port_base() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id() as u16;
    21000 + (pid.wrapping_mul(97) % 300) * 100 + (n % 10) * 10
}

/// A data folder that removes this instance's containers when dropped, even when
/// the test failed half-way.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn label(&self) -> Option<String> {
        std::fs::read_to_string(self.path().join("instance-id")).ok()
    }

    /// Settings for real Podman in native mode, with short timeouts.
    pub fn native(&self, image: &str) -> Settings {
        ensure_test_images();
        let mut s = Settings::new(self.path().to_path_buf(), real_podman(), Mode::Native);
        s.agent_image = image.into();
        s.stop_timeout = Duration::from_secs(2);
        s.health_timeout = Duration::from_secs(30);
        s.first_agent_port = port_base();
        s
    }

    /// Settings for the fake podman in vm mode whose machine (running or none)
    /// hands out its API socket behind a proxy the test can break; the state file
    /// and the proxy too.
    pub fn fake_vm_behind_proxy(
        &self,
        machine_running: bool,
    ) -> (Settings, PathBuf, engine_proxy::EngineProxy) {
        let proxy = engine_proxy::EngineProxy::start(
            &self.path().join("proxy.sock"),
            &self.path().join("podman-machine-default-api.sock"),
        )
        .expect("proxy");
        let machines = if machine_running {
            serde_json::json!([machine_row(true, false)])
        } else {
            serde_json::json!([])
        };
        let (settings, state) = self.fake_vm(serde_json::json!({
            "machines": machines,
            "api_socket": proxy.path(),
        }));
        (settings, state, proxy)
    }

    /// Puts this data folder's containers "inside" the fake machine (once the core
    /// made its instance label): a machine stop kills them and ends the streams.
    /// Returns that label.
    pub fn containers_inside_the_machine(&self, state: &Path) -> String {
        let label = std::fs::read_to_string(self.path().join("data/instance-id"))
            .expect("label")
            .trim()
            .to_string();
        edit_fake_state(state, &format!("state['vm_label'] = {label:?}"));
        label
    }

    /// [`Home::native`] talking to the engine through the test's proxy, which the
    /// test breaks or holds at will.
    pub fn native_through(&self, image: &str, engine: &ProxiedEngine) -> Settings {
        let mut s = self.native(image);
        s.engine_socket = Some(engine.proxy.path().to_path_buf());
        s
    }

    /// Settings for the fake podman in vm mode; returns the state file too.
    pub fn fake_vm(&self, state: Value) -> (Settings, PathBuf) {
        let state_path = self.path().join("fake-state.json");
        std::fs::write(
            &state_path,
            serde_json::to_vec_pretty(&state).expect("json"),
        )
        .expect("state");
        // In bin/, as installed: Podman looks for its helpers (krunkit) in
        // `$BINDIR/../libexec/podman` first, and so does Clawdock.
        let wrapper = self.path().join("bin/podman");
        std::fs::create_dir_all(self.path().join("bin")).expect("bin");
        // The state file is per test; the env var must not be process-wide.
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nFAKE_PODMAN_STATE='{}' exec '{}' \"$@\"\n",
                state_path.display(),
                repo().join("tests/fake-podman/podman").display()
            ),
        )
        .expect("wrapper");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let mut s = Settings::new(
            self.path().join("data"),
            Podman::new(Some(wrapper)),
            Mode::Vm,
        );
        s.agent_image = IMAGE.into();
        s.stop_timeout = Duration::from_secs(2);
        s.health_timeout = Duration::from_secs(30);
        s.first_agent_port = port_base();
        s.machine_timings = MachineTimings {
            starting_grace: Duration::from_secs(3),
            ..MachineTimings::default()
        };
        (s, state_path)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        for dir in [self.path().to_path_buf(), self.path().join("data")] {
            if let Ok(label) = std::fs::read_to_string(dir.join("instance-id")) {
                remove_containers(label.trim());
            }
        }
    }
}

pub mod api_client;
pub mod engine_proxy;
pub mod hostile_engine;
pub mod images;
#[allow(unused_imports)] // each test target uses a different part
pub use engine_proxy::ProxiedEngine;
#[allow(unused_imports)] // each test target uses a different part
pub use images::{podman_out, tag_image, untag_image};
pub mod registry;

#[path = "../../../tests/common/instance_containers.rs"]
pub mod instance_containers;

#[path = "../../../tests/common/fake_state.rs"]
mod fake_state;
#[allow(unused_imports)] // each test target uses a different part
pub use fake_state::edit_fake_state;

/// Removes every container of one instance (test hygiene).
pub fn remove_containers(label: &str) {
    instance_containers::remove_all(label);
}

/// Containers of one instance as `(name, state)`, state as in `podman ps` JSON
/// (`running`, `exited`, ...).
pub fn containers(label: &str) -> Vec<(String, String)> {
    instance_containers::rows(label)
        .iter()
        .map(|r| {
            (
                r["Names"][0].as_str().unwrap_or_default().to_string(),
                r["State"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn running_containers(label: &str) -> Vec<String> {
    containers(label)
        .into_iter()
        .filter(|(_, s)| s == "running")
        .map(|(n, _)| n)
        .collect()
}

/// Reads the fake podman's counters.
pub fn fake_calls(state: &Path, step: &str) -> u64 {
    let text = std::fs::read_to_string(state).expect("state");
    let v: Value = serde_json::from_str(&text).expect("state json");
    v["calls"][step].as_u64().unwrap_or(0)
}

pub fn fake_state(state: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state).expect("state")).expect("json")
}

/// Waits until the agent's view is what `what` names (`check`), and gives that
/// view; past `limit`, fails the test with the last view seen. The wait a test
/// names, instead of a sleep that stands for "probably done".
pub async fn until_agent(
    agents: &clawdock_core::agents::Agents,
    id: uuid::Uuid,
    limit: Duration,
    what: &str,
    check: impl Fn(&clawdock_core::view::AgentView) -> bool,
) -> clawdock_core::view::AgentView {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let view = agents.get(id);
        if let Some(view) = view.as_ref().filter(|v| check(v)) {
            return view.clone();
        }
        assert!(
            tokio::time::Instant::now() < end,
            "not {what} within {limit:?}: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pids of the `podman system service` processes listening on `socket`.
pub fn services_on(socket: &Path) -> Vec<u32> {
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

/// Polls a condition (tests only) until it holds or the time is up.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn machine_row(running: bool, starting: bool) -> Value {
    serde_json::json!({
        "Name": "podman-machine-default", "Default": true, "Created": "2026-11-28T10:00:00Z",
        "Running": running, "Starting": starting, "LastUp": "2026-11-28T10:00:00Z", "Stream": "default",
        "VMType": "applehv", "CPUs": 2, "Memory": "2147483648", "DiskSize": "107374182400", "Port": 44035,
        "RemoteUsername": "core", "IdentityPath": "/x", "UserModeNetworking": true
    })
}

/// A podman that writes each argument line to `log`, one per line, then runs the
/// real one: what any local user could read in /proc while it runs.
pub fn recording_podman(dir: &Path, log: &Path) -> clawdock_core::engine::Podman {
    let real = real_podman();
    let wrapper = dir.join("podman-recording");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.bin().expect("podman").display()
        ),
    )
    .expect("wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    clawdock_core::engine::Podman::new(Some(wrapper))
}

/// The podman processes noted by `counting_podman`, but `--version` (what the
/// status reads once).
pub fn podman_processes(calls: &Path) -> Vec<String> {
    std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l != "--version")
        .map(str::to_string)
        .collect()
}
