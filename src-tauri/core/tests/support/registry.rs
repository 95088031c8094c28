//! A container registry of the tests' own: the pull side of the distribution API,
//! plain HTTP on loopback, serving one image from an OCI layout folder (`podman save
//! --format oci-dir`) under any name, its blobs at a bounded rate so that a pull
//! lasts long enough for its progress to be seen. No registry is reachable in CI.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::Value;

pub struct Registry {
    port: u16,
    layout: Arc<Layout>,
    served: Arc<Mutex<Vec<String>>>,
    sending: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

struct Layout {
    /// The OCI layout served now (a test swaps it for a newer build).
    dir: Mutex<PathBuf>,
    bytes_per_sec: usize,
    served: Arc<Mutex<Vec<String>>>,
    /// Blob bodies being sent now: one less when the client hangs up.
    sending: Arc<AtomicUsize>,
    /// The `Authorization` header every request must carry, if any.
    login: Option<String>,
}

/// Counts one blob body being sent while it lives.
struct Sending(Arc<AtomicUsize>);

impl Sending {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Registry {
    /// Serves the image of the OCI layout at `dir`, each blob at `bytes_per_sec`.
    pub async fn serve(dir: &Path, bytes_per_sec: usize) -> Self {
        Self::serve_with_login(dir, bytes_per_sec, None).await
    }

    /// `serve`, answering only requests that log in as `user:password` (HTTP
    /// basic authentication; others get its challenge).
    pub async fn serve_with_login(
        dir: &Path,
        bytes_per_sec: usize,
        login: Option<(&str, &str)>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let served = Arc::new(Mutex::new(Vec::new()));
        let sending = Arc::new(AtomicUsize::new(0));
        let layout = Arc::new(Layout {
            dir: Mutex::new(dir.to_path_buf()),
            bytes_per_sec,
            served: served.clone(),
            sending: sending.clone(),
            login: login.map(|(user, password)| {
                use base64::Engine as _;
                let pair = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }),
        });
        let served_layout = layout.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: axum::http::HeaderMap| {
                let layout = served_layout.clone();
                async move {
                    let given = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    match &layout.login {
                        Some(wanted) if given != Some(wanted.as_str()) => {
                            layout.note(&method, &format!("{} (no login)", uri.path()));
                            (
                                StatusCode::UNAUTHORIZED,
                                [(header::WWW_AUTHENTICATE, "Basic realm=\"clawdock-test\"")],
                                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                            )
                                .into_response()
                        }
                        _ => layout.answer(&method, uri.path()).await,
                    }
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ended = axum::serve(listener, app).await;
        });
        Self {
            port,
            layout,
            served,
            sending,
            task,
        }
    }

    /// Serves the image of the OCI layout at `dir` from now on, under the same
    /// names: a newer build pushed to the same tag.
    pub fn serve_instead(&self, dir: &Path) {
        *self.layout.dir.lock().expect("layout") = dir.to_path_buf();
    }

    /// `host:port`, as an image name begins.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests answered so far ("GET /v2/x/blobs/sha256:…").
    pub fn served(&self) -> Vec<String> {
        self.served.lock().expect("served").clone()
    }

    /// Blobs whose bytes are being sent now (their client still reads).
    pub fn sending(&self) -> usize {
        self.sending.load(Ordering::SeqCst)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Layout {
    fn dir(&self) -> PathBuf {
        self.dir.lock().expect("layout").clone()
    }

    fn note(&self, method: &Method, what: &str) {
        self.served
            .lock()
            .expect("served")
            .push(format!("{method} {what}"));
    }

    async fn answer(&self, method: &Method, path: &str) -> Response {
        self.note(method, path);
        if path == "/v2/" || path == "/v2" {
            return ([("Docker-Distribution-API-Version", "registry/2.0")], "{}").into_response();
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return not_found();
        };
        if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
            return self.manifest(method, reference);
        }
        if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
            return self.blob(method, digest);
        }
        not_found()
    }

    fn manifest(&self, method: &Method, reference: &str) -> Response {
        let index: Value = serde_json::from_slice(
            &std::fs::read(self.dir().join("index.json")).expect("index.json"),
        )
        .expect("index");
        let entry = &index["manifests"][0];
        let digest = entry["digest"].as_str().expect("digest");
        if reference.starts_with("sha256:") && reference != digest {
            return not_found();
        }
        let media_type = entry["mediaType"].as_str().expect("media type").to_string();
        let body = self.read_blob(digest).expect("the manifest blob");
        let headers = [
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_LENGTH, body.len().to_string()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ];
        if method == Method::HEAD {
            return (headers, Body::empty()).into_response();
        }
        (headers, body).into_response()
    }

    fn blob(&self, method: &Method, digest: &str) -> Response {
        let Some(bytes) = self.read_blob(digest) else {
            return not_found();
        };
        let headers = [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, bytes.len().to_string()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ];
        if method == Method::HEAD {
            return (headers, Body::empty()).into_response();
        }
        // A tenth of a second's worth per chunk.
        let chunk = (self.bytes_per_sec / 10).max(1);
        let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(bytes)
            .chunks(chunk)
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        let sending = Sending::new(&self.sending);
        let paced = futures::stream::iter(chunks)
            .then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(chunk)
            })
            .map(move |chunk| {
                let _while_sending = &sending;
                chunk
            });
        (headers, Body::from_stream(paced)).into_response()
    }

    fn read_blob(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:")?;
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        std::fs::read(self.dir().join("blobs/sha256").join(hex)).ok()
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}"#,
    )
        .into_response()
}
