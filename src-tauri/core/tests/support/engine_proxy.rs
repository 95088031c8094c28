//! A fault-injecting proxy for tests, between the core and Podman's API socket: it
//! forwards every connection to the real engine, except the requests a rule picks,
//! which it fails, hangs, garbles, delays, drops, or lets the engine do and then
//! answers with a failure (the "already" case: the engine did it, the answer was lost).
//!
//! The core sends one request per connection (`Connection: close`), so only each
//! connection's first request head is looked at; anything a client sent after it on
//! the same connection would pass through unseen and uncounted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

/// A request head larger than this is not a Podman client's; the connection is closed.
const MAX_HEAD: usize = 64 * 1024;

/// What the proxy does with a request a rule matched.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers `status` with a libpod-style error body; the engine never sees the
    /// request. 304 and 204 go without a body, as Podman sends them ("already
    /// started/stopped" is a 304).
    Fail { status: u16, message: String },
    /// Reads the request and never answers, until the client hangs up; the engine
    /// never sees the request.
    Hang,
    /// Answers 200 with a JSON content type and a body that is not JSON; the engine
    /// never sees the request.
    Garbage,
    /// Waits, then forwards as if nothing happened.
    Delay(Duration),
    /// Forwards the request and waits for the head of the engine's answer (so the
    /// operation really happened), then does the inner fault instead of passing the
    /// answer on: `Fail` or `Garbage` answer in its place, `Hang` never answers,
    /// `Drop` closes, `Delay` passes the real answer on late.
    After(Box<Fault>),
    /// Forwards the request, waits for the head of the engine's answer, then closes
    /// the client's connection before any byte of it: same as `After(Drop)`.
    Drop,
}

impl Fault {
    pub fn fail(status: u16, message: impl Into<String>) -> Fault {
        Fault::Fail {
            status,
            message: message.into(),
        }
    }

    /// The engine does it, the client hears `then`.
    pub fn after(then: Fault) -> Fault {
        Fault::After(Box::new(then))
    }
}

/// Which requests get a fault, and how many times.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The HTTP method, exactly, or `*` for any.
    pub method: String,
    /// The path without its query, as segments: `*` inside a segment matches any
    /// run of characters but never a `/`, e.g. `/v*/libpod/containers/*/start`.
    pub path: String,
    /// When set, the percent-decoded query must contain this text (e.g. a filter).
    pub query: Option<String>,
    pub fault: Fault,
    /// How many matching requests get the fault; `None` is every one.
    pub times: Option<usize>,
}

impl Rule {
    /// A rule that applies to every matching request until told otherwise.
    pub fn new(method: &str, path: &str, fault: Fault) -> Rule {
        Rule {
            method: method.into(),
            path: path.into(),
            query: None,
            fault,
            times: None,
        }
    }

    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    pub fn once(self) -> Rule {
        self.times(1)
    }

    pub fn query(mut self, contains: &str) -> Rule {
        self.query = Some(contains.into());
        self
    }

    fn matches(&self, seen: &Seen) -> bool {
        matches_request(&self.method, &self.path, seen)
            && self
                .query
                .as_ref()
                .is_none_or(|q| seen.query.contains(q.as_str()))
    }
}

/// Names a rule given to `EngineProxy::fault`, to ask how often it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleId(u64);

/// The proxy; dropping it stops it and removes its socket file.
pub struct EngineProxy {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    /// Told to end every connection open now (an engine that went away).
    cut: Arc<tokio::sync::Notify>,
    /// Owns the per-connection tasks too: aborting it ends hanging connections.
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// Every new connection is closed at once, as a socket with no engine
    /// behind it would (a machine gone without a word).
    refusing: bool,
    rules: Vec<Armed>,
    seen: Vec<Seen>,
    next_id: u64,
}

struct Armed {
    id: RuleId,
    rule: Rule,
    fired: usize,
}

struct Seen {
    method: String,
    path: String,
    /// Percent-decoded, so rules can name filters as Podman reads them.
    query: String,
}

impl EngineProxy {
    /// Listens on `listen` (a Unix socket it creates) and forwards every connection to
    /// `upstream`. Must be called inside a tokio runtime; the proxy lives on it.
    pub fn start(listen: &Path, upstream: &Path) -> std::io::Result<EngineProxy> {
        let listener = UnixListener::bind(listen)?;
        let state = Arc::new(Mutex::new(State::default()));
        let cut = Arc::new(tokio::sync::Notify::new());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream.to_path_buf(),
            Arc::clone(&state),
            Arc::clone(&cut),
        ));
        Ok(EngineProxy {
            path: listen.to_path_buf(),
            state,
            cut,
            accept,
        })
    }

    /// Closes every new connection at once (`true`) or forwards again (`false`);
    /// connections already open (an event stream) are left as they are.
    pub fn set_refusing(&self, refusing: bool) {
        lock(&self.state).refusing = refusing;
    }

    /// Ends every connection open now, streams included, as an engine that went
    /// away would; new ones are served as before.
    pub fn cut_connections(&self) {
        self.cut.notify_one();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a rule; rules are tried in the order they were added, and the first one
    /// that matches and has times left decides.
    pub fn fault(&self, rule: Rule) -> RuleId {
        let mut state = lock(&self.state);
        let id = RuleId(state.next_id);
        state.next_id += 1;
        state.rules.push(Armed { id, rule, fired: 0 });
        id
    }

    /// How many requests a rule has faulted so far (0 once `clear` forgot it).
    pub fn fired(&self, id: RuleId) -> usize {
        lock(&self.state)
            .rules
            .iter()
            .find(|a| a.id == id)
            .map_or(0, |a| a.fired)
    }

    /// Every request seen whose method (or `*`) and path pattern match, faulted or not.
    pub fn calls(&self, method: &str, path_pattern: &str) -> usize {
        lock(&self.state)
            .seen
            .iter()
            .filter(|s| matches_request(method, path_pattern, s))
            .count()
    }

    /// Every request seen, as `METHOD /path?decoded-query`: for assertion messages.
    pub fn log(&self) -> Vec<String> {
        lock(&self.state)
            .seen
            .iter()
            .map(|s| {
                if s.query.is_empty() {
                    format!("{} {}", s.method, s.path)
                } else {
                    format!("{} {}?{}", s.method, s.path, s.query)
                }
            })
            .collect()
    }

    /// Forgets every rule and every request seen.
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        state.rules.clear();
        state.seen.clear();
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("engine proxy: removing {}: {e}", self.path.display());
            }
        }
    }
}

/// A test that panicked while holding the lock must not hide its own failure behind
/// a poisoned-lock panic in the proxy.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(
    listener: UnixListener,
    upstream: PathBuf,
    state: Arc<Mutex<State>>,
    cut: Arc<tokio::sync::Notify>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cut.notified() => connections.abort_all(),
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    if lock(&state).refusing {
                        drop(client);
                        continue;
                    }
                    connections.spawn(serve(client, upstream.clone(), Arc::clone(&state)));
                }
                Err(e) => {
                    eprintln!("engine proxy: accept: {e}");
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        eprintln!("engine proxy: a connection task panicked: {e}");
                    }
                }
            }
        }
    }
}

async fn serve(mut client: UnixStream, upstream: PathBuf, state: Arc<Mutex<State>>) {
    let head = match read_head(&mut client).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            eprintln!("engine proxy: reading a request: {e}");
            return;
        }
    };
    let Some(seen) = parse_request_line(&head) else {
        eprintln!(
            "engine proxy: not an HTTP request: {:?}",
            String::from_utf8_lossy(&head[..head.len().min(80)])
        );
        return;
    };
    let fault = {
        let mut state = lock(&state);
        let fault = state
            .rules
            .iter_mut()
            .find(|a| a.rule.matches(&seen) && a.rule.times.is_none_or(|t| a.fired < t))
            .map(|a| {
                a.fired += 1;
                a.rule.fault.clone()
            });
        state.seen.push(seen);
        fault
    };
    let result = match fault {
        None => forward(client, &head, &upstream).await,
        Some(Fault::Delay(wait)) => {
            tokio::time::sleep(wait).await;
            forward(client, &head, &upstream).await
        }
        Some(Fault::Fail { status, message }) => {
            answer(client, &error_response(status, &message)).await
        }
        Some(Fault::Garbage) => answer(client, &garbage_response()).await,
        Some(Fault::Hang) => drain(&mut client).await,
        Some(Fault::Drop) => forward_then(client, &head, &upstream, Fault::Drop).await,
        Some(Fault::After(then)) => forward_then(client, &head, &upstream, *then).await,
    };
    if let Err(e) = result {
        // A client that hung up first is ordinary (a test's timeout, say).
        if !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            eprintln!("engine proxy: {e}");
        }
    }
}

/// Reads up to the end of the request head; what follows it (part of a body) is kept
/// in the returned bytes. `None` when the client hung up before sending anything.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Ok(Some(buf))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if head_end(&buf).is_some() {
            return Ok(Some(buf));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "head longer than 64 KiB",
            ));
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_request_line(head: &[u8]) -> Option<Seen> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let mut target = parts.next()?;
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    // Absolute form (`http://d/v4.0.0/...`): keep the path.
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(Seen {
        method: method.into(),
        path: path.into(),
        query: percent_decode(query),
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn matches_request(method: &str, pattern: &str, seen: &Seen) -> bool {
    (method == "*" || method == seen.method) && path_matches(pattern, &seen.path)
}

/// Segment by segment; `*` within a segment never crosses a `/`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| glob(p, s))
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut text) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = rest.split('*').collect();
    let Some((last, middle)) = pieces.split_last() else {
        return true;
    };
    for piece in middle {
        match text.find(piece) {
            Some(i) => text = &text[i + piece.len()..],
            None => return false,
        }
    }
    text.len() >= last.len() && text.ends_with(last)
}

async fn connect(upstream: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(upstream).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("connecting to the engine at {}: {e}", upstream.display()),
        )
    })
}

/// Passes the request and everything after it both ways, however long it streams.
async fn forward(mut client: UnixStream, head: &[u8], upstream: &Path) -> std::io::Result<()> {
    // An engine that is down looks like a connection closed without an answer.
    let mut engine = connect(upstream).await?;
    engine.write_all(head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut engine).await?;
    Ok(())
}

async fn forward_then(
    mut client: UnixStream,
    head: &[u8],
    upstream: &Path,
    mut then: Fault,
) -> std::io::Result<()> {
    while let Fault::After(inner) = then {
        then = *inner;
    }
    let mut engine = connect(upstream).await?;
    engine.write_all(head).await?;
    let engine_head = {
        let (mut client_rd, _) = client.split();
        let (mut engine_rd, mut engine_wr) = engine.split();
        // The rest of the request body goes on while the engine works. No shutdown at
        // the client's end of file: Podman takes a half-close for a hang-up and may
        // cancel the operation this fault is meant to let happen.
        let pump = async {
            if let Err(e) = tokio::io::copy(&mut client_rd, &mut engine_wr).await {
                eprintln!("engine proxy: passing a request body on: {e}");
            }
            std::future::pending::<std::convert::Infallible>().await
        };
        tokio::select! {
            head = read_head(&mut engine_rd) => head?.unwrap_or_default(),
            never = pump => match never {},
        }
    };
    match then {
        Fault::Fail { status, message } => answer(client, &error_response(status, &message)).await,
        Fault::Garbage => answer(client, &garbage_response()).await,
        Fault::Hang => drain(&mut client).await,
        Fault::Delay(wait) => {
            tokio::time::sleep(wait).await;
            client.write_all(&engine_head).await?;
            tokio::io::copy_bidirectional(&mut client, &mut engine).await?;
            Ok(())
        }
        // Closing both ends here is the whole fault.
        Fault::Drop | Fault::After(_) => Ok(()),
    }
}

/// Writes a whole answer, signals its end, and waits for the client to hang up, so a
/// request body still on its way is read rather than cut off.
async fn answer(mut client: UnixStream, response: &[u8]) -> std::io::Result<()> {
    client.write_all(response).await?;
    client.shutdown().await?;
    drain(&mut client).await
}

async fn drain(client: &mut UnixStream) -> std::io::Result<()> {
    let mut sink = [0u8; 4096];
    while client.read(&mut sink).await? > 0 {}
    Ok(())
}

fn error_response(status: u16, message: &str) -> Vec<u8> {
    let reason = match status {
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\nConnection: close\r\n"
    )
    .into_bytes();
    if status == 204 || status == 304 {
        response.extend_from_slice(b"\r\n");
        return response;
    }
    // Podman's cause is the innermost error, the text after the last ": ".
    let cause = message.rsplit(": ").next().unwrap_or(message);
    let body =
        serde_json::json!({ "cause": cause, "message": message, "response": status }).to_string();
    response.extend_from_slice(
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    response
}

fn garbage_response() -> Vec<u8> {
    let body = "<<garbage>> {not json";
    format!(
        "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A real engine API service of the test's own with the fault-injecting proxy in
/// front of it: point `Settings::engine_socket` at `proxy.path()` to count (or
/// break) every request the core makes. The service ends with it.
pub struct ProxiedEngine {
    pub proxy: EngineProxy,
    service: std::process::Child,
}

impl ProxiedEngine {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// The service with more in its environment (`CONTAINERS_REGISTRIES_CONF`).
    pub async fn start_with(dir: &Path, env: &[(&str, &Path)]) -> Self {
        let socket = dir.join("engine-under-test.sock");
        let service = std::process::Command::new("podman")
            .args(["system", "service", "--time=0"])
            .envs(env.iter().copied())
            .arg(format!("unix://{}", socket.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("podman system service");
        let began = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "the engine service never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let proxy = EngineProxy::start(&dir.join("engine-proxy.sock"), &socket).expect("proxy");
        Self { proxy, service }
    }

    /// Whether the service still runs.
    pub fn service_runs(&mut self) -> bool {
        matches!(self.service.try_wait(), Ok(None))
    }

    /// Requests seen of `method` on a path matching `pattern` (after the API's
    /// version prefix: `/containers/create`).
    pub fn calls(&self, method: &str, pattern: &str) -> usize {
        self.proxy.calls(method, &format!("/v*/libpod{pattern}"))
    }
}

impl Drop for ProxiedEngine {
    fn drop(&mut self) {
        let _gone = self.service.kill();
        let _reaped = self.service.wait();
    }
}
