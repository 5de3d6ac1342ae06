//! Spacedrop between two daemons that are not paired (loopback, `--addr`): accepted (byte for
//! byte, keep both on a second drop), declined, expired, receiving off.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{Sd, wait_until, write};

/// `spacedrop send --json` running in the background, with its first line (the offer).
struct Sending {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    offered: Value,
}

fn send(sd: &Sd, paths: &[&Path], addr: &str) -> Sending {
    let mut child = sd
        .command()
        .args(["--json", "spacedrop", "send", "--addr", addr])
        .args(paths)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let offered: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    Sending {
        child,
        lines,
        offered,
    }
}

impl Sending {
    /// The last line and whether the command succeeded.
    fn outcome(mut self) -> (Value, bool) {
        let mut last = Value::Null;
        for l in self.lines.by_ref() {
            last = serde_json::from_str(&l.unwrap()).unwrap();
        }
        (last, self.child.wait().unwrap().success())
    }
}

/// A receiver with its Spacedrop folder, a sender, and the receiver's introduction address.
fn pair_of(ttl_ms: Option<&str>) -> (Sd, Sd, PathBuf, String) {
    let (mut a, b) = (Sd::new(), Sd::new());
    if let Some(t) = ttl_ms {
        a.env("SPACEDRIVE_SPACEDROP_TTL_MS", t);
    }
    let dir = a.tmp.path().join("Spacedrop");
    let c = a.json(["spacedrop", "config", "--dir", dir.to_str().unwrap()]);
    assert_eq!(c["receive"], true);
    let addr = a.json(["network", "status"])["intro"]
        .as_str()
        .unwrap()
        .to_owned();
    (a, b, dir, addr)
}

fn waiting(a: &Sd) -> Value {
    let mut list = Value::Null;
    wait_until("the offer shows", Duration::from_secs(10), || {
        list = a.json(["spacedrop", "list"]);
        list.as_array().is_some_and(|l| !l.is_empty())
    });
    list[0].clone()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn spacedrop_accepted_lands_verified_and_keeps_both() {
    let (a, b, dir, addr) = pair_of(None);
    let src = b.tmp.path().join("out");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(&src.join("photo.jpg"), &big);
    write(&src.join("album/one.txt"), b"one");
    write(&src.join("album/deep/two.txt"), b"two");
    let (f, d) = (src.join("photo.jpg"), src.join("album"));

    let s = send(&b, &[&f, &d], &addr);
    assert_eq!(s.offered["type"], "offered");
    let o = waiting(&a);
    // Both screens show the same fingerprint; nothing is written before the offer is accepted.
    assert_eq!(o["fingerprint"], s.offered["fingerprint"]);
    assert_eq!(o["files"].as_array().unwrap().len(), 3);
    assert_eq!(o["size"], big.len() as u64 + 6);
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    let landed = a.json(["spacedrop", "accept", &o["id"].to_string()]);
    assert_eq!(landed["names"], serde_json::json!(["photo.jpg", "album"]));
    let (last, ok) = s.outcome();
    assert!(ok, "{last}");
    assert_eq!(last["names"], landed["names"]);
    assert_eq!(std::fs::read(dir.join("photo.jpg")).unwrap(), big);
    assert_eq!(
        std::fs::read(dir.join("album/deep/two.txt")).unwrap(),
        b"two"
    );

    // The same names again: kept beside the first, nothing overwritten.
    let s = send(&b, &[&f, &d], &addr);
    let o = waiting(&a);
    let landed = a.json(["spacedrop", "accept", &o["id"].to_string()]);
    assert_eq!(
        landed["names"],
        serde_json::json!(["photo (1).jpg", "album (1)"])
    );
    assert!(s.outcome().1);
    assert_eq!(std::fs::read(dir.join("photo (1).jpg")).unwrap(), big);
    assert_eq!(
        std::fs::read(dir.join("album (1)/one.txt")).unwrap(),
        b"one"
    );
    assert_eq!(
        listing(&dir),
        ["album", "album (1)", "photo (1).jpg", "photo.jpg"]
    );
}

#[test]
fn spacedrop_declined_expired_or_off_writes_nothing() {
    let (a, b, dir, addr) = pair_of(Some("1500"));
    let f = b.tmp.path().join("note.txt");
    write(&f, b"hello");

    // Declined.
    let s = send(&b, &[&f], &addr);
    let o = waiting(&a);
    a.json(["spacedrop", "decline", &o["id"].to_string()]);
    let (last, ok) = s.outcome();
    assert!(!ok);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("declined"),
        "{last}"
    );
    assert!(listing(&dir).is_empty());

    // Expired: nobody answers.
    let s = send(&b, &[&f], &addr);
    let (last, ok) = s.outcome();
    assert!(!ok);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{last}"
    );
    assert_eq!(a.json(["spacedrop", "list"]), serde_json::json!([]));
    assert!(listing(&dir).is_empty());

    // Receiving off: refused at once.
    let c = a.json(["spacedrop", "config", "--receive", "off"]);
    assert_eq!(c["receive"], false);
    let s = send(&b, &[&f], &addr);
    let (last, ok) = s.outcome();
    assert!(!ok);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not receiving"),
        "{last}"
    );
    assert!(listing(&dir).is_empty());
}
