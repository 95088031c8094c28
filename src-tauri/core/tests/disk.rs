//! Issue 30, item 4, on real Podman: an agent could fill the user's disk through its
//! workspace, cache, config folder or its log. Its disk use (folders, writable
//! layer, log) is measured against a limit (a default and an edit, like memory); an
//! agent past it is stopped with a reason the user can act on, and not started
//! again until it is under it; the container's log is capped.

mod support;

use std::time::Duration;

use clawdock_core::agents::{AgentError, CreateRequest, EditRequest, ErrorCode};
use clawdock_core::events::{Change, Event};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use support::{derived_image, podman_out, Home, IMAGE};

fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

/// Fault: nothing bounded what an agent wrote. Here it writes 320 MiB at the
/// bottom of 1,500 nested folders (where a count that stops at a depth, or holds a
/// descriptor per level, would not see it) with a limit of 300 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_writes_past_its_disk_limit_is_stopped_with_a_reason() {
    let home = Home::new();
    let mut settings = home.native(IMAGE);
    settings.disk_check_period = Duration::from_secs(1);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let mut events = core.subscribe();
    let name = unique("filler");
    let agent = agents
        .create_and_wait(CreateRequest {
            name: name.clone(),
            disk_mib: Some(300),
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    assert_eq!(agent.disk_mib, Some(300));

    let container = format!("clawdock-{name}");
    podman_out(&[
        "exec",
        &container,
        "sh",
        "-c",
        "cd /home/node/.openclaw/workspace && i=0 && while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done && dd if=/dev/zero of=fill bs=1M count=320 2>/dev/null",
    ]);
    support::until_agent(
        &agents,
        agent.id,
        Duration::from_secs(30),
        "stopped for its disk use",
        |a| a.status == AgentStatus::Error && a.activity.is_none(),
    )
    .await;
    let view = agents.get(agent.id).expect("agent");
    let error = view.error.clone().unwrap_or_default();
    assert!(error.contains("over its limit of 300 MiB"), "{error}");
    assert!(
        error.contains("workspace") && error.contains("Settings"),
        "what to do: {error}"
    );
    assert!(view.disk_used_mib.is_some_and(|m| m >= 320), "{view:?}");
    assert_eq!(
        podman_out(&["inspect", "--format", "{{.State.Status}}", &container]),
        "exited",
        "stopped, not killed: {}",
        podman_out(&["inspect", "--format", "{{.State.ExitCode}}", &container])
    );
    let mut told = false;
    while let Ok(event) = events.try_recv() {
        if let Event::Agent {
            change: Some(Change::OverDisk { message }),
            ..
        } = event
        {
            told = message == error;
        }
    }
    assert!(told, "one notification says why");
    // Not a crash: nothing starts it again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        agents.get(agent.id).map(|a| a.status),
        Some(AgentStatus::Error)
    );

    // A start while over the limit is refused, with the reason.
    match agents.start(agent.id).await {
        Err(e @ AgentError::OverDisk(_)) => assert_eq!(e.code(), ErrorCode::DiskLimit),
        other => panic!("a start over the limit: {other:?}"),
    }
    // A higher limit (no new container for it), and it runs.
    let raised = agents
        .edit(
            agent.id,
            EditRequest {
                disk_mib: Some(1024),
                ..EditRequest::default()
            },
        )
        .await
        .expect("a new disk limit");
    assert_eq!(raised.disk_mib, Some(1024));
    let started = agents.start(agent.id).await.expect("start");
    assert_eq!(started.status, AgentStatus::Running);
    core.shutdown().await;
}

/// Fault: Podman's `k8s-file` log grows without end; a gateway that prints in a
/// loop fills the disk through it. This one prints 24 MB before it serves: its log
/// stays under the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_prints_without_end_keeps_a_bounded_log() {
    let chatty = derived_image(
        "localhost/clawdock-test-gateway-chatty:latest",
        r#"ENTRYPOINT ["/bin/sh","-c","head -c 24000000 /dev/zero | tr '\\0' 'x' | fold -w 200; exec \"$@\"","gateway"]"#,
    );
    let home = Home::new();
    let core = Clawdock::start(home.native(chatty)).await.expect("core");
    let name = unique("chatty");
    core.agents()
        .create_and_wait(CreateRequest {
            name: name.clone(),
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    let log = podman_out(&[
        "inspect",
        "--format",
        "{{.HostConfig.LogConfig.Path}}",
        &format!("clawdock-{name}"),
    ]);
    let size = std::fs::metadata(&log).expect("the log file").len();
    assert!(
        size <= clawdock_core::sizing::CONTAINER_LOG_MAX_BYTES,
        "24 MB printed, {size} bytes kept"
    );
    core.shutdown().await;
}
