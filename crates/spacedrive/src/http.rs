//! The daemon's HTTP server: the same typed API as the Unix socket under `/api/v1`, an event
//! stream (server-sent events), an OpenAPI document generated from the API's types, and the web
//! UI (static files embedded in the binary).
//!
//! Framing only, like the socket: a request body is read with [`sd_api::parse_request`]'s limits,
//! answered by the daemon's one handler, written as `{"ok": …}` or `{"error": …}`. Access control
//! is in [`auth`]: every request needs the token, a Host naming this server, and — when it
//! changes something — an Origin that is this server.
//!
//! Routes:
//! - `POST /api/v1/rpc`: a whole request, `{"method", "params"}`, exactly as on the socket;
//! - `POST /api/v1/{method}`: that method, the body being its `params` (empty when it has none);
//! - `GET /api/v1/events?library=&job=`: `events.subscribe` as server-sent events, one stream
//!   line (`{"event"}`, `{"heartbeat"}`, `{"error"}`) per `data:`;
//! - `GET /api/v1/openapi.json`: the OpenAPI 3.1 document;
//! - `GET /api/v1/session`: where this server listens, for the UI's banner;
//! - `GET /login?token=` (what `spacedrive ui` opens) and `POST /login`: set the session cookie;
//! - `GET /` and `/ui/*`: the web UI.

mod assets;
pub mod auth;
mod openapi;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use sd_api::{ApiError, ErrorCode, Request, Response};
use serde::{Deserialize, Serialize};

/// The port the UI listens on unless told otherwise (`--http-port`, `http.json`).
pub const DEFAULT_PORT: u16 = 8742;

/// What the daemon serves its requests with: the handler, and stopping (for `daemon.stop`).
pub trait Service: Send + Sync + 'static {
    /// Answers one request (never `events.subscribe`, which is served here as a stream).
    fn answer(&self, req: Request) -> Result<Response, ApiError>;
    /// Stops the daemon (called once `daemon.stop` was answered).
    fn stop(&self);
    /// The node, for event subscriptions.
    fn node(&self) -> &sd_core::Node;
}

/// Where and whether to listen: `<data>/http.json`, overridden by the daemon's flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Serve HTTP at all.
    pub enabled: bool,
    /// The address to listen on; loopback unless `listen_beyond_loopback`.
    pub addr: IpAddr,
    pub port: u16,
    /// The explicit consent to listen on an address other machines can reach.
    pub listen_beyond_loopback: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            listen_beyond_loopback: false,
        }
    }
}

impl Settings {
    /// `<data>/http.json` if there is one (an unreadable one is an error: it may hold a choice
    /// about exposure that must not be silently dropped), else the defaults.
    pub fn load(data_dir: &Path) -> Result<Settings> {
        let p = data_dir.join("http.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
}

/// `<data>/ui.json`: what the running daemon's HTTP server is, for `spacedrive ui`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UiState {
    /// The daemon that wrote it.
    pub pid: u32,
    /// `http://ADDR:PORT/`; absent when the server is off.
    pub url: Option<String>,
    pub listen: Option<SocketAddr>,
    /// The port asked for, when another had to be taken.
    pub requested_port: Option<u16>,
    pub beyond_loopback: bool,
    /// Why there is no server.
    pub error: Option<String>,
}

/// Where the daemon of `data_dir` says its HTTP server is.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ui.json")
}

fn write_state(data_dir: &Path, state: &UiState) -> Result<()> {
    let path = state_path(data_dir);
    let tmp = data_dir.join("ui.json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(state)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Starts the server on `rt` when the settings ask for one, and records in `ui.json` where it
/// listens — or why it does not. Never fails the daemon: the socket API works without it.
pub fn start(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    settings: Settings,
    service: Arc<dyn Service>,
) {
    let mut state = UiState {
        pid: std::process::id(),
        url: None,
        listen: None,
        requested_port: None,
        beyond_loopback: false,
        error: None,
    };
    if settings.enabled {
        match bind(rt, data_dir, &settings, service) {
            Ok(addr) => {
                let shown = match addr.ip() {
                    ip if ip.is_unspecified() => {
                        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
                    }
                    _ => addr,
                };
                state.url = Some(format!("http://{shown}/"));
                state.listen = Some(addr);
                state.beyond_loopback = !addr.ip().is_loopback();
                if addr.port() != settings.port && settings.port != 0 {
                    state.requested_port = Some(settings.port);
                }
                tracing::info!(%addr, "web UI and HTTP API listening");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the HTTP server is off");
                state.error = Some(format!("{e:#}"));
            }
        }
    } else {
        state.error =
            Some("HTTP is turned off (--no-http, or \"enabled\": false in http.json)".into());
    }
    if let Err(e) = write_state(data_dir, &state) {
        tracing::warn!(error = %e, "cannot write ui.json");
    }
}

fn bind(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    settings: &Settings,
    service: Arc<dyn Service>,
) -> Result<SocketAddr> {
    if !settings.addr.is_loopback() && !settings.listen_beyond_loopback {
        bail!(
            "refusing to listen on {}: it is reachable from other machines; pass --http-listen-beyond-loopback (or set \"listen_beyond_loopback\": true in http.json) to allow it",
            settings.addr
        );
    }
    let token = auth::Token::load_or_create(data_dir)?;
    let want = SocketAddr::new(settings.addr, settings.port);
    let listener = rt.block_on(async {
        match tokio::net::TcpListener::bind(want).await {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && want.port() != 0 => {
                tracing::warn!(port = want.port(), "port taken; listening on another one");
                tokio::net::TcpListener::bind(SocketAddr::new(want.ip(), 0)).await
            }
            Err(e) => Err(e),
        }
    });
    let listener = listener.with_context(|| format!("listening on {want}"))?;
    let addr = listener.local_addr()?;
    let guard = Arc::new(auth::Guard::new(
        token,
        addr,
        settings.listen_beyond_loopback,
    ));
    let app = router(AppState {
        service,
        guard: guard.clone(),
        beyond_loopback: !addr.ip().is_loopback(),
        listen: addr,
    });
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok(addr)
}

#[derive(Clone)]
struct AppState {
    service: Arc<dyn Service>,
    guard: Arc<auth::Guard>,
    beyond_loopback: bool,
    listen: SocketAddr,
}

impl axum::extract::FromRef<AppState> for Arc<auth::Guard> {
    fn from_ref(state: &AppState) -> Arc<auth::Guard> {
        state.guard.clone()
    }
}

fn router(state: AppState) -> Router {
    let guard = state.guard.clone();
    Router::new()
        .route("/api/v1/rpc", post(rpc))
        .route("/api/v1/events", get(events))
        .route("/api/v1/openapi.json", get(openapi_doc))
        .route("/api/v1/session", get(session))
        .route("/api/v1/thumbnail", get(thumbnail))
        .route("/api/v1/{method}", post(method_call))
        .route("/login", get(auth::login_get).post(auth::login_post))
        .route("/", get(assets::index))
        .route("/ui/{*file}", get(assets::file))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
}

/// An answer as on the socket, with the HTTP status its error code stands for.
fn answer(result: Result<Response, ApiError>) -> HttpResponse {
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Answer {
        Ok(Box<Response>),
        Error(ApiError),
    }
    let (status, body) = match result {
        Ok(r) => (StatusCode::OK, Answer::Ok(Box::new(r))),
        Err(e) => (status_of(e.code), Answer::Error(e)),
    };
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The HTTP status of an API error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Conflict | ErrorCode::Ambiguous => StatusCode::CONFLICT,
        ErrorCode::LibraryLocked | ErrorCode::Locked => StatusCode::LOCKED,
        ErrorCode::WrongPassphrase => StatusCode::FORBIDDEN,
        ErrorCode::NewerVersion | ErrorCode::Corrupt => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Forbidden | ErrorCode::NotPaired => StatusCode::FORBIDDEN,
        ErrorCode::Unreachable => StatusCode::BAD_GATEWAY,
        ErrorCode::Io | ErrorCode::Database | ErrorCode::Json | ErrorCode::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// Serves one parsed request on a blocking thread (the handler reads SQLite and the disk).
async fn serve(state: AppState, parsed: Result<Request, ApiError>) -> HttpResponse {
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return answer(Err(e)),
    };
    if matches!(req, Request::Subscribe { .. }) {
        return answer(Err(ApiError::bad_request(
            "events.subscribe is a stream: GET /api/v1/events?library=&job= (server-sent events)",
        )));
    }
    let stop = matches!(req, Request::Stop);
    let service = state.service.clone();
    let result = tokio::task::spawn_blocking(move || service.answer(req))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("the handler failed: {e}"))));
    if stop && result.is_ok() {
        // After this answer has gone out: the process exits when the libraries are closed.
        let service = state.service.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            std::thread::spawn(move || service.stop());
        });
    }
    answer(result)
}

async fn rpc(State(state): State<AppState>, body: Bytes) -> HttpResponse {
    serve(state, sd_api::parse_request(&body)).await
}

async fn method_call(
    State(state): State<AppState>,
    UrlPath(method): UrlPath<String>,
    body: Bytes,
) -> HttpResponse {
    serve(state, request_of(&method, &body)).await
}

/// `{"method": method, "params": body}`, read with the same limits as a whole request.
fn request_of(method: &str, body: &[u8]) -> Result<Request, ApiError> {
    if body.len() > sd_api::MAX_REQUEST_BYTES {
        return sd_api::parse_request(body);
    }
    let params: Option<serde_json::Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let text = std::str::from_utf8(body).map_err(|e| {
            ApiError::bad_request(format!(
                "request is not valid UTF-8 (byte {})",
                e.valid_up_to()
            ))
        })?;
        Some(
            serde_json::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("malformed params: {e}")))?,
        )
    };
    let parse = |whole: serde_json::Value| {
        let bytes = serde_json::to_vec(&whole).map_err(|e| ApiError::internal(e.to_string()))?;
        sd_api::parse_request(&bytes)
    };
    match params {
        Some(p) => parse(serde_json::json!({"method": method, "params": p})),
        // No body: a method without parameters, or one whose parameters may all be left out
        // (`tag.list` on the default library).
        None => parse(serde_json::json!({"method": method})).or_else(|first| {
            parse(serde_json::json!({"method": method, "params": {}})).map_err(|_| first)
        }),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    library: Option<String>,
    job: Option<i64>,
}

/// `events.subscribe` as server-sent events. The subscription blocks, so it runs on its own
/// thread and hands lines over a small channel; when the client goes away the channel closes
/// and the thread ends at its next line (a heartbeat at the latest).
async fn events(State(state): State<AppState>, Query(q): Query<EventsQuery>) -> HttpResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let service = state.service.clone();
    let spawned = std::thread::Builder::new()
        .name("sd-http-events".into())
        .spawn(move || {
            let node = service.node();
            for line in sd_api::subscribe(node, q.library.as_deref(), q.job) {
                let data = match serde_json::to_string(&line) {
                    Ok(d) => d,
                    Err(_) => break,
                };
                if tx
                    .blocking_send(Ok(SseEvent::default().data(data)))
                    .is_err()
                {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        return answer(Err(ApiError::internal(format!("starting the stream: {e}"))));
    }
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn openapi_doc() -> HttpResponse {
    let mut r = json_response(StatusCode::OK, openapi::document());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oai.openapi+json"),
    );
    r
}

/// What the UI shows about this server.
#[derive(Serialize)]
struct Session {
    listen: SocketAddr,
    /// Reachable from other machines (then every request needs the token — it always does).
    beyond_loopback: bool,
    version: &'static str,
    /// Whether `GET /api/v1/thumbnail` serves thumbnails (the UI shows kind icons where there
    /// is none).
    thumbnails: bool,
}

async fn session(State(state): State<AppState>) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &Session {
            listen: state.listen,
            beyond_loopback: state.beyond_loopback,
            version: env!("CARGO_PKG_VERSION"),
            thumbnails: true,
        },
    )
}

#[derive(Deserialize)]
struct ThumbQuery {
    library: Option<String>,
    path: String,
    size: Option<u32>,
}

/// `GET /api/v1/thumbnail?library=&path=&size=`: an indexed file's thumbnail (WebP), made now
/// when missing — `sidecar.thumbnail`'s file, served. An error answers as the API's do (404 for
/// a file that has none, e.g. not a picture).
async fn thumbnail(State(state): State<AppState>, Query(q): Query<ThumbQuery>) -> HttpResponse {
    let service = state.service.clone();
    let q_library = q.library.clone();
    let req = Request::Thumbnail {
        library: q.library,
        path: sd_core::names::JsonPath(PathBuf::from(q.path)),
        size: q.size.unwrap_or(256).clamp(16, 1024),
    };
    let r = tokio::task::spawn_blocking(move || service.answer(req))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("the handler failed: {e}"))));
    let thumb = match r {
        Ok(Response::Thumbnail(t)) => t,
        Ok(_) => return answer(Err(ApiError::internal("not a thumbnail"))),
        Err(e) => return answer(Err(e)),
    };
    let node_thumb = (state.service.clone(), q_library, thumb);
    let read = tokio::task::spawn_blocking(move || {
        let (service, library, thumb) = node_thumb;
        let lib = service.node().library(library.as_deref())?;
        sd_core::sidecar::read_thumbnail(&lib, &thumb)
    })
    .await;
    match read {
        Ok(Ok(bytes)) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/webp"));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            );
            r
        }
        Ok(Err(e)) => answer(Err(e.into())),
        Err(e) => answer(Err(ApiError::internal(format!("the handler failed: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_route_reads_its_body_as_params() {
        assert!(matches!(
            request_of("daemon.status", b""),
            Ok(Request::Status)
        ));
        assert!(matches!(
            request_of("library.create", br#"{"name": "x"}"#),
            Ok(Request::LibraryCreate { name, passphrase: None, .. }) if name == "x"
        ));
        let e = request_of("no.such", b"").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = request_of("library.create", b"{").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = request_of("library.create", b"\xff").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }

    /// Property: a method route's body, whatever its bytes, is parsed exactly as the socket
    /// parses the same request — the same request, or `bad_request` — and never panics.
    #[test]
    fn method_bodies_parse_as_on_the_socket_whatever_their_bytes() {
        let samples = [
            r#"{"method":"library.create","params":{"name":"x","passphrase":"p","remember":true}}"#,
            r#"{"method":"location.list","params":{"library":null}}"#,
            r#"{"method":"library.rename","params":{"library":"L","new_name":"M"}}"#,
            r#"{"method":"library.unlock","params":{"library":"L","passphrase":"p"}}"#,
            r#"{"method":"tag.list","params":{"library":"Photos"}}"#,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut parsed = 0;
        for i in 0..20_000 {
            let whole: serde_json::Value =
                serde_json::from_str(samples[i % samples.len()]).unwrap();
            let method = whole["method"].as_str().unwrap().to_owned();
            let mut body = serde_json::to_vec(&whole["params"]).unwrap();
            for _ in 0..(next() % 6) {
                let r = next();
                match r % 3 {
                    0 if !body.is_empty() => {
                        let at = (r >> 8) as usize % body.len();
                        body[at] = (r >> 16) as u8;
                    }
                    1 => {
                        let at = (r >> 8) as usize % (body.len() + 1);
                        body.insert(at, (r >> 16) as u8);
                    }
                    _ => body.truncate((r >> 8) as usize % (body.len() + 1)),
                }
            }
            let over_http = request_of(&method, &body);
            // What the socket makes of the same method with these params.
            let on_socket = std::str::from_utf8(&body)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                .map(|p| {
                    let line = serde_json::json!({"method": method, "params": p}).to_string();
                    sd_api::parse_request(line.as_bytes())
                });
            match (&over_http, on_socket) {
                (Ok(a), Some(Ok(b))) => {
                    parsed += 1;
                    assert_eq!(
                        serde_json::to_value(a).unwrap(),
                        serde_json::to_value(&b).unwrap()
                    );
                }
                (Err(e), _) => assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}"),
                // An empty or all-space body leaves every parameter out.
                (Ok(_), _) => assert!(body.iter().all(u8::is_ascii_whitespace), "{body:?}"),
            }
        }
        assert!(
            parsed > 1000,
            "too few bodies survived the mutations: {parsed}"
        );
    }

    #[test]
    fn every_error_code_has_a_status() {
        assert_eq!(status_of(ErrorCode::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status_of(ErrorCode::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status_of(ErrorCode::Conflict), StatusCode::CONFLICT);
    }
}
