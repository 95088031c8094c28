//! HTTP to Podman's API socket (its libpod endpoints, and Docker's where only they
//! say enough): one connection per request, JSON in and out, bounded bodies and
//! times, streams of lines and log frames, and one classification of a refused or
//! dropped connection as the engine lost.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::engine::lines::{LineSplitter, LineStream, Stream};
use crate::engine::{PodmanError, MAX_STDOUT};

/// The libpod API's path prefix. Podman 4 and 5 both answer it: the version in the
/// path is the oldest API this client speaks, not the engine's.
pub const API_PREFIX: &str = "/v4.0.0/libpod";

/// The engine's API socket, wherever it is now, and how long a request may take.
/// The machine (vm mode) or the socket's owner (native) sets the endpoint; every
/// clone sees the same one. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EngineClient {
    endpoint: Arc<Mutex<Option<PathBuf>>>,
    call_timeout: Duration,
}

/// One request: a method, a path under [`API_PREFIX`] (or Docker's, see
/// [`Request::docker`]) with its query, and a JSON body if any.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    prefix: &'static str,
    path: String,
    /// `X-Registry-Auth`: a login handed to the engine, never logged.
    registry_auth: Option<Secret>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            prefix: API_PREFIX,
            path: path.into(),
            registry_auth: None,
            body: None,
            timeout: None,
        }
    }

    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Hands the engine a registry login (an `X-Registry-Auth` value) for a pull.
    pub fn registry_auth(mut self, header: Option<String>) -> Self {
        self.registry_auth = header.map(Secret);
        self
    }

    /// The path is one of Podman's Docker-compatible endpoints, served without a
    /// version (Podman checks no Docker API version there).
    pub fn docker(mut self) -> Self {
        self.prefix = "";
        self
    }

    /// What the log and an error show: the method and the path without its query
    /// (filters can be long; no secret is ever in a path).
    pub fn describe(&self) -> String {
        let path = self.path.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }

    /// Anything but a read changes the engine's state.
    fn mutating(&self) -> bool {
        self.method != Method::GET
    }
}

/// A value that must not reach a log: `Debug` shows that it is there, not what.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An answer that arrived: its status and its whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self, request: &str) -> Result<T, PodmanError> {
        serde_json::from_slice(&self.body).map_err(|e| PodmanError::BadOutput {
            args: request.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The message of a libpod error body (`{"cause", "message", "response"}`), else
/// the body's text.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            text.chars()
                .take(2000)
                .collect::<String>()
                .trim()
                .to_string()
        })
}

#[cfg(unix)]
type Connection = tokio::net::UnixStream;
#[cfg(windows)]
type Connection = tokio::net::windows::named_pipe::NamedPipeClient;

/// Why no connection was made.
enum NoConnection {
    Io(std::io::Error),
    /// The process listening is another user's (not this one's, not root's).
    #[cfg(unix)]
    Untrusted {
        owner: u32,
        ours: u32,
    },
}

/// Connects, and trusts the socket only when the process listening on it is this
/// user's or root's (root can read all of this user's secrets anyway). Whoever
/// listens on the engine's socket is sent gateway tokens, proxy credentials and
/// registry logins: a socket another user bound first (a predictable name in a
/// shared folder) must never be. The kernel says who listens (`SO_PEERCRED` on
/// Linux, `getpeereid` on macOS), whatever the socket file's owner or mode say.
#[cfg(unix)]
async fn connect(path: &Path) -> Result<Connection, NoConnection> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(NoConnection::Io)?;
    let owner = stream.peer_cred().map_err(NoConnection::Io)?.uid();
    let ours = crate::engine::socket::euid();
    if owner == ours || owner == 0 {
        Ok(stream)
    } else {
        Err(NoConnection::Untrusted { owner, ours })
    }
}

/// The machine's named pipe, as Podman made it (its access list is Podman's).
#[cfg(windows)]
async fn connect(path: &Path) -> Result<Connection, NoConnection> {
    // Podman's pipe serves one client per instance: a busy pipe frees an instance
    // within moments.
    const ERROR_PIPE_BUSY: i32 = 231;
    let mut tries = 0;
    loop {
        match tokio::net::windows::named_pipe::ClientOptions::new().open(path) {
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map_err(NoConnection::Io),
        }
    }
}

impl EngineClient {
    pub fn new(call_timeout: Duration) -> Self {
        Self {
            endpoint: Arc::new(Mutex::new(None)),
            call_timeout,
        }
    }

    /// Where requests go from now on (`None`: nowhere, every request fails as the
    /// engine unreachable).
    pub fn set_endpoint(&self, endpoint: Option<PathBuf>) {
        *lock(&self.endpoint) = endpoint;
    }

    pub fn endpoint(&self) -> Option<PathBuf> {
        lock(&self.endpoint).clone()
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Sends one request and reads its whole answer, whatever its status. A
    /// request that changes something runs on a task of its own: a caller that
    /// gives up (a timeout, a dropped HTTP request of Clawdock's own API) stops
    /// waiting, but the request is never cut half-way in the engine.
    pub async fn send(&self, request: Request) -> Result<Answer, PodmanError> {
        let timeout = request.timeout.unwrap_or(self.call_timeout);
        let what = request.describe();
        let mutating = request.mutating();
        let endpoint = self.endpoint();
        let exchange = async move {
            let endpoint = endpoint.ok_or_else(|| no_endpoint(&request))?;
            exchange(&endpoint, request).await
        };
        let outcome = if mutating {
            let task = tokio::spawn(exchange);
            match tokio::time::timeout(timeout, task).await {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(join)) => Ok(Err(PodmanError::Unreachable {
                    request: what.clone(),
                    reason: format!("the request's task ended: {join}"),
                })),
                Err(elapsed) => Err(elapsed),
            }
        } else {
            tokio::time::timeout(timeout, exchange).await
        };
        let result = outcome.unwrap_or_else(|_| {
            Err(PodmanError::TimedOut {
                args: what.clone(),
                after: timeout,
                stderr_tail: String::new(),
            })
        });
        match &result {
            // Expected while the engine is away (a machine stopped, a probe of a
            // socket that may not be there): the caller says what it means.
            Err(e) if e.engine_unreachable() => {
                tracing::debug!(request = %what, error = %e, "engine unreachable");
            }
            Err(e) => tracing::warn!(request = %what, error = %e, "engine request failed"),
            Ok(_) => {}
        }
        result
    }

    /// Sends one request and returns its answer when the status is a success;
    /// any other status is an error carrying the engine's message.
    pub async fn call(&self, request: Request) -> Result<Answer, PodmanError> {
        let what = request.describe();
        let answer = self.send(request).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_MODIFIED {
            Ok(answer)
        } else {
            let err = PodmanError::Api {
                request: what.clone(),
                status: answer.status.as_u16(),
                message: error_message(&answer.body),
            };
            // "No such container" is an answer callers expect (an exists check, a
            // container gone); anything else is worth a warning.
            if answer.status == StatusCode::NOT_FOUND {
                tracing::debug!(request = %what, error = %err, "engine: not found");
            } else {
                tracing::warn!(request = %what, status = %answer.status, error = %err, "engine refused a request");
            }
            Err(err)
        }
    }

    /// A request whose answer never ends by itself (events, logs that follow):
    /// its lines as they come. `frames`: the body is Docker's multiplexed log
    /// stream (an 8-byte header per frame says stdout or stderr); otherwise lines
    /// of text. Returns once connected: the engine may hold back even the answer's
    /// head until it has something to say (Podman 4.3 does for events), so an
    /// error status only ends the stream (and is logged). Dropping the stream
    /// closes the connection.
    pub async fn stream(&self, request: Request, frames: bool) -> Result<LineStream, PodmanError> {
        let what = request.describe();
        let sender = self
            .within_timeout(&request, |endpoint| {
                let what = what.clone();
                async move { handshake(&endpoint, &what).await }
            })
            .await?;
        tracing::debug!(request = %what, "engine stream opened");
        let (tx, rx) = mpsc::channel(256);
        let described = what.clone();
        let task = tokio::spawn(async move {
            let response = match send(sender, &request).await {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(request = %described, error = %e, "engine stream failed");
                    return;
                }
            };
            if !response.status().is_success() {
                let status = response.status();
                let body = collect(response.into_body(), &described)
                    .await
                    .unwrap_or_default();
                tracing::warn!(request = %described, %status, message = %error_message(&body), "engine refused a stream");
                return;
            }
            forward_body(response.into_body(), frames, tx).await;
        });
        Ok(LineStream::from_task(rx, task))
    }

    /// A request whose answer comes as a stream of lines that ends when the work
    /// does (a pull's progress): returns once the answer's head is back, with the
    /// engine's error if its status is one. The timeout bounds the head only.
    /// Dropping the stream closes the connection, which cancels the work in the
    /// engine: right for a pull, which leaves nothing half-made.
    pub async fn answer_lines(&self, request: Request) -> Result<LineStream, PodmanError> {
        let what = request.describe();
        let response = self
            .within_timeout(&request, |endpoint| {
                let request = &request;
                async move { open(&endpoint, request).await }
            })
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = collect(response.into_body(), &what).await?;
            let err = PodmanError::Api {
                request: what.clone(),
                status: status.as_u16(),
                message: error_message(&body),
            };
            tracing::warn!(request = %what, %status, error = %err, "engine refused a request");
            return Err(err);
        }
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(forward_body(response.into_body(), false, tx));
        Ok(LineStream::from_task(rx, task))
    }

    /// `reach(endpoint)` within the request's timeout; no endpoint is the engine
    /// unreachable.
    async fn within_timeout<T, F, Fut>(&self, request: &Request, reach: F) -> Result<T, PodmanError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<T, PodmanError>>,
    {
        let endpoint = self.endpoint().ok_or_else(|| no_endpoint(request))?;
        let timeout = request.timeout.unwrap_or(self.call_timeout);
        tokio::time::timeout(timeout, reach(endpoint))
            .await
            .unwrap_or_else(|_| {
                Err(PodmanError::TimedOut {
                    args: request.describe(),
                    after: timeout,
                    stderr_tail: String::new(),
                })
            })
    }
}

fn no_endpoint(request: &Request) -> PodmanError {
    PodmanError::Unreachable {
        request: request.describe(),
        reason: "no engine socket is known yet".into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Connects; the connection is driven by a task of its own until both ends are
/// done with it.
async fn handshake(endpoint: &Path, what: &str) -> Result<Sender, PodmanError> {
    let unreachable = |reason: String| PodmanError::Unreachable {
        request: what.to_string(),
        reason,
    };
    let stream = connect(endpoint).await.map_err(|e| match e {
        NoConnection::Io(e) => unreachable(format!("{}: {e}", endpoint.display())),
        #[cfg(unix)]
        NoConnection::Untrusted { owner, ours } => PodmanError::Untrusted {
            socket: endpoint.display().to_string(),
            owner,
            ours,
        },
    })?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "engine connection ended");
        }
    });
    Ok(sender)
}

/// Sends the request; the answer's head is back, its body to read.
async fn send(
    mut sender: Sender,
    request: &Request,
) -> Result<hyper::Response<Incoming>, PodmanError> {
    let what = request.describe();
    let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
    let mut built = hyper::Request::builder()
        .method(request.method.clone())
        .uri(format!("{}{}", request.prefix, request.path))
        .header(hyper::header::HOST, "podman")
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(Secret(login)) = &request.registry_auth {
        built = built.header("X-Registry-Auth", login);
    }
    let built = built.body(body).map_err(|e| PodmanError::BadOutput {
        args: what.clone(),
        reason: e.to_string(),
    })?;
    sender
        .send_request(built)
        .await
        .map_err(|e| PodmanError::Unreachable {
            request: what,
            reason: format!("the connection dropped: {e}"),
        })
}

async fn open(
    endpoint: &Path,
    request: &Request,
) -> Result<hyper::Response<Incoming>, PodmanError> {
    let sender = handshake(endpoint, &request.describe()).await?;
    send(sender, request).await
}

async fn exchange(endpoint: &Path, request: Request) -> Result<Answer, PodmanError> {
    let what = request.describe();
    let response = open(endpoint, &request).await?;
    let status = response.status();
    let body = collect(response.into_body(), &what).await?;
    Ok(Answer { status, body })
}

async fn collect(body: Incoming, what: &str) -> Result<Bytes, PodmanError> {
    match Limited::new(body, MAX_STDOUT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(PodmanError::OutputTooLarge {
            args: what.to_string(),
            limit: MAX_STDOUT,
        }),
        Err(e) => Err(PodmanError::Unreachable {
            request: what.to_string(),
            reason: format!("the answer was cut: {e}"),
        }),
    }
}

/// Reads a streamed body into lines until it ends or nobody listens.
async fn forward_body(mut body: Incoming, frames: bool, tx: mpsc::Sender<(Stream, String)>) {
    let mut out = LineSplitter::new(false);
    let mut err = LineSplitter::new(false);
    let mut demux = Demux::default();
    let mut ready: Vec<(Stream, String)> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let bytes = data.copy_to_bytes(data.remaining());
        if frames {
            demux.push(&bytes, |which, chunk| {
                let splitter = if which == Stream::Stderr {
                    &mut err
                } else {
                    &mut out
                };
                splitter.push(chunk, |line| ready.push((which, line)));
            });
        } else {
            out.push(&bytes, |line| ready.push((Stream::Stdout, line)));
        }
        for item in ready.drain(..) {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    }
    for (which, splitter) in [(Stream::Stdout, out), (Stream::Stderr, err)] {
        if let Some(line) = splitter.finish() {
            let _no_listener = tx.send((which, line)).await;
        }
    }
}

/// Splits Docker's multiplexed stream: each frame is a byte naming the stream (1
/// stdout, 2 stderr), three zero bytes, a big-endian length, then that many bytes.
#[derive(Default)]
pub(crate) struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    pub(crate) fn push(&mut self, bytes: &[u8], mut chunk: impl FnMut(Stream, &[u8])) {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while self.pending.len() - at >= 8 {
            let head = &self.pending[at..at + 8];
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if self.pending.len() - at - 8 < len {
                break;
            }
            let which = if head[0] == 2 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            chunk(which, &self.pending[at + 8..at + 8 + len]);
            at += 8 + len;
        }
        self.pending.drain(..at);
    }
}

/// Percent-encodes a query value (a JSON filter, a name).
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_by_stream_across_reads() {
        let mut demux = Demux::default();
        let mut seen: Vec<(Stream, String)> = Vec::new();
        let bytes = b"\x01\0\0\0\0\0\0\x05out1\n\x02\0\0\0\0\0\0\x05err1\n";
        // Fed a byte at a time: a frame's head and body may arrive apart.
        for b in bytes {
            demux.push(std::slice::from_ref(b), |w, c| {
                seen.push((w, String::from_utf8_lossy(c).into_owned()))
            });
        }
        let text: Vec<(Stream, String)> = seen;
        let joined_out: String = text
            .iter()
            .filter(|(w, _)| *w == Stream::Stdout)
            .map(|(_, c)| c.as_str())
            .collect();
        let joined_err: String = text
            .iter()
            .filter(|(w, _)| *w == Stream::Stderr)
            .map(|(_, c)| c.as_str())
            .collect();
        assert_eq!(joined_out, "out1\n");
        assert_eq!(joined_err, "err1\n");
    }

    #[test]
    fn an_error_body_gives_its_message() {
        let body = br#"{"cause":"no such container","message":"no container with name or ID \"x\" found: no such container","response":404}"#;
        assert_eq!(
            error_message(body),
            "no container with name or ID \"x\" found: no such container"
        );
        assert_eq!(error_message(b"plain text\n"), "plain text");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query_value(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }

    #[tokio::test]
    async fn no_endpoint_is_the_engine_unreachable() {
        let client = EngineClient::new(Duration::from_secs(5));
        let err = client
            .call(Request::get("/_ping"))
            .await
            .expect_err("no endpoint");
        assert!(err.engine_unreachable(), "{err}");
        client.set_endpoint(Some(PathBuf::from("/nonexistent/engine.sock")));
        let err = client
            .call(Request::post("/containers/x/start"))
            .await
            .expect_err("no socket");
        assert!(err.engine_unreachable(), "{err}");
    }
}
