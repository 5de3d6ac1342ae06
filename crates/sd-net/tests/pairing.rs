//! Pairing between real iroh endpoints on loopback, each with its own data folder.

use std::time::Duration;

use sd_net::{DeviceInfo, Net, NetConfig, PairError};

async fn node(dir: &std::path::Path, name: &str) -> Net {
    Net::start(NetConfig {
        data_dir: dir.join(name),
        bind: "127.0.0.1:0".parse().unwrap(),
        info: DeviceInfo {
 device_id: None,
            name: name.into(),
            os: "linux".into(),
            addrs: vec![],
            relay: None,
        },
        // Echoes the request with the caller's id: enough to see who called what.
        handler: std::sync::Arc::new(|peer, request| {
            serde_json::json!({"ok": {"peer": peer.to_string(), "request": request}})
        }),
        mdns: false,
        transfer: std::sync::Arc::new(sd_net::transfer::ShareNothing),
        relay: None,
        spacedrop: None,
    })
    .await
    .expect("starting a node")
}

/// A bare endpoint on loopback that speaks whatever a test makes it speak.
async fn raw_endpoint() -> iroh::Endpoint {
    iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_pair_and_remember_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (host, guest) = (
        node(tmp.path(), "host").await,
        node(tmp.path(), "guest").await,
    );
    let (code, paired) = host.pair_generate();
    let joined = guest
        .pair_join(&code.to_string(), host.intro_addr().unwrap())
        .await
        .expect("pairing with the right code");
    assert_eq!(joined.name, "host");
    assert_eq!(joined.id, host.id().to_string());
    let other = tokio::time::timeout(Duration::from_secs(10), paired)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(other.name, "guest");
    assert_eq!(other.id, guest.id().to_string());
    // The code is used up.
    let again = guest
        .pair_join(&code.to_string(), host.intro_addr().unwrap())
        .await;
    assert!(matches!(again, Err(PairError::Refused(_))), "{again:?}");
    let (hid, gid) = (host.id(), guest.id());
    host.shutdown().await;
    guest.shutdown().await;
    // Both remember it, with the same identities, after a restart.
    let (host, guest) = (
        node(tmp.path(), "host").await,
        node(tmp.path(), "guest").await,
    );
    assert_eq!((host.id(), guest.id()), (hid, gid));
    assert!(host.devices().is_trusted(&gid.to_string()));
    assert!(guest.devices().is_trusted(&hid.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_fail_and_burn_the_code() {
    let tmp = tempfile::tempdir().unwrap();
    let host = node(tmp.path(), "host").await;
    let mallory = node(tmp.path(), "mallory").await;
    let (code, paired) = host.pair_generate();
    let wrong = if code.to_string() == "0000-0000" {
        "1111-1111"
    } else {
        "0000-0000"
    };
    for i in 0..3 {
        let r = mallory.pair_join(wrong, host.intro_addr().unwrap()).await;
        assert_eq!(r, Err(PairError::WrongCode), "attempt {i}");
    }
    // Burned: even the right code no longer works, and the host was told.
    let outcome = tokio::time::timeout(Duration::from_secs(10), paired)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Err(PairError::Burned));
    let r = mallory
        .pair_join(&code.to_string(), host.intro_addr().unwrap())
        .await;
    assert!(matches!(r, Err(PairError::Refused(_))), "{r:?}");
    assert!(host.devices().list().is_empty());
    assert!(mallory.devices().list().is_empty());
    // A malformed code is refused before anything is sent.
    assert!(
        mallory
            .pair_join("12-34", host.intro_addr().unwrap())
            .await
            .is_err()
    );
}

/// Garbage, truncated and oversized frames on the pairing ALPN: the connection is closed, and
/// the host still pairs a real guest afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_and_harm_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let host = node(tmp.path(), "host").await;
    let (code, paired) = host.pair_generate();
    let raw = raw_endpoint().await;
    let target = iroh::EndpointAddr::new(host.id()).with_ip_addr(host.listening()[0]);
    let mut oversized = vec![1u8];
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    let cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![1, 0, 0],                   // truncated header
        vec![1, 0, 0, 0, 50, b'{'],      // truncated body
        oversized,                       // 4 GiB announced
        vec![9, 0, 0, 0, 2, b'{', b'}'], // unknown version
        vec![1, 0, 0, 0, 2, b'{', b'}'], // valid frame, not a message
    ];
    for bytes in cases {
        let conn = raw
            .connect(target.clone(), sd_net::pair::ALPN)
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        let _ = send.finish();
        let got = tokio::time::timeout(Duration::from_secs(25), recv.read_to_end(1 << 16)).await;
        assert!(got.is_ok(), "the host answered or closed for {bytes:?}");
        let closed = tokio::time::timeout(Duration::from_secs(25), conn.closed()).await;
        assert!(
            closed.is_ok(),
            "the host closed the connection for {bytes:?}"
        );
    }
    // Unharmed: a real guest pairs (the malformed attempts that got as far as a code counted
    // at most once each, below the burn limit).
    let guest = node(tmp.path(), "guest").await;
    let r = guest
        .pair_join(&code.to_string(), host.intro_addr().unwrap())
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert!(
        tokio::time::timeout(Duration::from_secs(10), paired)
            .await
            .unwrap()
            .unwrap()
            .is_ok()
    );
}

/// Paired devices call each other; others are refused; a revoked device is refused on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paired_devices_call_each_other_and_revoke_holds() {
    use sd_net::CallError;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        node(tmp.path(), "alpha").await,
        node(tmp.path(), "beta").await,
        node(tmp.path(), "gamma").await,
    );
    let (code, paired) = a.pair_generate();
    b.pair_join(&code.to_string(), a.intro_addr().unwrap())
        .await
        .unwrap();
    paired.await.unwrap().unwrap();
    // beta knows alpha's address from the pairing; alpha learns beta's when beta calls.
    let answer = b
        .call("alpha", serde_json::json!({"method": "location.list"}))
        .await
        .unwrap();
    assert_eq!(answer["ok"]["request"]["method"], "location.list");
    assert_eq!(answer["ok"]["peer"], b.id().to_string());
    let (_, rtt) = b.ping(&a.id().to_string()[..8]).await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    let alpha = DeviceInfo {
        device_id: None,
        name: "alpha".into(),
        os: "linux".into(),
        addrs: vec![],
        relay: None,
    };
    // gamma is not paired with alpha: it cannot even name it, and a forged entry is refused.
    assert!(c.call("alpha", serde_json::json!({})).await.is_err());
    c.devices()
        .trust(
            &a.id().to_string(),
            &alpha,
            vec![a.listening()[0].to_string()],
        )
        .unwrap();
    let r = c.call("alpha", serde_json::json!({})).await;
    assert!(matches!(r, Err(CallError::NotPaired { .. })), "{r:?}");
    // alpha revokes beta: beta is told and drops alpha; were it not told, it would be refused.
    let (dev, told) = a.revoke("beta").await.unwrap();
    assert_eq!(dev.name, "beta");
    assert!(told);
    assert!(!b.devices().is_trusted(&a.id().to_string()));
    b.devices()
        .trust(
            &a.id().to_string(),
            &alpha,
            vec![a.listening()[0].to_string()],
        )
        .unwrap();
    let r = b.call("alpha", serde_json::json!({})).await;
    assert!(matches!(r, Err(CallError::NotPaired { .. })), "{r:?}");
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("not (or no longer) paired")
    );
}

/// Garbage, truncated and oversized frames on the call ALPN, from a trusted and an untrusted
/// endpoint: the connection is closed, and the node still answers a real call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_calls_close_the_connection_and_harm_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (host, guest) = (
        node(tmp.path(), "host").await,
        node(tmp.path(), "guest").await,
    );
    let (code, paired) = host.pair_generate();
    guest
        .pair_join(&code.to_string(), host.intro_addr().unwrap())
        .await
        .unwrap();
    paired.await.unwrap().unwrap();
    let raw = raw_endpoint().await;
    let target = iroh::EndpointAddr::new(host.id()).with_ip_addr(host.listening()[0]);
    let alpns = [sd_net::rpc::ALPN, sd_net::transfer::ALPN];
    // Untrusted: closed before it can send anything that matters.
    for alpn in alpns {
        let conn = raw.connect(target.clone(), alpn).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        assert!(closed.is_ok(), "an unpaired caller is shut out");
    }
    // Trusted, but broken frames.
    host.devices()
        .trust(&raw.id().to_string(), &DeviceInfo::default(), vec![])
        .unwrap();
    let mut oversized = vec![1u8];
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    let cases = [
        b"\x00\x01garbage".to_vec(),
        vec![1, 0, 0, 0, 9, b'{'],
        oversized,
        vec![1, 0, 0, 0, 2, b'{', b'}'],
    ];
    for (alpn, bytes) in alpns
        .iter()
        .flat_map(|a| cases.iter().map(move |c| (*a, c.clone())))
    {
        let conn = raw.connect(target.clone(), alpn).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        let _ = send.finish();
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        assert!(closed.is_ok(), "closed after {bytes:?}");
    }
    let answer = guest
        .call("host", serde_json::json!({"method": "daemon.status"}))
        .await
        .unwrap();
    assert_eq!(answer["ok"]["request"]["method"], "daemon.status");
}
