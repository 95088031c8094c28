//! What cgroup v1 says of an agent's memory: Podman's `OOMKilled` stays false on
//! such hosts, so each agent's container gets a cgroup parent of its own whose
//! memory peak outlives the container, read after a death.

use uuid::Uuid;

/// Where cgroup v1's memory controller is mounted.
const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// Whether cgroup v1's memory controller is there to read peaks from.
pub fn memory_controller_mounted() -> bool {
    std::path::Path::new(CGROUP_V1_MEMORY).is_dir()
}

/// The cgroup parent of an agent's container on cgroup v1 hosts: it stays when
/// the container's own cgroup goes with it, so its memory peak can be read after
/// a death.
pub fn cgroup_parent(agent: Uuid) -> String {
    format!("/clawdock/{}", agent.simple())
}

/// On cgroup v1 hosts, whether the agent's container used its whole memory limit
/// since its last launch (the peak of its cgroup parent, within 1 MiB of the
/// limit): a SIGKILL then was the memory limit's. `None` where it cannot tell.
pub fn memory_peak_reached(agent: Uuid, limit_mib: u64) -> Option<bool> {
    let path = format!(
        "{CGROUP_V1_MEMORY}{}/memory.max_usage_in_bytes",
        cgroup_parent(agent)
    );
    let peak: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Some(peak + 1024 * 1024 >= limit_mib * 1024 * 1024)
}

/// Forgets the agent's memory peak before a launch (cgroup v1 hosts), so a peak
/// read after a death is this run's.
pub fn reset_memory_peak(agent: Uuid) {
    let path = format!(
        "{CGROUP_V1_MEMORY}{}/memory.max_usage_in_bytes",
        cgroup_parent(agent)
    );
    if let Err(e) = std::fs::write(&path, b"0") {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::debug!(path, error = %e, "could not reset the memory peak");
        }
    }
}

/// Removes the agent's cgroup parent from every v1 hierarchy (after its delete).
pub fn remove_cgroup_parent(agent: Uuid) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let dir = h.path().join(cgroup_parent(agent).trim_start_matches('/'));
        if dir.is_dir() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::debug!(dir = %dir.display(), error = %e, "could not remove a cgroup parent");
            }
        }
    }
}
