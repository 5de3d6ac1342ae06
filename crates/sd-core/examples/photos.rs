//! Photo-like JPEGs for `bench/thumbs.sh`: smooth shapes plus sensor-like noise, so they
//! compress like camera pictures (a few MB at quality 90), not like flat test cards.
//!
//!   photos DIR COUNT [WIDTH HEIGHT]

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("DIR"));
    let count: u32 = args.next().and_then(|v| v.parse().ok()).expect("COUNT");
    let w: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let h: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(3000);
    std::fs::create_dir_all(&dir).expect("creating DIR");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    std::thread::scope(|s| {
        for t in 0..threads {
            let dir = &dir;
            s.spawn(move || {
                for i in (t..count).step_by(threads as usize) {
                    let mut seed =
                        0x9e37_79b9_7f4a_7c15u64 ^ u64::from(i).wrapping_mul(0x2545_f491_4f6c_dd1d);
                    let mut noise = move || {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed % 41) as i32 - 20
                    };
                    let (cx, cy) = ((i * 997) % w, (i * 613) % h);
                    let img = image::RgbImage::from_fn(w, h, |x, y| {
                        let dx = x as f32 - cx as f32;
                        let dy = y as f32 - cy as f32;
                        let ring = ((dx * dx + dy * dy).sqrt() / 40.0).sin() * 60.0;
                        let n = noise();
                        let c = |base: f32| (base + ring + n as f32).clamp(0.0, 255.0) as u8;
                        image::Rgb([
                            c(x as f32 * 200.0 / w as f32 + 20.0),
                            c(y as f32 * 180.0 / h as f32 + 30.0),
                            c(((i * 37) % 200) as f32 + 20.0),
                        ])
                    });
                    let path = dir.join(format!("photo{i:04}.jpg"));
                    let mut out =
                        std::io::BufWriter::new(std::fs::File::create(&path).expect("creating"));
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                        .encode_image(&img)
                        .expect("encoding");
                }
            });
        }
    });
}
