//! Indexing, rescans and quick scans against independent counts.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use super::{Sd, corpus, expected_counts, json_path, write};

#[test]
fn corpus_counts_equal_an_independent_walk() {
    let sd = Sd::new();
    let root = corpus(sd.tmp.path(), 5000);
    // The first command on a fresh data folder: starts the daemon, creates a default library.
    let r = sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    assert_eq!(r["job"]["state"], "completed", "{r}");
    let expected = expected_counts(&root, &[]);
    let loc = &r["location"];
    assert_eq!(loc["files"], expected["files"], "files");
    assert_eq!(loc["dirs"], expected["dirs"], "dirs");
    assert_eq!(loc["bytes"], expected["bytes"], "bytes");
    assert_eq!(loc["symlinks"], expected["symlinks"], "symlinks");
    assert_eq!(
        r["job"]["progress"]["ignored"], expected["ignored"],
        "ignored"
    );
    assert_eq!(r["job"]["progress"]["errors"], 0);
    assert!(
        expected["ignored"].as_u64().unwrap() > 0,
        "the corpus has rule-ignored paths"
    );

    // The same tree without rules: everything find sees.
    let sd2 = Sd::new();
    let r2 = sd2.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-default-rules".as_ref(),
        "--no-gitignore".as_ref(),
    ]);
    let all = expected_counts(&root, &["--no-default-rules", "--no-gitignore"]);
    assert_eq!(r2["location"]["files"], all["files"]);
    assert_eq!(r2["location"]["dirs"], all["dirs"]);
    assert_eq!(r2["location"]["bytes"], all["bytes"]);
    assert!(all["files"].as_u64() > expected["files"].as_u64());

    // An unchanged rescan changes nothing.
    let id = loc["id"].to_string();
    let again = sd.json(["location", "rescan", &id]);
    let p = &again["job"]["progress"];
    for k in ["new", "modified", "moved", "deleted"] {
        assert_eq!(p[k], 0, "{k} on an unchanged rescan: {p}");
    }
    assert_eq!(again["location"]["files"], expected["files"]);

    // Directory sizes are recursive: each folder's size is the sum of the files below it.
    let listing = sd.json(["ls".as_ref(), root.as_os_str()]);
    let sum: u64 = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["size"].as_u64().unwrap())
        .sum();
    let own_links: u64 = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "symlink")
        .map(|e| e["size"].as_u64().unwrap())
        .sum();
    assert_eq!(sum - own_links, expected["bytes"].as_u64().unwrap());
}

#[test]
fn rescan_keeps_ids_across_renames_and_moves() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("home");
    write(&root.join("Projects/alpha/notes.txt"), b"alpha notes");
    write(&root.join("Projects/alpha/src/main.rs"), b"fn main() {}");
    write(&root.join("Projects/beta/plan.md"), b"# plan");
    write(&root.join("Inbox/report.pdf"), b"%PDF-1.7 report");
    write(&root.join("Inbox/old.txt"), b"old");
    write(&root.join("edit-me.txt"), b"short");
    sd.ok(["library", "create", "Test"]);
    // No watcher: this test asserts what one rescan reports.
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    let before = sd.tree("Test", &root);
    let id = |t: &std::collections::BTreeMap<Vec<u8>, (i64, String, u64, u64)>, p: &str| {
        t.get(p.as_bytes())
            .unwrap_or_else(|| {
                panic!(
                    "{p} not indexed: {:?}",
                    t.keys()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect::<Vec<_>>()
                )
            })
            .0
    };

    std::fs::rename(
        root.join("Projects/alpha"),
        root.join("Projects/alpha-renamed"),
    )
    .unwrap();
    std::fs::rename(
        root.join("Inbox/report.pdf"),
        root.join("Projects/beta/report.pdf"),
    )
    .unwrap();
    std::fs::rename(root.join("Projects/beta"), root.join("Archive-beta")).unwrap();
    std::fs::remove_file(root.join("Inbox/old.txt")).unwrap();
    write(&root.join("edit-me.txt"), b"much longer content now");
    write(&root.join("Inbox/new.txt"), b"new");

    let r = sd.json(["location", "rescan", "1"]);
    let p = &r["job"]["progress"];
    assert_eq!(p["moved"], 3, "{p}");
    assert_eq!(p["deleted"], 1, "{p}");
    assert_eq!(p["modified"], 1, "{p}");
    assert_eq!(p["new"], 1, "{p}");
    let after = sd.tree("Test", &root);
    assert_eq!(
        id(&after, "Projects/alpha-renamed"),
        id(&before, "Projects/alpha")
    );
    assert_eq!(
        id(&after, "Projects/alpha-renamed/src/main.rs"),
        id(&before, "Projects/alpha/src/main.rs")
    );
    assert_eq!(
        id(&after, "Archive-beta/report.pdf"),
        id(&before, "Inbox/report.pdf")
    );
    assert_eq!(id(&after, "Archive-beta"), id(&before, "Projects/beta"));
    assert!(!after.contains_key(b"Inbox/old.txt".as_slice()));
    assert_eq!(after[b"edit-me.txt".as_slice()].2, 23);
    assert_eq!(id(&after, "edit-me.txt"), id(&before, "edit-me.txt"));

    // The rescanned index equals a clean index of the same tree (ids aside).
    sd.ok(["library", "create", "Clean"]);
    sd.json([
        "-L".as_ref(),
        "Clean".as_ref(),
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
    ]);
    let clean = sd.tree("Clean", &root);
    let strip = |t: &std::collections::BTreeMap<Vec<u8>, (i64, String, u64, u64)>| {
        t.iter()
            .map(|(k, v)| (k.clone(), v.1.clone(), v.2, v.3))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&after), strip(&clean));
}

#[test]
fn odd_names_links_and_cycles_are_recorded_exactly() {
    use std::os::unix::ffi::OsStringExt;
    let sd = Sd::new();
    let root = sd.tmp.path().join("odd");
    write(&root.join("a/b/file.txt"), b"0123456789");
    let raw = std::ffi::OsString::from_vec(b"caf\xe9 menu.txt".to_vec());
    std::fs::write(root.join("a").join(&raw), b"latin-1 name").unwrap();
    let raw_dir = std::ffi::OsString::from_vec(b"bad \x80\xff dir".to_vec());
    std::fs::create_dir(root.join(&raw_dir)).unwrap();
    std::fs::write(root.join(&raw_dir).join("inside.txt"), b"x").unwrap();
    std::os::unix::fs::symlink("../..", root.join("a/b/up")).unwrap(); // cycle
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("a/b/file.txt"), root.join("hard.txt")).unwrap();
    sd.ok(["library", "create", "Odd"]);
    let r = sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    assert_eq!(r["job"]["state"], "completed");
    assert_eq!(r["location"]["files"], 4, "{r}");
    assert_eq!(r["location"]["symlinks"], 2);

    let l = sd.json(["ls".as_ref(), root.as_os_str(), "--recursive".as_ref()]);
    let entries = l["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 9, "{l}");
    let find = |rel: &[u8]| {
        entries
            .iter()
            .find(|e| {
                json_path(&e["path"])
                    .strip_prefix(&root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    == rel
            })
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(rel)))
    };
    // Non-UTF-8 names: raw bytes in, {"bytes": base64} out, exact.
    let menu = find(b"a/caf\xe9 menu.txt");
    assert!(
        menu["name"].is_object(),
        "non-UTF-8 name must be {{\"bytes\"}}: {menu}"
    );
    assert_eq!(menu["size"], 12);
    find(b"bad \x80\xff dir/inside.txt");
    // Symlinks: recorded with their target, never followed.
    let up = find(b"a/b/up");
    assert_eq!(up["kind"], "symlink");
    assert_eq!(up["target"], "../..");
    assert_eq!(find(b"dangling")["target"], "does/not/exist");
    // Hard links: two names, one inode, link count 2.
    let (a, b) = (find(b"a/b/file.txt"), find(b"hard.txt"));
    assert_eq!(a["inode"], b["inode"]);
    assert_eq!(a["nlink"], 2);
    assert_eq!(
        a["inode"].as_u64().unwrap(),
        std::fs::metadata(root.join("hard.txt")).unwrap().ino()
    );

    // A non-UTF-8 path given on the command line resolves to the right entry.
    let l = sd.json(["ls".as_ref(), root.join(&raw_dir).as_os_str()]);
    assert_eq!(l["entries"][0]["name"], "inside.txt");
    assert!(l["entry"]["name"].is_object());
    // Human output shows it lossily instead of failing.
    let text = sd.ok(["ls".as_ref(), root.as_os_str()]);
    assert!(text.contains("bad \u{fffd}\u{fffd} dir/"), "{text}");
}

#[test]
fn quick_scan_touches_no_library() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("q");
    write(&root.join("one.txt"), b"1");
    write(&root.join("sub/two.txt"), b"22");
    write(&root.join("sub/deeper/three.txt"), b"333");
    write(&root.join(".DS_Store"), b"junk");
    let cur = sd.json([
        "index".as_ref(),
        "quick-scan".as_ref(),
        root.as_os_str(),
        "--scope".as_ref(),
        "current".as_ref(),
        "--ephemeral".as_ref(),
    ]);
    assert_eq!(cur["entries"].as_array().unwrap().len(), 2, "{cur}");
    assert_eq!(cur["totals"]["files"], 1);
    assert_eq!(cur["ignored"], 1);
    let rec = sd.json([
        "index".as_ref(),
        "quick-scan".as_ref(),
        root.as_os_str(),
        "--scope".as_ref(),
        "recursive".as_ref(),
        "--ephemeral".as_ref(),
    ]);
    assert_eq!(rec["totals"]["files"], 3);
    assert_eq!(rec["totals"]["dirs"], 2);
    assert_eq!(rec["totals"]["bytes"], 6);
    let sub = rec["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "sub")
        .unwrap();
    assert_eq!(sub["size"], 5);
    assert_eq!(sub["files"], 2);
    let libs = sd.json(["library", "list"]);
    assert_eq!(
        libs.as_array().unwrap().len(),
        0,
        "quick-scan must not create a library: {libs}"
    );
    assert!(!sd.data.join("libraries").read_dir().unwrap().any(|_| true));
}

#[test]
fn rules_are_per_location_and_reported() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("r");
    write(&root.join("keep.txt"), b"k");
    write(&root.join("skip.tmp"), b"s");
    write(&root.join("proj/.gitignore"), b"build/\n*.o\n");
    write(&root.join("proj/build/out.bin"), b"o");
    write(&root.join("proj/main.o"), b"o");
    write(&root.join("proj/main.c"), b"c");
    write(&root.join("Thumbs.db"), b"t");
    sd.ok(["library", "create", "R"]);
    let r = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--ignore".as_ref(),
        "*.tmp".as_ref(),
    ]);
    // keep.txt, proj/.gitignore, proj/main.c
    assert_eq!(r["location"]["files"], 3, "{r}");
    assert_eq!(r["job"]["progress"]["ignored"], 4);
    assert_eq!(r["location"]["rules"]["ignore"][0], "*.tmp");
    let err = sd.fails([
        "location".as_ref(),
        "add".as_ref(),
        root.join("proj").as_os_str(),
    ]);
    assert_eq!(err["code"], "conflict", "{err}");
    let err = sd.fails(["ls".as_ref(), root.join("skip.tmp").as_os_str()]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("not in the index"),
        "{err}"
    );

    // Toggles change later too, and the index follows (a rescan).
    let u = sd.json(["location", "set", "1", "--gitignore", "off", "--ignore", ""]);
    let job = u["rescan_job"].as_i64().expect("a rules change rescans");
    assert_eq!(sd.wait_job("R", job)["state"], "completed");
    // + skip.tmp, proj/build/out.bin, proj/main.o
    assert_eq!(sd.json(["location", "info", "1"])["files"], 6);
    let job = sd.json(["location", "set", "1", "--default-rules", "off"])["rescan_job"]
        .as_i64()
        .unwrap();
    sd.wait_job("R", job);
    assert_eq!(
        sd.json(["location", "info", "1"])["files"],
        7,
        "Thumbs.db counts once system defaults are off"
    );
    let u = sd.json([
        "location", "set", "1", "--watch", "off", "--name", "Renamed",
    ]);
    assert!(u["rescan_job"].is_null(), "no rules changed, no rescan");
    assert_eq!(u["location"]["name"], "Renamed");
    assert_eq!(u["location"]["watch"], false);
    assert_eq!(
        sd.fails(["location", "set", "1", "--ignore", "a["])["code"],
        "invalid"
    );
}

#[test]
fn unreadable_directories_are_counted_not_fatal() {
    // Even root cannot list a directory whose absolute path is longer than PATH_MAX: build one
    // with relative mkdir/chdir steps, so the scan meets a real unreadable directory.
    let sd = Sd::new();
    let root = sd.tmp.path().join("deep");
    write(&root.join("top.txt"), b"top");
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import os,sys\nos.chdir(sys.argv[1])\nfor i in range(20):\n    n='d%02d'%i+'x'*240\n    os.mkdir(n)\n    os.chdir(n)\nopen('deep.txt','w').write('deep')",
        )
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    sd.ok(["library", "create", "Deep"]);
    let r = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    let job = &r["job"];
    assert_eq!(
        job["state"], "completed",
        "an unreadable directory must not fail the job: {job}"
    );
    let errors = job["progress"]["errors"].as_u64().unwrap();
    assert!(errors >= 1, "{job}");
    let sample = &job["progress"]["error_samples"][0];
    assert!(
        sample["message"].as_str().unwrap().contains("too long"),
        "{sample}"
    );
    // What could be read is indexed: top.txt and the readable part of the chain.
    assert_eq!(r["location"]["files"], 1);
    assert!(r["location"]["dirs"].as_u64().unwrap() >= 10);
    // A rescan keeps the entries it cannot re-read, and reports the error again.
    let again = sd.json(["location", "rescan", "1"]);
    assert_eq!(again["job"]["progress"]["deleted"], 0);
    assert_eq!(again["job"]["progress"]["errors"].as_u64().unwrap(), errors);
    assert_eq!(again["location"]["dirs"], r["location"]["dirs"]);
}

/// Issue 10.6: a rules change made while a scan runs is applied, by a full rescan when that scan
/// (which read the old rules) ends.
#[test]
fn a_rules_change_during_a_scan_is_applied_after_it() {
    let mut sd = Sd::new();
    let root = sd.tmp.path().join("r");
    for i in 0..6 {
        write(&root.join(format!("d{i}/f.txt")), b"f");
    }
    write(&root.join("proj/.gitignore"), b"*.o\n");
    write(&root.join("proj/main.o"), b"o");
    write(&root.join("Thumbs.db"), b"t");
    sd.ok(["library", "create", "R"]);
    // Unwatched: no start-up rescan when the daemon starts again below.
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    assert_eq!(sd.json(["location", "info", "1"])["files"], 7);
    // From now on each directory's commit takes 300 ms: the first change's scan is still
    // running when the second change is made.
    sd.ok(["stop"]);
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "300");
    let first = sd.json(["location", "set", "1", "--gitignore", "off"]);
    let job = first["rescan_job"]
        .as_i64()
        .expect("a rules change rescans");
    let second = sd.json(["location", "set", "1", "--default-rules", "off"]);
    assert!(second["rescan_job"].is_null(), "{second}");
    assert_eq!(second["rescan_after_job"], job, "{second}");
    let text = sd.ok(["location", "set", "1", "--ignore", "nothing-matches-this"]);
    assert!(text.contains(&format!("when job {job} ends")), "{text}");
    // Both changes end up applied: main.o (gitignore off) and Thumbs.db (defaults off).
    super::wait_until(
        "both rules applied",
        std::time::Duration::from_secs(60),
        || {
            let info = sd.json(["location", "info", "1"]);
            info["files"] == 9 && info["state"] == "ready"
        },
    );
    let jobs = sd.json(["job", "list"]);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "completed"),
        "{jobs}"
    );
}

/// Issue 10.9: `location rescan` of a location whose index job is paused says so and returns.
#[test]
fn rescan_while_the_index_job_is_paused_returns() {
    let mut sd = Sd::new();
    let root = sd.tmp.path().join("p");
    for i in 0..20 {
        write(&root.join(format!("d{i}/f.txt")), b"f");
    }
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "100");
    sd.ok(["library", "create", "P"]);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--detach".as_ref(),
    ]);
    sd.ok(["job", "pause", "1"]);
    let t = std::time::Instant::now();
    let out = sd.ok(["location", "rescan", "1"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    assert!(out.contains("already being indexed by job 1"), "{out}");
    assert!(
        out.contains("paused") && out.contains("job resume 1"),
        "{out}"
    );
    let v = sd.json(["location", "rescan", "1"]);
    assert_eq!(v["job"]["state"], "paused", "{v}");
    sd.ok(["job", "resume", "1"]);
    assert_eq!(sd.wait_job("P", 1)["state"], "completed");
}
