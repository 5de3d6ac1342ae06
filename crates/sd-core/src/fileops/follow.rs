//! The index follows file operations: a moved or renamed entry is re-linked to its new parent at
//! once (keeping its id, tags and notes), and the folders an operation touched are then rescanned
//! (copies appear, deletions go, sizes are summed again) before the job reports completion.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

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

/// Re-links the index entry of `src` (just renamed to `dst`) under `dst`'s parent, keeping its
/// id. Does nothing when `src` was not indexed or `dst`'s folder is not (the rescan afterwards
/// takes care of those).
pub(crate) fn relink(lib: &Library, src: &Path, dst: &Path) {
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        return;
    };
    let Ok((src_loc, id)) = crate::query::resolve(lib, src) else {
        return;
    };
    if src_loc.root_entry_id == id {
        return; // a location's own folder moved: the location follows its volume, not this
    }
    let Ok((dst_loc, pid)) = crate::query::resolve(lib, parent) else {
        return;
    };
    let name = name.to_os_string();
    let moved = lib.writer.transaction(move |tx| {
        let kind: Option<i64> = tx
            .query_row("SELECT kind FROM entries WHERE id = ?1", [pid], |r| r.get(0))
            .optional()?;
        if kind != Some(1) {
            return Ok(false);
        }
        // An entry already indexed under the destination name was replaced (overwrite).
        let stale: Option<i64> = tx
            .query_row(
                "SELECT id FROM entries WHERE parent_id = ?1 AND name = ?2",
                params![pid, names::to_sql(&name)],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(old) = stale.filter(|&o| o != id) {
            tx.execute(
                "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
                 DELETE FROM entries WHERE id IN sub",
                [old],
            )?;
        }
        tx.execute(
            "UPDATE entries SET parent_id = ?2, name = ?3 WHERE id = ?1",
            params![id, pid, names::to_sql(&name)],
        )?;
        if dst_loc.id != src_loc.id {
            tx.execute(
                "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
                 UPDATE entries SET location_id = ?2 WHERE id IN sub",
                params![id, dst_loc.id],
            )?;
        }
        Ok(true)
    });
    match moved {
        Ok(true) => lib.touch(),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, src = %src.display(), "re-linking a moved entry"),
    }
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
