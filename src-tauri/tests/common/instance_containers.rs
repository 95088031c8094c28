//! The containers of one Clawdock instance (by its `io.clawdock.home` label), as the
//! tests of both crates check and clean them. Included by path from the core's tests.

use std::process::Command;

use serde_json::Value;

/// `podman ps -a --format json` rows of the instance's containers.
pub fn rows(label: &str) -> Vec<Value> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--format",
            "json",
            "--filter",
            &format!("label=io.clawdock.home={label}"),
        ])
        .output()
        .expect("podman ps");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Removes every container of the instance (test hygiene, also after a failure).
pub fn remove_all(label: &str) {
    let ids: Vec<String> = rows(label)
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect();
    if !ids.is_empty() {
        let _removed = Command::new("podman")
            .args(["rm", "-f", "-t", "0"])
            .args(&ids)
            .output();
    }
}
