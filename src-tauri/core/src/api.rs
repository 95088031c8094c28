//! The HTTP API on loopback (`127.0.0.1` and `[::1]`, one port): the replaced
//! runtime's routes, runtime setup, and a Server-Sent Events stream of every
//! change. Guards: a bearer token made fresh at every start on every route but the
//! UI's static files, only Clawdock's own `Host` and `Origin`, and on every answer
//! `nosniff`, `no-referrer` (and a strict Content-Security-Policy on the UI).

use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::agents::{AgentError, CreateRequest, EditRequest, ErrorCode};
use crate::events::Event;
use crate::machine::{MachineError, MachineSpec};
use crate::store::{self, StoreError};
use crate::Clawdock;

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// The policy of the UI's pages: its own files only, talking to this API only, in
/// no frame, no inline script or style. The desktop window loads the same pages from
/// this address, so it is under the same policy.
pub const UI_CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
    style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// An error as clients get it: `{error: "<a sentence>", code: "<stable code>"}`
/// with the status the code calls for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(skip, default = "internal_status")]
    status: StatusCode,
    pub code: ErrorCode,
    #[serde(rename = "error")]
    pub message: String,
    /// Podman's own words where the sentence replaced them, for a "Details" view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

fn internal_status() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            message: message.into(),
            details: None,
        }
    }
}

/// The HTTP status of each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::InvalidName | C::InvalidInput | C::BadRequest | C::BadArchive => StatusCode::BAD_REQUEST,
        C::Unauthorized => StatusCode::UNAUTHORIZED,
        C::Forbidden => StatusCode::FORBIDDEN,
        C::NotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::NameTaken
        | C::ContainerNameTaken
        | C::NotRunning
        | C::NotOurs
        | C::Busy
        | C::Cancelled
        | C::NoLoginItem
        | C::NoWindow
        | C::DiskLimit
        | C::UpdateUnavailable => StatusCode::CONFLICT,
        C::UpdateRefused => StatusCode::UNPROCESSABLE_ENTITY,
        C::UpdateUnreachable => StatusCode::BAD_GATEWAY,
        C::PayloadTooLarge | C::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::GatewayFailed => StatusCode::BAD_GATEWAY,
        C::PodmanUnavailable | C::RuntimeNotReady | C::ShuttingDown | C::NoFreePort => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        C::PodmanFailed
        | C::StoreFailed
        | C::FolderFailed
        | C::LoginItemFailed
        | C::UpdateFailed
        | C::ProxyFailed
        | C::SnapshotFailed
        | C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let mut err = Self::new(e.code(), e.to_string());
        err.details = e.details();
        if err.status.is_server_error() {
            tracing::warn!(error = %e, code = ?err.code, "request failed");
        }
        err
    }
}

impl From<MachineError> for ApiError {
    fn from(e: MachineError) -> Self {
        Self::new(ErrorCode::RuntimeNotReady, e.to_string())
    }
}

/// `Json` whose rejections (bad JSON, wrong content type, oversize) answer in the
/// API's error shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => {
                let code = match &rejection {
                    JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
                    JsonRejection::BytesRejection(_) => ErrorCode::PayloadTooLarge,
                    _ => ErrorCode::BadRequest,
                };
                Err(ApiError::new(code, rejection.body_text()))
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    core: Clawdock,
    token: Arc<str>,
    port: u16,
    /// Cancelled by [`ApiServer::close`]: ends the event and log streams, so the
    /// graceful shutdown need not wait for clients that never hang up.
    closing: CancellationToken,
}

/// How long closing waits for requests in flight before it drops them.
const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// A listening API. Dropping it does not stop the server; call [`ApiServer::close`].
pub struct ApiServer {
    /// `127.0.0.1:PORT`, the address clients are given.
    pub addr: SocketAddr,
    /// `[::1]:PORT`, held so no other user can take the IPv6 loopback of the same
    /// port for clients that resolve `localhost` to it; `None` without IPv6.
    pub addr_v6: Option<SocketAddr>,
    /// Made fresh at every start; programs read it from `api.json` (0600), the
    /// window gets it injected.
    pub token: String,
    discovery: PathBuf,
    task: tokio::task::JoinHandle<()>,
    closing: CancellationToken,
    /// Told where the API listens, and that it stopped.
    core: Clawdock,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("could not listen on [::1]:{port}: {source}")]
    BindV6 { port: u16, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub use crate::instance::Discovery;

/// How many ports `--port 0` tries when another program holds `[::1]` on the one
/// picked for `127.0.0.1`.
const PORT_ATTEMPTS: usize = 10;

/// Binds `127.0.0.1:port` and `[::1]` on the same port. Another program on
/// `[::1]:port` is an error (for port 0: another free port is tried); a host with
/// no IPv6 loopback serves on `127.0.0.1` alone.
async fn bind_loopback(
    port: u16,
) -> Result<(tokio::net::TcpListener, Option<tokio::net::TcpListener>), ServeError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let v4 = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| ServeError::Bind { port, source })?;
        let actual = v4
            .local_addr()
            .map_err(|source| ServeError::Bind { port, source })?
            .port();
        match tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, actual)).await {
            Ok(v6) => return Ok((v4, Some(v6))),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if port != 0 || attempts >= PORT_ATTEMPTS {
                    return Err(ServeError::BindV6 {
                        port: actual,
                        source: e,
                    });
                }
                tracing::warn!(
                    port = actual,
                    "[::1] of this port is taken; trying another port"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "no IPv6 loopback; the API listens on 127.0.0.1 only");
                return Ok((v4, None));
            }
        }
    }
}

impl ApiServer {
    /// Binds 127.0.0.1:`port` and [::1] on the same port (0 for any free port),
    /// makes a fresh token, writes `api.json` and serves.
    pub async fn start(core: Clawdock, port: u16) -> Result<Self, ServeError> {
        let (listener, listener_v6) = bind_loopback(port).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { port, source })?;
        let addr_v6 = listener_v6.as_ref().and_then(|l| l.local_addr().ok());
        remove_stale_token_file(&core.settings().token_file());
        let token = crate::agents::random_hex(32);
        let closing = CancellationToken::new();
        let state = AppState {
            core: core.clone(),
            token: token.clone().into(),
            port: addr.port(),
            closing: closing.clone(),
        };
        let app = router(state);
        let discovery = core.settings().api_file();
        let info = Discovery {
            url: format!("http://{addr}"),
            token: token.clone(),
            pid: std::process::id(),
        };
        let text = serde_json::to_vec_pretty(&info).map_err(|e| StoreError::Write {
            path: discovery.clone(),
            source: std::io::Error::other(e),
        })?;
        store::write_secret(&discovery, &text)?;
        let serve = |listener: tokio::net::TcpListener, stop: CancellationToken| {
            let app = app.clone();
            async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "API server stopped");
                }
            }
        };
        let v4 = serve(listener, closing.clone());
        let v6 = listener_v6.map(|l| serve(l, closing.clone()));
        let task = tokio::spawn(async move {
            match v6 {
                Some(v6) => {
                    tokio::join!(v4, v6);
                }
                None => v4.await,
            }
        });
        tracing::info!(%addr, ?addr_v6, "API listening");
        core.set_api_url(Some(info.url.clone()));
        Ok(Self {
            addr,
            addr_v6,
            token,
            discovery,
            task,
            closing,
            core,
        })
    }

    /// Where local programs find the address and the token (`api.json`, 0600).
    pub fn discovery_file(&self) -> &std::path::Path {
        &self.discovery
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving: requests in flight get their answers (the one to
    /// `POST /shutdown` among them), streams end, then `api.json` is removed if it
    /// is still this process's.
    pub async fn close(mut self) {
        self.core.set_api_url(None);
        self.closing.cancel();
        if tokio::time::timeout(CLOSE_BOUND, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("requests still open after the close bound; dropping them");
            self.task.abort();
        }
        let ours = std::fs::read(&self.discovery)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Discovery>(&bytes).ok())
            .is_some_and(|d| d.pid == std::process::id());
        if ours {
            if let Err(e) = std::fs::remove_file(&self.discovery) {
                tracing::warn!(error = %e, "could not remove api.json");
            }
        }
    }
}

/// Removes the token file older versions kept from run to run: a secret that
/// outlived its server.
fn remove_stale_token_file(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(file = %path.display(), "removed the old API token file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "could not remove the old API token file")
        }
    }
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        // `POST /agents`: the replaced runtime's sequence diagram named it so.
        .route("/agents", get(list_agents).post(create_agent))
        .route("/agents/runtime-status", get(runtime_status))
        .route("/agents/create", post(create_agent))
        .route("/agents/{id}/start", post(start_agent))
        .route("/agents/{id}/stop", post(stop_agent))
        .route("/agents/{id}/logs", get(agent_logs))
        .route("/agents/{id}/chat", post(chat))
        .route(
            "/agents/{id}/dashboard",
            get(dashboard).post(dashboard_link),
        )
        .route("/agents/{id}/rotate-token", post(rotate_token))
        .route("/agents/{id}/cancel", post(cancel_agent))
        .route("/agents/{id}/update", post(update_agent))
        .route("/agents/{id}/export", get(export_agent))
        .route("/agents/{id}/backup", post(backup_agent))
        .route("/agents/{id}/snapshots", get(list_snapshots))
        .route(
            "/agents/{id}/snapshots/{name}/restore",
            post(restore_snapshot),
        )
        .route(
            "/agents/restore",
            post(restore_agent).layer(DefaultBodyLimit::max(MAX_ARCHIVE_BODY)),
        )
        .route("/agents/update-all", post(update_all))
        .route("/agents/stats", get(stats))
        .route(
            "/agents/{id}",
            delete(delete_agent).get(get_agent).patch(edit_agent),
        )
        .route("/agents/start-all", post(start_all))
        .route("/agents/stop-all", post(stop_all))
        .route("/runtime/setup", post(setup_runtime))
        .route("/runtime/start", post(start_runtime))
        .route("/runtime/stop", post(stop_runtime))
        .route("/runtime/check", post(check_runtime))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/meta", get(meta))
        .route("/events", get(events))
        .route("/shutdown", post(shutdown))
        .route("/window", post(show_window))
        .route("/app/update", get(self_update_status))
        .route("/app/update/check", post(self_update_check))
        .route("/app/update/install", post(self_update_install))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(static_file))
        .route("/index.html", get(static_file))
        .route("/ui/{*path}", get(static_file))
        // No bearer token here: a browser opened by `xdg-open` has none. The
        // one-time ticket in the path is the credential.
        .route("/dashboard/{ticket}", get(open_dashboard))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), guard_origin))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorCode::Internal, "internal error").into_response()
        }))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// On every answer, refusals and errors included: no content sniffing, and no
/// `Referer` carrying an address out of the UI.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn own_origins(port: u16) -> [String; 3] {
    [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
    ]
}

/// Refuses any request whose `Host` or `Origin` is not Clawdock's own, so a web page
/// in the user's browser cannot drive agents, not even through DNS rebinding. The UI
/// (in the browser and in the desktop window) is served from this address, so its
/// requests are same-origin: no CORS, and no other origin is let in.
async fn guard_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let port = state.port;
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| {
            h == format!("127.0.0.1:{port}")
                || h == format!("localhost:{port}")
                || h == format!("[::1]:{port}")
        });
    if !host_ok {
        return ApiError::new(
            ErrorCode::Forbidden,
            "This API answers only on its own address.",
        )
        .into_response();
    }
    let origin_ok = match req.headers().get(header::ORIGIN) {
        None => true,
        Some(o) => o
            .to_str()
            .is_ok_and(|o| own_origins(port).iter().any(|own| own == o)),
    };
    if !origin_ok {
        return ApiError::new(
            ErrorCode::Forbidden,
            "Requests from this origin are not allowed.",
        )
        .into_response();
    }
    next.run(req).await
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), state.token.as_bytes()) {
        next.run(req).await
    } else {
        ApiError::new(ErrorCode::Unauthorized, "Missing or wrong API token.").into_response()
    }
}

/// Whether two secrets are equal, in a time that does not tell how much of them
/// matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "Not found.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "Method not allowed.")
}

async fn static_file(req: Request) -> Response {
    let path = req.uri().path();
    let wanted = match path {
        "/" | "/index.html" => "/index.html",
        p => p.strip_prefix("/ui").unwrap_or(p),
    };
    match UI_ASSETS.iter().find(|(p, _, _)| *p == wanted) {
        Some((_, body, mime)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, UI_CSP),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::new(ErrorCode::NotFound, "Not found.").into_response(),
    }
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::from(AgentError::NotFound))
}

async fn list_agents(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "agents": s.core.agents().list() }))
}

async fn get_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let agent = s.core.agents().get(id).ok_or(AgentError::NotFound)?;
    Ok(Json(json!({ "agent": agent })))
}

async fn runtime_status(State(s): State<AppState>) -> Json<crate::status::RuntimeStatus> {
    Json(s.core.runtime_status())
}

async fn create_agent(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    // Right after launch podman may not have been looked for yet.
    s.core.probed().await;
    if !s.core.runtime_status().is_available() {
        return Err(AgentError::RuntimeUnavailable(crate::engine::install_hint().into()).into());
    }
    let agent = s.core.agents().create(req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "agent": agent }))))
}

async fn edit_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EditRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = s.core.agents().edit(parse_id(&id)?, req).await?;
    Ok(Json(json!({ "agent": agent })))
}

async fn update_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::agents::UpdateOutcome>, ApiError> {
    Ok(Json(s.core.agents().update(parse_id(&id)?).await?))
}

async fn update_all(State(s): State<AppState>) -> Json<serde_json::Value> {
    let results: Vec<serde_json::Value> = s
        .core
        .agents()
        .update_all()
        .await
        .into_iter()
        .map(|(id, r)| match r {
            Ok(o) => json!({ "id": id, "updated": o.updated, "rolledBack": o.rolled_back }),
            Err(e) => json!({ "id": id, "error": e.to_string(), "code": e.code() }),
        })
        .collect();
    Json(json!({ "results": results }))
}

/// `POST /agents/{id}/rotate-token`: a new gateway token, the container made
/// again with it; the old one is refused from then on.
async fn rotate_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = s.core.agents().rotate_token(parse_id(&id)?).await?;
    Ok(Json(json!({ "agent": agent })))
}

async fn cancel_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = s.core.agents().cancel(parse_id(&id)?).await?;
    Ok(Json(json!({ "agent": agent })))
}

async fn dashboard(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let url = s.core.agents().dashboard_url(parse_id(&id)?)?;
    Ok(Json(json!({ "url": url })))
}

/// `POST /agents/{id}/dashboard`: a one-time address that opens the dashboard,
/// with no token in it (for openers whose command line every local user reads).
async fn dashboard_link(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let url = s.core.dashboard_link(parse_id(&id)?)?;
    Ok(Json(json!({
        "url": url,
        "expiresInSecs": crate::dashboard::TICKET_TTL.as_secs(),
    })))
}

/// `GET /dashboard/{ticket}`: once, within 30 s of its making, a redirect to the
/// agent's dashboard with the gateway token in the fragment (which the browser
/// keeps: never sent to a server, never in a log or a `Referer`).
async fn open_dashboard(
    State(s): State<AppState>,
    Path(ticket): Path<String>,
) -> Result<Response, ApiError> {
    let Some(redeemed) = s.core.redeem_dashboard_link(&ticket) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "This dashboard address was used already or has expired; open the dashboard again.",
        ));
    };
    let url = redeemed?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.as_str()),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response())
}

async fn start_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = s.core.agents().start(parse_id(&id)?).await?;
    Ok(Json(json!({ "agent": agent })))
}

async fn stop_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = s.core.agents().stop(parse_id(&id)?).await?;
    Ok(Json(json!({ "agent": agent })))
}

async fn delete_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.core.agents().delete(parse_id(&id)?).await?;
    Ok(Json(json!({ "success": true })))
}

async fn start_all(State(s): State<AppState>) -> Json<serde_json::Value> {
    let results = s.core.agents().start_all().await;
    Json(json!({ "results": summarize(results) }))
}

async fn stop_all(State(s): State<AppState>) -> Json<serde_json::Value> {
    let results = s.core.agents().stop_all().await;
    Json(json!({ "results": summarize(results) }))
}

fn summarize(
    results: Vec<(Uuid, Result<crate::agents::AgentView, AgentError>)>,
) -> Vec<serde_json::Value> {
    results
        .into_iter()
        .map(|(id, r)| match r {
            Ok(a) => json!({ "id": id, "status": a.status }),
            Err(e) => json!({ "id": id, "error": e.to_string(), "code": e.code() }),
        })
        .collect()
}

#[derive(Deserialize)]
struct ExportQuery {
    /// Only `kubernetes` so far.
    format: Option<String>,
    namespace: Option<String>,
    storage: Option<String>,
    /// `true`: the manifests also unpack a `workspace.tar.gz` the client adds.
    #[serde(rename = "withWorkspace")]
    with_workspace: Option<String>,
}

/// The agent as a Kustomize folder, `{name, mappedFrom?, namespace, files: {path:
/// content}}`. The files hold the gateway token and the provider key: never
/// cached.
async fn export_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    s.core.agents().get(id).ok_or(AgentError::NotFound)?;
    if q.format.as_deref() != Some("kubernetes") {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "Say which export: format=kubernetes is the only one.",
        ));
    }
    let with_workspace = match q.with_workspace.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "withWorkspace is true or false.",
            ))
        }
    };
    let defaults = crate::export::Options::default();
    let options = crate::export::Options {
        namespace: q.namespace.unwrap_or(defaults.namespace),
        storage: q.storage.unwrap_or(defaults.storage),
        with_workspace,
    };
    let export = s.core.agents().export_kubernetes(id, &options).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(export)).into_response())
}

/// The largest archive `POST /agents/restore` takes: what a backup may hold,
/// packed (text compresses; a workspace of photos does not).
const MAX_ARCHIVE_BODY: usize = 4 * 1024 * 1024 * 1024;

/// A file in `<data folder>/tmp` (0700) for an archive on its way in or out.
fn temp_archive(s: &AppState) -> Result<PathBuf, ApiError> {
    let dir = s.core.settings().home.join("tmp");
    store::create_private_dir(&dir).map_err(|e| {
        ApiError::new(
            ErrorCode::FolderFailed,
            format!("could not make {}: {e}", dir.display()),
        )
    })?;
    Ok(dir.join(format!("archive-{}.tar.gz", Uuid::new_v4().simple())))
}

/// Removes a temporary archive, saying so in the log if it cannot.
fn remove_temp(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "could not remove a temporary archive");
        }
    }
}

/// `POST /agents/{id}/backup`: the agent's archive as a download. It holds the
/// provider key: never cached.
async fn backup_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let agent = s.core.agents().get(id).ok_or(AgentError::NotFound)?;
    let temp = temp_archive(&s)?;
    let made = s.core.agents().backup(id, temp.clone()).await;
    let opened = match made {
        Ok(_) => tokio::fs::File::open(&temp).await.map_err(|e| {
            ApiError::new(
                ErrorCode::FolderFailed,
                format!("could not read the backup: {e}"),
            )
        }),
        Err(e) => Err(e.into()),
    };
    // Open, the file is read to its end through the descriptor; its name goes now
    // (no copy of the key is left in the data folder).
    remove_temp(&temp);
    let file = opened?;
    let disposition = format!(
        "attachment; filename=\"clawdock-{}-{}.tar.gz\"",
        agent.name,
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}

#[derive(Deserialize)]
struct RestoreQuery {
    name: Option<String>,
    replace: Option<bool>,
}

/// `POST /agents/restore[?name=NEW][&replace=true]`, the archive as the body:
/// an agent made from it, answered once recorded (its start goes on).
async fn restore_agent(
    State(s): State<AppState>,
    Query(q): Query<RestoreQuery>,
    body: Body,
) -> Result<(StatusCode, Json<crate::agents::RestoreOutcome>), ApiError> {
    s.core.probed().await;
    let temp = temp_archive(&s)?;
    let received = receive(body, &temp).await;
    let restored = match received {
        Ok(()) => {
            let options = crate::agents::RestoreOptions {
                name: q.name,
                replace: q.replace.unwrap_or(false),
            };
            s.core
                .agents()
                .restore_backup(temp.clone(), options)
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    remove_temp(&temp);
    Ok((StatusCode::CREATED, Json(restored?)))
}

/// Writes a request's body to `path` (new, 0600), at most [`MAX_ARCHIVE_BODY`].
async fn receive(body: Body, path: &std::path::Path) -> Result<(), ApiError> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: std::io::Error| {
        ApiError::new(
            ErrorCode::FolderFailed,
            format!("could not keep the archive: {e}"),
        )
    };
    let file = crate::agents::new_private_file(path).map_err(ApiError::from)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut got = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The archive could not be received: {e}"),
            )
        })?;
        got += chunk.len();
        if got > MAX_ARCHIVE_BODY {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "The archive is larger than a backup can be.",
            ));
        }
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.sync_all().await.map_err(failed)
}

async fn list_snapshots(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshots = s.core.agents().snapshots(parse_id(&id)?)?;
    Ok(Json(json!({ "snapshots": snapshots })))
}

/// `POST /agents/{id}/snapshots/{name}/restore`: the agent replaced by its
/// snapshot (a snapshot of it as it is now kept first).
async fn restore_snapshot(
    State(s): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<crate::agents::RestoreOutcome>, ApiError> {
    let id = parse_id(&id)?;
    let agent = s.core.agents().get(id).ok_or(AgentError::NotFound)?;
    let file = s.core.agents().snapshot_file(id, &name)?;
    let options = crate::agents::RestoreOptions {
        name: Some(agent.name),
        replace: true,
    };
    Ok(Json(s.core.agents().restore_backup(file, options).await?))
}

#[derive(Deserialize)]
struct LogsQuery {
    /// `container` follows the container's own output instead of the agent's log.
    source: Option<String>,
    tail: Option<usize>,
    /// `false` ends the stream after the replay (`clawdock agents logs` without -f).
    follow: Option<bool>,
}

type SseStream = futures::stream::BoxStream<'static, Result<SseEvent, Infallible>>;

type SseResponse = Sse<axum::response::sse::KeepAliveStream<SseStream>>;

/// An SSE answer that ends when the API closes.
fn sse(stream: SseStream, closing: &CancellationToken) -> SseResponse {
    let stream = stream.take_until(closing.clone().cancelled_owned()).boxed();
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn data_line(line: &str) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().data(serde_json::to_string(line).unwrap_or_default()))
}

async fn agent_logs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<SseResponse, ApiError> {
    let id = parse_id(&id)?;
    if q.source.as_deref() == Some("container") {
        let tail = q.tail.unwrap_or(200).min(5000);
        let follow = q.follow != Some(false);
        let stream = s
            .core
            .agents()
            .container_log_stream(id, tail, follow)
            .await?;
        let Some(stream) = stream else {
            return Ok(sse(futures::stream::empty().boxed(), &s.closing));
        };
        let lines = futures::stream::unfold(stream, |mut st| async move {
            st.next_line().await.map(|(_, line)| (data_line(&line), st))
        });
        return Ok(sse(lines.boxed(), &s.closing));
    }
    let (replay, live) = s.core.agents().follow_logs(id)?;
    let replay = futures::stream::iter(replay.into_iter().map(|l| data_line(&l)));
    if q.follow == Some(false) {
        return Ok(sse(replay.boxed(), &s.closing));
    }
    let live = tokio_stream::wrappers::BroadcastStream::new(live).filter_map(|r| async move {
        match r {
            Ok(line) => Some(data_line(&line)),
            Err(_lagged) => Some(data_line("[... lines skipped ...]")),
        }
    });
    Ok(sse(replay.chain(live).boxed(), &s.closing))
}

#[derive(Deserialize)]
struct ChatBody {
    message: String,
}

async fn chat(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    if body.message.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "The message is empty.",
        ));
    }
    let stream = s.core.agents().chat_stream(id, &body.message).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn setup_runtime(
    State(s): State<AppState>,
    ApiJson(spec): ApiJson<MachineSpec>,
) -> Result<(StatusCode, Json<crate::status::RuntimeStatus>), ApiError> {
    s.core.probed().await;
    s.core.setup_runtime(spec)?;
    Ok((StatusCode::ACCEPTED, Json(s.core.runtime_status())))
}

async fn start_runtime(
    State(s): State<AppState>,
) -> Result<Json<crate::status::RuntimeStatus>, ApiError> {
    Ok(Json(s.core.start_runtime().await?))
}

/// `POST /runtime/stop`, optionally `{"force": true}`.
#[derive(Deserialize, Default)]
struct StopRuntime {
    #[serde(default)]
    force: bool,
}

async fn stop_runtime(
    State(s): State<AppState>,
    body: bytes::Bytes,
) -> Result<Json<crate::status::RuntimeStatus>, ApiError> {
    let ask: StopRuntime = if body.iter().all(u8::is_ascii_whitespace) {
        StopRuntime::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(ErrorCode::BadRequest, format!("The body is not valid: {e}"))
        })?
    };
    Ok(Json(s.core.stop_runtime(ask.force).await?))
}

async fn check_runtime(State(s): State<AppState>) -> Json<crate::status::RuntimeStatus> {
    Json(s.core.check_podman().await)
}

/// The rules clients apply as the user types (name, providers, machine sizes,
/// memory per agent).
async fn meta() -> Json<crate::meta::Meta> {
    Json(crate::meta::meta())
}

/// Every change, as SSE. Starts with a snapshot so a client needs no other read.
async fn events(State(s): State<AppState>) -> SseResponse {
    let rx = s.core.subscribe();
    let snapshot = |core: &Clawdock| Event::Snapshot {
        status: core.runtime_status(),
        agents: core.agents().list(),
        meta: Box::new(crate::meta::meta()),
    };
    let first = snapshot(&s.core);
    let core = s.core.clone();
    let rest = tokio_stream::wrappers::BroadcastStream::new(rx).map(move |r| match r {
        Ok(event) => event,
        // A slow client missed events: send a fresh snapshot instead.
        Err(_) => snapshot(&core),
    });
    let all = futures::stream::once(async move { first })
        .chain(rest)
        .map(|event| {
            Ok(SseEvent::default().data(serde_json::to_string(&event).unwrap_or_default()))
        });
    sse(all.boxed(), &s.closing)
}

/// Samples of every running agent's memory and CPU, every two seconds while this
/// stream is open; the sampling stops when the last such stream closes.
async fn stats(State(s): State<AppState>) -> SseResponse {
    let watch = s.core.agents().watch_stats();
    let samples = futures::stream::unfold(watch, |mut watch| async move {
        let sample = watch.next().await?;
        Some((sample, watch))
    })
    .map(|sample| {
        Ok(SseEvent::default().data(serde_json::to_string(&*sample).unwrap_or_default()))
    });
    sse(samples.boxed(), &s.closing)
}

/// `PUT /settings`: the app settings a client may change.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsChange {
    launch_at_login: bool,
}

fn settings_answer(s: &AppState) -> Result<Json<serde_json::Value>, ApiError> {
    let launch_at_login = s
        .core
        .launch_at_login()
        .map_err(|e| ApiError::new(ErrorCode::LoginItemFailed, e.to_string()))?;
    Ok(Json(json!({
        "launchAtLogin": launch_at_login,
        // Read-only here (set by environment variables); credentials masked.
        "agentProxy": s.core.settings().agent_proxy.view(),
    })))
}

/// `launchAtLogin` is `null` where there is no login item (`clawdock serve`).
async fn get_settings(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    settings_answer(&s)
}

async fn put_settings(
    State(s): State<AppState>,
    ApiJson(change): ApiJson<SettingsChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.core
        .set_launch_at_login(change.launch_at_login)
        .map_err(|e| match e {
            None => ApiError::new(
                ErrorCode::NoLoginItem,
                "Launch at login belongs to the tray app; `clawdock serve` has none.",
            ),
            Some(e) => ApiError::new(ErrorCode::LoginItemFailed, e.to_string()),
        })?;
    settings_answer(&s)
}

/// Shows the tray app's window (a second launch of the app asks the first this
/// way); `serve` has none to show.
async fn show_window(State(s): State<AppState>) -> Result<StatusCode, ApiError> {
    s.core
        .show_window()
        .map_err(|e| ApiError::new(ErrorCode::NoWindow, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<crate::self_update::UpdateError> for ApiError {
    fn from(e: crate::self_update::UpdateError) -> Self {
        let err = Self::new(e.code(), e.to_string());
        tracing::warn!(error = %e, code = ?err.code, "self-update failed");
        err
    }
}

/// Where Clawdock's own update stands (the last check, its release notes).
async fn self_update_status(
    State(s): State<AppState>,
) -> Json<crate::self_update::SelfUpdateStatus> {
    Json(s.core.self_update_status())
}

/// Asks the feed now; answers with the outcome (`upToDate`, `available` with the
/// release notes) or why it failed.
async fn self_update_check(
    State(s): State<AppState>,
) -> Result<Json<crate::self_update::Outcome>, ApiError> {
    let core = s.core.clone();
    let outcome =
        tokio::spawn(async move { core.self_update(crate::self_update::Mode::Check).await })
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))??;
    Ok(Json(outcome))
}

/// Downloads, verifies and installs the newer release, then restarts into it with
/// the agents left running; answers `installed` before the restart. Detached: a
/// client that hangs up does not cut an install half-way.
async fn self_update_install(
    State(s): State<AppState>,
) -> Result<Json<crate::self_update::Outcome>, ApiError> {
    let core = s.core.clone();
    let outcome =
        tokio::spawn(async move { core.self_update(crate::self_update::Mode::Install).await })
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))??;
    Ok(Json(outcome))
}

/// Runs the shutdown routine (or joins the one under way) and answers with its
/// report. The routine belongs to no request: a client that hangs up changes
/// nothing. The process's owner sees it begin and exits when it ends.
async fn shutdown(State(s): State<AppState>) -> Json<serde_json::Value> {
    let report = s.core.shutdown().await;
    Json(json!({ "status": "ok", "report": report }))
}

/// A stream of lines as it arrives, for clients (the CLI's `logs -f`).
pub fn sse_data_lines(
    body: impl Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
) -> impl Stream<Item = String> + Send {
    let mut buffer = String::new();
    body.flat_map(move |chunk| {
        let mut out = Vec::new();
        if let Ok(chunk) = chunk {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = buffer.find('\n') {
                let line: String = buffer.drain(..=pos).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    out.push(data.trim_start().to_string());
                }
            }
        }
        futures::stream::iter(out)
    })
}
