//! Finding the `podman` binary and running it: the one runner every podman call goes
//! through (drained pipes or a pseudo-terminal, streamed lines, a timeout, kill on
//! drop, typed errors).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use crate::engine::errors::{ExitCode, Output, PodmanError};
use crate::engine::lines::{LineSink, Stream};
use crate::engine::lines::{LineSplitter, Tail};

/// Most stdout one call may print: far above any listing or inspect Clawdock asks
/// for, low enough that a broken or hostile podman cannot exhaust memory. Past it
/// the child is killed and the call fails with [`PodmanError::OutputTooLarge`].
pub const MAX_STDOUT: usize = 64 * 1024 * 1024;

/// Folders a GUI app on macOS must search itself: it does not inherit the login
/// shell's PATH, so Homebrew's and the Podman installer's folders are missing.
const MACOS_FOLDERS: &[&str] = &[
    "/opt/podman/bin",
    "/opt/homebrew/bin",
    "/usr/local/bin",
    "/opt/local/bin",
];

/// Where the binary is and what it says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    Installed { path: PathBuf, version: String },
    Missing { hint: &'static str },
}

/// A short install hint for the platform the app runs on.
pub fn install_hint() -> &'static str {
    if cfg!(target_os = "macos") {
        "Install Podman from https://podman.io (the installer) or with `brew install podman`."
    } else if cfg!(target_os = "windows") {
        "Install Podman from https://podman.io (the Windows installer) or with `winget install RedHat.Podman`."
    } else {
        "Install Podman with your package manager, e.g. `sudo apt install podman` or `sudo dnf install podman`."
    }
}

/// Finds the podman binary: `override_path` (from `CLAWDOCK_PODMAN`) wins, then PATH,
/// then on macOS the usual install folders.
pub fn locate(override_path: Option<&Path>, path_var: Option<OsString>) -> Option<PathBuf> {
    if let Some(p) = override_path {
        return Some(p.to_path_buf());
    }
    let exe = if cfg!(windows) {
        "podman.exe"
    } else {
        "podman"
    };
    let mut folders: Vec<PathBuf> = path_var
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    if cfg!(target_os = "macos") {
        folders.extend(MACOS_FOLDERS.iter().map(PathBuf::from));
    }
    folders
        .into_iter()
        .map(|dir| dir.join(exe))
        .find(|candidate| candidate.is_file())
}

/// Options of one call. Every call has a timeout; streams of unbounded length use
/// [`Podman::stream`] instead.
#[derive(Clone)]
pub struct Call {
    args: Vec<String>,
    /// `None`: the runner's default ([`Podman::call_timeout`]).
    timeout: Option<Duration>,
    on_line: Option<LineSink>,
    /// Variables of podman's own environment: where secrets go, since an argument
    /// line is readable by every local user (`/proc/*/cmdline`) and an environment
    /// only by the same user.
    envs: Vec<(String, String)>,
    /// Run under a pseudo-terminal (see [`Call::on_terminal`]).
    terminal: bool,
}

impl Call {
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            timeout: None,
            on_line: None,
            envs: Vec::new(),
            terminal: false,
        }
    }

    /// Runs podman under a pseudo-terminal: Podman draws byte counters (`machine
    /// init`'s image) only when it writes to a terminal, and prints bare phase lines
    /// on a pipe. Stdout and stderr then arrive as one stream of lines, cleaned of
    /// terminal codes: [`Output::stdout`] stays empty and the error's stderr tail is
    /// the end of both, so only for calls whose stdout nobody reads. Its input is the
    /// terminal too (a pty gives the child all three), where nobody ever types: a
    /// call that could stop to ask a question (a short image name) stays on pipes.
    /// Where no terminal can be had, the call runs on pipes (a warning is logged):
    /// the progress is a nicety, the call must still work.
    pub fn on_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Sets a variable in podman's environment (pass it on with `--env NAME`).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn on_line(mut self, sink: LineSink) -> Self {
        self.on_line = Some(sink);
        self
    }

    fn display_args(&self) -> String {
        display_args(&self.args)
    }
}

/// Arguments as the log shows them. Values of `-e`/`--env` are masked: they can
/// hold tokens.
fn display_args(args: &[String]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for arg in args {
        if mask_next {
            let name = arg.split('=').next().unwrap_or_default();
            out.push(format!("{name}=***"));
            mask_next = false;
        } else {
            mask_next = arg == "-e" || arg == "--env";
            out.push(arg.clone());
        }
    }
    out.join(" ")
}

/// How long a call may take when it does not say: generous, since a loaded machine
/// makes podman slow, but bounded.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The podman binary and how to run it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Podman {
    bin: Option<PathBuf>,
    call_timeout: Duration,
}

impl Podman {
    pub fn new(bin: Option<PathBuf>) -> Self {
        Self {
            bin,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Sets the timeout of calls that name none (tests shorten it).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The timeout of calls that name none; also the margin podman gets over a
    /// container's own stop timeout.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The binary found by [`locate`] with the process environment.
    pub fn from_env() -> Self {
        let over = std::env::var_os("CLAWDOCK_PODMAN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Self::new(locate(over.as_deref(), std::env::var_os("PATH")))
    }

    pub fn bin(&self) -> Option<&Path> {
        self.bin.as_deref()
    }

    /// `podman --version`, or how to install it.
    pub async fn installation(&self) -> Installation {
        let Some(path) = self.bin.clone() else {
            return Installation::Missing {
                hint: install_hint(),
            };
        };
        match self
            .run(Call::new(["--version"]).timeout(Duration::from_secs(10)))
            .await
        {
            Ok(out) => Installation::Installed {
                path,
                version: parse_version(&out.stdout),
            },
            Err(err) => {
                tracing::warn!(error = %err, "podman --version failed");
                Installation::Missing {
                    hint: install_hint(),
                }
            }
        }
    }

    fn command(&self, args: &[String]) -> Result<Command, PodmanError> {
        let bin = self.bin.as_ref().ok_or_else(|| PodmanError::NotInstalled {
            looked_for: "CLAWDOCK_PODMAN and PATH".into(),
        })?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        apart_from_the_terminal(cmd.as_std_mut());
        Ok(cmd)
    }

    /// Runs one call to completion. Its output is read while the child runs, so no
    /// amount of it can block the child; the child is killed at the timeout, when
    /// its stdout passes [`MAX_STDOUT`], or when this future is dropped.
    pub async fn run(&self, call: Call) -> Result<Output, PodmanError> {
        if call.terminal {
            if let Some(bin) = &self.bin {
                let args_text = call.display_args();
                match crate::engine::terminal::spawn(bin, &call.args, &call.envs) {
                    Ok(running) => {
                        tracing::debug!(args = %args_text, "podman (terminal)");
                        let timeout = call.timeout.unwrap_or(self.call_timeout);
                        let result = running.finish(args_text, timeout, call.on_line).await;
                        if let Err(err) = &result {
                            warn_of(err);
                        }
                        return result;
                    }
                    Err(why) => tracing::warn!(
                        args = %args_text,
                        reason = %why,
                        "no terminal for podman; running it on pipes, without byte counters"
                    ),
                }
            }
        }
        self.run_on_pipes(call).await
    }

    async fn run_on_pipes(&self, call: Call) -> Result<Output, PodmanError> {
        let args_text = call.display_args();
        let mut child = self.spawn_with(&call.args, &call.envs)?;
        tracing::debug!(args = %args_text, "podman");
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let sink = call.on_line.clone();
        let too_much = tokio::sync::Notify::new();
        let out_sink = sink.clone();
        let read_out = async {
            let out = collect_stdout(stdout, out_sink, MAX_STDOUT).await;
            if out.is_none() {
                too_much.notify_one();
            }
            out
        };
        let read_err = collect_stderr_tail(stderr, sink);
        let wait = async {
            tokio::select! {
                status = child.wait() => status,
                () = too_much.notified() => {
                    if let Err(e) = child.start_kill() {
                        tracing::warn!(error = %e, "could not kill podman printing too much");
                    }
                    child.wait().await
                }
            }
        };
        let work = async { tokio::join!(read_out, read_err, wait) };
        let timeout = call.timeout.unwrap_or(self.call_timeout);
        match tokio::time::timeout(timeout, work).await {
            Ok((None, _, _)) => {
                let err = PodmanError::OutputTooLarge {
                    args: args_text,
                    limit: MAX_STDOUT,
                };
                warn_of(&err);
                Err(err)
            }
            Ok((Some(stdout), stderr_tail, status)) => {
                let status = status.map_err(|e| PodmanError::Spawn {
                    args: args_text.clone(),
                    reason: e.to_string(),
                })?;
                if status.success() {
                    Ok(Output {
                        stdout,
                        stderr_tail,
                    })
                } else {
                    let err = PodmanError::Failed {
                        args: args_text,
                        code: ExitCode(status.code()),
                        stderr_tail,
                    };
                    warn_of(&err);
                    Err(err)
                }
            }
            Err(_) => {
                // The join above owned the pipes; the child is still ours to kill.
                if let Err(e) = child.start_kill() {
                    tracing::warn!(error = %e, "could not kill timed-out podman");
                }
                let _reaped = child.wait().await;
                let err = PodmanError::TimedOut {
                    args: args_text,
                    after: timeout,
                    stderr_tail: String::new(),
                };
                warn_of(&err);
                Err(err)
            }
        }
    }

    /// Runs a call and parses its stdout as JSON.
    pub async fn run_json<T: serde::de::DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<T, PodmanError> {
        let args = call.display_args();
        let out = self.run(call).await?;
        serde_json::from_str(&out.stdout).map_err(|e| PodmanError::BadOutput {
            args,
            reason: e.to_string(),
        })
    }

    /// Starts a long-lived podman (the engine's API service) that is not tied to
    /// this process: it ends by its own idle timeout after a crash, finishing what
    /// it was asked, and is not killed when its handle is dropped.
    pub fn spawn_service(&self, args: &[String]) -> Result<Child, PodmanError> {
        let mut cmd = self.command(args)?;
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(false);
        let child = self.spawn_command(cmd, args)?;
        tracing::debug!(args = %display_args(args), pid = ?child.id(), "podman (service)");
        Ok(child)
    }

    fn spawn_with(&self, args: &[String], envs: &[(String, String)]) -> Result<Child, PodmanError> {
        let mut cmd = self.command(args)?;
        cmd.envs(envs.iter().map(|(k, v)| (k, v)));
        self.spawn_command(cmd, args)
    }

    fn spawn_command(&self, mut cmd: Command, args: &[String]) -> Result<Child, PodmanError> {
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PodmanError::NotInstalled {
                    looked_for: self
                        .bin
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                }
            } else {
                PodmanError::Spawn {
                    args: display_args(args),
                    reason: e.to_string(),
                }
            }
        })?;
        Ok(child)
    }
}

/// Puts a podman child out of reach of the terminal (or console) Clawdock runs
/// in: a Ctrl-C or a hang-up there signals the terminal's foreground process
/// group, which held every podman child and the owned engine service too
/// (measured: the service ended with `clawdock serve` on Ctrl-C, under requests
/// the shutdown still had to make). In a process group of its own a child hears
/// only Clawdock, which then quits in order. Not a session of its own: the
/// children never read the terminal (stdin is null), and the one call that needs a
/// terminal gets its own pseudo-terminal and session ([`crate::engine::terminal`]).
/// On Windows a console's Ctrl-C, Ctrl-Break and close reach every process
/// attached to it: a child gets a process group (Ctrl-C off) and a console of its
/// own, with no window.
fn apart_from_the_terminal(cmd: &mut std::process::Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
}

/// The log line of a call that failed, whichever way it ran.
fn warn_of(err: &PodmanError) {
    match err {
        PodmanError::Failed { .. } => {
            tracing::warn!(args = %err.args(), error = %err, stderr = %err.stderr(), "podman call failed")
        }
        PodmanError::TimedOut { .. } => {
            tracing::warn!(args = %err.args(), error = %err, "podman call timed out")
        }
        PodmanError::OutputTooLarge { .. } => {
            tracing::warn!(args = %err.args(), error = %err, "podman call printed too much")
        }
        _ => tracing::warn!(args = %err.args(), error = %err, "podman call could not run"),
    }
}

/// "podman version 4.3.1" -> "4.3.1"; anything else is kept as printed.
pub fn parse_version(stdout: &str) -> String {
    let line = stdout.lines().next().unwrap_or_default().trim();
    line.rsplit(' ')
        .next()
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(line)
        .to_string()
}

/// Reads stdout to its end: all of it (lossy UTF-8), and each line to the sink.
/// `None` once more than `limit` bytes came: the caller kills the child.
async fn collect_stdout<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    sink: Option<LineSink>,
    limit: usize,
) -> Option<String> {
    let Some(mut pipe) = pipe else {
        return Some(String::new());
    };
    let mut all = Vec::new();
    let mut splitter = LineSplitter::new(false);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if all.len() + n > limit {
                    return None;
                }
                all.extend_from_slice(&buf[..n]);
                if let Some(sink) = &sink {
                    splitter.push(&buf[..n], |line| sink(Stream::Stdout, &line));
                }
            }
        }
    }
    if let (Some(sink), Some(line)) = (&sink, splitter.finish()) {
        sink(Stream::Stdout, &line);
    }
    Some(String::from_utf8_lossy(&all).into_owned())
}

/// Reads stderr to its end, keeping only the last lines. Progress bars redraw with
/// `\r`, so both `\r` and `\n` end a line.
async fn collect_stderr_tail<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    sink: Option<LineSink>,
) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut tail = Tail::default();
    let mut push = |line: String| {
        let text = line.trim_end();
        if text.is_empty() {
            return;
        }
        if let Some(sink) = &sink {
            sink(Stream::Stderr, text);
        }
        tail.push(text);
    };
    let mut splitter = LineSplitter::new(true);
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => splitter.push(&buf[..n], &mut push),
        }
    }
    if let Some(line) = splitter.finish() {
        push(line);
    }
    tail.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_last_word() {
        assert_eq!(parse_version("podman version 4.3.1\n"), "4.3.1");
        assert_eq!(parse_version("podman.exe version 5.2.0"), "5.2.0");
        assert_eq!(parse_version("weird"), "weird");
    }

    #[test]
    fn env_values_are_masked_in_logs() {
        let args: Vec<String> = ["run", "-e", "TOKEN=secret", "--env", "K=v", "img"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(display_args(&args), "run -e TOKEN=*** --env K=*** img");
    }

    #[test]
    fn override_wins_over_path() {
        let found = locate(Some(Path::new("/x/podman")), Some("/usr/bin".into()));
        assert_eq!(found, Some(PathBuf::from("/x/podman")));
    }

    #[test]
    fn path_is_searched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("podman");
        std::fs::write(&bin, "").expect("write");
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).expect("join");
        assert_eq!(locate(None, Some(path)), Some(bin));
        assert_eq!(locate(None, Some("/nonexistent".into())), None);
    }
}
