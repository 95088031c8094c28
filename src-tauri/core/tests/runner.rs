//! The podman runner: drained pipes, timeouts, kill on timeout, typed errors; the
//! same on a pseudo-terminal (clean lines, kill on drop, no thread left behind); and
//! one real container run and removed through it.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clawdock_core::engine::{Call, Podman, PodmanError};

/// A stand-in "podman" that is a shell, so a test can make it print or hang.
fn shell() -> Podman {
    Podman::new(Some(PathBuf::from("/bin/sh")))
}

#[tokio::test]
async fn ten_megabytes_on_both_pipes_do_not_hang() {
    // Fault 5 of the replaced runtime: piped but unread output filled the pipe and hung.
    let script = "head -c 10485760 /dev/zero | tr '\\0' 'o'; head -c 10485760 /dev/zero | tr '\\0' 'e' >&2; exit 3";
    let started = Instant::now();
    let err = shell()
        .run(Call::new(["-c", script]).timeout(Duration::from_secs(60)))
        .await
        .expect_err("exit 3 is a failure");
    match &err {
        PodmanError::Failed {
            code, stderr_tail, ..
        } => {
            assert_eq!(code.0, Some(3));
            // Only the tail of stderr is kept, bounded.
            assert!(
                stderr_tail.len() <= 20 * 16 * 1024 + 20,
                "tail is bounded: {}",
                stderr_tail.len()
            );
            assert!(stderr_tail.ends_with("e [... cut]"), "a cut line says so");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let out = shell()
        .run(Call::new([
            "-c",
            "head -c 10485760 /dev/zero | tr '\\0' 'x'; head -c 1000000 /dev/zero >&2",
        ]))
        .await
        .expect("succeeds");
    assert_eq!(out.stdout.len(), 10 * 1024 * 1024);
}

#[tokio::test]
async fn hanging_child_is_killed_at_the_timeout() {
    let started = Instant::now();
    let pid_file = tempfile::NamedTempFile::new().expect("tmp");
    let script = format!("echo $$ > {}; exec sleep 300", pid_file.path().display());
    let err = shell()
        .run(Call::new(["-c", script.as_str()]).timeout(Duration::from_millis(500)))
        .await
        .expect_err("times out");
    assert!(matches!(err, PodmanError::TimedOut { .. }), "{err:?}");
    assert!(
        err.to_string().contains("did not finish within 0.5s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = std::fs::read_to_string(pid_file.path()).expect("pid");
    let alive = std::path::Path::new(&format!("/proc/{}", pid.trim())).exists();
    assert!(!alive, "the child was killed");
}

#[tokio::test]
async fn lines_stream_to_the_callback_and_errors_keep_stderr() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let err = shell()
        .run(
            Call::new(["-c", "echo one; echo two >&2; printf 'bar 10%%\\rbar 50%%\\r'>&2; echo 'Error: boom' >&2; exit 125"])
                .on_line(std::sync::Arc::new(move |_, line: &str| sink.lock().expect("lock").push(line.to_string()))),
        )
        .await
        .expect_err("fails");
    let lines = seen.lock().expect("lock").clone();
    assert!(
        lines.contains(&"one".to_string()) && lines.contains(&"bar 50%".to_string()),
        "{lines:?}"
    );
    assert_eq!(err.exit_code(), Some(125));
    assert!(err.says("boom"));
    assert!(
        err.to_string().contains("exit 125") && err.to_string().contains("Error: boom"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_binary_is_not_installed() {
    let err = Podman::new(Some("/nonexistent/podman".into()))
        .run(Call::new(["--version"]))
        .await
        .expect_err("missing");
    assert!(matches!(err, PodmanError::NotInstalled { .. }), "{err:?}");
    assert!(matches!(
        Podman::new(None).installation().await,
        clawdock_core::engine::Installation::Missing { .. }
    ));
}

#[tokio::test]
async fn real_podman_runs_and_removes_a_container() {
    support::ensure_test_images();
    let podman = support::real_podman();
    match podman.installation().await {
        clawdock_core::engine::Installation::Installed { version, .. } => {
            assert!(
                version.chars().next().is_some_and(|c| c.is_ascii_digit()),
                "{version}"
            )
        }
        other => panic!("podman must be installed for this test: {other:?}"),
    }
    let name = format!("clawdock-runner-test-{}", std::process::id());
    let out = podman
        .run(Call::new([
            "run",
            "--rm",
            "--name",
            &name,
            support::IMAGE,
            "sh",
            "-c",
            "echo hello-from-podman",
        ]))
        .await
        .expect("podman run");
    assert_eq!(out.stdout.trim(), "hello-from-podman");
    let left = podman
        .run(Call::new([
            "ps",
            "-a",
            "--quiet",
            "--filter",
            &format!("name=^{name}$"),
        ]))
        .await
        .expect("ps");
    assert!(left.stdout.trim().is_empty(), "the container was removed");
    let err = podman
        .run(Call::new(["stop", "no-such-container-xyz"]))
        .await
        .expect_err("no such");
    assert_eq!(err.exit_code(), Some(125));
    assert!(err.says("no such container"), "{err:?}");
}

/// Terminal calls run one at a time here, so a test can count the runner's threads.
static TERMINAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn collecting() -> (Lines, clawdock_core::engine::LineSink) {
    let lines: Lines = Default::default();
    let sink = lines.clone();
    (
        lines,
        std::sync::Arc::new(move |_, line: &str| sink.lock().expect("lock").push(line.to_string())),
    )
}

/// Threads of this process the terminal runner started.
fn terminal_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("podman-pty"))
        .count()
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[tokio::test]
async fn on_a_terminal_the_child_sees_one_and_its_lines_arrive_clean() {
    let _one = TERMINAL.lock().await;
    let (lines, sink) = collecting();
    let script = "[ -t 1 ] && [ -t 2 ] && echo 'on a terminal'; \
        echo \"term=$TERM secret=$CLAWDOCK_TEST_SECRET path=${PATH:+set}\"; pwd; stty size; \
        printf 'bar 10%%\\r\\033[1A\\033[Jbar 50%%\\r\\n\\n'; printf '\\033[31mred\\033[0m\\n' >&2; \
        head -c 100000 /dev/zero | tr '\\0' x";
    let out = shell()
        .run(
            Call::new(["-c", script])
                .env("CLAWDOCK_TEST_SECRET", "s3cret")
                .on_terminal()
                .on_line(sink),
        )
        .await
        .expect("runs");
    let lines = lines.lock().expect("lock").clone();
    let cwd = std::env::current_dir().expect("cwd");
    let mut expected: Vec<String> = [
        "on a terminal",
        "term=xterm-256color secret=s3cret path=set",
        cwd.to_str().expect("utf-8"),
        "100 200",
        "bar 10%",
        "bar 50%",
        "red",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.push(format!(
        "{}{}",
        "x".repeat(clawdock_core::engine::MAX_LINE),
        clawdock_core::engine::CUT_MARK
    ));
    assert_eq!(
        lines, expected,
        "split at \\r and \\n, codes and blank lines gone, cut"
    );
    assert_eq!(
        out.stdout, "",
        "one stream on a terminal: all of it is the tail"
    );
    assert!(
        out.stderr_tail.starts_with("on a terminal\n"),
        "{}",
        out.stderr_tail
    );
}

#[tokio::test]
async fn a_failure_on_a_terminal_keeps_its_exit_code_and_last_lines() {
    let _one = TERMINAL.lock().await;
    let err = shell()
        .run(
            Call::new([
                "-c",
                "echo one; printf 'bar\\rbar\\rbar\\n'; echo 'Error: boom' >&2; exit 125",
            ])
            .on_terminal(),
        )
        .await
        .expect_err("fails");
    assert!(matches!(err, PodmanError::Failed { .. }), "{err:?}");
    assert_eq!(err.exit_code(), Some(125));
    assert_eq!(
        err.stderr(),
        "one\nbar\nError: boom",
        "a redrawn line kept once"
    );
    assert!(
        err.to_string().contains("exit 125") && err.to_string().contains("Error: boom"),
        "{err}"
    );
}

#[tokio::test]
async fn a_hanging_child_on_a_terminal_is_killed_at_the_timeout_even_when_it_ignores_hangups() {
    let _one = TERMINAL.lock().await;
    let pid_file = tempfile::NamedTempFile::new().expect("tmp");
    let script = format!(
        "trap '' HUP; echo $$ > {}; echo started; exec sleep 300",
        pid_file.path().display()
    );
    let started = Instant::now();
    let err = shell()
        .run(
            Call::new(["-c", script.as_str()])
                .timeout(Duration::from_millis(1500))
                .on_terminal(),
        )
        .await
        .expect_err("times out");
    assert!(matches!(err, PodmanError::TimedOut { .. }), "{err:?}");
    assert_eq!(err.stderr(), "started", "what it printed is kept");
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(pid_file.path()).expect("pid");
    assert!(!alive(&pid), "the child was killed and reaped");
}

#[tokio::test]
async fn dropping_a_call_on_a_terminal_kills_its_child_and_ends_its_threads() {
    let _one = TERMINAL.lock().await;
    let pid_file = tempfile::NamedTempFile::new().expect("tmp");
    let script = format!(
        "echo $$ > {}; echo started; exec sleep 300",
        pid_file.path().display()
    );
    let (lines, sink) = collecting();
    let call = tokio::spawn(async move {
        shell()
            .run(
                Call::new(["-c", script.as_str()])
                    .on_terminal()
                    .on_line(sink),
            )
            .await
    });
    let seen = lines.clone();
    assert!(
        support::eventually(Duration::from_secs(20), || !seen
            .lock()
            .expect("lock")
            .is_empty())
        .await,
        "the child started"
    );
    let pid = std::fs::read_to_string(pid_file.path()).expect("pid");
    assert!(alive(&pid));
    assert_eq!(terminal_threads(), 2, "a reader and a waiter");
    // What cancelling an agent operation or the shutdown does: drop the future.
    call.abort();
    assert!(call.await.is_err_and(|e| e.is_cancelled()));
    assert!(
        support::eventually(Duration::from_secs(20), || !alive(&pid)).await,
        "the child was killed"
    );
    assert!(
        support::eventually(Duration::from_secs(20), || terminal_threads() == 0).await,
        "no thread outlives the call"
    );
}

#[tokio::test]
async fn a_missing_binary_on_a_terminal_is_not_installed() {
    let _one = TERMINAL.lock().await;
    let err = Podman::new(Some("/nonexistent/podman".into()))
        .run(Call::new(["--version"]).on_terminal())
        .await
        .expect_err("missing");
    assert!(matches!(err, PodmanError::NotInstalled { .. }), "{err:?}");
}

/// A process's group and session, from `/proc/<pid>/stat` ("pid (comm) state
/// ppid pgrp session ...").
fn group_and_session(stat: &str) -> (u32, u32) {
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u32> = after
        .split_whitespace()
        .skip(2)
        .take(2)
        .map(|f| f.parse().expect("number"))
        .collect();
    (fields[0], fields[1])
}

/// Fault (issue 29, item 3): a Ctrl-C or a hang-up in the terminal running
/// `clawdock serve` reached its whole process group, every podman child and the
/// engine service it owns included. Each child runs in a group of its own (and the
/// terminal call in a session of its own, on its own terminal): the terminal's
/// signals reach Clawdock alone.
#[tokio::test]
async fn every_podman_child_runs_apart_from_clawdocks_terminal() {
    let ours = group_and_session(&std::fs::read_to_string("/proc/self/stat").expect("stat"));
    let report = "cat /proc/$$/stat";

    let out = shell().run(Call::new(["-c", report])).await.expect("runs");
    let (group, session) = group_and_session(&out.stdout);
    assert_ne!(group, ours.0, "a call on pipes has a group of its own");
    assert_eq!(session, ours.1, "it needs no session of its own");

    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("stat");
    let script = format!(
        "cat /proc/$$/stat > {}.part && mv {0}.part {0}",
        file.display()
    );
    let mut service = shell()
        .spawn_service(&["-c".to_string(), script])
        .expect("service");
    let _ended = service.wait().await;
    let stat = std::fs::read_to_string(&file).expect("the service wrote its stat");
    assert_ne!(group_and_session(&stat).0, ours.0, "nor does the service");

    let _one = TERMINAL.lock().await;
    let (lines, sink) = collecting();
    shell()
        .run(Call::new(["-c", report]).on_terminal().on_line(sink))
        .await
        .expect("runs on a terminal");
    let stat = lines.lock().expect("lock").join(" ");
    let (group, session) = group_and_session(&stat);
    assert_ne!(group, ours.0, "{stat}");
    assert_ne!(
        session, ours.1,
        "the terminal call has a session of its own: {stat}"
    );
}
