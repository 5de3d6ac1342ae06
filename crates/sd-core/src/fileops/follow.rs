//! The index follows file operations: a moved or renamed entry is re-linked to its new parent at
//! once (keeping its id, tags and notes), and the folders an operation touched are then rescanned
//! (copies appear, deletions go, sizes are summed again) before the job reports completion.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, params};

use super::run::Item;
use super::{OpKind, StepOp};
use crate::control::Control;
use crate::library::Library;
use crate::location::{self, containing};
use crate::names;

/// Whether a file operation is changing location `id` right now.
pub(crate) fn busy(lib: &Library, id: i64) -> bool {
    lib.file_ops
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .is_some_and(|n| *n > 0)
}

/// Locations holding any source or destination of `items`.
pub(crate) fn locations_touched(lib: &Library, items: &[Item]) -> Vec<i64> {
    let Ok(locs) = location::list(lib) else {
        return Vec::new();
    };
    let mut ids = BTreeSet::new();
    for it in items {
        for p in [Some(&it.step.src), it.step.dst.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(l) = containing(&locs, &p.0) {
                ids.insert(l.id);
            }
        }
    }
    ids.into_iter().collect()
}

/// Marks `locs` as being changed by a file operation (the watcher waits).
pub(crate) fn hold(lib: &Library, locs: &[i64]) {
    let mut m = lib.file_ops.lock().unwrap_or_else(|p| p.into_inner());
    for id in locs {
        *m.entry(*id).or_default() += 1;
    }
}

pub(crate) fn release(lib: &Library, locs: &[i64]) {
    let mut m = lib.file_ops.lock().unwrap_or_else(|p| p.into_inner());
    for id in locs {
        if let Some(n) = m.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(id);
            }
        }
    }
}

/// An indexed entry to move in the index: `id` goes under directory `parent` as `name`.
#[derive(Debug)]
pub(crate) struct Relink {
    id: i64,
    parent: i64,
    name: OsString,
    /// The destination's location, when it is not the source's: the subtree moves to it.
    to_location: Option<i64>,
}

/// Re-links the index entries of `moved` (each source just renamed to its destination) under
/// their destinations' parents, keeping their ids: [`resolve`] then, in one writer
/// transaction, [`apply`].
pub(crate) fn relink(lib: &Library, moved: &[(PathBuf, PathBuf)]) {
    let relinks = resolve(lib, moved);
    if relinks.is_empty() {
        return;
    }
    match lib.writer.transaction(move |tx| apply(tx, &relinks)) {
        Ok(0) => {}
        Ok(_) => lib.touch(),
        Err(e) => tracing::warn!(error = %e, "re-linking moved entries"),
    }
}

/// Looks up what each of `moved` (source renamed to destination) takes in the index, through
/// one reader connection: nothing for a source that was not indexed, a destination whose folder
/// is not (the rescan afterwards takes care of those), or a location's own folder (the location
/// follows its volume instead). The items are independent: an operation renames top-level
/// items, and a merge's children under folders no step renames.
pub(crate) fn resolve(lib: &Library, moved: &[(PathBuf, PathBuf)]) -> Vec<Relink> {
    if moved.is_empty() {
        return Vec::new();
    }
    let looked_up = (|| -> crate::Result<Vec<Relink>> {
        let conn = lib.reader()?;
        let locs = crate::location::row::list_with(&conn)?;
        let mut out = Vec::with_capacity(moved.len());
        for (src, dst) in moved {
            let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
                continue;
            };
            let Ok((src_loc, id)) = crate::query::resolve_with(lib, &conn, &locs, src) else {
                continue;
            };
            if src_loc.root_entry_id == id {
                continue; // a location's own folder moved: the location follows its volume
            }
            let Ok((dst_loc, parent)) = crate::query::resolve_with(lib, &conn, &locs, parent)
            else {
                continue;
            };
            out.push(Relink {
                id,
                parent,
                name: name.to_os_string(),
                to_location: (dst_loc.id != src_loc.id).then_some(dst_loc.id),
            });
        }
        Ok(out)
    })();
    looked_up.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "looking up moved entries");
        Vec::new()
    })
}

/// Moves the entries of `relinks` in the index, in order, inside the caller's transaction; each
/// in a savepoint of its own, so one that fails (with a warning) leaves the others and the
/// caller's writes in place. Returns how many moved.
pub(crate) fn apply(tx: &Transaction<'_>, relinks: &[Relink]) -> crate::Result<usize> {
    let mut moved = 0;
    for r in relinks {
        tx.execute_batch("SAVEPOINT relink")?;
        match apply_one(tx, r) {
            Ok(done) => {
                tx.execute_batch("RELEASE relink")?;
                moved += usize::from(done);
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO relink; RELEASE relink")?;
                tracing::warn!(entry = r.id, error = %e, "re-linking a moved entry");
            }
        }
    }
    Ok(moved)
}

fn apply_one(tx: &Transaction<'_>, r: &Relink) -> crate::Result<bool> {
    let kind: Option<i64> = tx
        .prepare_cached("SELECT kind FROM entries WHERE id = ?1")?
        .query_row([r.parent], |row| row.get(0))
        .optional()?;
    if kind != Some(1) {
        return Ok(false);
    }
    // An entry already indexed under the destination name was replaced (overwrite).
    let stale: Option<i64> = tx
        .prepare_cached("SELECT id FROM entries WHERE parent_id = ?1 AND name = ?2")?
        .query_row(params![r.parent, names::to_sql(&r.name)], |row| row.get(0))
        .optional()?;
    if let Some(old) = stale.filter(|&o| o != r.id) {
        tx.prepare_cached(
            "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
             DELETE FROM entries WHERE id IN sub",
        )?
        .execute([old])?;
    }
    tx.prepare_cached("UPDATE entries SET parent_id = ?2, name = ?3 WHERE id = ?1")?
        .execute(params![r.id, r.parent, names::to_sql(&r.name)])?;
    if let Some(loc) = r.to_location {
        tx.prepare_cached(
            "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
             UPDATE entries SET location_id = ?2 WHERE id IN sub",
        )?
        .execute(params![r.id, loc])?;
    }
    Ok(true)
}

/// Rescans the folders the operation changed, in every location it touched, and waits for those
/// scans (unless the job is being stopped).
pub(crate) fn update_index(lib: &Arc<Library>, items: &[Item], op: OpKind, control: &Control) {
    let Ok(locs) = location::list(lib) else {
        return;
    };
    let mut dirs: BTreeMap<i64, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut add = |p: &Path| {
        if let (Some(parent), Some(l)) = (p.parent(), containing(&locs, p)) {
            dirs.entry(l.id).or_default().insert(parent.to_path_buf());
        }
    };
    for it in items {
        if !it.state.is_done() {
            continue;
        }
        let top = it.step.root || matches!(it.step.op, StepOp::Trash | StepOp::Delete);
        if !top {
            continue;
        }
        if let Some(d) = &it.step.dst {
            add(&d.0);
        }
        if matches!(op, OpKind::Move | OpKind::Trash | OpKind::Delete) {
            add(&it.step.src.0);
        }
    }
    for (loc, set) in dirs {
        // Only the highest folders: a folder inside another is rescanned with it.
        let mut top: Vec<PathBuf> = Vec::new();
        for d in set {
            if !top.iter().any(|t| d.starts_with(t)) {
                top.push(d);
            }
        }
        if let Err(e) = rescan_and_wait(lib, loc, &top, control) {
            tracing::warn!(location = loc, error = %e, "updating the index after a file operation");
        }
    }
}

fn rescan_and_wait(
    lib: &Arc<Library>,
    loc: i64,
    dirs: &[PathBuf],
    control: &Control,
) -> crate::Result<()> {
    let job = loop {
        if control.stopped().is_some() {
            return Ok(());
        }
        if let Some(job) = location::rescan_subtrees(lib, loc, dirs)? {
            break job;
        }
        std::thread::sleep(Duration::from_millis(50)); // another index job runs: after it
    };
    while control.stopped().is_none() {
        if crate::runner::state(lib, job)?.is_final() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
