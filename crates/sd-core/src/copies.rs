//! Copies: which indexed files hold the same bytes.
//!
//! A content identity is keyed by the sampled cas_id (BRIEF §3). Up to 100 KiB the cas_id covers
//! every byte, so files sharing it are copies. Above that it is only a candidate: two files can
//! share size and sampled ranges and differ elsewhere (near-duplicates). The rule, everywhere the
//! product says "copy", "same content" or acts on every copy:
//!
//! **Two files are one content only when their full-file BLAKE3 (integrity) hashes are equal.**
//!
//! [`confirm`] keeps content identities to that rule: it hashes the members that have no
//! integrity hash yet and splits an identity whose members differ, each set of identical files
//! to its own identity (`split_from` names the cas_id row; the split identity's id is the
//! cas_key of its integrity hash). It runs after every content phase ([`settle`]), and before
//! `file info` and any action on content (tags, favourite, hidden, note with `--content`), so
//! those act on exactly the identical files. A member that could not be hashed is
//! *unconfirmed*: not a copy, and content tags and metadata do not reach it
//! ([`CONFIRMED_MEMBER`]). Splitting is index bookkeeping, like storing the hashes: no user file
//! is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::Result;
use crate::content::{self, HashError};
use crate::index::walk::PathError;
use crate::library::Library;
use crate::location::row::{self as location, Location};
use crate::names::JsonPath;
use crate::store::now_ms;

/// SQL condition, over `entry_content ec` joined to its `content_identities ci`: the entry is a
/// confirmed member of its content identity, so what is attached to the content reaches it.
pub(crate) const CONFIRMED_MEMBER: &str = "(ci.integrity IS NULL OR ec.integrity = ci.integrity)";

/// A member of a content identity that needs its integrity hash.
struct ToHash {
    entry: i64,
    path: PathBuf,
    size: u64,
}

/// Confirms content identities `cids` (see the module doc): hashes their members over 100 KiB
/// that have no integrity hash (two threads), stores the hashes and splits each identity by
/// them. Returns the members that could not be hashed (unreadable, offline, changed since they
/// were indexed); they stay unconfirmed.
pub fn confirm(lib: &Library, cids: &[i64]) -> Result<Vec<PathError>> {
    let conn = lib.reader()?;
    let locs: HashMap<i64, Location> = location::list_with(&conn)?
        .into_iter()
        .map(|l| (l.id, l))
        .collect();
    let mut todo = Vec::new();
    let mut failed = Vec::new();
    let mut work = Vec::new();
    for &cid in cids {
        let row: Option<(i64, i64, Option<i64>)> = conn
            .query_row(
                "SELECT size, copies, split_from FROM content_identities WHERE id = ?1",
                [cid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((size, copies, split_from)) = row else {
            continue;
        };
        if size as u64 <= content::WHOLE_FILE_LIMIT {
            continue;
        }
        let base = split_from.unwrap_or(cid);
        let siblings: i64 = conn.query_row(
            "SELECT count(*) FROM content_identities WHERE (split_from = ?1 OR id = ?1) AND id != ?2",
            params![base, cid],
            |r| r.get(0),
        )?;
        if copies < 2 && siblings == 0 {
            // A lone file is nobody's copy; nothing to confirm.
            continue;
        }
        work.push(cid);
        let mut q = conn.prepare_cached(
            "SELECT e.id, e.location_id, e.size FROM entry_content ec JOIN entries e ON e.id = ec.entry_id
              WHERE ec.content_id = ?1 AND ec.integrity IS NULL ORDER BY e.id",
        )?;
        let rows: Vec<(i64, i64, i64)> = q
            .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (entry, loc, size) in rows {
            let Some(l) = locs.get(&loc) else { continue };
            let Some(path) = crate::tree::entry_path(&conn, l.root_entry_id, &l.path.0, entry)?
            else {
                continue;
            };
            todo.push(ToHash {
                entry,
                path,
                size: size as u64,
            });
        }
    }
    drop(conn);
    if work.is_empty() {
        return Ok(failed);
    }
    let results = content::parallel_map(&todo, |t| {
        let (digest, n) = content::integrity_of_file(&t.path).map_err(|e| match e {
            HashError::Changed => "changed while being read; rescan its location".to_owned(),
            e => e.to_string(),
        })?;
        let md = std::fs::metadata(&t.path).map_err(|e| e.to_string())?;
        if n != t.size {
            return Err("changed since it was indexed; rescan its location".to_owned());
        }
        Ok((digest, crate::index::walk::describe(&md).2))
    });
    let mut fresh = Vec::new();
    for (t, r) in todo.into_iter().zip(results) {
        match r {
            Ok((digest, mtime)) => fresh.push((t.entry, t.size, mtime, digest)),
            Err(message) => failed.push(PathError {
                path: JsonPath(t.path),
                message,
            }),
        }
    }
    lib.writer.transaction(move |tx| {
        let mut store = tx.prepare_cached(
            "UPDATE entry_content SET integrity = ?2 WHERE entry_id = ?1
                AND EXISTS (SELECT 1 FROM entries WHERE id = ?1 AND size = ?3 AND mtime = ?4)",
        )?;
        for (entry, size, mtime, digest) in fresh {
            store.execute(params![entry, digest.as_slice(), size as i64, mtime])?;
        }
        for cid in work {
            split(tx, cid)?;
        }
        Ok(())
    })?;
    Ok(failed)
}

/// Confirms the content identities over 100 KiB that have a file in location `loc` and still
/// need it (a member without an integrity hash, or members that differ). Run after the content
/// phase, so an index never leaves near-duplicates in one identity.
pub(crate) fn settle(lib: &Library, loc: i64) -> Result<Vec<PathError>> {
    let cids: Vec<i64> = lib
        .reader()?
        .prepare(
            "SELECT c.id FROM content_identities c
              WHERE c.size > ?2
                AND (c.copies >= 2 OR EXISTS (SELECT 1 FROM content_identities s
                                               WHERE s.split_from = coalesce(c.split_from, c.id) AND s.id != c.id)
                                   OR c.split_from IS NOT NULL)
                AND EXISTS (SELECT 1 FROM entry_content x JOIN entries e ON e.id = x.entry_id
                             WHERE x.content_id = c.id AND e.location_id = ?1)
                AND EXISTS (SELECT 1 FROM entry_content y WHERE y.content_id = c.id
                             AND (y.integrity IS NULL OR c.integrity IS NULL OR y.integrity != c.integrity))",
        )?
        .query_map(params![loc, content::WHOLE_FILE_LIMIT as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    confirm(lib, &cids)
}

/// Splits content identity `cid` by its members' integrity hashes: members whose hash is not
/// the identity's move to the identity holding their bytes (a sibling split off the same cas_id
/// row, created if needed). An identity not yet confirmed keeps its largest group (ties: the
/// one with the oldest entry), together with whatever is attached to it.
pub(crate) fn split(tx: &Transaction<'_>, cid: i64) -> Result<()> {
    type Row = (
        Vec<u8>,
        i64,
        String,
        Option<String>,
        Option<Vec<u8>>,
        Option<i64>,
    );
    let row: Option<Row> = tx
        .query_row(
            "SELECT digest, size, kind, mime, integrity, split_from FROM content_identities WHERE id = ?1",
            [cid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((digest, size, kind, mime, integrity, split_from)) = row else {
        return Ok(());
    };
    if size as u64 <= content::WHOLE_FILE_LIMIT {
        return Ok(());
    }
    let base = split_from.unwrap_or(cid);
    let mut groups: BTreeMap<Vec<u8>, Vec<i64>> = BTreeMap::new();
    {
        let mut q = tx.prepare_cached(
            "SELECT entry_id, integrity FROM entry_content WHERE content_id = ?1 AND integrity IS NOT NULL ORDER BY entry_id",
        )?;
        let mut rows = q.query([cid])?;
        while let Some(r) = rows.next()? {
            groups.entry(r.get(1)?).or_default().push(r.get(0)?);
        }
    }
    let siblings: HashMap<Vec<u8>, i64> = tx
        .prepare_cached(
            "SELECT integrity, id FROM content_identities
              WHERE (split_from = ?1 OR id = ?1) AND id != ?2 AND integrity IS NOT NULL",
        )?
        .query_map(params![base, cid], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let keeper = match integrity {
        Some(i) => Some(i),
        None => {
            let k = groups
                .iter()
                .filter(|(h, _)| !siblings.contains_key(*h))
                .max_by_key(|(_, v)| (v.len(), std::cmp::Reverse(v[0])))
                .map(|(h, _)| h.clone());
            if let Some(k) = &k {
                tx.execute(
                    "UPDATE content_identities SET integrity = ?2 WHERE id = ?1",
                    params![cid, k],
                )?;
            }
            k
        }
    };
    for (hash, entries) in groups {
        if Some(&hash) == keeper.as_ref() {
            continue;
        }
        let target = match siblings.get(&hash) {
            Some(&id) => id,
            None => {
                let Ok(h) = <[u8; 32]>::try_from(hash.as_slice()) else {
                    continue;
                };
                let id = content::cas_key(&h);
                let taken = tx
                    .query_row(
                        "SELECT 1 FROM content_identities WHERE id = ?1",
                        [id],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if taken {
                    tracing::warn!(cid, id, "split content identity: key taken; left unsplit");
                    continue;
                }
                tx.execute(
                    "INSERT INTO content_identities (id, digest, size, kind, mime, copies, first_seen, integrity, split_from)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
                    params![id, digest, size, kind, mime, now_ms(), hash, base],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO intelligence_queue (content_id, kind, queued_at)
                     SELECT ?2, kind, queued_at FROM intelligence_queue WHERE content_id = ?1",
                    params![cid, id],
                )?;
                id
            }
        };
        let mut relink =
            tx.prepare_cached("UPDATE entry_content SET content_id = ?2 WHERE entry_id = ?1")?;
        for e in &entries {
            relink.execute(params![e, target])?;
        }
        let n = entries.len() as i64;
        tx.execute(
            "UPDATE content_identities SET copies = copies - ?2 WHERE id = ?1",
            params![cid, n],
        )?;
        tx.execute(
            "UPDATE content_identities SET copies = copies + ?2 WHERE id = ?1",
            params![target, n],
        )?;
    }
    Ok(())
}
