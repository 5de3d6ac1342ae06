//! Content identity, duplicates, file info and verify.

use std::path::Path;
use std::process::Command;

use super::{Sd, corpus_with_stats, json_path, write};

/// What `dupes_truth.py` (an independent SHA-256 walk) finds: the counts, and each group as the
/// sorted hex of every name in it relative to `root`.
struct Truth {
    counts: (u64, u64, u64, u64),
    groups: Vec<Vec<String>>,
}

fn truth(root: &Path) -> Truth {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dupes_truth.py");
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("truth JSON");
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing"));
    Truth {
        counts: (
            n("dup_groups"),
            n("files_in_groups"),
            n("redundant"),
            n("redundant_bytes"),
        ),
        groups: serde_json::from_value(v["groups"].clone()).expect("groups"),
    }
}

/// A report's groups in the truth's form: every name (files and hard links) as hex of the path
/// relative to `root`, sorted.
fn named_groups(r: &serde_json::Value, root: &Path) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut names: Vec<String> = ["files", "hard_links"]
                .iter()
                .flat_map(|k| g[*k].as_array().unwrap())
                .map(|p| {
                    let rel = json_path(p);
                    let rel = rel.strip_prefix(root).expect("under the root");
                    rel.as_os_str()
                        .as_encoded_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                })
                .collect();
            names.sort();
            names
        })
        .collect();
    groups.sort();
    groups
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
    let (root, planted) = corpus_with_stats(sd.tmp.path(), 20000);
    // Near-duplicates: same size and same sampled bytes (so the same cas_id), different middle.
    // Calling them copies would make the groups below differ from the truth.
    assert!(
        planted.sampled_near_dup_groups > 0,
        "the corpus has near-duplicates a sampled hash cannot tell apart: {planted:?}"
    );
    let truth = truth(&root);
    let expected = truth.counts;
    assert!(
        expected.0 > 100,
        "the corpus has duplicate groups: {expected:?}"
    );
    assert!(expected.2 >= planted.exact_dup_copies as u64);

    // Any path, not indexed: no library is created.
    let cold = sd.json(["dupes".as_ref(), root.as_os_str()]);
    assert_eq!(cold["source"], "path");
    assert_eq!(summary(&cold), expected);
    assert_eq!(sd.json(["library", "list"]).as_array().unwrap().len(), 0);
    // Same groups, name for name (hard links included), not just the same counts.
    assert!(
        named_groups(&cold, &root) == truth.groups,
        "dupes on the path differs from the ground truth's groups"
    );

    // The indexed library (no rules, so it sees every file the truth sees).
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
    assert!(
        named_groups(&lib, &root) == truth.groups,
        "dupes from the index differs from the ground truth's groups"
    );
    // Groups come sorted by wasted bytes.
    let wasted: Vec<u64> = lib["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["wasted"].as_u64().unwrap())
        .collect();
    assert!(wasted.windows(2).all(|w| w[0] >= w[1]));
    // Groups over 100 KiB were confirmed by their full hash.
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

/// 300 KiB of bytes that differ from file to file only where `mark` says: at an offset the
/// sampled cas_id (BRIEF §3) never reads, so every variant has the same size and cas_id.
fn near_duplicate(mark: u8) -> Vec<u8> {
    let size = 300 * 1024;
    let mut b: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    // Sampled: [0, 8192), 10,240 bytes at 8192 + i·((size − 16384) / 4), the last 8192.
    let step = (size - 16384) / 4;
    let middle = 8192 + 10240 + 1000;
    assert!(middle < 8192 + step, "between the first and second samples");
    b[middle] = mark;
    b
}

/// Issue 10, item 3: files with the same size and sampled cas_id but different bytes are never
/// one content — not in `file info`'s copies, not for `--content` tags, favourites and notes, not
/// in search by those, however the files arrive (other locations, later rescans).
#[test]
fn near_duplicates_are_never_copies() {
    let sd = Sd::new();
    let one = sd.tmp.path().join("one");
    let two = sd.tmp.path().join("two");
    let orig = one.join("orig.bin");
    let copy = two.join("copy.bin");
    let near1 = two.join("near1.bin");
    let near2 = two.join("near2.bin");
    write(&orig, &near_duplicate(0));
    write(&copy, &near_duplicate(0));
    write(&near1, &near_duplicate(1));
    write(&near2, &near_duplicate(2));
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    // The lone original is indexed first; its near-duplicates arrive in another location.
    for loc in [&one, &two] {
        sd.ok([
            "location",
            "add",
            &s(loc),
            "--mode",
            "content",
            "--no-watch",
        ]);
    }
    let info = |p: &Path| sd.json(["file", "info", &s(p)]);
    let paths = |v: &serde_json::Value| -> Vec<String> {
        let mut out: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        out.sort();
        out
    };
    let o = info(&orig);
    let n1 = info(&near1);
    assert_eq!(
        o["content"]["cas_id"], n1["content"]["cas_id"],
        "same sampled id"
    );
    assert_ne!(o["content"]["integrity"], n1["content"]["integrity"]);
    assert_eq!(paths(&o["content"]["other_copies"]), vec![s(&copy)], "{o}");
    assert_eq!(o["content"]["copies"], 2);
    assert_eq!(
        paths(&o["content"]["near_duplicates"]),
        vec![s(&near1), s(&near2)],
        "{o}"
    );
    assert_eq!(
        paths(&n1["content"]["other_copies"]),
        Vec::<String>::new(),
        "{n1}"
    );
    let text = sd.ok(["file", "info", &s(&orig)]);
    assert!(text.contains("1 other copies"), "{text}");
    assert!(text.contains("2 near-duplicates"), "{text}");

    // Acting on "every copy" reaches exactly the identical files.
    sd.ok(["tag", "create", "Orig"]);
    sd.ok(["tag", "apply", "Orig", "--content", &s(&orig)]);
    sd.ok(["favorite", "--content", &s(&orig)]);
    sd.ok(["note", &s(&orig), "the original bytes", "--content"]);
    for p in [&orig, &copy] {
        let a = &info(p)["attached"];
        assert_eq!(
            a["content_tags"],
            serde_json::json!(["Orig"]),
            "{}: {a}",
            p.display()
        );
        assert_eq!(a["favorite"], true);
        assert_eq!(a["content_note"], "the original bytes");
    }
    for p in [&near1, &near2] {
        let a = &info(p)["attached"];
        assert_eq!(
            a["content_tags"],
            serde_json::json!([]),
            "{}: {a}",
            p.display()
        );
        assert_eq!(a["favorite"], false);
        assert_eq!(a["content_note"], serde_json::Value::Null);
    }
    let found = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["search", "--limit", "100"];
        all.extend_from_slice(args);
        let r = sd.json(all);
        let mut v: Vec<String> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["path"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let expected = {
        let mut v = vec![s(&orig), s(&copy)];
        v.sort();
        v
    };
    assert_eq!(found(&["--tag", "Orig"]), expected);
    assert_eq!(found(&["--favorite"]), expected);

    // A near-duplicate that arrives later is not a copy either; an identical file is one.
    let near3 = one.join("near3.bin");
    let copy2 = one.join("copy2.bin");
    write(&near3, &near_duplicate(1));
    write(&copy2, &near_duplicate(0));
    sd.ok(["location", "rescan", "1"]);
    let n3 = info(&near3);
    assert_eq!(
        paths(&n3["content"]["other_copies"]),
        vec![s(&near1)],
        "{n3}"
    );
    assert_eq!(
        n3["attached"]["content_tags"],
        serde_json::json!([]),
        "{n3}"
    );
    let c2 = info(&copy2);
    assert_eq!(
        c2["attached"]["content_tags"],
        serde_json::json!(["Orig"]),
        "{c2}"
    );
    let mut expected = vec![s(&orig), s(&copy), s(&copy2)];
    expected.sort();
    assert_eq!(found(&["--tag", "Orig"]), expected);
    // `dupes` agrees: two groups, never one spanning different bytes.
    let d = sd.json(["dupes"]);
    let groups: Vec<Vec<String>> = d["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| paths(&g["files"]))
        .collect();
    assert_eq!(groups.len(), 2, "{d}");
    assert!(groups.contains(&expected), "{d}");
    let mut near = vec![s(&near1), s(&near3)];
    near.sort();
    assert!(groups.contains(&near), "{d}");
}
