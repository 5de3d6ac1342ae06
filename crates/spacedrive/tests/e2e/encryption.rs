//! Encrypted libraries: nothing in the clear on disk, locked after a restart, wrong and missing
//! passphrases, `--remember`, and encrypt / decrypt / passphrase changes killed at every step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Sd, write};

const LIMIT: Duration = Duration::from_secs(20);

/// Words put into the library (file and folder names, a tag, a note) that must never appear in
/// its files on disk.
const SECRETS: &[&str] = &[
    "zebrasecretalpha",
    "quasarproject",
    "tagwordorchid",
    "notephrasemarmalade",
];

fn passfile(sd: &Sd, name: &str, pass: &str) -> PathBuf {
    let p = sd.tmp.path().join(name);
    std::fs::write(&p, format!("{pass}\n")).unwrap();
    p
}

/// A folder whose names carry the secrets, with a picture (a thumbnail is made of it).
fn secret_tree(sd: &Sd) -> PathBuf {
    let root = sd.tmp.path().join("files");
    write(&root.join("zebrasecretalpha-plans.txt"), b"first");
    write(&root.join("quasarproject/budget.txt"), b"second");
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    write(&root.join("quasarproject/picture.png"), png.get_ref());
    root
}

/// Every file under `dir`, with its bytes (but the lock file, which holds the daemon's pid).
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && e.file_name() != "library.lock" {
                // A file may go (a WAL checkpointed) between listing and reading.
                if let Ok(b) = std::fs::read(e.path()) {
                    out.push((e.path(), b));
                }
            }
        }
    }
    out.sort();
    out
}

/// Fails if any secret word is in a file of the library folder (or in its file names).
fn assert_no_secrets(lib: &Path) {
    let files = files_under(lib);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("library.db")),
        "{files:?}"
    );
    for (path, bytes) in &files {
        for s in SECRETS {
            assert!(
                !path.to_string_lossy().contains(s),
                "{} is named after a secret",
                path.display()
            );
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds {s:?} in the clear",
                path.display()
            );
        }
    }
}

fn hits(sd: &Sd, lib: &str, text: &str) -> Vec<String> {
    let r = sd.json(["-L", lib, "search", text]);
    let mut v: Vec<String> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| super::json_path(&h["path"]).display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn an_encrypted_library_holds_nothing_in_the_clear_and_is_locked_after_a_restart() {
    let sd = Sd::new().plain_by_default();
    let root = secret_tree(&sd);
    let pass = passfile(&sd, "pass", "correct horse battery staple");
    let made = sd.json([
        "library".as_ref(),
        "create".as_ref(),
        "Vault".as_ref(),
        "--encrypt".as_ref(),
        "--passphrase-file".as_ref(),
        pass.as_os_str(),
    ]);
    assert_eq!(made["encrypted"], true, "{made}");
    assert!(made["key_file"].is_null(), "{made}");
    let lib_dir = sd.data.join("libraries/Vault.sdlibrary");
    let config: Value =
        serde_json::from_slice(&std::fs::read(lib_dir.join("library.json")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
    assert_eq!(config["encryption"]["kdf"]["algorithm"], "argon2id");
    assert!(config["encryption"]["kdf"]["memory_kib"].as_u64().unwrap() >= 65536);

    sd.ok([
        "-L",
        "Vault",
        "location",
        "add",
        root.to_str().unwrap(),
        "--mode",
        "deep",
    ]);
    sd.ok(["-L", "Vault", "tag", "create", "tagwordorchid"]);
    let plans = root.join("zebrasecretalpha-plans.txt");
    sd.ok([
        "-L",
        "Vault",
        "tag",
        "apply",
        "tagwordorchid",
        plans.to_str().unwrap(),
    ]);
    sd.ok([
        "-L",
        "Vault",
        "note",
        plans.to_str().unwrap(),
        "notephrasemarmalade",
    ]);
    let picture = root.join("quasarproject/picture.png");
    let thumb = sd.json(["-L", "Vault", "thumb", picture.to_str().unwrap()]);
    assert_eq!(thumb["sealed"], true, "{thumb}");
    let thumb_path = super::json_path(&thumb["path"]);
    assert!(
        thumb_path.starts_with(&lib_dir) && thumb_path.is_file(),
        "{thumb}"
    );

    let zebra = hits(&sd, "Vault", "zebrasecret");
    let quasar = hits(&sd, "Vault", "quasar");
    assert_eq!(zebra.len(), 1, "{zebra:?}");
    assert_eq!(quasar.len(), 1, "{quasar:?}");
    let tagged = sd.json(["-L", "Vault", "search", "--tag", "tagwordorchid"]);
    assert_eq!(tagged["hits"].as_array().unwrap().len(), 1, "{tagged}");

    // While the daemon runs (the WAL holds the latest writes) and after it stopped.
    assert_no_secrets(&lib_dir);
    sd.ok(["stop"]);
    assert_no_secrets(&lib_dir);

    // After a restart the library is locked: listed so, and every call on it says how to unlock.
    let list = sd.json(["library", "list"]);
    assert_eq!(list[0]["status"], "locked", "{list}");
    assert_eq!(list[0]["encrypted"], true, "{list}");
    let err = sd.fails(["-L", "Vault", "search", "zebrasecret"]);
    assert_eq!(err["code"], "locked", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("spacedrive library unlock"),
        "{err}"
    );
    // Commands naming no library say the same of the default one.
    assert_eq!(sd.fails(["location", "list"])["code"], "locked");

    // A wrong passphrase: refused, nothing on disk changed.
    let before = files_under(&lib_dir);
    let wrong = passfile(&sd, "wrong", "correct horse battery stapler");
    let err = sd.fails([
        "library".as_ref(),
        "unlock".as_ref(),
        "Vault".as_ref(),
        "--passphrase-file".as_ref(),
        wrong.as_os_str(),
    ]);
    assert_eq!(err["code"], "wrong_passphrase", "{err}");
    assert_eq!(err["message"], "wrong passphrase for library \"Vault\"");
    assert_eq!(files_under(&lib_dir), before);

    // No passphrase at all (nothing on stdin, no file): a clear error before the daemon is asked.
    let out = sd
        .command()
        .args(["library", "unlock", "Vault"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no passphrase"), "{stderr}");

    // The passphrase on stdin unlocks it: the same answers as before the restart.
    let mut child = sd
        .command()
        .args(["--json", "library", "unlock", "Vault"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"correct horse battery staple\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(hits(&sd, "Vault", "zebrasecret"), zebra);
    assert_eq!(hits(&sd, "Vault", "quasar"), quasar);
    let thumb_again = sd.json(["-L", "Vault", "thumb", picture.to_str().unwrap()]);
    assert_eq!(thumb_again["generated"], false, "{thumb_again}");
    assert_eq!(thumb_again["path"], thumb["path"]);
    assert_no_secrets(&lib_dir);
}

#[test]
fn remember_keeps_an_owner_only_key_until_the_library_is_locked() {
    let sd = Sd::new().plain_by_default();
    let pass = passfile(&sd, "pass", "remember me");
    let made = sd.json([
        "library".as_ref(),
        "create".as_ref(),
        "Kept".as_ref(),
        "--encrypt".as_ref(),
        "--remember".as_ref(),
        "--passphrase-file".as_ref(),
        pass.as_os_str(),
    ]);
    let key_file = super::json_path(&made["key_file"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    sd.ok(["stop"]);
    // Opens at start-up with the remembered key.
    let list = sd.json(["library", "list"]);
    assert_eq!(list[0]["status"], "open", "{list}");
    // Locking forgets it: locked now, and after a restart.
    assert_eq!(sd.json(["library", "lock", "Kept"])["locked"], "Kept");
    assert!(!key_file.exists());
    assert_eq!(
        sd.fails(["-L", "Kept", "location", "list"])["code"],
        "locked"
    );
    sd.ok(["stop"]);
    assert_eq!(sd.json(["library", "list"])[0]["status"], "locked");
    // A plain library cannot be locked, and `--remember` needs `--encrypt`.
    sd.ok(["library", "create", "Plain"]);
    assert_eq!(sd.fails(["library", "lock", "Plain"])["code"], "invalid");
    let out = sd.cmd(["library", "create", "P2", "--remember"]);
    assert!(!out.status.success());
    // An empty passphrase is refused.
    let empty = passfile(&sd, "empty", "");
    let out = sd.cmd([
        "library".as_ref(),
        "create".as_ref(),
        "E".as_ref(),
        "--encrypt".as_ref(),
        "--passphrase-file".as_ref(),
        empty.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
}

/// Which passphrase (if any, `""` for a plain library) the library `name` opens with after a
/// restart, trying each of `candidates`; asserts exactly one works.
fn opens_with(sd: &Sd, name: &str, candidates: &[(&str, &Path)]) -> String {
    sd.ok(["stop"]);
    let list = sd.json(["library", "list"]);
    let status = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{list}"))["status"]
        .clone();
    if status == "open" {
        return String::new();
    }
    assert_eq!(status, "locked", "{list}");
    let mut worked = Vec::new();
    for (label, file) in candidates {
        let out = sd.cmd([
            "--json".as_ref(),
            "library".as_ref(),
            "unlock".as_ref(),
            name.as_ref(),
            "--passphrase-file".as_ref(),
            file.as_os_str(),
        ]);
        if out.status.success() {
            worked.push(label.to_string());
        } else {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["error"]["code"], "wrong_passphrase", "{v}");
        }
    }
    assert_eq!(worked.len(), 1, "{name} opened with {worked:?}");
    worked.pop().unwrap()
}

#[test]
fn encrypt_rekey_and_decrypt_killed_at_every_step_open_with_the_old_or_new_passphrase() {
    let mut sd = Sd::new().plain_by_default();
    let root = sd.tmp.path().join("files");
    for i in 0..40 {
        write(&root.join(format!("d{}/file-{i}.txt", i % 4)), b"x");
    }
    sd.ok(["library", "create", "L"]);
    sd.ok([
        "-L",
        "L",
        "location",
        "add",
        root.to_str().unwrap(),
        "--no-watch",
    ]);
    sd.ok(["-L", "L", "tag", "create", "Kept"]);
    sd.ok([
        "-L",
        "L",
        "tag",
        "apply",
        "Kept",
        root.join("d1/file-1.txt").to_str().unwrap(),
    ]);
    let p1 = passfile(&sd, "p1", "first passphrase");
    let p2 = passfile(&sd, "p2", "second passphrase");
    let expect = hits(&sd, "L", "file-1");
    assert_eq!(expect.len(), 11, "{expect:?}");
    let steps = ["exported", "sidecars", "config", "committed", "done"];
    let check = |sd: &Sd| {
        assert_eq!(hits(sd, "L", "file-1"), expect);
        let tagged = sd.json(["-L", "L", "search", "--tag", "Kept"]);
        assert_eq!(tagged["hits"].as_array().unwrap().len(), 1, "{tagged}");
        let db = sd.data.join("libraries/L.sdlibrary");
        assert!(!db.join("library.db.next").exists());
        assert!(!db.join("library.json.next").exists());
    };
    let killed = |sd: &mut Sd, step: &str, args: &[&std::ffi::OsStr]| {
        sd.ok(["stop"]);
        sd.env("SPACEDRIVE_DEBUG_CRYPT_KILL", step);
        let out = sd.cmd(args);
        assert!(!out.status.success(), "the daemon was to die at {step}");
        sd.clear_env();
        super::wait_until("the killed daemon to be gone", LIMIT, || {
            sd.daemon_pid().is_none() || sd.cmd(["status"]).status.success()
        });
    };

    // Encrypt (plain → p1), killed at each step.
    let mut outcomes = Vec::new();
    for step in steps {
        killed(
            &mut sd,
            step,
            &[
                "library".as_ref(),
                "encrypt".as_ref(),
                "L".as_ref(),
                "--passphrase-file".as_ref(),
                p1.as_os_str(),
            ],
        );
        let with = opens_with(&sd, "L", &[("p1", &p1), ("p2", &p2)]);
        check(&sd);
        outcomes.push(format!("{step}:{with}"));
        if with == "p1" {
            // Back to plain for the next round.
            sd.ok([
                "library".as_ref(),
                "decrypt".as_ref(),
                "L".as_ref(),
                "--yes".as_ref(),
                "--passphrase-file".as_ref(),
                p1.as_os_str(),
            ]);
        }
    }
    // Before the commit the library is still plain; from it on, encrypted under p1.
    assert_eq!(
        outcomes,
        [
            "exported:",
            "sidecars:",
            "config:",
            "committed:p1",
            "done:p1"
        ]
    );

    // Change the passphrase (p1 → p2), killed at each step.
    sd.ok([
        "library".as_ref(),
        "encrypt".as_ref(),
        "L".as_ref(),
        "--passphrase-file".as_ref(),
        p1.as_os_str(),
    ]);
    let mut outcomes = Vec::new();
    for step in steps {
        let current = opens_with(&sd, "L", &[("p1", &p1), ("p2", &p2)]);
        let (old, new) = if current == "p1" {
            (&p1, &p2)
        } else {
            (&p2, &p1)
        };
        killed(
            &mut sd,
            step,
            &[
                "library".as_ref(),
                "passphrase".as_ref(),
                "L".as_ref(),
                "--passphrase-file".as_ref(),
                old.as_os_str(),
                "--new-passphrase-file".as_ref(),
                new.as_os_str(),
            ],
        );
        let with = opens_with(&sd, "L", &[("p1", &p1), ("p2", &p2)]);
        check(&sd);
        outcomes.push(format!(
            "{step}:{}",
            if with == current { "old" } else { "new" }
        ));
    }
    assert_eq!(
        outcomes,
        [
            "exported:old",
            "sidecars:old",
            "config:old",
            "committed:new",
            "done:new"
        ]
    );

    // Decrypt, killed at each step.
    let mut outcomes = Vec::new();
    for step in steps {
        let current = opens_with(&sd, "L", &[("p1", &p1), ("p2", &p2)]);
        if current.is_empty() {
            sd.ok([
                "library".as_ref(),
                "encrypt".as_ref(),
                "L".as_ref(),
                "--passphrase-file".as_ref(),
                p1.as_os_str(),
            ]);
        }
        let pass = if current == "p2" { &p2 } else { &p1 };
        killed(
            &mut sd,
            step,
            &[
                "library".as_ref(),
                "decrypt".as_ref(),
                "L".as_ref(),
                "--yes".as_ref(),
                "--passphrase-file".as_ref(),
                pass.as_os_str(),
            ],
        );
        let with = opens_with(&sd, "L", &[("p1", &p1), ("p2", &p2)]);
        check(&sd);
        outcomes.push(format!(
            "{step}:{}",
            if with.is_empty() { "plain" } else { "old" }
        ));
    }
    assert_eq!(
        outcomes,
        [
            "exported:old",
            "sidecars:old",
            "config:old",
            "committed:plain",
            "done:plain"
        ]
    );
    // Audited: each change that completed left its row.
    let audit = sd.ok(["-L", "L", "history", "--limit", "200"]);
    assert!(audit.contains("library.encrypt"), "{audit}");
    assert!(audit.contains("library.decrypt"), "{audit}");
}

#[test]
fn a_newer_or_damaged_encrypted_library_is_refused_and_left_untouched() {
    let sd = Sd::new().plain_by_default();
    let pass = passfile(&sd, "pass", "pp");
    sd.ok([
        "library".as_ref(),
        "create".as_ref(),
        "Future".as_ref(),
        "--encrypt".as_ref(),
        "--passphrase-file".as_ref(),
        pass.as_os_str(),
    ]);
    sd.ok(["stop"]);
    let dir = sd.data.join("libraries/Future.sdlibrary");

    // Newer: the schema version kept in library.json is checked before the database is read.
    let config_path = dir.join("library.json");
    let original = std::fs::read(&config_path).unwrap();
    let mut config: Value = serde_json::from_slice(&original).unwrap();
    config["encryption"]["schema_version"] = 999.into();
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let before = files_under(&dir);
    let err = sd.fails([
        "library".as_ref(),
        "unlock".as_ref(),
        "Future".as_ref(),
        "--passphrase-file".as_ref(),
        pass.as_os_str(),
    ]);
    assert_eq!(err["code"], "newer_version", "{err}");
    sd.ok(["stop"]);
    assert_eq!(files_under(&dir), before);

    // Damaged: the key is right (its check passes) but the first page is not a database.
    std::fs::write(&config_path, &original).unwrap();
    let db = dir.join("library.db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[100..600] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let before = files_under(&dir);
    let err = sd.fails([
        "library".as_ref(),
        "unlock".as_ref(),
        "Future".as_ref(),
        "--passphrase-file".as_ref(),
        pass.as_os_str(),
    ]);
    assert_eq!(err["code"], "corrupt", "{err}");
    sd.ok(["stop"]);
    assert_eq!(files_under(&dir), before);
}
