//! A library: a self-contained `Name.sdlibrary/` folder holding `library.json` (versioned config),
//! `library.db` (SQLite), and `library.lock` (held by the daemon that has it open).
//!
//! Architecture Invariant: a library written by a newer build, or one another process holds, is
//! refused before a single byte of it is written.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::any::{Any, TypeId};
use std::sync::Condvar;
use std::thread::JoinHandle;

use crate::control::{Control, JobState};
use crate::crypt::{Kdf, LibraryKey};
use crate::device::DeviceIdentity;
use crate::store::{self, Writer};
use crate::{Error, Result, fsutil};

mod convert;

pub(crate) use convert::Target;

/// The newest `library.json` format this build reads: 2 adds `encryption`. A plain library is
/// still written as version 1, which older builds open; an encrypted one as 2, which they refuse
/// as newer instead of misreading it.
pub const CONFIG_VERSION: u32 = 2;
/// Suffix of library folders.
pub const SUFFIX: &str = ".sdlibrary";

/// `library.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LibraryConfig {
    pub version: u32,
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    /// Present when the library is encrypted (`crypt.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypt::Encryption>,
}

/// The `library.json` version `config` is written as.
pub(crate) fn config_version(config: &LibraryConfig) -> u32 {
    if config.encryption.is_some() { 2 } else { 1 }
}

/// What runs jobs, lent by the layer that knows the job kinds (`jobs.rs`, wired by the node) when
/// the library opens. The runner and the domain modules start, pause and cancel jobs through it
/// without knowing any kind.
pub trait JobHost: Send + Sync {
    /// Runs job `id` to its end (or its stop) on the calling thread, the job's own.
    fn run(&self, lib: &Arc<Library>, id: i64, control: &Arc<Control>);
    /// Ends job `id`, which no thread is running, in `state` (a queued or paused job cancelled).
    fn end(&self, lib: &Library, id: i64, state: JobState) -> Result<()>;
    /// Tells subscribers that job `id`'s row changed.
    fn publish(&self, lib: &Library, id: i64);
}

/// A job whose thread is alive.
pub(crate) struct RunningJob {
    pub(crate) control: Arc<Control>,
    pub(crate) handle: Option<JoinHandle<()>>,
}

/// An open library. Dropping the last handle closes it.
pub struct Library {
    pub id: Uuid,
    name: RwLock<String>,
    dir: PathBuf,
    /// The only connection that writes.
    pub writer: Writer,
    /// Row id of this device in the library's `devices` table.
    pub device_row: i64,
    pub(crate) host: Arc<dyn JobHost>,
    pub(crate) jobs: Mutex<HashMap<i64, RunningJob>>,
    /// Per location: what an index job's walk does before it lists a folder (the watcher's
    /// "watch this folder now"), set while the location is watched.
    dir_hooks: Mutex<HashMap<i64, crate::index::walk::DirHook>>,
    lock: Mutex<Option<File>>,
    /// The key of an encrypted library (`None`: plain).
    key: Option<Arc<LibraryKey>>,
    /// Bumped whenever entries change (with `changed` notified); caches built from entries —
    /// search's in-memory index — compare it with the generation they were built at.
    generation: Mutex<u64>,
    changed: Condvar,
    /// Ids of the entries written (rows of `entries` and `entry_content`), for caches that
    /// follow the entries without reading them all again.
    entry_changes: Arc<store::ChangeLog>,
    /// Bumped by every organising action (tags, favourites, hidden, notes).
    meta_generation: std::sync::atomic::AtomicU64,
    /// This library's own handle, for threads that must outlive a call (search's refresher).
    me: std::sync::Weak<Library>,
    /// State that modules above this one keep per library (search's index), one value per type.
    extensions: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// Locations a file operation is changing right now (location id → number of jobs): the
    /// watcher leaves them alone until the operation has updated the index itself.
    pub(crate) file_ops: Mutex<HashMap<i64, usize>>,
}

/// Checks a proposed library name; returns it trimmed.
pub fn validate_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 100 || n.starts_with('.') || n.contains(['/', '\0', '\\']) {
        return Err(Error::Invalid(format!(
            "{name:?} is not a usable library name: use 1-100 characters, no '/' or '\\', not starting with '.'"
        )));
    }
    Ok(n.to_owned())
}

pub(crate) fn read_config(dir: &Path) -> Result<LibraryConfig> {
    let path = dir.join("library.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::Corrupt {
        path: dir.to_path_buf(),
        reason: format!("cannot read library.json: {e}"),
    })?;
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
        name: Option<String>,
    }
    let v: Versioned = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if v.version > CONFIG_VERSION {
        return Err(Error::NewerVersion {
            name: v.name.unwrap_or_else(|| dir.display().to_string()),
            found: i64::from(v.version),
            supported: i64::from(CONFIG_VERSION),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path,
        reason: e.to_string(),
    })
}

/// Name of the library in `dir` as best known (for error listings): config name or folder name.
pub fn name_hint(dir: &Path) -> String {
    read_config(dir).map(|c| c.name).unwrap_or_else(|_| {
        dir.file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(SUFFIX).to_owned())
            .unwrap_or_default()
    })
}

/// For an encrypted library in `dir`: its config and encryption, with its lock taken (after an
/// interrupted conversion is finished or rolled back). `None` for a plain one, lock released.
pub fn claim_encrypted(
    dir: &Path,
) -> Result<Option<(LibraryConfig, crate::crypt::Encryption, File)>> {
    let lock = take_lock(dir, &name_hint(dir))?;
    convert::recover(dir)?;
    let config = read_config(dir)?;
    Ok(config.encryption.clone().map(|e| (config, e, lock)))
}

fn take_lock(dir: &Path, name: &str) -> Result<File> {
    fsutil::lock_with_pid(&dir.join("library.lock"), std::time::Duration::ZERO)?.map_err(|pid| {
        Error::LibraryLocked {
            name: name.to_owned(),
            pid,
        }
    })
}

impl Library {
    /// Creates `<libraries>/<name>.sdlibrary` and opens it.
    /// With `passphrase`, the library is encrypted from its first byte; the key is returned too.
    pub fn create(
        libraries: &Path,
        name: &str,
        device: &DeviceIdentity,
        host: Arc<dyn JobHost>,
        passphrase: Option<&str>,
    ) -> Result<Arc<Library>> {
        let name = validate_name(name)?;
        let dir = libraries.join(format!("{name}{SUFFIX}"));
        if dir.exists() {
            return Err(Error::Conflict(format!(
                "a library folder {} already exists",
                dir.display()
            )));
        }
        let tmp = libraries.join(format!(".{name}{SUFFIX}.creating"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let (encryption, key) = match passphrase {
            Some(p) => {
                let kdf = Kdf::fresh()?;
                let key = kdf.derive(p)?;
                (Some(crate::crypt::Encryption::new(kdf, &key, 0)), Some(key))
            }
            None => (None, None),
        };
        let mut config = LibraryConfig {
            version: CONFIG_VERSION,
            id: Uuid::new_v4(),
            name: name.clone(),
            created_at: store::now_ms(),
            encryption,
        };
        config.version = config_version(&config);
        fsutil::write_atomic(
            &tmp.join("library.json"),
            &serde_json::to_vec_pretty(&config)?,
        )?;
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        Library::open(&dir, device, host, key)
    }

    /// Opens the library in `dir`, taking its lock, migrating its schema if it is older. An
    /// encrypted library needs its `key` ([`Error::KeyNeeded`] without one,
    /// [`Error::WrongPassphrase`] with another); a plain one takes none.
    pub fn open(
        dir: &Path,
        device: &DeviceIdentity,
        host: Arc<dyn JobHost>,
        key: Option<LibraryKey>,
    ) -> Result<Arc<Library>> {
        let lock = take_lock(dir, &name_hint(dir))?;
        convert::recover(dir)?;
        let mut config = read_config(dir)?;
        let key = match (&config.encryption, key) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(Error::Invalid(format!(
                    "library {:?} is not encrypted",
                    config.name
                )));
            }
            (Some(_), None) => return Err(Error::KeyNeeded { name: config.name }),
            (Some(enc), Some(key)) => {
                if !enc.accepts(&key) {
                    return Err(Error::WrongPassphrase { name: config.name });
                }
                if enc.schema_version > store::SCHEMA_VERSION {
                    return Err(Error::NewerVersion {
                        name: config.name,
                        found: enc.schema_version,
                        supported: store::SCHEMA_VERSION,
                    });
                }
                Some(Arc::new(key))
            }
        };
        let db = store::DbFile::new(dir.join("library.db"), key.clone());
        let conn = db.writer(&config.name)?;
        if let Some(enc) = config.encryption.as_mut()
            && enc.schema_version != store::SCHEMA_VERSION
        {
            // The header is encrypted: the version is kept in the config too.
            enc.schema_version = store::SCHEMA_VERSION;
            fsutil::write_atomic(
                &dir.join("library.json"),
                &serde_json::to_vec_pretty(&config)?,
            )?;
        }
        convert::sweep_sidecars(dir, &convert::sidecar_folder(key.as_deref()));
        let now = store::now_ms();
        conn.execute(
            "INSERT INTO devices (uuid, name, os, hardware, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT(uuid) DO UPDATE SET name = ?2, os = ?3, hardware = ?4, last_seen = ?5",
            rusqlite::params![device.id.to_string(), device.name, device.os, device.hardware, now],
        )?;
        let device_row: i64 = conn.query_row(
            "SELECT id FROM devices WHERE uuid = ?1",
            [device.id.to_string()],
            |r| r.get(0),
        )?;
        let entry_changes = Arc::new(store::ChangeLog::default());
        let writer = Writer::spawn(
            &config.name,
            &db,
            conn,
            &["entries", "entry_content"],
            entry_changes.clone(),
            store::Checkpoints::default(),
        )?;
        Ok(Arc::new_cyclic(|me| Library {
            me: me.clone(),
            id: config.id,
            name: RwLock::new(config.name),
            dir: dir.to_path_buf(),
            writer,
            device_row,
            host,
            jobs: Mutex::new(HashMap::new()),
            dir_hooks: Mutex::new(HashMap::new()),
            lock: Mutex::new(Some(lock)),
            key,
            generation: Mutex::new(0),
            changed: Condvar::new(),
            entry_changes,
            meta_generation: std::sync::atomic::AtomicU64::new(0),
            extensions: Mutex::new(HashMap::new()),
            file_ops: Mutex::new(HashMap::new()),
        }))
    }

    /// Marks the entries as changed: caches built from them (the search index) are behind.
    pub fn touch(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for the entries generation to move past `seen`; returns the current
    /// generation.
    pub fn wait_generation(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .changed
            .wait_timeout_while(g, timeout, |g| *g == seen)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }

    /// The per-library value of type `T` kept for a module above this one, made on first use.
    pub fn extension<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut map = self.extensions.lock().unwrap_or_else(|p| p.into_inner());
        let any = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        any.downcast::<T>()
            .unwrap_or_else(|_| unreachable!("extensions are keyed by their own type"))
    }

    /// A weak handle to this library.
    pub fn weak(&self) -> std::sync::Weak<Library> {
        self.me.clone()
    }

    /// Whether the library is still open (not closed for a rename, a delete or a shutdown).
    pub fn is_open(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Marks the organisation (tags, flags, notes) as changed.
    pub fn touch_meta(&self) {
        self.meta_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The current organisation generation.
    pub fn meta_generation(&self) -> u64 {
        self.meta_generation
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The entries written, in commit order (see [`store::ChangeLog`]).
    pub fn entry_changes(&self) -> &store::ChangeLog {
        &self.entry_changes
    }

    /// The current entries generation.
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.name.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("library.db")
    }

    /// The database file and its key, for threads that open their own connections.
    pub fn db(&self) -> store::DbFile {
        store::DbFile::new(self.db_path(), self.key.clone())
    }

    /// A fresh read-only connection.
    pub fn reader(&self) -> Result<rusqlite::Connection> {
        self.db().reader()
    }

    /// Whether the library is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// The key of an encrypted library.
    pub fn key(&self) -> Option<&LibraryKey> {
        self.key.as_deref()
    }

    /// The folder this library's sidecars live in (one per key: see `library/convert.rs`).
    pub fn sidecar_dir(&self) -> PathBuf {
        self.dir.join(convert::sidecar_folder(self.key.as_deref()))
    }

    /// The config as stored.
    pub fn config(&self) -> Result<LibraryConfig> {
        read_config(&self.dir)
    }

    /// Changes the display name in `library.json` (the folder is renamed by the caller, closed).
    pub(crate) fn set_name(&self, name: &str) -> Result<()> {
        let mut config = read_config(&self.dir)?;
        config.name = name.to_owned();
        fsutil::write_atomic(
            &self.dir.join("library.json"),
            &serde_json::to_vec_pretty(&config)?,
        )?;
        *self.name.write().unwrap_or_else(|p| p.into_inner()) = name.to_owned();
        Ok(())
    }

    /// Stops this library's jobs (they stay resumable), closes the database and releases the lock.
    /// Sets (or, with `None`, clears) what index jobs of `location` do before listing a folder.
    pub fn set_dir_hook(&self, location: i64, hook: Option<crate::index::walk::DirHook>) {
        let mut hooks = self.dir_hooks.lock().unwrap_or_else(|p| p.into_inner());
        match hook {
            Some(h) => hooks.insert(location, h),
            None => hooks.remove(&location),
        };
    }

    /// What index jobs of `location` do before listing a folder, if anything.
    pub fn dir_hook(&self, location: i64) -> Option<crate::index::walk::DirHook> {
        self.dir_hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&location)
            .cloned()
    }

    pub fn close(&self) {
        self.shutdown_jobs();
        self.writer.close();
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Closes the library — running jobs stop at a checkpoint, resumable, and resume when it is
    /// opened again — and rewrites it as `to` (encrypted under a new key, or plain).
    /// Crash-safe: see `library/convert.rs`. The caller reopens it.
    pub(crate) fn close_and_convert(&self, to: Target<'_>) -> Result<LibraryConfig> {
        self.close();
        let lock = take_lock(&self.dir, &self.name())?;
        let out = convert::convert(&self.dir, self.key.as_deref(), to);
        drop(lock);
        out
    }

    /// Stops every running job at its next checkpoint, leaving it resumable, and waits for them.
    fn shutdown_jobs(&self) {
        let handles: Vec<JoinHandle<()>> = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.values_mut()
                .filter_map(|j| {
                    j.control.stop(crate::control::Stop::Shutdown);
                    j.handle.take()
                })
                .collect()
        };
        for h in handles {
            let _ = h.join();
        }
    }

    /// Size of the library folder in bytes (config, database, WAL).
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// What a library holds, counted from its database (for `library.info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The schema version of the database (`PRAGMA user_version`).
    pub schema_version: i64,
    pub locations: u64,
    pub entries: u64,
    /// Distinct contents identified.
    pub contents: u64,
    /// Contents waiting for later jobs (thumbnails, text extraction).
    pub intelligence_queue: u64,
}

/// Counts what `lib` holds, on one read-only connection.
pub fn stats(lib: &Library) -> Result<Stats> {
    let conn = lib.reader()?;
    let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    Ok(Stats {
        schema_version: q("PRAGMA user_version")?,
        locations: q("SELECT count(*) FROM locations")? as u64,
        entries: q("SELECT count(*) FROM entries")? as u64,
        contents: q("SELECT count(*) FROM content_identities")? as u64,
        intelligence_queue: q("SELECT count(*) FROM intelligence_queue")? as u64,
    })
}
