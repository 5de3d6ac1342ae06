//! Libraries: lifecycle, locks, versions, the daemon's lifecycle.

use std::process::Command;

use super::{BIN, Sd, integrity};

#[test]
fn library_lifecycle() {
    let sd = Sd::new();
    // A failed first `location add` creates nothing.
    let err = sd.fails(["location", "add", "/nonexistent/folder"]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot add /nonexistent/folder"),
        "{err}"
    );
    assert_eq!(sd.json(["library", "list"]).as_array().unwrap().len(), 0);
    let created = sd.json(["library", "create", "My Files"]);
    assert_eq!(created["name"], "My Files");
    assert!(
        sd.data
            .join("libraries/My Files.sdlibrary/library.db")
            .exists()
    );
    assert!(
        sd.data
            .join("libraries/My Files.sdlibrary/library.json")
            .exists()
    );
    assert!(
        sd.data.join("device.json").exists(),
        "device identity created on first run"
    );
    let dev1 = std::fs::read(sd.data.join("device.json")).unwrap();
    sd.json(["library", "create", "Second"]);
    let list = sd.json(["library", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        list[0]["default"], true,
        "the first library is the default: {list}"
    );
    assert_eq!(
        sd.fails(["library", "create", "second"])["code"],
        "conflict"
    );
    assert_eq!(
        sd.fails(["library", "create", "../evil"])["code"],
        "invalid"
    );

    let renamed = sd.json(["library", "rename", "Second", "Renamed"]);
    assert_eq!(renamed["name"], "Renamed");
    assert!(
        sd.data
            .join("libraries/Renamed.sdlibrary/library.db")
            .exists()
    );
    assert!(!sd.data.join("libraries/Second.sdlibrary").exists());
    let info = sd.json(["library", "info", "Renamed"]);
    assert_eq!(info["schema_version"], sd_core::store::SCHEMA_VERSION);
    assert_eq!(info["id"], renamed["id"], "renaming keeps the id");

    let out = sd.cmd(["library", "delete", "Renamed"]);
    assert!(
        !out.status.success(),
        "delete without --yes and no terminal must refuse"
    );
    sd.json(["library", "delete", "Renamed", "--yes"]);
    assert!(!sd.data.join("libraries/Renamed.sdlibrary").exists());
    assert_eq!(sd.json(["library", "list"]).as_array().unwrap().len(), 1);

    // Restarting keeps everything, including the device id.
    sd.ok(["stop"]);
    assert_eq!(sd.json(["library", "list"])[0]["name"], "My Files");
    assert_eq!(std::fs::read(sd.data.join("device.json")).unwrap(), dev1);
}

#[test]
fn second_daemon_on_the_same_library_gets_a_clear_error() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("docs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    sd.ok(["library", "create", "Shared"]);
    sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    let first_pid = sd.daemon_pid().unwrap();

    // Another daemon on the same data folder refuses to start.
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&sd.data)
        .arg("daemon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already using") && err.contains(&first_pid.to_string()),
        "{err}"
    );

    // Another daemon (own data folder) reaching the same library folder gets a clear error.
    let other = Sd::new();
    std::fs::create_dir_all(&other.data).unwrap();
    std::os::unix::fs::symlink(sd.data.join("libraries"), other.data.join("libraries")).unwrap();
    let list = other.json(["library", "list"]);
    assert_eq!(list[0]["status"], "library_locked", "{list}");
    let msg = list[0]["error"].as_str().unwrap();
    assert!(
        msg.contains("in use by another Spacedrive daemon") && msg.contains(&first_pid.to_string()),
        "{msg}"
    );
    let err = other.fails(["location", "list"]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("in use by another Spacedrive daemon"),
        "{err}"
    );
    drop(other);

    // The first daemon is unharmed.
    assert_eq!(sd.daemon_pid(), Some(first_pid));
    assert_eq!(sd.json(["location", "list"])[0]["files"], 1);
    sd.ok(["stop"]);
    assert_eq!(
        integrity(&sd.data.join("libraries/Shared.sdlibrary/library.db")),
        "ok"
    );
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let sd = Sd::new();
    sd.ok(["library", "create", "Future"]);
    sd.ok(["stop"]);
    let db = sd.data.join("libraries/Future.sdlibrary/library.db");
    {
        let c = super::open_db(&db);
        c.pragma_update(None, "user_version", 99).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let list = sd.json(["library", "list"]);
    assert_eq!(list[0]["status"], "newer_version", "{list}");
    let msg = list[0]["error"].as_str().unwrap();
    assert!(
        msg.contains("newer Spacedrive") && msg.contains("not modified"),
        "{msg}"
    );
    let err = sd.fails(["location", "list"]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("newer Spacedrive"),
        "{err}"
    );
    sd.ok(["stop"]);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the newer library must not be modified"
    );
    assert!(!db.with_extension("db-wal").exists());
}

#[test]
fn socket_is_private_and_stop_is_clean() {
    use std::os::unix::fs::PermissionsExt;
    let sd = Sd::new();
    sd.ok(["library", "create", "S"]);
    let mode = std::fs::metadata(sd.data.join("daemon.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let status = sd.json(["status"]);
    assert_eq!(status["running"], true);
    sd.ok(["stop"]);
    assert!(!sd.data.join("daemon.sock").exists());
    assert_eq!(sd.json(["status"])["running"], false);
}

/// Issue 10.1: a lookup by name never picks another library. Exact names win, a name that only
/// matches ignoring case is taken when it is the only one, anything ambiguous is refused with the
/// candidates, and rename applies create's rule.
#[test]
fn library_names_exact_first_ambiguity_refused() {
    let sd = Sd::new();
    sd.json(["library", "create", "Photos"]);
    sd.json(["library", "create", "work"]);
    // The reproduction: rename work → photos used to be allowed, then `delete photos` removed Photos.
    let err = sd.fails(["library", "rename", "work", "photos"]);
    assert_eq!(err["code"], "conflict", "{err}");
    assert!(sd.data.join("libraries/work.sdlibrary").exists());
    // A case-only rename of a library to itself is fine.
    assert_eq!(
        sd.json(["library", "rename", "work", "Work"])["name"],
        "Work"
    );
    // A unique case-insensitive match is still understood.
    assert_eq!(
        sd.json(["-L", "photos", "library", "info"])["name"],
        "Photos"
    );

    // Two libraries whose names differ only by case (made by an older build): simulate one by
    // copying a library folder and giving the copy its own id and name.
    sd.ok(["stop"]);
    let src = sd.data.join("libraries/Photos.sdlibrary");
    let dst = sd.data.join("libraries/photos.sdlibrary");
    std::fs::create_dir(&dst).unwrap();
    for f in ["library.db", "library.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst.join("library.json")).unwrap()).unwrap();
    // In the suite's encrypted mode the copy's key is remembered under its new id too.
    let key = |id: &serde_json::Value| sd.data.join(format!("keys/{}.key", id.as_str().unwrap()));
    if key(&cfg["id"]).exists() {
        std::fs::copy(
            key(&cfg["id"]),
            key(&"0f0f0f0f-0000-4000-8000-000000000001".into()),
        )
        .unwrap();
    }
    cfg["name"] = "photos".into();
    cfg["id"] = "0f0f0f0f-0000-4000-8000-000000000001".into();
    std::fs::write(dst.join("library.json"), cfg.to_string()).unwrap();
    assert_eq!(sd.json(["library", "list"]).as_array().unwrap().len(), 3);

    // Exact names pick exactly their library.
    assert_eq!(
        sd.json(["-L", "photos", "library", "info"])["name"],
        "photos"
    );
    assert_eq!(
        sd.json(["-L", "Photos", "library", "info"])["name"],
        "Photos"
    );
    // A name matching two libraries only ignoring case is refused, listing both.
    for cmd in [
        vec!["library", "delete", "PHOTOS", "--yes"],
        vec!["library", "use", "PHOTOS"],
        vec!["-L", "PHOTOS", "location", "list"],
        vec!["library", "rename", "PHOTOS", "Other"],
    ] {
        let err = sd.fails(&cmd);
        assert_eq!(err["code"], "ambiguous", "{cmd:?}: {err}");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains("\"Photos\"") && msg.contains("\"photos\""),
            "{msg}"
        );
    }
    // Deleting by exact name deletes that one and no other.
    sd.ok(["library", "delete", "photos", "--yes"]);
    assert!(src.exists(), "Photos must survive `library delete photos`");
    assert!(!dst.exists());
    let names: Vec<String> = sd
        .json(["library", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Photos", "Work"]);
}

/// Processes running `spacedrive … daemon` for this installation's data folder.
fn daemons_of(sd: &Sd) -> Vec<i32> {
    let data = sd.data.as_os_str().as_encoded_bytes().to_vec();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        });
        if !zombie && args.contains(&b"daemon".as_slice()) && args.contains(&data.as_slice()) {
            pids.push(pid);
        }
    }
    pids
}

/// Issue 10.7: concurrent first commands start exactly one daemon, and concurrent first
/// `location add`s share the one default library they create.
#[test]
fn concurrent_first_commands_start_one_daemon_and_one_library() {
    let sd = Sd::new();
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| sd.json(["library", "list"])))
            .collect();
        for r in runs {
            r.join().unwrap();
        }
    });
    let pid = sd.daemon_pid().unwrap();
    // Daemons that lost the race would wait up to 5 s for the lock before giving up.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(daemons_of(&sd), [pid], "exactly one daemon process");
    sd.ok(["stop"]);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(daemons_of(&sd).is_empty(), "no daemon took over after stop");

    // Fresh data folder, two first `location add`s at once.
    let sd = Sd::new();
    let (a, b) = (sd.tmp.path().join("a"), sd.tmp.path().join("b"));
    super::write(&a.join("1.txt"), b"1");
    super::write(&b.join("2.txt"), b"2");
    std::thread::scope(|s| {
        let x = s.spawn(|| sd.json(["location".as_ref(), "add".as_ref(), a.as_os_str()]));
        let y = s.spawn(|| sd.json(["location".as_ref(), "add".as_ref(), b.as_os_str()]));
        x.join().unwrap();
        y.join().unwrap();
    });
    let libs = sd.json(["library", "list"]);
    assert_eq!(libs.as_array().unwrap().len(), 1, "{libs}");
    assert_eq!(sd.json(["location", "list"]).as_array().unwrap().len(), 2);
}

/// Issue 11: the socket answers an oversized or non-UTF-8 request with `bad_request` (it used to
/// read a 50 MB line whole, and close the connection on invalid UTF-8).
#[test]
fn oversized_and_invalid_requests_get_bad_request() {
    use std::io::{BufRead, BufReader, Write};
    let sd = Sd::new();
    sd.json(["library", "list"]); // starts the daemon
    let ask = |body: Vec<u8>| -> serde_json::Value {
        let s = std::os::unix::net::UnixStream::connect(sd.data.join("daemon.sock")).unwrap();
        let mut w = s.try_clone().unwrap();
        // The daemon answers before the whole body is sent: write from another thread.
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&body);
        });
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let _ = writer.join();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    let t = std::time::Instant::now();
    let mut huge = b"{\"method\": \"search.query\", \"params\": {\"query\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 50 << 20));
    let v = ask(huge);
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{v}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    let v = ask(b"{\"method\": \"library.use\", \"params\": {\"library\": \"\xff\"}}\n".to_vec());
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{v}"
    );
    let v = ask(b"{\"method\": \"no.such\"}\n".to_vec());
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    // The daemon is still there.
    sd.json(["library", "list"]);
}
