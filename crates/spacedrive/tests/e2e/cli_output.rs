//! The CLI as a demanding user meets it: output into a pipe that closes early, a library named
//! that does not exist, a location whose folder was renamed, names holding control characters.

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{BIN, Sd, json_path, wait_until, write};

#[test]
fn every_command_exits_quietly_into_a_closed_pipe() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("tree");
    for i in 0..600 {
        // Pairs of identical files, so `dupes` has plenty to print.
        write(
            &root.join(format!("d{}/file-{i}.txt", i % 7)),
            format!("content {}", i / 2).as_bytes(),
        );
    }
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    let r = root.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["dupes", r],
        &["dupes"],
        &["--json", "dupes", r],
        &["ls", r, "--recursive"],
        &["--json", "ls", r, "--recursive"],
        &["search", "file", "--limit", "1000"],
        &["location", "list"],
        &["location", "info", "1"],
        &["job", "list"],
        &["history"],
        &["library", "list"],
        &["status"],
        &["index", "quick-scan", r],
    ];
    for args in commands {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&sd.data)
            .env("XDG_DATA_HOME", sd.tmp.path().join("xdg"))
            .args(*args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running spacedrive");
        // The reader goes away before the first line arrives, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{args:?}: {:?}, stderr: {stderr}",
            out.status
        );
    }
}

#[test]
fn a_library_named_with_dash_l_must_exist_and_apply() {
    let sd = Sd::new();
    sd.ok(["library", "create", "Main"]);
    sd.ok(["library", "create", "Other"]);
    let dir = sd.tmp.path().join("d");
    write(&dir.join("a.txt"), b"a");
    let d = dir.to_str().unwrap();

    let e = sd.fails(["-L", "nosuch", "library", "info"]);
    assert!(e["message"].as_str().unwrap().contains("nosuch"), "{e}");
    let info = sd.json(["-L", "Other", "library", "info"]);
    assert_eq!(info["name"], "Other", "{info}");
    assert_eq!(sd.json(["library", "info", "Other"])["name"], "Other");
    sd.fails(["-L", "Main", "library", "info", "Other"]);
    // Commands that act on no library refuse the flag instead of ignoring it.
    for args in [
        &["library", "create", "Third"][..],
        &["library", "use", "Other"],
        &["library", "list"],
        &["status"],
        &["index", "quick-scan", d],
    ] {
        let mut all = vec!["-L", "Main"];
        all.extend(args);
        let e = sd.fails(&all);
        assert!(
            e["message"].as_str().unwrap().contains("does not apply"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(sd.json(["library", "list"]).as_array().unwrap().len(), 2);
    // A library named for a command that may not need one must still exist.
    let e = sd.fails(["-L", "nosuch", "dupes", d]);
    assert!(e["message"].as_str().unwrap().contains("nosuch"), "{e}");
    sd.json(["-L", "Other", "dupes", d]);
}

#[test]
fn a_location_whose_folder_was_moved_away_says_so_everywhere() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("projects");
    write(&root.join("a.txt"), b"a");
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    // Moved away (a rename in place is followed: see organise.rs).
    let renamed = sd.tmp.path().join("elsewhere/projects-old");
    std::fs::create_dir(sd.tmp.path().join("elsewhere")).unwrap();
    std::fs::rename(&root, &renamed).unwrap();
    wait_until(
        "the location to go offline",
        Duration::from_secs(15),
        || sd.json(["location", "list"])[0]["online"] == false,
    );
    let info = sd.json(["location", "info", "1"]);
    assert_eq!(info["online"], false, "{info}");
    let why = info["offline_reason"].as_str().unwrap();
    assert!(
        why.contains("missing") && why.contains(root.to_str().unwrap()),
        "{why}"
    );
    assert!(!why.contains("not mounted"), "the drive is mounted: {why}");
    assert_eq!(sd.json(["location", "list"])[0]["offline_reason"], why);
    // The text output of list and info agree.
    let list = sd.ok(["location", "list"]);
    assert!(list.contains("offline"), "{list}");
    let text = sd.ok(["location", "info", "1"]);
    assert!(
        text.contains("state: offline (its folder") && text.contains("missing"),
        "{text}"
    );
    let e = sd.fails(["location", "rescan", "1"]);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("missing") && !msg.contains("not mounted"),
        "{msg}"
    );
    // Back where it was: online again, no reason.
    std::fs::rename(&renamed, &root).unwrap();
    wait_until("the location to come back", Duration::from_secs(15), || {
        sd.json(["location", "list"])[0]["online"] == true
    });
    assert!(sd.json(["location", "info", "1"])["offline_reason"].is_null());
}

#[test]
fn text_output_escapes_control_characters_in_names() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("odd");
    let evil = std::ffi::OsStr::from_bytes(b"evil\nname\x1b[31mred\x07.txt");
    write(&root.join(evil), b"x");
    write(&root.join("tab\there.txt"), b"x");
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    let shown = r"evil\nname\x1b[31mred\x07.txt";
    let check = |what: &str, out: &str| {
        assert!(
            !out.bytes().any(|b| b == 0x1b || b == 0x07 || b == b'\t'),
            "{what}: raw control characters: {out:?}"
        );
        assert!(out.contains(shown), "{what}: {out}");
        assert!(
            !out.lines().any(|l| l.starts_with("name")),
            "{what}: a name broke a line: {out}"
        );
    };
    check("ls", &sd.ok(["ls", root.to_str().unwrap()]));
    check(
        "ls --recursive",
        &sd.ok(["ls", root.to_str().unwrap(), "--recursive"]),
    );
    check("search", &sd.ok(["search", "evil"]));
    check(
        "quick-scan",
        &sd.ok(["index", "quick-scan", root.to_str().unwrap()]),
    );
    assert!(
        sd.ok(["ls", root.to_str().unwrap()])
            .contains(r"tab\there.txt")
    );
    // JSON keeps the exact name.
    let r = sd.json(["search", "evil"]);
    assert_eq!(json_path(&r["hits"][0]["path"]), root.join(evil));
}
