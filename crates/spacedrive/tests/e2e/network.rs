//! Devices: two daemons (own data folders, loopback) pair by code, call each other, revoke.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;

use super::{Sd, write};

/// `network pair generate --json` running in the background: its first line (the code).
struct Generating {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    code: String,
    addr: String,
}

fn generate(sd: &Sd) -> Generating {
    let mut child = sd
        .command()
        .args(["--json", "network", "pair", "generate"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    Generating {
        child,
        lines,
        code: first["code"].as_str().unwrap().to_owned(),
        addr: first["addrs"][0].as_str().unwrap().to_owned(),
    }
}

impl Generating {
    /// The last line and whether the command succeeded.
    fn outcome(mut self) -> (Value, bool) {
        let last: Value = serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap();
        (last, self.child.wait().unwrap().success())
    }
}

fn id_of(sd: &Sd) -> String {
    sd.json(["network", "status"])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn two_daemons_pair_by_code_call_each_other_and_revoke() {
    let (a, b) = (Sd::new(), Sd::new());
    let root = a.tmp.path().join("photos");
    write(&root.join("one.jpg"), b"jpeg");
    a.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    b.ok(["library", "create", "Empty"]);
    let (ida, idb) = (id_of(&a), id_of(&b));

    // A wrong code fails clearly; the right one pairs.
    let g = generate(&a);
    let wrong = if g.code == "0000-0000" {
        "1111-1111"
    } else {
        "0000-0000"
    };
    let err = b.fails(["network", "pair", "join", wrong, "--addr", &g.addr]);
    assert!(
        err["message"].as_str().unwrap().contains("wrong code"),
        "{err}"
    );
    let joined = b.json(["network", "pair", "join", &g.code, "--addr", &g.addr]);
    assert_eq!(joined["id"], ida.as_str());
    // The network id is tied to the device identity the libraries know.
    assert_eq!(
        joined["device_id"],
        a.json(["status"])["status"]["device"]["id"]
    );
    let (last, ok) = g.outcome();
    assert!(ok, "{last}");
    assert_eq!(last["paired"]["id"], idb.as_str());

    // Both remember, across restarts of both daemons; remote reads work both ways.
    a.ok(["stop"]);
    b.ok(["stop"]);
    assert_eq!(a.json(["network", "devices"])[0]["id"], idb.as_str());
    let listed = b.json(["network", "devices"]);
    assert_eq!(listed[0]["id"], ida.as_str());
    assert_eq!(
        listed[0]["online"], true,
        "a's daemon runs and answers: {listed}"
    );
    assert!(listed[0]["latency_ms"].as_f64().is_some(), "{listed}");
    let remote = b.json(["--device", &ida[..10], "location", "list"]);
    assert_eq!(remote[0]["path"], root.to_str().unwrap(), "{remote}");
    assert_eq!(
        a.json(["--device", &idb[..10], "location", "list"]),
        serde_json::json!([])
    );
    let pong = b.json(["network", "ping", &ida[..10]]);
    assert!(pong["rtt_ms"].as_f64().unwrap() > 0.0, "{pong}");
    // Only reads: anything else is refused by the device asked.
    let err = b.fails(["--device", &ida[..10], "tag", "list"]);
    assert_eq!(err["code"], "forbidden", "{err}");

    // Revoke: a drops b and tells it; b no longer has a to call.
    let r = a.json(["network", "revoke", &idb[..10]]);
    assert_eq!(r["told"], true, "{r}");
    assert_eq!(a.json(["network", "devices"]), serde_json::json!([]));
    assert_eq!(b.json(["network", "devices"]), serde_json::json!([]));
    let err = b.fails(["--device", &ida[..10], "location", "list"]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no paired device"),
        "{err}"
    );
}

#[test]
fn three_wrong_codes_burn_the_code() {
    let (a, c) = (Sd::new(), Sd::new());
    let g = generate(&a);
    let (code, addr) = (g.code.clone(), g.addr.clone());
    let wrong = if g.code == "0000-0000" {
        "1111-1111"
    } else {
        "0000-0000"
    };
    for _ in 0..3 {
        let err = c.fails(["network", "pair", "join", wrong, "--addr", &g.addr]);
        assert!(
            err["message"].as_str().unwrap().contains("wrong code"),
            "{err}"
        );
    }
    let (last, ok) = g.outcome();
    assert!(!ok);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("burned"),
        "{last}"
    );
    // The right code no longer works either.
    let err = c.fails(["network", "pair", "join", &code, "--addr", &addr]);
    assert!(
        err["message"].as_str().unwrap().contains("not pairing"),
        "{err}"
    );
    assert_eq!(c.json(["network", "devices"]), serde_json::json!([]));
}

/// Two network namespaces joined by a veth pair (removed on drop); `None` where they cannot be
/// made (not root, no `ip`).
struct Lan {
    names: [String; 2],
}

fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Lan {
    fn create() -> Option<Lan> {
        let pid = std::process::id();
        let lan = Lan {
            names: [format!("sde{pid}a"), format!("sde{pid}b")],
        };
        let [a, b] = &lan.names;
        let (va, vb) = (format!("e{pid}a"), format!("e{pid}b"));
        let net = pid % 200 + 20;
        let ok = ip(&["netns", "add", a])
            && ip(&["netns", "add", b])
            && ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])
            && ip(&["link", "set", &va, "netns", a])
            && ip(&["link", "set", &vb, "netns", b])
            && ip(&[
                "-n",
                a,
                "addr",
                "add",
                &format!("10.78.{net}.1/24"),
                "dev",
                &va,
            ])
            && ip(&[
                "-n",
                b,
                "addr",
                "add",
                &format!("10.78.{net}.2/24"),
                "dev",
                &vb,
            ])
            && [(a, &va), (b, &vb)].iter().all(|(ns, v)| {
                ip(&["-n", ns, "link", "set", v, "up"])
                    && ip(&["-n", ns, "link", "set", "lo", "up"])
                    && ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", v])
            });
        ok.then_some(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in &self.names {
            ip(&["netns", "del", n]);
        }
    }
}

/// Two daemons on a LAN (network namespaces + veth) find each other by mDNS and pair without an
/// address.
#[test]
fn daemons_on_a_lan_pair_without_an_address() {
    let Some(lan) = Lan::create() else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and `ip netns`)");
        return;
    };
    let (mut a, mut b) = (Sd::new(), Sd::new());
    for (sd, ns) in [(&mut a, &lan.names[0]), (&mut b, &lan.names[1])] {
        sd.in_netns(ns);
        sd.env("SPACEDRIVE_NET_HOST", "0.0.0.0");
        sd.env("SPACEDRIVE_MDNS", "1");
    }
    assert_eq!(a.json(["network", "status"])["discovery"], true);
    let g = generate(&a);
    let joined = b.json(["network", "pair", "join", &g.code]);
    assert_eq!(joined["id"], id_of(&a).as_str());
    let (last, ok) = g.outcome();
    assert!(ok, "{last}");
    assert_eq!(last["paired"]["id"], id_of(&b).as_str());
    let listed = b.json(["network", "devices"]);
    assert_eq!(listed[0]["online"], true, "{listed}");
}
