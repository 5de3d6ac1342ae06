//! Spacedrive's API as types, for every transport: the [`Request`] a client sends, one typed
//! answer per method (held by [`Response`]), errors as an [`ErrorCode`] plus a message, the
//! limits a transport applies while reading a request, and the one [`handle`] that serves them
//! all against a [`Node`](sd_core::Node).
//!
//! A transport only frames: the daemon's Unix socket reads a line with [`read_request`] and
//! writes `{"ok": <Response>}` or `{"error": <ApiError>}`; an HTTP server or a peer-to-peer
//! protocol would do the same with its own framing. `events.subscribe`, the one stream, is served
//! by [`subscribe`]. The wire format is documented in docs/API.md, whose method table a test
//! here checks against [`Request`]'s variants.
//!
//! ```no_run
//! use sd_api::{Request, Response, handle};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = sd_core::Node::open(std::path::Path::new("/tmp/sd-data"))?;
//! let req = sd_api::parse_request(br#"{"method": "library.list"}"#)?;
//! assert!(matches!(req, Request::LibraryList));
//! if let Response::Libraries(libs) = handle(&node, req)? {
//!     for l in libs {
//!         println!("{} ({})", l.name, l.status);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! This crate has no networking and no async runtime: it is the service, not a server.

mod error;
mod events;
mod handle;
mod network;
mod request;
mod response;

pub use error::{ApiError, ErrorCode};
pub use events::{HEARTBEAT, Subscription, subscribe};
pub use handle::{handle, handle_with};
pub use network::*;
pub use request::{MAX_REQUEST_BYTES, Passphrase, Request, parse_request, read_request};
pub use response::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// The method names serde knows for [`Request`], read from its own "unknown variant" error,
    /// so the list cannot disagree with the `#[serde(rename)]`s.
    fn request_methods() -> Vec<String> {
        let e = serde_json::from_str::<Request>(r#"{"method": "no.such.method"}"#)
            .expect_err("an unknown method is refused");
        let text = e.to_string();
        let list = text
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("unexpected serde error: {text}"))
            .1;
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// The methods in docs/API.md's method table (first column; `a` / `b` lists several).
    fn documented_methods() -> Vec<String> {
        let doc = include_str!("../../../docs/API.md");
        let table = doc
            .split_once("## Methods")
            .expect("docs/API.md has a Methods section")
            .1;
        table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // header and separator
            .flat_map(|row| {
                let first = row.split('|').nth(1).unwrap_or_default();
                first
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn docs_list_exactly_the_requests() {
        let mut code = request_methods();
        let mut doc = documented_methods();
        assert!(
            code.len() >= 30,
            "too few methods read from serde: {code:?}"
        );
        code.sort();
        doc.sort();
        let missing: Vec<_> = code.iter().filter(|m| !doc.contains(m)).collect();
        let extra: Vec<_> = doc.iter().filter(|m| !code.contains(m)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/API.md's method table is out of date: undocumented {missing:?}, not in Request {extra:?}"
        );
        assert_eq!(code, doc, "a method is listed twice in docs/API.md");
    }

    #[test]
    fn requests_are_capped_and_utf8() {
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        let e = parse_request(&big).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = read_request(&mut &big[..]).unwrap_err();
        assert!(e.message.contains("larger than"), "{}", e.message);
        let e = parse_request(b"{\"method\": \"\xff\"}").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        let e = parse_request(b"{\"method\": \"nope\"}").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let r = read_request(&mut &b"{\"method\": \"daemon.status\"}\nrest"[..]).unwrap();
        assert!(matches!(r, Request::Status));
    }
}
