//! Actions: previews that match what the commit does, file operations surviving SIGKILL, undo,
//! the audit log's hash chain, and clear failures (conflicts, read-only and full destinations).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Mounted, Sd, integrity, json_path, wait_until, write};

const LIMIT: Duration = Duration::from_secs(90);

/// Every file, folder and symlink under `root`: relative path → ("f", BLAKE3) / ("d", "") /
/// ("l", target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (char, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if m.is_dir() {
                out.insert(rel, ('d', String::new()));
                stack.push(p);
            } else if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, ('l', t.to_string_lossy().into_owned()));
            } else {
                let h = blake3::hash(&std::fs::read(&p).unwrap())
                    .to_hex()
                    .to_string();
                out.insert(rel, ('f', h));
            }
        }
    }
    out
}

/// A tree of `n` files (sizes 0 B to ~200 KiB) in nested folders, a symlink and a hard link.
fn tree(root: &Path, n: usize) {
    for i in 0..n {
        let p = root.join(format!("d{}/e{}/f{i}.bin", i % 7, i % 3));
        let len = (i * 7919) % 200_000;
        let bytes: Vec<u8> = (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect();
        write(&p, &bytes);
    }
    std::os::unix::fs::symlink("d0/e0/f0.bin", root.join("link")).unwrap();
    std::fs::hard_link(root.join("d1/e1/f1.bin"), root.join("hard.bin")).unwrap();
}

fn db(sd: &Sd) -> PathBuf {
    sd.data.join("libraries/My Library.sdlibrary/library.db")
}

/// (op, src, dst) of a job's items in a state, read from the library database.
fn items(sd: &Sd, job: i64, states: &[&str]) -> BTreeSet<(String, PathBuf, Option<PathBuf>)> {
    let c = super::open_db(&db(sd));
    let mut q = c
        .prepare("SELECT op, src, dst, state FROM fileop_items WHERE job_id = ?1")
        .unwrap();
    q.query_map([job], |r| {
        Ok((
            r.get::<_, String>(0)?,
            PathBuf::from(r.get::<_, String>(1)?),
            r.get::<_, Option<String>>(2)?.map(PathBuf::from),
            r.get::<_, String>(3)?,
        ))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .filter(|(.., s)| states.contains(&s.as_str()))
    .map(|(o, s, d, _)| (o, s, d))
    .collect()
}

fn steps(preview: &Value) -> BTreeSet<(String, PathBuf, Option<PathBuf>)> {
    preview["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let dst = (!s["dst"].is_null()).then(|| json_path(&s["dst"]));
            (
                s["op"].as_str().unwrap().to_string(),
                json_path(&s["src"]),
                dst,
            )
        })
        .collect()
}

fn no_partial_files(root: &Path) {
    let leftovers: Vec<_> = snapshot(root)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".sd-part-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn preview_lists_exactly_what_commit_does() {
    let sd = Sd::new();
    let src = sd.tmp.path().join("photos");
    tree(&src, 40);
    let dst = sd.tmp.path().join("backup");
    // A conflict: the folder already exists at the destination; keep-both copies it beside it,
    // as `photos (1)`, and leaves the existing one alone.
    write(&dst.join("photos/d0/e0/f0.bin"), b"older");
    let s = src.to_str().unwrap();
    let d = dst.to_str().unwrap();
    let before = snapshot(&src);

    let preview = sd.json(["cp", s, d, "--preview", "--on-conflict", "keep-both"]);
    assert_eq!(preview["plan"]["conflicts"], 1);
    assert!(preview["plan"]["space"][0]["ok"].as_bool().unwrap());
    let planned = steps(&preview);
    assert!(planned.contains(&(
        "link".into(),
        src.join("hard.bin"),
        Some(dst.join("photos (1)/hard.bin"))
    )));
    assert!(planned.contains(&(
        "copy".into(),
        src.join("d0/e0/f0.bin"),
        Some(dst.join("photos (1)/d0/e0/f0.bin"))
    )));
    assert_eq!(snapshot(&src), before, "a preview changes nothing");
    assert!(!dst.join("photos/d1").exists());

    let job = sd.json(["cp", s, d, "--on-conflict", "keep-both"]);
    assert_eq!(job["state"], "completed", "{job}");
    let id = job["id"].as_i64().unwrap();
    assert_eq!(
        items(&sd, id, &["done"]),
        planned,
        "the job did exactly the previewed steps"
    );
    // The copy equals the source, the older folder is untouched, links and symlinks are kept.
    assert_eq!(snapshot(&dst.join("photos (1)")), before);
    assert_eq!(
        snapshot(&dst.join("photos")).len(),
        3,
        "d0, d0/e0 and d0/e0/f0.bin"
    );
    assert_eq!(
        std::fs::read(dst.join("photos/d0/e0/f0.bin")).unwrap(),
        b"older"
    );
    let (a, b) = (
        std::fs::metadata(dst.join("photos (1)/hard.bin")).unwrap(),
        std::fs::metadata(dst.join("photos (1)/d1/e1/f1.bin")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard links stay hard links");
    assert_eq!(
        std::fs::metadata(src.join("d2/e2/f2.bin")).unwrap().mtime(),
        std::fs::metadata(dst.join("photos (1)/d2/e2/f2.bin"))
            .unwrap()
            .mtime(),
        "modification times are kept"
    );

    // Move: the preview's renames are what happens.
    let moved = sd.tmp.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    let m = moved.to_str().unwrap();
    let p = sd.json(["mv", &format!("{s}/d3"), &format!("{s}/d4"), m, "--preview"]);
    let planned = steps(&p);
    let job = sd.json(["mv", &format!("{s}/d3"), &format!("{s}/d4"), m]);
    assert_eq!(items(&sd, job["id"].as_i64().unwrap(), &["done"]), planned);
    assert!(!src.join("d3").exists() && moved.join("d3/e0").is_dir());

    // Delete to the trash: the previewed items go, and only those.
    let p = sd.json(["rm", &format!("{s}/d5"), "--preview"]);
    let planned = steps(&p);
    let job = sd.json(["rm", &format!("{s}/d5")]);
    assert_eq!(items(&sd, job["id"].as_i64().unwrap(), &["done"]), planned);
    assert!(!src.join("d5").exists() && src.join("d6").exists());
    let trashed = sd.tmp.path().join("xdg/Trash/files/d5");
    assert!(trashed.join("e0").is_dir(), "in the freedesktop trash");

    // Permanent delete needs --yes without a terminal; then the preview's deletes happen.
    sd.fails(["rm", "--permanent", &format!("{s}/d6")]);
    assert!(src.join("d6").exists());
    let p = sd.json(["rm", "--permanent", &format!("{s}/d6"), "--preview"]);
    let planned = steps(&p);
    let job = sd.json(["rm", "--permanent", "--yes", &format!("{s}/d6")]);
    assert_eq!(items(&sd, job["id"].as_i64().unwrap(), &["done"]), planned);
    assert!(!src.join("d6").exists());
    assert_eq!(sd.json(["audit", "verify"])["ok"], true);
}

/// Kills the daemon once `copied` (or `removed`) reaches `at`, restarts it, and returns the
/// finished job.
fn kill_at(sd: &mut Sd, job: i64, field: &str, at: u64) -> Value {
    let progress = |sd: &Sd| {
        sd.json(["job", "info", &job.to_string()])["progress"][field]
            .as_u64()
            .unwrap_or(0)
    };
    wait_until(&format!("{field} >= {at}"), LIMIT, || progress(sd) >= at);
    sd.kill_daemon(LIMIT);
    assert_eq!(integrity(&db(sd)), "ok");
    sd.clear_env();
    sd.wait_job("My Library", job)
}

#[test]
fn sigkill_mid_copy_and_mid_move_resumes_without_loss_or_duplicates() {
    let mut sd = Sd::new();
    let src = sd.tmp.path().join("src");
    tree(&src, 400);
    let before = snapshot(&src);
    let total_files = before.values().filter(|v| v.0 == 'f').count() as u64;

    // A copy killed early and one killed late.
    for (n, at) in [(1, 20u64), (2, 200)] {
        let dst = sd.tmp.path().join(format!("copy{n}"));
        std::fs::create_dir(&dst).unwrap();
        sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "20");
        sd.ok(["stop"]); // the next command starts a daemon with the throttle
        let started = sd.json([
            "cp",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
            "--detach",
        ]);
        let job = started["job"]["id"].as_i64().unwrap();
        let done = kill_at(&mut sd, job, "copied", at);
        assert_eq!(done["state"], "completed", "{done}");
        assert!(done["resumes"].as_i64().unwrap() >= 1, "{done}");
        let p = &done["progress"];
        let copied = p["copied"].as_u64().unwrap()
            + p["already_done"].as_u64().unwrap()
            + p["linked"].as_u64().unwrap();
        assert_eq!(copied, total_files, "every file once: {p}");
        assert!(
            p["already_done"].as_u64().unwrap() <= 512,
            "only files copied after the last checkpoint are re-checked: {p}"
        );
        no_partial_files(&dst);
        assert_eq!(
            snapshot(&dst.join("src")),
            before,
            "copy equals the source, no duplicates"
        );
    }

    // A move to another filesystem, killed while copying and again while removing sources.
    let Some(_mnt) = Mounted::tmpfs("256m", "", &sd.tmp.path().join("other-fs")) else {
        eprintln!(
            "skipping the cross-filesystem move: this machine does not allow mounting a tmpfs"
        );
        return;
    };
    let dst = sd.tmp.path().join("other-fs");
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "15");
    sd.ok(["stop"]);
    let started = sd.json([
        "mv",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--detach",
    ]);
    let job = started["job"]["id"].as_i64().unwrap();
    let check_nothing_lost = |sd: &Sd| {
        // Every file is at the source or (verified) at the destination, maybe both, never neither.
        for (rel, (kind, hash)) in &before {
            if *kind != 'f' {
                continue;
            }
            let at_dst = std::fs::read(dst.join("src").join(rel)).ok();
            let at_src = std::fs::read(src.join(rel)).ok();
            let ok = [at_dst, at_src]
                .into_iter()
                .flatten()
                .any(|b| blake3::hash(&b).to_hex().as_str() == hash);
            assert!(ok, "{} lost", rel.display());
        }
        // Temporary files may exist mid-job (they are not final paths); none remain at the end.
        let _ = sd;
    };
    let progress = |sd: &Sd, f: &str| {
        sd.json(["job", "info", &job.to_string()])["progress"][f]
            .as_u64()
            .unwrap_or(0)
    };
    wait_until("copying", LIMIT, || progress(&sd, "copied") >= 100);
    sd.kill_daemon(LIMIT);
    check_nothing_lost(&sd);
    assert!(
        src.join("d0").exists(),
        "no source removed before every copy was verified"
    );
    // Restart (still throttled) and kill again while sources are being removed.
    sd.ok(["status"]);
    let done = kill_at(&mut sd, job, "sources_removed", 50);
    check_nothing_lost(&sd);
    assert_eq!(done["state"], "completed", "{done}");
    assert!(done["resumes"].as_i64().unwrap() >= 2);
    assert!(
        !src.exists(),
        "the moved source is gone once everything is verified"
    );
    assert_eq!(snapshot(&dst.join("src")), before);
}

#[test]
fn undo_reverses_rename_move_trash_and_tags_and_is_audited() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("docs");
    write(&root.join("a.txt"), b"alpha");
    write(&root.join("sub/b.txt"), b"beta");
    std::fs::create_dir(root.join("archive")).unwrap();
    sd.ok(["location", "add", root.to_str().unwrap(), "--no-watch"]);
    let id_of = |p: &Path| {
        let out = sd.cmd(["--json", "file", "info", p.to_str().unwrap()]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["entry"]["id"].as_i64()
    };
    let a_id = id_of(&root.join("a.txt")).expect("indexed");
    sd.ok(["tag", "create", "Work"]);
    sd.ok(["tag", "apply", "Work", root.join("a.txt").to_str().unwrap()]);

    // Rename: the index follows at once (same entry, tag kept), and undo puts the name back.
    sd.ok(["rename", root.join("a.txt").to_str().unwrap(), "c.txt"]);
    assert_eq!(
        id_of(&root.join("c.txt")),
        Some(a_id),
        "renamed entry keeps its id"
    );
    sd.ok(["undo"]);
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"alpha");
    assert!(!root.join("c.txt").exists());
    let info = sd.json(["file", "info", root.join("a.txt").to_str().unwrap()]);
    assert_eq!(info["entry"]["id"].as_i64(), Some(a_id));
    assert!(info.to_string().contains("Work"), "tag kept: {info}");

    // Move into another folder of the location, then undo.
    sd.ok([
        "mv",
        root.join("sub").to_str().unwrap(),
        root.join("archive").to_str().unwrap(),
    ]);
    assert!(root.join("archive/sub/b.txt").exists());
    assert!(
        id_of(&root.join("archive/sub/b.txt")).is_some(),
        "index follows the move without a rescan"
    );
    sd.ok(["undo"]);
    assert_eq!(std::fs::read(root.join("sub/b.txt")).unwrap(), b"beta");
    assert!(!root.join("archive/sub").exists());

    // Trash, then undo: the file comes back from the trash.
    sd.ok(["rm", root.join("sub").to_str().unwrap()]);
    assert!(!root.join("sub").exists());
    assert!(
        id_of(&root.join("sub/b.txt")).is_none(),
        "index follows the delete"
    );
    sd.ok(["undo"]);
    assert_eq!(std::fs::read(root.join("sub/b.txt")).unwrap(), b"beta");
    assert!(id_of(&root.join("sub/b.txt")).is_some());

    // Tag change, then undo.
    sd.ok([
        "tag",
        "remove",
        "Work",
        root.join("a.txt").to_str().unwrap(),
    ]);
    sd.ok(["undo"]);
    let info = sd.json(["file", "info", root.join("a.txt").to_str().unwrap()]);
    assert!(info.to_string().contains("Work"), "tag back: {info}");

    // A copy cannot be undone, and says so (and a bare `undo` refuses rather than reach past it).
    sd.ok([
        "cp",
        root.join("a.txt").to_str().unwrap(),
        root.join("archive").to_str().unwrap(),
    ]);
    let log = sd.json(["history"]);
    let copy = log
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "file.copy")
        .unwrap();
    assert_eq!(copy["undoable"], false);
    let e = sd.fails(["undo", &copy["id"].to_string(), "--preview"]);
    assert!(e.to_string().contains("cannot be undone"), "{e}");
    let e = sd.fails(["undo"]);
    assert!(e.to_string().contains("cannot be undone"), "{e}");
    assert!(root.join("archive/a.txt").exists());

    // Every undo is itself in the log, pointing at what it reversed.
    let log = sd.json(["history"]);
    let rows = log.as_array().unwrap();
    let undos: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "undo").collect();
    assert_eq!(undos.len(), 4, "{log}");
    for u in &undos {
        let target = u["undoes"].as_i64().unwrap();
        let original = rows.iter().find(|r| r["id"] == target).unwrap();
        assert_eq!(original["undone_by"], u["id"]);
        assert_eq!(u["result"], "completed");
    }
    assert_eq!(sd.json(["audit", "verify"])["ok"], true);
}

/// The first JSON line a command printed (a failing command prints its error as a second line).
fn first_line(out: &[u8]) -> Value {
    let text = String::from_utf8_lossy(out);
    serde_json::from_str(text.lines().next().unwrap_or("null")).unwrap()
}

#[test]
fn audit_verify_detects_an_edited_or_removed_row() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("f");
    write(&root.join("x.txt"), b"x");
    sd.ok(["library", "create", "My Library"]);
    sd.ok(["tag", "create", "A"]);
    sd.ok(["tag", "create", "B"]);
    sd.ok(["rename", root.join("x.txt").to_str().unwrap(), "y.txt"]);
    sd.ok(["tag", "create", "C"]);
    // library.create, three tag creations and a rename.
    let v = sd.json(["audit", "verify"]);
    assert_eq!(
        (v["ok"].as_bool(), v["rows"].as_u64()),
        (Some(true), Some(5)),
        "{v}"
    );
    sd.ok(["stop"]);

    // Someone edits row 2 directly in the database.
    let c = super::open_db(&db(&sd));
    let original: String = c
        .query_row("SELECT targets FROM audit_log WHERE id = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    c.execute("UPDATE audit_log SET targets = '[\"Z\"]' WHERE id = 2", [])
        .unwrap();
    drop(c);
    let e = sd.cmd(["audit", "verify"]);
    assert!(!e.status.success());
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(msg.contains("row 2") && msg.contains("modified"), "{msg}");
    let v: Value = first_line(&sd.cmd(["--json", "audit", "verify"]).stdout);
    assert_eq!(v["broken_at"], 2);
    sd.ok(["stop"]);

    // Put it back, then delete a row instead: the gap is found.
    let c = super::open_db(&db(&sd));
    c.execute(
        "UPDATE audit_log SET targets = ?1 WHERE id = 2",
        [&original],
    )
    .unwrap();
    drop(c);
    assert_eq!(sd.json(["audit", "verify"])["ok"], true);
    sd.ok(["stop"]);
    let c = super::open_db(&db(&sd));
    c.execute("DELETE FROM audit_log WHERE id = 3", []).unwrap();
    drop(c);
    let v: Value = first_line(&sd.cmd(["--json", "audit", "verify"]).stdout);
    assert_eq!(
        (v["ok"].as_bool(), v["broken_at"].as_i64()),
        (Some(false), Some(4)),
        "{v}"
    );
}

#[test]
fn conflicts_read_only_and_full_destinations_fail_clearly_and_leave_the_source() {
    let mut sd = Sd::new();
    let src = sd.tmp.path().join("src");
    write(&src.join("big.bin"), &vec![7u8; 3 << 20]);
    write(&src.join("small.txt"), b"small");
    let before = snapshot(&src);
    let dst = sd.tmp.path().join("dst");
    write(&dst.join("src/small.txt"), b"theirs");

    // Conflict without a policy and no terminal: refused, nothing changed anywhere.
    let e = sd.fails(["cp", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert!(e.to_string().contains("--on-conflict"), "{e}");
    assert!(!dst.join("src/big.bin").exists());
    let e = sd.fails(["mv", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert!(e.to_string().contains("already exist"), "{e}");
    assert_eq!(snapshot(&src), before);
    // Skip keeps theirs; overwrite replaces it.
    sd.ok([
        "cp",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--on-conflict",
        "skip",
    ]);
    assert_eq!(std::fs::read(dst.join("src/small.txt")).unwrap(), b"theirs");
    sd.ok([
        "cp",
        src.join("small.txt").to_str().unwrap(),
        dst.join("src").to_str().unwrap(),
        "--on-conflict",
        "overwrite",
    ]);
    assert_eq!(std::fs::read(dst.join("src/small.txt")).unwrap(), b"small");

    // A destination filesystem too small: refused before anything is written.
    let Some(_full) = Mounted::tmpfs("1m", "", &sd.tmp.path().join("small-fs")) else {
        eprintln!(
            "skipping full and read-only destinations: this machine does not allow mounting a tmpfs"
        );
        return;
    };
    let small = sd.tmp.path().join("small-fs");
    let e = sd.fails(["cp", src.to_str().unwrap(), small.to_str().unwrap()]);
    assert!(e.to_string().contains("not enough space"), "{e}");
    assert_eq!(std::fs::read_dir(&small).unwrap().count(), 0);
    // Without the check (as when something else fills the disk meanwhile): the job fails with
    // ENOSPC, says so, leaves no partial file, and the source is untouched — also for a move.
    sd.env("SPACEDRIVE_DEBUG_SKIP_SPACE_CHECK", "1");
    sd.ok(["stop"]);
    for verb in ["cp", "mv"] {
        let out = sd.cmd([
            verb,
            src.to_str().unwrap(),
            small.to_str().unwrap(),
            "--on-conflict",
            "skip",
        ]);
        assert!(!out.status.success());
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains("no space left"), "{msg}");
        no_partial_files(&small);
        assert_eq!(snapshot(&src), before, "{verb}: source untouched");
    }
    sd.clear_env();
    sd.ok(["stop"]);

    // A read-only destination.
    let Some(_ro) = Mounted::tmpfs("4m", ",ro", &sd.tmp.path().join("ro-fs")) else {
        return;
    };
    let ro = sd.tmp.path().join("ro-fs");
    let out = sd.cmd(["mv", src.to_str().unwrap(), ro.to_str().unwrap()]);
    assert!(!out.status.success());
    let msg =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert_eq!(snapshot(&src), before);
}

#[test]
fn a_move_across_filesystems_keeps_the_entry_and_its_tags() {
    let sd = Sd::new();
    let home = sd.tmp.path().join("home");
    write(&home.join("report.pdf"), &vec![3u8; 300_000]);
    let Some(_mnt) = Mounted::tmpfs("16m", "", &sd.tmp.path().join("usb")) else {
        eprintln!("skipping: this machine does not allow mounting a tmpfs");
        return;
    };
    let usb = sd.tmp.path().join("usb");
    sd.ok(["location", "add", home.to_str().unwrap(), "--no-watch"]);
    sd.ok(["location", "add", usb.to_str().unwrap(), "--no-watch"]);
    sd.ok(["tag", "create", "Keep"]);
    sd.ok([
        "tag",
        "apply",
        "Keep",
        home.join("report.pdf").to_str().unwrap(),
    ]);
    let before = sd.json(["file", "info", home.join("report.pdf").to_str().unwrap()]);
    let job = sd.json([
        "mv",
        home.join("report.pdf").to_str().unwrap(),
        usb.to_str().unwrap(),
    ]);
    assert_eq!(job["progress"]["copied"], 1, "copied, not renamed: {job}");
    assert_eq!(job["progress"]["sources_removed"], 1);
    assert!(!home.join("report.pdf").exists());
    let after = sd.json(["file", "info", usb.join("report.pdf").to_str().unwrap()]);
    assert_eq!(
        after["entry"]["id"], before["entry"]["id"],
        "same entry: {after}"
    );
    assert!(after.to_string().contains("Keep"), "tag kept: {after}");
    // And back, by undo.
    sd.ok(["undo"]);
    let back = sd.json(["file", "info", home.join("report.pdf").to_str().unwrap()]);
    assert_eq!(back["entry"]["id"], before["entry"]["id"]);
}

/// Issue 10, item 4: a name that is not UTF-8 works in every command that takes a path —
/// organising (tag, note, favourite, hide, on the entry and on its content) and trash + undo.
#[test]
fn non_utf8_names_work_in_every_path_command() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let sd = Sd::new();
    let root = sd.tmp.path().join("docs");
    let odd = root.join(OsString::from_vec(b"x\xffy.txt".to_vec()));
    write(&odd, b"odd name, ordinary bytes");
    let arg = |p: &Path| p.as_os_str().to_os_string();
    sd.ok([
        "location".into(),
        "add".into(),
        arg(&root),
        "--no-watch".into(),
        "--mode".into(),
        "content".into(),
    ]);
    sd.ok(["tag", "create", "Odd"]);
    sd.ok(["tag".into(), "apply".into(), "Odd".into(), arg(&odd)]);
    sd.ok([
        "tag".into(),
        "apply".into(),
        "Odd".into(),
        arg(&odd),
        "--content".into(),
    ]);
    sd.ok(["note".into(), arg(&odd), "a note".into()]);
    sd.ok([
        "note".into(),
        arg(&odd),
        "on all copies".into(),
        "--content".into(),
    ]);
    sd.ok(["favorite".into(), arg(&odd)]);
    sd.ok(["hide".into(), arg(&odd), "--content".into()]);
    let mut info_args: Vec<OsString> = vec!["file".into(), "info".into(), arg(&odd)];
    let info = sd.json(info_args.clone());
    let a = &info["attached"];
    assert_eq!(a["tags"], serde_json::json!(["Odd"]), "{info}");
    assert_eq!(a["content_tags"], serde_json::json!(["Odd"]), "{info}");
    assert_eq!(a["note"], "a note", "{info}");
    assert_eq!(a["content_note"], "on all copies", "{info}");
    assert_eq!(a["favorite"], true, "{info}");
    assert_eq!(a["hidden"], true, "{info}");
    assert_eq!(json_path(&info["entry"]["path"]), odd);
    // Each of those is undoable like any other organising change.
    sd.ok(["undo"]);
    assert_eq!(sd.json(info_args.clone())["attached"]["hidden"], false);

    // Trash, then undo: it comes back from the freedesktop trash under its exact name.
    sd.ok(["rm".into(), arg(&odd)]);
    assert!(!odd.exists());
    let trashed = sd.tmp.path().join("xdg/Trash/files");
    assert!(
        std::fs::read_dir(&trashed).unwrap().count() == 1,
        "in the trash"
    );
    sd.ok(["undo"]);
    assert_eq!(std::fs::read(&odd).unwrap(), b"odd name, ordinary bytes");
    assert_eq!(std::fs::read_dir(&trashed).unwrap().count(), 0);
    info_args.insert(0, "--json".into());
    assert!(sd.cmd(info_args).status.success(), "indexed again");
}

/// The audit row of the newest action of `kind`.
fn newest(sd: &Sd, kind: &str) -> Value {
    let log = sd.json(["history"]);
    log.as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} in {log}"))
}

/// Issue 10, item 10: a bare `undo` reverses the last action or refuses — it never reaches past
/// an action that cannot be undone to an older one; `history` and `undo` agree on what a bare
/// undo does (undos are skipped, naming one redoes it); organising undos print words, not JSON;
/// undo conflicts do not suggest an option `undo` does not take.
#[test]
fn bare_undo_never_reaches_past_an_action_it_cannot_undo() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("docs");
    let (a, b, c) = (root.join("a.txt"), root.join("b.txt"), root.join("c.txt"));
    write(&a, b"alpha");
    write(&c, b"gamma");
    sd.ok(["location", "add", root.to_str().unwrap(), "--no-watch"]);

    // rename a b; rm --permanent --yes c; undo → refused, the rename stays, and it is named.
    sd.ok(["rename", a.to_str().unwrap(), "b.txt"]);
    let rename = newest(&sd, "file.move")["id"].as_i64().unwrap();
    sd.ok(["rm", "--permanent", "--yes", c.to_str().unwrap()]);
    for args in [vec!["undo"], vec!["undo", "--preview"]] {
        let e = sd.fails(&args);
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("cannot be undone"), "{msg}");
        assert!(msg.contains("file.delete"), "names the last action: {msg}");
        assert!(
            msg.contains(&format!("spacedrive undo {rename}")),
            "names what can be undone instead: {msg}"
        );
    }
    let out = sd.cmd(["undo"]);
    assert!(!out.status.success());
    assert!(
        b.exists() && !a.exists(),
        "the older rename was not reverted"
    );
    // history agrees: the delete is not undoable and no row is marked as the next undo.
    let log = sd.json(["history"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|r| r["next_undo"] == false),
        "{log}"
    );
    assert_eq!(newest(&sd, "file.delete")["undoable"], false);
    // Named explicitly, the rename is undone.
    sd.ok(["undo", &rename.to_string()]);
    assert!(a.exists() && !b.exists());

    // The same after a tag deletion; an organising undo prints words, not JSON.
    sd.ok(["tag", "create", "Keep"]);
    sd.ok(["tag", "create", "Gone"]);
    sd.ok(["tag", "apply", "Keep", a.to_str().unwrap()]);
    let apply = newest(&sd, "tag.apply")["id"].as_i64().unwrap();
    sd.ok(["tag", "delete", "Gone", "--yes"]);
    let e = sd.fails(["undo"]);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("tag.delete") && msg.contains(&format!("undo {apply}")),
        "{msg}"
    );
    let info = sd.json(["file", "info", a.to_str().unwrap()]);
    assert_eq!(
        info["attached"]["tags"],
        serde_json::json!(["Keep"]),
        "not reversed: {info}"
    );
    let out = sd.ok(["undo", &apply.to_string()]);
    assert!(out.starts_with(&format!("undid action {apply}: ")), "{out}");
    assert!(!out.contains('{'), "no raw JSON: {out}");

    // Everything undone: `undo` says so and how to redo; history marks the undo as the redo.
    let sd = Sd::new();
    let root = sd.tmp.path().join("docs");
    let (a, b) = (root.join("a.txt"), root.join("b.txt"));
    write(&a, b"alpha");
    sd.ok(["location", "add", root.to_str().unwrap(), "--no-watch"]);
    sd.ok(["rename", a.to_str().unwrap(), "b.txt"]);
    sd.ok(["undo"]);
    assert!(a.exists());
    let undo = newest(&sd, "undo");
    assert_eq!(undo["role"], "undo");
    assert_eq!(undo["undoable"], true, "naming an undo redoes it");
    let e = sd.fails(["undo"]);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("nothing"), "{msg}");
    assert!(
        msg.contains(&format!("`spacedrive undo {}` redoes it", undo["id"])),
        "{msg}"
    );
    let text = sd.ok(["history"]);
    assert!(
        text.contains(&format!("`undo {}` redoes", undo["id"])),
        "{text}"
    );
    // Redo it by name; now a bare undo reverses the redo, and history says so first.
    sd.ok(["undo", &undo["id"].to_string()]);
    assert!(b.exists() && !a.exists());
    let redo = newest(&sd, "undo");
    assert_eq!(redo["role"], "redo");
    assert_eq!(redo["next_undo"], true);
    sd.ok(["undo"]);
    assert!(a.exists() && !b.exists());

    // A conflict in an undo says what to do — without an option `undo` does not accept.
    sd.ok(["rename", a.to_str().unwrap(), "b.txt"]);
    write(&a, b"a new file where the old name was");
    let e = sd.fails(["undo"]);
    let msg = e["message"].as_str().unwrap();
    assert!(!msg.contains("--on-conflict"), "{msg}");
    assert!(
        msg.contains("out of the way") && msg.contains("spacedrive undo"),
        "{msg}"
    );
    let preview = sd.ok(["undo", "--preview"]);
    assert!(!preview.contains("--on-conflict"), "{preview}");
    assert!(sd.cmd(["undo", "--on-conflict", "skip"]).status.code() == Some(2));
}
