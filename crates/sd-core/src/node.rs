//! The node: everything one daemon owns — the data folder, this device's identity, the event bus
//! and the libraries under `<data>/libraries/`.
//!
//! Architecture Invariant: one node per data folder (`daemon.lock`), one opener per library
//! (`library.lock`); a library that cannot be opened is listed with the reason, never repaired
//! or rewritten behind the user's back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::device::DeviceIdentity;
use crate::events::EventBus;
use crate::library::{self, Library};
use crate::{Error, Result, fsutil, jobs, select};

/// `<data>/settings.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Settings {
    default_library: Option<Uuid>,
}

/// A library folder the node found, open or not.
#[derive(Clone)]
pub enum Slot {
    Open(Arc<Library>),
    /// Encrypted, and no key has opened it yet (or it was locked again).
    Locked(Arc<Locked>),
    Unavailable(Unavailable),
}

/// An encrypted library waiting for its passphrase. Holds the library's lock, so the folder is
/// claimed as an open one is.
pub struct Locked {
    pub dir: PathBuf,
    pub id: Uuid,
    pub name: String,
    encryption: crate::crypt::Encryption,
    /// Released (taken) just before the library is opened.
    lock: Mutex<Option<File>>,
}

impl Locked {
    fn release(&self) {
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl select::Named for Slot {
    fn name(&self) -> String {
        match self {
            Slot::Open(l) => l.name(),
            Slot::Locked(l) => l.name.clone(),
            Slot::Unavailable(u) => u.name.clone(),
        }
    }

    fn id_text(&self) -> String {
        match self {
            Slot::Open(l) => l.id.to_string(),
            Slot::Locked(l) => l.id.to_string(),
            // Its id is in a config that could not be read: it is found by name only.
            Slot::Unavailable(_) => String::new(),
        }
    }
}

/// Why a library could not be opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unavailable {
    pub dir: PathBuf,
    pub name: String,
    pub code: String,
    pub reason: String,
}

/// The running engine of one daemon.
pub struct Node {
    pub data_dir: PathBuf,
    pub device: DeviceIdentity,
    pub bus: EventBus,
    slots: Arc<RwLock<Vec<Slot>>>,
    settings: Mutex<Settings>,
    watch: Mutex<Option<crate::watch::Watch>>,
    /// Held while a library is created, so two concurrent creations (two first `location add`s
    /// on a fresh data folder) cannot both create one, or clash over its folder.
    creating: Mutex<()>,
    /// Held while a library is unlocked, locked or converted, so two such calls on one library
    /// cannot both reopen it (the second would find it claimed by the first).
    keying: Mutex<()>,
    /// The network, lent by the daemon for transfers between devices.
    transport: RwLock<Option<Arc<dyn crate::transfer::Transport>>>,
    _lock: File,
}

fn open_libraries(slots: &RwLock<Vec<Slot>>) -> Vec<Arc<Library>> {
    slots
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|s| match s {
            Slot::Open(l) => Some(l.clone()),
            Slot::Locked(_) | Slot::Unavailable(_) => None,
        })
        .collect()
}

impl Node {
    /// What runs a library's jobs: the kinds of `jobs.rs`, publishing on this node's bus.
    fn job_host(&self) -> Arc<dyn crate::library::JobHost> {
        let bus = self.bus.clone();
        jobs::Host::new(move |info| bus.emit(crate::events::Event::Job(info)))
    }

    /// Opens the data folder (creating it), takes the daemon lock, opens every library and
    /// resumes interrupted jobs.
    pub fn open(data_dir: &Path) -> Result<Node> {
        std::fs::create_dir_all(data_dir.join("libraries")).map_err(|e| Error::io(data_dir, e))?;
        let lock = lock_daemon(data_dir)?;
        let device = DeviceIdentity::load_or_create(data_dir)?;
        let settings: Settings = std::fs::read(data_dir.join("settings.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let node = Node {
            data_dir: data_dir.to_path_buf(),
            device,
            bus: EventBus::default(),
            slots: Arc::new(RwLock::new(Vec::new())),
            settings: Mutex::new(settings),
            watch: Mutex::new(None),
            creating: Mutex::new(()),
            keying: Mutex::new(()),
            transport: RwLock::new(None),
            _lock: lock,
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(node.libraries_dir())
            .map_err(|e| Error::io(node.libraries_dir(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(library::SUFFIX) && !n.starts_with('.'))
            })
            .collect();
        dirs.sort();
        for dir in dirs {
            let slot = node.open_slot(&dir);
            node.slots
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(slot);
        }
        let volumes = crate::volume::detect().unwrap_or_default();
        let slots = node.slots.clone();
        let watch = crate::watch::Watch::start(move || open_libraries(&slots));
        for lib in node.libraries() {
            start_library(&lib, &watch, &volumes)?;
        }
        *node.watch.lock().unwrap_or_else(|p| p.into_inner()) = Some(watch);
        Ok(node)
    }

    /// Opens the library in `dir` — an encrypted one with its remembered key, if there is one
    /// and it still fits, else it stays locked.
    fn open_slot(&self, dir: &Path) -> Slot {
        let opened = match library::claim_encrypted(dir) {
            Ok(Some((config, enc, lock))) => match self.keys().get(config.id) {
                Some(key) if enc.accepts(&key) => {
                    drop(lock);
                    Library::open(dir, &self.device, self.job_host(), Some(key))
                }
                _ => {
                    return Slot::Locked(Arc::new(Locked {
                        dir: dir.to_path_buf(),
                        id: config.id,
                        name: config.name,
                        encryption: enc,
                        lock: Mutex::new(Some(lock)),
                    }));
                }
            },
            Ok(None) => Library::open(dir, &self.device, self.job_host(), None),
            Err(e) => Err(e),
        };
        match opened {
            Ok(lib) => Slot::Open(lib),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "library unavailable");
                Slot::Unavailable(Unavailable {
                    name: library::name_hint(dir),
                    dir: dir.to_path_buf(),
                    code: e.code().to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Where `--remember` keeps library keys.
    pub fn keys(&self) -> crate::crypt::KeyStore {
        crate::crypt::KeyStore::new(&self.data_dir)
    }

    /// Lends every library (those opened later too) the network for transfers between devices.
    pub fn set_transport(&self, t: Arc<dyn crate::transfer::Transport>) {
        *self.transport.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
        for lib in self.libraries() {
            self.lend_transport(&lib);
        }
    }

    fn lend_transport(&self, lib: &Library) {
        let t = self
            .transport
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        lib.extension::<crate::transfer::TransportSlot>().set(t);
    }

    pub fn libraries_dir(&self) -> PathBuf {
        self.data_dir.join("libraries")
    }

    /// Every library folder found, open or not.
    pub fn slots(&self) -> Vec<Slot> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The open libraries.
    pub fn libraries(&self) -> Vec<Arc<Library>> {
        open_libraries(&self.slots)
    }

    /// Whether a location is being watched: `live`, `off`, `degraded: …` or `starting`.
    pub fn watch_state(&self, library: uuid::Uuid, location: i64) -> String {
        match self
            .watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(w) => w.state(library, location),
            None => "off".into(),
        }
    }

    /// Adds a location to `lib` and starts indexing it — after its watch is live when it is
    /// watched, so a file created while (or right after) the first scan walks is not missed.
    pub fn add_location(
        &self,
        lib: &Arc<Library>,
        path: &Path,
        opts: crate::location::AddOptions,
    ) -> Result<(crate::location::Location, i64)> {
        let watch = opts.watch;
        crate::location::add(lib, path, opts, &self.data_dir, &|loc| {
            if watch
                && let Some(w) = self
                    .watch
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
            {
                // The first scan's walk adds each folder's watch just before listing it.
                w.prepare(lib, loc.id, &loc.path.0);
            }
        })
    }

    /// The default library's id, if one is set and open.
    pub fn default_library(&self) -> Option<Uuid> {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .default_library
    }

    fn set_default(&self, id: Option<Uuid>) -> Result<()> {
        let mut s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        s.default_library = id;
        fsutil::write_atomic(
            &self.data_dir.join("settings.json"),
            &serde_json::to_vec_pretty(&*s)?,
        )
    }

    /// Makes library `selector` the default for commands that name none.
    pub fn use_library(&self, selector: &str) -> Result<Arc<Library>> {
        let lib = self.library(Some(selector))?;
        self.set_default(Some(lib.id))?;
        Ok(lib)
    }

    /// Finds a library by name or id (or id prefix); `None` picks the default, or the only one.
    pub fn library(&self, selector: Option<&str>) -> Result<Arc<Library>> {
        let slots = self.slots();
        let Some(sel) = selector else {
            let libs = self.libraries();
            if let Some(id) = self.default_library()
                && let Some(l) = libs.iter().find(|l| l.id == id)
            {
                return Ok(l.clone());
            }
            if let Some(id) = self.default_library()
                && let Some(Slot::Locked(l)) = slots
                    .iter()
                    .find(|s| matches!(s, Slot::Locked(l) if l.id == id))
            {
                return Err(Error::KeyNeeded {
                    name: l.name.clone(),
                });
            }
            return match libs.len() {
                1 => Ok(libs[0].clone()),
                0 => Err(
                    match slots.into_iter().find(|s| !matches!(s, Slot::Open(_))) {
                        Some(Slot::Locked(l)) => Error::KeyNeeded {
                            name: l.name.clone(),
                        },
                        Some(Slot::Unavailable(u)) => Error::Invalid(u.reason),
                        _ => Error::NotFound(
                            "no library yet: create one with `spacedrive library create NAME`"
                                .into(),
                        ),
                    },
                ),
                _ => Err(Error::Invalid(format!(
                    "there are {} libraries and no default; pick one with --library NAME or `spacedrive library use NAME`",
                    libs.len()
                ))),
            };
        };
        match crate::select::pick(&slots, sel, "library", "spacedrive library list")? {
            Slot::Open(l) => Ok(l.clone()),
            Slot::Locked(l) => Err(Error::KeyNeeded {
                name: l.name.clone(),
            }),
            Slot::Unavailable(u) => Err(Error::Invalid(u.reason.clone())),
        }
    }

    /// The slot library `selector` names, whatever its state.
    fn slot(&self, selector: &str) -> Result<Slot> {
        let slots = self.slots();
        Ok(crate::select::pick(&slots, selector, "library", "spacedrive library list")?.clone())
    }

    /// Puts `slot` where the slot of library `id` (open or locked) was.
    fn replace_slot(&self, id: Uuid, slot: Slot) {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        for s in slots.iter_mut() {
            let here = match s {
                Slot::Open(l) => l.id == id,
                Slot::Locked(l) => l.id == id,
                Slot::Unavailable(_) => false,
            };
            if here {
                *s = slot;
                return;
            }
        }
    }

    /// Starts what follows an opening (watch, resumed jobs, sidecars) for a library opened
    /// after the node started.
    fn started(&self, lib: &Arc<Library>) -> Result<()> {
        self.lend_transport(lib);
        let volumes = crate::volume::detect().unwrap_or_default();
        match self
            .watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(w) => start_library(lib, w, &volumes),
            None => Ok(()),
        }
    }

    /// Opens the encrypted library in `dir` with `key`, in place of its old slot; when that
    /// fails, the library is claimed again (locked, or unavailable with the reason).
    fn reopen(
        &self,
        id: Uuid,
        dir: &Path,
        key: Option<crate::crypt::LibraryKey>,
    ) -> Result<Arc<Library>> {
        match Library::open(dir, &self.device, self.job_host(), key) {
            Ok(lib) => {
                self.replace_slot(id, Slot::Open(lib.clone()));
                self.started(&lib)?;
                Ok(lib)
            }
            Err(e) => {
                self.replace_slot(id, self.open_slot(dir));
                Err(e)
            }
        }
    }

    /// Unlocks an encrypted library with its passphrase; with `remember`, its key is kept in the
    /// data folder (`<data>/keys/`, owner-only) so it opens at start-up. Returns the library and
    /// where the key was remembered.
    pub fn unlock_library(
        &self,
        selector: &str,
        passphrase: &str,
        remember: bool,
    ) -> Result<(Arc<Library>, Option<PathBuf>)> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        let (lib, key) = self.unlocked(selector, passphrase, remember)?;
        let remembered = if remember {
            Some(self.keys().put(lib.id, &key)?)
        } else {
            None
        };
        Ok((lib, remembered))
    }

    /// The library `selector` names, opened (unlocked) with `passphrase` if it was locked, and
    /// its key. Refused for a plain library and for a wrong passphrase.
    fn unlocked(
        &self,
        selector: &str,
        passphrase: &str,
        remember: bool,
    ) -> Result<(Arc<Library>, crate::crypt::LibraryKey)> {
        Ok(match self.slot(selector)? {
            Slot::Open(lib) => {
                let config = lib.config()?;
                let Some(enc) = config.encryption else {
                    return Err(Error::Invalid(format!(
                        "library {:?} is not encrypted; there is nothing to unlock",
                        lib.name()
                    )));
                };
                let key = enc.unlock(&config.name, passphrase)?;
                (lib, key)
            }
            Slot::Locked(locked) => {
                let key = locked.encryption.unlock(&locked.name, passphrase)?;
                locked.release();
                let lib = self.reopen(locked.id, &locked.dir, Some(key.clone()))?;
                crate::audit::record(
                    &lib,
                    "library.unlock",
                    serde_json::json!({"remember": remember}),
                    vec![lib.name()],
                    serde_json::Value::Null,
                )?;
                (lib, key)
            }
            Slot::Unavailable(u) => return Err(Error::Invalid(u.reason)),
        })
    }

    /// Locks an encrypted library: closes it (jobs stop, resumable) and forgets a remembered
    /// key, so it needs its passphrase again, after a restart too.
    pub fn lock_library(&self, selector: &str) -> Result<String> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        let lib = match self.slot(selector)? {
            Slot::Open(lib) => lib,
            Slot::Locked(l) => {
                self.keys().forget(l.id)?;
                return Ok(l.name.clone());
            }
            Slot::Unavailable(u) => return Err(Error::Invalid(u.reason)),
        };
        if !lib.is_encrypted() {
            return Err(Error::Invalid(format!(
                "library {:?} is not encrypted, so it cannot be locked; encrypt it with `spacedrive library encrypt {:?}`",
                lib.name(),
                lib.name()
            )));
        }
        crate::audit::record(
            &lib,
            "library.lock",
            serde_json::Value::Null,
            vec![lib.name()],
            serde_json::Value::Null,
        )?;
        self.keys().forget(lib.id)?;
        lib.close();
        self.replace_slot(lib.id, self.open_slot(lib.dir()));
        Ok(lib.name())
    }

    /// Encrypts a plain library under `passphrase` (crash-safe: see `library/convert.rs`).
    pub fn encrypt_library(
        &self,
        selector: &str,
        passphrase: &str,
        remember: bool,
    ) -> Result<(Arc<Library>, Option<PathBuf>)> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        let lib = self.library(Some(selector))?;
        if lib.is_encrypted() {
            return Err(Error::Conflict(format!(
                "library {:?} is already encrypted; change its passphrase with `spacedrive library passphrase {:?}`",
                lib.name(),
                lib.name()
            )));
        }
        let kdf = crate::crypt::Kdf::fresh()?;
        let key = kdf.derive(passphrase)?;
        let converted = lib.close_and_convert(library::Target::Encrypted { key: &key, kdf });
        let reopened = self.reopen(lib.id, lib.dir(), converted.is_ok().then(|| key.clone()));
        converted?;
        let lib = reopened?;
        crate::audit::record(
            &lib,
            "library.encrypt",
            serde_json::json!({"remember": remember}),
            vec![lib.name()],
            serde_json::Value::Null,
        )?;
        let remembered = if remember {
            Some(self.keys().put(lib.id, &key)?)
        } else {
            None
        };
        Ok((lib, remembered))
    }

    /// Decrypts an encrypted library (its passphrase confirms the intent) and forgets its key.
    pub fn decrypt_library(&self, selector: &str, passphrase: &str) -> Result<Arc<Library>> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        let (lib, key) = self.unlocked(selector, passphrase, false)?;
        let converted = lib.close_and_convert(library::Target::Plain);
        let reopened = self.reopen(
            lib.id,
            lib.dir(),
            if converted.is_ok() { None } else { Some(key) },
        );
        converted?;
        let lib = reopened?;
        self.keys().forget(lib.id)?;
        crate::audit::record(
            &lib,
            "library.decrypt",
            serde_json::Value::Null,
            vec![lib.name()],
            serde_json::Value::Null,
        )?;
        Ok(lib)
    }

    /// Changes an encrypted library's passphrase: a new salt and key, the database and sidecars
    /// rewritten under it (crash-safe). A remembered key is replaced by the new one.
    pub fn change_passphrase(&self, selector: &str, old: &str, new: &str) -> Result<Arc<Library>> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        let (lib, old_key) = self.unlocked(selector, old, false)?;
        let kdf = crate::crypt::Kdf::fresh()?;
        let key = kdf.derive(new)?;
        let converted = lib.close_and_convert(library::Target::Encrypted { key: &key, kdf });
        let reopened = self.reopen(
            lib.id,
            lib.dir(),
            Some(if converted.is_ok() {
                key.clone()
            } else {
                old_key
            }),
        );
        converted?;
        let lib = reopened?;
        if self.keys().get(lib.id).is_some() {
            self.keys().put(lib.id, &key)?;
        }
        crate::audit::record(
            &lib,
            "library.passphrase",
            serde_json::Value::Null,
            vec![lib.name()],
            serde_json::Value::Null,
        )?;
        Ok(lib)
    }

    /// Refuses a library name that another library (not `except`) already has, ignoring case.
    fn check_name_free(&self, name: &str, except: Option<Uuid>) -> Result<()> {
        let names: Vec<String> = self
            .slots()
            .iter()
            .filter(|s| !matches!(s, Slot::Open(l) if Some(l.id) == except))
            .map(select::Named::name)
            .collect();
        if select::clashes(names.iter().map(String::as_str), name) {
            return Err(Error::Conflict(format!(
                "a library named {name:?} already exists (names may not differ only by case)"
            )));
        }
        Ok(())
    }

    /// The library `selector` names; with none and no library at all yet, creates one named
    /// `default_name` (then the flag is true). Concurrent callers get the same new library.
    pub fn library_or_create(
        &self,
        selector: Option<&str>,
        default_name: &str,
    ) -> Result<(Arc<Library>, bool)> {
        if selector.is_none() {
            let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            if self.slots().is_empty() {
                return Ok((self.create_library_locked(default_name, None)?, true));
            }
        }
        Ok((self.library(selector)?, false))
    }

    /// Creates a library; the first one becomes the default.
    /// With `encrypt` (passphrase, remember), the library is encrypted from the start.
    pub fn create_library(
        &self,
        name: &str,
        encrypt: Option<(&str, bool)>,
    ) -> Result<Arc<Library>> {
        let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        self.create_library_locked(name, encrypt)
    }

    fn create_library_locked(
        &self,
        name: &str,
        encrypt: Option<(&str, bool)>,
    ) -> Result<Arc<Library>> {
        let name = library::validate_name(name)?;
        self.check_name_free(&name, None)?;
        // The test harness's encrypted mode: every new library is encrypted and remembered.
        let debug = std::env::var("SPACEDRIVE_DEBUG_ENCRYPT_NEW_LIBRARIES").ok();
        let encrypt = encrypt.or(debug.as_deref().map(|p| (p, true)));
        let lib = Library::create(
            &self.libraries_dir(),
            &name,
            &self.device,
            self.job_host(),
            encrypt.map(|(p, _)| p),
        )?;
        if let (Some((_, true)), Some(key)) = (encrypt, lib.key()) {
            self.keys().put(lib.id, key)?;
        }
        self.lend_transport(&lib);
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Slot::Open(lib.clone()));
        if self.library(None).is_err() || self.default_library().is_none() {
            self.set_default(Some(lib.id))?;
        }
        crate::audit::record(
            &lib,
            "library.create",
            serde_json::json!({"name": name}),
            vec![name.clone()],
            serde_json::json!({"id": lib.id}),
        )?;
        Ok(lib)
    }

    /// Renames a library (its config and its folder). Refused while it has running jobs.
    pub fn rename_library(&self, selector: &str, new_name: &str) -> Result<Arc<Library>> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        let new_name = library::validate_name(new_name)?;
        let lib = self.library(Some(selector))?;
        self.check_name_free(&new_name, Some(lib.id))?;
        let old_name = lib.name();
        if !jobs::running_ids(&lib).is_empty() {
            return Err(Error::Conflict(format!(
                "library {:?} has running jobs; wait for them or cancel them first",
                lib.name()
            )));
        }
        let new_dir = self
            .libraries_dir()
            .join(format!("{new_name}{}", library::SUFFIX));
        if new_dir.exists() && new_dir != lib.dir() {
            return Err(Error::Conflict(format!(
                "{} already exists",
                new_dir.display()
            )));
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        lib.set_name(&new_name)?;
        lib.close();
        std::fs::rename(lib.dir(), &new_dir).map_err(|e| Error::io(lib.dir(), e))?;
        let reopened = Library::open(&new_dir, &self.device, self.job_host(), lib.key().cloned())?;
        self.lend_transport(&reopened);
        for s in slots.iter_mut() {
            if matches!(s, Slot::Open(l) if l.id == lib.id) {
                *s = Slot::Open(reopened.clone());
            }
        }
        crate::audit::record(
            &reopened,
            "library.rename",
            serde_json::json!({"new_name": new_name}),
            vec![old_name, new_name.clone()],
            serde_json::Value::Null,
        )?;
        Ok(reopened)
    }

    /// Deletes a library folder: its index, jobs and settings. Files in its locations are not touched.
    pub fn delete_library(&self, selector: &str) -> Result<String> {
        let _keying = self.keying.lock().unwrap_or_else(|p| p.into_inner());
        if let Slot::Locked(l) = self.slot(selector)? {
            // Deleting needs no key: the folder goes whole, remembered key too.
            let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
            l.release();
            std::fs::remove_dir_all(&l.dir).map_err(|e| Error::io(&l.dir, e))?;
            slots.retain(|s| !matches!(s, Slot::Locked(x) if x.id == l.id));
            drop(slots);
            self.keys().forget(l.id)?;
            if self.default_library() == Some(l.id) {
                let next = self.libraries().first().map(|l| l.id);
                self.set_default(next)?;
            }
            return Ok(l.name.clone());
        }
        let lib = self.library(Some(selector))?;
        let name = lib.name();
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        lib.close();
        std::fs::remove_dir_all(lib.dir()).map_err(|e| Error::io(lib.dir(), e))?;
        slots.retain(|s| !matches!(s, Slot::Open(l) if l.id == lib.id));
        drop(slots);
        self.keys().forget(lib.id)?;
        if self.default_library() == Some(lib.id) {
            let next = self.libraries().first().map(|l| l.id);
            self.set_default(next)?;
        }
        Ok(name)
    }

    /// Stops watching, stops all jobs (resumable) and closes every library.
    pub fn shutdown(&self) {
        if let Some(mut w) = self.watch.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.stop();
        }
        for lib in self.libraries() {
            lib.close();
        }
    }
}

/// What follows a library's opening: its volumes tracked, its watched locations watched and
/// caught up, interrupted jobs resumed, sidecar work started.
fn start_library(
    lib: &Arc<Library>,
    watch: &crate::watch::Watch,
    volumes: &[crate::volume::Volume],
) -> Result<()> {
    crate::volume::track(lib, volumes)?;
    // Watch first, then resume or rescan: nothing changed between a scan's walk and the
    // watch going live can be missed. (A location that cannot be watched yet is scanned
    // anyway; the watch thread marks it degraded.)
    let mut catch_up = Vec::new();
    for loc in crate::location::list(lib)? {
        if loc.watch
            && loc.online
            && crate::volume::refused_location(&loc.path.0).is_none()
            && loc.path.0.is_dir()
        {
            if loc.last_scan_at.is_some() && crate::location::active_job(lib, &loc)?.is_none() {
                // A full rescan follows: its walk adds each folder's watch.
                watch.prepare(lib, loc.id, &loc.path.0);
                catch_up.push(loc.id);
            } else {
                // A job resumes from its checkpoint: it will not walk what it already
                // listed, so watch the whole tree now.
                watch.watch_now(lib.id, loc.id, &loc.path.0);
            }
        }
    }
    let resumed = jobs::resume_interrupted(lib)?;
    if !resumed.is_empty() {
        tracing::info!(library = %lib.name(), ?resumed, "resuming interrupted jobs");
    }
    // Sidecars left to make, remake (a newer generator) or collect.
    if let Err(e) = crate::sidecar::at_open(lib) {
        tracing::warn!(library = %lib.name(), error = %e, "starting the sidecar job");
    }
    // Changes made while no daemon watched: every watched location is rescanned.
    for id in catch_up {
        crate::location::rescan_if_idle(lib, id)?;
    }
    Ok(())
}

fn lock_daemon(data_dir: &Path) -> Result<File> {
    // A daemon that was just told to stop holds the lock until its process is gone: give it a
    // few seconds before calling the folder taken.
    fsutil::lock_with_pid(
        &data_dir.join("daemon.lock"),
        std::time::Duration::from_secs(5),
    )?
    .map_err(|pid| {
        Error::Conflict(format!(
            "another Spacedrive daemon (pid {pid}) is already using {}",
            data_dir.display()
        ))
    })
}
