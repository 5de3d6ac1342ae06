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
    settles_within(sd, root, step, Duration::from_secs(20));
}

/// [`settles`] with a longer bound, for steps that index a big tree first (on a loaded 2-core
/// machine, a debug build).
fn settles_within(sd: &Sd, root: &Path, step: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
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

/// inotify watches the daemon holds (every inotify instance it has open).
fn inotify_watches(pid: i32) -> usize {
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let is_inotify =
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify"));
        if is_inotify {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            n += info
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count();
        }
    }
    n
}

/// Issue 10.2: a link out of the location costs no watch and no rescan; the location's own
/// folders (including ones created later) are watched.
#[test]
fn the_watcher_never_follows_links_out_of_the_location() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("loc");
    let elsewhere = sd.tmp.path().join("elsewhere");
    write(&root.join("a/one.txt"), b"1");
    for i in 0..40 {
        write(&elsewhere.join(format!("d{i}/sub/x.txt")), b"x");
    }
    std::os::unix::fs::symlink(&elsewhere, root.join("link")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
    sd.ok(["library", "create", "W"]);
    sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sd.json(["location", "info", "1"])["watcher"] != "live" {
        assert!(Instant::now() < deadline, "the watcher never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = sd.daemon_pid().unwrap();
    // The location has two folders (root, a): the 81 folders behind the link are not watched.
    assert_eq!(
        inotify_watches(pid),
        2,
        "one watch per folder of the location"
    );

    // A change out there starts nothing.
    let jobs_before = sd.json(["job", "list"]).as_array().unwrap().len();
    write(&elsewhere.join("d3/sub/new.txt"), b"outside");
    std::fs::create_dir(elsewhere.join("d7/newdir")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sd.json(["job", "list"]).as_array().unwrap().len(),
        jobs_before,
        "a change outside the location must not rescan it"
    );

    // A folder created inside is watched, and so are the changes in it.
    let appears = |rel: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sd.tree("W", &root).contains_key(rel.as_bytes()) {
            assert!(Instant::now() < deadline, "{rel} never indexed");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    write(&root.join("b/c/deep.txt"), b"deep");
    appears("b/c/deep.txt");
    write(&root.join("b/c/later.txt"), b"later");
    appears("b/c/later.txt");
    assert_eq!(inotify_watches(pid), 4);
}

/// Issue 10.2: kernel interfaces are refused as locations, with the reason.
#[test]
fn pseudo_filesystems_are_refused_as_locations() {
    let sd = Sd::new();
    sd.ok(["library", "create", "W"]);
    for p in ["/sys", "/proc", "/dev", "/sys/kernel", "/proc/self"] {
        let err = sd.fails(["location", "add", p]);
        assert_eq!(err["code"], "invalid", "{p}: {err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("kernel interface"),
            "{p}: {err}"
        );
    }
    assert_eq!(sd.json(["location", "list"]).as_array().unwrap().len(), 0);
}

/// Issue 10.2: `stop` and SIGTERM end the daemon within seconds whatever a job is doing (here an
/// index job stuck for 60 s between two commits); the job resumes at the next start.
#[test]
fn stop_and_sigterm_work_whatever_a_job_is_doing() {
    let mut sd = Sd::new();
    let root = sd.tmp.path().join("slow");
    for i in 0..5 {
        write(&root.join(format!("d{i}/f.txt")), b"f");
    }
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "60000");
    sd.ok(["library", "create", "W"]);
    let job = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--detach".as_ref(),
    ])["job_id"]
        .as_i64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // inside the first 60 s sleep
    let t = Instant::now();
    sd.ok(["stop"]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(sd.daemon_pid().is_none());

    // Again with SIGTERM.
    let job2 = sd.json(["job", "info", &job.to_string()]);
    assert_eq!(job2["state"], "running", "{job2}");
    let pid = sd.daemon_pid().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "SIGTERM ignored for {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing lost: without the throttle, the job resumes and completes.
    sd.clear_env();
    let done = sd.wait_job("W", job);
    assert_eq!(done["state"], "completed", "{done}");
    settles(&sd, &root, "resumed after stop");
}

/// Issue 11: a file created right after `location add` returns is indexed (the watch is live
/// before the first scan walks), as are files created while a 20k-file tree is being scanned and
/// right after the daemon starts again.
#[test]
fn changes_right_after_add_during_the_scan_and_after_restart_are_indexed() {
    let sd = Sd::new();
    sd.ok(["library", "create", "W"]);
    for i in 0..3 {
        let root = sd.tmp.path().join(format!("quick{i}"));
        write(&root.join("seed.txt"), b"s");
        sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
        write(&root.join("right-after.txt"), b"now");
        let deadline = Instant::now() + Duration::from_secs(10);
        let rel = format!("quick{i}");
        while !sd
            .tree("W", &root)
            .contains_key(b"right-after.txt".as_slice())
        {
            assert!(
                Instant::now() < deadline,
                "{rel}: a file created right after `location add` was never indexed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // A 20k-file tree: changes made while its first scan runs, in folders already listed and not.
    let big = sd.tmp.path().join("big");
    for d in 0..20 {
        let dir = big.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("f{f}")), b"").unwrap();
        }
    }
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        big.as_os_str(),
        "--detach".as_ref(),
    ]);
    for d in (0..20).step_by(3) {
        write(&big.join(format!("d{d:02}/during.txt")), b"during");
        std::fs::create_dir_all(big.join(format!("d{d:02}/newdir"))).unwrap();
        write(&big.join(format!("d{d:02}/newdir/x.txt")), b"x");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(big.join("d19/f999")).unwrap();
    settles_within(
        &sd,
        &big,
        "changes during the first scan",
        Duration::from_secs(90),
    );

    // Changes while no daemon runs, and right after it starts again.
    sd.ok(["stop"]);
    write(&big.join("d00/while-down.txt"), b"down");
    sd.json(["location", "list"]); // starts the daemon
    write(&big.join("d01/right-after-start.txt"), b"up");
    write(&big.join("d05/newdir/after-start.txt"), b"up");
    settles_within(
        &sd,
        &big,
        "changes around a restart",
        Duration::from_secs(90),
    );
}
