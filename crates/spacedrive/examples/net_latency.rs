//! Round-trip latency of one request to the daemon's socket, answered locally or by a paired
//! device (`remote`): the same request, the same client code, N times each, interleaved.
//!
//! `cargo run --release --example net_latency -- DATA_DIR DEVICE [N]` (used by bench/net.sh).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn call(sock: &std::path::Path, line: &[u8]) -> Duration {
    let t = Instant::now();
    let mut s = UnixStream::connect(sock).expect("daemon socket");
    s.write_all(line).expect("request");
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("answer");
    let d = t.elapsed();
    assert!(answer.starts_with("{\"ok\""), "{answer}");
    d
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (data, device) = (&args[1], &args[2]);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);
    let sock = std::path::Path::new(data).join("daemon.sock");
    let local = b"{\"method\": \"location.list\", \"params\": {\"library\": null}}\n".to_vec();
    let remote = format!(
        "{{\"method\": \"remote\", \"params\": {{\"device\": {device:?}, \"request\": {{\"method\": \"location.list\", \"params\": {{\"library\": null}}}}}}}}\n"
    )
    .into_bytes();
    // Warm-up: connections, caches.
    for _ in 0..20 {
        call(&sock, &local);
        call(&sock, &remote);
    }
    let (mut l, mut r) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        l.push(call(&sock, &local));
        r.push(call(&sock, &remote));
    }
    let (l50, l99, r50, r99) = (
        pct(&mut l, 0.5),
        pct(&mut l, 0.99),
        pct(&mut r, 0.5),
        pct(&mut r, 0.99),
    );
    println!("location.list, {n} calls each, interleaved");
    println!("  local socket        p50 {l50:.3} ms   p99 {l99:.3} ms");
    println!("  remote (loopback)   p50 {r50:.3} ms   p99 {r99:.3} ms");
    println!("  remote / local at p50: {:.2}x (target <= 3x)", r50 / l50);
}
