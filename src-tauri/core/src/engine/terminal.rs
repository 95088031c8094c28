//! One podman call under a pseudo-terminal (a pty on Unix, ConPTY on Windows), for
//! the call whose progress Podman draws only on a terminal (`machine init`; pulls
//! go through the engine's API). The same guarantees as the pipe runner in [`crate::engine`]: a timeout,
//! the child killed when the call is dropped, typed errors with the exit code and
//! the output's tail.
//!
//! portable-pty's reader and child are blocking, so two threads serve each call:
//! one reads the terminal and sends cleaned lines through a channel, one waits for
//! the child and kills it when asked or when the call is dropped (its channel
//! closes). Neither outlives the child: the reader ends when the terminal closes,
//! the waiter when the child is reaped.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use portable_pty::{native_pty_system, Child, CommandBuilder, ExitStatus, MasterPty, PtySize};
use tokio::sync::{mpsc, oneshot};

use crate::engine::errors::{ExitCode, Output, PodmanError};
use crate::engine::lines::{strip_ansi, LineSink, LineSplitter, Stream, Tail};

/// The terminal's size. Wide, so no bar is cut: Podman's lines ("Copying blob
/// 4f2e1f5a9d3c", a 40-column bar, the counters, the speed) are about 100 columns,
/// and on a narrow terminal mpb shortens them to "…". Tall, so a copy of many blobs
/// keeps every bar on screen.
const SIZE: PtySize = PtySize {
    rows: 100,
    cols: 200,
    pixel_width: 0,
    pixel_height: 0,
};

/// The terminal type the child is told. Podman decides on bars by asking whether
/// its output is a terminal (containers/image `isTTY`, mpb's terminal size), not by
/// `TERM`; a GUI app has no `TERM` at all, so one that any library would take for
/// a capable terminal is set.
const TERM: &str = "xterm-256color";

/// How often the waiter looks whether the child ended. portable-pty's blocking
/// `wait` cannot be interrupted to kill the child, so the waiter polls instead.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// After the child ended, how long its last output may take to be read. Only a
/// process the child left behind, holding the terminal, makes it last.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How many cleaned lines may wait for the caller before the reader waits too.
const LINE_BACKLOG: usize = 256;

/// Why a call could not be put on a terminal; the caller runs it on pipes.
#[derive(Debug)]
pub(crate) struct Unavailable(String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A child running on a terminal. Dropping it kills the child.
pub(crate) struct Running {
    lines: mpsc::Receiver<String>,
    exit: oneshot::Receiver<std::io::Result<ExitStatus>>,
    /// Dropped (or sent on) to have the waiter kill the child.
    stop: std_mpsc::Sender<()>,
}

type Spawned = (Box<dyn Child + Send + Sync>, Box<dyn MasterPty + Send>);

/// Starts `bin args` on a new terminal, with the app's environment, working folder
/// and `envs`. Fails, and starts nothing, when no terminal can be had or the child
/// cannot start on it.
pub(crate) fn spawn(
    bin: &Path,
    args: &[String],
    envs: &[(String, String)],
) -> Result<Running, Unavailable> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| Unavailable(format!("{what}: {e}"));
    let pair = native_pty_system()
        .openpty(SIZE)
        .map_err(|e| unavailable("no pseudo-terminal", &e))?;
    // portable-pty starts from the app's environment; its default folder is the
    // home folder, the pipe runner's is the app's own.
    let mut cmd = CommandBuilder::new(bin);
    cmd.args(args);
    if let Ok(dir) = std::env::current_dir() {
        cmd.cwd(dir);
    }
    cmd.env("TERM", TERM);
    for (name, value) in envs {
        cmd.env(name, value);
    }
    let reader = pair
        .master
        .try_clone_reader()
        .map_err(|e| unavailable("cannot read the terminal", &e))?;

    let (line_tx, lines) = mpsc::channel(LINE_BACKLOG);
    let (exit_tx, exit) = oneshot::channel();
    let (stop, stop_rx) = std_mpsc::channel();
    // The waiter runs before the child exists and gets it through this channel: a
    // child is never left without someone to wait for it and kill it.
    let (child_tx, child_rx) = std_mpsc::sync_channel::<Spawned>(1);
    std::thread::Builder::new()
        .name("podman-pty-wait".into())
        .spawn(move || {
            let Ok((child, master)) = child_rx.recv() else {
                return;
            };
            let status = wait(child, &stop_rx);
            // Only now: closing the terminal earlier would hang up on the child;
            // on Windows it is what ends the reader (ConPTY keeps its output open
            // until the console is closed).
            drop(master);
            let _caller_gone = exit_tx.send(status);
        })
        .map_err(|e| unavailable("cannot start a thread", &e))?;
    std::thread::Builder::new()
        .name("podman-pty-read".into())
        .spawn(move || read_lines(reader, &line_tx))
        .map_err(|e| unavailable("cannot start a thread", &e))?;

    let child = pair
        .slave
        .spawn_command(cmd)
        .map_err(|e| unavailable("cannot start podman on a terminal", &e))?;
    // Ours is closed, so the terminal ends when the child's side does.
    drop(pair.slave);
    if let Err(std_mpsc::SendError((mut child, _master))) = child_tx.send((child, pair.master)) {
        // The waiter is gone (it cannot be: it waits on this channel); never leave
        // the child running unattended.
        if let Err(e) = child.kill() {
            tracing::warn!(error = %e, "could not kill podman on a terminal");
        }
        return Err(Unavailable("the waiting thread ended".into()));
    }
    Ok(Running { lines, exit, stop })
}

/// Waits for the child; kills it when `stop` says so or closes (the call was
/// dropped).
fn wait(
    mut child: Box<dyn Child + Send + Sync>,
    stop: &std_mpsc::Receiver<()>,
) -> std::io::Result<ExitStatus> {
    let mut killed = false;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => {
                // Unable to tell: make sure it ends.
                let _already_gone = child.kill();
                return Err(e);
            }
        }
        if killed {
            std::thread::sleep(WAIT_POLL);
            continue;
        }
        match stop.recv_timeout(WAIT_POLL) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                // Unix: SIGHUP, then SIGKILL if it is still there 200 ms later;
                // Windows: TerminateProcess.
                if let Err(e) = child.kill() {
                    tracing::warn!(error = %e, "could not kill podman on a terminal");
                }
                killed = true;
            }
        }
    }
}

/// Reads the terminal to its end: lines split at `\r` and `\n` (bars redraw with
/// `\r`, the terminal ends lines with `\r\n`), cut at [`crate::engine::lines::MAX_LINE`],
/// cleaned of terminal codes, blank ones dropped.
fn read_lines(mut reader: Box<dyn Read + Send>, lines: &mpsc::Sender<String>) {
    let mut splitter = LineSplitter::new(true);
    let mut buf = [0u8; 8192];
    let mut ready = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO is how a Unix pty says its child side closed; portable-pty turns
            // it into the end already, anything else ends reading too.
            Err(_) => break,
        };
        splitter.push(&buf[..n], |line| ready.push(line));
        for line in ready.drain(..) {
            if !send(lines, &line) {
                return;
            }
        }
    }
    if let Some(line) = splitter.finish() {
        send(lines, &line);
    }
}

/// Sends one cleaned line; false once nobody listens.
fn send(lines: &mpsc::Sender<String>, raw: &str) -> bool {
    let clean = strip_ansi(raw);
    let text = clean.trim();
    text.is_empty() || lines.blocking_send(text.to_string()).is_ok()
}

impl Running {
    /// Delivers the lines to `sink` until the child ends, then says how it ended.
    /// At `timeout` the child is killed.
    pub(crate) async fn finish(
        mut self,
        args: String,
        timeout: Duration,
        sink: Option<LineSink>,
    ) -> Result<Output, PodmanError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tail = Tail::default();
        let mut take = |line: String| {
            if let Some(sink) = &sink {
                sink(Stream::Stderr, &line);
            }
            tail.push(&line);
        };
        let mut lines_open = true;
        let status = loop {
            tokio::select! {
                line = self.lines.recv(), if lines_open => match line {
                    Some(line) => take(line),
                    None => lines_open = false,
                },
                status = &mut self.exit => break status,
                () = tokio::time::sleep_until(deadline) => {
                    let _waiter_gone = self.stop.send(());
                    // The waiter kills and reaps it; the pipe runner waits as well.
                    let _reaped = (&mut self.exit).await;
                    return Err(PodmanError::TimedOut {
                        args,
                        after: timeout,
                        stderr_tail: tail.text(),
                    });
                }
            }
        };
        if lines_open {
            let drain = async {
                while let Some(line) = self.lines.recv().await {
                    take(line);
                }
            };
            let until = deadline.min(tokio::time::Instant::now() + DRAIN_GRACE);
            if tokio::time::timeout_at(until, drain).await.is_err() {
                tracing::debug!(args = %args, "podman ended; its terminal stays open, lines after this are not read");
            }
        }
        let status = match status {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                return Err(PodmanError::Spawn {
                    args,
                    reason: format!("waiting for podman on a terminal: {e}"),
                })
            }
            Err(_) => {
                return Err(PodmanError::Spawn {
                    args,
                    reason: "the thread waiting for podman ended".into(),
                })
            }
        };
        if status.success() {
            return Ok(Output {
                stdout: String::new(),
                stderr_tail: tail.text(),
            });
        }
        let code = match status.signal() {
            Some(_) => ExitCode(None),
            None => ExitCode(i32::try_from(status.exit_code()).ok()),
        };
        Err(PodmanError::Failed {
            args,
            code,
            stderr_tail: tail.text(),
        })
    }
}
