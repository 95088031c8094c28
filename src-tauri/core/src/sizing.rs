//! How big things are: the memory a gateway takes, what a Podman machine needs
//! for a number of agents, and the bounds of an agent's limits. Below the state
//! machine, the steps and `/meta`, which all read them.

/// Memory one OpenClaw gateway takes after a chat (measured: 0.75 GB idle, up to
/// 1.3 GB).
pub const GATEWAY_MEMORY_MIB: u64 = 1300;
/// What the machine's own system takes before any agent.
pub const MACHINE_BASE_MIB: u64 = 512;
/// Podman sizes a machine's memory in these steps.
pub const MEMORY_STEP_MIB: u64 = 512;

/// Memory limit of an agent's container when none is given (measured: the gateway
/// takes 0.7 GB idle, up to 1.3 GB after a chat).
pub const DEFAULT_AGENT_MEMORY_MIB: u64 = 2048;
/// Bounds of an agent's memory limit.
pub const AGENT_MEMORY_LIMIT_MIB: std::ops::RangeInclusive<u64> = 256..=65536;
/// An agent's disk limit when none is given: its folders, its container's
/// writable layer and its log together. An agent's notes and memory are small; its
/// tools may fill a workspace (a clone, a download), which is what the limit is
/// for.
pub const DEFAULT_AGENT_DISK_MIB: u64 = 10 * 1024;
/// Bounds of an agent's disk limit.
pub const AGENT_DISK_LIMIT_MIB: std::ops::RangeInclusive<u64> = 256..=4 * 1024 * 1024;
/// The most a container's log file may hold: Podman's `k8s-file` driver otherwise
/// grows it without end (a gateway that prints in a loop fills the disk). Podman
/// keeps the newer half when it passes.
pub const CONTAINER_LOG_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// The smallest CPU limit an agent takes (Podman takes a thousandth; the kernel's
/// CFS a hundredth).
pub const MIN_AGENT_CPUS: f64 = 0.01;

/// What `agents` gateways need, the machine's own system included.
pub fn memory_need_mib(agents: u64) -> u64 {
    MACHINE_BASE_MIB + GATEWAY_MEMORY_MIB * agents
}

/// `mib` rounded up to Podman's machine memory step.
pub fn machine_memory_step_up(mib: u64) -> u64 {
    mib.div_ceil(MEMORY_STEP_MIB) * MEMORY_STEP_MIB
}

/// The machine memory proposed for `agents` gateways: their need rounded up to
/// Podman's step, never below the default size.
pub fn suggested_machine_mib(agents: u64) -> u64 {
    machine_memory_step_up(memory_need_mib(agents)).clamp(
        crate::machine::DEFAULT_MEMORY_MIB,
        *crate::machine::MEMORY_MIB.end(),
    )
}

/// Refuses a memory limit outside [`AGENT_MEMORY_LIMIT_MIB`], in a sentence.
pub fn check_memory_limit(memory_mib: u64) -> Result<(), String> {
    check_mib("memory", &AGENT_MEMORY_LIMIT_MIB, memory_mib)
}

/// Refuses a disk limit outside [`AGENT_DISK_LIMIT_MIB`], in a sentence.
pub fn check_disk_limit(disk_mib: u64) -> Result<(), String> {
    check_mib("disk", &AGENT_DISK_LIMIT_MIB, disk_mib)
}

fn check_mib(what: &str, range: &std::ops::RangeInclusive<u64>, mib: u64) -> Result<(), String> {
    if range.contains(&mib) {
        return Ok(());
    }
    Err(format!(
        "The {what} limit must be between {} and {} MiB, not {mib}.",
        range.start(),
        range.end()
    ))
}

/// Refuses a CPU limit below [`MIN_AGENT_CPUS`] or above the `max` CPUs agents
/// share (`where_`: what has them, for the sentence).
pub fn check_cpu_limit(cpus: f64, max: u32, where_: &str) -> Result<(), String> {
    if cpus.is_finite() && (MIN_AGENT_CPUS..=f64::from(max)).contains(&cpus) {
        return Ok(());
    }
    Err(format!(
        "The CPU limit must be between {MIN_AGENT_CPUS} and {max} CPUs (what {where_} has), not {cpus}."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_bounds_are_refused_in_words() {
        assert_eq!(check_memory_limit(2048), Ok(()));
        assert!(check_memory_limit(255).is_err_and(|e| e.contains("between 256 and 65536")));
        assert_eq!(check_disk_limit(10 * 1024), Ok(()));
        assert!(check_disk_limit(100).is_err_and(|e| e.contains("disk limit")));
        assert_eq!(check_cpu_limit(1.5, 2, "this computer"), Ok(()));
        assert!(check_cpu_limit(0.001, 2, "x").is_err());
        assert!(check_cpu_limit(f64::NAN, 2, "x").is_err());
        assert!(check_cpu_limit(3.0, 2, "Podman's machine")
            .is_err_and(|e| e.contains("what Podman's machine has")));
    }
}
