//! What file operations do when a destination is taken or refuses writes: keep-both keeps
//! folders apart, and a job whose items failed says so in its state, its exit code and its errors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{Sd, write};

/// Names in folder `p`, sorted.
fn names(p: &Path) -> BTreeSet<String> {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn keep_both_keeps_a_folder_apart_instead_of_merging() {
    let sd = Sd::new();
    let src = sd.tmp.path().join("src");
    write(&src.join("sub/t1.txt"), b"one");
    write(&src.join("sub/t2.txt"), b"two");
    write(&src.join("photos.2019/p.jpg"), b"jpg");
    let dst = sd.tmp.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let sub = src.join("sub");
    let (sub, dst_s) = (sub.to_str().unwrap(), dst.to_str().unwrap());

    sd.ok(["cp", sub, dst_s, "--on-conflict", "keep-both"]);
    // The preview already names the new folder and merges nothing.
    let p = sd.json(["cp", sub, dst_s, "--on-conflict", "keep-both", "--preview"]);
    let steps = p["plan"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["op"], "mkdir", "{p}");
    assert_eq!(steps[0]["dst"], dst.join("sub (1)").to_str().unwrap());
    assert!(steps.iter().all(|s| s["op"] != "merge"), "{p}");
    sd.ok(["cp", sub, dst_s, "--on-conflict", "keep-both"]);
    sd.ok(["cp", sub, dst_s, "--on-conflict", "keep-both"]);
    assert_eq!(names(&dst), set(&["sub", "sub (1)", "sub (2)"]));
    for d in ["sub", "sub (1)", "sub (2)"] {
        assert_eq!(names(&dst.join(d)), set(&["t1.txt", "t2.txt"]), "{d}");
    }

    // A move within the filesystem (one rename) keeps it apart the same way.
    let other = sd.tmp.path().join("other");
    write(&other.join("sub/t3.txt"), b"three");
    let moved = other.join("sub");
    sd.ok([
        "mv",
        moved.to_str().unwrap(),
        dst_s,
        "--on-conflict",
        "keep-both",
    ]);
    assert!(!moved.exists());
    assert_eq!(names(&dst.join("sub (3)")), set(&["t3.txt"]));
    assert_eq!(names(&dst.join("sub")), set(&["t1.txt", "t2.txt"]));

    // A dot in a folder's name starts no extension.
    let photos = src.join("photos.2019");
    for _ in 0..2 {
        sd.ok([
            "cp",
            photos.to_str().unwrap(),
            dst_s,
            "--on-conflict",
            "keep-both",
        ]);
    }
    assert!(dst.join("photos.2019 (1)/p.jpg").is_file());
    // Files still get `name (1).ext` beside the one that exists.
    sd.ok([
        "cp",
        src.join("sub/t1.txt").to_str().unwrap(),
        dst.join("sub").to_str().unwrap(),
        "--on-conflict",
        "keep-both",
    ]);
    assert_eq!(
        names(&dst.join("sub")),
        set(&["t1.txt", "t1 (1).txt", "t2.txt"])
    );
    // Skip and overwrite still merge into the existing folder, file by file.
    write(&src.join("sub/t4.txt"), b"four");
    sd.ok(["cp", sub, dst_s, "--on-conflict", "skip"]);
    assert_eq!(
        names(&dst.join("sub")),
        set(&["t1.txt", "t1 (1).txt", "t2.txt", "t4.txt"])
    );
}

/// A folder made immutable (`chattr +i`: even root may not write into it), made mutable again
/// on drop so the temp folder can be removed whatever the test did.
struct Immutable(PathBuf);

impl Immutable {
    fn new(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Runs a file operation with `--json`; returns (exit ok, the job it ran, all it printed).
fn run_op(sd: &Sd, args: &[&str]) -> (bool, Value, String) {
    let mut all = vec!["--json"];
    all.extend(args);
    let out = sd.cmd(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let job = stdout
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    let text = stdout + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), job, text)
}

#[test]
fn a_job_with_failed_items_says_so_and_names_the_cause() {
    let mut sd = Sd::new();
    let src = sd.tmp.path().join("src");
    write(&src.join("r1.bin"), &[1u8; 1000]);
    write(&src.join("r2.bin"), &[2u8; 1000]);
    write(&src.join("sub/x.txt"), b"x");
    let dst = sd.tmp.path().join("locked");
    std::fs::create_dir_all(&dst).unwrap();
    let Some(_locked) = Immutable::new(&dst) else {
        eprintln!(
            "skipping: chattr +i is not available here (needs root and ext4/xfs/btrfs/tmpfs)"
        );
        return;
    };
    let (src_s, dst_s) = (src.to_str().unwrap(), dst.to_str().unwrap());
    let r1 = src.join("r1.bin");
    let r2 = src.join("r2.bin");
    let (r1, r2) = (r1.to_str().unwrap(), r2.to_str().unwrap());

    // The preview foresees it; the commit is refused before anything runs.
    let p = sd.json(["cp", src_s, dst_s, "--preview"]);
    assert_eq!(p["plan"]["blocked"][0]["path"], dst_s, "{p}");
    let text = sd.ok(["cp", src_s, dst_s, "--preview"]);
    assert!(
        text.contains(&format!("cannot start: cannot write into {dst_s}"))
            && text.contains("Operation not permitted"),
        "{text}"
    );
    let e = sd.fails(["cp", r1, r2, dst_s]);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("cannot write into {dst_s}")) && msg.contains("Nothing was changed"),
        "{msg}"
    );
    let e = sd.fails(["mv", src_s, dst_s]);
    assert!(e["message"].as_str().unwrap().contains("chattr"), "{e}");
    assert!(src.join("r1.bin").exists());

    // When the folder turns unwritable after the preview (the check skipped to get there), the
    // job runs, and ends in a state that says items failed, naming the user's paths.
    sd.ok(["stop"]);
    sd.env("SPACEDRIVE_DEBUG_SKIP_WRITE_CHECK", "1");
    let (ok, job, text) = run_op(&sd, &["cp", r1, r2, dst_s]);
    assert!(!ok, "a job with failed items must exit non-zero: {text}");
    assert_eq!(job["state"], "completed_with_errors", "{job}");
    assert_eq!(job["progress"]["failed"], 2, "{job}");
    assert!(
        !text.contains(".sd-part"),
        "errors name temporaries: {text}"
    );
    let err = job["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("2 of 2 steps failed")
            && err.contains(&format!("{dst_s}/r1.bin: cannot write into {dst_s}"))
            && err.contains("Operation not permitted"),
        "{err}"
    );
    // A folder copied into it: the folder fails with the cause, and what is inside it with the
    // folder's failure, not a "No such file" per item.
    let (ok, job, text) = run_op(&sd, &["cp", src_s, dst_s]);
    assert!(!ok);
    assert_eq!(job["state"], "completed_with_errors", "{job}");
    assert!(
        !text.contains(".sd-part") && !text.contains("No such file"),
        "{text}"
    );
    let errors: Vec<&str> = job["progress"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 5, "src, r1, r2, sub, sub/x: {errors:?}");
    assert!(
        errors[0].starts_with(&format!("{dst_s}/src: cannot write into {dst_s}")),
        "{errors:?}"
    );
    assert!(
        errors[1..]
            .iter()
            .all(|e| e.contains(&format!("could not be made (cannot write into {dst_s}"))),
        "{errors:?}"
    );
    // The text output says it too, and the state is what `job list` and `history` show.
    let (ok, _, text) = run_op(&sd, &["cp", r1, dst_s]);
    assert!(!ok);
    let out = sd.cmd(["cp", r1, dst_s]);
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        shown.contains("completed_with_errors") && shown.contains("1 of 1 steps failed"),
        "{shown} / {text}"
    );
    let jobs = sd.json(["job", "list"]);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "completed_with_errors"),
        "{jobs}"
    );
    let h = sd.json(["history"]);
    assert!(
        h.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "file.copy")
            .all(|r| r["result"] == "completed_with_errors"),
        "{h}"
    );

    // A job with nothing failed still completes, exit 0.
    let fine = sd.tmp.path().join("fine");
    std::fs::create_dir_all(&fine).unwrap();
    let (ok, job, text) = run_op(&sd, &["cp", r1, fine.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(job["state"], "completed");
}
