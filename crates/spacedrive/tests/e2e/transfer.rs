//! Copies between paired devices: two daemons on loopback push and pull real trees, resume after
//! SIGKILL, and refuse what they do not share.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::network::{pair, pair_with};
use super::{Sd, corpus, wait_until, write};

/// What a tree holds, relative to its root: kind, bytes (a file's content hash, a link's
/// target) and which files share an inode.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, (char, Vec<u8>, Option<usize>)> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<OsString> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = d.join(&n);
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let v = if m.is_dir() {
                stack.push(p.clone());
                ('d', Vec::new(), None)
            } else if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                ('l', t.as_os_str().as_bytes().to_vec(), None)
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let group = if m.nlink() > 1 {
                    let next = inodes.len();
                    Some(*inodes.entry(m.ino()).or_insert(next))
                } else {
                    None
                };
                ('f', blake3::hash(&bytes).as_bytes().to_vec(), group)
            };
            out.insert(rel, v);
        }
    }
    out
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    assert_eq!(sa.len(), sb.len(), "{} vs {}", a.display(), b.display());
    for (k, v) in &sa {
        assert_eq!(
            sb.get(k),
            Some(v),
            "{:?} differs",
            String::from_utf8_lossy(k)
        );
    }
}

/// Names of leftover temporaries under `root`.
fn temporaries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.as_os_str()
                .as_bytes()
                .windows(8)
                .any(|w| w == b".sd-part")
            {
                out.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

/// Paths the library of `sd` lists under `dir`, recursively.
fn indexed(sd: &Sd, dir: &Path) -> Vec<String> {
    sd.json(["ls".as_ref(), "-r".as_ref(), dir.as_os_str()])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| super::json_path(&e["path"]).display().to_string())
        .collect()
}

#[test]
fn push_and_pull_a_tree_byte_for_byte_and_the_index_follows() {
    let (a, b, ida, idb) = pair();
    let tree = corpus(a.tmp.path(), 2000);
    let inbox = b.tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    b.json(["location".as_ref(), "add".as_ref(), inbox.as_os_str()]);

    // Push: the preview is the receiver's plan; then the copy, verified, indexed there at once.
    let to = format!("{}:{}/", &idb[..10], inbox.display());
    let preview = a.json([
        "cp".as_ref(),
        tree.as_os_str(),
        to.as_ref(),
        "--preview".as_ref(),
    ]);
    assert!(
        preview["plan"]["files"].as_u64().unwrap() > 1000,
        "{preview}"
    );
    assert!(preview["plan"]["space"][0]["ok"] == true, "{preview}");
    let done = a.json(["cp".as_ref(), tree.as_os_str(), to.as_ref()]);
    assert_eq!(done["state"], "completed", "{done}");
    let landed = inbox.join("tree");
    assert_same_tree(&tree, &landed);
    assert!(temporaries(&inbox).is_empty());
    // b's index lists the tree at once, as a's own index of it does (the same rules).
    a.json(["location".as_ref(), "add".as_ref(), tree.as_os_str()]);
    let expected = indexed(&a, &tree).len();
    assert!(expected > 1000, "{expected}");
    assert_eq!(indexed(&b, &landed).len(), expected);
    // An audit row on both devices.
    let history_a = a.json(["history"]);
    assert_eq!(history_a[1]["kind"], "file.copy", "{history_a}");
    assert_eq!(history_a[1]["summary"]["failed"], 0, "{history_a}");
    let history_b = b.json(["history"]);
    assert_eq!(history_b[0]["kind"], "file.copy", "{history_b}");
    assert!(history_b[0]["summary"]["verified"].as_u64().unwrap() > 1000);

    // Pull from a location of a into another folder of b's location.
    let back = inbox.join("pulled");
    std::fs::create_dir_all(&back).unwrap();
    let from = format!("{}:{}", &ida[..10], tree.display());
    let done = b.json(["cp".as_ref(), from.as_ref(), back.as_os_str()]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_same_tree(&tree, &back.join("tree"));
    assert!(temporaries(&back).is_empty());
    assert_eq!(indexed(&b, &back.join("tree")).len(), expected);

    // Conflicts are the receiver's: a second push asks for a policy, keep-both keeps both.
    let err = a.fails(["cp".as_ref(), tree.as_os_str(), to.as_ref()]);
    assert_eq!(err["code"], "conflict", "{err}");
    let done = a.json([
        "cp".as_ref(),
        tree.as_os_str(),
        to.as_ref(),
        "--on-conflict".as_ref(),
        "keep-both".as_ref(),
    ]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_same_tree(&tree, &inbox.join("tree (1)"));
}

#[test]
fn only_what_a_device_shares_can_be_read_or_written_and_a_revoked_device_nothing() {
    let (a, b, ida, idb) = pair();
    let shared = a.tmp.path().join("shared");
    write(&shared.join("ok.txt"), b"fine");
    let private = a.tmp.path().join("private");
    write(&private.join("secret.txt"), b"secret");
    std::os::unix::fs::symlink(&private, shared.join("escape")).unwrap();
    a.json(["location".as_ref(), "add".as_ref(), shared.as_os_str()]);
    let here = b.tmp.path().join("here");
    std::fs::create_dir_all(&here).unwrap();
    let dev = &ida[..10];
    for asked in [
        private.join("secret.txt"),
        shared.join("../private/secret.txt"),
        shared.join("escape/secret.txt"),
        PathBuf::from("/etc/hostname"),
    ] {
        let from = format!("{dev}:{}", asked.display());
        let err = b.fails(["cp".as_ref(), from.as_ref(), here.as_os_str()]);
        assert_eq!(err["code"], "forbidden", "{}: {err}", asked.display());
    }
    assert!(
        std::fs::read_dir(&here).unwrap().next().is_none(),
        "nothing written"
    );
    // Writing is refused outside the other device's locations too.
    let to = format!("{}:{}/", &idb[..10], b.tmp.path().display());
    let err = a.fails([
        "cp".as_ref(),
        shared.join("ok.txt").as_os_str(),
        to.as_ref(),
    ]);
    assert_eq!(err["code"], "forbidden", "{err}");
    // What is shared arrives, a symlink as a symlink (never followed).
    let from = format!("{dev}:{}", shared.display());
    b.json(["cp".as_ref(), from.as_ref(), here.as_os_str()]);
    assert_eq!(std::fs::read(here.join("shared/ok.txt")).unwrap(), b"fine");
    assert!(
        std::fs::symlink_metadata(here.join("shared/escape"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Revoked: refused at once.
    a.json(["network", "revoke", &idb[..10]]);
    let err = b.fails(["cp".as_ref(), from.as_ref(), here.as_os_str()]);
    assert!(
        ["not_paired", "not_found", "unreachable"].contains(&err["code"].as_str().unwrap()),
        "{err}"
    );
}

/// `sd`'s newest transfer job.
fn job_progress(sd: &Sd) -> Value {
    let jobs = sd.json(["job", "list"]);
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"].as_str().unwrap_or("").starts_with("transfer"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Two paired daemons; b pulls a's 200 MB file `name` (bytes made with `mul`) into `here`, at
/// 80 MB/s so it can be caught midway; returns once half of it arrived.
fn slow_pull_half_done(name: &str, mul: u32) -> (Sd, Sd, Vec<u8>, PathBuf) {
    let (a, mut b, ida, _) = pair();
    let big = a.tmp.path().join("big");
    let data: Vec<u8> = (0..200u32 << 20)
        .map(|i| (i.wrapping_mul(mul) >> 24) as u8)
        .collect();
    write(&big.join(name), &data);
    a.json(["location".as_ref(), "add".as_ref(), big.as_os_str()]);
    let here = b.tmp.path().join("here");
    std::fs::create_dir_all(&here).unwrap();
    // b's daemon starts again with the throttle knob.
    b.ok(["stop"]);
    b.env("SPACEDRIVE_DEBUG_RECEIVE_BPS", "80000000");
    let from = format!("{}:{}", &ida[..10], big.join(name).display());
    b.ok([
        "cp".as_ref(),
        from.as_ref(),
        here.as_os_str(),
        "--detach".as_ref(),
    ]);
    wait_until("half the file received", Duration::from_secs(60), || {
        job_progress(&b)["progress"]["bytes_done"]
            .as_u64()
            .unwrap_or(0)
            > 100 << 20
    });
    (a, b, data, here)
}

#[test]
fn a_receiver_killed_midway_resumes_from_what_it_has() {
    let (_a, mut b, data, here) = slow_pull_half_done("video.bin", 2_654_435_761);
    let caught = job_progress(&b);
    b.kill_daemon(Duration::from_secs(10));
    assert!(
        !here.join("video.bin").exists(),
        "nothing at the final name yet: {caught}"
    );
    b.clear_env();
    // The job resumes when the daemon starts again.
    b.json(["network", "status"]);
    wait_until(
        "the copy resumed and finished",
        Duration::from_secs(120),
        || job_progress(&b)["state"] == "completed",
    );
    let p = &job_progress(&b)["progress"];
    let resumed = p["bytes_resumed"].as_u64().unwrap();
    let received = p["bytes_received"].as_u64().unwrap();
    assert!(resumed >= 90 << 20, "{p}");
    assert!(
        received <= (200 << 20) - resumed,
        "only the rest was sent again: {p}"
    );
    assert_eq!(
        blake3::hash(&std::fs::read(here.join("video.bin")).unwrap()),
        blake3::hash(&data)
    );
    assert!(temporaries(&here).is_empty());
}

#[test]
fn a_sender_killed_midway_is_waited_for_and_the_copy_resumes() {
    let (a, b, data, here) = slow_pull_half_done("disk.img", 2_246_822_519);
    a.kill_daemon(Duration::from_secs(10));
    wait_until(
        "the receiver waits for the sender",
        Duration::from_secs(60),
        || job_progress(&b)["progress"]["pull"] == "waiting",
    );
    a.json(["network", "status"]); // the sender's daemon starts again
    let t = std::time::Instant::now();
    while job_progress(&b)["state"] != "completed" {
        if t.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(b.data.join("daemon.log")).unwrap_or_default()
                + "\n=== a ===\n"
                + &std::fs::read_to_string(a.data.join("daemon.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(150).collect::<Vec<_>>().join("\n");
            panic!(
                "the copy did not resume: {}\n{tail}",
                job_progress(&b)["progress"]["waiting"]
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = &job_progress(&b)["progress"];
    assert!(p["bytes_resumed"].as_u64().unwrap() >= 90 << 20, "{p}");
    assert_eq!(
        blake3::hash(&std::fs::read(here.join("disk.img")).unwrap()),
        blake3::hash(&data)
    );
    assert!(temporaries(&here).is_empty());
}

#[test]
fn a_content_comes_from_a_device_that_holds_it_while_another_holder_is_offline() {
    let (a, b, c) = (Sd::new(), Sd::new(), Sd::new());
    pair_with(&b, &a);
    pair_with(&c, &a);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut uuid = String::new();
    for sd in [&b, &c] {
        let music = sd.tmp.path().join("music");
        write(&music.join("song.flac"), &bytes);
        sd.json([
            "location".as_ref(),
            "add".as_ref(),
            music.as_os_str(),
            "--mode".as_ref(),
            "content".as_ref(),
        ]);
        let info = sd.json([
            "file".as_ref(),
            "info".as_ref(),
            music.join("song.flac").as_os_str(),
        ]);
        uuid = info["content"]["uuid"].as_str().unwrap().to_owned();
    }
    c.ok(["stop"]); // the other holder is offline
    let here = a.tmp.path().join("here");
    std::fs::create_dir_all(&here).unwrap();
    let src = format!("content://{uuid}");
    let done = a.json(["cp".as_ref(), src.as_ref(), here.as_os_str()]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(std::fs::read(here.join("song.flac")).unwrap(), bytes);
    let missing = format!("content://{}", "0b0e2a63-0000-5000-8000-000000000000");
    let err = a.fails(["cp".as_ref(), missing.as_ref(), here.as_os_str()]);
    assert_eq!(err["code"], "not_found", "{err}");
    let err = a.fails(["cp".as_ref(), "content://nope".as_ref(), here.as_os_str()]);
    assert_eq!(err["code"], "invalid", "{err}");
}

#[test]
fn a_move_between_devices_removes_the_sources_only_once_all_arrived() {
    let (a, b, _ida, idb) = pair();
    let inbox = b.tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    b.json(["location".as_ref(), "add".as_ref(), inbox.as_os_str()]);
    let out = a.tmp.path().join("outbox");
    write(&out.join("one.txt"), b"one");
    write(&out.join("sub/two.txt"), b"two");
    let snap = snapshot(&out);
    let to = format!("{}:{}/", &idb[..10], inbox.display());
    let done = a.json(["mv".as_ref(), out.as_os_str(), to.as_ref()]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(snapshot(&inbox.join("outbox")), snap);
    assert!(!out.exists(), "the sources went once all arrived verified");
    let history = a.json(["history"]);
    assert_eq!(history[0]["kind"], "file.move", "{history}");
}
