//! The `clawdock` binary: the command line that talks to a running instance, and
//! the headless server (`serve`). It never loads the GUI libraries; with no
//! arguments it becomes the tray app, `clawdock-app`, installed beside it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clawdock::{cli, serve};

#[derive(Parser)]
#[command(
    name = "clawdock",
    version,
    about = "Run OpenClaw agents on Podman, from the tray or the terminal.",
    after_help = environment_help()
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Started by the login item: the tray only, no window (login items written
    /// before the app had its own binary name this one).
    #[arg(long = "at-login", hide = true)]
    at_login: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the core and the HTTP API without tray or window (servers, CI).
    Serve {
        /// Port on 127.0.0.1 and [::1] (0 picks a free one).
        #[arg(long, default_value_t = clawdock_core::settings::DEFAULT_API_PORT)]
        port: u16,
    },
    /// Show the runtime and agents of the running instance.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Manage agents of the running instance.
    Agents {
        #[command(subcommand)]
        command: Option<cli::AgentsCommand>,
    },
    /// Print the address of the web UI of the running instance, with its token
    /// (made fresh at every start) when printing to a terminal or with
    /// --show-token; to a pipe or a file without it, the address alone.
    Url {
        /// Print the token to a pipe or a file too.
        #[arg(long)]
        show_token: bool,
    },
    /// Quit the running instance: stop its agents, then exit. Exits 4 when
    /// containers were left running.
    Quit {
        #[arg(long)]
        json: bool,
    },
    /// Check what a failed set-up is usually about (Podman and its version, the
    /// engine, the machine and its helper, cgroups, rootless prerequisites, disk,
    /// clock, proxy, the API's port), each with its fix. Exits 1 if a check fails.
    /// Needs no running instance.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Also write a support archive (findings, versions, recent logs, agents'
        /// states, gateways' last lines) with every secret taken out.
        #[arg(long, value_name = "FILE")]
        bundle: Option<PathBuf>,
    },
    /// Print a shell completion script (the package installs them).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn environment_help() -> String {
    let mut text = String::from("Environment:\n");
    for (name, what) in clawdock_core::settings::ENVIRONMENT {
        text.push_str(&format!("  {name:<26} {what}\n"));
    }
    text
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        None => run_app(args.at_login),
        Some(Command::Serve { port }) => serve::run(port),
        Some(Command::Status { json }) => cli::run(cli::Request::Status { json }),
        Some(Command::Agents { command }) => cli::run(cli::Request::Agents(
            command.unwrap_or(cli::AgentsCommand::List { json: false }),
        )),
        Some(Command::Url { show_token }) => cli::run(cli::Request::Url { show_token }),
        Some(Command::Quit { json }) => cli::run(cli::Request::Quit { json }),
        Some(Command::Doctor { json, bundle }) => cli::doctor(json, bundle),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            let mut command = Args::command();
            clap_complete::generate(shell, &mut command, "clawdock", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// The tray app's binary: beside this one, as the packages install them.
fn app_binary() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(format!("clawdock-app{}", std::env::consts::EXE_SUFFIX)))
}

/// Becomes the tray app. On Unix the process is replaced, so whoever started
/// `clawdock` (a launcher, a login item, a test) holds the app's own process.
fn run_app(at_login: bool) -> ExitCode {
    let app = match app_binary() {
        Ok(app) => app,
        Err(e) => {
            clawdock::tell!("clawdock: cannot find the app beside this program: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut command = std::process::Command::new(&app);
    if at_login {
        command.arg("--at-login");
    }
    #[cfg(unix)]
    let failed = {
        use std::os::unix::process::CommandExt;
        command.exec()
    };
    #[cfg(not(unix))]
    let failed = match command.spawn() {
        Ok(_app) => return ExitCode::SUCCESS,
        Err(e) => e,
    };
    clawdock::tell!(
        "clawdock: could not start the app {}: {failed}",
        app.display()
    );
    ExitCode::FAILURE
}
