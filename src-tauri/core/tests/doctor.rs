//! Issue 32, item 4: each of the doctor's checks shown a broken set-up it must
//! detect, and the support bundle's secrets taken out (canaries planted in each
//! place a secret lives). What this machine cannot be broken into (an old Podman,
//! a machine on Linux, cgroups without the memory controller, a user without
//! subordinate ids, a full disk, a wrong clock) is played by fakes made here: a
//! podman script, the repo's fake podman (the machine), a folder of cgroup files,
//! subuid files, a free-space bound above what the disk has, a server whose
//! `Date` is hours off. The rest is real: a closed port as a proxy, a taken port.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use clawdock_core::doctor::checks;
use clawdock_core::doctor::{Finding, Verdict};
use clawdock_core::engine::Podman;
use clawdock_core::machine::Mode;
use serde_json::json;
use support::{machine_row, Home};

/// A podman that is this shell script.
fn script(dir: &Path, body: &str) -> Podman {
    let path = dir.join("podman");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Podman::new(Some(path))
}

fn failed(f: &Finding, says: &str) {
    assert_eq!(f.verdict, Verdict::Fail, "{f:?}");
    assert!(
        f.found.contains(says) || f.fix.as_deref().unwrap_or_default().contains(says),
        "{says}: {f:?}"
    );
    assert!(f.fix.is_some(), "a failure says its fix: {f:?}");
}

#[tokio::test]
async fn podman_missing_or_older_than_the_oldest_supported() {
    let dir = tempfile::tempdir().expect("tmp");
    failed(
        &checks::podman_version(&Podman::new(None)).await,
        "not installed",
    );
    let old = script(dir.path(), "echo 'podman version 3.4.4'");
    let f = checks::podman_version(&old).await;
    failed(&f, "older than 4.3");
    let real = checks::podman_version(&support::real_podman()).await;
    assert_eq!(real.verdict, Verdict::Ok, "{real:?}");
}

#[tokio::test]
async fn an_engine_that_does_not_answer() {
    let dir = tempfile::tempdir().expect("tmp");
    let refused = script(
        dir.path(),
        "echo 'Cannot connect to Podman. Please verify your connection to the Linux system' >&2; exit 125",
    );
    failed(&checks::engine(&refused).await, "does not answer");
    let real = checks::engine(&support::real_podman()).await;
    assert_eq!(real.verdict, Verdict::Ok, "{real:?}");
}

/// The machine through the repo's fake podman (vm mode): none, stopped, and its
/// network helper missing, then beside podman.
#[tokio::test]
async fn a_machine_absent_stopped_or_without_its_helper() {
    let home = Home::new();
    // The fake is the wrapper in the test's own `bin/`, so the helpers' folder
    // beside it (`../libexec/podman`) is the test's too.
    let (settings, state) = home.fake_vm(json!({}));
    assert!(
        settings
            .podman
            .bin()
            .is_some_and(|b| b.starts_with(home.path())),
        "the fake podman lives in the test's folder"
    );
    let found = checks::machine(&settings.podman, Mode::Vm).await;
    failed(&found[0], "no Podman machine");
    std::fs::write(
        &state,
        serde_json::to_vec(&json!({ "machines": [machine_row(false, false)] })).expect("json"),
    )
    .expect("state");
    let found = checks::machine(&settings.podman, Mode::Vm).await;
    assert_eq!(found[0].verdict, Verdict::Warn, "{found:?}");
    assert!(found[0]
        .fix
        .as_deref()
        .unwrap_or_default()
        .contains("podman machine start"));
    // A stopped machine's engine does not answer either.
    failed(&checks::engine(&settings.podman).await, "does not answer");
    failed(&found[1], "gvproxy");
    let bin = settings.podman.bin().expect("bin");
    let helpers = bin.parent().expect("dir").join("../libexec/podman");
    std::fs::create_dir_all(&helpers).expect("mkdir");
    std::fs::write(helpers.join("gvproxy"), b"").expect("helper");
    let f = checks::machine_helper(&checks::helper_dirs(bin));
    if cfg!(target_os = "macos") {
        failed(&f, "vfkit");
    } else {
        assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
    }
    let native = checks::machine(&settings.podman, Mode::Native).await;
    assert_eq!(native[0].verdict, Verdict::Skipped);
}

fn cgroup_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for (path, text) in files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    dir
}

#[test]
fn cgroup_controllers_missing_or_not_delegated() {
    let no_memory = cgroup_tree(&[("cgroup.controllers", "cpuset cpu io pids\n")]);
    failed(&checks::cgroups(no_memory.path(), Some(0)), "memory");
    let not_delegated = cgroup_tree(&[
        ("cgroup.controllers", "cpuset cpu io memory pids\n"),
        (
            "user.slice/user-1000.slice/user@1000.service/cgroup.controllers",
            "memory pids\n",
        ),
    ]);
    failed(&checks::cgroups(not_delegated.path(), Some(1000)), "cpu");
    assert_eq!(
        checks::cgroups(not_delegated.path(), Some(0)).verdict,
        Verdict::Ok
    );
    let none = tempfile::tempdir().expect("tmp");
    failed(&checks::cgroups(none.path(), Some(0)), "No cgroups");
    // This machine's own: v1 (hybrid), said as a warning.
    let here = checks::cgroups(Path::new("/sys/fs/cgroup"), Some(0));
    assert_ne!(here.verdict, Verdict::Fail, "{here:?}");
}

#[test]
fn rootless_without_subordinate_ids_or_newuidmap() {
    let dir = tempfile::tempdir().expect("tmp");
    let subuid = dir.path().join("subuid");
    let subgid = dir.path().join("subgid");
    std::fs::write(&subuid, "bob:100000:65536\n").expect("subuid");
    std::fs::write(&subgid, "alice:100000:1000\n").expect("subgid");
    let tools = dir.path().join("bin");
    std::fs::create_dir_all(&tools).expect("bin");
    let path = Some(tools.clone().into_os_string());
    let f = checks::rootless(Some(1000), "alice", &subuid, &subgid, path.clone());
    failed(&f, "usermod --add-subuids");
    assert!(
        f.found.contains("0 ids") && f.found.contains("1000 ids"),
        "{f:?}"
    );
    assert!(f.found.contains("newuidmap is not on PATH"), "{f:?}");
    std::fs::write(&subuid, "alice:100000:65536\n").expect("subuid");
    std::fs::write(&subgid, "1000:100000:65536\n").expect("subgid");
    for tool in ["newuidmap", "newgidmap"] {
        std::fs::write(tools.join(tool), b"").expect("tool");
    }
    let f = checks::rootless(Some(1000), "alice", &subuid, &subgid, path);
    assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
    assert_eq!(
        checks::rootless(Some(0), "root", &subuid, &subgid, None).verdict,
        Verdict::Skipped
    );
}

/// A full disk cannot be made here: the bound is set above what the disk has.
#[test]
fn a_disk_without_room() {
    let dir = tempfile::tempdir().expect("tmp");
    let places = vec![("the data folder".to_string(), dir.path().join("not-yet"))];
    let free = checks::free_bytes(dir.path()).expect("df");
    failed(&checks::disk(&places, free * 4), "GiB free");
    assert_eq!(checks::disk(&places, 1024).verdict, Verdict::Ok);
}

/// A server that answers every request with this `Date`.
async fn dated(date: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v2/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let date = date.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _read = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _sent = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_clock_hours_off() {
    let off = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc2822();
    failed(&checks::clock(&dated(off).await).await, "3.0 hours");
    let right = chrono::Utc::now().to_rfc2822();
    assert_eq!(
        checks::clock(&dated(right).await).await.verdict,
        Verdict::Ok
    );
    // Offline is not a finding against the clock.
    assert_eq!(
        checks::clock("http://127.0.0.1:9/v2/").await.verdict,
        Verdict::Skipped
    );
}

#[test]
fn a_proxy_that_does_not_answer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("http://user:pw-canary@127.0.0.1:{port}");
    let var = |name: &str| (name == "HTTPS_PROXY").then(|| url.clone());
    let f = checks::proxy(&var);
    failed(&f, "nothing answers");
    assert!(
        !f.found.contains("pw-canary"),
        "the password is masked: {f:?}"
    );
    let open = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}",
        open.local_addr().expect("addr").port()
    );
    let var = |name: &str| (name == "HTTPS_PROXY").then(|| url.clone());
    assert_eq!(checks::proxy(&var).verdict, Verdict::Ok);
    let bad = |name: &str| (name == "HTTP_PROXY").then(|| "not a url".to_string());
    failed(&checks::proxy(&bad), "not a URL");
}

#[tokio::test]
async fn the_api_port_taken_with_no_instance() {
    let home = tempfile::tempdir().expect("tmp");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    failed(&checks::api(home.path(), port).await, "is taken");
    drop(taken);
    assert_eq!(checks::api(home.path(), port).await.verdict, Verdict::Ok);
}

/// Every place a secret lives holds a canary, and each canary is also written
/// into the app's log: the bundle holds none of them, and still holds the logs
/// and the agents' states.
#[tokio::test]
async fn the_support_bundle_holds_no_secret() {
    let home = Home::new();
    let data = home.path().join("data");
    let mut settings = home.native(support::IMAGE);
    settings.home = data.clone();
    let canary = |what: &str| format!("canary-{what}-{}", uuid::Uuid::new_v4().simple());
    let (api_token, gateway_token, provider_key, proxy_password, registry_password) = (
        canary("api"),
        canary("gateway"),
        canary("provider"),
        canary("proxy"),
        canary("registry"),
    );
    std::fs::create_dir_all(&data).expect("data");
    std::fs::write(
        data.join("api.json"),
        json!({"url": "http://127.0.0.1:1", "token": api_token, "pid": 1}).to_string(),
    )
    .expect("api.json");
    let id = uuid::Uuid::new_v4();
    let agent_dir = data.join("agents").join(id.to_string());
    std::fs::create_dir_all(agent_dir.join("config")).expect("agent");
    std::fs::write(
        agent_dir.join("config/openclaw.json"),
        json!({"env": {"vars": {"OPENAI_API_KEY": provider_key}}}).to_string(),
    )
    .expect("config");
    std::fs::write(
        data.join("agents.json"),
        json!([{"id": id, "name": "leaky", "status": "error", "port": 18789,
                "dir": agent_dir, "token": gateway_token,
                "createdAt": "2026-12-01T00:00:00Z", "image": support::IMAGE,
                "error": "it failed"}])
        .to_string(),
    )
    .expect("agents.json");
    use base64::Engine as _;
    let auth = data.join("auth.json");
    let login = base64::engine::general_purpose::STANDARD.encode(format!("me:{registry_password}"));
    std::fs::write(
        &auth,
        json!({"auths": {"ghcr.io": {"auth": login}}}).to_string(),
    )
    .expect("auth");
    settings.registry_auth_files = vec![auth];
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    std::fs::write(
        logs.join("clawdock.log.2026-12-07"),
        format!(
            "INFO started\nDEBUG token {api_token} gateway {gateway_token}\n\
             WARN key {provider_key} via https://me:{proxy_password}@proxy.example:3128\n\
             WARN login {login} password {registry_password}\nINFO the end\n"
        ),
    )
    .expect("log");
    let proxy = format!("http://me:{proxy_password}@127.0.0.1:3128");
    let var = move |name: &str| (name == "HTTPS_PROXY").then(|| proxy.clone());
    let findings = vec![Finding {
        check: "proxy".into(),
        verdict: Verdict::Ok,
        found: "planted".into(),
        fix: None,
    }];
    let file = home.path().join("bundle.tar.gz");
    let sources = clawdock_core::doctor::bundle::Sources {
        settings: &settings,
        log_dir: logs,
        var: &var,
    };
    let members = clawdock_core::doctor::bundle::write(&file, &findings, &sources)
        .await
        .expect("bundle");
    assert_eq!(
        std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let mut all = String::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&file).expect("open"),
    ));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).expect("text");
        all.push_str(&text);
    }
    for secret in [
        &api_token,
        &gateway_token,
        &provider_key,
        &proxy_password,
        &registry_password,
        &login,
    ] {
        assert!(
            !all.contains(secret.as_str()),
            "{secret} leaked into the bundle"
        );
    }
    for wanted in [
        "findings.json",
        "versions.txt",
        "agents.json",
        "logs/clawdock.log.2026-12-07",
        "gateways/leaky.log",
    ] {
        assert!(
            members.iter().any(|m| m == wanted),
            "{wanted} in {members:?}"
        );
    }
    assert!(
        all.contains("INFO the end") && all.contains("[REDACTED]"),
        "{all}"
    );
    assert!(
        all.contains("\"name\": \"leaky\"") && all.contains("it failed"),
        "{all}"
    );
    assert!(all.contains("clawdock 0."), "versions: {all}");
}
