//! What a call to Podman gives back, over its command line or its API socket:
//! the output, the exit, and the typed error that keeps the cause for the log.

use std::fmt;
use std::time::Duration;

/// A podman call that did not give what was asked. Keeps the arguments, the exit
/// code and the end of stderr so the log can say exactly what went wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PodmanError {
    #[error("podman is not installed (looked for {looked_for})")]
    NotInstalled { looked_for: String },
    #[error("could not run `podman {}`: {reason}", command_of(args))]
    Spawn { args: String, reason: String },
    #[error(
        "`podman {}` failed (exit {code}): {}",
        command_of(args),
        last_line(stderr_tail)
    )]
    Failed {
        args: String,
        code: ExitCode,
        stderr_tail: String,
    },
    #[error("`podman {}` did not finish within {}s and was killed", command_of(args), after.as_secs_f32())]
    TimedOut {
        args: String,
        after: Duration,
        stderr_tail: String,
    },
    #[error(
        "`podman {}` printed output that could not be read: {reason}",
        command_of(args)
    )]
    BadOutput { args: String, reason: String },
    #[error(
        "`podman {}` printed more than {} MiB and was killed",
        command_of(args),
        limit / (1024 * 1024)
    )]
    OutputTooLarge { args: String, limit: usize },
    /// The engine's API socket refused the connection, or dropped it before the
    /// whole answer came: the engine (or its machine) is not there.
    #[error("cannot connect to Podman for `{request}`: {reason}")]
    Unreachable { request: String, reason: String },
    /// The engine's socket is held by a process of another user: refused before
    /// any request was sent.
    #[error(
        "the engine socket {socket} belongs to uid {owner}, not to this user (uid {ours}) \
         nor root; Clawdock refuses to use it"
    )]
    Untrusted {
        socket: String,
        owner: u32,
        ours: u32,
    },
    /// The engine's API answered with an error status.
    #[error("Podman refused `{request}` ({status}): {message}")]
    Api {
        request: String,
        status: u16,
        message: String,
    },
}

/// An exit status that may have no code (killed by a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(pub Option<i32>);

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, "{code}"),
            None => f.write_str("signal"),
        }
    }
}

/// The subcommand of an argument line (`machine init`, `create`): what the user's
/// message names. The log keeps the whole line (see [`PodmanError::args`]).
fn command_of(args: &str) -> String {
    args.split_whitespace()
        .take_while(|a| !a.starts_with('-'))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error output")
}

impl PodmanError {
    /// The stderr tail, where there is one: what callers inspect to recognise
    /// answers such as "already exists" (never the Display text).
    pub fn stderr(&self) -> &str {
        match self {
            Self::Failed { stderr_tail, .. } | Self::TimedOut { stderr_tail, .. } => stderr_tail,
            Self::Api { message, .. } => message,
            _ => "",
        }
    }

    /// The whole argument line (secrets masked), for the log.
    pub fn args(&self) -> &str {
        match self {
            Self::Spawn { args, .. }
            | Self::Failed { args, .. }
            | Self::TimedOut { args, .. }
            | Self::BadOutput { args, .. }
            | Self::OutputTooLarge { args, .. } => args,
            Self::Unreachable { request, .. } | Self::Api { request, .. } => request,
            Self::Untrusted { socket, .. } => socket,
            Self::NotInstalled { .. } => "",
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Failed { code, .. } => code.0,
            _ => None,
        }
    }

    /// True for the answers Podman gives when its engine (or machine) cannot be
    /// reached: the call says nothing about the thing it was asked about.
    pub fn engine_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
            || self.says("cannot connect to podman")
            || self.says("unable to connect to podman")
    }

    /// No podman program to run: nothing of Clawdock's can be running either.
    pub fn not_installed(&self) -> bool {
        matches!(self, Self::NotInstalled { .. })
    }

    /// True when stderr says the thing asked for is already there or already done.
    pub fn says(&self, needle: &str) -> bool {
        self.stderr()
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    }
}

/// What a finished podman call printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr_tail: String,
}
