//! Test harness: a temp data folder per test, the CLI run as a subprocess, the daemon it starts
//! stopped (or killed) on drop.

mod actions;
mod browser;
mod cdp;
mod cli_output;
mod content;
mod crash;
mod encryption;
mod fileop_outcomes;
mod http;
mod index;
mod library;
mod network;
mod organise;
mod search_input;
mod sidecars;
mod spacedrop;
mod transfer;
mod volume;
mod watch;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_spacedrive");

/// One isolated Spacedrive installation: its own data folder and daemon.
pub struct Sd {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    env: Vec<(String, String)>,
    /// Network namespace the CLI (and so its daemon) runs in, if not this one.
    netns: Option<String>,
    /// Whether the libraries the daemon creates are encrypted: the suite's encrypted mode.
    encrypt_new: bool,
}

impl Sd {
    pub fn new() -> Sd {
        let tmp = tempfile::Builder::new()
            .prefix("sd-e2e")
            .tempdir()
            .expect("tempdir");
        let data = tmp.path().join("data");
        Sd {
            tmp,
            data,
            env: Vec::new(),
            netns: None,
            encrypt_new: encrypted_mode(),
        }
    }

    /// Libraries are created as asked, plain unless `--encrypt`, in the encrypted mode too (for
    /// the tests of encryption itself).
    pub fn plain_by_default(mut self) -> Sd {
        self.encrypt_new = false;
        self
    }

    /// Runs the CLI (and the daemon it starts) in network namespace `ns`.
    pub fn in_netns(&mut self, ns: &str) {
        self.netns = Some(ns.to_owned());
    }

    fn base_command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        }
    }

    /// Sets an environment variable for the CLI (and so for a daemon it starts).
    pub fn env(&mut self, k: &str, v: &str) {
        self.env.push((k.into(), v.into()));
    }

    pub fn clear_env(&mut self) {
        self.env.clear();
    }

    /// The command line `cmd` runs, not yet started (for long-running commands).
    pub fn command(&self) -> Command {
        let mut c = self.base_command();
        c.arg("--data-dir").arg(&self.data);
        // The trash (freedesktop) of this installation lives in its temp folder, not the user's.
        c.env("XDG_DATA_HOME", self.tmp.path().join("xdg"));
        // Dates the CLI reads and shows are local times: the same zone on every machine (a test
        // may set another with `env`).
        c.env("TZ", "UTC");
        // Daemons listen on loopback only and announce nothing on the LAN: test traffic stays
        // on this machine (the mDNS test uses its own network namespaces).
        c.env("SPACEDRIVE_NET_HOST", "127.0.0.1");
        c.env("SPACEDRIVE_MDNS", "0");
        // The web UI on any free port: tests run side by side and never take the default one.
        c.env("SPACEDRIVE_HTTP_PORT", "0");
        // The encrypted mode of the suite (`SPACEDRIVE_TEST_ENCRYPTED=1`): every library the
        // daemon creates is encrypted, its key remembered so it opens at start-up.
        if self.encrypt_new {
            c.env(
                "SPACEDRIVE_DEBUG_ENCRYPT_NEW_LIBRARIES",
                "e2e suite passphrase",
            );
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.env_remove("SPACEDRIVE_DATA_DIR");
        c
    }

    pub fn cmd<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command()
            .args(args)
            .output()
            .expect("running spacedrive")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "spacedrive {shown:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command with `--json` that must succeed; parses its document.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["--json".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        let out = self.ok(all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }

    /// Runs a command that must fail; returns its `{"error": …}` object.
    pub fn fails<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["--json".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        let out = self.cmd(all);
        assert!(
            !out.status.success(),
            "expected failure, got {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("error JSON");
        v["error"].clone()
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        let v: Value = serde_json::from_str(&String::from_utf8_lossy(
            &self.cmd(["--json", "status"]).stdout,
        ))
        .ok()?;
        v["status"]["pid"].as_i64().map(|p| p as i32)
    }

    /// SIGKILLs the daemon and waits (up to `limit`) until it is gone.
    pub fn kill_daemon(&self, limit: Duration) {
        let pid = self.daemon_pid().expect("daemon pid");
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -KILL {pid}");
        wait_until("the daemon to die", limit, || self.daemon_pid().is_none());
    }

    /// Waits until job `id` has ended; returns it.
    pub fn wait_job(&self, library: &str, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let j = self.json(["-L", library, "job", "info", &id.to_string()]);
            if matches!(
                j["state"].as_str(),
                Some("completed" | "completed_with_errors" | "failed" | "cancelled")
            ) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {j}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every entry below an indexed path, keyed by path relative to it:
    /// (id, kind, size, inode).
    pub fn tree(
        &self,
        library: &str,
        path: &Path,
    ) -> std::collections::BTreeMap<Vec<u8>, (i64, String, u64, u64)> {
        let l = self.json([
            "-L".as_ref(),
            library.as_ref(),
            "ls".as_ref(),
            path.as_os_str(),
            "--recursive".as_ref(),
        ]);
        let base = json_path(&l["entry"]["path"]);
        l["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                let p = json_path(&e["path"]);
                let rel = p
                    .strip_prefix(&base)
                    .expect("under base")
                    .as_os_str()
                    .as_encoded_bytes()
                    .to_vec();
                (
                    rel,
                    (
                        e["id"].as_i64().unwrap(),
                        e["kind"].as_str().unwrap().to_owned(),
                        e["size"].as_u64().unwrap(),
                        e["inode"].as_u64().unwrap(),
                    ),
                )
            })
            .collect()
    }
}

impl Drop for Sd {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

/// Decodes a JSON path: a string, or `{"bytes": base64}`.
pub fn json_path(v: &Value) -> PathBuf {
    use base64::Engine as _;
    use std::os::unix::ffi::OsStringExt;
    match v {
        Value::String(s) => PathBuf::from(s),
        Value::Object(o) => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(o["bytes"].as_str().expect("bytes"))
                .expect("base64");
            PathBuf::from(std::ffi::OsString::from_vec(b))
        }
        other => panic!("not a path: {other}"),
    }
}

/// A realistic tree of `n` files from the project's generator (`sd-treegen`, seed 42) at
/// `dir/tree`: copies, near-duplicates, odd names, links, .gitignore projects.
pub fn corpus(dir: &Path, n: usize) -> PathBuf {
    corpus_with_stats(dir, n).0
}

/// `corpus`, with what the generator says it planted.
pub fn corpus_with_stats(dir: &Path, n: usize) -> (PathBuf, sd_treegen::Stats) {
    let root = dir.join("tree");
    let options = sd_treegen::Options::new(sd_treegen::Profile::Realistic, n);
    let stats = sd_treegen::generate(&root, &options)
        .unwrap_or_else(|e| panic!("generating {}: {e}", root.display()));
    (root, stats)
}

/// Counts from the independent os.walk script.
pub fn expected_counts(root: &Path, extra: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected_counts.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(root)
        .args(extra)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("counts JSON")
}

/// Whether the suite runs in its encrypted mode: as the `encrypted` test target (the whole
/// suite again, `tests/encrypted.rs`), or with `SPACEDRIVE_TEST_ENCRYPTED=1`.
pub fn encrypted_mode() -> bool {
    env!("CARGO_CRATE_NAME") == "encrypted"
        || std::env::var_os("SPACEDRIVE_TEST_ENCRYPTED").is_some_and(|v| v == "1")
}

/// Opens a library database the way a test inspects it: read-write, with its key when the
/// library is encrypted (the remembered key in `<data>/keys/`).
pub fn open_db(db: &Path) -> rusqlite::Connection {
    open_db_with(db, rusqlite::OpenFlags::default())
}

/// [`open_db`] with `flags`.
pub fn open_db_with(db: &Path, flags: rusqlite::OpenFlags) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(db, flags).expect("open db");
    let lib = db.parent().expect("library folder");
    let config: Value =
        serde_json::from_slice(&std::fs::read(lib.join("library.json")).expect("library.json"))
            .expect("library.json is JSON");
    if !config["encryption"].is_null() {
        let data = lib
            .parent()
            .and_then(Path::parent)
            .expect("<data>/libraries/<library>");
        let id = config["id"].as_str().expect("library id");
        let key = std::fs::read_to_string(data.join("keys").join(format!("{id}.key")))
            .expect("the encrypted library's key is remembered");
        c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.trim()))
            .expect("PRAGMA key");
    }
    c
}

/// The folder the library at `lib` keeps its sidecars in: `sidecars/`, or an encrypted library's
/// `sidecars-<key id>/`.
pub fn sidecar_dir(lib: &Path) -> PathBuf {
    std::fs::read_dir(lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("sidecars-"))
        })
        .unwrap_or_else(|| lib.join("sidecars"))
}

/// The bytes of a sidecar file: opened with the library's remembered key when it is sealed (an
/// encrypted library's sidecars live in `sidecars-<key id>/`).
pub fn read_sidecar(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Some(root) = path.ancestors().find(|a| {
        a.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sidecars-"))
    }) else {
        return bytes;
    };
    let lib = root.parent().expect("library folder");
    let data = lib.parent().and_then(Path::parent).expect("data folder");
    let config: Value =
        serde_json::from_slice(&std::fs::read(lib.join("library.json")).unwrap()).unwrap();
    let id: uuid::Uuid = config["id"].as_str().unwrap().parse().unwrap();
    let key = sd_core::crypt::KeyStore::new(data)
        .get(id)
        .expect("the encrypted library's key is remembered");
    let place = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    key.sealer()
        .open(&place, &bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `PRAGMA integrity_check` of a library database.
pub fn integrity(db: &Path) -> String {
    let c = open_db_with(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY);
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// Writes a file, creating its folders.
pub fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("a file inside a folder")).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Polls `f` until it holds; fails the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A filesystem mounted for a test; unmounted on drop, so a failing test never leaves it behind.
pub struct Mounted(Option<PathBuf>);

impl Mounted {
    /// `mount ARGS DIR`; `None` when this machine does not let the tests mount.
    pub fn mount(args: &[&OsStr], dir: &Path) -> Option<Mounted> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(args)
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| Mounted(Some(dir.to_path_buf())))
    }

    /// A tmpfs of `size` (e.g. "1m"), with extra options (e.g. ",ro").
    pub fn tmpfs(size: &str, extra: &str, dir: &Path) -> Option<Mounted> {
        let opts = format!("size={size}{extra}");
        Mounted::mount(
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "tmpfs".as_ref(),
            ],
            dir,
        )
    }

    pub fn unmount(&mut self) {
        if let Some(d) = self.0.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !Command::new("umount")
                .arg(&d)
                .status()
                .is_ok_and(|s| s.success())
            {
                assert!(Instant::now() < deadline, "cannot unmount {}", d.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
    }
}
