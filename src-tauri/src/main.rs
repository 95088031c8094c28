//! The `clawdock` binary: the tray app (no arguments), the headless server
//! (`serve`), and the command line that talks to a running instance.

mod cli;
mod desktop;
mod exit;
mod logging;
mod serve;
mod wake;

use clap::{Parser, Subcommand};

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
    /// Started by the login item: the tray only, no window.
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
    /// (made fresh at every start).
    Url,
    /// Quit the running instance: stop its agents, then exit. Exits 4 when
    /// containers were left running.
    Quit {
        #[arg(long)]
        json: bool,
    },
}

fn environment_help() -> String {
    let mut text = String::from("Environment:\n");
    for (name, what) in clawdock_core::settings::ENVIRONMENT {
        text.push_str(&format!("  {name:<26} {what}\n"));
    }
    text
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match args.command {
        None => desktop::run(args.at_login),
        Some(Command::Serve { port }) => serve::run(port),
        Some(Command::Status { json }) => cli::run(cli::Request::Status { json }),
        Some(Command::Agents { command }) => cli::run(cli::Request::Agents(
            command.unwrap_or(cli::AgentsCommand::List { json: false }),
        )),
        Some(Command::Url) => cli::run(cli::Request::Url),
        Some(Command::Quit { json }) => cli::run(cli::Request::Quit { json }),
    }
}
