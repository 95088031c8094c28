//! The agents' proxy relay: a small forwarding proxy on the host, which agents use
//! instead of the user's proxy when its address carries credentials, and which
//! adds those credentials (`Proxy-Authorization`) on the way to it. The password
//! stays on the host: a container gets the relay's address with a credential of
//! its own, good only at the relay, only from the containers' network, and only
//! towards the user's proxy (the one place the relay connects to). `CONNECT`
//! (HTTPS) is tunnelled; a plain HTTP request is passed on, one per connection.
//! Docker Desktop's `http.docker.internal:3128` is the same idea.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// The file that keeps the relay's port and key from one launch to the next: a
/// container's address for the relay is fixed when the container is made.
pub const STATE_FILE: &str = "agent-proxy.json";

/// The most of a request's head read before it is refused.
const MAX_HEAD: usize = 32 * 1024;
/// How long a client may take to send its request's head.
const HEAD_TIME: Duration = Duration::from_secs(30);
/// How long the user's proxy may take to accept a connection.
const CONNECT_TIME: Duration = Duration::from_secs(30);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;

/// The relay's accept loop and its connections, for its owner to run (and to
/// cancel, which ends them all).
pub type Serving = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The user's proxy, as the relay reaches it: from the host, so one on the host's
/// loopback is reached there.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    /// `Basic <base64 of user:password>`, the credentials of the proxy's address
    /// (percent-decoded, as curl and Node read them).
    pub authorization: String,
}

impl std::fmt::Debug for Upstream {
    // The authorization is the user's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The upstream of a proxy address that carries credentials
    /// (`http://user:pass@proxy:3128`); `None` for one without (the container may
    /// have it as it is) or one the relay cannot speak to (not `http://`).
    pub fn of(url: &str) -> Option<Self> {
        let parsed = reqwest::Url::parse(url).ok()?;
        if parsed.username().is_empty() && parsed.password().is_none() {
            return None;
        }
        if parsed.scheme() != "http" {
            return None;
        }
        let user = percent_decode(parsed.username());
        let pass = percent_decode(parsed.password().unwrap_or_default());
        let mut pair = user;
        pair.push(b':');
        pair.extend(pass);
        // An IPv6 address without its brackets, as a socket address takes it.
        let host = parsed
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Some(Self {
            host,
            port: parsed.port_or_known_default()?,
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
        })
    }
}

/// `%XX` escapes decoded; anything else as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Where each kind of request goes: `CONNECT` (an `https://` destination) to the
/// `HTTPS_PROXY`, a plain HTTP request to the `HTTP_PROXY`. A kind without an
/// upstream here is refused (the container has that proxy directly: it carries no
/// credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upstreams {
    pub https: Option<Upstream>,
    pub http: Option<Upstream>,
}

impl Upstreams {
    pub fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }
}

/// Who may connect: the relay never answers anyone else (the connection is closed
/// unread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// The containers of a bridge network: addresses in `net/prefix` but the
    /// bridge's own (`gateway`), which is the host's, so another local user
    /// connecting from the host is not one of them.
    Bridge {
        net: IpAddr,
        prefix: u8,
        gateway: IpAddr,
    },
    /// Loopback only (a Podman machine forwards its containers' connections to
    /// the host's loopback): every local user can connect, and the per-agent
    /// credential is what keeps them out.
    Loopback,
}

impl Peers {
    fn allow(&self, peer: IpAddr) -> bool {
        match *self {
            Self::Bridge {
                net,
                prefix,
                gateway,
            } => peer != gateway && in_net(peer, net, prefix),
            Self::Loopback => peer.is_loopback(),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// What the relay keeps between launches: its port and the key its per-agent
/// credentials are made from.
#[derive(Serialize, Deserialize)]
struct Kept {
    port: u16,
    key: String,
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    key: [u8; 32],
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Why the relay did not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the agents' proxy relay could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the agents' proxy relay could not keep its state in {path}: {source}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Relay {
    /// Starts the relay on `listen`, on the port it had at the last launch (a
    /// container's address for it is fixed when the container is made; a port
    /// taken since gets a new one, and the containers made before must be made
    /// again to reach it), for `peers`, towards `upstreams`. Its port and key are
    /// kept in `<home>/agent-proxy.json` (0600). It serves while the returned
    /// future runs.
    pub async fn start(
        home: &Path,
        listen: IpAddr,
        peers: Peers,
        upstreams: Upstreams,
    ) -> Result<(Arc<Self>, Serving), RelayError> {
        let path = home.join(STATE_FILE);
        let state_err = |source| RelayError::State {
            path: path.display().to_string(),
            source,
        };
        let kept: Option<Kept> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let key = match kept.as_ref().and_then(|k| parse_key(&k.key)) {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| state_err(std::io::Error::other(e.to_string())))?;
                key
            }
        };
        let wanted = kept.as_ref().map_or(0, |k| k.port);
        let listener = match bind(SocketAddr::new(listen, wanted)) {
            Ok(l) => l,
            Err(e) if wanted != 0 => {
                tracing::warn!(port = wanted, error = %e, "the agents' proxy relay's port is taken; agents made before must be made again (an update, new limits or a new token) to reach it on its new one");
                bind(SocketAddr::new(listen, 0)).map_err(|source| RelayError::Listen {
                    addr: SocketAddr::new(listen, 0),
                    source,
                })?
            }
            Err(source) => {
                return Err(RelayError::Listen {
                    addr: SocketAddr::new(listen, wanted),
                    source,
                })
            }
        };
        let addr = listener.local_addr().map_err(|source| RelayError::Listen {
            addr: SocketAddr::new(listen, wanted),
            source,
        })?;
        if addr.port() != wanted {
            let kept = Kept {
                port: addr.port(),
                key: key.iter().map(|b| format!("{b:02x}")).collect(),
            };
            let bytes =
                serde_json::to_vec(&kept).map_err(|e| state_err(std::io::Error::other(e)))?;
            crate::store::write_secret(&path, &bytes).map_err(|e| match e {
                crate::store::StoreError::Write { source, .. }
                | crate::store::StoreError::Read { source, .. } => state_err(source),
            })?;
        }
        let relay = Arc::new(Self { addr, key });
        tracing::info!(%addr, ?peers, ?upstreams, "the agents' proxy relay listens");
        let serving = Box::pin(relay.clone().serve(listener, peers, Arc::new(upstreams)));
        Ok((relay, serving))
    }

    /// Where the relay listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The credential of one agent at the relay: HMAC-SHA256 of its id under the
    /// relay's key, hex. It names the agent in the relay's log and opens nothing
    /// but the relay.
    pub fn credential(&self, agent: Uuid) -> String {
        hmac_sha256(&self.key, agent.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The proxy address an agent's container gets: the relay as the container
    /// reaches it (`host`), with the agent's own credential.
    pub fn url_for(&self, agent: Uuid, host: &str) -> String {
        format!(
            "http://{agent}:{}@{host}:{}",
            self.credential(agent),
            self.addr.port()
        )
    }

    /// Accepts and relays, at most [`MAX_CONNECTIONS`] at once; the connections
    /// belong to this future and end with it.
    async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        peers: Peers,
        upstreams: Arc<Upstreams>,
    ) {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => accepted,
            };
            let (client, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "the agents' proxy relay could not accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !peers.allow(peer.ip()) {
                tracing::warn!(%peer, "the agents' proxy relay refused a connection from outside the agents' network");
                continue;
            }
            let this = self.clone();
            let upstreams = upstreams.clone();
            connections.spawn(async move {
                if let Err(e) = this.relay(client, &upstreams).await {
                    tracing::debug!(%peer, error = %e, "an agent's proxy connection ended");
                }
            });
        }
    }

    /// One client connection: its request head read and checked, then passed on to
    /// the user's proxy with the user's credentials instead of the agent's, and
    /// the two connections joined until either closes.
    async fn relay(&self, mut client: TcpStream, upstreams: &Upstreams) -> std::io::Result<()> {
        let (head, rest) = match tokio::time::timeout(HEAD_TIME, read_head(&mut client)).await {
            Ok(read) => read?,
            Err(_) => return answer(&mut client, 408, "Request Timeout").await,
        };
        let Some(request) = Request::parse(&head) else {
            return answer(&mut client, 400, "Bad Request").await;
        };
        let Some(agent) = self.agent_of(&request) else {
            return answer(&mut client, 407, "Proxy Authentication Required").await;
        };
        let connect = request.method.eq_ignore_ascii_case("CONNECT");
        let upstream = if connect {
            upstreams.https.as_ref()
        } else if request.target.starts_with("http://") {
            upstreams.http.as_ref()
        } else {
            // Origin-form: a request for the relay itself, not one to pass on.
            return answer(&mut client, 400, "Bad Request").await;
        };
        let Some(upstream) = upstream else {
            return answer(&mut client, 502, "Bad Gateway").await;
        };
        let to = (upstream.host.as_str(), upstream.port);
        let mut server = match tokio::time::timeout(CONNECT_TIME, TcpStream::connect(to)).await {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                tracing::warn!(%agent, ?upstream, error = %e, "the user's proxy refused the agents' relay");
                return answer(&mut client, 502, "Bad Gateway").await;
            }
            Err(_) => return answer(&mut client, 504, "Gateway Timeout").await,
        };
        tracing::debug!(%agent, method = %request.method, "relaying to the user's proxy");
        server
            .write_all(&request.onward(&upstream.authorization, connect))
            .await?;
        server.write_all(&rest).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        Ok(())
    }

    /// The agent whose credential the request carries (`Proxy-Authorization:
    /// Basic <id>:<credential>`), if it is right.
    fn agent_of(&self, request: &Request) -> Option<Uuid> {
        let value = request.header("proxy-authorization")?;
        let (scheme, encoded) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        let agent: Uuid = user.parse().ok()?;
        crate::api::constant_time_eq(pass.as_bytes(), self.credential(agent).as_bytes())
            .then_some(agent)
    }
}

/// A listener on `addr`. On Linux it may bind an address no interface has yet
/// (`IP_FREEBIND`): the Podman bridge's address exists only while a container is
/// attached to it, and the relay must listen before the first agent starts.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    #[cfg(target_os = "linux")]
    let listener = {
        use rustix::net::{sockopt, AddressFamily, SocketType};
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let socket = rustix::net::socket(family, SocketType::STREAM, None)?;
        sockopt::set_socket_reuseaddr(&socket, true)?;
        if addr.is_ipv4() {
            sockopt::set_ip_freebind(&socket, true)?;
        }
        rustix::net::bind(&socket, &addr)?;
        rustix::net::listen(&socket, 128)?;
        std::net::TcpListener::from(socket)
    };
    #[cfg(not(target_os = "linux"))]
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Reads up to the end of a request's head; gives the head and what came after
/// it (the start of a body, or of a tunnel's first bytes).
async fn read_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("a request head larger than 32 KiB"));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A short answer of the relay's own, then the connection closes.
async fn answer(client: &mut TcpStream, status: u16, reason: &str) -> std::io::Result<()> {
    let challenge = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"clawdock\"\r\n"
    } else {
        ""
    };
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\n{challenge}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    client.write_all(text.as_bytes()).await?;
    client.shutdown().await
}

/// A request's head, parsed.
struct Request {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    fn parse(head: &[u8]) -> Option<Self> {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut headers);
        if !req.parse(head).ok()?.is_complete() {
            return None;
        }
        let target = req.path?.to_string();
        if target.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return None;
        }
        Some(Self {
            method: req.method?.to_string(),
            target,
            version: req.version?,
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The head for the user's proxy: the agent's credential replaced by the
    /// user's; a plain request also closes its connection after one answer, so no
    /// later request on it passes unchecked.
    fn onward(&self, authorization: &str, connect: bool) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method, self.target, self.version
        )
        .into_bytes();
        for (name, value) in &self.headers {
            let dropped = ["proxy-authorization", "proxy-connection"]
                .iter()
                .chain(if connect {
                    [].iter()
                } else {
                    ["connection", "keep-alive"].iter()
                })
                .any(|d| name.eq_ignore_ascii_case(d));
            if dropped {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Proxy-Authorization: {authorization}\r\n").as_bytes());
        if !connect {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(key)
}

/// HMAC-SHA256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 1: the key 0x0b * 20, here padded to 32 bytes with
        // zeros, which is the same HMAC (a key shorter than the block is
        // zero-padded to it).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        let mac = hmac_sha256(&key, b"Hi There");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn upstreams_come_from_addresses_with_credentials_only() {
        let up = Upstream::of("http://al%40ce:p%3Ass@127.0.0.1:3128").expect("credentials");
        assert_eq!((up.host.as_str(), up.port), ("127.0.0.1", 3128));
        let pair = base64::engine::general_purpose::STANDARD
            .decode(up.authorization.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(pair, b"al@ce:p:ss");
        assert!(!format!("{up:?}").contains("Basic"), "no password in a log");
        assert_eq!(
            Upstream::of("http://proxy.corp:3128"),
            None,
            "nothing to hide"
        );
        assert_eq!(Upstream::of("https://u:p@proxy.corp:443"), None, "not http");
        assert_eq!(Upstream::of("not a url"), None);
    }

    #[test]
    fn peers_of_a_bridge_are_its_containers_not_the_host() {
        let bridge = Peers::Bridge {
            net: "10.88.0.0".parse().expect("ip"),
            prefix: 16,
            gateway: "10.88.0.1".parse().expect("ip"),
        };
        assert!(bridge.allow("10.88.0.7".parse().expect("ip")));
        assert!(
            !bridge.allow("10.88.0.1".parse().expect("ip")),
            "the host itself"
        );
        assert!(!bridge.allow("10.89.0.7".parse().expect("ip")));
        assert!(!bridge.allow("127.0.0.1".parse().expect("ip")));
        assert!(!bridge.allow("192.168.1.20".parse().expect("ip")));
        assert!(Peers::Loopback.allow("127.0.0.1".parse().expect("ip")));
        assert!(!Peers::Loopback.allow("10.88.0.7".parse().expect("ip")));
    }

    /// What the fake upstream proxy saw: each request's head.
    type Seen = Arc<Mutex<Vec<String>>>;

    /// A proxy that records each head, answers `CONNECT` with 200 and then echoes
    /// the tunnel, and answers a plain request with a 200 naming its target.
    async fn upstream_proxy() -> (u16, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Seen::default();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok((head, rest)) = read_head(&mut conn).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&head).into_owned();
                    record.lock().expect("seen").push(head.clone());
                    if head.starts_with("CONNECT") {
                        if conn
                            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        if conn.write_all(&rest).await.is_err() {
                            return;
                        }
                        let (mut r, mut w) = conn.split();
                        let _echoed = tokio::io::copy(&mut r, &mut w).await;
                    } else {
                        let body = head.lines().next().unwrap_or_default().to_string();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _answered = conn.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        (port, seen)
    }

    async fn relay_to(port: u16, peers: Peers) -> (Arc<Relay>, tempfile::TempDir) {
        let home = tempfile::tempdir().expect("home");
        let user = Upstream::of(&format!("http://alice:s3cret@127.0.0.1:{port}")).expect("up");
        let (relay, serving) = Relay::start(
            home.path(),
            "127.0.0.1".parse().expect("ip"),
            peers,
            Upstreams {
                https: Some(user.clone()),
                http: Some(user),
            },
        )
        .await
        .expect("relay");
        tokio::spawn(serving);
        (relay, home)
    }

    async fn ask(relay: &Relay, request: String) -> String {
        let mut conn = TcpStream::connect(relay.addr()).await.expect("connect");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 4096];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        answer.extend_from_slice(&buf[..n]);
                        if answer.ends_with(b"ping") {
                            break;
                        }
                    }
                }
            }
        });
        read.await.expect("an answer in time");
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn basic(user: &str, pass: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    }

    #[tokio::test]
    async fn an_agent_with_its_credential_reaches_the_users_proxy_with_the_users() {
        let (port, seen) = upstream_proxy().await;
        let (relay, home) = relay_to(port, Peers::Loopback).await;
        let agent = Uuid::new_v4();
        let credential = relay.credential(agent);
        assert_eq!(credential.len(), 64);
        let auth = basic(&agent.to_string(), &credential);

        let tunnel = ask(
            &relay,
            format!("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Basic {auth}\r\n\r\nping"),
        )
        .await;
        assert!(tunnel.starts_with("HTTP/1.1 200"), "{tunnel}");
        assert!(
            tunnel.ends_with("ping"),
            "the tunnel carries bytes: {tunnel}"
        );
        let plain = ask(
            &relay,
            format!("GET http://plain.example/x HTTP/1.1\r\nHost: plain.example\r\nProxy-Authorization: Basic {auth}\r\nProxy-Connection: keep-alive\r\n\r\n"),
        )
        .await;
        assert!(
            plain.starts_with("HTTP/1.1 200") && plain.contains("GET http://plain.example/x"),
            "{plain}"
        );

        let heads = seen.lock().expect("seen").clone();
        assert_eq!(heads.len(), 2, "{heads:?}");
        let users = format!("Proxy-Authorization: Basic {}", basic("alice", "s3cret"));
        for head in &heads {
            assert!(head.contains(&users), "the user's credentials: {head}");
            assert!(!head.contains(&credential), "not the agent's: {head}");
            assert_eq!(head.matches("Proxy-Authorization").count(), 1, "{head}");
        }
        assert!(heads[1].contains("Connection: close") && !heads[1].contains("Proxy-Connection"));

        // The port and key stay for the next launch; the file is private.
        use std::os::unix::fs::PermissionsExt;
        let file = home.path().join(STATE_FILE);
        assert_eq!(
            std::fs::metadata(&file)
                .expect("state")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let (again, _serving) = Relay::start(
            home.path(),
            "127.0.0.1".parse().expect("ip"),
            Peers::Loopback,
            Upstreams::default(),
        )
        .await
        .expect("a second relay");
        // The first one still holds the port: the second gets another, same key.
        assert_ne!(again.addr(), relay.addr());
        assert_eq!(again.credential(agent), credential, "the same key");
    }

    #[tokio::test]
    async fn anyone_else_gets_nothing_from_the_users_proxy() {
        let (port, seen) = upstream_proxy().await;
        let (relay, _home) = relay_to(port, Peers::Loopback).await;
        let agent = Uuid::new_v4();
        let other = Uuid::new_v4();
        for auth in [
            None,
            Some(basic(&agent.to_string(), "wrong")),
            // Another agent's credential under this agent's name.
            Some(basic(&agent.to_string(), &relay.credential(other))),
            Some(basic("alice", "s3cret")),
        ] {
            let header = auth
                .map(|a| format!("Proxy-Authorization: Basic {a}\r\n"))
                .unwrap_or_default();
            let answer = ask(
                &relay,
                format!("CONNECT api.example.com:443 HTTP/1.1\r\n{header}\r\n"),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 407"), "{answer}");
            assert!(answer.contains("Proxy-Authenticate: Basic"), "{answer}");
        }
        // A request for the relay itself is no request to pass on.
        let auth = basic(&agent.to_string(), &relay.credential(agent));
        let own = ask(
            &relay,
            format!("GET / HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n"),
        )
        .await;
        assert!(own.starts_with("HTTP/1.1 400"), "{own}");
        assert!(
            seen.lock().expect("seen").is_empty(),
            "nothing reached the user's proxy"
        );

        // From outside the agents' network: closed unread, not even a 407.
        let (fenced, _home) = relay_to(
            port,
            Peers::Bridge {
                net: "10.88.0.0".parse().expect("ip"),
                prefix: 16,
                gateway: "10.88.0.1".parse().expect("ip"),
            },
        )
        .await;
        let answer = ask(
            &fenced,
            format!(
                "CONNECT api.example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(answer, "", "closed without an answer");
        assert!(seen.lock().expect("seen").is_empty());
    }
}
