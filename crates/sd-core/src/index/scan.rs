//! The writer side of a scan: turns directory listings into index changes.
//!
//! Runs on the library's writer thread, one transaction per batch of listings. For each
//! directory it diffs the listing against the directory's children in the index:
//! - same name and kind → keep the entry (and its id); update size/mtime/inode if they changed;
//! - a name the index does not have → look the inode up in the location: if that entry is gone
//!   from its old place (already marked missing, or no longer there on disk) it is a **move** and the
//!   entry is re-parented, keeping its id and subtree; otherwise a new entry is inserted;
//! - an indexed name no longer on disk → marked *missing*, deleted only when the walk is over, so a
//!   file moved to a directory listed later still keeps its id.
//!
//! The frontier (directories written but not yet listed) and the missing set are updated in the
//! same transaction as the entries, which makes every committed batch a consistent checkpoint.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::LazyLock;

use rusqlite::{OptionalExtension, Transaction, params};

use super::IndexProgress;
use super::walk::{Child, EntryKind, Listing, PathError};
use crate::Result;
use crate::names;
use crate::store::RowsInsert;
use crate::{query, tree};

const MAX_ERROR_SAMPLES: usize = 50;

/// Recursive totals of a directory (or, during a scan, of its direct children).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Sums {
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
}

impl std::ops::AddAssign for Sums {
    /// Folds a child's totals into its parent's.
    fn add_assign(&mut self, other: Sums) {
        self.bytes += other.bytes;
        self.files += other.files;
        self.dirs += other.dirs;
    }
}

/// The state of one scan that lives between batches. Rebuilt from the database on resume.
pub(crate) struct ScanState {
    pub job_id: i64,
    pub location_id: i64,
    pub root_id: i64,
    pub root_path: PathBuf,
    /// Initial scan of an empty location: no diff needed, nothing can have moved.
    pub fresh: bool,
    /// Walker tokens of directories not yet listed → their entry ids.
    pub tokens: HashMap<u64, i64>,
    pub missing: HashSet<i64>,
    /// Direct-children sums of every directory listed in this run (for aggregation).
    pub direct: HashMap<i64, Sums>,
    /// For a run over a few folders of a location that all happened in this process (a watched
    /// change, not resumed): every directory whose children it changed — those it listed and
    /// those it took a moved entry from — so aggregation sums again only them and their
    /// ancestors. `None`: aggregation sums the whole location.
    pub around: Option<HashSet<i64>>,
    /// inode → entry ids of the location, loaded the first time a rescan meets an unknown name
    /// (after [`INODE_QUERIES`] of them in a run over a few folders).
    pub inodes: Option<InodeMap>,
    /// Unknown names looked up by inode with a query of their own in this run.
    pub inode_queries: u32,
    /// The location's filesystem (`st_dev`): with the inode, a file's identity across locations.
    pub dev: u64,
    /// Whether organisation waits in `departed` for a file of this filesystem (asked once).
    pub departed_waiting: Option<bool>,
    pub progress: IndexProgress,
    /// Directories this batch put on the frontier, written to `index_frontier` when the batch
    /// ends unless listed within it: a folder listed in the batch that found it never touches
    /// the table (depth-first, that is most of them).
    pub frontier_new: HashSet<i64>,
    /// A fresh scan's running totals (`None` for any other run): see [`Rollup`].
    pub rollup: Option<Rollup>,
    /// The id the next entry written in this batch takes, once asked ([`insert_fresh`]).
    pub next_id: Option<i64>,
}

/// A fresh scan's directory totals, summed while it walks: each directory is written once its
/// whole subtree is listed, while its row is still in the page cache (mostly still dirty in the
/// transaction), instead of all of them in one pass over the table when the walk ends.
/// Only a run that saw every listing of the location can do this: a fresh one, from its start.
pub(crate) struct Rollup {
    /// Directories whose subtree is not yet whole.
    open: HashMap<i64, OpenDir>,
    /// The root's totals, once its subtree is whole.
    root: Option<Sums>,
}

struct OpenDir {
    parent: Option<i64>,
    /// Listings still to come in the subtree: its own, then one per open child directory.
    waiting: u32,
    /// Totals of what is listed so far in the subtree.
    sums: Sums,
}

impl Rollup {
    /// A rollup that waits for the listing of `root`.
    pub(crate) fn new(root: i64) -> Rollup {
        let mut open = HashMap::new();
        open.insert(
            root,
            OpenDir {
                parent: None,
                waiting: 1,
                sums: Sums::default(),
            },
        );
        Rollup { open, root: None }
    }

    /// The root's totals, when every directory of the location was summed.
    fn whole(&self) -> Option<Sums> {
        self.root.filter(|_| self.open.is_empty())
    }

    /// A directory written under `parent`: `listed` says whether a listing of it will come.
    fn opened(&mut self, tx: &Transaction<'_>, id: i64, parent: i64, listed: bool) -> Result<()> {
        self.open.insert(
            id,
            OpenDir {
                parent: Some(parent),
                waiting: u32::from(listed),
                sums: Sums::default(),
            },
        );
        if let Some(p) = self.open.get_mut(&parent) {
            p.waiting += 1;
        }
        if !listed {
            self.close(tx, id)?;
        }
        Ok(())
    }

    /// Directory `id` was listed with these direct-children sums (zero when unreadable).
    fn listed(&mut self, tx: &Transaction<'_>, id: i64, direct: Sums) -> Result<()> {
        let Some(dir) = self.open.get_mut(&id) else {
            return Ok(());
        };
        dir.sums += direct;
        dir.waiting = dir.waiting.saturating_sub(1);
        if dir.waiting == 0 {
            self.close(tx, id)?;
        }
        Ok(())
    }

    /// Writes the totals of every directory whose subtree is now whole, from `id` upwards.
    fn close(&mut self, tx: &Transaction<'_>, mut id: i64) -> Result<()> {
        let mut upd =
            tx.prepare_cached("UPDATE entries SET size = ?2, files = ?3, dirs = ?4 WHERE id = ?1")?;
        loop {
            let Some(dir) = self.open.remove(&id) else {
                return Ok(());
            };
            let s = dir.sums;
            upd.execute(params![id, s.bytes as i64, s.files as i64, s.dirs as i64])?;
            let Some(parent) = dir.parent else {
                self.root = Some(s);
                return Ok(());
            };
            let Some(p) = self.open.get_mut(&parent) else {
                return Ok(());
            };
            p.sums += s;
            p.waiting = p.waiting.saturating_sub(1);
            if p.waiting > 0 {
                return Ok(());
            }
            id = parent;
        }
    }
}

/// The location's entries by inode, for move detection. One id per inode in the common case;
/// hard-linked inodes keep their extra ids in `more`.
#[derive(Default)]
pub(crate) struct InodeMap {
    first: HashMap<u64, i64>,
    more: HashMap<u64, Vec<i64>>,
}

impl InodeMap {
    fn load(tx: &Transaction<'_>, location_id: i64) -> Result<InodeMap> {
        let mut map = InodeMap::default();
        let mut q = tx.prepare("SELECT id, inode FROM entries WHERE location_id = ?1")?;
        let mut rows = q.query([location_id])?;
        while let Some(r) = rows.next()? {
            map.add(r.get::<_, i64>(1)? as u64, r.get(0)?);
        }
        Ok(map)
    }

    fn add(&mut self, inode: u64, id: i64) {
        match self.first.entry(inode) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(inode).or_default().push(id)
            }
        }
    }

    fn get(&self, inode: u64) -> Vec<i64> {
        let mut ids: Vec<i64> = self.first.get(&inode).copied().into_iter().collect();
        if let Some(more) = self.more.get(&inode) {
            ids.extend(more);
        }
        ids
    }
}

struct Existing {
    id: i64,
    kind: EntryKind,
    size: i64,
    mtime: Option<i64>,
    inode: i64,
    btime: Option<i64>,
    nlink: Option<i64>,
    target: Option<Vec<u8>>,
}

fn nlink_col(c: &Child) -> Option<i64> {
    (c.kind != EntryKind::Dir && c.nlink > 1).then_some(c.nlink as i64)
}

fn size_col(c: &Child) -> i64 {
    if c.kind == EntryKind::Dir {
        0
    } else {
        c.size as i64
    }
}

/// Applies one batch of listings inside `tx`. Persists the progress with it.
pub(crate) fn apply_batch(
    tx: &Transaction<'_>,
    st: &mut ScanState,
    batch: Vec<Listing>,
) -> Result<()> {
    st.next_id = None; // other writes may have come between two batches
    for listing in batch {
        apply_listing(tx, st, listing)?;
    }
    let mut new: Vec<i64> = st.frontier_new.drain().collect();
    new.sort_unstable();
    let mut add = tx.prepare_cached(
        "INSERT OR IGNORE INTO index_frontier (job_id, entry_id) VALUES (?1, ?2)",
    )?;
    for id in new {
        add.execute(params![st.job_id, id])?;
    }
    tx.prepare_cached("UPDATE jobs SET progress = ?2 WHERE id = ?1")?
        .execute(params![st.job_id, serde_json::to_string(&st.progress)?])?;
    Ok(())
}

fn record_error(st: &mut ScanState, e: PathError) {
    st.progress.errors += 1;
    if st.progress.error_samples.len() < MAX_ERROR_SAMPLES {
        st.progress.error_samples.push(e);
    }
}

fn apply_listing(tx: &Transaction<'_>, st: &mut ScanState, listing: Listing) -> Result<()> {
    let Some(dir_id) = st.tokens.remove(&listing.token) else {
        tracing::error!(path = %listing.path.display(), "listing for a directory the scan does not know");
        return Ok(());
    };
    st.progress.ignored += listing.ignored;
    for e in listing.errors {
        record_error(st, e);
    }
    if !st.frontier_new.remove(&dir_id) {
        tx.prepare_cached("DELETE FROM index_frontier WHERE job_id = ?1 AND entry_id = ?2")?
            .execute(params![st.job_id, dir_id])?;
    }
    let children = match listing.children {
        Ok(c) => c,
        Err(message) => {
            // Unreadable directory: keep what the index knew about it, report it. (A fresh
            // scan knew nothing under it: its totals are zero.)
            record_error(
                st,
                PathError {
                    path: listing.path.into(),
                    message,
                },
            );
            if let Some(rollup) = st.rollup.as_mut() {
                rollup.listed(tx, dir_id, Sums::default())?;
            }
            return Ok(());
        }
    };
    st.progress.dirs_listed += 1;

    let mut existing: HashMap<OsString, Existing> = HashMap::new();
    if !st.fresh {
        let mut q = tx.prepare_cached(
            "SELECT id, name, kind, size, mtime, inode, nlink, target, btime FROM entries WHERE parent_id = ?1",
        )?;
        let rows = q.query_map([dir_id], |r| {
            Ok((
                names::from_sql(r.get_ref(1)?)?,
                Existing {
                    id: r.get(0)?,
                    kind: EntryKind::from_i64(r.get(2)?),
                    size: r.get(3)?,
                    mtime: r.get(4)?,
                    inode: r.get(5)?,
                    nlink: r.get(6)?,
                    target: r.get(7)?,
                    btime: r.get(8)?,
                },
            ))
        })?;
        for row in rows {
            let (name, ex) = row?;
            existing.insert(name, ex);
        }
    }

    // Pass 1: children that are the same entry under the same name. An indexed name whose inode
    // now shows up under another name in this directory was renamed, not modified in place.
    let listed_inodes: HashSet<u64> = if existing.is_empty() {
        HashSet::new()
    } else {
        children.iter().map(|c| c.inode).collect()
    };
    let mut sums = Sums::default();
    let mut placed: Vec<(Child, Option<i64>)> = Vec::with_capacity(children.len());
    for child in children {
        match child.kind {
            EntryKind::File => {
                st.progress.files += 1;
                st.progress.bytes += child.size;
                sums.files += 1;
                sums.bytes += child.size;
            }
            EntryKind::Dir => {
                st.progress.dirs += 1;
                sums.dirs += 1;
            }
            EntryKind::Symlink => st.progress.symlinks += 1,
            EntryKind::Other => st.progress.other += 1,
        }
        let same = existing.get(&child.name).is_some_and(|ex| {
            ex.kind == child.kind
                && (ex.inode == child.inode as i64 || !listed_inodes.contains(&(ex.inode as u64)))
        });
        let id = if same {
            let ex = existing.remove(&child.name).expect("checked above");
            update_if_changed(tx, st, &ex, &child)?;
            Some(ex.id)
        } else {
            None
        };
        placed.push((child, id));
    }
    // Pass 2: indexed entries not matched are missing. One whose name is taken by a different
    // entry is detached first, freeing the name; it stays claimable by a move until the walk ends.
    for (name, ex) in existing {
        if placed.iter().any(|(c, id)| id.is_none() && c.name == name) {
            tx.prepare_cached("UPDATE entries SET parent_id = NULL WHERE id = ?1")?
                .execute([ex.id])?;
        }
        mark_missing(tx, st, ex.id)?;
    }
    // Pass 3: the remaining names are moves (by inode) or new entries. In a fresh scan every
    // name is new, and goes in with a few multi-row statements (unless organisation waits for
    // an arriving file, which is looked at row by row).
    let ids: Vec<i64> = if st.fresh && !departed_waiting(tx, st)? && st.inodes.is_none() {
        insert_fresh(tx, st, dir_id, &placed)?
    } else {
        let mut ids = Vec::with_capacity(placed.len());
        for (child, id) in &placed {
            ids.push(match id {
                Some(id) => *id,
                None => match (!st.fresh)
                    .then(|| find_moved(tx, st, dir_id, child))
                    .transpose()?
                    .flatten()
                {
                    Some(id) => id,
                    None => insert(tx, st, dir_id, child)?,
                },
            });
        }
        ids
    };
    for ((child, _), id) in placed.iter().zip(ids) {
        if let Some(token) = child.token {
            st.tokens.insert(token, id);
            st.frontier_new.insert(id);
        }
        if child.kind == EntryKind::Dir
            && let Some(rollup) = st.rollup.as_mut()
        {
            rollup.opened(tx, id, dir_id, child.token.is_some())?;
        }
    }
    if let Some(rollup) = st.rollup.as_mut() {
        rollup.listed(tx, dir_id, sums)?;
    }
    st.direct.insert(dir_id, sums);
    if let Some(around) = st.around.as_mut() {
        around.insert(dir_id);
    }
    Ok(())
}

/// Whether organisation waits in `departed` for a file of this filesystem (asked once a scan).
fn departed_waiting(tx: &Transaction<'_>, st: &mut ScanState) -> Result<bool> {
    if st.departed_waiting.is_none() {
        st.departed_waiting = Some(super::departed::any_waiting(tx, st.dev)?);
    }
    Ok(st.departed_waiting == Some(true))
}

/// Inserts every child of a directory a fresh scan listed, with ids given in order from the
/// table's largest (asked once a batch: within it this scan is the only writer), in multi-row
/// statements: SQLite's cost per statement, not per row, was most of the writer's time.
/// Returns the children's ids, in order.
fn insert_fresh(
    tx: &Transaction<'_>,
    st: &mut ScanState,
    parent: i64,
    children: &[(Child, Option<i64>)],
) -> Result<Vec<i64>> {
    let first = match st.next_id {
        Some(id) => id,
        None => tx
            .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM entries")?
            .query_row([], |r| r.get(0))?,
    };
    let location = st.location_id;
    ENTRY_INSERT.run(tx, children, |stmt, at, i, (c, _)| {
        bind_entry(stmt, at, Some(first + i as i64), location, parent, c)
    })?;
    let id = first + children.len() as i64;
    st.next_id = Some(id);
    st.progress.new += children.len() as u64;
    Ok((first..id).collect())
}

/// The one INSERT of entries, in statements of one to 64 rows.
static ENTRY_INSERT: LazyLock<RowsInsert> = LazyLock::new(|| {
    RowsInsert::new(
        "INSERT OR FAIL INTO entries (id, location_id, parent_id, name, kind, size, mtime, inode, nlink, target, btime) VALUES",
        11,
        "",
    )
});

/// Binds one row of [`ENTRY_INSERT`] at `at`: child `c` of `parent`, with `id`, or the next
/// free one when `None`.
fn bind_entry(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    id: Option<i64>,
    location: i64,
    parent: i64,
    c: &Child,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, id)?;
    stmt.raw_bind_parameter(at + 1, location)?;
    stmt.raw_bind_parameter(at + 2, parent)?;
    stmt.raw_bind_parameter(at + 3, names::to_sql(&c.name))?;
    stmt.raw_bind_parameter(at + 4, c.kind as i64)?;
    stmt.raw_bind_parameter(at + 5, size_col(c))?;
    stmt.raw_bind_parameter(at + 6, c.mtime_ns)?;
    stmt.raw_bind_parameter(at + 7, c.inode as i64)?;
    stmt.raw_bind_parameter(at + 8, nlink_col(c))?;
    stmt.raw_bind_parameter(at + 9, &c.target)?;
    stmt.raw_bind_parameter(at + 10, c.btime_ns)
}

/// Inserts one new entry, child `c` of `parent`, under the next free id.
fn insert(tx: &Transaction<'_>, st: &mut ScanState, parent: i64, c: &Child) -> Result<i64> {
    let location = st.location_id;
    ENTRY_INSERT.run(tx, std::slice::from_ref(c), |stmt, at, _, c| {
        bind_entry(stmt, at, None, location, parent, c)
    })?;
    st.progress.new += 1;
    let id = tx.last_insert_rowid();
    st.next_id = None;
    if let Some(m) = st.inodes.as_mut() {
        m.add(c.inode, id);
    }
    if departed_waiting(tx, st)? {
        super::departed::arrive(tx, st.dev, id, c)?;
    }
    Ok(id)
}

fn update_if_changed(
    tx: &Transaction<'_>,
    st: &mut ScanState,
    ex: &Existing,
    c: &Child,
) -> Result<()> {
    let content_changed = c.kind != EntryKind::Dir
        && (ex.size != c.size as i64 || ex.mtime != Some(c.mtime_ns) || ex.target != c.target);
    let changed = content_changed
        || ex.inode != c.inode as i64
        || ex.btime != c.btime_ns
        || ex.nlink != nlink_col(c)
        || ex.mtime != Some(c.mtime_ns);
    if changed {
        tx.prepare_cached(
            "UPDATE entries SET size = CASE WHEN kind = 1 THEN size ELSE ?2 END,
                                mtime = ?3, inode = ?4, nlink = ?5, target = ?6, btime = ?7
             WHERE id = ?1",
        )?
        .execute(params![
            ex.id,
            size_col(c),
            c.mtime_ns,
            c.inode as i64,
            nlink_col(c),
            c.target,
            c.btime_ns
        ])?;
        // A file whose bytes may have changed loses its content identity until re-hashed.
        if c.kind == EntryKind::File && (content_changed || ex.inode != c.inode as i64) {
            unlink_content(tx, ex.id)?;
        }
    }
    if content_changed || (c.kind != EntryKind::Dir && ex.inode != c.inode as i64) {
        st.progress.modified += 1;
    }
    Ok(())
}

/// Forgets a file's content identity (its bytes may have changed); a trigger uncounts the copy.
fn unlink_content(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM entry_content WHERE entry_id = ?1")?
        .execute([id])?;
    Ok(())
}

fn mark_missing(tx: &Transaction<'_>, st: &mut ScanState, id: i64) -> Result<()> {
    if st.missing.insert(id) {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO index_missing (job_id, entry_id) VALUES (?1, ?2)",
        )?
        .execute(params![st.job_id, id])?;
    }
    Ok(())
}

/// Unknown names a run over a few folders (a watched change) looks up by inode one query each
/// — a scan of the rows that builds nothing — before it loads the location's whole
/// [`InodeMap`]: a file saved in a 1M-entry location costs one scan, a burst of new files
/// a few scans and one load.
const INODE_QUERIES: u32 = 4;

/// What move detection needs to know about an indexed entry sharing the new name's inode.
struct Candidate {
    kind: i64,
    btime: Option<i64>,
    mtime: Option<i64>,
    size: i64,
    parent: Option<i64>,
}

/// A name new to `parent`: is it an indexed entry that moved here? Returns its id, re-parented.
fn find_moved(
    tx: &Transaction<'_>,
    st: &mut ScanState,
    parent: i64,
    c: &Child,
) -> Result<Option<i64>> {
    let ids = match st.inodes.as_ref() {
        Some(map) => map.get(c.inode),
        None if st.around.is_some() && st.inode_queries < INODE_QUERIES => {
            st.inode_queries += 1;
            tx.prepare_cached("SELECT id FROM entries WHERE location_id = ?1 AND inode = ?2")?
                .query_map(params![st.location_id, c.inode as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?
        }
        None => {
            let map = InodeMap::load(tx, st.location_id)?;
            let ids = map.get(c.inode);
            st.inodes = Some(map);
            ids
        }
    };
    let mut candidates: Vec<(i64, Candidate)> = Vec::with_capacity(ids.len());
    let mut row = tx.prepare_cached(
        "SELECT kind, btime, mtime, size, parent_id FROM entries WHERE id = ?1 AND inode = ?2",
    )?;
    for id in ids.into_iter().filter(|&id| id != st.root_id) {
        // The map can be stale (entries deleted or given new inodes since): check the row.
        if let Some(cand) = row
            .query_row(params![id, c.inode as i64], |r| {
                Ok(Candidate {
                    kind: r.get(0)?,
                    btime: r.get(1)?,
                    mtime: r.get(2)?,
                    size: r.get(3)?,
                    parent: r.get(4)?,
                })
            })
            .optional()?
        {
            candidates.push((id, cand));
        }
    }
    for (
        id,
        Candidate {
            kind,
            btime,
            mtime,
            size,
            parent: was_under,
        },
    ) in candidates
    {
        if EntryKind::from_i64(kind) != c.kind {
            continue;
        }
        if !super::departed::same_identity(kind, btime, mtime, (c.btime_ns, Some(c.mtime_ns))) {
            continue;
        }
        let gone = if st.missing.contains(&id) {
            true
        } else {
            // Still at its old path with this inode → a hard link (or the same dir), not a move.
            match tree::entry_path(tx, st.root_id, &st.root_path, id)? {
                Some(old) => std::fs::symlink_metadata(&old)
                    .map(|m| m.ino() != c.inode)
                    .unwrap_or(true),
                None => false,
            }
        };
        if !gone || (c.kind == EntryKind::Dir && query::is_ancestor(tx, id, parent)?) {
            continue;
        }
        tx.prepare_cached(
            "UPDATE entries SET parent_id = ?2, name = ?3, size = CASE WHEN kind = 1 THEN size ELSE ?4 END,
                                mtime = ?5, inode = ?6, nlink = ?7, target = ?8, btime = ?9
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            parent,
            names::to_sql(&c.name),
            size_col(c),
            c.mtime_ns,
            c.inode as i64,
            nlink_col(c),
            c.target,
            c.btime_ns
        ])?;
        if c.kind == EntryKind::File && (size != c.size as i64 || mtime != Some(c.mtime_ns)) {
            unlink_content(tx, id)?; // moved and modified
        }
        if st.missing.remove(&id) {
            tx.prepare_cached("DELETE FROM index_missing WHERE job_id = ?1 AND entry_id = ?2")?
                .execute(params![st.job_id, id])?;
        }
        st.progress.moved += 1;
        if let (Some(around), Some(old)) = (st.around.as_mut(), was_under) {
            around.insert(old);
        }
        return Ok(Some(id));
    }
    Ok(None)
}

/// Deletes every entry still missing at the end of the walk, with its subtree.
pub(crate) fn delete_missing(tx: &Transaction<'_>, st: &mut ScanState) -> Result<()> {
    let ids: Vec<i64> = tx
        .prepare("SELECT entry_id FROM index_missing WHERE job_id = ?1")?
        .query_map([st.job_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // Tags and notes on what leaves may belong to a file that moved to another location.
    super::departed::leave(tx, st.location_id, st.dev, &ids)?;
    let mut del = tx.prepare_cached(
        "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
         DELETE FROM entries WHERE id IN sub",
    )?;
    for id in ids {
        st.progress.deleted += del.execute([id])? as u64;
    }
    tx.execute("DELETE FROM index_missing WHERE job_id = ?1", [st.job_id])?;
    st.missing.clear();
    Ok(())
}

/// Content identities no entry points to any more and nobody tagged or annotated. The index of
/// orphans (schema 12) answers `copies <= 0` without reading every identity.
const ORPHANS: &str = "SELECT id FROM content_identities c WHERE copies <= 0
    AND NOT EXISTS (SELECT 1 FROM tag_assignments t WHERE t.content_id = c.id)
    AND NOT EXISTS (SELECT 1 FROM user_metadata m WHERE m.content_id = c.id)";

/// Removes the [`ORPHANS`], with their queue rows.
pub(crate) fn drop_orphan_content(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS orphan_content (id INTEGER PRIMARY KEY);
         DELETE FROM temp.orphan_content;
         INSERT INTO temp.orphan_content {ORPHANS};
         DELETE FROM intelligence_queue WHERE content_id IN (SELECT id FROM temp.orphan_content);
         DELETE FROM content_identities WHERE id IN (SELECT id FROM temp.orphan_content);"
    ))?;
    Ok(())
}

/// Writes recursive size/file/dir counts into every directory of the location, bottom-up.
/// Directories listed in this run use the sums gathered then; the others are summed from the index.
/// A fresh scan that summed every directory as it walked ([`Rollup`]) has nothing left to write.
/// Returns the root's totals.
pub(crate) fn aggregate(tx: &Transaction<'_>, st: &mut ScanState) -> Result<Sums> {
    let rolled = st.rollup.take().and_then(|r| r.whole());
    let root = match (rolled, &st.around) {
        (Some(root), _) => root,
        (None, Some(around)) => aggregate_around(tx, st, around)?,
        (None, None) => {
            let totals = sum_location(tx, st)?;
            let mut upd = tx.prepare(
                "UPDATE entries SET size = ?2, files = ?3, dirs = ?4
                 WHERE id = ?1 AND (size IS NOT ?2 OR files IS NOT ?3 OR dirs IS NOT ?4)",
            )?;
            // In id order: rows are visited as they lie in the table, each page once, instead
            // of at random (a million-entry table does not fit the page cache).
            let mut ordered: Vec<(&i64, &Sums)> = totals.iter().collect();
            ordered.sort_unstable_by_key(|(id, _)| **id);
            for (id, s) in ordered {
                upd.execute(params![id, s.bytes as i64, s.files as i64, s.dirs as i64])?;
            }
            totals.get(&st.root_id).copied().unwrap_or_default()
        }
    };
    if cfg!(debug_assertions) && (st.around.is_some() || rolled.is_some()) {
        // Tests run debug builds: every partial or rolled-up sum is checked against the whole one.
        let whole = sum_location(tx, st)?;
        let mut q = tx.prepare("SELECT size, files, dirs FROM entries WHERE id = ?1")?;
        for (id, want) in &whole {
            // A folder never summed (a new one that could not be listed) holds NULL counts.
            let got: (i64, i64, i64) = q.query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                ))
            })?;
            let want = (want.bytes as i64, want.files as i64, want.dirs as i64);
            assert_eq!(got, want, "directory {id}: partial aggregation differs");
        }
    }
    Ok(root)
}

/// Direct-children sums of directory `id`, read from the index.
fn direct_sums(tx: &Transaction<'_>, id: i64) -> Result<Sums> {
    let mut q = tx.prepare_cached(
        "SELECT kind, count(*), total(size) FROM entries WHERE parent_id = ?1 GROUP BY kind",
    )?;
    let mut s = Sums::default();
    let rows = q.query_map([id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, f64>(2)?,
        ))
    })?;
    for row in rows {
        let (kind, n, bytes) = row?;
        match EntryKind::from_i64(kind) {
            EntryKind::File => {
                s.files += n as u64;
                s.bytes += bytes as u64;
            }
            EntryKind::Dir => s.dirs += n as u64,
            _ => {}
        }
    }
    Ok(s)
}

/// [`aggregate`] for a run that changed the children of a few directories (`around`): sums
/// again only those and their ancestors, deepest first, each from its direct children (the
/// sums gathered when it was listed, else the index) plus its child directories' stored totals —
/// which are current, as a child either is summed again before it or kept its whole subtree.
/// A watched change to one folder of a 1M-entry location costs a few queries instead of one per
/// directory of the location.
fn aggregate_around(tx: &Transaction<'_>, st: &ScanState, around: &HashSet<i64>) -> Result<Sums> {
    // Each directory's parent, up to the root, for the changed ones and their ancestors (a
    // directory deleted in this run has no row and nothing to sum).
    let mut up: HashMap<i64, Option<i64>> = HashMap::new();
    let mut parent_q = tx.prepare_cached("SELECT parent_id FROM entries WHERE id = ?1")?;
    let mut todo: Vec<i64> = around.iter().copied().collect();
    while let Some(id) = todo.pop() {
        if up.contains_key(&id) || up.len() > tree::MAX_DEPTH * around.len().max(1) {
            continue;
        }
        if let Some(parent) = parent_q
            .query_row([id], |r| r.get::<_, Option<i64>>(0))
            .optional()?
        {
            up.insert(id, parent);
            todo.extend(parent);
        }
    }
    let mut depth: HashMap<i64, usize> = HashMap::with_capacity(up.len());
    for &id in up.keys() {
        let mut chain = vec![id];
        let mut base = 0;
        while let Some(Some(p)) = up.get(chain.last().expect("non-empty")) {
            if let Some(&d) = depth.get(p) {
                base = d + 1;
                break;
            }
            if chain.len() > tree::MAX_DEPTH {
                break; // a cycle in the links would be a bug; never loop on it
            }
            chain.push(*p);
        }
        for (i, c) in chain.iter().rev().enumerate() {
            depth.insert(*c, base + i);
        }
    }
    let mut order: Vec<i64> = up.keys().copied().collect();
    order.sort_by_key(|id| std::cmp::Reverse(depth[id]));
    let mut below = tx.prepare_cached(
        "SELECT coalesce(sum(size), 0), coalesce(sum(files), 0), coalesce(sum(dirs), 0)
           FROM entries WHERE parent_id = ?1 AND kind = 1",
    )?;
    let mut upd = tx.prepare_cached(
        "UPDATE entries SET size = ?2, files = ?3, dirs = ?4
         WHERE id = ?1 AND (size IS NOT ?2 OR files IS NOT ?3 OR dirs IS NOT ?4)",
    )?;
    let mut root = None;
    for id in order {
        let mut s = match st.direct.get(&id) {
            Some(s) => *s,
            None => direct_sums(tx, id)?,
        };
        let (bytes, files, dirs): (i64, i64, i64) =
            below.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        s += Sums {
            bytes: bytes as u64,
            files: files as u64,
            dirs: dirs as u64,
        };
        upd.execute(params![id, s.bytes as i64, s.files as i64, s.dirs as i64])?;
        if id == st.root_id {
            root = Some(s);
        }
    }
    match root {
        Some(s) => Ok(s),
        None => Ok(tx
            .query_row(
                "SELECT size, coalesce(files, 0), coalesce(dirs, 0) FROM entries WHERE id = ?1",
                [st.root_id],
                |r| {
                    Ok(Sums {
                        bytes: r.get::<_, i64>(0)? as u64,
                        files: r.get::<_, i64>(1)? as u64,
                        dirs: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?
            .unwrap_or_default()),
    }
}

/// Recursive sums of every directory of the location, bottom-up (nothing written). Directories
/// listed in this run use the sums gathered then; the others are summed from the index.
fn sum_location(tx: &Transaction<'_>, st: &ScanState) -> Result<HashMap<i64, Sums>> {
    let dirs: Vec<(i64, Option<i64>)> = tx
        .prepare("SELECT id, parent_id FROM entries WHERE location_id = ?1 AND kind = 1")?
        .query_map([st.location_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let parent: HashMap<i64, Option<i64>> = dirs.iter().copied().collect();
    let mut totals: HashMap<i64, Sums> = HashMap::with_capacity(dirs.len());
    for &(id, _) in &dirs {
        let s = match st.direct.get(&id) {
            Some(s) => *s,
            None => direct_sums(tx, id)?,
        };
        totals.insert(id, s);
    }
    // Depth of each directory, so children are folded into parents before parents into theirs.
    let mut depth: HashMap<i64, u32> = HashMap::with_capacity(dirs.len());
    for &(id, _) in &dirs {
        let mut chain = vec![id];
        let mut d = 0;
        while let Some(Some(p)) = parent.get(chain.last().expect("non-empty")) {
            if let Some(&pd) = depth.get(p) {
                d = pd + 1;
                break;
            }
            chain.push(*p);
            if chain.len() > 10_000 {
                break; // a cycle would be a bug; never loop forever on it
            }
        }
        for (i, c) in chain.iter().rev().enumerate() {
            depth.insert(*c, d + i as u32);
        }
    }
    let mut order: Vec<i64> = dirs.iter().map(|d| d.0).collect();
    order.sort_by_key(|id| std::cmp::Reverse(depth[id]));
    for id in &order {
        let s = totals[id];
        if let Some(Some(p)) = parent.get(id)
            && let Some(t) = totals.get_mut(p)
        {
            *t += s;
        }
    }
    Ok(totals)
}

/// Loads the scan state of a job from its checkpoint tables.
pub(crate) fn load_checkpoint(
    tx: &Transaction<'_>,
    job_id: i64,
) -> Result<(Vec<i64>, HashSet<i64>, Option<String>)> {
    let frontier = tx
        .prepare("SELECT entry_id FROM index_frontier WHERE job_id = ?1")?
        .query_map([job_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let missing = tx
        .prepare("SELECT entry_id FROM index_missing WHERE job_id = ?1")?
        .query_map([job_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let progress = tx
        .query_row("SELECT progress FROM jobs WHERE id = ?1", [job_id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok((frontier, missing, progress))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::{
        ORPHANS, Rollup, ScanState, Sums, aggregate, apply_batch, drop_orphan_content, sum_location,
    };
    use crate::index::walk::{Child, EntryKind, Listing};

    fn child(name: &[u8], kind: EntryKind, size: u64, token: Option<u64>) -> Child {
        Child {
            name: OsString::from_vec(name.to_vec()),
            kind,
            size,
            mtime_ns: 1,
            inode: 1,
            btime_ns: None,
            nlink: 1,
            target: None,
            token,
        }
    }

    fn listing(token: u64, children: Vec<Child>) -> Listing {
        Listing {
            token,
            path: format!("/t{token}").into(),
            children: Ok(children),
            errors: Vec::new(),
            ignored: 0,
        }
    }

    /// Orphaned identities go with their queue rows, and are found through the index that holds
    /// only them: the end of every scan no longer reads every identity.
    #[test]
    fn orphaned_content_is_found_without_reading_every_identity() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_writer(&dir.path().join("l.db"), "t").unwrap();
        conn.execute_batch(
            "INSERT INTO content_identities (id, digest, size, kind, copies, first_seen) VALUES
                (1, x'00', 9, 'image', 2, 0), (2, x'00', 9, 'image', 0, 0),
                (3, x'00', 9, 'image', 1, 0), (4, x'00', 9, 'text', -1, 0);
             INSERT INTO intelligence_queue (content_id, kind, queued_at) VALUES
                (1, 'image', 0), (2, 'image', 0);",
        )
        .unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {ORPHANS}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("content_identities_orphans")),
            "{plan:?}"
        );
        let tx = conn.transaction().unwrap();
        drop_orphan_content(&tx).unwrap();
        tx.commit().unwrap();
        let ids = |sql: &str| -> Vec<i64> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(ids("SELECT id FROM content_identities ORDER BY id"), [1, 3]);
        assert_eq!(ids("SELECT content_id FROM intelligence_queue"), [1]);
    }

    /// A fresh scan: every name goes in with its parent whatever the listing's size (multi-row
    /// statements of 64, 32, … 1 rows), a folder's frontier row lives only between the batches
    /// that name and list it, and each folder's totals are written as soon as its subtree is
    /// listed — the same as summing the finished index — with nothing left for the end.
    #[test]
    fn a_fresh_scan_inserts_every_name_and_sums_each_folder_once_its_subtree_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_writer(&dir.path().join("l.db"), "t").unwrap();
        conn.execute(
            "INSERT INTO entries (id, location_id, name, kind, size, inode) VALUES (7, 1, '/t', 1, 0, 1)",
            [],
        )
        .unwrap();
        let mut st = ScanState {
            job_id: 1,
            location_id: 1,
            root_id: 7,
            root_path: "/t".into(),
            fresh: true,
            tokens: HashMap::from([(0, 7)]),
            missing: HashSet::new(),
            direct: HashMap::new(),
            around: None,
            inodes: None,
            inode_queries: 0,
            dev: 1,
            departed_waiting: None,
            progress: Default::default(),
            frontier_new: HashSet::new(),
            rollup: Some(Rollup::new(7)),
            next_id: None,
        };
        // root: 130 files of 1 byte, a non-UTF-8 name, folders a (token 1) and b (token 2),
        // and c, a folder on another filesystem (no token: never listed).
        let mut root: Vec<Child> = (0..130)
            .map(|i| child(format!("f{i}").as_bytes(), EntryKind::File, 1, None))
            .collect();
        root.push(child(b"bad\xff", EntryKind::File, 5, None));
        root.push(child(b"a", EntryKind::Dir, 0, Some(1)));
        root.push(child(b"b", EntryKind::Dir, 0, Some(2)));
        root.push(child(b"c", EntryKind::Dir, 0, None));
        let a = vec![
            child(b"x", EntryKind::File, 10, None),
            child(b"sub", EntryKind::Dir, 0, Some(3)),
        ];
        let frontier = |conn: &rusqlite::Connection| -> Vec<String> {
            conn.prepare(
                "SELECT e.name FROM index_frontier f JOIN entries e ON e.id = f.entry_id ORDER BY 1",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
        };
        let sums = |conn: &rusqlite::Connection, name: &str| -> (i64, Option<i64>, Option<i64>) {
            conn.query_row(
                "SELECT size, files, dirs FROM entries WHERE name = ?1 AND kind = 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
        };

        // Batch 1 lists the root and a: b and a/sub wait on the frontier, nothing else does.
        let tx = conn.transaction().unwrap();
        apply_batch(&tx, &mut st, vec![listing(0, root), listing(1, a)]).unwrap();
        tx.commit().unwrap();
        assert_eq!(frontier(&conn), ["b", "sub"]);
        assert_eq!(
            sums(&conn, "c"),
            (0, Some(0), Some(0)),
            "never listed: empty"
        );
        assert_eq!(sums(&conn, "a").1, None, "a/sub is not listed yet");

        // Batch 2 lists a/sub (two files) and b (empty): every subtree is now whole.
        let sub = vec![
            child(b"y", EntryKind::File, 100, None),
            child(b"z", EntryKind::File, 1000, None),
        ];
        let tx = conn.transaction().unwrap();
        apply_batch(&tx, &mut st, vec![listing(3, sub), listing(2, Vec::new())]).unwrap();
        assert!(frontier(&tx).is_empty());
        assert_eq!(sums(&tx, "sub"), (1100, Some(2), Some(0)));
        assert_eq!(sums(&tx, "a"), (1110, Some(3), Some(1)));
        assert_eq!(sums(&tx, "b"), (0, Some(0), Some(0)));
        let whole = sum_location(&tx, &st).unwrap();
        let root = aggregate(&tx, &mut st).unwrap();
        assert_eq!(
            root,
            Sums {
                bytes: 130 + 5 + 1110,
                files: 134,
                dirs: 4
            }
        );
        assert_eq!(whole[&7], root);
        assert_eq!(sums(&tx, "/t"), (1245, Some(134), Some(4)));

        // Every name under its parent, with the ids given in order after the root's.
        let n: i64 = tx
            .query_row(
                "SELECT count(*) FROM entries WHERE parent_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 134);
        let (lo, hi): (i64, i64) = tx
            .query_row(
                "SELECT min(id), max(id) FROM entries WHERE id <> 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((lo, hi), (8, 8 + 134 + 2 + 2 - 1));
        let bad: Vec<u8> = tx
            .query_row(
                "SELECT name FROM entries WHERE parent_id = 7 AND typeof(name) = 'blob'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(bad, b"bad\xff");
        let under_sub: i64 = tx
            .query_row(
                "SELECT count(*) FROM entries WHERE parent_id = (SELECT id FROM entries WHERE name = 'sub')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(under_sub, 2);
        assert_eq!(st.progress.new, 138);
    }
}
