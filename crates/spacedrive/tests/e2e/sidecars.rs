//! Sidecars of deep locations: thumbnails (formats, EXIF orientation, limits, hostile files),
//! media metadata and its search filters, extracted text and `search --content`, one sidecar
//! per content, collection when the last copy goes, SIGKILL mid-job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Sd, integrity, json_path, wait_until, write};

const LIMIT: Duration = Duration::from_secs(90);

/// Waits until the library's sidecar job has nothing left: no job running or queued, nothing
/// waiting. Returns the status.
fn settled(sd: &Sd) -> Value {
    let mut last = Value::Null;
    wait_until("the sidecar job to finish", LIMIT, || {
        last = sd.json(["sidecar", "status"]);
        last["job"].is_null() && last["queued"] == 0
    });
    last
}

fn info(sd: &Sd, p: &Path) -> Value {
    sd.json(["file".as_ref(), "info".as_ref(), p.as_os_str()])
}

/// `file info`'s sidecar of `kind`/`variant`.
fn sidecar<'a>(info: &'a Value, kind: &str, variant: &str) -> &'a Value {
    info["content"]["sidecars"]
        .as_array()
        .unwrap_or_else(|| panic!("no sidecars: {info}"))
        .iter()
        .find(|s| s["kind"] == kind && s["variant"] == variant)
        .unwrap_or_else(|| panic!("no {kind}/{variant}: {info}"))
}

/// The decoded thumbnail at `file info`'s path for `variant`.
fn thumb(info: &Value, variant: &str) -> image::RgbImage {
    let s = sidecar(info, "thumbnail", variant);
    assert_eq!(s["status"], "ready", "{s}");
    let p = json_path(&s["path"]);
    image::load_from_memory_with_format(&super::read_sidecar(&p), image::ImageFormat::WebP)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

/// A JPEG whose left half is red and right half blue, so where red ends up after the EXIF
/// orientation is applied says which way it was turned.
fn halves(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            image::Rgb([220, 20, 20])
        } else {
            image::Rgb([20, 20, 220])
        }
    });
    encode(
        &image::DynamicImage::ImageRgb8(img),
        image::ImageFormat::Jpeg,
    )
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A minimal EXIF APP1 segment written by hand (little-endian TIFF): IFD0 with Orientation,
/// Make and Model, and an Exif IFD with DateTimeOriginal. Strings are padded past 4 bytes so
/// each lives at an offset (TIFF keeps values of 4 bytes or less inside the entry).
fn exif_app1(orientation: u16, make: &str, model: &str, taken: &str) -> Vec<u8> {
    let ascii = |s: &str| {
        let mut v = [s.as_bytes(), &[0]].concat();
        v.resize(v.len().max(5), 0);
        v
    };
    let (make, model, taken) = (ascii(make), ascii(model), ascii(taken));
    // Layout: header (8) | IFD0: 4 entries (2 + 48 + 4) | Exif IFD: 1 entry (2 + 12 + 4) | data.
    let ifd0 = 8u32;
    let exif_ifd = ifd0 + 2 + 4 * 12 + 4;
    let data = exif_ifd + 2 + 12 + 4;
    let (make_at, model_at) = (data, data + make.len() as u32);
    let taken_at = model_at + model.len() as u32;
    let mut t = b"II*\0".to_vec();
    t.extend(ifd0.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, ty: u16, count: u32, value: u32| {
        t.extend(tag.to_le_bytes());
        t.extend(ty.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value.to_le_bytes());
    };
    t.extend(4u16.to_le_bytes());
    entry(&mut t, 0x010f, 2, make.len() as u32, make_at);
    entry(&mut t, 0x0110, 2, model.len() as u32, model_at);
    entry(&mut t, 0x0112, 3, 1, u32::from(orientation));
    entry(&mut t, 0x8769, 4, 1, exif_ifd);
    t.extend(0u32.to_le_bytes());
    t.extend(1u16.to_le_bytes());
    entry(&mut t, 0x9003, 2, taken.len() as u32, taken_at);
    t.extend(0u32.to_le_bytes());
    t.extend(make);
    t.extend(model);
    t.extend(taken);
    let mut seg = vec![0xff, 0xe1];
    seg.extend(((t.len() + 8) as u16).to_be_bytes());
    seg.extend(b"Exif\0\0");
    seg.extend(t);
    seg
}

fn with_exif(jpeg: &[u8], app1: &[u8]) -> Vec<u8> {
    [&jpeg[..2], app1, &jpeg[2..]].concat()
}

fn is_red(p: &image::Rgb<u8>) -> bool {
    p[0] > 150 && p[2] < 100
}

/// The files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.map(|e| e.unwrap()) {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn deep_location_makes_thumbnails_and_metadata_for_every_format() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("pics");
    let six = with_exif(
        &halves(800, 600),
        &exif_app1(6, "Canon", "EOS R5", "2021:06:15 14:30:00"),
    );
    let eight = with_exif(
        &halves(600, 400),
        &exif_app1(8, "NIKON CORPORATION", "Z 6", "2019:01:02 08:00:00"),
    );
    write(&root.join("rotated-6.jpg"), &six);
    write(&root.join("rotated-8.jpg"), &eight);
    let gradient = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(300, 200, |x, y| {
        image::Rgba([x as u8, y as u8, 90, 200])
    }));
    let rgb = image::DynamicImage::ImageRgb8(gradient.to_rgb8());
    write(
        &root.join("a.png"),
        &encode(&gradient, image::ImageFormat::Png),
    );
    write(&root.join("b.gif"), &encode(&rgb, image::ImageFormat::Gif));
    write(&root.join("c.bmp"), &encode(&rgb, image::ImageFormat::Bmp));
    write(
        &root.join("d.tiff"),
        &encode(&rgb, image::ImageFormat::Tiff),
    );
    write(
        &root.join("e.webp"),
        &encode(&gradient, image::ImageFormat::WebP),
    );
    // A 1×20000 strip: thumbnails keep its shape.
    let strip = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        1,
        20_000,
        image::Rgb([0, 200, 0]),
    ));
    write(
        &root.join("strip.png"),
        &encode(&strip, image::ImageFormat::Png),
    );
    // Hostile: a truncated JPEG and a PNG whose header claims 100,000 × 100,000 pixels.
    let whole = halves(1200, 900);
    write(&root.join("truncated.jpg"), &whole[..whole.len() / 2]);
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0]);
    bomb.extend(crc32(&bomb[12..]).to_be_bytes());
    bomb.extend([0u8; 64]);
    write(&root.join("bomb.png"), &bomb);
    // Ten copies of one photo: one set of sidecars.
    let photo = halves(640, 480);
    for i in 0..10 {
        write(&root.join(format!("copies/{i}/photo.jpg")), &photo);
    }

    sd.ok(["library", "create", "Pics"]);
    let add = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "deep".as_ref(),
        "--no-watch".as_ref(),
    ]);
    assert_eq!(add["job"]["state"], "completed", "{add}");
    let status = settled(&sd);
    assert_eq!(
        status["tools"]["pdftoppm"].is_null(),
        which("pdftoppm").is_none()
    );

    // The sidecar job ran as a job: completed, not failed by the hostile files.
    let jobs = sd.json(["job", "list"]);
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "sidecar")
        .expect("a sidecar job");
    assert_eq!(job["state"], "completed", "{job}");
    let p = &job["progress"];
    assert!(p["failed"].as_u64().unwrap() >= 2, "{p}");

    // Orientation 6: turned a quarter clockwise — the left (red) half is now on top.
    let i6 = info(&sd, &root.join("rotated-6.jpg"));
    let t = thumb(&i6, "grid-256");
    assert_eq!(t.dimensions(), (192, 256));
    assert!(is_red(t.get_pixel(96, 40)) && !is_red(t.get_pixel(96, 216)));
    let big = thumb(&i6, "detail-1024");
    assert_eq!(big.dimensions(), (600, 800), "never enlarged");
    assert_eq!(thumb(&i6, "grid-512").dimensions(), (384, 512));
    let m = &i6["content"]["media"];
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(600), Some(800))
    );
    assert_eq!(m["make"], "Canon");
    assert_eq!(m["model"], "EOS R5");
    assert_eq!(m["orientation"], 6);
    assert_eq!(m["taken_at"], 1_623_767_400_000_000_000i64, "TZ=UTC");
    // Orientation 8: a quarter counter-clockwise — red at the bottom.
    let t = thumb(&info(&sd, &root.join("rotated-8.jpg")), "grid-256");
    assert_eq!(t.dimensions(), (171, 256));
    assert!(!is_red(t.get_pixel(85, 40)) && is_red(t.get_pixel(85, 216)));

    for name in ["a.png", "b.gif", "c.bmp", "d.tiff", "e.webp"] {
        let i = info(&sd, &root.join(name));
        assert_eq!(thumb(&i, "grid-256").dimensions(), (256, 171), "{name}");
        assert_eq!(thumb(&i, "detail-1024").dimensions(), (300, 200), "{name}");
        assert_eq!(i["content"]["media"]["width"], 300, "{name}");
    }
    let s = info(&sd, &root.join("strip.png"));
    assert_eq!(thumb(&s, "grid-256").dimensions(), (1, 256));
    assert_eq!(thumb(&s, "detail-1024").dimensions(), (1, 1024));

    for (name, why) in [("truncated.jpg", ""), ("bomb.png", "limit")] {
        let i = info(&sd, &root.join(name));
        let t = sidecar(&i, "thumbnail", "grid-256");
        assert_eq!(t["status"], "failed", "{name}: {t}");
        let reason = t["reason"].as_str().unwrap();
        assert!(
            !reason.is_empty() && reason.contains(why),
            "{name}: {reason}"
        );
        assert!(t["path"].is_null());
    }
    // The text view lists the sidecars with their paths.
    let shown = sd.ok([
        "file".as_ref(),
        "info".as_ref(),
        root.join("rotated-6.jpg").as_os_str(),
    ]);
    assert!(shown.contains("thumbnail/grid-256") && shown.contains("/content/"));
    assert!(
        shown.contains("600×800") && shown.contains("Canon EOS R5"),
        "{shown}"
    );

    // Media filters, alone and with the other filters.
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["search"];
        all.extend(args);
        let r = sd.json(all);
        let mut v: Vec<String> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&["--camera", "canon"]), ["rotated-6.jpg"]);
    assert_eq!(names(&["--camera", "Z 6"]), ["rotated-8.jpg"]);
    assert_eq!(names(&["--taken-after", "2020-01-01"]), ["rotated-6.jpg"]);
    assert_eq!(
        names(&["--taken-after", "2018", "--taken-before", "2020"]),
        ["rotated-8.jpg"]
    );
    // The truncated JPEG's header is whole (1200×900); the bomb's 100,000 px is not believed.
    assert_eq!(
        names(&["--min-height", "700"]),
        ["rotated-6.jpg", "strip.png", "truncated.jpg"]
    );
    assert_eq!(names(&["--min-width", "5000"]), Vec::<String>::new());
    assert_eq!(
        names(&["rotated", "--min-width", "400"]),
        ["rotated-6.jpg", "rotated-8.jpg"]
    );
    assert_eq!(
        names(&["--min-width", "600", "--ext", "png"]),
        Vec::<String>::new()
    );

    // Ten copies, one set of sidecars.
    let lib = sd.data.join("libraries/Pics.sdlibrary");
    let paths: Vec<PathBuf> = (0..10)
        .map(|i| {
            let i = info(&sd, &root.join(format!("copies/{i}/photo.jpg")));
            json_path(&sidecar(&i, "thumbnail", "grid-256")["path"])
        })
        .collect();
    assert!(paths.iter().all(|p| *p == paths[0]), "{paths:?}");
    assert!(paths[0].starts_with(super::sidecar_dir(&lib).join("content")));
    let before = files_under(&super::sidecar_dir(&lib).join("content")).len();
    // Nothing was written next to the pictures.
    let beside: Vec<PathBuf> = files_under(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "webp") && !p.ends_with("e.webp"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    // Every copy deleted: the next scan's sidecar job collects them.
    std::fs::remove_dir_all(root.join("copies")).unwrap();
    let r = sd.json(["location", "rescan", "1"]);
    assert_eq!(r["job"]["progress"]["deleted"], 21, "{r}");
    settled(&sd);
    assert!(
        !paths[0].exists(),
        "the thumbnail of a content no file has is removed"
    );
    assert!(!paths[0].parent().unwrap().parent().unwrap().exists());
    assert_eq!(
        files_under(&super::sidecar_dir(&lib).join("content")).len(),
        before - 3
    );
    let c = super::open_db(&lib.join("library.db"));
    let orphans: i64 = c
        .query_row(
            "SELECT count(*) FROM sidecars s WHERE NOT EXISTS
               (SELECT 1 FROM entry_content ec WHERE ec.content_id = s.content_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    drop(c);
    sd.ok(["stop"]);
    assert_eq!(integrity(&lib.join("library.db")), "ok");
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A minimal valid one-page PDF showing `text`, written by hand.
fn pdf_with(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn content_search_finds_words_in_text_markdown_and_pdf() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("docs");
    write(
        &root.join("notes.txt"),
        b"Meeting notes.\nThe quarterly revenue grew by 12% this year.\n",
    );
    write(
        &root.join("report.md"),
        "# Résumé\n\nOur **quarterly revenue** is up; see the appendix.\n".as_bytes(),
    );
    write(
        &root.join("finance/q3.pdf"),
        &pdf_with("Quarterly revenue report for Q3"),
    );
    write(
        &root.join("page.html"),
        b"<html><body><script>var quarterly = 1;</script><p>revenue only</p></body></html>",
    );
    write(
        &root.join("other.txt"),
        b"revenue, then quarterly: not the phrase",
    );
    write(
        &root.join("src/main.rs"),
        b"fn main() { let ebitda_margin = 3; }\n",
    );
    sd.ok(["library", "create", "Docs"]);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "deep".as_ref(),
        "--no-watch".as_ref(),
    ]);
    settled(&sd);
    let search = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["search"];
        all.extend(args);
        let r = sd.json(all);
        let mut v: Vec<(String, String)> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["name"].as_str().unwrap().to_owned(),
                    h["snippet"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let hits = search(&["--content", "\"quarterly revenue\""]);
    let names: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(names, ["notes.txt", "q3.pdf", "report.md"], "{hits:?}");
    for (name, snippet) in &hits {
        assert!(
            snippet.to_lowercase().contains("[quarterly revenue]"),
            "{name}: {snippet}"
        );
    }
    // Words in any order (not a phrase); the script's word is not the page's text.
    let words: Vec<String> = search(&["--content", "revenue quarterly"])
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(words, ["notes.txt", "other.txt", "q3.pdf", "report.md"]);
    // Combined with the other filters: extension, name, kind.
    assert_eq!(
        search(&["--content", "quarterly revenue", "--ext", "pdf"]).len(),
        1
    );
    assert_eq!(search(&["notes", "--content", "quarterly"]).len(), 1);
    assert_eq!(search(&["--content", "résumé", "--kind", "text"]).len(), 1);
    assert_eq!(search(&["--content", "RESUME"])[0].0, "report.md");
    let code = search(&["--content", "ebitda_margin", "--kind", "code"]);
    assert_eq!(code.len(), 1);
    assert_eq!(code[0].0, "main.rs");
    // What a user types is never query syntax.
    assert!(search(&["--content", "revenue OR NOT \" * ("]).is_empty());
    let text = sd.ok([
        "search",
        "--content",
        "\"quarterly revenue\"",
        "--ext",
        "md",
    ]);
    assert!(
        text.contains("report.md") && text.contains("[quarterly revenue]"),
        "{text}"
    );
    // The PDF's text is a sidecar of its content.
    let i = info(&sd, &root.join("finance/q3.pdf"));
    let t = sidecar(&i, "text", "plain");
    assert_eq!(t["status"], "ready");
    assert!(t["size"].as_u64().unwrap() > 20);
}

#[test]
fn thumb_on_demand_and_regenerate() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("c");
    write(&root.join("p.jpg"), &halves(1000, 500));
    write(&root.join("notes.txt"), b"just words");
    sd.ok(["library", "create", "C"]);
    // A content location makes no sidecars in the background, but `thumb` makes one on demand.
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
        "--no-watch".as_ref(),
    ]);
    let first = sd.json([
        "thumb".as_ref(),
        root.join("p.jpg").as_os_str(),
        "--size".as_ref(),
        "512".as_ref(),
    ]);
    assert_eq!(first["generated"], true);
    assert_eq!(first["variant"], "grid-512");
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(512), Some(256))
    );
    let path = json_path(&first["path"]);
    assert!(path.is_file());
    let printed = sd.ok([
        "thumb".as_ref(),
        root.join("p.jpg").as_os_str(),
        "--size".as_ref(),
        "300".as_ref(),
    ]);
    assert_eq!(PathBuf::from(printed.trim()), path, "the next variant up");
    let again = sd.json([
        "thumb".as_ref(),
        root.join("p.jpg").as_os_str(),
        "--size".as_ref(),
        "512".as_ref(),
    ]);
    assert_eq!(again["generated"], false);
    let e = sd.fails(["thumb".as_ref(), root.join("notes.txt").as_os_str()]);
    assert!(
        e["message"].as_str().unwrap().contains("no thumbnail"),
        "{e}"
    );

    // A deep location: regenerate remakes the thumbnails (a new job), the rows stay one each.
    let deep = sd.tmp.path().join("d");
    write(&deep.join("q.jpg"), &halves(300, 300));
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        deep.as_os_str(),
        "--mode".as_ref(),
        "deep".as_ref(),
        "--no-watch".as_ref(),
    ]);
    settled(&sd);
    let r = sd.json(["sidecar", "regenerate", "--kind", "thumbnail"]);
    assert!(r["marked"].as_u64().unwrap() >= 3, "{r}");
    let job = r["job"].as_i64().expect("a job");
    let done = sd.wait_job("C", job);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["progress"]["thumbnails"], 3, "{done}");
    // The content location's thumbnails are outdated too: remade when next asked for.
    let s = settled(&sd);
    assert_eq!(s["outdated"], 3, "{s}");
    let again = sd.json(["thumb".as_ref(), root.join("p.jpg").as_os_str()]);
    assert_eq!(again["generated"], true);
    let s = sd.json(["sidecar", "status"]);
    assert_eq!(s["outdated"], 0, "its three variants remade: {s}");
    let counts = s["counts"].as_array().unwrap();
    let ready = counts
        .iter()
        .find(|c| c["kind"] == "thumbnail" && c["status"] == "ready")
        .unwrap();
    assert_eq!(ready["sidecars"], 6, "two contents × three variants: {s}");
    assert!(
        sd.fails(["sidecar", "regenerate", "--kind", "nope"])["message"]
            .as_str()
            .unwrap()
            .contains("unknown sidecar kind")
    );
    let text = sd.ok(["sidecar", "status"]);
    assert!(
        text.contains("thumbnail") && text.contains("ffmpeg"),
        "{text}"
    );
}

#[test]
fn sigkill_mid_sidecar_job_resumes_without_duplicates_or_half_files() {
    let mut sd = Sd::new();
    let root = sd.tmp.path().join("many");
    for i in 0..60u32 {
        // Distinct pictures: each its own content.
        let img = image::RgbImage::from_fn(400, 300, |x, y| {
            image::Rgb([(x + i) as u8, (y * 2) as u8, (i * 4) as u8])
        });
        write(
            &root.join(format!("{}/img{i}.jpg", i % 6)),
            &encode(
                &image::DynamicImage::ImageRgb8(img),
                image::ImageFormat::Jpeg,
            ),
        );
    }
    // One content per commit, 40 ms apart, so the kill lands mid-job.
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "40");
    sd.ok(["library", "create", "K"]);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "deep".as_ref(),
        "--no-watch".as_ref(),
    ]);
    let job_of = |sd: &Sd| -> Option<Value> {
        sd.json(["job", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == "sidecar")
            .cloned()
    };
    wait_until("10 contents done by the sidecar job", LIMIT, || {
        job_of(&sd).is_some_and(|j| j["progress"]["done"].as_u64().unwrap_or(0) >= 10)
    });
    let job = job_of(&sd).unwrap()["id"].as_i64().unwrap();
    sd.kill_daemon(LIMIT);
    let lib = sd.data.join("libraries/K.sdlibrary");
    let db = lib.join("library.db");
    assert_eq!(integrity(&db), "ok");
    let done_at_kill: i64 = super::open_db(&db)
        .query_row("SELECT count(DISTINCT content_id) FROM sidecars", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        (10..60).contains(&done_at_kill),
        "killed mid-job: {done_at_kill}"
    );

    sd.clear_env();
    let done = sd.wait_job("K", job);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["resumes"], 1, "{done}");
    assert!(
        done["progress"]["resumed_after"].as_u64().unwrap() >= 10,
        "{done}"
    );
    settled(&sd);
    let c = super::open_db(&db);
    let (rows, contents): (i64, i64) = c
        .query_row(
            "SELECT count(*), count(DISTINCT content_id) FROM sidecars WHERE kind = 'thumbnail' AND status = 'ready'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, contents),
        (180, 60),
        "every content once, three variants each"
    );
    // No half files: no temporaries left, every thumbnail whole.
    let files = files_under(&super::sidecar_dir(&lib).join("content"));
    assert_eq!(files.len(), 180);
    for f in &files {
        image::load_from_memory_with_format(&super::read_sidecar(f), image::ImageFormat::WebP)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert!(files_under(&super::sidecar_dir(&lib).join("tmp")).is_empty());
    sd.ok(["stop"]);
    assert_eq!(integrity(&db), "ok");
}
