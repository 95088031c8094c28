//! `clawdock serve` and the CLI end to end: the real binary, real Podman, a temp
//! data folder; SIGTERM runs the shutdown routine and the process exits 0.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, BIN};

fn clawdock(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("CLAWDOCK_HOME", home)
        .output()
        .expect("run clawdock")
}

fn labelled_running(home: &Path) -> Vec<String> {
    let label = std::fs::read_to_string(home.join("instance-id")).expect("instance id");
    let out = Command::new("podman")
        .args([
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=io.clawdock.home={}", label.trim()),
        ])
        .output()
        .expect("podman ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn cli_without_an_instance_says_so() {
    let home = tempfile::tempdir().expect("tmp");
    let out = clawdock(home.path(), &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Clawdock is not running"), "{err}");
    let help = Command::new(BIN).arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&help.stdout);
    for var in [
        "CLAWDOCK_HOME",
        "CLAWDOCK_PODMAN",
        "CLAWDOCK_MACHINE_MODE",
        "CLAWDOCK_AGENT_IMAGE",
        "CLAWDOCK_STOP_TIMEOUT",
    ] {
        assert!(text.contains(var), "--help lists {var}");
    }
}

#[test]
fn serve_with_two_agents_then_sigterm_leaves_nothing_running() {
    common::ensure_images();
    let home = tempfile::tempdir().expect("tmp");
    let port_base = 24000 + (std::process::id() % 100) as u16 * 10;
    let mut server = Command::new(BIN)
        .args(["serve", "--port", "0"])
        .env("CLAWDOCK_HOME", home.path())
        .env(
            "CLAWDOCK_AGENT_IMAGE",
            "localhost/clawdock-test-gateway:latest",
        )
        .env("CLAWDOCK_STOP_TIMEOUT", "2")
        .env("CLAWDOCK_PORT_BASE", port_base.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve");
    let api_file = home.path().join("api.json");
    assert!(
        wait_for(Duration::from_secs(20), || api_file.exists()),
        "api.json appears"
    );

    for name in ["cli-a", "cli-b"] {
        let out = clawdock(home.path(), &["agents", "create", name]);
        assert!(
            out.status.success(),
            "create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("Created {name} (running")), "{text}");
    }
    let out = clawdock(home.path(), &["agents", "list", "--json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["cli-a", "cli-b"]);
    assert!(list
        .as_array()
        .expect("array")
        .iter()
        .all(|a| a["status"] == "running" && a.get("token").is_none()));
    let table = clawdock(home.path(), &["agents"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with("NAME") && table.contains("cli-b") && table.contains("running"),
        "{table}"
    );
    let status = clawdock(home.path(), &["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("2 running"));
    let logs = clawdock(home.path(), &["agents", "logs", "cli-a"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("OpenClaw gateway is ready"));
    let stop = clawdock(home.path(), &["agents", "stop", "cli-b"]);
    assert!(stop.status.success());
    let start = clawdock(home.path(), &["agents", "start", "cli-b"]);
    assert!(String::from_utf8_lossy(&start.stdout).contains("Started cli-b (running"));
    assert_eq!(labelled_running(home.path()).len(), 2);

    let pid = server.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let began = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(40),
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        labelled_running(home.path()).is_empty(),
        "no agent container runs after exit"
    );
    assert!(!api_file.exists(), "api.json is removed on clean exit");

    // Clean up the stopped containers: delete through a fresh instance.
    let mut again = Command::new(BIN)
        .args(["serve", "--port", "0"])
        .env("CLAWDOCK_HOME", home.path())
        .env("CLAWDOCK_RESTORE_AGENTS", "0")
        .stdout(Stdio::null())
        .spawn()
        .expect("serve again");
    assert!(wait_for(Duration::from_secs(20), || api_file.exists()));
    for name in ["cli-a", "cli-b"] {
        let out = clawdock(home.path(), &["agents", "rm", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("podman")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=io.clawdock.agent",
            "--filter",
            &format!(
                "label=io.clawdock.home={}",
                std::fs::read_to_string(home.path().join("instance-id"))
                    .expect("id")
                    .trim()
            ),
        ])
        .output()
        .expect("ps");
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let sent = Command::new("kill")
        .args(["-TERM", &again.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    assert_eq!(again.wait().expect("wait").code(), Some(0));
}
