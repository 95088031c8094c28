//! The command line: talks to the running instance through `api.json`, prints
//! tables for people and `--json` for scripts.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Subcommand;
use clawdock_core::agents::{AgentView, RestoreOutcome};
use clawdock_core::api::{sse_data_lines, ApiError};
use clawdock_core::events::Event;
use clawdock_core::export::{self, Export};
use clawdock_core::instance::running_instance;
use clawdock_core::settings::Settings;
use clawdock_core::shutdown::ShutdownReport;
use clawdock_core::status::RuntimeStatus;
use clawdock_core::store::AgentStatus;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// List agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create an agent and wait until it runs.
    Create {
        name: String,
        /// A built-in provider (anthropic, openai, google, openrouter, moonshot, groq,
        /// mistral) or a name for a custom one with --base-url.
        #[arg(long)]
        provider: Option<String>,
        /// The provider's API key. On the command line it is visible to other local
        /// users (in the process list) while the command runs: prefer the
        /// CLAWDOCK_API_KEY environment variable or --api-key-stdin.
        #[arg(long, env = "CLAWDOCK_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Read the API key from standard input, in place of --api-key and
        /// CLAWDOCK_API_KEY (e.g. `pass show openai | clawdock agents create NAME
        /// --provider openai --api-key-stdin`).
        #[arg(long)]
        api_key_stdin: bool,
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// The container's memory limit in MiB (default 2048 or CLAWDOCK_AGENT_MEMORY).
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        /// The container's CPU limit in CPUs, e.g. 1.5 (default: none).
        #[arg(long, value_name = "N")]
        cpus: Option<f64>,
        /// What the agent may take on the disk (its folders, container and log),
        /// in MiB (default 10240 or CLAWDOCK_AGENT_DISK).
        #[arg(long, value_name = "MIB")]
        disk: Option<u64>,
        /// Return once the agent is recorded, without waiting for it to run.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Start an agent (by name or id).
    Start {
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop an agent (by name or id).
    Stop {
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an agent, its container and its folder.
    Rm {
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Change an agent's provider, model, base URL, API key or limits in place (a
    /// running agent restarts, keeping its workspace, port and token).
    Set {
        agent: String,
        #[arg(long)]
        provider: Option<String>,
        /// A name for a custom provider (with --base-url).
        #[arg(long)]
        provider_name: Option<String>,
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// Read the new API key from standard input (keys on the command line are
        /// visible to other local users).
        #[arg(long)]
        api_key_stdin: bool,
        /// A new memory limit in MiB (the container is made again with it).
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        /// A new CPU limit in CPUs, e.g. 1.5.
        #[arg(long, value_name = "N", conflicts_with = "no_cpu_limit")]
        cpus: Option<f64>,
        /// Remove the CPU limit.
        #[arg(long)]
        no_cpu_limit: bool,
        /// A new disk limit in MiB (the agent keeps its container).
        #[arg(long, value_name = "MIB")]
        disk: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Move an agent (or every agent) to the newest image: pulled, then the
    /// container made again from it, keeping config, workspace, port and token; a
    /// new image that does not start is rolled back.
    Update {
        agent: Option<String>,
        #[arg(long, conflicts_with = "agent")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel an agent's create or start in progress (a cancelled create removes
    /// the agent).
    Cancel { agent: String },
    /// Give an agent a new gateway token, for when the old one leaked: its
    /// container is made again with it and the gateway refuses the old one. A
    /// signed-in dashboard must be opened again.
    RotateToken {
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Open an agent's own dashboard (its Control UI, signed in) in the browser.
    Open {
        agent: String,
        /// Print an address instead of opening one: to a terminal, the dashboard's
        /// own with the agent's gateway token; to a pipe or a file, a one-time
        /// address good for 30 s (unless --show-token).
        #[arg(long)]
        print: bool,
        /// With --print: the address with the token to a pipe or a file too.
        #[arg(long, requires = "print")]
        show_token: bool,
    },
    /// Write an agent as a Kustomize folder for Kubernetes (Deployment, Service,
    /// PersistentVolumeClaim, a Secret generated from the gateway token and
    /// openclaw.json, a README). The folder holds secrets: it is made 0700, the
    /// secret files 0600.
    Export {
        agent: String,
        /// The folder to write (refused if it exists and is not empty, unless --force).
        #[arg(long, value_name = "DIR")]
        kubernetes: std::path::PathBuf,
        /// The namespace in kustomization.yaml.
        #[arg(long, default_value = clawdock_core::export::DEFAULT_NAMESPACE)]
        namespace: String,
        /// The size of the agent's state volume (a Kubernetes quantity).
        #[arg(long, default_value = clawdock_core::export::DEFAULT_STORAGE)]
        storage: String,
        /// Write into a folder that is not empty (files of the same name are replaced).
        #[arg(long)]
        force: bool,
        /// Also write the agent's workspace as workspace.tar.gz (at most 700 KiB packed),
        /// unpacked by an init container at the first start.
        #[arg(long)]
        with_workspace: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write an agent's backup: its workspace, config (provider key included: the
    /// file is made readable by you alone), settings and a manifest of every
    /// file's SHA-256, as one .tar.gz.
    Backup {
        agent: String,
        /// The file to write (refused if it exists).
        #[arg(short, long, value_name = "FILE")]
        output: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Make an agent from a backup and start it: here after a delete, or on
    /// another computer. The archive is checked whole before anything is written.
    Restore {
        /// The backup (.tar.gz) to restore.
        file: std::path::PathBuf,
        /// The agent's name (the backup's if absent).
        #[arg(long)]
        name: Option<String>,
        /// Replace an agent of that name (a snapshot of it is kept first).
        #[arg(long)]
        replace: bool,
        /// Return once the agent is recorded, without waiting for it to run.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// List an agent's snapshots (taken before each update, edit and limits
    /// change), or put one back with --restore.
    Snapshots {
        agent: String,
        /// Replace the agent by this snapshot (a snapshot of it as it is now is
        /// kept first).
        #[arg(long, value_name = "SNAPSHOT")]
        restore: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Chat with a running agent, its answer printed as it comes (as the
    /// window's chat). With MESSAGE, one turn; without, each line read from
    /// standard input is a turn, until end of input (Ctrl-D).
    Chat {
        agent: String,
        message: Option<String>,
    },
    /// Print an agent's log.
    Logs {
        agent: String,
        /// Keep following new lines.
        #[arg(short, long)]
        follow: bool,
        /// The container's own output instead of Clawdock's log of the agent.
        #[arg(long)]
        container: bool,
    },
}

pub enum Request {
    Status {
        json: bool,
    },
    /// Check for a newer Clawdock (`check`) or install it.
    SelfUpdate {
        check: bool,
        json: bool,
    },
    Agents(AgentsCommand),
    Url {
        show_token: bool,
    },
    Quit {
        json: bool,
    },
}

/// Exit code when no instance runs, so scripts can tell it apart from failures.
const NOT_RUNNING: u8 = 3;

#[derive(Debug)]
enum CliError {
    NotRunning(String),
    Api(String),
    Other(String),
    /// The instance quit but left containers running (named).
    LeftRunning(Vec<String>),
}

#[derive(Deserialize)]
struct AgentList {
    agents: Vec<AgentView>,
}

#[derive(Deserialize)]
struct OneAgent {
    agent: AgentView,
}

#[derive(Deserialize)]
struct MaybeAgent {
    agent: Option<AgentView>,
}

#[derive(Deserialize)]
struct SnapshotList {
    snapshots: Vec<clawdock_core::agents::Snapshot>,
}

#[derive(Deserialize)]
struct Dashboard {
    url: String,
}

#[derive(Deserialize)]
struct Quitted {
    report: ShutdownReport,
}

/// The command line's runtime (one thread: it waits on one request at a time);
/// `None`, said, when the system gives none.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::tell!("clawdock: {e}"))
        .ok()
}

pub fn run(request: Request) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let result = match request {
        Request::SelfUpdate { check, json } => runtime.block_on(self_update(check, json)),
        request => runtime.block_on(dispatch(request)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::NotRunning(why)) => {
            crate::tell!(
                "Clawdock is not running ({why}). Start it with `clawdock` or `clawdock serve`."
            );
            ExitCode::from(NOT_RUNNING)
        }
        Err(CliError::Api(msg)) | Err(CliError::Other(msg)) => {
            crate::tell!("clawdock: {msg}");
            ExitCode::FAILURE
        }
        Err(CliError::LeftRunning(names)) => {
            crate::tell!(
                "clawdock: quit, but these containers still run: {}",
                names.join(", ")
            );
            ExitCode::from(crate::exit::LEFT_RUNNING)
        }
    }
}

/// `clawdock doctor [--json] [--bundle FILE]`: the checks, in this process (no
/// instance needed); exit 1 when one fails.
pub fn doctor(json: bool, bundle: Option<std::path::PathBuf>) -> ExitCode {
    use clawdock_core::doctor::{self, Verdict};
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            crate::tell!("clawdock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let findings = runtime.block_on(doctor::checks::run_all(&settings));
    if json {
        print_json(&findings);
    } else {
        for f in &findings {
            let mark = match f.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
                Verdict::Skipped => "--  ",
            };
            crate::say!("{mark}  {:<15} {}", f.check, f.found);
            if let Some(fix) = &f.fix {
                crate::say!("      {:<15} fix: {fix}", "");
            }
        }
    }
    if let Some(file) = bundle {
        let var = |name: &str| std::env::var(name).ok();
        let sources = doctor::bundle::Sources {
            settings: &settings,
            log_dir: clawdock_core::settings::default_log_dir(&settings.home),
            var: &var,
        };
        match runtime.block_on(doctor::bundle::write(&file, &findings, &sources)) {
            Ok(_) => crate::tell!(
                "Wrote the support bundle {} (secrets taken out; read it before you send it).",
                file.display()
            ),
            Err(e) => {
                crate::tell!("clawdock: could not write {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if findings.iter().any(|f| f.verdict == Verdict::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What an error says, for one line of a longer report.
fn cli_message(e: &CliError) -> String {
    match e {
        CliError::NotRunning(why) => format!("Clawdock is not running ({why})"),
        CliError::Api(m) | CliError::Other(m) => m.clone(),
        CliError::LeftRunning(names) => format!("still running: {}", names.join(", ")),
    }
}

/// A successful answer's body read as `T`.
async fn read_json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, CliError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CliError::Other(e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CliError::Other(format!("unexpected answer from the API: {e}")))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// The running instance's data folder (the dashboard's opener page goes there).
    home: std::path::PathBuf,
}

impl Client {
    fn discover() -> Result<Self, CliError> {
        let settings = Settings::from_env().map_err(|e| CliError::Other(e.to_string()))?;
        // A stale api.json (its instance died) gets "not running", never a request:
        // whoever holds that port now must not receive the token.
        let info =
            running_instance(&settings.home).map_err(|e| CliError::NotRunning(e.to_string()))?;
        // The API is on loopback: never through a proxy from the environment, which
        // would get every request and the API token with it.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| CliError::Other(format!("could not make an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: info.url,
            token: info.token,
            home: settings.home,
        })
    }

    /// One request, its answer read as `T` (the core's own types).
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, CliError> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read_json(self.send(req).await?).await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends `req`; an answer other than a success is the API's error, said as such.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CliError> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(api_error(status, &bytes))
    }

    async fn stream(&self, path: &str) -> Result<impl futures::Stream<Item = String>, CliError> {
        let resp = self.send(self.request(reqwest::Method::GET, path)).await?;
        Ok(sse_data_lines(resp.bytes_stream()))
    }

    /// One chat turn: the answer's pieces printed as the gateway streams them,
    /// then a new line.
    async fn chat_turn(&self, path: &str, message: &str) -> Result<(), CliError> {
        let resp = self
            .send(
                self.request(reqwest::Method::POST, path)
                    .json(&json!({ "message": message })),
            )
            .await?;
        let mut data = std::pin::pin!(sse_data_lines(resp.bytes_stream()));
        while let Some(data) = data.next().await {
            if data.trim() == "[DONE]" {
                break;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if let Some(error) = chunk.get("error") {
                let said = error["message"]
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_string);
                crate::console::out_piece("\n");
                return Err(CliError::Api(format!(
                    "the agent answered with an error: {said}"
                )));
            }
            let choice = &chunk["choices"][0];
            let piece = choice["delta"]["content"]
                .as_str()
                .or_else(|| choice["message"]["content"].as_str());
            if let Some(piece) = piece {
                crate::console::out_piece(piece);
            }
        }
        crate::console::out_piece("\n");
        Ok(())
    }

    /// `POST path`, its answer written to `file` (new, readable by its owner
    /// alone); a file half-written by a failure is removed. Gives the bytes.
    async fn download(&self, path: &str, file: &std::path::Path) -> Result<u64, CliError> {
        use tokio::io::AsyncWriteExt;
        let resp = self.send(self.request(reqwest::Method::POST, path)).await?;
        let out = clawdock_core::agents::new_private_file(file)
            .map_err(|e| CliError::Other(e.to_string()))?;
        let mut out = tokio::fs::File::from_std(out);
        let mut body = resp.bytes_stream();
        let mut written = 0u64;
        let copied: Result<(), String> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                out.write_all(&chunk).await.map_err(|e| e.to_string())?;
                written += chunk.len() as u64;
            }
            out.sync_all().await.map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = copied {
            if let Err(gone) = std::fs::remove_file(file) {
                tracing::warn!(error = %gone, "could not remove a half-written backup");
            }
            return Err(CliError::Other(format!(
                "could not write {}: {e}",
                file.display()
            )));
        }
        Ok(written)
    }

    /// `POST path` with `file` as the body, its answer read as `T`.
    async fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &std::path::Path,
    ) -> Result<T, CliError> {
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|e| CliError::Other(format!("could not read {}: {e}", file.display())))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(opened));
        let req = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(body);
        read_json(self.send(req).await?).await
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        if e.is_connect() {
            CliError::NotRunning(format!("nothing answers at {}", self.base))
        } else {
            CliError::Other(e.to_string())
        }
    }

    /// An agent's id from its name or id.
    async fn resolve(&self, agent: &str) -> Result<String, CliError> {
        let list: AgentList = self.call(reqwest::Method::GET, "/agents", None).await?;
        list.agents
            .iter()
            .find(|a| a.id.to_string() == agent || a.name.eq_ignore_ascii_case(agent))
            .map(|a| a.id.to_string())
            .ok_or_else(|| CliError::Api(format!("no agent named `{agent}`")))
    }
}

/// `clawdock self-update [--check]`: the running instance checks or installs (and
/// then restarts into the new version, its agents running on); with none running,
/// this process does, through the same core function, and sudo may ask for a
/// password on the terminal.
async fn self_update(check: bool, json: bool) -> Result<(), CliError> {
    use clawdock_core::self_update::{self, Asking, Mode, Outcome};
    let mode = if check { Mode::Check } else { Mode::Install };
    let (outcome, through_instance) = match Client::discover() {
        Ok(client) => {
            let path = if check {
                "/app/update/check"
            } else {
                "/app/update/install"
            };
            let outcome: Outcome = client.call(reqwest::Method::POST, path, None).await?;
            (outcome, true)
        }
        Err(CliError::NotRunning(_)) => {
            let settings = Settings::from_env().map_err(|e| CliError::Other(e.to_string()))?;
            let asking = if std::io::stdin().is_terminal() {
                Asking::Terminal
            } else {
                Asking::Desktop
            };
            let (outcome, _after) = self_update::run(&settings.self_update, mode, asking)
                .await
                .map_err(|e| CliError::Api(e.to_string()))?;
            (outcome, false)
        }
        Err(e) => return Err(e),
    };
    if json {
        print_json(&outcome);
    }
    match &outcome {
        Outcome::UpToDate { current, offered } if !json => match offered {
            Some(offered) if offered != current => crate::say!(
                "Clawdock {current} is up to date. The feed offers {offered}, which is older: a downgrade is never installed."
            ),
            _ => crate::say!("Clawdock {current} is up to date."),
        },
        Outcome::Available { current, release } if !json => {
            crate::say!("Clawdock {} is available (this is {current}).", release.version);
            if let Some(notes) = &release.notes {
                crate::say!("\n{notes}\n");
            }
            crate::say!("Install it with `clawdock self-update`; agents keep running.");
        }
        Outcome::Installed { release, .. } if through_instance => {
            if !json {
                crate::say!(
                    "Clawdock {} is installed; the running Clawdock restarts into it, its agents running on.",
                    release.version
                );
            }
            wait_for_version(&release.version).await?;
            if !json {
                crate::say!("Clawdock {} runs.", release.version);
            }
        }
        Outcome::Installed { release, .. } if !json => {
            crate::say!("Clawdock {} is installed.", release.version);
        }
        _ => {}
    }
    Ok(())
}

/// Waits until the instance that answers is of `version` (the restart after an
/// update: the old one hands over, the new one takes the data folder).
async fn wait_for_version(version: &str) -> Result<(), CliError> {
    use clawdock_core::self_update::SelfUpdateStatus;
    const BOUND: std::time::Duration = std::time::Duration::from_secs(120);
    let began = std::time::Instant::now();
    let mut last = String::from("nothing answered");
    while began.elapsed() < BOUND {
        match Client::discover() {
            Ok(client) => {
                match client
                    .call::<SelfUpdateStatus>(reqwest::Method::GET, "/app/update", None)
                    .await
                {
                    Ok(status) if status.current == version => return Ok(()),
                    Ok(status) => last = format!("Clawdock {} still answers", status.current),
                    Err(e) => last = cli_message(&e),
                }
            }
            Err(e) => last = cli_message(&e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(CliError::Other(format!(
        "Clawdock {version} was installed but did not answer within {} s ({last}).",
        BOUND.as_secs()
    )))
}

/// The API's `{error, code}`, or the status when the body is not that.
fn api_error(status: reqwest::StatusCode, body: &[u8]) -> CliError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => CliError::Api(e.message),
        Err(_) => CliError::Api(format!("the API answered {status}")),
    }
}

async fn dispatch(request: Request) -> Result<(), CliError> {
    use reqwest::Method;
    let client = Client::discover()?;
    match request {
        Request::Url { show_token } => {
            if show_token || std::io::stdout().is_terminal() {
                crate::say!("{}/#token={}", client.base, client.token);
            } else {
                // A pipe or a file keeps what it gets: no token there unless asked.
                crate::say!("{}/", client.base);
                crate::tell!(
                    "The token is left out when printing to a pipe or a file: it is in {}, or pass --show-token.",
                    Settings::from_env()
                        .map(|s| s.api_file().display().to_string())
                        .unwrap_or_else(|_| "api.json".into())
                );
            }
        }
        Request::Status { json } => {
            let status: RuntimeStatus = client
                .call(Method::GET, "/agents/runtime-status", None)
                .await?;
            let list: AgentList = client.call(Method::GET, "/agents", None).await?;
            if json {
                print_json(&json!({ "runtime": status, "agents": list.agents }));
            } else {
                crate::say!(
                    "Runtime:  {} ({} mode)",
                    to_word(&status.state),
                    to_word(&status.mode)
                );
                crate::say!(
                    "Podman:   {}",
                    status.podman_version.as_deref().unwrap_or("not installed")
                );
                if let Some(e) = &status.error {
                    crate::say!("Error:    {e}");
                }
                let running = list
                    .agents
                    .iter()
                    .filter(|a| a.status == AgentStatus::Running)
                    .count();
                crate::say!("Agents:   {} ({running} running)", list.agents.len());
                crate::say!("API:      {}", client.base);
            }
        }
        // Run by `run` itself: with no instance it needs no client.
        Request::SelfUpdate { check, json } => self_update(check, json).await?,
        Request::Quit { json } => {
            let quitted: Quitted = client.call(Method::POST, "/shutdown", None).await?;
            if json {
                print_json(&quitted.report);
            } else {
                crate::say!(
                    "Clawdock quit: {} agent(s) stopped, {} killed.",
                    quitted.report.stopped.len(),
                    quitted.report.killed
                );
            }
            if !quitted.report.clean() {
                return Err(CliError::LeftRunning(quitted.report.leftover));
            }
        }
        Request::Agents(AgentsCommand::List { json }) => {
            let list: AgentList = client.call(Method::GET, "/agents", None).await?;
            if json {
                print_json(&list.agents);
            } else {
                print_table(&list.agents);
            }
        }
        Request::Agents(AgentsCommand::Create {
            name,
            provider,
            api_key,
            api_key_stdin,
            base_url,
            model,
            memory,
            cpus,
            disk,
            no_wait,
            json,
        }) => {
            let api_key = if api_key_stdin {
                Some(read_key_from_stdin()?)
            } else {
                api_key
            };
            // Follow events first, so the outcome cannot slip by before we listen.
            let events = if no_wait {
                None
            } else {
                Some(client.stream("/events").await?)
            };
            let body = json!({
                "name": name, "providerType": provider, "apiKey": api_key,
                "baseUrl": base_url, "modelId": model, "memoryMiB": memory, "cpus": cpus,
                "diskMiB": disk,
            });
            let created: OneAgent = client
                .call(Method::POST, "/agents/create", Some(body))
                .await?;
            let mut agent = created.agent;
            if let Some(events) = events {
                if !json {
                    crate::tell!("Creating {name}...");
                }
                agent = wait_settled(events, agent.id).await?;
            }
            // A failure is said once, by the error this returns.
            if agent.status == AgentStatus::Error {
                if json {
                    print_json(&agent);
                }
                return Err(CliError::Api(failure_words(&agent)));
            }
            report(&agent, json, "Created");
        }
        Request::Agents(AgentsCommand::Start { agent, json }) => {
            let id = client.resolve(&agent).await?;
            let out: OneAgent = client
                .call(Method::POST, &format!("/agents/{id}/start"), None)
                .await?;
            report(&out.agent, json, "Started");
        }
        Request::Agents(AgentsCommand::Stop { agent, json }) => {
            let id = client.resolve(&agent).await?;
            let out: OneAgent = client
                .call(Method::POST, &format!("/agents/{id}/stop"), None)
                .await?;
            report(&out.agent, json, "Stopped");
        }
        Request::Agents(AgentsCommand::Rm { agent, json }) => {
            let id = client.resolve(&agent).await?;
            let out: Value = client
                .call(Method::DELETE, &format!("/agents/{id}"), None)
                .await?;
            if json {
                print_json(&out);
            } else {
                crate::say!("Deleted {agent}");
            }
        }
        Request::Agents(AgentsCommand::Set {
            agent,
            provider,
            provider_name,
            base_url,
            model,
            api_key_stdin,
            memory,
            cpus,
            no_cpu_limit,
            disk,
            json,
        }) => {
            let api_key = if api_key_stdin {
                Some(read_key_from_stdin()?)
            } else {
                None
            };
            let id = client.resolve(&agent).await?;
            let mut body = json!({
                "providerType": provider, "providerName": provider_name,
                "baseUrl": base_url, "modelId": model, "apiKey": api_key,
                "memoryMiB": memory, "diskMiB": disk,
            });
            // `cpus: null` removes the limit: sent only when asked for.
            if let Some(cpus) = cpus {
                body["cpus"] = json!(cpus);
            } else if no_cpu_limit {
                body["cpus"] = Value::Null;
            }
            let out: OneAgent = client
                .call(Method::PATCH, &format!("/agents/{id}"), Some(body))
                .await?;
            report(&out.agent, json, "Updated");
        }
        Request::Agents(AgentsCommand::Update { agent, all, json }) => {
            let targets: Vec<(String, String)> = match (agent, all) {
                (Some(agent), false) => vec![(client.resolve(&agent).await?, agent)],
                (None, true) => {
                    let list: AgentList = client.call(Method::GET, "/agents", None).await?;
                    list.agents
                        .into_iter()
                        .map(|a| (a.id.to_string(), a.name))
                        .collect()
                }
                _ => return Err(CliError::Other("name an agent, or give --all".into())),
            };
            let mut failed = false;
            for (id, name) in targets {
                let out: Result<Value, CliError> = client
                    .call(Method::POST, &format!("/agents/{id}/update"), None)
                    .await;
                match out {
                    Ok(out) if json => print_json(&out),
                    Ok(out) => match out["rolledBack"].as_str() {
                        Some(why) => {
                            failed = true;
                            crate::say!("{name}: {why}");
                        }
                        None if out["updated"] == true => crate::say!("{name}: updated"),
                        None => crate::say!("{name}: up to date"),
                    },
                    Err(e) => {
                        failed = true;
                        crate::tell!("{name}: {}", cli_message(&e));
                    }
                }
            }
            if failed {
                return Err(CliError::Other("some agents were not updated".into()));
            }
        }
        Request::Agents(AgentsCommand::RotateToken { agent, json }) => {
            let id = client.resolve(&agent).await?;
            let out: OneAgent = client
                .call(Method::POST, &format!("/agents/{id}/rotate-token"), None)
                .await?;
            report(&out.agent, json, "New gateway token for");
        }
        Request::Agents(AgentsCommand::Cancel { agent }) => {
            let id = client.resolve(&agent).await?;
            let out: MaybeAgent = client
                .call(Method::POST, &format!("/agents/{id}/cancel"), None)
                .await?;
            match out.agent {
                Some(agent) => report(&agent, false, "Cancelled; now"),
                None => crate::say!("Cancelled the create of {agent}; it is removed"),
            }
        }
        Request::Agents(AgentsCommand::Open {
            agent,
            print,
            show_token,
        }) => {
            let id = client.resolve(&agent).await?;
            let with_token = print && (show_token || std::io::stdout().is_terminal());
            // The opener's command line (xdg-open, the browser) is readable by every
            // local user: it gets the path of a private page holding a one-time
            // address, never the token nor the address.
            let dashboard: Dashboard = if with_token {
                client
                    .call(Method::GET, &format!("/agents/{id}/dashboard"), None)
                    .await?
            } else {
                client
                    .call(Method::POST, &format!("/agents/{id}/dashboard"), None)
                    .await?
            };
            if print {
                crate::say!("{}", dashboard.url);
                if !with_token {
                    crate::tell!(
                        "A one-time address, good for {} s; --show-token prints the dashboard's own address with its token.",
                        clawdock_core::dashboard::TICKET_TTL.as_secs()
                    );
                }
            } else {
                crate::browser::open_dashboard(&client.home, &dashboard.url).map_err(|e| {
                    CliError::Other(format!(
                        "{e}; `clawdock agents open {agent} --print` prints the address"
                    ))
                })?;
                crate::say!("Opened the dashboard of {agent}");
            }
        }
        Request::Agents(AgentsCommand::Export {
            agent,
            kubernetes,
            namespace,
            storage,
            force,
            with_workspace,
            json,
        }) => {
            let id = client.resolve(&agent).await?;
            let path = export_path(&id, &namespace, &storage, with_workspace)?;
            let export: Export = client.call(Method::GET, &path, None).await?;
            let tarball = if with_workspace {
                // The agent's folder is on this computer: the instance runs here.
                let one: OneAgent = client
                    .call(Method::GET, &format!("/agents/{id}"), None)
                    .await?;
                let workspace = one.agent.dir.join("workspace");
                let packed =
                    tokio::task::spawn_blocking(move || export::workspace_tarball(&workspace))
                        .await
                        .map_err(|e| {
                            CliError::Other(format!("packing the workspace failed: {e}"))
                        })?;
                Some(packed.map_err(|e| CliError::Other(e.to_string()))?)
            } else {
                None
            };
            export::write_folder(&kubernetes, &export, tarball.as_deref(), force)
                .map_err(|e| CliError::Other(e.to_string()))?;
            if json {
                print_json(&json!({
                    "name": export.name, "mappedFrom": export.mapped_from,
                    "namespace": export.namespace, "dir": kubernetes,
                    "files": export.files.keys().collect::<Vec<_>>(),
                }));
            } else {
                if let Some(from) = &export.mapped_from {
                    crate::say!(
                        "`{from}` is not a valid Kubernetes name; its resources are named `{}`.",
                        export.name
                    );
                }
                crate::say!(
                    "Wrote {} (namespace {}). It holds the gateway token and the provider key.",
                    kubernetes.display(),
                    export.namespace
                );
                crate::say!(
                    "Apply: kubectl create namespace {}; kubectl apply {}-k {}  (more in its README.md)",
                    export.namespace,
                    if with_workspace { "--server-side " } else { "" },
                    kubernetes.display()
                );
            }
        }
        Request::Agents(AgentsCommand::Backup {
            agent,
            output,
            json,
        }) => {
            let id = client.resolve(&agent).await?;
            let written = client
                .download(&format!("/agents/{id}/backup"), &output)
                .await?;
            if json {
                print_json(&json!({ "agent": agent, "file": output, "bytes": written }));
            } else {
                crate::say!(
                    "Wrote the backup of {agent} to {} ({}). It holds the provider key: keep it private.",
                    output.display(),
                    size_words(written)
                );
            }
        }
        Request::Agents(AgentsCommand::Restore {
            file,
            name,
            replace,
            no_wait,
            json,
        }) => {
            let events = if no_wait {
                None
            } else {
                Some(client.stream("/events").await?)
            };
            let path = restore_path(name.as_deref(), replace)?;
            let outcome: RestoreOutcome = client.upload(&path, &file).await.map_err(|e| {
                match e {
                    CliError::Api(m) if m.starts_with("An agent named") => CliError::Api(format!(
                        "{m} Give the restored agent another name with --name NEW, or replace it with --replace."
                    )),
                    other => other,
                }
            })?;
            if !json {
                say_restored(&outcome);
            }
            let mut agent = outcome.agent.clone();
            if let Some(events) = events {
                if !json {
                    crate::tell!("Starting {}...", agent.name);
                }
                agent = wait_settled(events, agent.id).await?;
            }
            if json {
                print_json(&json!({ "restored": outcome, "agent": agent }));
            } else if agent.status != AgentStatus::Error {
                report(&agent, false, "Restored");
            }
            if agent.status == AgentStatus::Error {
                return Err(CliError::Api(failure_words(&agent)));
            }
        }
        Request::Agents(AgentsCommand::Snapshots {
            agent,
            restore,
            json,
        }) => {
            let id = client.resolve(&agent).await?;
            if let Some(snapshot) = restore {
                let outcome: RestoreOutcome = client
                    .call(
                        Method::POST,
                        &format!(
                            "/agents/{id}/snapshots/{}/restore",
                            clawdock_core::engine::client::query_value(&snapshot)
                        ),
                        None,
                    )
                    .await?;
                if json {
                    print_json(&outcome);
                } else {
                    say_restored(&outcome);
                }
                return Ok(());
            }
            let list: SnapshotList = client
                .call(Method::GET, &format!("/agents/{id}/snapshots"), None)
                .await?;
            if json {
                print_json(&list.snapshots);
            } else if list.snapshots.is_empty() {
                crate::say!("{agent} has no snapshots yet (one is taken before each update, edit and limits change).");
            } else {
                for s in &list.snapshots {
                    crate::say!(
                        "{}  before {:<8} {}",
                        s.taken_at.format("%Y-%m-%d %H:%M:%S"),
                        s.before,
                        s.name
                    );
                }
                crate::say!("Put one back: clawdock agents snapshots {agent} --restore SNAPSHOT");
            }
        }
        Request::Agents(AgentsCommand::Chat { agent, message }) => {
            let id = client.resolve(&agent).await?;
            let path = format!("/agents/{id}/chat");
            if let Some(message) = message {
                return client.chat_turn(&path, &message).await;
            }
            let terminal = std::io::stdin().is_terminal();
            if terminal {
                crate::tell!("Chatting with {agent}; Ctrl-D ends.");
            }
            let mut lines =
                tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
            loop {
                if terminal {
                    crate::console::out_piece("> ");
                }
                let line = lines
                    .next_line()
                    .await
                    .map_err(|e| CliError::Other(format!("could not read standard input: {e}")))?;
                let Some(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                client.chat_turn(&path, &line).await?;
            }
        }
        Request::Agents(AgentsCommand::Logs {
            agent,
            follow,
            container,
        }) => {
            let id = client.resolve(&agent).await?;
            let mut path = format!("/agents/{id}/logs?follow={follow}");
            if container {
                path.push_str("&source=container");
            }
            // The lines are the agent's: to a terminal, its escapes are shown, not
            // obeyed; a pipe or a file gets them as written.
            let terminal = std::io::stdout().is_terminal();
            let mut lines = std::pin::pin!(client.stream(&path).await?);
            while let Some(data) = lines.next().await {
                let line: String = serde_json::from_str(&data).unwrap_or(data);
                if terminal {
                    crate::say!("{}", crate::console::inert(&line));
                } else {
                    crate::say!("{line}");
                }
            }
        }
    }
    Ok(())
}

/// `/agents/restore?name=..&replace=..`, the values encoded.
fn restore_path(name: Option<&str>, replace: bool) -> Result<String, CliError> {
    let mut url = reqwest::Url::parse("http://clawdock/agents/restore")
        .map_err(|e| CliError::Other(e.to_string()))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(name) = name {
            query.append_pair("name", name);
        }
        query.append_pair("replace", &replace.to_string());
    }
    Ok(format!(
        "{}?{}",
        url.path(),
        url.query().unwrap_or_default()
    ))
}

/// What a restore made, in words.
fn say_restored(outcome: &RestoreOutcome) {
    crate::say!(
        "Restored {} from the backup of {} taken {}: {} files, {}.",
        outcome.agent.name,
        outcome.from_name,
        outcome.taken_at.format("%Y-%m-%d %H:%M UTC"),
        outcome.files,
        size_words(outcome.bytes)
    );
    if let Some(replaced) = &outcome.replaced {
        crate::say!(
            "It replaced the agent {replaced}; a snapshot of that one is kept (clawdock agents snapshots {}).",
            outcome.agent.name
        );
    }
    for skipped in &outcome.skipped {
        crate::say!("Not in the backup: {} ({})", skipped.path, skipped.why);
    }
}

/// Bytes for people.
fn size_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// `/agents/{id}/export?format=kubernetes&namespace=..&storage=..&withWorkspace=..`, the values
/// encoded.
fn export_path(
    id: &str,
    namespace: &str,
    storage: &str,
    with_workspace: bool,
) -> Result<String, CliError> {
    let mut url = reqwest::Url::parse(&format!("http://clawdock/agents/{id}/export"))
        .map_err(|e| CliError::Other(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("format", "kubernetes")
        .append_pair("namespace", namespace)
        .append_pair("storage", storage)
        .append_pair("withWorkspace", &with_workspace.to_string());
    Ok(format!(
        "{}?{}",
        url.path(),
        url.query().unwrap_or_default()
    ))
}

/// The API key piped in (`--api-key-stdin`), without surrounding whitespace.
fn read_key_from_stdin() -> Result<String, CliError> {
    let mut key = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut key)
        .map_err(|e| CliError::Other(format!("could not read the API key from stdin: {e}")))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::Other(
            "--api-key-stdin: standard input held no key".into(),
        ));
    }
    Ok(key.to_string())
}

/// Reads the event stream until the agent is running or failed.
async fn wait_settled(
    events: impl futures::Stream<Item = String>,
    id: uuid::Uuid,
) -> Result<AgentView, CliError> {
    let mut events = std::pin::pin!(events);
    while let Some(data) = events.next().await {
        let Ok(event) = serde_json::from_str::<Event>(&data) else {
            continue;
        };
        let agent = match event {
            Event::Agent { agent, .. } => Some(agent),
            Event::Snapshot { agents, .. } => agents.into_iter().find(|a| a.id == id),
            Event::AgentRemoved { id: gone } if gone == id => {
                return Err(CliError::Api(
                    "the agent was deleted while it was being created".into(),
                ))
            }
            _ => None,
        };
        if let Some(agent) = agent {
            if agent.id == id
                && agent.activity.is_none()
                && matches!(
                    agent.status,
                    AgentStatus::Running | AgentStatus::Error | AgentStatus::Stopped
                )
            {
                return Ok(agent);
            }
        }
    }
    Err(CliError::Other(
        "the event stream ended before the agent settled".into(),
    ))
}

/// An enum's wire word (`ready`, `native`), for people.
fn to_word(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// An agent's failure in a terminal's words: the core's sentence, and how to try
/// again from here (the window says "press Start").
fn failure_words(agent: &AgentView) -> String {
    format!(
        "{} failed: {}\nTo try again: clawdock agents start {}",
        agent.name,
        agent.error.as_deref().unwrap_or("it did not start"),
        agent.name
    )
}

fn report(agent: &AgentView, json: bool, verb: &str) {
    if json {
        print_json(agent);
    } else if agent.status == AgentStatus::Error {
        crate::say!(
            "{} failed: {}",
            agent.name,
            agent.error.as_deref().unwrap_or("?")
        );
    } else {
        crate::say!(
            "{verb} {} ({}, port {})",
            agent.name,
            to_word(&agent.status),
            agent.port
        );
    }
}

fn print_json(v: &impl serde::Serialize) {
    crate::say!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn print_table(agents: &[AgentView]) {
    if agents.is_empty() {
        crate::say!("No agents yet. Create one with `clawdock agents create NAME`.");
        return;
    }
    let rows: Vec<[String; 5]> = agents
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                {
                    let status = a
                        .activity
                        .map_or_else(|| to_word(&a.status), |activity| to_word(&activity));
                    if a.update_available {
                        format!("{status}, update available")
                    } else {
                        status
                    }
                },
                a.port.to_string(),
                a.gateway_url.clone().unwrap_or_else(|| "-".into()),
                a.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["NAME", "STATUS", "PORT", "GATEWAY", "ERROR"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut out = String::new();
        for i in 0..4 {
            out.push_str(&format!("{:<w$}  ", cells[i], w = widths[i]));
        }
        out.push_str(cells[4]);
        crate::say!("{}", out.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
}
