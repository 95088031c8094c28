//! The test-side fault proxy (support/engine_proxy.rs) in front of a real
//! `podman system service`: it forwards, streams, and injects each fault where the
//! fault matrix needs it, before or after the engine did the work.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::engine_proxy::{path_matches, EngineProxy, Fault, Rule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const PING: &str = "/v4.0.0/libpod/_ping";
const CREATE: &str = "/v4.0.0/libpod/containers/create";
/// A label on every container made here, so a leftover is easy to find.
const LABEL: &str = "clawdock-engine-proxy-test";

/// Names of containers this test made, removed when dropped, even after a failure.
#[derive(Default)]
struct Containers(Vec<String>);

impl Containers {
    fn name(&mut self, tag: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "clawdock-proxy-test-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.0.push(name.clone());
        name
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let status = Command::new("podman")
            .args(["rm", "-f", "--ignore"])
            .args(&self.0)
            .stdout(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("removing {:?}: {status:?}", self.0);
        }
    }
}

fn exists(name: &str) -> bool {
    Command::new("podman")
        .args(["container", "exists", name])
        .status()
        .expect("podman container exists")
        .success()
}

fn create_body(name: &str) -> Value {
    json!({
        "name": name,
        "image": support::IMAGE,
        "command": ["true"],
        "labels": { LABEL: "1" },
    })
}

/// One HTTP/1.1 request on its own connection, as the core sends it; every byte of
/// the answer until the other end closes.
async fn exchange(
    sock: &Path,
    method: &str,
    target: &str,
    body: Option<&Value>,
) -> std::io::Result<Vec<u8>> {
    let mut stream = UnixStream::connect(sock).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n");
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    Ok(raw)
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Reply { status, head, body }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .expect("chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
    out
}

async fn call(sock: &Path, method: &str, target: &str, body: Option<&Value>) -> Reply {
    let raw = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(sock, method, target, body),
    )
    .await
    .expect("an answer within 10 s")
    .expect("exchange");
    parse(&raw)
}

#[test]
fn path_patterns_match_segment_by_segment() {
    assert!(path_matches(
        "/v*/libpod/containers/*/start",
        "/v4.0.0/libpod/containers/abc/start"
    ));
    assert!(path_matches("/v*/libpod/_ping", "/v1.41/libpod/_ping"));
    assert!(path_matches("/v4.0.0/libpod/*", "/v4.0.0/libpod/_ping"));
    assert!(path_matches("/a/*x*y/b", "/a/0x1y/b"));
    assert!(!path_matches(
        "/v*/libpod/containers/*/start",
        "/v4.0.0/libpod/containers/a/b/start"
    ));
    assert!(!path_matches(
        "/v*/libpod/containers/*/start",
        "/v4.0.0/libpod/containers/abc/stop"
    ));
    assert!(!path_matches("/v4*/libpod/_ping", "/v1.41/libpod/_ping"));
    assert!(!path_matches("/a/*xy", "/a/x"));
}

/// Faults the proxy answers itself, on `_ping`: nothing reaches the engine.
#[tokio::test]
async fn answers_in_place_of_the_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = support::ProxiedEngine::start(dir.path()).await;
    let proxy = &engine.proxy;
    let sock = proxy.path().to_path_buf();

    let reply = call(&sock, "GET", PING, None).await;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, &b"OK"[..]),
        "{}",
        reply.head
    );

    let rule = proxy.fault(
        Rule::new(
            "GET",
            "/v*/libpod/_ping",
            Fault::fail(500, "injected: boom"),
        )
        .once(),
    );
    let failed = call(&sock, "GET", PING, None).await;
    assert_eq!(failed.status, 500, "{}", failed.head);
    assert_eq!(
        failed.json(),
        json!({ "cause": "boom", "message": "injected: boom", "response": 500 })
    );
    let after = call(&sock, "GET", PING, None).await;
    assert_eq!(after.body, b"OK", "a once rule applies once");
    assert_eq!(proxy.fired(rule), 1);

    proxy.fault(Rule::new("GET", "/v*/libpod/_ping", Fault::Garbage).once());
    let garbage = call(&sock, "GET", PING, None).await;
    assert_eq!(garbage.status, 200);
    assert!(serde_json::from_slice::<Value>(&garbage.body).is_err());
    assert!(!garbage.body.is_empty());

    proxy.fault(Rule::new("GET", PING, Fault::Delay(Duration::from_millis(400))).once());
    let began = Instant::now();
    let late = call(&sock, "GET", PING, None).await;
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(late.body, b"OK");

    proxy.fault(Rule::new("GET", PING, Fault::Hang).once());
    let hung =
        tokio::time::timeout(Duration::from_secs(1), exchange(&sock, "GET", PING, None)).await;
    assert!(hung.is_err(), "a hang answered: {hung:?}");

    // "Already started": Podman's 304 has no body.
    proxy.fault(Rule::new(
        "POST",
        "/v*/libpod/containers/*/start",
        Fault::fail(304, ""),
    ));
    let already = call(
        &sock,
        "POST",
        "/v4.0.0/libpod/containers/whatever/start",
        None,
    )
    .await;
    assert_eq!(
        (already.status, already.body.len()),
        (304, 0),
        "{}",
        already.head
    );

    assert_eq!(
        proxy.calls("GET", "/v*/libpod/_ping"),
        6,
        "{:?}",
        proxy.log()
    );
    assert_eq!(proxy.calls("*", "/v4.0.0/libpod/containers/*/start"), 1);
    assert_eq!(proxy.calls("POST", PING), 0);

    proxy.clear();
    assert_eq!(proxy.calls("*", "/v*/libpod/_ping"), 0);
    assert_eq!(proxy.fired(rule), 0);
    assert_eq!(call(&sock, "GET", PING, None).await.body, b"OK");
}

/// Faults before the engine leave nothing behind; faults after it leave the container
/// made, which is what a retry then runs into ("already in use").
#[tokio::test]
async fn faults_before_and_after_the_engine() {
    support::ensure_test_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = support::ProxiedEngine::start(dir.path()).await;
    let proxy = &engine.proxy;
    let sock = proxy.path().to_path_buf();
    let mut made = Containers::default();

    proxy.fault(
        Rule::new(
            "POST",
            "/v*/libpod/containers/create",
            Fault::fail(500, "injected"),
        )
        .once(),
    );
    let name = made.name("fail");
    let failed = call(&sock, "POST", CREATE, Some(&create_body(&name))).await;
    assert_eq!(failed.status, 500);
    assert!(!exists(&name), "a plain failure must not reach the engine");

    proxy.fault(Rule::new("POST", "/v*/libpod/containers/create", Fault::Hang).once());
    let name = made.name("hang");
    let hung = tokio::time::timeout(
        Duration::from_secs(1),
        exchange(&sock, "POST", CREATE, Some(&create_body(&name))),
    )
    .await;
    assert!(hung.is_err(), "a hang answered: {hung:?}");
    assert!(!exists(&name), "a hang must not reach the engine");

    let rule = proxy.fault(
        Rule::new(
            "POST",
            "/v*/libpod/containers/create",
            Fault::after(Fault::fail(500, "injected: the answer was lost")),
        )
        .once(),
    );
    let name = made.name("lost");
    let lost = call(&sock, "POST", CREATE, Some(&create_body(&name))).await;
    assert_eq!(lost.status, 500, "{}", lost.head);
    assert_eq!(lost.json()["cause"], "the answer was lost");
    assert!(exists(&name), "the engine must have created it");
    assert_eq!(proxy.fired(rule), 1);
    let again = call(&sock, "POST", CREATE, Some(&create_body(&name))).await;
    assert!(
        again.status >= 400
            && again.json()["message"]
                .as_str()
                .unwrap_or("")
                .contains("already in use"),
        "a retry meets the real engine's answer: {} {}",
        again.head,
        String::from_utf8_lossy(&again.body)
    );

    proxy.fault(Rule::new("POST", "/v*/libpod/containers/create", Fault::Drop).once());
    let name = made.name("drop");
    let raw = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(&sock, "POST", CREATE, Some(&create_body(&name))),
    )
    .await
    .expect("a drop closes");
    assert!(
        matches!(&raw, Ok(bytes) if bytes.is_empty()),
        "no answer byte: {raw:?}"
    );
    assert!(exists(&name), "a drop forwards first");

    proxy.fault(
        Rule::new(
            "POST",
            "/v*/libpod/containers/create",
            Fault::after(Fault::Delay(Duration::from_millis(300))),
        )
        .once(),
    );
    let name = made.name("late");
    let began = Instant::now();
    let late = call(&sock, "POST", CREATE, Some(&create_body(&name))).await;
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(late.status, 201, "{}", late.head);
    assert!(late.json()["Id"].is_string(), "the real answer, late");

    assert_eq!(
        proxy.calls("POST", "/v*/libpod/containers/create"),
        6,
        "{:?}",
        proxy.log()
    );
}

/// With no fault, a long stream passes through as it comes; rules may pick requests
/// by their (decoded) query.
#[tokio::test]
async fn streams_pass_through_and_queries_pick() {
    support::ensure_test_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = support::ProxiedEngine::start(dir.path()).await;
    let proxy = &engine.proxy;
    let sock = proxy.path().to_path_buf();
    let mut made = Containers::default();
    let name = made.name("event");

    let filters = format!("%7B%22container%22%3A%5B%22{name}%22%5D%7D");
    let mut stream = UnixStream::connect(&sock).await.expect("connect");
    stream
        .write_all(
            format!(
                "GET /v4.0.0/libpod/events?stream=true&since=30s&filters={filters} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    // Podman sends no byte, not even the head, before the first event; `since` has
    // it replay the create should it subscribe after it happened.
    let created = call(&sock, "POST", CREATE, Some(&create_body(&name))).await;
    assert_eq!(created.status, 201, "{}", created.head);
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "the stream ended: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&seen).contains("\"create\"") {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no create event: {}",
        String::from_utf8_lossy(&seen)
    );
    drop(stream);

    proxy.fault(
        Rule::new(
            "GET",
            "/v*/libpod/containers/json",
            Fault::fail(500, "listing"),
        )
        .query(&format!(r#"{{"label":["{LABEL}=1"]}}"#)),
    );
    let picked = call(
        &sock,
        "GET",
        &format!("/v4.0.0/libpod/containers/json?all=true&filters=%7B%22label%22%3A%5B%22{LABEL}%3D1%22%5D%7D"),
        None,
    )
    .await;
    assert_eq!(picked.status, 500, "the filter is matched decoded");
    let other = call(
        &sock,
        "GET",
        "/v4.0.0/libpod/containers/json?all=true",
        None,
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.head);
    assert!(other.json().is_array());
}

/// Dropping the proxy removes its socket and ends a connection it holds.
#[tokio::test]
async fn drop_stops_the_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A hanging request never reaches the engine: none is needed.
    let proxy = EngineProxy::start(
        &dir.path().join("proxy.sock"),
        &dir.path().join("none.sock"),
    )
    .expect("proxy");
    let sock = proxy.path().to_path_buf();
    proxy.fault(Rule::new("GET", PING, Fault::Hang));
    let held = tokio::spawn({
        let sock = sock.clone();
        async move { exchange(&sock, "GET", PING, None).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(proxy);
    assert!(!sock.exists());
    let ended = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the held connection ends with the proxy")
        .expect("join");
    assert!(matches!(&ended, Ok(bytes) if bytes.is_empty()), "{ended:?}");
    assert!(UnixStream::connect(&sock).await.is_err());
}
