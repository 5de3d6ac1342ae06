//! File operations — copy, move, rename, delete (to the trash or for good) and restore from the
//! trash — planned first and then run as durable jobs.
//!
//! [`plan`] reads the disk and returns every step the operation will take (each directory made,
//! file copied, name renamed or deleted), the conflicts and how the policy resolves them, the bytes
//! and the free space. The same plan, stored row by row in `fileop_items`, is what the job runs
//! ([`run`]): so a preview lists exactly what the commit does, and a job killed at any point picks
//! up at the first item not yet recorded as done.
//!
//! Strategy by situation: a move within one filesystem is one `rename(2)` per top-level item;
//! copies use a reflink where the filesystem has them, else a streaming copy that hashes the
//! source from the bytes it writes (in-kernel `copy_file_range` on network filesystems); every
//! copied file is read back, hashed (BLAKE3) and compared with its source before it gets its final
//! name. A move across filesystems removes a source only after its copy is verified and recorded.

pub mod copy;
mod follow;
pub(crate) mod run;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::JsonPath;
use crate::{Error, Result};

pub use copy::Strategy;
pub(crate) use follow::{busy, hold, locations_touched, release, update_index};
pub(crate) use run::insert_items;
pub use run::{FileOpJob, FileOpKind, FileOpPhase, FileOpProgress, FileUndo, MovedPair, Trashed};

/// What to do when a destination already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Stop and let the user choose (the CLI asks; other clients must pick a policy).
    #[default]
    Ask,
    Skip,
    Overwrite,
    KeepBoth,
}

/// The operation a job performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Copy,
    Move,
    Trash,
    Delete,
    Restore,
}

/// The audit log's kind for a file operation: `undo` when it reverses audit row (`undo`),
/// else `file.` and the operation — `file.trash` for a move to the trash, `file.delete` for a
/// permanent delete, `file.move` for a move or a rename. The one place this is decided: a
/// preview ([`crate::actions::Action::kind`]) and the job's audit row
/// ([`FileOpJob::audit_kind`]) both ask here, so they name the same kind.
pub fn audit_kind(op: OpKind, undo: bool) -> &'static str {
    if undo {
        return "undo";
    }
    match op {
        OpKind::Copy => "file.copy",
        OpKind::Move => "file.move",
        OpKind::Trash => "file.trash",
        OpKind::Delete => "file.delete",
        OpKind::Restore => "file.restore",
    }
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Copy => "copy",
            OpKind::Move => "move",
            OpKind::Trash => "trash",
            OpKind::Delete => "delete",
            OpKind::Restore => "restore",
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepOp {
    /// Create a directory at `dst`.
    Mkdir,
    /// `dst` is an existing directory; what is inside `src` goes into it.
    Merge,
    /// Copy a regular file.
    Copy,
    /// Hard-link `dst` to the destination of step `link_to` (the source files were hard links).
    Link,
    /// Recreate a symbolic link (never followed).
    Symlink,
    /// `rename(2)` `src` to `dst` (same filesystem), with everything inside it.
    Rename,
    /// Move `src` to the trash.
    Trash,
    /// Remove `src` for good.
    Delete,
    /// Put `src` (a trashed item) back at `dst`.
    Restore,
    /// Nothing happens to `src`; `note` says why.
    Skip,
    /// `dst` exists and the policy is `ask`: the operation cannot start until a policy is chosen.
    Conflict,
}

impl StepOp {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOp::Mkdir => "mkdir",
            StepOp::Merge => "merge",
            StepOp::Copy => "copy",
            StepOp::Link => "link",
            StepOp::Symlink => "symlink",
            StepOp::Rename => "rename",
            StepOp::Trash => "trash",
            StepOp::Delete => "delete",
            StepOp::Restore => "restore",
            StepOp::Skip => "skip",
            StepOp::Conflict => "conflict",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<StepOp> {
        Some(match s {
            "mkdir" => StepOp::Mkdir,
            "merge" => StepOp::Merge,
            "copy" => StepOp::Copy,
            "link" => StepOp::Link,
            "symlink" => StepOp::Symlink,
            "rename" => StepOp::Rename,
            "trash" => StepOp::Trash,
            "delete" => StepOp::Delete,
            "restore" => StepOp::Restore,
            "skip" => StepOp::Skip,
            "conflict" => StepOp::Conflict,
            _ => return None,
        })
    }
}

/// One step of a plan; also one row of a job's `fileop_items`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Step {
    pub seq: i64,
    pub op: StepOp,
    pub src: JsonPath,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dst: Option<JsonPath>,
    /// Bytes the step copies or deletes (for a rename or trash of a folder: everything in it).
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mtime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link_to: Option<i64>,
    /// The destination exists and is replaced.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub overwrite: bool,
    /// The destination's parent existed before the operation (where the index re-links entries).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub root: bool,
    /// Conflicts and skips: what was found and what happens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// Free space at a destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Space {
    pub path: JsonPath,
    pub needed: u64,
    pub available: u64,
    pub ok: bool,
}

/// A folder the operation must change but may not (read-only filesystem, immutable, no write
/// permission), found by asking the kernel (`access(W_OK)`) while planning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Blocked {
    pub path: JsonPath,
    pub message: String,
}

/// What an operation will do, before it does it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Plan {
    pub op: OpKind,
    pub steps: Vec<Step>,
    /// Files, folders and symlinks the operation acts on (skips excluded) and their bytes.
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Destinations that already existed, and how many of them still need a decision (`ask`).
    pub conflicts: u64,
    pub unresolved: u64,
    pub skipped: u64,
    pub space: Vec<Space>,
    /// Folders the operation would write into or remove from that refuse it; a commit is refused
    /// while there are any.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
    /// How the bytes move, in words.
    pub strategy: String,
    pub verify: bool,
    /// Whether `undo` can reverse it afterwards.
    pub undoable: bool,
    pub warnings: Vec<String>,
}

/// An operation as a client asks for it, with exact destinations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Request {
    pub op: OpKind,
    /// `(source, destination)`; the destination is the exact final path (none for deletes).
    pub pairs: Vec<(JsonPath, Option<JsonPath>)>,
    pub policy: ConflictPolicy,
}

/// `cp SRC... DEST` semantics: into `dest` when it is a folder, else to `dest` itself (one source).
pub fn destinations(sources: &[PathBuf], dest: &Path) -> Result<Vec<(JsonPath, Option<JsonPath>)>> {
    if sources.is_empty() {
        return Err(Error::Invalid("name at least one source".into()));
    }
    let into = dest.is_dir();
    if !into && sources.len() > 1 {
        return Err(Error::Invalid(format!(
            "{} is not a folder; with several sources the destination must be an existing folder",
            dest.display()
        )));
    }
    if !into && dest.as_os_str().as_bytes().ends_with(b"/") {
        return Err(Error::NotFound(format!(
            "no folder {}; create it first",
            dest.display()
        )));
    }
    sources
        .iter()
        .map(|s| {
            let s = absolute(s)?;
            let d = if into {
                let name = s.file_name().ok_or_else(|| {
                    Error::Invalid(format!("{} has no file name to copy under", s.display()))
                })?;
                absolute(dest)?.join(name)
            } else {
                absolute(dest)?
            };
            Ok((JsonPath(s), Some(JsonPath(d))))
        })
        .collect()
}

/// `rename PATH NAME`: the same folder, a new name.
pub fn rename_target(path: &Path, name: &std::ffi::OsStr) -> Result<(JsonPath, Option<JsonPath>)> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(Error::Invalid(format!(
            "{:?} is not a file name (no '/', not '.' or '..'); to move to another folder use mv",
            name
        )));
    }
    let p = absolute(path)?;
    let d = p.with_file_name(name);
    Ok((JsonPath(p), Some(JsonPath(d))))
}

/// Makes `p` absolute and lexically clean, without resolving a final symlink (so a symlink is
/// copied, moved or deleted itself, not what it points to).
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn meta(p: &Path) -> Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p, e)),
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    crate::index::walk::mtime_ns(m)
}

/// What a source item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    File,
    Dir,
    Symlink,
    /// A fifo, socket or device: never copied.
    Special,
}

/// What planning needs to know of a source item: read from this disk, or from the listing
/// another device sent (whose `dev`/`ino` are that device's, used only to find hard links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub kind: ItemKind,
    pub len: u64,
    pub mtime_ns: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Meta {
    pub fn of(m: &std::fs::Metadata) -> Meta {
        let ft = m.file_type();
        Meta {
            kind: if ft.is_dir() {
                ItemKind::Dir
            } else if ft.is_symlink() {
                ItemKind::Symlink
            } else if ft.is_file() {
                ItemKind::File
            } else {
                ItemKind::Special
            },
            len: m.len(),
            mtime_ns: mtime_ns(m),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        }
    }

    fn is_dir(&self) -> bool {
        self.kind == ItemKind::Dir
    }

    fn is_file(&self) -> bool {
        self.kind == ItemKind::File
    }

    fn is_symlink(&self) -> bool {
        self.kind == ItemKind::Symlink
    }
}

/// Where a plan reads its sources: this disk, or a listing another device sent. Destinations
/// are always read from this disk.
pub trait Tree {
    /// The item at `p`, not following a final symlink; `None` when there is none.
    fn meta(&self, p: &Path) -> Result<Option<Meta>>;
    /// The names inside folder `p`.
    fn list(&self, p: &Path) -> std::io::Result<Vec<OsString>>;
}

/// This disk.
struct Disk;

impl Tree for Disk {
    fn meta(&self, p: &Path) -> Result<Option<Meta>> {
        Ok(meta(p)?.as_ref().map(Meta::of))
    }

    fn list(&self, p: &Path) -> std::io::Result<Vec<OsString>> {
        std::fs::read_dir(p)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }
}

/// Files, folders and bytes under `p` (itself included), not following symlinks.
fn tree_totals(p: &Path, m: &Meta) -> (u64, u64, u64) {
    if !m.is_dir() {
        return (
            u64::from(m.is_file()),
            0,
            if m.is_file() { m.len } else { 0 },
        );
    }
    let (mut files, mut dirs, mut bytes) = (0, 1, 0);
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                dirs += 1;
                stack.push(e.path());
            } else if m.is_file() {
                files += 1;
                bytes += m.len();
            }
        }
    }
    (files, dirs, bytes)
}

struct Planner<'t> {
    /// Where the sources are read.
    tree: &'t dyn Tree,
    policy: ConflictPolicy,
    steps: Vec<Step>,
    /// Destinations planned so far, for keep-both's free names (the only policy that asks).
    planned: HashSet<PathBuf>,
    links: HashMap<(u64, u64), i64>,
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    conflicts: u64,
    /// Destination device → (bytes needed, a path on it).
    need: HashMap<u64, (u64, PathBuf)>,
    strategies: Vec<&'static str>,
    warnings: Vec<String>,
}

/// What an existing destination means for an item.
enum Placement {
    /// Folder into folder: a merge step was recorded; plan the children.
    Merged,
    /// A conflict (policy `ask`) or a skip was recorded; nothing else to plan.
    Recorded,
    /// Go ahead at this destination; `true` when it replaces a file.
    Place(PathBuf, bool),
}

fn new_step(op: StepOp, src: &Path, dst: Option<&Path>, size: u64) -> Step {
    Step {
        seq: 0,
        op,
        src: JsonPath(src.to_path_buf()),
        dst: dst.map(|d| JsonPath(d.to_path_buf())),
        size,
        mtime: None,
        link_to: None,
        overwrite: false,
        root: false,
        note: None,
    }
}

impl Planner<'_> {
    fn push(&mut self, mut s: Step) -> i64 {
        s.seq = self.steps.len() as i64 + 1;
        if self.policy == ConflictPolicy::KeepBoth
            && let Some(d) = &s.dst
        {
            self.planned.insert(d.0.clone());
        }
        let seq = s.seq;
        self.steps.push(s);
        seq
    }

    fn skip(&mut self, src: &Path, dst: Option<&Path>, note: String) {
        let mut s = new_step(StepOp::Skip, src, dst, 0);
        s.note = Some(note);
        self.push(s);
    }

    /// Records what happens to `src` given that `dst` exists (`dm`), by the policy.
    fn existing(
        &mut self,
        src: &Path,
        dst: &Path,
        sm: &Meta,
        dm: &std::fs::Metadata,
    ) -> Result<Placement> {
        // Folder onto folder merges, except under keep-both: the new folder is kept apart as
        // `name (1)`, like a file, so nothing of the existing one is mixed with it.
        if sm.is_dir() && dm.is_dir() && self.policy != ConflictPolicy::KeepBoth {
            let mut s = new_step(StepOp::Merge, src, Some(dst), 0);
            s.root = true;
            s.mtime = Some(sm.mtime_ns);
            self.push(s);
            self.dirs += 1;
            return Ok(Placement::Merged);
        }
        self.conflicts += 1;
        Ok(match self.policy {
            ConflictPolicy::Ask => {
                self.conflict(src, dst);
                Placement::Recorded
            }
            ConflictPolicy::Skip => {
                self.skip(src, Some(dst), format!("{} exists: skipped", dst.display()));
                Placement::Recorded
            }
            ConflictPolicy::KeepBoth => {
                Placement::Place(free_name(dst, sm.is_dir(), &self.planned)?, false)
            }
            ConflictPolicy::Overwrite if sm.is_dir() || dm.is_dir() => {
                let why = format!(
                    "{} exists and one of the two is a folder: not replaced (overwrite only replaces files)",
                    dst.display()
                );
                self.skip(src, Some(dst), why);
                Placement::Recorded
            }
            ConflictPolicy::Overwrite => Placement::Place(dst.to_path_buf(), true),
        })
    }

    fn conflict(&mut self, src: &Path, dst: &Path) {
        let mut s = new_step(StepOp::Conflict, src, Some(dst), 0);
        s.note = Some(format!("{} already exists", dst.display()));
        self.push(s);
    }

    fn add_need(&mut self, dst: &Path, dev: u64, bytes: u64) {
        let e = self
            .need
            .entry(dev)
            .or_insert_with(|| (0, dst.parent().unwrap_or(dst).to_path_buf()));
        e.0 += bytes.div_ceil(4096) * 4096;
    }

    /// A move within one filesystem: one rename per item, merging into existing folders.
    fn plan_rename(&mut self, src: &Path, dst: &Path, sm: &Meta) -> Result<()> {
        let (mut dst, mut overwrite) = (dst.to_path_buf(), false);
        if let Some(dm) = meta(&dst)? {
            match self.existing(src, &dst, sm, &dm)? {
                Placement::Merged => {
                    return self.children(src, &dst, |p, s, d, m| p.plan_rename(s, d, m));
                }
                Placement::Recorded => return Ok(()),
                Placement::Place(d, o) => (dst, overwrite) = (d, o),
            }
        }
        // Counted only for what moves whole (a merged folder's children count themselves).
        let (files, dirs, bytes) = tree_totals(src, sm);
        let mut s = new_step(StepOp::Rename, src, Some(&dst), bytes);
        s.mtime = Some(sm.mtime_ns);
        s.root = true;
        s.overwrite = overwrite;
        if overwrite {
            s.note = Some(format!("replaces {}", dst.display()));
        }
        self.push(s);
        self.files += files;
        self.dirs += dirs;
        self.symlinks += u64::from(sm.is_symlink());
        self.bytes += bytes;
        Ok(())
    }

    /// Plans the children of folder `src` into folder `dst` with `f`, in name order.
    fn children(
        &mut self,
        src: &Path,
        dst: &Path,
        f: impl Fn(&mut Planner, &Path, &Path, &Meta) -> Result<()>,
    ) -> Result<()> {
        let mut names: Vec<OsString> = match self.tree.list(src) {
            Ok(names) => names,
            Err(e) => {
                self.warnings.push(format!(
                    "{}: cannot list: {e}; its contents are skipped",
                    src.display()
                ));
                return Ok(());
            }
        };
        names.sort();
        for n in names {
            let s = src.join(&n);
            let Some(m) = self.tree.meta(&s)? else {
                continue;
            };
            f(self, &s, &dst.join(&n), &m)?;
        }
        Ok(())
    }

    /// A copy (or a move across filesystems): folders made, files copied one by one.
    /// `fresh`: the destination folder was created by this plan, so nothing in it exists yet.
    fn plan_copy(
        &mut self,
        src: &Path,
        dst: &Path,
        sm: &Meta,
        fresh: bool,
        dst_dev: u64,
    ) -> Result<()> {
        let (mut dst, mut overwrite) = (dst.to_path_buf(), false);
        let existing = if fresh { None } else { meta(&dst)? };
        if let Some(dm) = existing {
            match self.existing(src, &dst, sm, &dm)? {
                Placement::Merged => {
                    return self
                        .children(src, &dst, |p, s, d, m| p.plan_copy(s, d, m, false, dst_dev));
                }
                Placement::Recorded => return Ok(()),
                Placement::Place(d, o) => (dst, overwrite) = (d, o),
            }
        }
        let mut s = new_step(StepOp::Copy, src, Some(&dst), 0);
        s.root = !fresh;
        s.overwrite = overwrite;
        s.mtime = Some(sm.mtime_ns);
        if overwrite {
            s.note = Some(format!("replaces {}", dst.display()));
        }
        if sm.is_dir() {
            s.op = StepOp::Mkdir;
            self.push(s);
            self.dirs += 1;
            self.add_need(&dst, dst_dev, 4096);
            return self.children(src, &dst, |p, s, d, m| p.plan_copy(s, d, m, true, dst_dev));
        }
        if sm.is_symlink() {
            s.op = StepOp::Symlink;
            s.size = sm.len;
            self.push(s);
            self.symlinks += 1;
            return Ok(());
        }
        if !sm.is_file() {
            let why = format!(
                "{} is a special file (fifo, socket or device): not copied",
                src.display()
            );
            self.skip(src, Some(&dst), why);
            return Ok(());
        }
        s.size = sm.len;
        if sm.nlink > 1 {
            let key = (sm.dev, sm.ino);
            if let Some(&first) = self.links.get(&key) {
                s.op = StepOp::Link;
                s.link_to = Some(first);
                self.push(s);
                self.files += 1;
                return Ok(());
            }
            let seq = self.steps.len() as i64 + 1;
            self.links.insert(key, seq);
        }
        self.files += 1;
        self.bytes += sm.len;
        self.add_need(&dst, dst_dev, sm.len);
        self.push(s);
        Ok(())
    }

    fn plan_delete(&mut self, src: &Path, sm: &Meta, root_dev: u64) -> Result<()> {
        let mut s = new_step(StepOp::Delete, src, None, 0);
        s.mtime = Some(sm.mtime_ns);
        if sm.is_dir() {
            if sm.dev != root_dev {
                let why = format!(
                    "{} is another filesystem mounted here: not deleted",
                    src.display()
                );
                self.skip(src, None, why);
                return Ok(());
            }
            self.push(s);
            self.dirs += 1;
            return self.children(src, src, |p, s, _, m| p.plan_delete(s, m, root_dev));
        }
        s.size = if sm.is_file() { sm.len } else { 0 };
        self.files += u64::from(sm.is_file());
        self.symlinks += u64::from(sm.is_symlink());
        self.bytes += s.size;
        self.push(s);
        Ok(())
    }
}

/// A free name beside `dst`, on disk and among `planned`: `name (1).ext`, `name (2).ext`, …
/// for a file, `name (1)`, `name (2)`, … for a folder (a dot in a folder's name starts no
/// extension: `photos.2019 (1)`).
pub(crate) fn free_name(dst: &Path, is_dir: bool, planned: &HashSet<PathBuf>) -> Result<PathBuf> {
    let name = dst.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let (stem, ext) = match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 && !is_dir => (&name[..i], &name[i..]),
        _ => (name, &b""[..]),
    };
    for n in 1..10_000 {
        let mut cand = stem.to_vec();
        cand.extend_from_slice(format!(" ({n})").as_bytes());
        cand.extend_from_slice(ext);
        let p = dst.with_file_name(OsString::from_vec(cand));
        if !planned.contains(&p) && meta(&p)?.is_none() {
            return Ok(p);
        }
    }
    Err(Error::Conflict(format!(
        "no free name beside {}",
        dst.display()
    )))
}

fn parent_dev(dst: &Path) -> Result<u64> {
    let parent = dst
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{} has no parent folder", dst.display())))?;
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(m.dev()),
        Ok(_) => Err(Error::Invalid(format!(
            "{} is not a folder",
            parent.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!(
            "no folder {}; create it first",
            parent.display()
        ))),
        Err(e) => Err(Error::io(parent, e)),
    }
}

impl<'t> Planner<'t> {
    fn new(tree: &'t dyn Tree, policy: ConflictPolicy) -> Planner<'t> {
        Planner {
            tree,
            policy,
            steps: Vec::new(),
            planned: HashSet::new(),
            links: HashMap::new(),
            files: 0,
            dirs: 0,
            symlinks: 0,
            bytes: 0,
            conflicts: 0,
            need: HashMap::new(),
            strategies: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The plan, with the free space on each destination filesystem and the folders that refuse
    /// writes.
    fn finish(mut self, op: OpKind) -> Plan {
        let copies = self.steps.iter().any(|s| s.op == StepOp::Copy);
        let mut space = Vec::new();
        for (needed, path) in self.need.values() {
            let available = crate::volume::free_bytes(path).unwrap_or(u64::MAX);
            space.push(Space {
                path: JsonPath(path.clone()),
                needed: *needed,
                available,
                ok: *needed <= available,
            });
        }
        let unresolved = self
            .steps
            .iter()
            .filter(|s| s.op == StepOp::Conflict)
            .count() as u64;
        let skipped = self.steps.iter().filter(|s| s.op == StepOp::Skip).count() as u64;
        let overwrites = self.steps.iter().any(|s| s.overwrite);
        let undoable = match op {
            OpKind::Move | OpKind::Trash | OpKind::Restore => !overwrites,
            OpKind::Copy | OpKind::Delete => false,
        };
        if overwrites && op == OpKind::Move {
            self.warnings.push(
                "files replaced by overwrite are gone for good: this move cannot be undone".into(),
            );
        }
        self.strategies.dedup();
        let blocked = blocked_folders(op, &self.steps);
        Plan {
            op,
            files: self.files,
            dirs: self.dirs,
            symlinks: self.symlinks,
            bytes: self.bytes,
            conflicts: self.conflicts,
            unresolved,
            skipped,
            space,
            blocked,
            strategy: self.strategies.join("; "),
            verify: copies,
            undoable,
            warnings: self.warnings,
            steps: self.steps,
        }
    }
}

/// Reads the disk and plans `req`. Reads only.
pub fn plan(req: &Request) -> Result<Plan> {
    let mut p = Planner::new(&Disk, req.policy);
    for (src, dst) in &req.pairs {
        let src = &src.0;
        if req.op == OpKind::Restore {
            plan_restore(&mut p, src, dst.as_ref().map(|d| d.0.as_path()))?;
            continue;
        }
        let sm = Disk
            .meta(src)?
            .ok_or_else(|| Error::NotFound(format!("{}: no such file or folder", src.display())))?;
        match (req.op, dst) {
            (OpKind::Trash, _) => {
                let (files, dirs, bytes) = tree_totals(src, &sm);
                let mut s = new_step(StepOp::Trash, src, None, bytes);
                s.mtime = Some(sm.mtime_ns);
                p.push(s);
                p.files += files;
                p.dirs += dirs;
                p.symlinks += u64::from(sm.is_symlink());
                p.bytes += bytes;
                p.strategies.push("moved to the trash (freedesktop.org)");
            }
            (OpKind::Delete, _) => {
                p.plan_delete(src, &sm, sm.dev)?;
                p.strategies.push("deleted for good (not recoverable)");
            }
            (OpKind::Copy | OpKind::Move, Some(dst)) => {
                let dst = &dst.0;
                if dst == src {
                    if req.op == OpKind::Move {
                        return Err(Error::Invalid(format!(
                            "{} is already there",
                            src.display()
                        )));
                    }
                } else if sm.is_dir() && dst.starts_with(src) {
                    return Err(Error::Invalid(format!(
                        "cannot {} the folder {} into itself ({})",
                        req.op.as_str(),
                        src.display(),
                        dst.display()
                    )));
                }
                let dev = parent_dev(dst)?;
                if req.op == OpKind::Move && dev == sm.dev {
                    p.strategies
                        .push("rename (same filesystem; nothing is copied)");
                    p.plan_rename(src, dst, &sm)?;
                } else {
                    p.strategies.push(if dev == sm.dev {
                        "reflink where the filesystem supports it, else a streaming copy (server-side copy_file_range on a network filesystem)"
                    } else {
                        "a streaming copy (server-side copy_file_range on a network filesystem)"
                    });
                    p.plan_copy(src, dst, &sm, false, dev)?;
                }
            }
            (OpKind::Restore, _) | (_, None) => {
                return Err(Error::Invalid(format!(
                    "{} needs a destination",
                    req.op.as_str()
                )));
            }
        }
    }
    Ok(p.finish(req.op))
}

/// Plans copying `pairs` (source in `tree`, exact destination on this disk) the way [`plan`]
/// plans a copy: the same policies, merges, hard links and free-space check. For sources that
/// another device listed; `how` says how the bytes travel. Reads only.
pub fn plan_copy_from(
    tree: &dyn Tree,
    pairs: &[(JsonPath, JsonPath)],
    policy: ConflictPolicy,
    how: &'static str,
) -> Result<Plan> {
    let mut p = Planner::new(tree, policy);
    p.strategies.push(how);
    for (src, dst) in pairs {
        let sm = tree.meta(&src.0)?.ok_or_else(|| {
            Error::NotFound(format!("{}: no such file or folder", src.0.display()))
        })?;
        let dev = parent_dev(&dst.0)?;
        p.plan_copy(&src.0, &dst.0, &sm, false, dev)?;
    }
    Ok(p.finish(OpKind::Copy))
}

/// The existing folders `steps` create entries in or remove entries from, that the kernel says
/// may not be written (one `access(2)` per distinct folder).
fn blocked_folders(op: OpKind, steps: &[Step]) -> Vec<Blocked> {
    let mut folders = std::collections::BTreeSet::new();
    for s in steps {
        let parent = |p: &JsonPath| p.0.parent().map(Path::to_path_buf);
        match s.op {
            StepOp::Skip | StepOp::Conflict | StepOp::Merge | StepOp::Restore => continue,
            StepOp::Trash | StepOp::Delete => folders.extend(parent(&s.src)),
            _ => {
                if s.root {
                    folders.extend(s.dst.as_ref().and_then(parent));
                    if op == OpKind::Move {
                        folders.extend(parent(&s.src));
                    }
                }
            }
        }
    }
    folders
        .into_iter()
        .filter_map(|f| {
            let e = writable(&f).err()?;
            let hint = match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => {
                    " (is the folder immutable (chattr +i), read-only or not yours?)"
                }
                _ => "",
            };
            Some(Blocked {
                message: format!("cannot write into {}: {e}{hint}", f.display()),
                path: JsonPath(f),
            })
        })
        .collect()
}

/// Whether this process may create and remove entries in folder `dir`.
fn writable(dir: &Path) -> std::io::Result<()> {
    let c = copy::cstr(dir)?;
    // SAFETY: a valid NUL-terminated path; access keeps no pointer.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn plan_restore(p: &mut Planner, info: &Path, dst: Option<&Path>) -> Result<()> {
    let dst = dst.ok_or_else(|| Error::Invalid("restore needs the original path".into()))?;
    let mut s = new_step(StepOp::Restore, info, Some(dst), 0);
    s.root = true;
    if meta(dst)?.is_some() {
        p.conflicts += 1;
        s.op = StepOp::Conflict;
        s.note = Some(format!(
            "{} exists again: move it away, then undo again",
            dst.display()
        ));
    }
    p.push(s);
    p.strategies.push("put back from the trash");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: OpKind, src: &Path, dst: &Path, policy: ConflictPolicy) -> Request {
        Request {
            op,
            pairs: vec![(JsonPath(src.into()), Some(JsonPath(dst.into())))],
            policy,
        }
    }

    #[test]
    fn plans_copy_with_conflicts_and_links() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("x.txt"), "hello").unwrap();
        std::fs::hard_link(a.join("x.txt"), a.join("sub/y.txt")).unwrap();
        std::os::unix::fs::symlink("x.txt", a.join("l")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("x.txt"), "other").unwrap();
        let p = plan(&req(OpKind::Copy, &a, &b, ConflictPolicy::Ask)).unwrap();
        let ops: Vec<_> = p.steps.iter().map(|s| s.op).collect();
        // b exists as a folder: merged; x.txt conflicts; l is a symlink; sub is new with a link.
        assert_eq!(
            ops,
            [
                StepOp::Merge,
                StepOp::Symlink,
                StepOp::Mkdir,
                StepOp::Copy,
                StepOp::Conflict
            ]
        );
        assert_eq!(p.unresolved, 1);
        // Keep-both keeps the folder apart instead of merging into it.
        let p = plan(&req(OpKind::Copy, &a, &b, ConflictPolicy::KeepBoth)).unwrap();
        assert_eq!(p.steps[0].op, StepOp::Mkdir);
        assert_eq!(p.steps[0].dst.as_ref().unwrap().0, d.path().join("b (1)"));
        assert!(p.steps.iter().all(|s| s.op != StepOp::Conflict));
        let p = plan(&req(
            OpKind::Copy,
            &a.join("x.txt"),
            &b.join("x.txt"),
            ConflictPolicy::KeepBoth,
        ))
        .unwrap();
        assert_eq!(p.steps[0].dst.as_ref().unwrap().0, b.join("x (1).txt"));
        // The second name of the hard-linked file becomes a link to the first copy.
        let p = plan(&req(
            OpKind::Copy,
            &a,
            &d.path().join("c"),
            ConflictPolicy::Ask,
        ))
        .unwrap();
        let link = p.steps.iter().find(|s| s.op == StepOp::Link).unwrap();
        let first = &p.steps[(link.link_to.unwrap() - 1) as usize];
        assert_eq!(first.src.0, a.join("sub/y.txt"));
        assert!(
            plan(&req(
                OpKind::Copy,
                &a,
                &a.join("sub/in"),
                ConflictPolicy::Ask
            ))
            .is_err()
        );
    }

    #[test]
    fn free_names_skip_taken_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("r.pdf"), "1").unwrap();
        std::fs::write(d.path().join("r (1).pdf"), "1").unwrap();
        std::fs::write(d.path().join(".hidden"), "1").unwrap();
        let none = HashSet::new();
        assert_eq!(
            free_name(&d.path().join("r.pdf"), false, &none).unwrap(),
            d.path().join("r (2).pdf")
        );
        assert_eq!(
            free_name(&d.path().join(".hidden"), false, &none).unwrap(),
            d.path().join(".hidden (1)")
        );
        assert_eq!(
            free_name(&d.path().join("photos.2019"), true, &none).unwrap(),
            d.path().join("photos.2019 (1)")
        );
    }
}
