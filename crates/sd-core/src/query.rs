//! Reading the entry tree: path ↔ entry resolution, directory listings and subtrees.
//!
//! The tree is an adjacency list (`parent_id`) with a unique `(parent_id, name)` index and
//! per-directory recursive aggregates, so a listing costs one index range scan, a subtree a
//! recursive walk over that same index (time proportional to the result), a recursive size one
//! row read, and a move one row update. See ARCHITECTURE.md for the measurements behind this.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::index::walk::EntryKind;
use crate::library::Library;
use crate::location::row::{self as location, Location};
use crate::names::{self, JsonName, JsonPath};
use crate::tree::{DirPaths, entry_path};
use crate::{Error, Result};

/// An indexed entry as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EntryView {
    pub id: i64,
    pub name: JsonName,
    pub path: JsonPath,
    pub kind: EntryKind,
    /// Files: length. Directories: recursive bytes of the files below. Symlinks: target length.
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime: Option<i64>,
    pub inode: u64,
    /// Number of hard links, when more than one.
    pub nlink: Option<u64>,
    /// Directories: recursive file and directory counts.
    pub files: Option<u64>,
    pub dirs: Option<u64>,
    /// Symlinks: where they point (never followed).
    pub target: Option<JsonPath>,
}

/// Whether `ancestor` is `of` or one of its ancestors.
pub fn is_ancestor(conn: &Connection, ancestor: i64, of: i64) -> Result<bool> {
    let mut q = conn.prepare_cached("SELECT parent_id FROM entries WHERE id = ?1")?;
    let mut cur = Some(of);
    let mut steps = 0;
    while let Some(id) = cur {
        if id == ancestor {
            return Ok(true);
        }
        cur = q.query_row([id], |r| r.get(0)).optional()?.flatten();
        steps += 1;
        if steps > 4096 {
            break;
        }
    }
    Ok(false)
}

/// Finds the location containing `path` and the entry at that path.
pub fn resolve(lib: &Library, path: &Path) -> Result<(Location, i64)> {
    let conn = lib.reader()?;
    let locs = location::list_with(&conn)?;
    resolve_with(lib, &conn, &locs, path)
}

/// [`resolve`] through a connection and `lib`'s locations already at hand, for many paths at
/// once. A path that no longer exists (just moved away) is looked up as written, made absolute.
pub fn resolve_with(
    lib: &Library,
    conn: &Connection,
    locs: &[Location],
    path: &Path,
) -> Result<(Location, i64)> {
    let abs = std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.to_path_buf()));
    let loc = location::containing(locs, &abs)
        .cloned()
        .ok_or_else(|| {
            Error::NotFound(format!(
                "{} is not inside any location of library {:?}. Add it with `spacedrive location add`, or browse it without indexing: `spacedrive index quick-scan PATH --ephemeral`",
                abs.display(),
                lib.name()
            ))
        })?;
    let rel = abs.strip_prefix(&loc.path.0).unwrap_or(Path::new(""));
    let mut id = loc.root_entry_id;
    let mut q = conn.prepare_cached("SELECT id FROM entries WHERE parent_id = ?1 AND name = ?2")?;
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        id = q
            .query_row(params![id, names::to_sql(name)], |r| r.get(0))
            .optional()?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{} is not in the index (ignored by the location's rules, or created since the last scan: `spacedrive location rescan {}`)",
                    abs.display(),
                    loc.id
                ))
            })?;
    }
    Ok((loc, id))
}

const ENTRY_COLS: &str = "id, name, kind, size, mtime, inode, nlink, files, dirs, target";

fn view(r: &rusqlite::Row<'_>, parent: &Path) -> rusqlite::Result<EntryView> {
    let name = names::from_sql(r.get_ref(1)?)?;
    let target: Option<Vec<u8>> = r.get(9)?;
    Ok(EntryView {
        id: r.get(0)?,
        path: JsonPath(parent.join(&name)),
        name: JsonName(name),
        kind: EntryKind::from_i64(r.get(2)?),
        size: r.get::<_, i64>(3)? as u64,
        mtime: r.get(4)?,
        inode: r.get::<_, i64>(5)? as u64,
        nlink: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
        files: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
        dirs: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
        target: target.map(|t| {
            JsonPath(PathBuf::from(
                <OsString as std::os::unix::ffi::OsStringExt>::from_vec(t),
            ))
        }),
    })
}

/// One entry, given its path.
pub fn entry_view(conn: &Connection, id: i64, path: &Path) -> Result<EntryView> {
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut v = conn.query_row(
        &format!("SELECT {ENTRY_COLS} FROM entries WHERE id = ?1"),
        [id],
        |r| view(r, &parent),
    )?;
    v.path = JsonPath(path.to_path_buf());
    Ok(v)
}

/// How to order a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Name,
    Size,
    Modified,
    /// Folders first, then by extension (case ignored), then by name. Sorted in memory: costs
    /// a read of the whole folder, where the other orders read only the page asked for.
    Kind,
}

/// A directory listing (or a subtree, when `recursive`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Listing {
    pub location_id: i64,
    pub entry: EntryView,
    pub entries: Vec<EntryView>,
    /// True when `limit` cut the result short.
    pub truncated: bool,
}

/// Lists the entry at `path`: its children, or its whole subtree when `recursive`.
/// Subtrees come out parents-before-children (breadth-first). `offset` entries (in `sort`
/// order) are left out first, then at most `limit` are listed: a client pages through a large
/// folder without reading it whole.
pub fn list(
    lib: &Library,
    path: &Path,
    recursive: bool,
    sort: SortBy,
    limit: Option<usize>,
    offset: usize,
) -> Result<Listing> {
    let (loc, id) = resolve(lib, path)?;
    let conn = lib.reader()?;
    let own_path = entry_path(&conn, loc.root_entry_id, &loc.path.0, id)?
        .ok_or_else(|| Error::NotFound(format!("{} vanished from the index", path.display())))?;
    let entry = entry_view(&conn, id, &own_path)?;
    let cap = limit.unwrap_or(usize::MAX);
    let mut entries = Vec::new();
    let mut truncated = false;
    if recursive {
        let cols = ENTRY_COLS.replace(", ", ", e.");
        let mut q = conn.prepare(&format!(
            "WITH RECURSIVE sub({ENTRY_COLS}, parent_id) AS (
                 SELECT {ENTRY_COLS}, parent_id FROM entries WHERE parent_id = ?1
                 UNION ALL SELECT e.{cols}, e.parent_id FROM entries e JOIN sub ON e.parent_id = sub.id)
             SELECT * FROM sub LIMIT ?2"
        ))?;
        // The subtree is read in walk order; sorted and cut after (`offset` included).
        let lim = limit.map(|l| (l + offset) as i64 + 1).unwrap_or(-1);
        // Rows carry their parent id; paths are built once all are in, whatever their order.
        let mut rows: Vec<(i64, EntryView)> = Vec::new();
        let mut paths = DirPaths::new();
        let mut it = q.query(params![id, lim])?;
        while let Some(r) = it.next()? {
            let parent: i64 = r.get(10)?;
            let v = view(r, Path::new(""))?;
            if v.kind == EntryKind::Dir {
                paths.add_dir(v.id, Some(parent), v.name.0.clone());
            }
            rows.push((parent, v));
        }
        truncated = rows.len() > cap.saturating_add(offset);
        rows.truncate(cap.saturating_add(offset));
        paths.add_root(id, own_path);
        for (parent, mut v) in rows {
            let Some(pp) = paths.dir(parent) else {
                continue;
            };
            v.path = JsonPath(pp.join(&v.name.0));
            entries.push(v);
        }
    } else if sort == SortBy::Kind {
        let mut q = conn.prepare(&format!(
            "SELECT {ENTRY_COLS} FROM entries WHERE parent_id = ?1 ORDER BY name"
        ))?;
        for r in q.query_map(params![id], |r| view(r, &entry.path.0))? {
            entries.push(r?);
        }
        sort_entries(&mut entries, sort);
        entries.drain(..offset.min(entries.len()));
        if entries.len() > cap {
            entries.truncate(cap);
            truncated = true;
        }
        return Ok(Listing {
            location_id: loc.id,
            entry,
            entries,
            truncated,
        });
    } else {
        let order = match sort {
            SortBy::Name => "name",
            SortBy::Size => "size DESC, name",
            SortBy::Modified => "mtime DESC, name",
            SortBy::Kind => unreachable!("sorted in memory above"),
        };
        let mut q = conn.prepare(&format!(
            "SELECT {ENTRY_COLS} FROM entries WHERE parent_id = ?1 ORDER BY {order} LIMIT ?2 OFFSET ?3"
        ))?;
        let lim = limit.map(|l| l as i64 + 1).unwrap_or(-1);
        let rows = q.query_map(params![id, lim, offset as i64], |r| view(r, &entry.path.0))?;
        for r in rows {
            entries.push(r?);
        }
        if entries.len() > cap {
            entries.truncate(cap);
            truncated = true;
        }
    }
    if recursive {
        if sort != SortBy::Name {
            sort_entries(&mut entries, sort);
        }
        entries.drain(..offset.min(entries.len()));
        if entries.len() > cap {
            entries.truncate(cap);
        }
    }
    Ok(Listing {
        location_id: loc.id,
        entry,
        entries,
        truncated,
    })
}

fn sort_entries(entries: &mut [EntryView], sort: SortBy) {
    match sort {
        SortBy::Name => entries.sort_by(|a, b| a.path.cmp(&b.path)),
        SortBy::Size => entries.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path))),
        SortBy::Modified => entries.sort_by(|a, b| b.mtime.cmp(&a.mtime).then(a.path.cmp(&b.path))),
        SortBy::Kind => entries.sort_by_cached_key(|e| {
            let ext = Path::new(&e.name.0)
                .extension()
                .map(|x| x.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            (e.kind != EntryKind::Dir, ext, e.path.clone())
        }),
    }
}
