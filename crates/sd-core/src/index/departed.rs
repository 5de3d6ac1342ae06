//! Organisation that follows a file out of one location and into another.
//!
//! A scan sees only its own location: a file moved with a plain `mv` from location 1 to
//! location 2 is "deleted" by one scan and "new" to the other, in either order. Within a
//! location the scan recognises the move by inode; across locations, this module carries the
//! entry's own tags, favourite, hidden flag and note over:
//! - when a scan deletes an entry carrying them, an entry of another location on the same
//!   filesystem with the same identity (inode + birth time, or mtime where there is none) gets
//!   them at once (the other scan came first);
//! - otherwise they are kept in `departed` under that identity, and the next scan that indexes
//!   the file anywhere in the library gives them back (this scan came first).
//!
//! Content-level organisation needs none of this: it follows the content identity.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::walk::{Child, EntryKind};
use crate::Result;
use crate::store::now_ms;

/// How long organisation waits for its file to reappear.
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// An entry's own organisation.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Organise {
    tags: Vec<i64>,
    favorite: bool,
    hidden: bool,
    note: Option<String>,
}

/// Whether two sightings of an inode are the same file, as move detection (here and in
/// `scan`) defines it: a freed inode is reused at once by new files, so the birth time tells them
/// apart; without one, a file must also keep its mtime (a rename does), a folder need not.
pub(super) fn same_identity(
    kind: i64,
    btime: Option<i64>,
    mtime: Option<i64>,
    other: (Option<i64>, Option<i64>),
) -> bool {
    match (btime, other.0) {
        (Some(a), Some(b)) => a == b,
        _ => kind == EntryKind::Dir as i64 || mtime == other.1,
    }
}

/// Before the scan of location `location_id` (on filesystem `dev`) deletes the subtrees of
/// `roots`: hands the organisation of every entry in them to its twin in another location, or
/// keeps it in `departed`.
pub(crate) fn leave(tx: &Transaction<'_>, location_id: i64, dev: u64, roots: &[i64]) -> Result<()> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS leaving (id INTEGER PRIMARY KEY);
         CREATE TEMP TABLE IF NOT EXISTS leaving_organised (id INTEGER PRIMARY KEY, inode INTEGER, kind INTEGER, btime INTEGER, mtime INTEGER);
         CREATE INDEX IF NOT EXISTS temp.leaving_organised_inode ON leaving_organised(inode);
         DELETE FROM leaving; DELETE FROM leaving_organised;",
    )?;
    {
        let mut add = tx.prepare_cached(
            "INSERT OR IGNORE INTO leaving (id)
             WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
             SELECT id FROM sub",
        )?;
        for &r in roots {
            add.execute([r])?;
        }
    }
    // `CROSS JOIN` keeps the few leaving rows as the outer loop: left to itself, the planner
    // (no statistics on a temp table) scanned every entry of the library against them, 115 ms
    // at the end of each scan of a 1M-entry library, also when nothing left.
    let organised = tx.execute(
        "INSERT INTO leaving_organised (id, inode, kind, btime, mtime)
         SELECT e.id, e.inode, e.kind, e.btime, e.mtime FROM leaving l CROSS JOIN entries e ON e.id = l.id
          WHERE EXISTS (SELECT 1 FROM tag_assignments a WHERE a.entry_id = e.id)
             OR EXISTS (SELECT 1 FROM user_metadata m WHERE m.entry_id = e.id)",
        [],
    )?;
    tx.execute(
        "DELETE FROM departed WHERE departed_at < ?1",
        [now_ms() - KEEP_MS],
    )?;
    if organised == 0 {
        return Ok(());
    }
    // Twins already indexed elsewhere: one pass over the entries, probing the few leaving.
    let twins: Vec<(i64, i64)> = {
        let mut q = tx.prepare(
            "SELECT o.id, e.id, o.kind, o.btime, o.mtime, e.btime, e.mtime
               FROM entries e JOIN leaving_organised o ON o.inode = e.inode AND o.kind = e.kind
               JOIN locations l ON l.id = e.location_id
              WHERE e.location_id != ?1 AND l.dev = ?2",
        )?;
        let rows = q.query_map(params![location_id, dev as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                (r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?),
                (r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (old, new, kind, a, b) = row?;
            if same_identity(kind, a.0, a.1, b) && !out.iter().any(|(o, _)| *o == old) {
                out.push((old, new));
            }
        }
        out
    };
    for &(old, new) in &twins {
        give(tx, &read(tx, old)?, new)?;
        tx.execute("DELETE FROM leaving_organised WHERE id = ?1", [old])?;
    }
    // The rest waits in `departed`, with the identity it will be recognised by.
    let rest: Vec<i64> = tx
        .prepare("SELECT id FROM leaving_organised")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut keep = tx.prepare_cached(
        "INSERT INTO departed (dev, inode, kind, btime, mtime, organise, departed_at)
         SELECT ?1, inode, kind, btime, mtime, ?2, ?3 FROM leaving_organised WHERE id = ?4",
    )?;
    for id in rest {
        let o = serde_json::to_string(&read(tx, id)?)?;
        keep.execute(params![dev as i64, o, now_ms(), id])?;
    }
    Ok(())
}

/// Whether any organisation waits for its file on filesystem `dev` (checked once per scan).
pub(crate) fn any_waiting(tx: &Transaction<'_>, dev: u64) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM departed WHERE dev = ?1)",
        [dev as i64],
        |r| r.get(0),
    )?)
}

/// A file just indexed as entry `id`: gives it the organisation that left with it, if any.
pub(crate) fn arrive(tx: &Transaction<'_>, dev: u64, id: i64, c: &Child) -> Result<()> {
    let waiting: Option<(i64, String)> = {
        let mut q = tx.prepare_cached(
            "SELECT id, organise, kind, btime, mtime FROM departed WHERE inode = ?1 AND dev = ?2 AND kind = ?3",
        )?;
        let rows = q.query_map(params![c.inode as i64, dev as i64, c.kind as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut found = None;
        for row in rows {
            let (did, o, kind, btime, mtime) = row?;
            if same_identity(kind, btime, mtime, (c.btime_ns, Some(c.mtime_ns))) {
                found = Some((did, o));
                break;
            }
        }
        found
    };
    if let Some((did, o)) = waiting {
        // Unreadable JSON (edited by hand) is dropped rather than failing the scan.
        if let Ok(o) = serde_json::from_str::<Organise>(&o) {
            give(tx, &o, id)?;
        }
        tx.execute("DELETE FROM departed WHERE id = ?1", [did])?;
    }
    Ok(())
}

fn read(tx: &Transaction<'_>, id: i64) -> Result<Organise> {
    let tags = tx
        .prepare_cached("SELECT tag_id FROM tag_assignments WHERE entry_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let meta: Option<(bool, bool, Option<String>)> = tx
        .query_row(
            "SELECT favorite, hidden, note FROM user_metadata WHERE entry_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (favorite, hidden, note) = meta.unwrap_or_default();
    Ok(Organise {
        tags,
        favorite,
        hidden,
        note,
    })
}

/// Adds `o` to entry `id` (tags that were deleted meanwhile are skipped; what the entry already
/// has is kept).
fn give(tx: &Transaction<'_>, o: &Organise, id: i64) -> Result<()> {
    let now = now_ms();
    for tag in &o.tags {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO tag_assignments (tag_id, entry_id, created_at)
             SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM tags WHERE id = ?1)",
        )?
        .execute(params![tag, id, now])?;
    }
    if o.favorite || o.hidden || o.note.is_some() {
        tx.prepare_cached(
            "INSERT INTO user_metadata (entry_id, favorite, hidden, note, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (entry_id) WHERE entry_id IS NOT NULL DO UPDATE SET
                favorite = max(favorite, excluded.favorite), hidden = max(hidden, excluded.hidden),
                note = coalesce(note, excluded.note), updated_at = excluded.updated_at",
        )?
        .execute(params![id, o.favorite, o.hidden, o.note, now])?;
    }
    Ok(())
}
