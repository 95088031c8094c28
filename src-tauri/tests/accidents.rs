//! The ordinary accidents of a day, with the real `clawdock serve` and real Podman:
//! the terminal it runs in is closed, the reader of its output goes away, it is
//! killed with SIGKILL. None of them may kill an agent hard or leave a process of
//! Clawdock's behind, and agents that ran come back at the next launch.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::api::{id_of, Api};
use common::{alive, wait_for, Launch, Serve, BIN, IMAGE};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

/// First agent port of one test of this file (they run in parallel).
fn port_base(slot: u16) -> String {
    (27000 + (std::process::id() % 50) as u16 * 40 + slot * 5).to_string()
}

/// An agent name no parallel run uses.
fn tagged(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

fn envs(slot: u16) -> Vec<(&'static str, String)> {
    vec![
        ("CLAWDOCK_AGENT_IMAGE", IMAGE.to_string()),
        ("CLAWDOCK_STOP_TIMEOUT", "5".to_string()),
        ("CLAWDOCK_PORT_BASE", port_base(slot)),
    ]
}

/// `clawdock serve` on `home` with the envs of test `slot`, stderr to nothing.
fn serve(home: &Path, slot: u16) -> Launch {
    Serve::launch(home).envs(envs(slot)).stderr(Stdio::null())
}

/// The instance's containers as `podman ps -a` rows.
fn rows(home: &Path) -> Vec<serde_json::Value> {
    common::instance_containers::rows(&common::instance_label(home).expect("instance label"))
}

/// Stopped, not killed: a container that stopped on SIGTERM does not exit 137.
fn assert_stopped_gracefully(home: &Path) {
    let rows = rows(home);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["State"], "exited", "{row}");
    assert_ne!(row["ExitCode"], 137, "killed, not stopped: {row}");
}

/// A second launch on the same folder (stdout to nothing) restores the agent that
/// ran at the first one's end, and says nothing of a kill.
async fn assert_restored(home: &Path, id: &str) {
    let serve = serve(home, 0).stdout(Stdio::null()).start();
    let seen = serve
        .api()
        .wait_agent(id, Duration::from_secs(60), |a| a["status"] == "running")
        .await;
    // Stopped before the verdict, as a user quits it: SIGTERM, then SIGKILL after 30 s.
    drop(serve);
    let seen = seen.unwrap_or_else(|last| panic!("the agent did not come back: {last:?}"));
    assert!(seen["error"].is_null(), "{seen}");
}

/// `clawdock serve` on a terminal (spawned by `portable_pty`): stopped like a
/// [`Serve`] (SIGTERM, then SIGKILL after 30 s) if the test ends while it runs.
struct OnTerminal(Box<dyn portable_pty::Child + Send + Sync>);

impl OnTerminal {
    fn exited(&mut self) -> Option<portable_pty::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.0.process_id() {
            let _sent = common::signal(pid, "TERM");
        }
        if !wait_for(Duration::from_secs(30), || self.exited().is_some()) {
            let _gone = self.0.kill();
            let _reaped = self.0.wait();
        }
    }
}

/// Fault: with its terminal closed, `serve` got SIGHUP, its `eprintln!` failed
/// (EIO) and panicked; the panic hook killed every container (exit 137), panicked
/// again in its own `eprintln!` and aborted. Nothing was saved, so at the next
/// launch the agent was not restored and read "killed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_terminal_stops_the_agents_gracefully_and_they_come_back() {
    common::ensure_images();
    let home = common::Home::new();
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(BIN);
    cmd.args(["serve", "--port", "0"]);
    cmd.env("CLAWDOCK_HOME", home.path());
    for (k, v) in envs(1) {
        cmd.env(k, v);
    }
    let mut serve = OnTerminal(pty.slave.spawn_command(cmd).expect("serve on a terminal"));
    drop(pty.slave);
    let pid = serve.0.process_id().expect("pid");
    // Read the terminal so serve's writes never block, until it is closed below.
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let (printed_tx, printed) = std::sync::mpsc::channel();
    let reading = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&text).contains("Web UI:") {
                let _ = printed_tx.send(String::from_utf8_lossy(&text).into_owned());
                break;
            }
        }
    });
    let api = Api::of(home.path(), pid);
    let banner = printed
        .recv_timeout(Duration::from_secs(30))
        .expect("the banner on the terminal");
    assert!(
        banner.contains("#token="),
        "a terminal gets the link: {banner}"
    );
    reading.join().expect("reader thread");
    let id = id_of(&api.create_running(&tagged("tty")).await);

    // Closing the terminal: its last holder goes, the kernel hangs up on serve.
    drop(pty.master);
    let mut status = None;
    wait_for(Duration::from_secs(60), || {
        status = serve.exited();
        status.is_some()
    });
    let status = status.expect("serve did not exit after its terminal closed");
    assert_eq!(status.exit_code(), 0, "{status:?}");
    assert_stopped_gracefully(home.path());
    assert_restored(home.path(), &id).await;
}

/// Fault: `clawdock serve | head -1`: once the reader of its stdout was gone, the
/// next `println!` panicked (EPIPE) and the panic hook killed the agents. A stdout
/// nobody reads now ends `serve` as gracefully as SIGTERM does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_gracefully_when_the_reader_of_its_output_goes() {
    common::ensure_images();
    let home = common::Home::new();
    let mut serve = serve(home.path(), 2).stdout(Stdio::piped()).spawn();
    let mut out = std::io::BufReader::new(serve.child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    while !banner.contains("Web UI:") {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut out, &mut line).expect("read");
        assert_ne!(
            read, 0,
            "serve ended its output before the banner: {banner}"
        );
        banner.push_str(&line);
    }
    let id = id_of(&serve.api().create_running(&tagged("pipe")).await);

    // What `head -1` does after its line: the only reader of the pipe goes.
    drop(out);
    let status = serve
        .wait_exit(Duration::from_secs(60))
        .expect("serve kept running with nobody reading its output");
    assert_eq!(status.code(), Some(0), "{status}");
    assert_stopped_gracefully(home.path());
    assert_restored(home.path(), &id).await;
}

/// The pids of `pid`'s living children (zombies are dead already).
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && state != "Z" {
            found.push(child);
        }
    }
    found
}

fn cmdline(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ")
}

/// Fault: `kill -9` of `serve` left its `podman events` child running for ever,
/// re-parented to init; a day of crashes left ten of them. Since issue 24 the
/// one long-lived child is the engine's API service (the events are a request
/// to it): it finishes what it was asked and ends by its idle bound, on its own.
#[test]
fn serve_killed_with_sigkill_leaves_no_process_it_started() {
    let home = common::Home::new();
    let mut serve = serve(home.path(), 3).stdout(Stdio::null()).start();
    let pid = serve.pid();
    let mut started = Vec::new();
    assert!(
        wait_for(Duration::from_secs(30), || {
            started = children_of(pid);
            started
                .iter()
                .any(|p| cmdline(*p).contains("system service"))
        }),
        "serve started no engine service: {:?}",
        started.iter().map(|p| cmdline(*p)).collect::<Vec<_>>()
    );
    serve.kill9();
    let left = |started: &[u32]| -> Vec<String> {
        started
            .iter()
            .filter(|p| alive(**p))
            .map(|p| cmdline(*p))
            .collect()
    };
    let others: Vec<u32> = started
        .iter()
        .copied()
        .filter(|p| !cmdline(*p).contains("system service"))
        .collect();
    assert!(
        wait_for(Duration::from_secs(2), || left(&others).is_empty()),
        "still running 2 s after serve's SIGKILL: {:?}",
        left(&others)
    );
    let bound = Duration::from_secs(u64::from(clawdock_core::engine::socket::OWNED_IDLE_SECS) + 15);
    assert!(
        wait_for(bound, || left(&started).is_empty()),
        "the engine service outlived its idle bound after serve's SIGKILL: {:?}",
        left(&started)
    );
}

/// Fault (found by the package test): on a computer without Podman, quitting said
/// containers were left running (exit 4): the listing that could not run counted
/// as "unknown". Without Podman nothing of Clawdock's can run.
#[test]
fn without_podman_a_quit_is_clean() {
    let home = common::Home::new();
    let mut serve = Serve::launch(home.path())
        .env("CLAWDOCK_PODMAN", home.path().join("no-podman-here"))
        .quiet()
        .start();
    serve.signal("TERM");
    let status = serve
        .wait_exit(Duration::from_secs(30))
        .expect("serve did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Whether the engine service on `socket` answers a ping now. Slow is not
/// refusing: only a failed connection or a closed one without an answer is.
fn answers(socket: &Path) -> bool {
    use std::io::Write;
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _timeout = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        // "HTTP/1.0 200 OK": the version of the request.
        Ok(_) => answer.starts_with(b"HTTP/1.") && answer.get(8..13) == Some(b" 200 "),
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Fault (issue 29, item 3): Ctrl-C in the terminal running `clawdock serve`
/// reached its whole process group, the engine service it owns included
/// (measured: the group held `clawdock` and `podman`). The service took it for
/// its end: it closed its socket at once (it lingers only to finish the requests
/// it has), under the shutdown that still had the agent to stop through it. Now
/// the terminal's signal reaches Clawdock alone: the service serves until the
/// agent is stopped, and ends by Clawdock's hand after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_to_serves_process_group_reaches_clawdock_alone() {
    common::ensure_images();
    let home = common::Home::new();
    // A group of its own, as a shell gives a job in a terminal.
    let mut serve = serve(home.path(), 4)
        .stdout(Stdio::null())
        .own_process_group()
        .start();
    let pid = serve.pid();
    serve.api().create_running(&tagged("ctrlc")).await;
    let socket = home.path().join("engine.sock");
    let service = children_of(pid)
        .into_iter()
        .find(|p| cmdline(*p).contains("system service"))
        .expect("serve's own engine service");
    assert!(answers(&socket), "the service answers before the signal");

    // What the terminal does on Ctrl-C: SIGINT to the foreground process group.
    let sent = Command::new("kill")
        .args(["-INT", "--", &format!("-{pid}")])
        .status()
        .expect("kill");
    assert!(sent.success());
    // Watched back to back, with no pause, until it exits: a named wait's 100 ms
    // between looks could miss the service refusing under the agent.
    let began = Instant::now();
    let mut refused_under_the_agent = false;
    let status = loop {
        if let Some(status) = serve.child.try_wait().expect("wait") {
            break status;
        }
        // In this order: the service seen refusing, then the container seen
        // still running, means it refused while the agent still ran.
        let serving = answers(&socket);
        let running = rows(home.path()).iter().any(|r| r["State"] == "running");
        refused_under_the_agent |= !serving && running;
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "serve did not exit after SIGINT"
        );
    };
    assert!(
        !refused_under_the_agent,
        "the engine service stopped serving while the agent still ran: the signal reached it"
    );
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        wait_for(Duration::from_secs(5), || !alive(service)),
        "Clawdock ended its service at its exit"
    );
    assert_stopped_gracefully(home.path());
}
