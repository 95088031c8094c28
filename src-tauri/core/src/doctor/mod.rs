//! `clawdock doctor`: what a failed set-up is usually about, checked one thing at
//! a time, each finding with its fix in words (`checks`), and a support bundle of
//! the findings, versions, recent logs, the agents' states and their gateways'
//! last lines with every secret taken out (`bundle`). Runs in the command line's
//! own process: it must work when Clawdock itself cannot start.

/// The variables a proxy is read from: the host's (either case, as curl and
/// reqwest read them) and the one for agents.
const PROXY_VARIABLES: [&str; 7] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "CLAWDOCK_AGENT_PROXY",
];

pub mod bundle;
pub mod checks;

use serde::{Deserialize, Serialize};

/// The oldest Podman Clawdock is tested with (Debian 12's); older ones lack the
/// API calls and the machine's behaviour it relies on.
pub const OLDEST_PODMAN: (u32, u32) = (4, 3);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Works, but something will bite (little disk left, cgroup v1).
    Warn,
    /// Clawdock cannot work like this.
    Fail,
    /// Not asked here (no machine on Linux; rootless checks as root).
    Skipped,
}

/// One check's finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What was checked ("podman", "engine", "machine"...).
    pub check: String,
    pub verdict: Verdict,
    /// What was found, in a sentence.
    pub found: String,
    /// What to do about it, when something is to be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &str, found: impl Into<String>) -> Self {
        Self::new(check, Verdict::Ok, found, None)
    }

    pub fn skipped(check: &str, found: impl Into<String>) -> Self {
        Self::new(check, Verdict::Skipped, found, None)
    }

    pub fn warn(check: &str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Verdict::Warn, found, Some(fix.into()))
    }

    pub fn fail(check: &str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Verdict::Fail, found, Some(fix.into()))
    }

    fn new(check: &str, verdict: Verdict, found: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            check: check.into(),
            verdict,
            found: found.into(),
            fix,
        }
    }
}
