//! The runtime status clients read (`GET /agents/runtime-status`, the tray), and the
//! setup progress parsed from `podman machine init` output.

use serde::{Deserialize, Serialize};

use crate::machine::{Mode, RuntimeState, SetupStep};
use crate::meta::AGENT_MEMORY_MIB;

/// Setup progress as the wizard shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupProgress {
    pub running: bool,
    pub step: SetupStep,
    /// The last line Podman printed, cleaned of terminal codes.
    pub line: String,
    pub done_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    pub percent: Option<f64>,
    /// Seconds since the setup began.
    pub elapsed_secs: u64,
    pub error: Option<String>,
}

/// What `GET /agents/runtime-status` answers: the replaced runtime's four fields,
/// then Clawdock's own.
/// The runtime's state as one word on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    Unavailable,
    Absent,
    Stopped,
    Starting,
    Ready,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStatus {
    pub available: bool,
    pub machine_initialized: bool,
    pub machine_running: bool,
    pub needs_setup: bool,
    pub state: StateName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub mode: Mode,
    pub podman_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupProgress>,
    /// The Podman machine's memory (vm mode), and what one gateway needs: clients
    /// warn before creating an agent that would not fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_memory_mib: Option<u64>,
    pub agent_memory_mib: u64,
    /// Set when `agents.json` could not be read and was moved aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_warning: Option<String>,
}

impl RuntimeStatus {
    pub fn new(state: &RuntimeState, mode: Mode, podman_version: Option<String>) -> Self {
        let (name, error) = match state {
            RuntimeState::Unavailable => (StateName::Unavailable, None),
            RuntimeState::Absent => (StateName::Absent, None),
            RuntimeState::Stopped => (StateName::Stopped, None),
            RuntimeState::Starting => (StateName::Starting, None),
            RuntimeState::Ready => (StateName::Ready, None),
            RuntimeState::Error { message } => (StateName::Error, Some(message.clone())),
        };
        let available = podman_version.is_some();
        Self {
            available,
            machine_initialized: !matches!(state, RuntimeState::Absent | RuntimeState::Unavailable),
            machine_running: matches!(state, RuntimeState::Ready),
            needs_setup: available && mode == Mode::Vm && matches!(state, RuntimeState::Absent),
            state: name,
            error,
            mode,
            podman_version,
            install_hint: (!available).then(|| crate::podman::install_hint().to_string()),
            setup: None,
            machine_memory_mib: None,
            agent_memory_mib: AGENT_MEMORY_MIB,
            store_warning: None,
        }
    }
}

/// Reads "512.0MiB / 2.1GiB" style counters from a progress line (the number and
/// the unit may stand apart: "12.5 MiB / 45.0 MiB"). Clients get the numbers; they
/// do not parse podman's lines themselves.
pub fn parse_counters(line: &str) -> Option<(u64, u64)> {
    let slash = line.rfind(" / ")?;
    let before: Vec<&str> = line[..slash].split_whitespace().collect();
    let after: Vec<&str> = line[slash + 3..].split_whitespace().collect();
    let done = before
        .last()
        .and_then(|w| parse_size(w))
        .or_else(|| parse_size(&before.get(before.len().checked_sub(2)?..)?.concat()))?;
    let total = after
        .first()
        .and_then(|w| parse_size(w))
        .or_else(|| parse_size(&after.get(..2)?.concat()))?;
    (total > 0 && done <= total).then_some((done, total))
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim_matches(|c: char| c == '(' || c == ')' || c == ',');
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.trim().parse().ok()?;
    let scale: f64 = match unit {
        "B" | "b" => 1.0,
        "KiB" | "kiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((value * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        assert_eq!(
            parse_counters("Copying blob 4f2e [===>   ] 512.0MiB / 2.0GiB | 48.3 MiB/s"),
            Some((512 * 1024 * 1024, 2 * 1024 * 1024 * 1024))
        );
        assert_eq!(
            parse_counters("Extracting compressed file: x.qcow2: 1.00GiB / 2.00GiB"),
            Some((1 << 30, 2 << 30))
        );
        assert_eq!(
            parse_counters("Copying blob sha256:aa 12.5 MiB / 45.0 MiB"),
            Some(((12.5 * 1048576.0) as u64, 45 * 1024 * 1024)),
            "number and unit apart"
        );
        assert_eq!(
            parse_counters("Copying config 1.2kB / 1.2kB"),
            Some((1200, 1200))
        );
        assert_eq!(
            parse_counters("x (3.0MB / 10.0MB)"),
            Some((3_000_000, 10_000_000))
        );
        assert_eq!(parse_counters("Copying blob sha256:8a4c done"), None);
        assert_eq!(
            parse_counters("Trying to pull ghcr.io/openclaw/openclaw:latest..."),
            None
        );
        assert_eq!(parse_counters("a / b"), None);
        assert_eq!(parse_counters("5MiB / 0B"), None, "no total");
        assert_eq!(parse_counters("9MiB / 5MiB"), None, "done past total");
    }

    #[test]
    fn seed_fields_follow_the_state() {
        let s = RuntimeStatus::new(&RuntimeState::Absent, Mode::Vm, Some("5.2.0".into()));
        assert!(s.available && s.needs_setup && !s.machine_initialized && !s.machine_running);
        let s = RuntimeStatus::new(&RuntimeState::Ready, Mode::Native, Some("4.3.1".into()));
        assert!(s.machine_running && s.machine_initialized && !s.needs_setup);
        let s = RuntimeStatus::new(&RuntimeState::Unavailable, Mode::Vm, None);
        assert!(!s.available && s.install_hint.is_some() && !s.needs_setup);
    }
}
