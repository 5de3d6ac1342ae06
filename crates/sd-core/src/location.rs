//! Locations: folders whose contents a library indexes.
//!
//! Architecture Invariant: adding, rescanning or removing a location changes the library only;
//! the folder itself is never written to.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::index::{IndexParams, IndexProgress};
use crate::jobs::{self, JobSpec};
use crate::library::Library;
use crate::names::{self, JsonPath};
use crate::rules::{RuleConfig, Rules};
use crate::store::now_ms;
use crate::{Error, Result};

/// How much the indexer does for a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexMode {
    /// Metadata only: names, sizes, times, inodes.
    Shallow,
    /// Also content identity (sampled BLAKE3).
    Content,
    /// Also media metadata and thumbnails.
    Deep,
}

impl IndexMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::Shallow => "shallow",
            IndexMode::Content => "content",
            IndexMode::Deep => "deep",
        }
    }

    fn parse(s: &str) -> IndexMode {
        match s {
            "content" => IndexMode::Content,
            "deep" => IndexMode::Deep,
            _ => IndexMode::Shallow,
        }
    }
}

/// A location with its current totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Location {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub path: JsonPath,
    pub mode: IndexMode,
    pub rules: RuleConfig,
    /// `indexing`, `ready`, or `partial` (the last scan did not finish).
    pub state: String,
    pub dev: u64,
    pub root_entry_id: i64,
    pub created_at: i64,
    pub last_scan_at: Option<i64>,
    pub last_job_id: Option<i64>,
    /// Whether the daemon watches the folder for changes.
    pub watch: bool,
    /// False while the location's volume (or folder) is not there; its entries stay searchable.
    pub online: bool,
    /// Why it is offline, in words (`None` while online): its drive is not mounted, or its folder
    /// is missing although the drive is there (renamed, moved or deleted), …
    #[serde(default)]
    pub offline_reason: Option<String>,
    pub volume_id: Option<i64>,
    /// Recursive totals as of the last finished scan.
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

const SELECT: &str = "SELECT l.id, l.uuid, l.name, l.path, l.mode, l.rules, l.state, l.dev, l.root_entry_id,
       l.created_at, l.last_scan_at, l.last_job_id, coalesce(e.files, 0), coalesce(e.dirs, 0), coalesce(e.size, 0),
       l.watch, l.online, l.volume_id, v.online, v.name
  FROM locations l LEFT JOIN entries e ON e.id = l.root_entry_id
  LEFT JOIN volumes v ON v.id = l.volume_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Location> {
    let uuid: String = r.get(1)?;
    let rules: String = r.get(5)?;
    let path = PathBuf::from(names::from_sql(r.get_ref(3)?)?);
    let online: bool = r.get(16)?;
    let volume: Option<(bool, String)> = match (r.get(18)?, r.get(19)?) {
        (Some(on), Some(name)) => Some((on, name)),
        _ => None,
    };
    Ok(Location {
        offline_reason: (!online).then(|| offline_reason(&path, volume)),
        id: r.get(0)?,
        uuid: Uuid::parse_str(&uuid).unwrap_or_default(),
        name: r.get(2)?,
        path: JsonPath(path),
        mode: IndexMode::parse(&r.get::<_, String>(4)?),
        rules: serde_json::from_str(&rules).unwrap_or_default(),
        state: r.get(6)?,
        dev: r.get::<_, i64>(7)? as u64,
        root_entry_id: r.get(8)?,
        created_at: r.get(9)?,
        last_scan_at: r.get(10)?,
        last_job_id: r.get(11)?,
        files: r.get::<_, i64>(12)? as u64,
        dirs: r.get::<_, i64>(13)? as u64,
        bytes: r.get::<_, i64>(14)? as u64,
        watch: r.get(15)?,
        online,
        volume_id: r.get(17)?,
    })
}

/// Why an offline location is offline, from its volume's state and a look at its folder: the
/// drive not mounted is one thing, the folder gone from a mounted drive another.
fn offline_reason(path: &std::path::Path, volume: Option<(bool, String)>) -> String {
    if let Some((false, name)) = volume {
        return format!(
            "its drive {name:?} is not mounted; its entries stay searchable, and it is rescanned when the drive is back"
        );
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "its folder {} is missing (renamed, moved or deleted); its entries stay searchable, and it is rescanned when the folder is back at that path",
            path.display()
        ),
        Err(e) => format!("its folder {} cannot be reached: {e}", path.display()),
        Ok(m) if !m.is_dir() => format!("{} is no longer a folder", path.display()),
        Ok(_) => "its folder is back; it is rescanned within seconds".to_owned(),
    }
}

/// All locations of the library, by id.
pub fn list(lib: &Library) -> Result<Vec<Location>> {
    list_with(&lib.reader()?)
}

pub(crate) fn list_with(conn: &rusqlite::Connection) -> Result<Vec<Location>> {
    let mut q = conn.prepare(&format!("{SELECT} ORDER BY l.id"))?;
    let rows = q.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One location.
pub fn get(lib: &Library, id: i64) -> Result<Location> {
    lib.reader()?
        .query_row(&format!("{SELECT} WHERE l.id = ?1"), [id], from_row)
        .optional()?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no location {id} in library {:?}; see `spacedrive location list`",
                lib.name()
            ))
        })
}

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
        let spec = JobSpec::Index(IndexParams { location_id: loc_id, initial: true, subtrees: Vec::new() });
        let job = jobs::insert(tx, &spec, &IndexProgress::default())?;
        crate::index::seed_checkpoint(tx, job, root)?;
        tx.execute("UPDATE locations SET last_job_id = ?2 WHERE id = ?1", params![loc_id, job])?;
        Ok((loc_id, job))
    })?;
    before_index(&get(lib, loc_id)?);
    jobs::start(lib, job_id)?;
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

/// Points location `id` (root entry `root`) at `path`, where its folder now is: the volume link
/// is redone by the next volume check, and the caller rescans.
pub(crate) fn set_path(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    root: i64,
    path: &Path,
    dev: u64,
    ino: u64,
) -> Result<()> {
    let root_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "/".into());
    tx.execute(
        "UPDATE locations SET path = ?2, dev = ?3, online = 1, volume_id = NULL, volume_path = NULL WHERE id = ?1",
        params![id, names::to_sql(path.as_os_str()), dev as i64],
    )?;
    tx.execute(
        "UPDATE entries SET name = ?2, inode = ?3 WHERE id = ?1",
        params![root, names::to_sql(&root_name), ino as i64],
    )?;
    Ok(())
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
        job: start_rescan(lib, &get(lib, id)?, Vec::new())?,
    })
}

fn set_rescan_after(lib: &Library, id: i64, on: bool) -> Result<()> {
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE locations SET rescan_after = ?2 WHERE id = ?1",
            params![id, on],
        )?;
        Ok(())
    })
}

/// Called when index job `job` of location `id` has ended: starts the follow-up rescan asked
/// for while it ran (rules changed), unless the user cancelled the job.
pub(crate) fn index_job_ended(lib: &Arc<Library>, id: i64, cancelled: bool) -> Result<Option<i64>> {
    let pending: bool = lib
        .reader()?
        .query_row(
            "SELECT rescan_after FROM locations WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false);
    if !pending {
        return Ok(None);
    }
    if cancelled {
        // A later scan reads the current rules anyway.
        set_rescan_after(lib, id, false)?;
        return Ok(None);
    }
    let loc = get(lib, id)?;
    if !loc.online || active_job(lib, &loc)?.is_some() {
        return Ok(None); // offline: rescanned when back; busy: that job's end comes here again
    }
    let job = start_rescan(lib, &loc, Vec::new())?;
    tracing::info!(
        location = id,
        job,
        "rescanning under the rules changed during the last scan"
    );
    Ok(Some(job))
}

/// The location holding `path`: the innermost one, if locations nest.
pub(crate) fn containing<'a>(locs: &'a [Location], path: &Path) -> Option<&'a Location> {
    locs.iter()
        .filter(|l| path.starts_with(&l.path.0))
        .max_by_key(|l| l.path.0.as_os_str().len())
}

/// The unfinished index job of a location, if any.
fn active_job(lib: &Library, loc: &Location) -> Result<Option<i64>> {
    let Some(job) = loc.last_job_id else {
        return Ok(None);
    };
    let info = jobs::get(lib, job)?;
    Ok((!info.state.is_final()).then_some(job))
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
    Ok((start_rescan(lib, &loc, Vec::new())?, true))
}

/// Queues a full rescan unless an index job is already running (then `None`).
pub fn rescan_if_idle(lib: &Arc<Library>, id: i64) -> Result<Option<i64>> {
    let loc = get(lib, id)?;
    if active_job(lib, &loc)?.is_some() {
        return Ok(None);
    }
    Ok(Some(start_rescan(lib, &loc, Vec::new())?))
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
    Ok(Some(start_rescan(lib, &loc, top)?))
}

/// Queues an index job over the whole location (`subtrees` empty) or the given directories.
fn start_rescan(lib: &Arc<Library>, loc: &Location, subtrees: Vec<i64>) -> Result<i64> {
    if let Some(why) = crate::volume::refused_location(&loc.path.0) {
        // Added by an older build that did not refuse it.
        return Err(Error::Invalid(format!(
            "{why}; remove it with `spacedrive location remove {}`",
            loc.id
        )));
    }
    let id = loc.id;
    let root = loc.root_entry_id;
    let full = subtrees.is_empty();
    let job = lib.writer.transaction(move |tx| {
        let seeds = if subtrees.is_empty() {
            vec![root]
        } else {
            subtrees.clone()
        };
        let spec = JobSpec::Index(IndexParams {
            location_id: id,
            initial: false,
            subtrees,
        });
        let job = jobs::insert(tx, &spec, &IndexProgress::default())?;
        if full {
            // This job reads the current rules: no follow-up needed.
            tx.execute("UPDATE locations SET rescan_after = 0 WHERE id = ?1", [id])?;
        }
        for seed in seeds {
            crate::index::seed_checkpoint(tx, job, seed)?;
        }
        tx.execute(
            "UPDATE locations SET last_job_id = ?2, state = 'indexing' WHERE id = ?1",
            params![id, job],
        )?;
        Ok(job)
    })?;
    jobs::start(lib, job)?;
    Ok(job)
}

/// Removes a location and its index entries. Files on disk are not touched.
/// Returns how many entries were removed.
pub fn remove(lib: &Arc<Library>, id: i64) -> Result<u64> {
    let loc = get(lib, id)?;
    if let Some(job) = active_job(lib, &loc)? {
        jobs::cancel(lib, job)?;
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
    let conn = lib.reader()?;
    let count = |sql: &str| conn.query_row(sql, [id], |r| r.get::<_, i64>(0));
    Ok(EntryCounts {
        symlinks: count("SELECT count(*) FROM entries WHERE location_id = ?1 AND kind = 2")? as u64,
        entries: count("SELECT count(*) FROM entries WHERE location_id = ?1")? as u64,
    })
}
