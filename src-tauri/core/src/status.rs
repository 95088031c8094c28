//! The runtime status clients read (`GET /agents/runtime-status`, the tray), and the
//! setup progress of `podman machine init` and `start` (read by
//! [`crate::progress`]).

use serde::{Deserialize, Serialize};

use crate::machine::{Mode, RuntimeState, SetupStep};
use crate::sizing::GATEWAY_MEMORY_MIB;

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
    /// Seconds left at the rate seen so far in this phase (download, unpacking).
    pub eta_secs: Option<u64>,
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
    /// Right after launch, before podman and the machine were first looked at:
    /// nothing is known yet, and the fields that depend on it are `null`.
    Probing,
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
    /// `null` while `probing`, like the three below: unknown is not said as a guess.
    pub available: Option<bool>,
    pub machine_initialized: Option<bool>,
    pub machine_running: Option<bool>,
    pub needs_setup: Option<bool>,
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
    /// The CPUs agents share (the Podman machine's in vm mode, this computer's
    /// natively): an agent's CPU limit is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_cpus: Option<u32>,
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
            available: Some(available),
            machine_initialized: Some(!matches!(
                state,
                RuntimeState::Absent | RuntimeState::Unavailable
            )),
            machine_running: Some(matches!(state, RuntimeState::Ready)),
            needs_setup: Some(
                available && mode == Mode::Vm && matches!(state, RuntimeState::Absent),
            ),
            state: name,
            error,
            mode,
            podman_version,
            install_hint: (!available).then(|| crate::engine::install_hint().to_string()),
            setup: None,
            machine_memory_mib: None,
            agent_memory_mib: GATEWAY_MEMORY_MIB,
            machine_cpus: None,
            store_warning: None,
        }
    }
}

impl RuntimeStatus {
    /// Before the first probe: nothing known, nothing guessed.
    pub fn probing(mode: Mode) -> Self {
        Self {
            available: None,
            machine_initialized: None,
            machine_running: None,
            needs_setup: None,
            state: StateName::Probing,
            error: None,
            mode,
            podman_version: None,
            install_hint: None,
            setup: None,
            machine_memory_mib: None,
            agent_memory_mib: GATEWAY_MEMORY_MIB,
            machine_cpus: None,
            store_warning: None,
        }
    }

    /// Podman answered (known and true).
    pub fn is_available(&self) -> bool {
        self.available == Some(true)
    }

    /// The machine must be set up first (known and true).
    pub fn setup_needed(&self) -> bool {
        self.needs_setup == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_fields_follow_the_state() {
        let t = Some(true);
        let f = Some(false);
        let s = RuntimeStatus::new(&RuntimeState::Absent, Mode::Vm, Some("5.2.0".into()));
        assert_eq!(
            (
                s.available,
                s.needs_setup,
                s.machine_initialized,
                s.machine_running
            ),
            (t, t, f, f)
        );
        let s = RuntimeStatus::new(&RuntimeState::Ready, Mode::Native, Some("4.3.1".into()));
        assert_eq!(
            (s.machine_running, s.machine_initialized, s.needs_setup),
            (t, t, f)
        );
        let s = RuntimeStatus::new(&RuntimeState::Unavailable, Mode::Vm, None);
        assert!(!s.is_available() && s.install_hint.is_some() && !s.setup_needed());
    }

    /// Issue 22: before the first probe the status said `starting`,
    /// `machineInitialized: true`, `needsSetup: false` on a computer with no
    /// machine at all. Unknown is said as unknown.
    #[test]
    fn before_the_first_probe_nothing_is_guessed() {
        let s = serde_json::to_value(RuntimeStatus::probing(Mode::Vm)).expect("json");
        assert_eq!(s["state"], "probing");
        for field in [
            "available",
            "machineInitialized",
            "machineRunning",
            "needsSetup",
            "podmanVersion",
        ] {
            assert!(s[field].is_null(), "{field}: {s}");
        }
    }
}
