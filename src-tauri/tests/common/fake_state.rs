//! Editing the fake podman's state file from a test while fake processes run,
//! shared by both crates' tests.

use std::path::Path;

/// Edits the fake podman's state the way the fake itself does (under its lock,
/// atomically), while fake processes run: `code` is Python acting on `state`.
pub fn edit_fake_state(state: &Path, code: &str) {
    let script = format!(
        r#"
import fcntl, json, os, sys
path = sys.argv[1]
with open(path + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(path) as f:
        state = json.load(f)
{}
    with open(path + ".tmp-edit", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp-edit", path)
"#,
        code.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(state)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "editing the fake's state failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
