//! Live index: a filesystem watcher (inotify through `notify`) on every watched location while
//! the daemon runs. Events are batched and debounced, then applied by a rescan of just the
//! directories they touched — the same diff as any scan, so rules apply, a move keeps its entry
//! id (both ends of a rename land in one batch), and deletes are deferred until moves had their
//! chance.
//!
//! Never silent drift: when the kernel's event queue overflowed (the event says so) the location
//! is rescanned whole; when a watch cannot be set up (inotify's watch limit, say) the location is
//! marked `degraded`, rescanned now and every five minutes while it stays so.
//!
//! Watches are per directory (not notify's recursive mode), set up by our own walk that keeps to
//! what the indexer sees: it never follows a symbolic link and never crosses into another
//! filesystem, so a link to `/usr` or a `/proc` mounted inside a location costs no watch and
//! never triggers a rescan. A directory created or moved into the location is watched (with its
//! subdirectories) when its event arrives.
//!
//! Architecture Invariant: the watcher never touches the filesystem beyond reading events and
//! listing directories; all index changes go through index jobs. It never watches outside the
//! location's own filesystem, and stopping it never waits on a walk.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use notify::event::{CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventKind};
use uuid::Uuid;

use crate::library::Library;
use crate::location;

/// Quiet time after the last event before a batch is applied.
const QUIET: Duration = Duration::from_millis(200);
/// A batch is applied at the latest this long after its first event, even if events keep coming.
const MAX_WAIT: Duration = Duration::from_millis(800);
/// Rescan period for locations whose watch could not be set up.
const DEGRADED_RESCAN: Duration = Duration::from_secs(300);
/// How often the set of watched locations is brought in line with the libraries.
const SYNC_EVERY: Duration = Duration::from_millis(1000);
/// How long [`Watch::stop`] waits for the watcher thread.
const STOP_WAIT: Duration = Duration::from_secs(2);

type Key = (Uuid, i64);

struct Raw {
    key: Key,
    event: notify::Result<notify::Event>,
}

#[derive(Default)]
struct Pending {
    dirs: HashSet<PathBuf>,
    full: bool,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// One watched location: its root, the filesystem it is on, and its watches (none while
/// degraded).
struct Watched {
    root: PathBuf,
    dev: u64,
    /// Mount points inside the root: other filesystems, never entered.
    mounts: HashSet<PathBuf>,
    watcher: Option<Live>,
}

/// A location's inotify instance: watches are added straight from the thread that walks (one
/// system call each), and a reader thread turns events into [`Raw`]s. Dropping it stops the
/// reader (within [`READ_POLL`]), which closes the instance and with it every watch.
struct Live {
    /// Shared with the index jobs' hook; emptied when this goes, so a hook left behind keeps
    /// no inotify instance open.
    watches: Arc<Mutex<Option<Watches>>>,
    /// Which folder each watch is on (updated when a watched folder is renamed and walked again).
    dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>,
    stop: Arc<AtomicBool>,
    /// Set when a watch could not be added for lack of watches (the location is then degraded).
    full: Arc<AtomicBool>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// How often the reader thread checks whether it should stop.
const READ_POLL: i32 = 200;

/// What is asked of the kernel for each folder: changes to its entries and to itself; never
/// opens or reads (the indexer's own reads would feed back); never through a symbolic link.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::DONT_FOLLOW
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

impl Live {
    fn start(key: Key, tx: Sender<Raw>) -> notify::Result<Live> {
        let inotify = Inotify::init().map_err(notify::Error::io)?;
        let watches = Arc::new(Mutex::new(Some(inotify.watches())));
        let dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (dirs.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sd-inotify".into())
            .spawn(move || read_events(inotify, key, &d, &tx, &s))
            .map_err(notify::Error::io)?;
        Ok(Live {
            watches,
            dirs,
            stop,
            full: Arc::default(),
        })
    }

    /// "Watch this folder now", for an index job's walk to call before it lists each folder.
    fn hook(&self) -> crate::index::walk::DirHook {
        let (watches, dirs, full) = (self.watches.clone(), self.dirs.clone(), self.full.clone());
        Arc::new(move |dir: &Path| {
            let Some(mut w) = watches.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
                return; // the watch is gone
            };
            match w.add(dir, mask()) {
                Ok(wd) => {
                    dirs.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(wd, dir.to_path_buf());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    full.store(true, Ordering::Relaxed);
                }
                Err(_) => {} // vanished or unreadable: the listing says so too
            }
        })
    }
}

/// The reader thread of one location: kernel events in, [`Raw`] events out.
fn read_events(
    mut inotify: Inotify,
    key: Key,
    dirs: &Mutex<HashMap<WatchDescriptor, PathBuf>>,
    tx: &Sender<Raw>,
    stop: &AtomicBool,
) {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = libc::pollfd {
            fd: inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `fds` is one valid pollfd for the whole call, and the count says so.
        if unsafe { libc::poll(&mut fds, 1, READ_POLL) } <= 0 {
            continue; // timeout (check `stop`) or EINTR
        }
        let events = match inotify.read_events(&mut buf) {
            Ok(ev) => ev,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                let _ = tx.send(Raw {
                    key,
                    event: Err(notify::Error::io(e)),
                });
                return;
            }
        };
        for ev in events {
            let event = if ev.mask.contains(EventMask::Q_OVERFLOW) {
                Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)
            } else if ev.mask.contains(EventMask::IGNORED) {
                dirs.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&ev.wd);
                continue;
            } else {
                let Some(dir) = dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&ev.wd)
                    .cloned()
                else {
                    continue;
                };
                let path = ev.name.map(|n| dir.join(n)).unwrap_or(dir);
                let is_dir = ev.mask.contains(EventMask::ISDIR);
                let kind = if ev.mask.contains(EventMask::CREATE) {
                    EventKind::Create(if is_dir {
                        CreateKind::Folder
                    } else {
                        CreateKind::File
                    })
                } else if ev.mask.contains(EventMask::MOVED_TO) {
                    EventKind::Modify(ModifyKind::Name(RenameMode::To))
                } else if ev.mask.contains(EventMask::MOVED_FROM) {
                    EventKind::Modify(ModifyKind::Name(RenameMode::From))
                } else if ev
                    .mask
                    .intersects(EventMask::DELETE | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
                {
                    EventKind::Remove(RemoveKind::Any)
                } else if ev.mask.contains(EventMask::ATTRIB) {
                    EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any))
                } else {
                    EventKind::Modify(ModifyKind::Data(DataChange::Any))
                };
                Event::new(kind).add_path(path)
            };
            if tx
                .send(Raw {
                    key,
                    event: Ok(event),
                })
                .is_err()
            {
                return;
            }
        }
    }
}

/// The mount points strictly inside `root` (read once per walk instead of a `stat` per folder).
fn mounts_under(root: &Path) -> HashSet<PathBuf> {
    crate::volume::mounts()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p != root && p.starts_with(root))
        .collect()
}

/// The watch state of one location, for clients.
pub type States = Arc<Mutex<HashMap<Key, String>>>;

/// Runs the watchers of a node; dropping it stops them.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    states: States,
    /// Where watchers send their events (the watch thread reads them).
    events: Sender<Raw>,
    /// Watches set up by [`Watch::watch_now`], handed to the watch thread.
    adopt: Sender<(Key, Watched)>,
}

impl Watch {
    /// Starts watching; `libraries` is asked for the current set of open libraries at each sync.
    pub fn start(libraries: impl Fn() -> Vec<Arc<Library>> + Send + 'static) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let states: States = Arc::default();
        let (events, events_rx) = unbounded();
        let (adopt, adopt_rx) = unbounded();
        let (s, st, tx) = (stop.clone(), states.clone(), events.clone());
        let thread = std::thread::Builder::new()
            .name("sd-watch".into())
            .spawn(move || {
                run(
                    &libraries,
                    &s,
                    &st,
                    Channels {
                        tx,
                        rx: events_rx,
                        adopt: adopt_rx,
                    },
                )
            })
            .ok();
        Watch {
            stop,
            thread,
            states,
            events,
            adopt,
        }
    }

    /// Watches location `location` of `library` (folder `path`) now, in the caller's thread, so
    /// that a scan started afterwards misses nothing: every change from here on is an event.
    /// Returns false when it could not be watched (the watch thread then retries and marks the
    /// location degraded as usual).
    pub fn watch_now(&self, library: Uuid, location: i64, path: &std::path::Path) -> bool {
        let key = (library, location);
        self.hand_over(
            key,
            Watched::start(key, path, self.events.clone(), &self.stop),
        )
    }

    /// Gives a watch made outside the watch thread to it (it then serves its events), or logs
    /// why there is none (the watch thread retries as usual).
    fn hand_over(&self, key: Key, made: notify::Result<Watched>) -> bool {
        match made {
            Ok(w) => {
                self.states
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, "live".into());
                self.adopt.send((key, w)).is_ok()
            }
            Err(e) => {
                tracing::debug!(location = key.1, error = %e, "cannot watch yet");
                false
            }
        }
    }

    /// Watches location `location` of `lib` (folder `path`) from now on without walking it: the
    /// next index job's walk adds each folder's watch just before listing it (and so does every
    /// later full scan, for folders that appear). Use it when a full scan is about to start;
    /// returns false when no watch can be made (the watch thread then retries as usual).
    pub fn prepare(&self, lib: &Arc<Library>, location: i64, path: &std::path::Path) -> bool {
        let key = (lib.id, location);
        let made = Watched::empty(key, path, self.events.clone());
        if let Ok(Some(live)) = made.as_ref().map(|w| w.watcher.as_ref()) {
            lib.set_dir_hook(location, Some(live.hook()));
        }
        self.hand_over(key, made)
    }

    /// `live`, `off`, `degraded: …`, or `starting` for a location.
    pub fn state(&self, library: Uuid, location: i64) -> String {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(library, location))
            .cloned()
            .unwrap_or_else(|| "starting".into())
    }

    /// Stops the watchers. Waits at most [`STOP_WAIT`] for the thread: it checks the flag between
    /// directories, but a single listing can block (a hung network mount); then it is left to end
    /// with the process.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + STOP_WAIT;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("the watcher did not stop in time; leaving it");
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Set by tests through `SPACEDRIVE_DEBUG_WATCH_OVERFLOW=1`: every event is treated as a kernel
/// queue overflow, to exercise the full-rescan fallback. Never set it in normal use.
fn debug_overflow() -> bool {
    std::env::var_os("SPACEDRIVE_DEBUG_WATCH_OVERFLOW").is_some_and(|v| v == "1")
}

/// Set by tests through `SPACEDRIVE_DEBUG_WATCH_LIMIT=1`: setting up a watch fails as when the
/// system's inotify watch limit is used up, to exercise the degraded path. Never set it in normal use.
fn debug_limit() -> bool {
    std::env::var_os("SPACEDRIVE_DEBUG_WATCH_LIMIT").is_some_and(|v| v == "1")
}

/// Takes the watches `Watch::watch_now`/`prepare` made outside the watch thread; they replace any
/// made here, which may have come later than a scan's walk.
fn take_over(
    adopt: &Receiver<(Key, Watched)>,
    watchers: &mut HashMap<Key, Watched>,
    degraded: &mut HashMap<Key, Instant>,
) {
    for (key, w) in adopt.try_iter() {
        degraded.remove(&key);
        watchers.insert(key, w);
    }
}

/// The watch thread's ends of its channels.
struct Channels {
    tx: Sender<Raw>,
    rx: Receiver<Raw>,
    adopt: Receiver<(Key, Watched)>,
}

fn run(
    libraries: &dyn Fn() -> Vec<Arc<Library>>,
    stop: &AtomicBool,
    states: &States,
    ch: Channels,
) {
    let Channels { rx, adopt, .. } = &ch;
    let mut watchers: HashMap<Key, Watched> = HashMap::new();
    let mut degraded: HashMap<Key, Instant> = HashMap::new();
    let mut pending: HashMap<Key, Pending> = HashMap::new();
    let mut libs: HashMap<Uuid, Arc<Library>> = HashMap::new();
    let mut last_sync = Instant::now() - SYNC_EVERY;
    let overflow = debug_overflow();
    while !stop.load(Ordering::Relaxed) {
        // Watches set up before a location's first scan: they replace any set up here, which
        // may have come later than that scan's walk.
        take_over(adopt, &mut watchers, &mut degraded);
        if last_sync.elapsed() >= SYNC_EVERY {
            last_sync = Instant::now();
            libs = libraries().into_iter().map(|l| (l.id, l)).collect();
            sync(
                &libs,
                &mut watchers,
                &mut degraded,
                &mut pending,
                states,
                &ch,
                stop,
            );
            // Changes in libraries that are gone go with them.
            pending.retain(|k, _| libs.contains_key(&k.0));
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            // Opening or reading a file changes nothing in the index (and the indexer's own reads
            // would otherwise feed back into more scans).
            Ok(Raw { event: Ok(ev), .. })
                if matches!(ev.kind, notify::EventKind::Access(_)) && !ev.need_rescan() => {}
            Ok(raw) => {
                let p = pending.entry(raw.key).or_default();
                let now = Instant::now();
                p.first.get_or_insert(now);
                p.last = Some(now);
                match raw.event {
                    Ok(ev) if ev.need_rescan() || overflow => p.full = true,
                    Ok(ev) => {
                        let appeared = matches!(
                            ev.kind,
                            notify::EventKind::Create(_)
                                | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                        );
                        if appeared && let Some(w) = watchers.get_mut(&raw.key) {
                            for path in &ev.paths {
                                // A folder created or moved in: watch it and what it holds.
                                if let Err(e) = w.watch_new(path, stop) {
                                    tracing::warn!(location = raw.key.1, error = %e, "cannot watch a new folder; rescanning the location");
                                    p.full = true;
                                }
                            }
                        }
                        for path in ev.paths {
                            // The directory whose listing changed; for a directory itself
                            // (created, removed, renamed) that is its parent.
                            if let Some(parent) = path.parent() {
                                p.dirs.insert(parent.to_path_buf());
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watcher error; rescanning the location");
                        p.full = true;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Degraded locations: periodic full rescans.
        for (key, last) in degraded.iter_mut() {
            if last.elapsed() >= DEGRADED_RESCAN {
                *last = Instant::now();
                rescan_now(&mut pending, *key);
            }
        }
        apply_ready(&libs, &mut pending);
    }
}

/// Schedules a full rescan of a location, due at the next check.
fn rescan_now(pending: &mut HashMap<Key, Pending>, key: Key) {
    let p = pending.entry(key).or_default();
    p.full = true;
    p.first.get_or_insert(Instant::now());
    p.last = Some(Instant::now() - QUIET);
}

/// Starts the index jobs of batches that are quiet (or old) enough, if their location is free.
fn apply_ready(libs: &HashMap<Uuid, Arc<Library>>, pending: &mut HashMap<Key, Pending>) {
    let ready: Vec<Key> = pending
        .iter()
        .filter(|(_, p)| {
            p.last.is_some_and(|l| l.elapsed() >= QUIET)
                || p.first.is_some_and(|f| f.elapsed() >= MAX_WAIT)
        })
        .map(|(k, _)| *k)
        .collect();
    for key in ready {
        let Some(lib) = libs.get(&key.0) else {
            continue; // a library newer than the last sync: applied after the next one
        };
        if crate::fileops::busy(lib, key.1) {
            continue; // a file operation is changing it and updates the index itself; apply after
        }
        let p = &pending[&key];
        let dirs: Vec<PathBuf> = if p.full {
            Vec::new()
        } else {
            p.dirs.iter().cloned().collect()
        };
        let started = if p.full {
            location::rescan_if_idle(lib, key.1)
        } else {
            location::rescan_subtrees(lib, key.1, &dirs)
        };
        match started {
            Ok(Some(job)) => {
                tracing::debug!(
                    location = key.1,
                    job,
                    full = p.full,
                    dirs = dirs.len(),
                    "applying watched changes"
                );
                pending.remove(&key);
            }
            Ok(None) => {} // an index job is running: apply after it
            Err(e) => {
                tracing::warn!(location = key.1, error = %e, "could not apply watched changes");
                pending.remove(&key);
            }
        }
    }
}

/// Brings the watchers in line with the libraries' watched, scanned locations.
fn sync(
    libs: &HashMap<Uuid, Arc<Library>>,
    watchers: &mut HashMap<Key, Watched>,
    degraded: &mut HashMap<Key, Instant>,
    pending: &mut HashMap<Key, Pending>,
    states: &States,
    ch: &Channels,
    stop: &AtomicBool,
) {
    let (tx, adopt) = (&ch.tx, &ch.adopt);
    let mut wanted: HashMap<Key, PathBuf> = HashMap::new();
    let mut off: Vec<(Key, String)> = Vec::new();
    // Mountinfo once per sync, for every location's checks.
    let mounts = crate::volume::mounts().unwrap_or_default();
    let volumes = crate::volume::volumes_of(&mounts);
    for lib in libs.values() {
        // Volumes that went away or came back (perhaps at another mount point).
        match crate::volume::track(lib, &volumes) {
            Ok(back) => {
                for id in back {
                    tracing::info!(location = id, "location is back online; rescanning");
                    rescan_now(pending, (lib.id, id));
                }
            }
            Err(e) => tracing::warn!(error = %e, "tracking volumes"),
        }
        let Ok(locs) = location::list(lib) else {
            continue;
        };
        for loc in locs {
            let key = (lib.id, loc.id);
            if let Some(why) = crate::volume::refused_among(&loc.path.0, &mounts) {
                // Added by an older build: never watched, never rescanned on its own.
                off.push((key, format!("off: {why}")));
            } else if loc.watch
                && loc.online
                && (loc.last_scan_at.is_some() || watchers.contains_key(&key))
                && loc.path.0.is_dir()
            {
                // A location being scanned for the first time was watched before its scan began
                // (`Watch::prepare`); this only takes over (or retries) once it is scanned.
                wanted.insert(key, loc.path.0.clone());
            } else {
                off.push((key, "off".into()));
            }
        }
    }
    watchers.retain(|k, w| wanted.get(k) == Some(&w.root));
    degraded.retain(|k, _| watchers.contains_key(k) || !wanted.contains_key(k));
    // Index jobs of locations no longer watched stop adding watches.
    for (k, _) in &off {
        if let Some(lib) = libs.get(&k.0) {
            lib.set_dir_hook(k.1, None);
        }
    }
    // Watches that ran out while an index job added them: degraded, rescanned periodically.
    for (key, w) in watchers.iter_mut() {
        let full = w
            .watcher
            .as_ref()
            .is_some_and(|l| l.full.load(Ordering::Relaxed));
        if full {
            w.watcher = None;
            if let Some(lib) = libs.get(&key.0) {
                lib.set_dir_hook(key.1, None);
            }
            let why =
                "the system's inotify watch limit is reached (raise fs.inotify.max_user_watches)";
            tracing::warn!(
                location = key.1,
                error = why,
                "cannot watch; rescanning periodically instead"
            );
            states.lock().unwrap_or_else(|p| p.into_inner()).insert(
                *key,
                format!(
                    "degraded: {why}; rescanned every {} minutes",
                    DEGRADED_RESCAN.as_secs() / 60
                ),
            );
            degraded.insert(*key, Instant::now());
            rescan_now(pending, *key);
        }
    }
    {
        let mut st = states.lock().unwrap_or_else(|p| p.into_inner());
        st.retain(|k, _| wanted.contains_key(k) || off.iter().any(|(o, _)| o == k));
        for (k, why) in off {
            st.insert(k, why);
        }
    }
    for (key, path) in wanted {
        // Watches set up meanwhile by `watch_now` win: no second walk of the same tree.
        take_over(adopt, watchers, degraded);
        if watchers.contains_key(&key) {
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // The states lock is not held while a tree is walked: clients asking for a state
        // meanwhile see `starting`.
        let made = Watched::start(key, &path, tx.clone(), stop);
        let mut st = states.lock().unwrap_or_else(|p| p.into_inner());
        match made {
            Ok(w) => {
                st.insert(key, "live".into());
                // Later full scans add watches for folders that appear (a rules change, say).
                if let (Some(lib), Some(live)) = (libs.get(&key.0), &w.watcher) {
                    lib.set_dir_hook(key.1, Some(live.hook()));
                }
                watchers.insert(key, w);
            }
            Err(e) => {
                let why = match e.kind {
                    notify::ErrorKind::MaxFilesWatch => "the system's inotify watch limit is reached (raise fs.inotify.max_user_watches)".to_owned(),
                    _ => e.to_string(),
                };
                tracing::warn!(location = key.1, error = %why, "cannot watch; rescanning periodically instead");
                st.insert(
                    key,
                    format!(
                        "degraded: {why}; rescanned every {} minutes",
                        DEGRADED_RESCAN.as_secs() / 60
                    ),
                );
                let dev = std::fs::metadata(&path).map(|m| m.dev()).unwrap_or(0);
                watchers.insert(
                    key,
                    Watched {
                        root: path,
                        dev,
                        mounts: HashSet::new(),
                        watcher: None,
                    },
                );
                degraded.insert(key, Instant::now());
                rescan_now(pending, key);
            }
        }
    }
}

impl Watched {
    /// A location's watcher with no watches yet.
    fn empty(key: Key, root: &Path, tx: Sender<Raw>) -> notify::Result<Watched> {
        if debug_limit() {
            return Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        }
        let dev = std::fs::metadata(root).map_err(notify::Error::io)?.dev();
        Ok(Watched {
            root: root.to_path_buf(),
            dev,
            mounts: mounts_under(root),
            watcher: Some(Live::start(key, tx)?),
        })
    }

    /// Watches every directory of the location (as the indexer sees it).
    fn start(key: Key, root: &Path, tx: Sender<Raw>, stop: &AtomicBool) -> notify::Result<Watched> {
        let mut w = Watched::empty(key, root, tx)?;
        let n = w.watch_tree(root, stop)?;
        tracing::debug!(location = key.1, dirs = n, "watching");
        Ok(w)
    }

    /// Watches `path` and the directories under it if it is a directory of this location's
    /// filesystem (not a link); anything else is ignored.
    fn watch_new(&mut self, path: &Path, stop: &AtomicBool) -> notify::Result<usize> {
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.is_dir() && md.dev() == self.dev && path.starts_with(&self.root) => {
                self.watch_tree(path, stop)
            }
            _ => Ok(0),
        }
    }

    /// One non-recursive watch per directory under `top`: symbolic links are not followed and
    /// other filesystems are not entered. Folders that vanish meanwhile are skipped; running
    /// out of watches is an error. Returns the number of directories watched.
    fn watch_tree(&mut self, top: &Path, stop: &AtomicBool) -> notify::Result<usize> {
        let Some(live) = self.watcher.as_mut() else {
            return Ok(0);
        };
        let mut stack = vec![top.to_path_buf()];
        let mut n = 0;
        while let Some(dir) = stack.pop() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let added = match live
                .watches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                Some(w) => w.add(&dir, mask()),
                None => return Ok(n),
            };
            match added {
                Ok(wd) => {
                    live.dirs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(wd, dir.clone());
                    n += 1;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                    continue; // vanished meanwhile
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    return Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
                }
                Err(e) => {
                    // Unreadable (permission denied): the indexer records it as a per-path
                    // problem too; the rest of the tree is still watched.
                    tracing::debug!(dir = %dir.display(), error = %e, "not watched");
                    continue;
                }
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                // `file_type` does not follow links: a link to a folder is not a folder here.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let p = e.path();
                    if !self.mounts.contains(&p) {
                        stack.push(p);
                    }
                }
            }
        }
        Ok(n)
    }
}
