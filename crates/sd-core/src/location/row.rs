//! A location's row: what it is, how it is read, and the few updates other modules make to it.
//! Below the indexer and the location operations, which both read it.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::library::Library;
use crate::names::{self, JsonPath};
use crate::rules::RuleConfig;
use crate::runner;
use crate::{Error, Result};

/// How much the indexer does for a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// Asks for (or drops) a full rescan when the location's running index job ends.
pub(crate) fn set_rescan_after(lib: &Library, id: i64, on: bool) -> Result<()> {
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE locations SET rescan_after = ?2 WHERE id = ?1",
            params![id, on],
        )?;
        Ok(())
    })
}

/// The location holding `path`: the innermost one, if locations nest.
pub(crate) fn containing<'a>(locs: &'a [Location], path: &Path) -> Option<&'a Location> {
    locs.iter()
        .filter(|l| path.starts_with(&l.path.0))
        .max_by_key(|l| l.path.0.as_os_str().len())
}

/// The unfinished index job of a location, if any.
pub(crate) fn active_job(lib: &Library, loc: &Location) -> Result<Option<i64>> {
    let Some(job) = loc.last_job_id else {
        return Ok(None);
    };
    Ok((!runner::state(lib, job)?.is_final()).then_some(job))
}
