//! The window, seen from the tray: a process of its own (`clawdock-window`),
//! started when the window is opened, told where to go while it runs, and gone
//! when the window is closed, with all its memory (the web view's processes end
//! with it). It is told the API's address and token on its stdin and says what
//! happens to it on its stdout (see `clawdock::window_link`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clawdock::window_link::{self, FromWindow, ToWindow};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinSet;

/// How long a window told to close (its stdin ended) may take before it is killed.
const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// What the window process says, or that it ended.
#[derive(Debug)]
pub enum WindowNews {
    Said(FromWindow),
    /// The window process of this generation ended (its stdout closed).
    Ended(u64),
}

pub struct Window {
    api_url: String,
    api_token: String,
    log_dir: PathBuf,
    news: Arc<dyn Fn(WindowNews) + Send + Sync>,
    open: Option<Running>,
    /// Windows opened so far: news of an earlier one is told apart from the
    /// current one's.
    opened: u64,
    readers: JoinSet<()>,
}

struct Running {
    generation: u64,
    child: Child,
    stdin: ChildStdin,
}

#[derive(Debug, thiserror::Error)]
enum WindowError {
    #[error("the window's program is unknown: {0}")]
    NoProgram(std::io::Error),
    #[error("could not start {}: {source}", program.display())]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("the window took no pipe: {0}")]
    Pipe(std::io::Error),
}

impl Window {
    pub fn new(
        api_url: String,
        api_token: String,
        log_dir: PathBuf,
        news: Arc<dyn Fn(WindowNews) + Send + Sync>,
    ) -> Self {
        Self {
            api_url,
            api_token,
            log_dir,
            news,
            open: None,
            opened: 0,
            readers: JoinSet::new(),
        }
    }

    /// The API the window's page is on.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// Shows the window at a route of the UI (`""` leaves an open page where it
    /// is): the open window comes to the front, or a new one starts.
    pub async fn show(&mut self, route: &str) {
        if let Some(running) = &mut self.open {
            let show = window_link::line(&ToWindow::Show {
                route: route.to_owned(),
            });
            match running.stdin.write_all(show.as_bytes()).await {
                Ok(()) => return,
                // It is closing right now: a new one takes its place.
                Err(e) => tracing::debug!(error = %e, "the window is closing; opening another"),
            }
        }
        match self.start(route).await {
            Ok(running) => {
                if let Some(old) = self.open.replace(running) {
                    reap(old).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "could not open the window"),
        }
    }

    async fn start(&mut self, route: &str) -> Result<Running, WindowError> {
        let program = std::env::current_exe()
            .map_err(WindowError::NoProgram)?
            .with_file_name(format!("clawdock-window{}", std::env::consts::EXE_SUFFIX));
        let mut child = Command::new(&program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| WindowError::Start {
                program: program.clone(),
                source,
            })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(WindowError::Pipe(std::io::Error::other(
                "no stdin or stdout",
            )));
        };
        let open = ToWindow::Open {
            url: self.api_url.clone(),
            token: self.api_token.clone(),
            route: route.to_owned(),
            log_dir: self.log_dir.clone(),
        };
        stdin
            .write_all(window_link::line(&open).as_bytes())
            .await
            .map_err(WindowError::Pipe)?;
        self.opened += 1;
        let generation = self.opened;
        let news = self.news.clone();
        self.readers.spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => match window_link::read::<FromWindow>(&line) {
                        Ok(said) => news(WindowNews::Said(said)),
                        Err(e) => {
                            tracing::warn!(error = %e, %line, "unreadable line from the window")
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the window's output broke off");
                        break;
                    }
                }
            }
            news(WindowNews::Ended(generation));
        });
        tracing::info!(generation, "window opened");
        Ok(Running {
            generation,
            child,
            stdin,
        })
    }

    /// The window process of `generation` ended; `true` when it was the open one.
    pub async fn ended(&mut self, generation: u64) -> bool {
        while self.readers.try_join_next().is_some() {}
        if self.open.as_ref().map(|r| r.generation) != Some(generation) {
            return false;
        }
        if let Some(running) = self.open.take() {
            reap(running).await;
        }
        true
    }

    /// Closes the window (the app is ending): its stdin ends, and it goes.
    pub async fn close(&mut self) {
        if let Some(running) = self.open.take() {
            reap(running).await;
        }
    }
}

/// Ends a window process: its stdin closed (which closes it), then waited for
/// within a bound, killed past it.
async fn reap(running: Running) {
    let Running {
        generation,
        mut child,
        stdin,
    } = running;
    drop(stdin);
    match tokio::time::timeout(CLOSE_BOUND, child.wait()).await {
        Ok(Ok(status)) if status.success() => tracing::info!(generation, "window closed"),
        Ok(Ok(status)) => tracing::warn!(generation, %status, "the window's process failed"),
        Ok(Err(e)) => tracing::warn!(generation, error = %e, "could not wait for the window"),
        Err(_) => {
            tracing::warn!(generation, "the window did not close; killing it");
            if let Err(e) = child.kill().await {
                tracing::error!(generation, error = %e, "could not kill the window");
            }
        }
    }
}
