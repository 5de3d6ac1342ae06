//! Content identity, duplicates, file info and verify.

use std::path::Path;
use std::process::Command;

use super::{Sd, corpus, write};

/// `truth_dups.py` (shared/bench): groups, files in groups, redundant files, redundant bytes.
fn truth(root: &Path) -> (u64, u64, u64, u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/truth_dups.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(root)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |k: &str| -> u64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .parse()
            .unwrap()
    };
    (
        field("dup_groups"),
        field("files_in_groups"),
        field("redundant"),
        field("redundant_bytes"),
    )
}

fn summary(r: &serde_json::Value) -> (u64, u64, u64, u64) {
    (
        r["groups"].as_array().unwrap().len() as u64,
        r["duplicate_files"].as_u64().unwrap(),
        r["redundant_files"].as_u64().unwrap(),
        r["wasted_bytes"].as_u64().unwrap(),
    )
}

#[test]
fn duplicate_groups_equal_the_ground_truth() {
    let sd = Sd::new();
    let root = corpus(sd.tmp.path(), 20000);
    let expected = truth(&root);
    assert!(
        expected.0 > 100,
        "the corpus has duplicate groups: {expected:?}"
    );

    // Any path, not indexed: no library is created.
    let cold = sd.json(["dupes".as_ref(), root.as_os_str()]);
    assert_eq!(cold["source"], "path");
    assert_eq!(summary(&cold), expected);
    assert_eq!(sd.json(["library", "list"]).as_array().unwrap().len(), 0);

    // The indexed library (no rules, so it sees every file truth_dups sees).
    let r = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
        "--no-default-rules".as_ref(),
        "--no-gitignore".as_ref(),
    ]);
    let p = &r["job"]["progress"];
    assert_eq!(r["job"]["state"], "completed", "{p}");
    assert_eq!(p["content_done"], p["content_total"]);
    assert_eq!(p["errors"], 0);
    assert!(
        p["queued"].as_u64().unwrap() > 0,
        "images and documents are queued for later jobs"
    );
    let lib = sd.json(["dupes"]);
    assert_eq!(lib["source"], "library");
    assert_eq!(summary(&lib), expected);
    // Same groups, not just the same counts.
    let groups = |r: &serde_json::Value| {
        let mut g: Vec<Vec<String>> = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                g["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.to_string())
                    .collect()
            })
            .collect();
        g.sort();
        g
    };
    assert_eq!(groups(&lib), groups(&cold));
    // Groups come sorted by wasted bytes.
    let wasted: Vec<u64> = lib["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["wasted"].as_u64().unwrap())
        .collect();
    assert!(wasted.windows(2).all(|w| w[0] >= w[1]));
    // Near-duplicates (same size, same samples, different middle) exist and were kept apart.
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.with_extension("stats.json")).unwrap())
            .unwrap();
    assert!(stats["samesize_groups"].as_u64().unwrap() > 0);
    assert!(
        lib["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| !g["integrity"].is_null())
    );
}

#[test]
fn content_ids_follow_bytes_not_names_or_times() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("c");
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    write(
        &root.join("a/photo.jpg"),
        &[b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".as_slice(), &big].concat(),
    );
    write(
        &root.join("b/copy of photo.jpg"),
        &[b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".as_slice(), &big].concat(),
    );
    write(&root.join("notes.txt"), b"hello notes");
    write(&root.join("empty.txt"), b"");
    sd.ok(["library", "create", "C"]);
    // No watcher: this test asserts what each rescan re-hashes.
    let r = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
        "--no-watch".as_ref(),
    ]);
    assert_eq!(
        r["job"]["progress"]["content_done"], 3,
        "empty files get no identity: {r}"
    );

    let info = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("a/photo.jpg").as_os_str(),
    ]);
    let c = &info["content"];
    assert_eq!(c["kind"], "image");
    assert_eq!(c["mime"], "image/jpeg");
    assert_eq!(c["copies"], 2);
    assert_eq!(c["cas_id"].as_str().unwrap().len(), 16);
    assert_eq!(
        super::json_path(&c["other_copies"][0]),
        root.join("b/copy of photo.jpg")
    );
    assert!(
        c["integrity"].is_string(),
        "shared large files get an integrity hash"
    );
    assert_eq!(c["queued_for_intelligence"], true);
    let cas = c["cas_id"].clone();
    assert!(
        sd.json([
            "file".as_ref(),
            "info".as_ref(),
            root.join("empty.txt").as_os_str()
        ])["content"]
            .is_null()
    );

    // verify: full-file BLAKE3, and it matches what the index recorded.
    let v = sd.json(["verify".as_ref(), root.join("a/photo.jpg").as_os_str()]);
    assert_eq!(v["matches_index"], true);
    assert_eq!(v["blake3"], c["integrity"]);
    assert_eq!(v["cas_id"], cas);

    // Touching only the mtime re-hashes and finds the same identity.
    let t = std::fs::File::options()
        .write(true)
        .open(root.join("notes.txt"))
        .unwrap();
    t.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000),
    )
    .unwrap();
    drop(t);
    let before = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("notes.txt").as_os_str(),
    ])["content"]["cas_id"]
        .clone();
    let r = sd.json(["location", "rescan", "1"]);
    assert_eq!(
        r["job"]["progress"]["content_done"], 1,
        "only the touched file is re-hashed"
    );
    let after = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("notes.txt").as_os_str(),
    ]);
    assert_eq!(after["content"]["cas_id"], before);

    // Changing bytes (same size) changes the identity; the old copy loses its twin.
    let mut changed = std::fs::read(root.join("b/copy of photo.jpg")).unwrap();
    changed[150_010] ^= 0xff; // inside the third sample, which starts at 8192 + 2·((300011 − 16384) / 4) = 150004
    std::fs::write(root.join("b/copy of photo.jpg"), &changed).unwrap();
    sd.json(["location", "rescan", "1"]);
    let b = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("b/copy of photo.jpg").as_os_str(),
    ]);
    assert_ne!(b["content"]["cas_id"], cas);
    let a = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("a/photo.jpg").as_os_str(),
    ]);
    assert_eq!(a["content"]["copies"], 1);
    assert_eq!(sd.json(["dupes"])["groups"].as_array().unwrap().len(), 0);

    // A move keeps the identity.
    std::fs::rename(root.join("notes.txt"), root.join("a/notes moved.txt")).unwrap();
    let r = sd.json(["location", "rescan", "1"]);
    assert_eq!(r["job"]["progress"]["moved"], 1);
    assert_eq!(
        r["job"]["progress"]["content_done"], 0,
        "moved files are not re-hashed"
    );
    let m = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("a/notes moved.txt").as_os_str(),
    ]);
    assert_eq!(m["content"]["cas_id"], before);
}

#[test]
fn hard_links_and_empty_files_are_not_duplicates() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("h");
    write(&root.join("one.bin"), &vec![7u8; 200_000]);
    std::fs::hard_link(root.join("one.bin"), root.join("link.bin")).unwrap();
    write(&root.join("e1"), b"");
    write(&root.join("e2"), b"");
    let r = sd.json(["dupes".as_ref(), root.as_os_str()]);
    assert_eq!(r["groups"].as_array().unwrap().len(), 0, "{r}");
    write(&root.join("two.bin"), &vec![7u8; 200_000]);
    let r = sd.json(["dupes".as_ref(), root.as_os_str()]);
    let g = &r["groups"][0];
    assert_eq!(g["files"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(g["hard_links"].as_array().unwrap().len(), 1);
    assert_eq!(g["wasted"], 200_000);
    sd.ok(["library", "create", "H"]);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
    ]);
    let l = sd.json(["dupes"]);
    assert_eq!(l["groups"][0]["files"].as_array().unwrap().len(), 2, "{l}");
    assert_eq!(l["wasted_bytes"], 200_000);
}
