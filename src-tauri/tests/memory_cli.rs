//! Issue 32 from the command line, as a new user meets it: a create with no
//! registry in reach says its failure once, with the command to try again (not
//! the window's "press Start"); `agents backup` writes a file only its owner
//! reads and `agents restore` makes the agent again, saying what it restored;
//! `doctor` and its bundle; shell completions.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{clawdock, Home, Serve, IMAGE};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn port_base(slot: u16) -> String {
    (28000 + (std::process::id() % 50) as u16 * 20 + slot * 5).to_string()
}

fn tagged(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

/// Issue 32, item 5: `clawdock agents create helper` with no registry in reach
/// printed its advice twice and told the user to "press Start".
#[test]
fn a_failed_create_is_said_once_with_the_command_to_try_again() {
    common::ensure_images();
    let home = Home::new();
    let base = port_base(0);
    let _serve = Serve::start_with(
        home.path(),
        &[
            (
                "CLAWDOCK_AGENT_IMAGE",
                "clawdock-test.invalid/openclaw/openclaw:latest",
            ),
            ("CLAWDOCK_PORT_BASE", base.as_str()),
        ],
    );
    let name = tagged("helper");
    let out = clawdock(home.path(), &["agents", "create", &name]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert_eq!(
        said.matches("could not reach clawdock-test.invalid")
            .count(),
        1,
        "the failure once: {said}"
    );
    assert!(
        said.contains(&format!("clawdock agents start {name}")),
        "a terminal's words: {said}"
    );
    assert!(!said.to_lowercase().contains("press start"), "{said}");
}

#[test]
fn backup_and_restore_from_the_command_line() {
    common::ensure_images();
    let home = Home::new();
    let base = port_base(1);
    let _serve = Serve::start_with(
        home.path(),
        &[
            ("CLAWDOCK_AGENT_IMAGE", IMAGE),
            ("CLAWDOCK_PORT_BASE", base.as_str()),
        ],
    );
    let name = tagged("saved");
    let out = clawdock(home.path(), &["agents", "create", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let files = tempfile::tempdir().expect("tmp");
    let file = files.path().join("saved.tar.gz");
    let file_arg = file.to_str().expect("utf-8");
    let out = clawdock(home.path(), &["agents", "backup", &name, "-o", file_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("It holds the provider key"),
        "{}",
        text(&out)
    );
    let mode = std::fs::metadata(&file)
        .expect("backup")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "a backup holds the key");
    let again = clawdock(home.path(), &["agents", "backup", &name, "-o", file_arg]);
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );

    let taken = clawdock(home.path(), &["agents", "restore", file_arg]);
    assert!(!taken.status.success());
    assert_eq!(
        text(&taken).matches("--name NEW").count(),
        1,
        "{}",
        text(&taken)
    );
    let copy = tagged("copy");
    let out = clawdock(
        home.path(),
        &["agents", "restore", file_arg, "--name", &copy],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("Restored {copy} from the backup of {name}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("Restored {copy} (running")),
        "{said}"
    );
    let out = clawdock(home.path(), &["agents", "snapshots", &copy]);
    assert!(text(&out).contains("no snapshots yet"), "{}", text(&out));
    for agent in [&name, &copy] {
        let out = clawdock(home.path(), &["agents", "rm", agent]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

#[test]
fn doctor_and_its_bundle_need_no_instance() {
    let home = tempfile::tempdir().expect("tmp");
    let out = clawdock(home.path(), &["doctor", "--json"]);
    let findings: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("findings as JSON");
    let checks: Vec<&str> = findings
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["check"].as_str())
        .collect();
    for wanted in [
        "podman", "engine", "machine", "cgroups", "rootless", "disk", "clock", "proxy", "api",
    ] {
        assert!(checks.contains(&wanted), "{wanted}: {checks:?}");
    }
    let bundle = home.path().join("support.tar.gz");
    let out = clawdock(
        home.path(),
        &["doctor", "--bundle", bundle.to_str().expect("utf-8")],
    );
    assert!(
        text(&out).contains("Wrote the support bundle"),
        "{}",
        text(&out)
    );
    let mode = std::fs::metadata(&bundle)
        .expect("bundle")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(Path::new(&bundle).exists());
}

#[test]
fn completions_for_each_shell() {
    let home = tempfile::tempdir().expect("tmp");
    for shell in ["bash", "zsh", "fish"] {
        let out = clawdock(home.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["doctor", "backup", "restore", "chat"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
}
