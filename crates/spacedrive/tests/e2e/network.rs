//! Devices: two daemons (own data folders, loopback) pair by code, call each other, revoke.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

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

/// Two daemons paired by code over loopback, and their network ids.
pub fn pair() -> (Sd, Sd, String, String) {
    let (a, b) = (Sd::new(), Sd::new());
    let (ida, idb) = pair_with(&a, &b);
    (a, b, ida, idb)
}

/// Pairs `guest` with `host` (by code, `--addr`); their network ids.
pub fn pair_with(host: &Sd, guest: &Sd) -> (String, String) {
    let g = generate(host);
    let idh = guest.json(["network", "pair", "join", &g.code, "--addr", &g.addr])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (last, ok) = g.outcome();
    assert!(ok, "{last}");
    let idg = last["paired"]["id"].as_str().unwrap().to_owned();
    (idh, idg)
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

/// A self-hosted relay on loopback (the `iroh-relay` server), with a self-signed certificate:
/// the kind a user runs for devices on different networks.
struct TestRelay {
    url: String,
    ca_pem: String,
    _server: iroh_relay::server::Server,
    _rt: tokio::runtime::Runtime,
}

impl TestRelay {
    fn start() -> TestRelay {
        use iroh_relay::server::{CertConfig, RelayConfig, Server, ServerConfig, TlsConfig};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let loopback = std::net::Ipv4Addr::LOCALHOST;
        let mut relay = RelayConfig::new((loopback, 0));
        relay.tls = Some(TlsConfig::new(
            (loopback, 0),
            CertConfig::Manual { server_config: tls },
        ));
        let mut config = ServerConfig::default();
        config.relay = Some(relay);
        let server = rt.block_on(Server::spawn(config)).unwrap();
        TestRelay {
            url: format!("https://{}", server.https_addr().unwrap()),
            ca_pem: cert.cert.pem(),
            _server: server,
            _rt: rt,
        }
    }
}

fn relay_connected(sd: &Sd) -> bool {
    sd.json(["network", "status"])["relay"]["connected"] == true
}

#[test]
fn devices_that_cannot_reach_each_other_directly_meet_through_a_relay() {
    let relay = TestRelay::start();
    let (a, b) = (Sd::new(), Sd::new());
    let ca = a.tmp.path().join("relay-ca.pem");
    write(&ca, relay.ca_pem.as_bytes());
    let root = a.tmp.path().join("music");
    write(&root.join("song.flac"), b"flac");
    a.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);

    // None by default; bad input is refused clearly and changes nothing.
    assert_eq!(a.json(["network", "status"])["relay"], Value::Null);
    let err = a.fails(["network", "relay", "set", "relay.example.org"]);
    assert_eq!(err["code"], "invalid", "{err}");
    let err = a.fails([
        "network",
        "relay",
        "set",
        &relay.url,
        "--ca",
        "/no/such.pem",
    ]);
    assert!(
        err["message"].as_str().unwrap().contains("/no/such.pem"),
        "{err}"
    );
    write(&a.tmp.path().join("junk.pem"), b"not a certificate");
    let junk = a.tmp.path().join("junk.pem");
    let err = a.fails([
        "network".as_ref(),
        "relay".as_ref(),
        "set".as_ref(),
        relay.url.as_ref(),
        "--ca".as_ref(),
        junk.as_os_str(),
    ]);
    assert_eq!(err["code"], "invalid", "{err}");
    assert_eq!(a.json(["network", "status"])["relay"], Value::Null);

    // Both use the relay (its certificate from a private CA).
    for sd in [&a, &b] {
        let s = sd.json([
            "network".as_ref(),
            "relay".as_ref(),
            "set".as_ref(),
            relay.url.as_ref(),
            "--ca".as_ref(),
            ca.as_os_str(),
        ]);
        assert_eq!(s["relay"]["url"], format!("{}/", relay.url), "{s}");
        assert_eq!(s["relay"]["custom_ca"], true, "{s}");
    }
    super::wait_until(
        "both devices connected to the relay",
        Duration::from_secs(30),
        || relay_connected(&a) && relay_connected(&b),
    );
    let g = generate(&a);
    let ida = b.json(["network", "pair", "join", &g.code, "--addr", &g.addr])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(g.outcome().1);

    // a moves: it comes back on another port, so what b knows of its address is stale. The
    // relay still joins them (there is no LAN discovery here).
    a.ok(["stop"]);
    let settings = a.data.join("network.json");
    let mut s: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    let old = s["port"].as_u64().unwrap();
    let fresh = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_ne!(u64::from(fresh), old);
    s["port"] = fresh.into();
    std::fs::write(&settings, serde_json::to_vec(&s).unwrap()).unwrap();
    super::wait_until(
        "a, restarted, connected to the relay again",
        Duration::from_secs(30),
        || relay_connected(&a),
    );
    let listening = a.json(["network", "status"])["listening"].to_string();
    assert!(listening.contains(&format!(":{fresh}")), "{listening}");
    let remote = b.json(["--device", &ida[..10], "location", "list"]);
    assert_eq!(remote[0]["path"], root.to_str().unwrap(), "{remote}");

    // Cleared: direct connections only, kept across a restart.
    assert_eq!(a.json(["network", "relay", "clear"])["relay"], Value::Null);
    a.ok(["stop"]);
    assert_eq!(a.json(["network", "status"])["relay"], Value::Null);
}
