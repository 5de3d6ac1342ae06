//! The parallel directory walker: reads directories, applies rules, and hands one [`Listing`]
//! per directory to a sink. It only reads: no file is opened for writing, no symlink followed.
//!
//! Work is a LIFO stack of directories shared by the worker threads (depth-first keeps the set of
//! pending directories small). A directory's listing is sent *before* its subdirectories are
//! pushed, so a consumer always receives a parent's listing before any child's.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::Sender;

use crate::control::{Control, Stop};
use crate::rules::{IgnoreChain, RuleConfig, Rules};

/// What an entry is. Stored as an integer in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File = 0,
    Dir = 1,
    Symlink = 2,
    Other = 3,
}

impl EntryKind {
    pub fn from_i64(v: i64) -> EntryKind {
        match v {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }

    fn of(ft: std::fs::FileType) -> EntryKind {
        if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        }
    }
}

/// One directory entry as seen on disk (lstat: symlinks are described, not followed).
#[derive(Debug, Clone)]
pub struct Child {
    pub name: OsString,
    pub kind: EntryKind,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    /// Birth time (ns) where the filesystem records it; tells a moved file from a new one that reuses a freed inode.
    pub btime_ns: Option<i64>,
    pub nlink: u64,
    /// Raw link target, for symlinks.
    pub target: Option<Vec<u8>>,
    /// Set for directories the walk will descend into; their listing carries the same token.
    pub token: Option<u64>,
}

/// Birth time in ns, if the filesystem reports one.
pub fn btime_ns(md: &std::fs::Metadata) -> Option<i64> {
    let t = md.created().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Modification time in ns since the epoch. An `i64` of nanoseconds spans 1677–2262; a file
/// stamped outside that (`touch -d 3000-01-01` is legal) is kept at the nearest end, never
/// wrapped around or a panic.
pub fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

/// Metadata of one path as [`Child`] fields, from `lstat`.
pub fn describe(md: &std::fs::Metadata) -> (EntryKind, u64, i64, u64, u64) {
    (
        EntryKind::of(md.file_type()),
        md.len(),
        mtime_ns(md),
        md.ino(),
        md.nlink(),
    )
}

/// A per-path problem met during the walk: recorded, counted, never fatal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PathError {
    pub path: crate::names::JsonPath,
    pub message: String,
}

/// Everything the walker learned about one directory.
#[derive(Debug)]
pub struct Listing {
    pub token: u64,
    pub path: PathBuf,
    /// `Err` when the directory itself could not be read; its index entries are then kept as they were.
    pub children: Result<Vec<Child>, String>,
    /// Entries inside the directory that could not be described (vanished, permission denied, …).
    pub errors: Vec<PathError>,
    /// How many entries the rules left out.
    pub ignored: u64,
}

/// A directory waiting to be listed.
#[derive(Debug, Clone)]
pub struct DirTask {
    pub token: u64,
    pub path: PathBuf,
    pub chain: Arc<IgnoreChain>,
}

/// Settings for one walk.
/// Called with each directory just before the walk lists it (the watcher adds the directory's
/// watch there, so a change made after the listing is an event, and one made before is listed).
pub type DirHook = Arc<dyn Fn(&Path) + Send + Sync>;

pub struct WalkOptions {
    /// Runs before each directory is listed; `None` for walks nobody watches.
    pub before_list: Option<DirHook>,
    pub rules: Arc<Rules>,
    /// Only descend into directories on this filesystem (`st_dev`); `None` crosses mounts.
    pub dev: Option<u64>,
    /// Descend into subdirectories (false: list the starting directories only).
    pub recursive: bool,
    pub threads: usize,
    /// Where new tokens come from (shared with whoever issued the starting tasks).
    pub tokens: Arc<AtomicU64>,
}

struct Queue {
    tasks: Vec<DirTask>,
    active: usize,
}

/// Walks from `start` until every reachable directory is listed, the sink hangs up, or
/// `control` says stop. Returns `Err(stop)` when interrupted.
pub fn walk(
    start: Vec<DirTask>,
    opts: &WalkOptions,
    sink: &Sender<Listing>,
    control: &Control,
) -> Result<(), Stop> {
    let queue = Mutex::new(Queue {
        tasks: start,
        active: 0,
    });
    let cv = Condvar::new();
    let hung_up = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for i in 0..opts.threads.max(1) {
            let (queue, cv, hung_up) = (&queue, &cv, &hung_up);
            std::thread::Builder::new()
                .name(format!("sd-walk-{i}"))
                .spawn_scoped(s, move || worker(queue, cv, opts, sink, control, hung_up))
                .expect("spawning a walker thread");
        }
    });
    match control.stopped() {
        Some(stop) => Err(stop),
        None if hung_up.load(Ordering::Relaxed) => Err(Stop::Shutdown),
        None => Ok(()),
    }
}

/// Walks a folder outside any library (a quick scan, `dupes PATH`): canonicalises `path`,
/// refuses anything but a directory, walks it under `rules` on two threads (into other
/// filesystems too: there is no location's filesystem to keep to), and hands each listing
/// to `each` on the calling thread, the folder's own first (token 0). `.gitignore` files above
/// the folder apply too, as they would in a location at its parent. Returns the canonical path;
/// an interrupted walk simply ends early (`control` says why).
pub fn walk_folder(
    path: &Path,
    rules: RuleConfig,
    recursive: bool,
    control: &Control,
    mut each: impl FnMut(Listing),
) -> crate::Result<PathBuf> {
    let root = std::fs::canonicalize(path).map_err(|e| crate::Error::io(path, e))?;
    if !root.is_dir() {
        return Err(crate::Error::Invalid(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let rules = Arc::new(Rules::new(rules)?);
    let above = root.parent().unwrap_or(&root);
    let start = vec![DirTask {
        token: 0,
        path: root.clone(),
        chain: rules.chain_from_root(above, above),
    }];
    let opts = WalkOptions {
        before_list: None,
        rules,
        dev: None,
        recursive,
        threads: 2,
        tokens: Arc::new(AtomicU64::new(1)),
    };
    let (tx, rx) = crossbeam_channel::bounded(256);
    std::thread::scope(|s| -> crate::Result<()> {
        let opts = &opts;
        let walker = s.spawn(move || walk(start, opts, &tx, control));
        for listing in rx {
            each(listing);
        }
        // Stopped or not, what was listed is the answer.
        let _ = walker
            .join()
            .map_err(|_| crate::Error::Invalid("the walker thread panicked".into()))?;
        Ok(())
    })?;
    Ok(root)
}

fn worker(
    queue: &Mutex<Queue>,
    cv: &Condvar,
    opts: &WalkOptions,
    sink: &Sender<Listing>,
    control: &Control,
    hung_up: &std::sync::atomic::AtomicBool,
) {
    loop {
        if control.check().is_err() || hung_up.load(Ordering::Relaxed) {
            cv.notify_all();
            return;
        }
        let task = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if control.stopped().is_some() || hung_up.load(Ordering::Relaxed) {
                    cv.notify_all();
                    return;
                }
                if let Some(t) = q.tasks.pop() {
                    q.active += 1;
                    break t;
                }
                if q.active == 0 {
                    cv.notify_all();
                    return;
                }
                q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let (listing, subdirs) = list_dir(&task, opts);
        let sent = sink.send(listing).is_ok();
        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
        if sent {
            q.tasks.extend(subdirs);
        } else {
            hung_up.store(true, Ordering::Relaxed);
        }
        q.active -= 1;
        cv.notify_all();
    }
}

fn list_dir(task: &DirTask, opts: &WalkOptions) -> (Listing, Vec<DirTask>) {
    let mut listing = Listing {
        token: task.token,
        path: task.path.clone(),
        children: Ok(Vec::new()),
        errors: Vec::new(),
        ignored: 0,
    };
    if let Some(hook) = &opts.before_list {
        hook(&task.path);
    }
    let rd = match std::fs::read_dir(&task.path) {
        Ok(rd) => rd,
        Err(e) => {
            listing.children = Err(e.to_string());
            return (listing, Vec::new());
        }
    };
    let mut raw = Vec::new();
    for ent in rd {
        match ent {
            Ok(e) => raw.push(e),
            Err(e) => listing.errors.push(PathError {
                path: task.path.clone().into(),
                message: format!("reading directory: {e}"),
            }),
        }
    }
    let has_gitignore = raw.iter().any(|e| e.file_name() == ".gitignore");
    let (chain, gi_err) = opts.rules.chain_for(&task.chain, &task.path, has_gitignore);
    if let Some(msg) = gi_err {
        listing.errors.push(PathError {
            path: task.path.join(".gitignore").into(),
            message: msg,
        });
    }
    let mut children = Vec::with_capacity(raw.len());
    let mut subdirs = Vec::new();
    for e in raw {
        let path = e.path();
        let md = match e.metadata() {
            Ok(md) => md,
            Err(err) => {
                let message = if err.kind() == std::io::ErrorKind::NotFound {
                    "vanished during the scan".to_owned()
                } else {
                    err.to_string()
                };
                listing.errors.push(PathError {
                    path: path.into(),
                    message,
                });
                continue;
            }
        };
        let (kind, size, mtime_ns, inode, nlink) = describe(&md);
        let name = e.file_name();
        if opts
            .rules
            .excluded(&name, &path, kind == EntryKind::Dir, &chain)
        {
            listing.ignored += 1;
            continue;
        }
        let target = if kind == EntryKind::Symlink {
            match std::fs::read_link(&path) {
                Ok(t) => Some(t.into_os_string().into_vec()),
                Err(err) => {
                    listing.errors.push(PathError {
                        path: path.clone().into(),
                        message: format!("reading link: {err}"),
                    });
                    None
                }
            }
        } else {
            None
        };
        let descend =
            kind == EntryKind::Dir && opts.recursive && opts.dev.is_none_or(|d| d == md.dev());
        let token = descend.then(|| opts.tokens.fetch_add(1, Ordering::Relaxed));
        if let Some(token) = token {
            subdirs.push(DirTask {
                token,
                path,
                chain: chain.clone(),
            });
        }
        children.push(Child {
            name,
            kind,
            size,
            mtime_ns,
            inode,
            btime_ns: btime_ns(&md),
            nlink,
            target,
            token,
        });
    }
    listing.children = Ok(children);
    (listing, subdirs)
}

#[cfg(test)]
mod tests {
    use crate::control::Control;
    use crate::index::walk::{Listing, walk_folder};
    use crate::rules::RuleConfig;

    fn names(l: &Listing) -> Vec<String> {
        let mut v: Vec<String> = l
            .children
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The folder walk both quick scan and `dupes PATH` use: canonical root, the root's listing
    /// first as token 0, `.gitignore` above the folder honoured only when the rules say so, and
    /// anything but a directory refused.
    #[test]
    fn a_folder_walk_starts_at_the_canonical_root_under_the_rules_above_it() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("proj");
        std::fs::create_dir_all(top.join("dir/sub")).unwrap();
        std::fs::write(top.join(".gitignore"), "*.log\n").unwrap();
        for f in ["dir/a.txt", "dir/b.log", "dir/sub/c.log"] {
            std::fs::write(top.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink(top.join("dir"), tmp.path().join("link")).unwrap();
        let control = Control::default();
        let walked = |rules: RuleConfig, recursive: bool| {
            let mut got = Vec::new();
            let root = walk_folder(&tmp.path().join("link"), rules, recursive, &control, |l| {
                got.push(l)
            })
            .unwrap();
            (root, got)
        };
        let git = RuleConfig {
            system_defaults: false,
            gitignore: true,
            ignore: Vec::new(),
        };
        let (root, got) = walked(git.clone(), true);
        assert_eq!(root, std::fs::canonicalize(top.join("dir")).unwrap());
        assert_eq!((got[0].token, &got[0].path), (0, &root));
        assert_eq!(
            names(&got[0]),
            ["a.txt", "sub"],
            "*.log left out from above"
        );
        assert_eq!(got.len(), 2);
        assert!(names(&got[1]).is_empty());

        let (_, got) = walked(git, false);
        assert_eq!(got.len(), 1, "not recursive: the folder alone");

        let every = RuleConfig {
            system_defaults: false,
            gitignore: false,
            ignore: Vec::new(),
        };
        let (_, got) = walked(every.clone(), true);
        assert_eq!(names(&got[0]), ["a.txt", "b.log", "sub"]);
        assert_eq!(names(&got[1]), ["c.log"]);

        let file = walk_folder(&top.join("dir/a.txt"), every, true, &control, |_| {});
        assert!(matches!(file, Err(crate::Error::Invalid(m)) if m.contains("not a directory")));
    }
}
