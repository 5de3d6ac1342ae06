//! The live index: changes made on disk reach the index without a manual rescan.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Sd, write};

/// What is on disk below `root`, independently of the product: relative path → (kind, size).
fn on_disk(root: &Path) -> BTreeMap<Vec<u8>, (String, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_encoded_bytes()
                .to_vec();
            if md.is_dir() {
                out.insert(rel, ("dir".to_owned(), 0));
                stack.push(e.path());
            } else if md.is_file() {
                out.insert(rel, ("file".to_owned(), md.len()));
            }
        }
    }
    out
}

fn indexed(sd: &Sd, root: &Path) -> BTreeMap<Vec<u8>, (String, u64)> {
    sd.tree("W", root)
        .into_iter()
        .map(|(k, (_, kind, size, _))| (k, (kind.clone(), if kind == "dir" { 0 } else { size })))
        .collect()
}

/// Waits (bounded) until the index equals the disk.
fn settles(sd: &Sd, root: &Path, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (want, got) = (on_disk(root), indexed(sd, root));
        if want == got {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {step}: index never matched the disk\nindex-only: {:?}\ndisk-only: {:?}",
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>(),
            want.keys()
                .filter(|k| !got.contains_key(*k))
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn id_of(sd: &Sd, root: &Path, rel: &str) -> i64 {
    sd.tree("W", root)[rel.as_bytes()].0
}

#[test]
fn edits_on_disk_reach_the_index() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("live");
    write(&root.join("docs/a.txt"), b"a");
    write(&root.join("docs/sub/b.txt"), b"bb");
    write(&root.join("other/c.txt"), b"ccc");
    sd.ok(["library", "create", "W"]);
    sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sd.json(["location", "info", "1"])["watcher"] != "live" {
        assert!(Instant::now() < deadline, "the watcher never started");
        std::thread::sleep(Duration::from_millis(50));
    }

    write(&root.join("docs/new.txt"), b"new file");
    settles(&sd, &root, "create");
    let b = id_of(&sd, &root, "docs/sub/b.txt");
    std::fs::rename(
        root.join("docs/sub/b.txt"),
        root.join("docs/sub/renamed.txt"),
    )
    .unwrap();
    settles(&sd, &root, "rename");
    assert_eq!(
        id_of(&sd, &root, "docs/sub/renamed.txt"),
        b,
        "a rename keeps the entry"
    );
    std::fs::rename(
        root.join("docs/sub/renamed.txt"),
        root.join("other/moved.txt"),
    )
    .unwrap();
    settles(&sd, &root, "move across directories");
    assert_eq!(
        id_of(&sd, &root, "other/moved.txt"),
        b,
        "a move keeps the entry"
    );
    let sub = id_of(&sd, &root, "docs/sub");
    std::fs::rename(root.join("docs/sub"), root.join("other/sub-moved")).unwrap();
    settles(&sd, &root, "directory move");
    assert_eq!(id_of(&sd, &root, "other/sub-moved"), sub);
    write(&root.join("docs/a.txt"), b"grown content");
    settles(&sd, &root, "modify");
    std::fs::remove_file(root.join("other/c.txt")).unwrap();
    std::fs::remove_dir_all(root.join("docs")).unwrap();
    settles(&sd, &root, "deletes");
    // Rules still apply to what the watcher sees.
    write(&root.join(".DS_Store"), b"junk");
    write(&root.join("kept.txt"), b"k");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sd.tree("W", &root).contains_key(b"kept.txt".as_slice()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!sd.tree("W", &root).contains_key(b".DS_Store".as_slice()));
    let totals = sd.json(["location", "info", "1"]);
    assert_eq!(totals["files"], 2, "recursive totals follow: {totals}");
}

#[test]
fn a_burst_of_ten_thousand_files_is_absorbed() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("burst");
    write(&root.join("seed.txt"), b"s");
    sd.ok(["library", "create", "W"]);
    sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    while sd.json(["location", "info", "1"])["watcher"] != "live" {
        std::thread::sleep(Duration::from_millis(50));
    }
    for d in 0..10 {
        let dir = root.join(format!("batch {d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..1000 {
            std::fs::write(dir.join(format!("f{i}.txt")), b"x").unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = sd.json(["location", "info", "1"]);
        if info["files"] == 10_001 && info["state"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "burst not absorbed: {info}");
        std::thread::sleep(Duration::from_millis(200));
    }
    settles(&sd, &root, "burst");
}

#[test]
fn overflow_falls_back_to_a_full_rescan_and_restart_catches_up() {
    let mut sd = Sd::new();
    // Every watcher event is treated as a kernel queue overflow.
    sd.env("SPACEDRIVE_DEBUG_WATCH_OVERFLOW", "1");
    let root = sd.tmp.path().join("of");
    write(&root.join("a/one.txt"), b"1");
    sd.ok(["library", "create", "W"]);
    sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    while sd.json(["location", "info", "1"])["watcher"] != "live" {
        std::thread::sleep(Duration::from_millis(50));
    }
    write(&root.join("a/deep/two.txt"), b"22");
    settles(&sd, &root, "change under overflow");
    let jobs = sd.json(["job", "list"]);
    let last = &jobs[0];
    assert!(
        last["spec"]["params"]["subtrees"].is_null(),
        "an overflow rescans the whole location: {last}"
    );

    // Changes made while no daemon runs are found when it starts again.
    sd.ok(["stop"]);
    sd.clear_env();
    write(&root.join("while-down.txt"), b"offline edit");
    std::fs::remove_file(root.join("a/one.txt")).unwrap();
    settles(&sd, &root, "restart");
}

#[test]
fn running_out_of_watches_marks_the_location_and_rescans_it() {
    let mut sd = Sd::new();
    // Setting up a watch fails as when the inotify watch limit is used up.
    sd.env("SPACEDRIVE_DEBUG_WATCH_LIMIT", "1");
    let root = sd.tmp.path().join("limited");
    write(&root.join("a.txt"), b"a");
    sd.ok(["library", "create", "W"]);
    let add = sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    let first_job = add["job"]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = sd.json(["location", "info", "1"]);
        if info["watcher"].as_str().unwrap().starts_with("degraded") {
            break info;
        }
        assert!(Instant::now() < deadline, "never marked degraded: {info}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        info["watcher"]
            .as_str()
            .unwrap()
            .contains("inotify watch limit"),
        "{info}"
    );
    // Marked, and rescanned rather than left to drift.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = sd.json(["job", "list"]);
        let rescans: Vec<_> = jobs
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["id"].as_i64().unwrap() > first_job && j["state"] == "completed")
            .collect();
        if !rescans.is_empty() {
            assert!(
                rescans[0]["spec"]["params"]["subtrees"].is_null(),
                "a full rescan"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rescan after the watch failed: {jobs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
