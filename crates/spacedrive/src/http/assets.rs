//! The web UI's files, embedded in the binary at build time (`crates/spacedrive/ui/`): plain
//! HTML, CSS and JavaScript modules, no build step, nothing fetched from elsewhere at run time.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every file the UI is made of: (name under `/ui/`, content type, bytes).
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
    (
        "login.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/login.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/api.js"),
    ),
    (
        "util.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/util.js"),
    ),
    (
        "list.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/list.js"),
    ),
    (
        "actions.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/actions.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/views.js"),
    ),
];

fn serve(name: &str) -> Response {
    match FILES.iter().find(|(n, ..)| *n == name) {
        Some((_, mime, body)) => {
            let mut r = (StatusCode::OK, *body).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            // Served from memory; always revalidated, so a new build is picked up at once.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

pub async fn index() -> Response {
    serve("index.html")
}

pub async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a UI file imports, and every file the page links, is embedded.
    #[test]
    fn every_referenced_file_is_embedded() {
        for (name, _, body) in FILES {
            for quote in ['"', '\''] {
                for part in body.split(&format!("{quote}./")[..]).skip(1) {
                    let target = part.split(quote).next().unwrap_or_default();
                    if target.ends_with(".js") || target.ends_with(".css") {
                        assert!(
                            FILES.iter().any(|(n, ..)| *n == target),
                            "{name} refers to {target}, which is not embedded"
                        );
                    }
                }
            }
            for part in body.split("\"/ui/").skip(1) {
                let target = part.split('"').next().unwrap_or_default();
                assert!(
                    FILES.iter().any(|(n, ..)| *n == target),
                    "{name} links /ui/{target}, which is not embedded"
                );
            }
        }
    }
}
