//! Locations: folders whose contents a library indexes.
//!
//! Architecture Invariant: adding, rescanning or removing a location changes the library only;
//! the folder itself is never written to.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) mod row;

use crate::index::{IndexJob, IndexParams, IndexProgress};
use crate::library::Library;
use crate::names::{self, JsonPath};
use crate::rules::{RuleConfig, Rules};
use crate::runner;
use crate::store::now_ms;
use crate::{Error, Result};
pub use row::{IndexMode, Location, get, list};
pub(crate) use row::{active_job, containing, set_path, set_rescan_after};

/// Options for [`add`].
#[derive(Debug, Clone)]
pub struct AddOptions {
    pub name: Option<String>,
    pub mode: IndexMode,
    pub rules: RuleConfig,
    /// Keep the index live with a filesystem watcher while the daemon runs.
    pub watch: bool,
}

/// Checks that `path` can be the folder of a location (location `except` may already hold it):
/// a directory, outside the data folder `forbidden`, not a kernel interface, overlapping no
/// other location. Returns its canonical path and metadata.
fn check_folder(
    lib: &Library,
    path: &Path,
    forbidden: &Path,
    except: Option<i64>,
) -> Result<(PathBuf, std::fs::Metadata)> {
    let path = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let md = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
    if !md.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a directory; a location is a folder",
            path.display()
        )));
    }
    if let Ok(forbidden) = std::fs::canonicalize(forbidden)
        && (path.starts_with(&forbidden) || forbidden.starts_with(&path))
    {
        return Err(Error::Invalid(format!(
            "{} overlaps Spacedrive's own data folder {}; choose a folder outside it",
            path.display(),
            forbidden.display()
        )));
    }
    if let Some(why) = crate::volume::refused_location(&path) {
        return Err(Error::Invalid(format!(
            "{why}; choose a folder of your own files"
        )));
    }
    for loc in list(lib)?.into_iter().filter(|l| Some(l.id) != except) {
        let other = &loc.path.0;
        if path.starts_with(other) || other.starts_with(&path) {
            return Err(Error::Conflict(format!(
                "{} overlaps location {} ({}); a folder can belong to one location only",
                path.display(),
                loc.id,
                other.display()
            )));
        }
    }
    Ok((path, md))
}

/// Adds `path` as a location and starts its first index job. Returns the location and the job id.
/// `forbidden` is a folder the location may not overlap (the daemon's own data directory).
/// `before_index` runs once the location exists and before its job starts (the node sets up
/// its watch there).
pub fn add(
    lib: &Arc<Library>,
    path: &Path,
    opts: AddOptions,
    forbidden: &Path,
    before_index: &dyn Fn(&Location),
) -> Result<(Location, i64)> {
    Rules::new(opts.rules.clone())?; // reject bad globs before anything is written
    let (path, md) = check_folder(lib, path, forbidden, None)?;
    let name = opts.name.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    });
    let root_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "/".into());
    let (dev, ino, mtime) = (md.dev(), md.ino(), crate::index::walk::mtime_ns(&md));
    let device = lib.device_row;
    let p = path.clone();
    let mode = opts.mode;
    let watch = opts.watch;
    let rules = serde_json::to_string(&opts.rules)?;
    let (loc_id, job_id) = lib.writer.transaction(move |tx| {
        tx.execute(
            "INSERT INTO locations (uuid, device_id, name, path, mode, rules, state, dev, created_at, watch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'indexing', ?7, ?8, ?9)",
            params![Uuid::new_v4().to_string(), device, name, names::to_sql(p.as_os_str()), mode.as_str(), rules, dev as i64, now_ms(), watch],
        )?;
        let loc_id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO entries (location_id, parent_id, name, kind, size, mtime, inode) VALUES (?1, NULL, ?2, 1, 0, ?3, ?4)",
            params![loc_id, names::to_sql(&root_name), mtime, ino as i64],
        )?;
        let root = tx.last_insert_rowid();
        tx.execute("UPDATE locations SET root_entry_id = ?2 WHERE id = ?1", params![loc_id, root])?;
        let params = IndexParams { location_id: loc_id, initial: true, subtrees: Vec::new() };
        let job = runner::insert::<IndexJob>(tx, &params, &IndexProgress::default())?;
        crate::index::seed_checkpoint(tx, job, root)?;
        tx.execute("UPDATE locations SET last_job_id = ?2 WHERE id = ?1", params![loc_id, job])?;
        Ok((loc_id, job))
    })?;
    before_index(&get(lib, loc_id)?);
    runner::start(lib, job_id)?;
    let loc = get(lib, loc_id)?;
    crate::audit::record(
        lib,
        "location.add",
        serde_json::json!({"path": loc.path, "mode": loc.mode, "rules": loc.rules, "watch": loc.watch}),
        vec![loc.path.0.to_string_lossy().into_owned()],
        serde_json::json!({"location_id": loc.id, "job_id": job_id}),
    )?;
    Ok((loc, job_id))
}

/// Changes to a location's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Changes {
    pub name: Option<String>,
    pub watch: Option<bool>,
    pub system_defaults: Option<bool>,
    pub gitignore: Option<bool>,
    /// Replaces the custom ignore globs.
    pub ignore: Option<Vec<String>>,
    /// The location's folder moved here (same files): the index is kept and rescanned.
    pub path: Option<JsonPath>,
}

/// Applies `changes`; when the rules changed, queues a rescan so the index follows them.
/// Returns the updated location and the rescan job, if one was started.
pub fn update(
    lib: &Arc<Library>,
    id: i64,
    changes: Changes,
    forbidden: &Path,
) -> Result<(Location, Option<RulesRescan>)> {
    let loc = get(lib, id)?;
    let new_path = match &changes.path {
        Some(p) => {
            let (path, md) = check_folder(lib, &p.0, forbidden, Some(id))?;
            (path != loc.path.0).then_some((path, md))
        }
        None => None,
    };
    let mut rules = loc.rules.clone();
    if let Some(v) = changes.system_defaults {
        rules.system_defaults = v;
    }
    if let Some(v) = changes.gitignore {
        rules.gitignore = v;
    }
    if let Some(v) = changes.ignore.clone() {
        rules.ignore = v;
    }
    Rules::new(rules.clone())?; // reject bad globs before anything is written
    let rules_changed = rules != loc.rules || new_path.is_some();
    let name = changes.name.clone().unwrap_or(loc.name.clone());
    if name.trim().is_empty() {
        return Err(Error::Invalid("a location name cannot be empty".into()));
    }
    let watch = changes.watch.unwrap_or(loc.watch);
    let rules_json = serde_json::to_string(&rules)?;
    let root = loc.root_entry_id;
    let moved = new_path
        .as_ref()
        .map(|(p, md)| (p.clone(), md.dev(), md.ino()));
    lib.writer.transaction(move |tx| {
        tx.execute(
            "UPDATE locations SET name = ?2, watch = ?3, rules = ?4 WHERE id = ?1",
            params![id, name, watch, rules_json],
        )?;
        if let Some((path, dev, ino)) = &moved {
            set_path(tx, id, root, path, *dev, *ino)?;
        }
        Ok(())
    })?;
    let rescan = if rules_changed && (loc.online || new_path.is_some()) {
        Some(rescan_for_rules(lib, id)?)
    } else {
        None
    };
    crate::audit::record(
        lib,
        "location.update",
        serde_json::to_value(&changes)?,
        vec![loc.path.0.to_string_lossy().into_owned()],
        serde_json::json!({"location_id": id, "rescan": rescan}),
    )?;
    Ok((get(lib, id)?, rescan))
}

/// How new rules reach the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum RulesRescan {
    /// A full rescan started now, as this job.
    Now { job: i64 },
    /// An index job that read the old rules is running (or paused): a full rescan starts when it
    /// ends.
    After { job: i64 },
}

/// Starts a full rescan under the location's current rules, or — when an index job is running,
/// which read the rules before they changed — asks for one when that job ends.
fn rescan_for_rules(lib: &Arc<Library>, id: i64) -> Result<RulesRescan> {
    let loc = get(lib, id)?;
    if let Some(job) = active_job(lib, &loc)? {
        set_rescan_after(lib, id, true)?;
        // The job may have ended between the check and the flag: then nobody would see it.
        if active_job(lib, &get(lib, id)?)?.is_some() {
            return Ok(RulesRescan::After { job });
        }
    }
    Ok(RulesRescan::Now {
        job: crate::index::queue(lib, &get(lib, id)?, Vec::new())?,
    })
}

/// Queues a rescan. If the location is already being indexed, returns that job instead.
/// Returns `(job id, whether it is a new job)`.
pub fn rescan(lib: &Arc<Library>, id: i64) -> Result<(i64, bool)> {
    let loc = get(lib, id)?;
    if let Some(why) = &loc.offline_reason {
        return Err(Error::Invalid(format!("location {id} is offline: {why}")));
    }
    if let Some(job) = active_job(lib, &loc)? {
        return Ok((job, false));
    }
    Ok((crate::index::queue(lib, &loc, Vec::new())?, true))
}

/// Queues a full rescan unless an index job is already running (then `None`).
pub fn rescan_if_idle(lib: &Arc<Library>, id: i64) -> Result<Option<i64>> {
    let loc = get(lib, id)?;
    if active_job(lib, &loc)?.is_some() {
        return Ok(None);
    }
    Ok(Some(crate::index::queue(lib, &loc, Vec::new())?))
}

/// Rescans only the subtrees holding `dirs` (paths inside the location; a path not in the index
/// counts as its nearest indexed ancestor). Returns `None` when the location is busy with another
/// index job (try again when it ends).
pub fn rescan_subtrees(lib: &Arc<Library>, id: i64, dirs: &[PathBuf]) -> Result<Option<i64>> {
    let loc = get(lib, id)?;
    if active_job(lib, &loc)?.is_some() {
        return Ok(None);
    }
    let conn = lib.reader()?;
    let mut ids = std::collections::BTreeSet::new();
    for d in dirs {
        let mut p = d.as_path();
        let id = loop {
            if let Ok((l, id)) = crate::query::resolve(lib, p)
                && l.id == loc.id
            {
                let kind: i64 =
                    conn.query_row("SELECT kind FROM entries WHERE id = ?1", [id], |r| r.get(0))?;
                if kind == 1 {
                    break id;
                }
            }
            match p.parent() {
                Some(parent) if parent.starts_with(&loc.path.0) => p = parent,
                _ => break loc.root_entry_id,
            }
        };
        ids.insert(id);
    }
    // Keep only the highest directories: a subtree inside another is rescanned with it.
    let mut top = Vec::new();
    for &id in &ids {
        let mut covered = false;
        for &other in &ids {
            if other != id && crate::query::is_ancestor(&conn, other, id)? {
                covered = true;
                break;
            }
        }
        if !covered {
            top.push(id);
        }
    }
    if top.contains(&loc.root_entry_id) {
        top.clear();
    }
    Ok(Some(crate::index::queue(lib, &loc, top)?))
}

/// Removes a location and its index entries. Files on disk are not touched.
/// Returns how many entries were removed.
pub fn remove(lib: &Arc<Library>, id: i64) -> Result<u64> {
    let loc = get(lib, id)?;
    if let Some(job) = active_job(lib, &loc)? {
        runner::cancel(lib, job)?;
    }
    let n = lib
        .writer
        .transaction(move |tx| {
            let n = tx.execute("DELETE FROM entries WHERE location_id = ?1", [id])?;
            tx.execute("DELETE FROM locations WHERE id = ?1", [id])?;
            crate::index::scan::drop_orphan_content(tx)?;
            Ok(n as u64)
        })
        .inspect(|_| lib.touch())?;
    crate::audit::record(
        lib,
        "location.remove",
        serde_json::json!({"id": id}),
        vec![loc.path.0.to_string_lossy().into_owned()],
        serde_json::json!({"entries_removed": n, "files_touched": 0}),
    )?;
    // Sidecars of the contents that left with it: collected by the sidecar job.
    if let Err(e) = crate::sidecar::kick(lib, "after removing a location") {
        tracing::warn!(error = %e, "starting the sidecar job");
    }
    Ok(n)
}

/// Index entries of one location (for `location.info`; the list view's totals are in [`Location`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryCounts {
    pub entries: u64,
    pub symlinks: u64,
}

/// Counts the index entries of location `id` (0 for a location that does not exist).
pub fn entry_counts(lib: &Library, id: i64) -> Result<EntryCounts> {
    // One pass over the location's rows for both counts (each was a pass of its own).
    let (entries, symlinks): (i64, i64) = lib.reader()?.query_row(
        "SELECT count(*), coalesce(sum(kind = 2), 0) FROM entries WHERE location_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(EntryCounts {
        symlinks: symlinks as u64,
        entries: entries as u64,
    })
}
