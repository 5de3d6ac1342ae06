//! The transport's ceiling for `bench/transfer.sh`: one file's bytes over a plain iroh
//! bidirectional stream between two endpoints on loopback (the endpoints Spacedrive builds: the
//! minimal preset, no relay), written to a file on the other end. No hashing, no framing, no sync.
//!
//!     stream_ceiling SOURCE DEST      prints the seconds and MB/s

use std::time::Instant;

use iroh::endpoint::presets;
use iroh::{Endpoint, EndpointAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALPN: &[u8] = b"bench/stream-ceiling";

async fn endpoint() -> Endpoint {
    Endpoint::builder(presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .alpns(vec![ALPN.to_vec()])
        .clear_ip_transports()
        .bind_addr(
            "127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .expect("an address"),
        )
        .expect("a bind address")
        .bind()
        .await
        .expect("an endpoint")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst) = match args.as_slice() {
        [_, s, d] => (s.clone(), d.clone()),
        _ => {
            eprintln!("usage: stream_ceiling SOURCE DEST");
            std::process::exit(2);
        }
    };
    let (tx_end, rx_end) = (endpoint().await, endpoint().await);
    let mut target = EndpointAddr::new(rx_end.id());
    for a in rx_end.bound_sockets() {
        target = target.with_ip_addr(a);
    }
    let receiver = tokio::spawn(async move {
        let conn = rx_end
            .accept()
            .await
            .expect("an incoming connection")
            .await
            .expect("a connection");
        let (mut send, mut recv) = conn.accept_bi().await.expect("a stream");
        let mut out = tokio::fs::File::create(&dst)
            .await
            .expect("the destination");
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = recv.read(&mut buf).await.expect("reading").unwrap_or(0);
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k]).await.expect("writing");
            n += k as u64;
        }
        out.flush().await.expect("flushing");
        send.write_all(b"ok").await.expect("answering");
        send.finish().expect("finishing");
        let _ = send.stopped().await;
        n
    });
    let t = Instant::now();
    let conn = tx_end.connect(target, ALPN).await.expect("connecting");
    let (mut send, mut recv) = conn.open_bi().await.expect("a stream");
    let mut f = tokio::fs::File::open(&src).await.expect("the source");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).await.expect("reading");
        if k == 0 {
            break;
        }
        send.write_all(&buf[..k]).await.expect("sending");
    }
    send.finish().expect("finishing");
    let mut ok = [0u8; 2];
    recv.read_exact(&mut ok).await.expect("the answer");
    let secs = t.elapsed().as_secs_f64();
    let n = receiver.await.expect("the receiver");
    println!("{secs:.3} s {:.1} MB/s", n as f64 / secs / 1e6);
}
