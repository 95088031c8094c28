//! Issue 12, the agent's sandbox and its secrets, against real Podman: the gateway
//! token never on a podman command line, the container's limits and dropped
//! privileges, a death for memory said as such, a machine that is not Clawdock's
//! left running, and the agents' proxy credentials kept off command lines.

mod support;

use std::time::Duration;

use clawdock_core::agents::{AgentError, CreateRequest, ErrorCode};
use clawdock_core::events::{Change, Event};
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use serde_json::{json, Value};
use support::{machine_row, Home, IMAGE};

fn req(name: &str, memory_mib: Option<u64>) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        memory_mib,
        ..CreateRequest::default()
    }
}

fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id() % 10_000)
}

fn inspect(name: &str) -> Value {
    let out = std::process::Command::new("podman")
        .args(["inspect", "--type", "container", name])
        .output()
        .expect("podman inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).expect("json")[0].clone()
}

/// Fault: `--env OPENCLAW_GATEWAY_TOKEN=<hex>` sat in podman's argv, readable by
/// every local user in /proc while `podman create` ran. And the container ran with
/// default capabilities, no memory or process bound, a writable root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_never_on_a_command_line_and_the_container_is_sandboxed() {
    let home = Home::new();
    let argv_log = home.path().join("argv.log");
    let mut settings = home.native(IMAGE);
    settings.podman = support::recording_podman(home.path(), &argv_log);
    // Clawdock's own engine service, on a socket in the data folder.
    settings.user_engine_socket = None;
    let socket = clawdock_core::engine::socket::owned_socket(&settings.home);
    let core = Clawdock::start(settings).await.expect("core");
    let name = unique("boxed");
    let agent = core
        .agents()
        .create_and_wait(req(&name, Some(768)))
        .await
        .expect("create");
    assert_eq!(agent.status, AgentStatus::Running);
    let store: Value =
        serde_json::from_slice(&std::fs::read(core.settings().agents_file()).expect("agents.json"))
            .expect("json");
    let token = store[0]["token"].as_str().expect("token").to_string();
    assert!(token.len() >= 32);
    let argv = std::fs::read_to_string(&argv_log).expect("argv log");
    assert!(
        argv.contains("system service"),
        "the engine service went through the wrapper: {argv}"
    );
    assert!(
        !argv.contains("create"),
        "the create is a request to the engine's socket, no podman process: {argv}"
    );
    assert!(
        !argv.contains(&token),
        "the gateway token was on a command line"
    );
    // The token travels in the create's body over the socket, which only this
    // user can reach: it lives in the private data folder.
    {
        use std::os::unix::fs::PermissionsExt;
        let folder = socket.parent().expect("folder");
        let mode = std::fs::metadata(folder)
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the socket's folder is private: {mode:o}");
        assert!(socket.exists(), "{}", socket.display());
    }

    let c = inspect(&format!("clawdock-{name}"));
    let host = &c["HostConfig"];
    assert_eq!(host["Memory"], 768 * 1024 * 1024, "memory limit: {host}");
    assert_eq!(host["MemorySwap"], 768 * 1024 * 1024, "no swap beyond it");
    assert_eq!(host["PidsLimit"], 1024);
    assert_eq!(host["ReadonlyRootfs"], true);
    let opts = host["SecurityOpt"].to_string();
    assert!(opts.contains("no-new-privileges"), "{opts}");
    let dropped = host["CapDrop"].to_string().to_lowercase();
    for cap in ["cap_net_raw", "cap_sys_chroot", "cap_chown", "cap_setuid"] {
        assert!(dropped.contains(cap), "{cap} not dropped: {dropped}");
    }
    let added = host["CapAdd"].as_array().map_or(0, Vec::len);
    assert_eq!(added, 0, "no capability added back: {}", host["CapAdd"]);
    // The gateway still gets its token.
    let env = c["Config"]["Env"].to_string();
    assert!(env.contains(&format!("OPENCLAW_GATEWAY_TOKEN={token}")));
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
}

/// Fault: an agent killed by its memory limit showed a bare exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_for_memory_says_so() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let agents = core.agents();
    let name = unique("hungry");
    let agent = agents
        .create_and_wait(req(&name, Some(256)))
        .await
        .expect("create");
    agents.stop(agent.id).await.expect("stop");
    // The stand-in gateway eats memory once ready when this file is in its config.
    std::fs::write(agent.dir.join("config/fake-gateway-hungry"), b"").expect("knob");
    let mut events = core.subscribe();
    agents.start(agent.id).await.expect("start");
    // What the user is told (the notification, the window): its death, for memory.
    // (The crash loop then starts it again; it dies again the same way.)
    let death = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(Event::Agent {
                    agent: view,
                    change: Some(Change::Died { exit_code }),
                }) if view.id == agent.id => return (view, exit_code),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("the agent died within 30 s");
    let (view, exit_code) = death;
    assert_eq!(exit_code, Some(137), "{view:?}");
    assert_eq!(view.status, AgentStatus::Error, "{view:?}");
    // Told apart from other kills even where Podman's `OOMKilled` stays false
    // (cgroup v1 here): issue 22 wanted the sentence, not a guess.
    let error = view.error.clone().expect("error");
    assert!(
        error.contains("ran out of memory (limit 256 MiB): raise it in Settings"),
        "{error}"
    );
    assert!(
        view.crash_loop.as_ref().is_some_and(|c| c.out_of_memory),
        "{view:?}"
    );
    core.shutdown().await;
}

/// Fault: `POST /runtime/stop` stopped any Podman machine, one Clawdock did not
/// start and other containers ran on included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_machine_clawdock_did_not_start_is_refused_unless_forced() {
    let home = Home::new();
    let (settings, state) = home.fake_vm(json!({ "machines": [machine_row(true, false)] }));
    let core = Clawdock::start(settings).await.expect("core");
    match core.stop_runtime(false).await {
        Err(e @ AgentError::NotOurs(_)) => assert_eq!(e.code(), ErrorCode::NotOurs),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(support::fake_calls(&state, "machine stop"), 0);
    assert_eq!(
        support::fake_state(&state)["machines"][0]["Running"],
        true,
        "the machine still runs"
    );
    core.stop_runtime(true).await.expect("forced stop");
    assert_eq!(support::fake_calls(&state, "machine stop"), 1);
    core.shutdown().await;
}

/// What the test's upstream proxy saw: each request's head.
type Heads = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// The user's proxy, on the host's loopback only (the relay reaches it from the
/// host): records each request's head and answers it itself, `200` for a
/// `CONNECT` (then closes), `200 proxied` for a plain request.
async fn users_proxy() -> (u16, Heads) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let heads = Heads::default();
    let record = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match conn.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let answer: &[u8] = if head.starts_with("CONNECT") {
                    b"HTTP/1.1 200 Connection Established\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nproxied"
                };
                record.lock().expect("heads").push(head);
                let _answered = conn.write_all(answer).await;
            });
        }
    });
    (port, heads)
}

fn basic(pair: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(pair)
}

/// Issue 23, item 4: the agents' proxy with credentials and a company CA bundle;
/// issue 30, item 3: the credentials stay on the host. The container gets the
/// address of Clawdock's relay with a credential of its own (loopback always
/// bypassing the proxy, the bundle read-only and named by `NODE_EXTRA_CA_CERTS`);
/// the password is in no container, on no podman argument line, in no API answer
/// and in no file of the data folder. A plain HTTP request and a `CONNECT` from
/// inside the container reach the user's proxy (on the host's loopback, where a
/// container could not reach it) with the user's credentials; the relay answers
/// nobody outside the containers' network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_proxy_credentials_stay_on_the_host() {
    use clawdock_core::agent_proxy::{AgentProxy, ProxySource, CA_TARGET};
    let (proxy_port, heads) = users_proxy().await;
    let home = Home::new();
    let argv_log = home.path().join("argv.log");
    let ca = home.path().join("company-ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("ca");
    let password = "pr0xy-s3cret";
    let url = format!("http://alice:{password}@127.0.0.1:{proxy_port}");
    let mut settings = home.native(IMAGE);
    settings.podman = support::recording_podman(home.path(), &argv_log);
    settings.agent_proxy = AgentProxy {
        https_proxy: Some(url.clone()),
        http_proxy: Some(url.clone()),
        no_proxy: vec!["corp.example".into()],
        ca_bundle: Some(ca.clone()),
        source: ProxySource::Clawdock,
    };
    let core = Clawdock::start(settings).await.expect("core");
    let name = unique("proxied");
    let container = format!("clawdock-{name}");
    let agent = core
        .agents()
        .create_and_wait(req(&name, None))
        .await
        .expect("create");
    assert_eq!(agent.status, AgentStatus::Running, "healthy behind a proxy");

    let argv = std::fs::read_to_string(&argv_log).expect("argv log");
    assert!(
        !argv.contains("create"),
        "the create is a request to the engine's socket, no podman process: {argv}"
    );
    assert!(
        !argv.contains(password),
        "the proxy's password on a command line"
    );

    let c = inspect(&container);
    assert!(
        !c.to_string().contains(password),
        "the proxy's password is in the container"
    );
    let env: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).expect("env");
    let relayed = env
        .iter()
        .find_map(|e| e.strip_prefix("HTTPS_PROXY="))
        .expect("HTTPS_PROXY")
        .to_string();
    let rest = relayed
        .strip_prefix(&format!("http://{}:", agent.id))
        .unwrap_or_else(|| panic!("the agent's own credential: {relayed}"));
    let (credential, relay_at) = rest.split_once('@').expect("credential@host");
    assert_eq!(credential.len(), 64, "{relayed}");
    let relay_port = relay_at
        .strip_prefix("host.containers.internal:")
        .expect("the relay on the host");
    for wanted in [
        format!("http_proxy={relayed}"),
        "NO_PROXY=localhost,127.0.0.1,::1,corp.example".to_string(),
        "NODE_USE_ENV_PROXY=1".to_string(),
        format!("NODE_EXTRA_CA_CERTS={CA_TARGET}"),
    ] {
        assert!(env.contains(&wanted), "{wanted} not in {env:?}");
    }
    let mount = c["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["Destination"] == CA_TARGET)
        .expect("the CA bundle is mounted")
        .clone();
    assert_eq!(mount["Source"], ca.display().to_string());
    assert_eq!(mount["RW"], false, "read-only: {mount}");

    // From inside the container, as the gateway would: a plain request (busybox
    // wget sends the proxy's credentials from http_proxy) and a CONNECT.
    let plain = support::podman_out(&[
        "exec",
        &container,
        "wget",
        "-q",
        "-O",
        "-",
        "http://provider.example/v1/models",
    ]);
    assert_eq!(plain, "proxied", "through the relay to the user's proxy");
    let own = basic(&format!("{}:{credential}", agent.id));
    let tunnel = support::podman_out(&[
        "exec",
        &container,
        "sh",
        "-c",
        &format!(
            "printf 'CONNECT api.example.com:443 HTTP/1.1\\r\\nHost: api.example.com:443\\r\\nProxy-Authorization: Basic {own}\\r\\n\\r\\n' | nc host.containers.internal {relay_port}"
        ),
    ]);
    assert!(tunnel.starts_with("HTTP/1.1 200"), "{tunnel}");
    let seen = heads.lock().expect("heads").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("GET http://provider.example/v1/models"),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("CONNECT api.example.com:443"),
        "{seen:?}"
    );
    let users = format!(
        "Proxy-Authorization: Basic {}",
        basic(&format!("alice:{password}"))
    );
    for head in &seen {
        assert!(
            head.contains(&users),
            "the user's credentials upstream: {head}"
        );
        assert!(!head.contains(credential), "not the agent's: {head}");
    }

    // The relay answers nobody outside the containers' network: from the host
    // (another local user would connect from there), even with the agent's
    // credential, the connection closes unanswered.
    let gateway = c["NetworkSettings"]["Gateway"].as_str().expect("gateway");
    let mut outside = tokio::net::TcpStream::connect(format!("{gateway}:{relay_port}"))
        .await
        .expect("connect from the host");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let asked = outside
        .write_all(
            format!(
                "CONNECT api.example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic {own}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), outside.read_to_end(&mut answer)).await;
    assert!(
        asked.is_err() || matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed unanswered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        heads.lock().expect("heads").len(),
        2,
        "nothing more upstream"
    );

    let server = clawdock_core::api::ApiServer::start(core.clone(), 0)
        .await
        .expect("api");
    let answer = reqwest::Client::new()
        .get(format!("{}/settings", server.url()))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("settings")
        .text()
        .await
        .expect("body");
    server.close().await;
    assert!(!answer.contains(password), "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        answer["agentProxy"]["httpsProxy"],
        format!("http://***@127.0.0.1:{proxy_port}")
    );
    assert_eq!(answer["agentProxy"]["caBundle"], ca.display().to_string());
    let report = core.shutdown().await;
    assert!(report.clean(), "{report:?}");
    let logs = walk_text(home.path());
    assert!(
        !logs.contains(password),
        "the password in a file of the data folder"
    );
}

/// Every regular file under `dir` but the argv log, as text.
fn walk_text(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            all.push_str(&walk_text(&path));
        } else if meta.is_file() && path.file_name().is_some_and(|n| n != "argv.log") {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).unwrap_or_default(),
            ));
        }
    }
    all
}
