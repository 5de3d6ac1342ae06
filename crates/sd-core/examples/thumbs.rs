//! Thumbnails of many files, the way the sidecar job makes them (reduced-size JPEG decode, SIMD
//! resize, lossy WebP, each file written whole with fsync), on N threads; for `bench/thumbs.sh`.
//!
//!   thumbs --size 256 --threads 2 --out DIR FILE...
//!
//! Prints `THUMBNAILS SECONDS FAILED`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sd_core::sidecar::Layout;
use sd_core::sidecar::picture::{self, Limits};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut size, mut threads, mut out, mut files) =
        (256u32, 2usize, PathBuf::from("."), Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size" => size = args.next().and_then(|v| v.parse().ok()).expect("--size N"),
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads N")
            }
            "--out" => out = PathBuf::from(args.next().expect("--out DIR")),
            _ => files.push(PathBuf::from(a)),
        }
    }
    let layout = Layout::plain(&out);
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    let made = std::fs::read(f).ok().and_then(|bytes| {
                        picture::thumbnails(&bytes, &[("grid", size)], &Limits::default()).ok()
                    });
                    match made {
                        Some((thumbs, _)) => {
                            let name = f.file_stem().unwrap_or_default().to_string_lossy();
                            let dest = out.join(format!("{name}.webp"));
                            layout.write(&dest, &thumbs[0].webp).expect("writing");
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    println!("{} {secs:.3} {failed}", files.len() - failed);
}
