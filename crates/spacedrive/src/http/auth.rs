//! Who may talk to the HTTP server, checked on every request before any route runs:
//!
//! 1. **Host**: the `Host` header names this server — `localhost`, a loopback address, the
//!    address it listens on, or (listening on every address, beyond loopback by the user's
//!    explicit choice) any IP address. A web page that got its own domain name to resolve to
//!    127.0.0.1 (DNS rebinding) sends that name and is refused.
//! 2. **Token**: the random token of `<data>/http.token` (0600), as the session cookie (set by
//!    `/login`: `HttpOnly; SameSite=Strict`), `Authorization: Bearer TOKEN` or
//!    `X-Spacedrive-Token: TOKEN`. Without it: 401, and only `/login` answers.
//! 3. **Origin** (every method but GET and HEAD): the `Origin` header, when sent, is this server
//!    itself; a request carrying the cookie but neither Origin nor `Sec-Fetch-Site:
//!    same-origin` is refused. A cross-site page cannot change anything, even if it got the
//!    cookie sent. No CORS header is ever sent, so no other origin reads an answer.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use sd_api::{ApiError, ErrorCode};
use serde::Deserialize;

/// The token file of a data folder.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("http.token")
}

/// The API token: 32 random bytes as 64 hex digits.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Reads `<data>/http.token`, creating it (mode 0600, from the kernel's random source)
    /// the first time. A file readable by others is made 0600 again.
    pub fn load_or_create(data_dir: &Path) -> Result<Token> {
        let path = token_path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let t = text.trim();
                if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!(
                        "{} does not hold a token (64 hex digits); remove it and a new one is made",
                        path.display()
                    );
                }
                let mode = std::fs::metadata(&path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                }
                Ok(Token(t.to_ascii_lowercase()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut bytes))
                    .context("reading /dev/urandom")?;
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.write_all(hex.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()?;
                Ok(Token(hex))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where `other` first differs.
    fn matches(&self, other: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), other.trim().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The checks of one server: its token and the addresses it answers as.
pub struct Guard {
    token: Token,
    listen: SocketAddr,
    beyond_loopback: bool,
    cookie: String,
}

impl Guard {
    pub fn new(token: Token, listen: SocketAddr, beyond_loopback: bool) -> Guard {
        Guard {
            token,
            listen,
            beyond_loopback,
            // Cookies are not kept apart by port: each daemon's has its own name.
            cookie: format!("sd_token_{}", listen.port()),
        }
    }

    /// Whether `host` (a Host header: name or address, optional port) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((addr, _)) => addr,
                None => return false,
            },
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                ip.is_loopback()
                    || ip == self.listen.ip()
                    || (self.beyond_loopback && self.listen.ip().is_unspecified())
            }
            Err(_) => false,
        }
    }

    /// How the request proves it holds the token, if it does.
    fn authenticated(&self, headers: &HeaderMap) -> Option<Proof> {
        let header_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| {
                headers
                    .get("x-spacedrive-token")
                    .and_then(|v| v.to_str().ok())
            });
        if header_token.is_some_and(|t| self.token.matches(t)) {
            return Some(Proof::Header);
        }
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == self.cookie && self.token.matches(v));
        from_cookie.then_some(Proof::Cookie)
    }

    /// Whether a state-changing request comes from this server's own pages (or from a client
    /// that is no browser and showed the token itself).
    fn same_origin(&self, headers: &HeaderMap, host: &str, proof: Option<Proof>) -> bool {
        match headers.get(header::ORIGIN).map(|v| v.to_str()) {
            Some(Ok(origin)) => origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host)),
            Some(Err(_)) => false,
            None => {
                let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
                match fetch_site {
                    Some(s) => s == "same-origin" || s == "none",
                    // Neither header: not a browser's request, unless it relies on the cookie.
                    None => proof == Some(Proof::Header),
                }
            }
        }
    }

    fn set_cookie(&self) -> HeaderValue {
        let v = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie,
            self.token.as_str()
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proof {
    Header,
    Cookie,
}

fn refuse(status: StatusCode, message: &str) -> Response {
    super::json_response(
        status,
        &serde_json::json!({"error": ApiError::new(ErrorCode::Forbidden, message)}),
    )
}

/// The middleware in front of every route: Host, token, Origin, then security headers on the
/// answer.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !guard.host_allowed(&host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the Host header does not name this server: open it as http://127.0.0.1:PORT or http://localhost:PORT",
        );
    }
    let proof = guard.authenticated(headers);
    // What a browser without the token may load: the login form and its style sheet.
    let login = matches!(req.uri().path(), "/login" | "/ui/login.css");
    if proof.is_none() && !login {
        if req.uri().path().starts_with("/api/") {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this API needs the token of <data dir>/http.token: `Authorization: Bearer TOKEN`, or log in with the URL `spacedrive ui` prints",
            );
        }
        return login_page(StatusCode::UNAUTHORIZED, None);
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe && !guard.same_origin(headers, &host, proof) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-origin request refused: changes are only accepted from this server's own pages",
        );
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    resp
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: Option<String>,
}

/// `GET /login?token=…`: the URL `spacedrive ui` prints. With the right token, sets the cookie
/// and sends the browser on to `/` (so the token leaves the address bar).
pub async fn login_get(State(guard): State<Arc<Guard>>, Query(f): Query<LoginForm>) -> Response {
    login(&guard, f.token)
}

/// `POST /login` from the login page's form.
pub async fn login_post(State(guard): State<Arc<Guard>>, Form(f): Form<LoginForm>) -> Response {
    login(&guard, f.token)
}

fn login(guard: &Guard, token: Option<String>) -> Response {
    match token {
        Some(t) if guard.token.matches(&t) => {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, guard.set_cookie());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Some(_) => login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not this daemon's token."),
        ),
        None => login_page(StatusCode::UNAUTHORIZED, None),
    }
}

fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"problem\">{p}</p>"))
        .unwrap_or_default();
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Spacedrive — log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/ui/login.css"></head>
<body><main><h1>Spacedrive</h1>
<p>This page needs the daemon's token. Run <code>spacedrive ui</code> in a terminal: it opens this
page logged in. Or paste the token from <code>http.token</code> in the data folder:</p>
{problem}<form method="post" action="/login"><input name="token" autocomplete="off" placeholder="token" autofocus>
<button>Log in</button></form></main></body></html>"#
    );
    let mut r = (status, Html(page)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, beyond: bool) -> Guard {
        Guard::new(Token("ab".repeat(32)), listen.parse().unwrap(), beyond)
    }

    #[test]
    fn hosts_name_this_server_only() {
        let g = guard("127.0.0.1:8742", false);
        for ok in [
            "127.0.0.1:8742",
            "localhost:8742",
            "LOCALHOST",
            "[::1]:8742",
            "127.0.0.2",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8742",
            "192.168.1.5:8742",
            "",
            "[::1",
            "localhost.evil.com",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let g = guard("0.0.0.0:8742", true);
        assert!(g.host_allowed("192.168.1.5:8742"));
        assert!(!g.host_allowed("nas.example:8742"));
        let g = guard("10.0.0.2:8742", true);
        assert!(g.host_allowed("10.0.0.2:8742"));
        assert!(!g.host_allowed("10.0.0.3:8742"));
    }

    #[test]
    fn tokens_come_from_a_header_or_the_cookie() {
        let g = guard("127.0.0.1:8742", false);
        let t = "ab".repeat(32);
        let mut h = HeaderMap::new();
        assert!(g.authenticated(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        assert!(g.authenticated(&h) == Some(Proof::Header));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; sd_token_8742={t}").parse().unwrap(),
        );
        assert!(g.authenticated(&h) == Some(Proof::Cookie));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("sd_token_9999={t}").parse().unwrap(),
        );
        assert!(g.authenticated(&h).is_none(), "another daemon's cookie");
        let mut h = HeaderMap::new();
        h.insert("x-spacedrive-token", "cd".repeat(32).parse().unwrap());
        assert!(g.authenticated(&h).is_none());
    }

    #[test]
    fn changes_need_this_origin() {
        let g = guard("127.0.0.1:8742", false);
        let host = "127.0.0.1:8742";
        let with = |k: &'static str, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(k, v.parse().unwrap());
            h
        };
        assert!(g.same_origin(
            &with("origin", "http://127.0.0.1:8742"),
            host,
            Some(Proof::Cookie)
        ));
        assert!(!g.same_origin(
            &with("origin", "http://evil.example"),
            host,
            Some(Proof::Cookie)
        ));
        assert!(!g.same_origin(&with("origin", "null"), host, Some(Proof::Header)));
        assert!(!g.same_origin(
            &with("sec-fetch-site", "cross-site"),
            host,
            Some(Proof::Cookie)
        ));
        assert!(g.same_origin(&HeaderMap::new(), host, Some(Proof::Header)));
        assert!(!g.same_origin(&HeaderMap::new(), host, Some(Proof::Cookie)));
    }

    #[test]
    fn the_token_file_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Token::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Token::load_or_create(dir.path()).unwrap();
        assert_eq!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 64);
        assert!(a.matches(&format!("{}\n", b.as_str())));
        std::fs::write(token_path(dir.path()), "short").unwrap();
        assert!(Token::load_or_create(dir.path()).is_err());
    }
}
