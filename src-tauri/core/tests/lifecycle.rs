//! Issue 22 on real Podman (native mode): Clawdock owns restarts (a gateway that
//! keeps dying is started again on a back-off, said in the view and notified once),
//! and a cancel belongs to the one operation it was meant for.

mod support;

use std::time::{Duration, Instant};

use clawdock_core::agents::CreateRequest;
use clawdock_core::events::{Change, Event};
use clawdock_core::store::AgentStatus;
use clawdock_core::view::{Activity, AgentView};
use clawdock_core::Clawdock;
use support::{derived_image, eventually, podman_out, Home, IMAGE};

fn req(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        ..CreateRequest::default()
    }
}

fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

/// The stand-in gateway, made to die (exit 3) 2 s after it answers `/healthz`, at
/// every start: a crash loop.
fn dying_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-dying:latest",
        r#"ENTRYPOINT ["/bin/sh","-c","\"$@\" & until wget -q -O /dev/null http://127.0.0.1:18789/healthz; do usleep 100000; done; sleep 2; echo \"[gateway] fatal: dying 2 s after ready (test image)\" >&2; exit 3","gateway"]"#,
    )
}

/// Fault (issue 22, item 3): Podman's `--restart unless-stopped` brought a gateway
/// that died 2 s after each start back at once, 20 times in 45 s, and its error was
/// erased by each start. Now Clawdock starts it again after 1, 2, 4, 8, 16 s...:
/// over 60 s about 6 starts, the view says how often it crashed and when it tries
/// next, and the user gets one notification for the whole loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_keeps_dying_is_started_again_on_a_back_off_and_notified_once() {
    let home = Home::new();
    let core = Clawdock::start(home.native(dying_image()))
        .await
        .expect("core");
    let agents = core.agents();
    let name = unique("dying");
    let mut events = core.subscribe();
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    assert_eq!(agent.status, AgentStatus::Running);
    let began = Instant::now();
    let mut died = 0;
    let mut views: Vec<(Duration, AgentView)> = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(end, events.recv()).await {
            Err(_) => break,
            Ok(Ok(Event::Agent { agent: v, change })) if v.id == agent.id => {
                if matches!(change, Some(Change::Died { .. })) {
                    died += 1;
                }
                views.push((began.elapsed(), v));
            }
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("events ended: {e}"),
        }
    }
    let container = format!("clawdock-{name}");
    let logs = podman_out(&["logs", &container]);
    let starts = logs.matches("fake OpenClaw gateway starting").count();
    let timeline: Vec<String> = views
        .iter()
        .map(|(t, v)| {
            format!(
                "{:>5.1}s {:?} {:?} {:?}",
                t.as_secs_f64(),
                v.status,
                v.activity,
                v.crash_loop.as_ref().map(|c| c.summary.clone())
            )
        })
        .collect();
    eprintln!("starts in 60 s: {starts}\n{}", timeline.join("\n"));
    // 1 + revives after 1, 2, 4, 8, 16 s of back-off, each run ~2.5 s: 6 starts;
    // Podman's restart policy made about 25.
    assert!(
        (4..=8).contains(&starts),
        "{starts} starts in 60 s:\n{}",
        timeline.join("\n")
    );
    assert_eq!(died, 1, "one notification for the whole crash loop");

    // The view says it throughout: every view after the first death carries the
    // loop, its count never goes down, and while the agent waits it says when.
    let first_death = views
        .iter()
        .position(|(_, v)| v.status == AgentStatus::Error)
        .expect("a death");
    let mut last_count = 0;
    for (t, v) in &views[first_death..] {
        let crash = v
            .crash_loop
            .as_ref()
            .unwrap_or_else(|| panic!("at {t:?} the view lost the crash loop: {v:?}"));
        assert!(crash.crashes >= last_count, "{v:?}");
        last_count = crash.crashes;
        if v.status == AgentStatus::Error && v.activity.is_none() {
            let secs = crash.next_try_in_secs.expect("next try");
            assert!(
                crash.summary.contains(&format!("next try in {secs} s")),
                "{}",
                crash.summary
            );
            assert_eq!(crash.last_exit_code, Some(3), "{v:?}");
            assert!(
                v.error
                    .as_deref()
                    .is_some_and(|e| e.contains("exit code 3")),
                "{v:?}"
            );
        }
    }
    assert!(
        (starts as u32 - 1..=starts as u32).contains(&last_count),
        "{last_count} crashes counted for {starts} starts"
    );
    let now = agents.get(agent.id).expect("agent");
    let crash = now.crash_loop.clone().expect("crash loop");
    assert!(
        crash
            .last_logs
            .iter()
            .any(|l| l.contains("dying 2 s after ready")),
        "the last lines of the dead gateway: {crash:?}"
    );

    // Stop ends the loop: no start after it.
    let stopped = agents.stop(agent.id).await.expect("stop");
    assert_eq!(stopped.status, AgentStatus::Stopped);
    assert_eq!(stopped.crash_loop, None);
    let starts_at_stop = podman_out(&["logs", &container])
        .matches("fake OpenClaw gateway starting")
        .count();
    tokio::time::sleep(crash_wait(&crash)).await;
    let after = podman_out(&["logs", &container])
        .matches("fake OpenClaw gateway starting")
        .count();
    assert_eq!(after, starts_at_stop, "no start after Stop");
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
}

/// How long the loop would have waited for its next try, plus a margin: the time
/// to look for a start that must not come.
fn crash_wait(crash: &clawdock_core::view::CrashLoopView) -> Duration {
    Duration::from_secs(crash.next_try_in_secs.unwrap_or(0).min(20) + 3)
}

/// Fault (issue 22, item 8): a cancel during an update that found nothing new was
/// never cleared (only the other paths renewed the token), so the next start's
/// wait returned Cancelled at once and removed the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_an_update_with_nothing_new_does_not_cancel_the_next_start() {
    use support::engine_proxy::{Fault, Rule};
    let home = Home::new();
    // The engine's listing takes 2 s while the rule holds: the cancel lands while
    // the update looks for the agent's container.
    let engine = support::ProxiedEngine::start(home.path()).await;
    let settings = home.native_through(IMAGE, &engine);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let agent = agents
        .create_and_wait(req(&unique("stale")))
        .await
        .expect("create");

    engine.proxy.fault(Rule::new(
        "GET",
        "/v*/libpod/containers/json",
        Fault::Delay(Duration::from_secs(2)),
    ));
    let update = tokio::spawn({
        let agents = agents.clone();
        async move { agents.update(agent.id).await }
    });
    assert!(
        eventually(Duration::from_secs(10), || agents
            .get(agent.id)
            .is_some_and(|a| a.activity == Some(Activity::Updating)))
        .await
    );
    agents.cancel(agent.id).await.expect("cancel");
    let outcome = update.await.expect("join");
    engine.proxy.clear();
    if let Ok(outcome) = outcome {
        assert!(!outcome.updated, "{outcome:?}");
    }

    for round in 0..4 {
        agents.stop(agent.id).await.expect("stop");
        let started = agents.start(agent.id).await;
        assert!(
            started
                .as_ref()
                .is_ok_and(|a| a.status == AgentStatus::Running),
            "start {round} after the update's cancel: {started:?}"
        );
    }
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
}

/// Sets or clears the immutable flag (`chattr`): even root cannot remove or create
/// files under such a folder, as a read-only disk or a locked folder would refuse.
fn immutable(path: &std::path::Path, on: bool) {
    let flag = if on { "+i" } else { "-i" };
    let status = std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .expect("chattr");
    assert!(status.success(), "chattr {flag} {}", path.display());
}

/// Clears the flag when dropped, so a failed test leaves a removable folder.
struct Unlock(std::path::PathBuf);

impl Drop for Unlock {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// Fault (issue 22, item 6): a delete that failed half-way (the agent's folder or
/// the store not writable) left the agent hidden, marked `deleting`, with its
/// name blocked for ever. It ends in an error the user sees, the agent visible,
/// and the delete can be tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_fails_half_way_leaves_the_agent_visible_and_retryable() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let agents = core.agents();
    let name = unique("stuck");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    agents.stop(agent.id).await.expect("stop");

    // The folder cannot be removed: the container goes, the folder stays.
    let workspace = agent.dir.join("workspace");
    immutable(&workspace, true);
    let guard = Unlock(workspace.clone());
    let failed = agents.delete(agent.id).await;
    assert!(failed.is_err(), "{failed:?}");
    let view = agents.get(agent.id).expect("the agent is still visible");
    assert_eq!(view.status, AgentStatus::Error, "{view:?}");
    assert_eq!(view.activity, None, "{view:?}");
    assert!(
        view.error
            .as_deref()
            .is_some_and(|e| e.starts_with("Delete failed")),
        "{view:?}"
    );
    immutable(&workspace, false);
    drop(guard);

    // The store cannot be written: the delete does not begin at all.
    let data = home.path().to_path_buf();
    immutable(&data, true);
    let guard = Unlock(data.clone());
    let refused = agents.delete(agent.id).await;
    immutable(&data, false);
    drop(guard);
    assert!(refused.is_err(), "{refused:?}");
    let view = agents.get(agent.id).expect("still visible");
    assert_eq!(view.activity, None, "{view:?}");

    // Tried again, it finishes: the name is free again.
    agents.delete(agent.id).await.expect("delete again");
    assert!(agents.get(agent.id).is_none());
    assert!(!agent.dir.exists());
    let again = agents
        .create_and_wait(req(&name))
        .await
        .expect("the name is free");
    assert_eq!(again.status, AgentStatus::Running);
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
}

/// The stand-in gateway, never healthy within a health budget.
fn never_ready_image() -> &'static str {
    derived_image(
        "localhost/clawdock-test-gateway-never-ready:latest",
        "ENV FAKE_GATEWAY_DELAY=600",
    )
}

/// Waits (on the agent's log, not a timer) for a line that contains `text`.
async fn log_line(
    lines: &mut tokio::sync::broadcast::Receiver<String>,
    text: &str,
    limit: Duration,
) -> bool {
    tokio::time::timeout(limit, async {
        loop {
            match lines.recv().await {
                Ok(line) if line.contains(text) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("log ended: {e}"),
            }
        }
    })
    .await
    .is_ok()
}

/// Fault (issue 22, item 7): an update removed the working container before it
/// knew the new one could run. A failed create left no container; a cancel during
/// the new image's health wait left a running agent stopped with no container; and
/// a rolled-back image was tried again by every "Update all" (a minute down each
/// time). Now the old container waits aside until the new one is healthy, comes
/// back on every failure, and a rolled-back image is not tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_keeps_the_working_container_until_the_new_one_is_healthy() {
    use support::engine_proxy::{Fault, Rule};
    let never_ready = never_ready_image();
    let reference = format!("localhost/clawdock-test-keep-{}:latest", std::process::id());
    support::tag_image(IMAGE, &reference);
    let home = Home::new();
    // The engine's create fails when the test says so.
    let engine = support::ProxiedEngine::start(home.path()).await;
    let mut settings = home.native_through(&reference, &engine);
    settings.health_timeout = Duration::from_secs(8);
    let core = Clawdock::start(settings).await.expect("core");
    let agents = core.agents().clone();
    let name = unique("keep");
    let container = format!("clawdock-{name}");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    let image_of = |image: &str| podman_out(&["image", "inspect", "--format", "{{.Id}}", image]);
    let running_image = || {
        podman_out(&[
            "inspect",
            "--format",
            "{{.Image}} {{.State.Status}}",
            &container,
        ])
    };
    let working = format!("{} running", image_of(IMAGE));
    let healthy = || async {
        reqwest::get(format!("http://127.0.0.1:{}/healthz", agent.port))
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    support::tag_image(never_ready, &reference);

    // A create that fails after the pull: the working container was never touched.
    engine.proxy.fault(
        Rule::new(
            "POST",
            "/v*/libpod/containers/create",
            Fault::fail(500, "injected create failure"),
        )
        .once(),
    );
    let failed = agents.update(agent.id).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(running_image(), working, "the old container runs on");
    let view = agents.get(agent.id).expect("agent");
    assert_eq!(view.status, AgentStatus::Running, "{view:?}");
    assert!(healthy().await);

    // A cancel during the new image's health wait: the old container is back.
    let (_, mut lines) = agents.follow_logs(agent.id).expect("logs");
    let update = tokio::spawn({
        let agents = agents.clone();
        async move { agents.update(agent.id).await }
    });
    assert!(
        log_line(
            &mut lines,
            "Updating to the newest",
            Duration::from_secs(30)
        )
        .await
    );
    assert!(
        log_line(
            &mut lines,
            "Waiting for gateway to be ready",
            Duration::from_secs(30)
        )
        .await
    );
    agents.cancel(agent.id).await.expect("cancel");
    let cancelled = update.await.expect("join");
    assert!(cancelled.is_err(), "{cancelled:?}");
    let view = agents.get(agent.id).expect("agent");
    assert_eq!(view.status, AgentStatus::Running, "{view:?}");
    assert_eq!(running_image(), working);
    assert!(healthy().await);

    // Unhealthy within the budget: rolled back, and the image remembered.
    let back = agents.update(agent.id).await.expect("update");
    assert!(!back.updated && back.rolled_back.is_some(), "{back:?}");
    assert_eq!(running_image(), working);
    let began = Instant::now();
    let again = agents.update(agent.id).await.expect("update again");
    assert!(!again.updated && again.rolled_back.is_none(), "{again:?}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the rolled-back image is not tried again: {:?}",
        began.elapsed()
    );
    assert_eq!(running_image(), working);
    assert_eq!(
        support::containers(&home.label().expect("label")).len(),
        1,
        "no container left aside"
    );
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
    support::untag_image(&reference);
}

/// Fault (issue 22, item 11): a gateway image that runs as root (a user's own
/// build) met the uid-1000 folders without capabilities and died with EACCES in a
/// loop. The gateway runs as uid 1000 whatever the image says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_image_that_runs_as_root_runs_as_uid_1000() {
    let root_image = derived_image("localhost/clawdock-test-gateway-root:latest", "USER 0");
    let home = Home::new();
    let core = Clawdock::start(home.native(root_image))
        .await
        .expect("core");
    let name = unique("rooted");
    let agent = core
        .agents()
        .create_and_wait(req(&name))
        .await
        .expect("create");
    assert_eq!(agent.status, AgentStatus::Running);
    let logs = podman_out(&["logs", &format!("clawdock-{name}")]);
    assert!(logs.contains("uid 1000"), "{logs}");
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
}

/// Fault (issue 22, item 11): `podman stats` was asked by container name, so one
/// name that was no longer right (renamed from outside) failed the call and
/// emptied the sample for every agent. By ID, the others are still measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_sampled_by_container_id() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let agents = core.agents();
    let (a, b) = (unique("meas-a"), unique("meas-b"));
    let first = agents.create_and_wait(req(&a)).await.expect("create a");
    let second = agents.create_and_wait(req(&b)).await.expect("create b");
    podman_out(&[
        "rename",
        &format!("clawdock-{a}"),
        &format!("renamed-outside-{a}"),
    ]);
    let mut watch = agents.watch_stats();
    let sample = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("a sample within 30 s")
        .expect("sample");
    let ids: Vec<_> = sample.agents.iter().map(|s| s.id).collect();
    assert!(
        ids.contains(&first.id) && ids.contains(&second.id),
        "both agents measured: {sample:?}"
    );
    drop(watch);
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
}

/// Fault (issue 22, item 11): an agent adopted back from its container (the store
/// was lost) got the default memory limit instead of its container's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_agent_keeps_its_memory_limit() {
    let home = Home::new();
    let settings = home.native(IMAGE);
    let core = Clawdock::start(settings.clone()).await.expect("core");
    let name = unique("adopted");
    let agent = core
        .agents()
        .create_and_wait(CreateRequest {
            memory_mib: Some(768),
            ..req(&name)
        })
        .await
        .expect("create");
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
    std::fs::write(home.path().join("agents.json"), b"[{\"lost").expect("corrupt");

    let core = Clawdock::start(settings).await.expect("core again");
    assert!(
        eventually(Duration::from_secs(20), || core
            .agents()
            .get(agent.id)
            .is_some())
        .await,
        "adopted back"
    );
    let saved: serde_json::Value = serde_json::from_slice(
        &std::fs::read(home.path().join("agents.json")).expect("agents.json"),
    )
    .expect("json");
    let record = saved
        .as_array()
        .and_then(|all| all.iter().find(|r| r["name"] == name.as_str()))
        .expect("the adopted record");
    assert_eq!(record["memoryMiB"], 768, "{record}");
    core.shutdown().await;
}

/// Fault (found while fixing item 7): Clawdock ended (a crash, a kill) in the middle
/// of an update, leaving the working container aside as `clawdock-NAME-previous`.
/// Every later update then failed for good: the name it renames the working
/// container to was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_after_one_cut_short_clears_the_container_it_left_aside() {
    let newer = derived_image(
        "localhost/clawdock-test-gateway-newer:latest",
        "LABEL io.clawdock.test.newer=1",
    );
    let reference = format!("localhost/clawdock-test-cut-{}:latest", std::process::id());
    support::tag_image(IMAGE, &reference);
    let home = Home::new();
    let core = Clawdock::start(home.native(&reference))
        .await
        .expect("core");
    let agents = core.agents().clone();
    let name = unique("cut");
    let agent = agents.create_and_wait(req(&name)).await.expect("create");
    // What the cut-short update left: a copy of the agent's container (its labels
    // included) under the aside name.
    podman_out(&[
        "container",
        "clone",
        &format!("clawdock-{name}"),
        &format!("clawdock-{name}-previous"),
    ]);
    support::tag_image(newer, &reference);

    let outcome = agents.update(agent.id).await;

    let outcome = outcome.expect("the update goes through");
    assert!(outcome.updated, "{outcome:?}");
    assert_eq!(outcome.agent.status, AgentStatus::Running, "{outcome:?}");
    let left = support::containers(&home.label().expect("label"));
    assert_eq!(left.len(), 1, "only the new container stays: {left:?}");
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
    support::untag_image(&reference);
}
