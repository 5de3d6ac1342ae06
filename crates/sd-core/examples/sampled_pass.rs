//! The bare sampled-hash pass the content benchmark compares the indexer's content phase with:
//! reads NUL-separated paths on stdin and computes each file's cas_id on two threads. No
//! database, no file types, no batching.
//!
//! ```sh
//! find TREE -type f -size +0 -print0 | cargo run --release --example sampled_pass
//! ```

use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("reading stdin");
    let paths: Vec<PathBuf> = input
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsString::from_vec(p.to_vec())))
        .collect();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let hashed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    if sd_core::content::cas_of_file(p).is_ok() {
                        hashed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let n = hashed.load(Ordering::Relaxed);
    println!("{n} files in {secs:.3} s: {:.0} files/s", n as f64 / secs);
}
