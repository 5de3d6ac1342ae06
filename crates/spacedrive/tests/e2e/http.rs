//! The HTTP API of a real daemon: each access rule (token, Host, Origin, cookie login, no CORS),
//! every method group answering over HTTP exactly as over the Unix socket, the event stream,
//! the OpenAPI document and the UI's files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Sd, write};

/// One answer: status, headers (names lowercase), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// The daemon's HTTP server, as `spacedrive ui` reports it.
pub struct Http {
    pub addr: SocketAddr,
    pub token: String,
    /// The URL that logs a browser in.
    pub login_url: String,
}

impl Http {
    /// Starts the daemon of `sd` if needed and reads where its UI listens.
    pub fn of(sd: &Sd) -> Http {
        let ui = sd.json(["ui", "--no-open"]);
        assert_eq!(ui["opened"], false);
        let login_url = ui["url"].as_str().expect("url").to_owned();
        let token = login_url
            .split_once("token=")
            .expect("token in the URL")
            .1
            .to_owned();
        let addr: SocketAddr = ui["listen"].as_str().unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback(), "listens beyond loopback: {addr}");
        Http {
            addr,
            token,
            login_url,
        }
    }

    /// `host` for the Host header as a browser would send it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// One request on a fresh connection; `headers` are sent as given (add Host yourself to
    /// replace the default one).
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut s = TcpStream::connect(self.addr).expect("connecting to the HTTP server");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.host()));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("reading the answer");
        parse_answer(&raw)
    }

    /// `POST /api/v1/{method}` with the token in a header.
    pub fn api(&self, method: &str, params: Option<Value>) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let body = params.map(|p| p.to_string()).unwrap_or_default();
        self.send(
            "POST",
            &format!("/api/v1/{method}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        body = out;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// One request on the Unix socket; the whole answer line.
fn socket(sd: &Sd, req: &Value) -> Value {
    let mut s = UnixStream::connect(sd.data.join("daemon.sock")).expect("socket");
    s.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// A library with one indexed location of a few files (two of them identical).
fn setup() -> (Sd, std::path::PathBuf) {
    let sd = Sd::new();
    let root = sd.tmp.path().join("files");
    write(&root.join("docs/report.txt"), b"quarterly report");
    write(&root.join("docs/copy-of-report.txt"), b"quarterly report");
    write(&root.join("notes.md"), b"# notes");
    write(
        &root.join("photos/cat.jpg"),
        &[0xff, 0xd8, 0xff, 0xe0, 1, 2, 3],
    );
    sd.ok([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
    ]);
    (sd, root)
}

#[test]
fn every_request_needs_the_token_a_good_host_and_this_origin() {
    let (sd, _root) = setup();
    let h = Http::of(&sd);
    let token_file = sd.data.join("http.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        h.token
    );

    // No token: 401, for the API, the document and the UI alike.
    for (method, path) in [
        ("POST", "/api/v1/library.list"),
        ("POST", "/api/v1/rpc"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/events"),
        ("GET", "/"),
        ("GET", "/ui/app.js"),
    ] {
        let a = h.send(method, path, &[], b"");
        assert_eq!(a.status, 401, "{method} {path} without a token");
    }
    let wrong = format!("Bearer {}", "0".repeat(64));
    let a = h.send(
        "POST",
        "/api/v1/library.list",
        &[("Authorization", &wrong)],
        b"",
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["code"], "forbidden");
    // The login page answers without it (and its style sheet), asking for it.
    let a = h.send("GET", "/login", &[], b"");
    assert_eq!(a.status, 401);
    assert!(String::from_utf8_lossy(&a.body).contains("spacedrive ui"));
    assert_eq!(h.send("GET", "/ui/login.css", &[], b"").status, 200);

    // The token in a header: both spellings.
    assert_eq!(h.api("library.list", None).status, 200);
    let a = h.send(
        "POST",
        "/api/v1/library.list",
        &[("X-Spacedrive-Token", &h.token)],
        b"",
    );
    assert_eq!(a.status, 200);

    // DNS rebinding: a name that is not this server is refused, token or not.
    let auth = format!("Bearer {}", h.token);
    let port = h.addr.port();
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        String::new(),
    ] {
        let a = h.send(
            "POST",
            "/api/v1/library.list",
            &[("Host", &host), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(a.status, 403, "Host {host:?}");
    }
    let a = h.send(
        "POST",
        "/api/v1/library.list",
        &[
            ("Host", &format!("localhost:{port}")),
            ("Authorization", &auth),
        ],
        b"",
    );
    assert_eq!(a.status, 200, "localhost is this server");

    // CSRF: a change from another origin is refused even with the token.
    let create = br#"{"name": "From elsewhere"}"#;
    let a = h.send(
        "POST",
        "/api/v1/library.create",
        &[("Authorization", &auth), ("Origin", "http://evil.example")],
        create,
    );
    assert_eq!(a.status, 403);
    let a = h.send(
        "POST",
        "/api/v1/library.create",
        &[("Authorization", &auth), ("Origin", "null")],
        create,
    );
    assert_eq!(a.status, 403);
    let libs = sd.json(["library", "list"]);
    assert_eq!(
        libs.as_array().unwrap().len(),
        1,
        "nothing was created: {libs}"
    );

    // Cookie login: the URL `spacedrive ui` prints sets an HttpOnly, SameSite=Strict cookie.
    let login_path = &h.login_url[h.login_url.find("/login").unwrap()..];
    let a = h.send("GET", login_path, &[], b"");
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/"));
    let cookie = a.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let a = h.send("GET", "/", &[("Cookie", &pair)], b"");
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("/ui/app.js"));
    assert_eq!(h.send("GET", "/login?token=nope", &[], b"").status, 401);
    // With the cookie, a change needs this origin (or the browser's same-origin mark).
    let origin = format!("http://{}", h.host());
    let a = h.send("POST", "/api/v1/tag.list", &[("Cookie", &pair)], b"");
    assert_eq!(a.status, 403, "cookie without Origin");
    let a = h.send(
        "POST",
        "/api/v1/tag.list",
        &[("Cookie", &pair), ("Sec-Fetch-Site", "cross-site")],
        b"",
    );
    assert_eq!(a.status, 403);
    let a = h.send(
        "POST",
        "/api/v1/tag.list",
        &[("Cookie", &pair), ("Origin", &origin)],
        b"",
    );
    assert_eq!(a.status, 200);
    let a = h.send(
        "POST",
        "/api/v1/tag.list",
        &[("Cookie", &pair), ("Sec-Fetch-Site", "same-origin")],
        b"",
    );
    assert_eq!(a.status, 200);

    // No CORS: a preflight is not granted, and no answer names another origin.
    let a = h.send(
        "OPTIONS",
        "/api/v1/library.list",
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_ne!(a.status / 100, 2, "a preflight is not granted");
    let a = h.send(
        "POST",
        "/api/v1/library.list",
        &[("Authorization", &auth), ("Origin", &origin)],
        b"",
    );
    assert_eq!(a.status, 200);
    assert!(
        a.headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-")),
        "{:?}",
        a.headers
    );
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
}

/// Drops what differs between two calls made a moment apart (timings, uptime, free space).
fn steady(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for k in [
                    "took_us",
                    "index_built_ms",
                    "index_updated_us",
                    "duration_ms",
                    "uptime_ms",
                    "free",
                    "available",
                    "last_seen",
                ] {
                    o.remove(k);
                }
                o.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

#[test]
fn every_method_group_answers_over_http_as_on_the_socket() {
    let (sd, root) = setup();
    let h = Http::of(&sd);
    let report = root.join("docs/report.txt");
    let r = report.to_str().unwrap();
    let docs = root.join("docs");
    let calls: Vec<Value> = vec![
        json!({"method": "daemon.status"}),
        json!({"method": "library.list"}),
        json!({"method": "library.info", "params": {"library": null}}),
        json!({"method": "location.list", "params": {"library": null}}),
        json!({"method": "location.info", "params": {"library": null, "id": 1}}),
        json!({"method": "entries.list", "params": {"library": null, "path": root, "recursive": false, "sort": "kind", "limit": 2, "offset": 1}}),
        json!({"method": "entries.list", "params": {"library": null, "path": root, "recursive": true, "sort": "size", "limit": null}}),
        json!({"method": "index.quick_scan", "params": {"path": docs, "scope": "current", "rules": {"system_defaults": true, "gitignore": true, "ignore": []}}}),
        json!({"method": "dupes.find", "params": {"library": null, "path": null, "min_size": 1}}),
        json!({"method": "file.info", "params": {"library": null, "path": r}}),
        json!({"method": "file.verify", "params": {"library": null, "path": r}}),
        json!({"method": "search", "params": {"library": null, "query": {"text": "report", "extensions": ["txt"]}}}),
        json!({"method": "tag.list", "params": {"library": null}}),
        json!({"method": "action.preview", "params": {"library": null, "action": {"action": "copy", "params": {"sources": [r], "dest": root, "on_conflict": "keep-both"}}}}),
        json!({"method": "audit.list", "params": {"library": null, "limit": 10}}),
        json!({"method": "audit.verify", "params": {"library": null}}),
        json!({"method": "volume.list", "params": {"library": null}}),
        json!({"method": "job.list", "params": {"library": null, "limit": 10}}),
        json!({"method": "job.info", "params": {"library": null, "id": 1}}),
        json!({"method": "network.status"}),
        json!({"method": "network.devices"}),
        json!({"method": "location.info", "params": {"library": null, "id": 99}}),
        json!({"method": "no.such.method"}),
    ];
    for req in calls {
        let on_socket = socket(&sd, &req);
        // As a whole request on /api/v1/rpc, and as a method route with its params.
        let auth = format!("Bearer {}", h.token);
        let rpc = h.send(
            "POST",
            "/api/v1/rpc",
            &[("Authorization", &auth)],
            req.to_string().as_bytes(),
        );
        let method = req["method"].as_str().unwrap();
        let routed = h.api(method, req.get("params").cloned());
        for (how, a) in [("rpc", &rpc), ("route", &routed)] {
            let over_http = a.json();
            assert_eq!(
                steady(over_http.clone()),
                steady(on_socket.clone()),
                "{method} through {how} differs from the socket"
            );
            match on_socket.get("error") {
                None => assert_eq!(a.status, 200, "{method}"),
                Some(e) if e["code"] == "not_found" => assert_eq!(a.status, 404),
                Some(e) if e["code"] == "bad_request" => assert_eq!(a.status, 400),
                Some(e) => panic!("{method} failed: {e}"),
            }
        }
    }

    // A change made over HTTP is the same change: a tag applied here is seen by the CLI.
    let a = h.api(
        "action.commit",
        Some(json!({"library": null, "action": {"action": "tag_create", "params": {"path": "Work", "color": "#ff0000", "namespace": null}}})),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = h.api(
        "action.commit",
        Some(json!({"library": null, "action": {"action": "tag_apply", "params": {"tag": "Work", "paths": [r], "content": false}}})),
    );
    assert_eq!(a.json()["ok"]["added"], 1);
    let found = sd.json(["search", "--tag", "Work"]);
    assert_eq!(found["total"], 1, "{found}");
    // `events.subscribe` is the stream's, not a method route's.
    let a = h.api(
        "events.subscribe",
        Some(json!({"library": null, "job": null})),
    );
    assert_eq!(a.status, 400);
    // The same limits as the socket: an oversized body is refused before it is parsed.
    let big = vec![b' '; (1 << 20) + 1];
    let auth = format!("Bearer {}", h.token);
    let a = h.send("POST", "/api/v1/rpc", &[("Authorization", &auth)], &big);
    assert!(a.status == 400 || a.status == 413, "{}", a.status);
}

#[test]
fn job_progress_arrives_as_server_sent_events() {
    let (sd, root) = setup();
    let h = Http::of(&sd);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        h.host(),
        h.token
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    // Give the subscription a moment, then change a file and rescan: its job streams by.
    std::thread::sleep(Duration::from_millis(300));
    write(&root.join("docs/new.txt"), b"new");
    let started = sd.json(["location", "rescan", "1"]);
    let job = started["job_id"].as_i64().unwrap_or(-1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut content_type = false;
    let mut states = Vec::new();
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream")
        {
            content_type = true;
        }
        let Some(data) = line.trim_end().strip_prefix("data:") else {
            continue;
        };
        let v: Value = serde_json::from_str(data.trim()).expect("a stream line");
        if let Some(j) = v.pointer("/event/data") {
            assert_eq!(v["event"]["type"], "job");
            if j["kind"] == "index" && (job < 0 || j["id"] == job) {
                states.push(j["state"].as_str().unwrap().to_owned());
                if j["state"] == "completed" {
                    break;
                }
            }
        }
    }
    assert!(content_type, "served as text/event-stream");
    assert_eq!(
        states.last().map(String::as_str),
        Some("completed"),
        "{states:?}"
    );
}

#[test]
fn the_openapi_document_covers_every_method() {
    let (sd, _root) = setup();
    let h = Http::of(&sd);
    let a = h.send(
        "GET",
        "/api/v1/openapi.json",
        &[("Authorization", &format!("Bearer {}", h.token))],
        b"",
    );
    assert_eq!(a.status, 200);
    let doc = a.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Every method of docs/API.md's table has its path (the stream its GET).
    let api_md = include_str!("../../../../docs/API.md");
    let table = api_md.split_once("## Methods").unwrap().1;
    let mut n = 0;
    for row in table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let first = row.split('|').nth(1).unwrap_or_default();
        for m in first.split('`').skip(1).step_by(2) {
            n += 1;
            let path = if m == "events.subscribe" {
                "/api/v1/events".to_owned()
            } else {
                format!("/api/v1/{m}")
            };
            assert!(
                paths.contains_key(&path),
                "no {path} in the OpenAPI document"
            );
        }
    }
    assert!(n >= 30);
    let search = &paths["/api/v1/search"]["post"];
    assert!(
        search["requestBody"].to_string().contains("Query"),
        "{search}"
    );
    assert!(doc["components"]["schemas"]["Query"]["properties"]["extensions"].is_object());
}

#[test]
fn a_taken_port_is_replaced_and_an_exposed_address_needs_consent() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let mut sd = Sd::new();
    sd.env("SPACEDRIVE_HTTP_PORT", &port.to_string());
    let h = Http::of(&sd);
    assert_ne!(h.addr.port(), port);
    assert_eq!(h.api("daemon.status", None).status, 200);
    let text = sd.ok(["ui", "--no-open"]);
    assert!(text.contains(&format!("port {port} was taken")), "{text}");
    sd.ok(["stop"]);

    // An address other machines reach, without the explicit consent: no HTTP, and `ui` says why.
    let mut sd = Sd::new();
    sd.env("SPACEDRIVE_HTTP_ADDR", "0.0.0.0");
    let e = sd.fails(["ui", "--no-open"]);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("refusing to listen on 0.0.0.0")
            && msg.contains("--http-listen-beyond-loopback"),
        "{msg}"
    );
    // The socket API works all the same.
    sd.ok(["status"]);
}

/// `s` percent-encoded for a query string (as the UI's `encodeURIComponent` does).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_grid_view_gets_thumbnails_over_http() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("pics");
    std::fs::create_dir_all(&root).unwrap();
    let flag = image::RgbImage::from_fn(600, 400, |x, _| {
        if x < 300 {
            image::Rgb([200, 10, 10])
        } else {
            image::Rgb([10, 10, 200])
        }
    });
    flag.save(root.join("flag.png")).unwrap();
    write(&root.join("notes.txt"), b"not a picture");
    sd.ok([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
    ]);
    let http = Http::of(&sd);
    let auth = format!("Bearer {}", http.token);
    let session = http.send("GET", "/api/v1/session", &[("Authorization", &auth)], b"");
    assert_eq!(session.json()["thumbnails"], true);
    let url = |p: &std::path::Path| {
        format!(
            "/api/v1/thumbnail?path={}&size=256",
            query_escape(p.to_str().unwrap())
        )
    };
    let a = http.send(
        "GET",
        &url(&root.join("flag.png")),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("image/webp"));
    let thumb = image::load_from_memory_with_format(&a.body, image::ImageFormat::WebP).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 171));
    // No token, no thumbnail; a file that is not a picture has none (the UI shows its icon).
    let refused = http.send("GET", &url(&root.join("flag.png")), &[], b"");
    assert_eq!(refused.status, 401);
    let none = http.send(
        "GET",
        &url(&root.join("notes.txt")),
        &[("Authorization", &auth)],
        b"",
    );
    assert!(none.status >= 400, "{}", none.status);
}
