//! Duplicate files: groups of files with identical bytes, sorted by the space they waste.
//!
//! Two sources, one report:
//! - **library**: content identities shared by two or more files (distinct inodes) in the index,
//!   confirmed by the full-file integrity hash for files over 100 KiB (smaller files are hashed
//!   whole by their cas_id already);
//! - **path**: any folder, not indexed: files grouped by size, then by cas_id, then (over 100 KiB)
//!   by integrity hash, hashing on two threads — the cheap test first, as the best dedupe tools do.
//!
//! Never a duplicate: two names of one inode (hard links), empty files, files that only share a
//! sampled hash.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::content::{self, HashError};
use crate::control::Control;
use crate::index::walk::{self, EntryKind, PathError};
use crate::library::Library;
use crate::location::row as location;
use crate::names::JsonPath;
use crate::rules::RuleConfig;
use crate::tree::DirPaths;
use crate::{Error, Result};

/// One set of identical files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DupGroup {
    pub size: u64,
    pub cas_id: String,
    /// Full-file BLAKE3 (hex) when it was needed to confirm the group (files over 100 KiB).
    pub integrity: Option<String>,
    /// One path per distinct file (inode).
    pub files: Vec<JsonPath>,
    /// Further names (hard links) of those files; they waste no space.
    pub hard_links: Vec<JsonPath>,
    /// `size × (files − 1)`.
    pub wasted: u64,
}

/// The report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DupReport {
    /// `library` or `path`.
    pub source: String,
    pub groups: Vec<DupGroup>,
    pub duplicate_files: u64,
    pub redundant_files: u64,
    pub wasted_bytes: u64,
    /// Groups whose sampled ids matched but could not be confirmed (file unreadable or changed
    /// since it was indexed); listed in `unconfirmed`, never counted as duplicates.
    pub unconfirmed: Vec<PathError>,
    /// Files considered (distinct, non-empty).
    pub files_scanned: u64,
    /// Bytes read to decide.
    pub bytes_hashed: u64,
    pub duration_ms: u64,
}

impl DupReport {
    fn finish(
        source: &str,
        mut groups: Vec<DupGroup>,
        unconfirmed: Vec<PathError>,
        scanned: u64,
        hashed: u64,
        started: Instant,
    ) -> DupReport {
        for g in &mut groups {
            g.files.sort();
            g.hard_links.sort();
            g.wasted = g.size * (g.files.len() as u64 - 1);
        }
        groups.sort_by(|a, b| b.wasted.cmp(&a.wasted).then_with(|| a.files.cmp(&b.files)));
        DupReport {
            source: source.into(),
            duplicate_files: groups.iter().map(|g| g.files.len() as u64).sum(),
            redundant_files: groups.iter().map(|g| g.files.len() as u64 - 1).sum(),
            wasted_bytes: groups.iter().map(|g| g.wasted).sum(),
            groups,
            unconfirmed,
            files_scanned: scanned,
            bytes_hashed: hashed,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// A file as the grouping sees it.
#[derive(Clone)]
struct Candidate {
    path: PathBuf,
    inode: u64,
    links: Vec<PathBuf>,
}

/// What [`confirm`] found.
struct Confirmed {
    /// Groups of two or more files with equal full hashes.
    groups: Vec<DupGroup>,
    failed: Vec<PathError>,
    /// Bytes read.
    read: u64,
    /// Digests computed now, by candidate key (`Candidate::inode`).
    fresh: Vec<(u64, [u8; 32])>,
}

/// Splits `files` (already known equal in size and sampled id) by full-file hash, hashing on two
/// threads; `known` holds digests already on record, by candidate key.
fn confirm(
    size: u64,
    cas_id: &str,
    files: Vec<Candidate>,
    known: &HashMap<u64, [u8; 32]>,
) -> Confirmed {
    let results: Vec<std::result::Result<[u8; 32], String>> = content::parallel_map(&files, |c| {
        if let Some(d) = known.get(&c.inode) {
            return Ok(*d);
        }
        match content::integrity_of_file(&c.path) {
            Ok((d, n)) if n == size => Ok(d),
            Ok(_) | Err(HashError::Changed) => {
                Err("changed since it was indexed; rescan its location".to_owned())
            }
            Err(e) => Err(e.to_string()),
        }
    });
    let mut by: HashMap<[u8; 32], Vec<Candidate>> = HashMap::new();
    let mut failed = Vec::new();
    let mut fresh = Vec::new();
    let mut read = 0;
    for (c, r) in files.into_iter().zip(results) {
        match r {
            Ok(d) => {
                if !known.contains_key(&c.inode) {
                    read += size;
                    fresh.push((c.inode, d));
                }
                by.entry(d).or_default().push(c);
            }
            Err(message) => failed.push(PathError {
                path: c.path.into(),
                message,
            }),
        }
    }
    let groups = by
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(d, v)| group(size, cas_id, Some(content::hex(&d)), v))
        .collect();
    Confirmed {
        groups,
        failed,
        read,
        fresh,
    }
}

/// One file (inode) of a library group: its entries (names) and its recorded integrity hash.
struct Member {
    cand: Candidate,
    ids: Vec<i64>,
    integrity: Option<[u8; 32]>,
}

fn group(size: u64, cas_id: &str, integrity: Option<String>, files: Vec<Candidate>) -> DupGroup {
    let mut g = DupGroup {
        size,
        cas_id: cas_id.to_owned(),
        integrity,
        files: Vec::new(),
        hard_links: Vec::new(),
        wasted: 0,
    };
    for c in files {
        g.files.push(c.path.into());
        g.hard_links.extend(c.links.into_iter().map(JsonPath::from));
    }
    g
}

/// Duplicates among the library's identified files (all locations). Integrity hashes that were
/// missing are computed and stored, so the next report is instant.
pub fn in_library(lib: &Library, min_size: u64) -> Result<DupReport> {
    let started = Instant::now();
    let conn = lib.reader()?;
    let mut dirs: HashMap<i64, DirPaths> = HashMap::new();
    for loc in location::list_with(&conn)? {
        dirs.insert(
            loc.id,
            DirPaths::load(&conn, loc.id, loc.root_entry_id, &loc.path.0)?,
        );
    }
    let shared: Vec<(i64, String, i64)> = conn
        .prepare(
            "SELECT id, size, digest FROM content_identities WHERE copies >= 2 AND size >= ?1",
        )?
        .query_map([min_size.max(1) as i64], |r| {
            let digest: Vec<u8> = r.get(2)?;
            // The cas_id is the sampled digest's, also for an identity split off by full hash.
            Ok((
                r.get(0)?,
                content::hex(&digest[..8.min(digest.len())]),
                r.get(1)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut members = conn.prepare(
        "SELECT e.id, e.location_id, e.parent_id, e.name, e.inode, ec.integrity
           FROM entry_content ec JOIN entries e ON e.id = ec.entry_id WHERE ec.content_id = ?1 ORDER BY e.id",
    )?;
    let mut groups = Vec::new();
    let mut unconfirmed = Vec::new();
    let mut scanned = 0u64;
    let mut hashed = 0u64;
    let mut to_store: Vec<(i64, [u8; 32])> = Vec::new();
    let mut touched: Vec<i64> = Vec::new();
    for (cid, cas_id, size) in shared {
        let size = size as u64;
        // One candidate per inode (per location: inodes are per filesystem).
        let mut by_inode: HashMap<(i64, u64), Member> = HashMap::new();
        let mut order = Vec::new();
        let mut rows = members.query([cid])?;
        while let Some(r) = rows.next()? {
            let (id, loc, parent, name, inode): (i64, i64, i64, OsString, i64) = (
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                crate::names::from_sql(r.get_ref(3)?)?,
                r.get(4)?,
            );
            let integrity: Option<Vec<u8>> = r.get(5)?;
            let Some(path) = dirs
                .get_mut(&loc)
                .and_then(|d| d.dir(parent))
                .map(|d| d.join(&name))
            else {
                continue;
            };
            let key = (loc, inode as u64);
            match by_inode.get_mut(&key) {
                Some(m) => {
                    m.cand.links.push(path);
                    m.ids.push(id);
                    if m.integrity.is_none() {
                        m.integrity = integrity.and_then(|v| v.try_into().ok());
                    }
                }
                None => {
                    order.push(key);
                    let integ = integrity.and_then(|v| v.try_into().ok());
                    let cand = Candidate {
                        path,
                        inode: inode as u64,
                        links: Vec::new(),
                    };
                    by_inode.insert(
                        key,
                        Member {
                            cand,
                            ids: vec![id],
                            integrity: integ,
                        },
                    );
                }
            }
        }
        drop(rows);
        if order.len() < 2 {
            continue;
        }
        scanned += order.len() as u64;
        if size <= content::WHOLE_FILE_LIMIT {
            let files = order.iter().map(|k| by_inode[k].cand.clone()).collect();
            groups.push(group(size, &cas_id, None, files));
            continue;
        }
        // Inodes are only unique per location here; key the known digests by position instead.
        let files: Vec<Candidate> = order
            .iter()
            .enumerate()
            .map(|(i, k)| Candidate {
                inode: i as u64,
                ..by_inode[k].cand.clone()
            })
            .collect();
        let known: HashMap<u64, [u8; 32]> = order
            .iter()
            .enumerate()
            .filter_map(|(i, k)| by_inode[k].integrity.map(|d| (i as u64, d)))
            .collect();
        let Confirmed {
            groups: g,
            failed,
            read,
            fresh,
        } = confirm(size, &cas_id, files, &known);
        hashed += read;
        if !fresh.is_empty() {
            touched.push(cid);
        }
        for (i, d) in fresh {
            for id in &by_inode[&order[i as usize]].ids {
                to_store.push((*id, d));
            }
        }
        groups.extend(g);
        unconfirmed.extend(failed);
    }
    if !to_store.is_empty() {
        lib.writer.transaction(move |tx| {
            let mut q =
                tx.prepare_cached("UPDATE entry_content SET integrity = ?2 WHERE entry_id = ?1")?;
            for (id, d) in to_store {
                q.execute(params![id, d.as_slice()])?;
            }
            // Identities found to hold different bytes are split (copies.rs).
            for cid in touched {
                crate::copies::split(tx, cid)?;
            }
            Ok(())
        })?;
    }
    Ok(DupReport::finish(
        "library",
        groups,
        unconfirmed,
        scanned,
        hashed,
        started,
    ))
}

/// Duplicates under any folder, without a library: walk (no rules: every regular file counts),
/// group by size, then by cas_id, then by full hash.
pub fn in_path(path: &Path, min_size: u64, control: &Control) -> Result<DupReport> {
    let started = Instant::now();
    // (dev, inode) → candidate; sizes → inodes.
    let mut files: HashMap<(u64, u64), (u64, Candidate)> = HashMap::new();
    let mut unreadable = Vec::new();
    // No rules: every regular file counts.
    let every_file = RuleConfig {
        system_defaults: false,
        gitignore: false,
        ignore: Vec::new(),
    };
    walk::walk_folder(path, every_file, true, control, |listing| {
        unreadable.extend(listing.errors);
        let children = match listing.children {
            Ok(c) => c,
            Err(message) => {
                unreadable.push(PathError {
                    path: listing.path.into(),
                    message,
                });
                return;
            }
        };
        let dev = std::fs::symlink_metadata(&listing.path)
            .map(|m| m.dev())
            .unwrap_or(0);
        for c in children {
            if c.kind != EntryKind::File || c.size == 0 || c.size < min_size {
                continue;
            }
            let p = listing.path.join(&c.name);
            match files.get_mut(&(dev, c.inode)) {
                Some((_, cand)) => cand.links.push(p),
                None => {
                    files.insert(
                        (dev, c.inode),
                        (
                            c.size,
                            Candidate {
                                path: p,
                                inode: c.inode,
                                links: Vec::new(),
                            },
                        ),
                    );
                }
            }
        }
    })?;
    let scanned = files.len() as u64;
    let mut by_size: HashMap<u64, Vec<Candidate>> = HashMap::new();
    for (_, (size, c)) in files {
        by_size.entry(size).or_default().push(c);
    }
    let same_size: Vec<(u64, Candidate)> = by_size
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .flat_map(|(size, v)| v.into_iter().map(move |c| (size, c)))
        .collect();
    // Stage 2: sampled identity (whole-file for ≤100 KiB).
    let sampled = content::parallel_map(&same_size, |(_, c)| {
        content::cas_of_file_stable(&c.path, 3, false)
    });
    let mut hashed = 0u64;
    let mut by_cas: HashMap<(u64, String), Vec<Candidate>> = HashMap::new();
    for ((size, c), r) in same_size.into_iter().zip(sampled) {
        match r {
            Ok(h) => {
                hashed += content::ranges(size).iter().map(|r| r.1).sum::<u64>();
                by_cas.entry((size, h.id.cas_id)).or_default().push(c);
            }
            Err(e) => unreadable.push(PathError {
                path: c.path.into(),
                message: e.to_string(),
            }),
        }
    }
    // Stage 3: full hash where the sample did not cover every byte.
    let mut groups = Vec::new();
    for ((size, cas_id), v) in by_cas {
        if v.len() < 2 {
            continue;
        }
        if size <= content::WHOLE_FILE_LIMIT {
            groups.push(group(size, &cas_id, None, v));
        } else {
            let Confirmed {
                groups: g,
                failed,
                read,
                ..
            } = confirm(size, &cas_id, v, &HashMap::new());
            hashed += read;
            groups.extend(g);
            unreadable.extend(failed);
        }
    }
    Ok(DupReport::finish(
        "path", groups, unreadable, scanned, hashed, started,
    ))
}

/// What `file info` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileInfo {
    pub entry: crate::query::EntryView,
    pub location_id: i64,
    pub content: Option<ContentInfo>,
    /// Tags, favourite, hidden, notes — on the entry and on its content.
    pub attached: crate::organise::Attached,
}

/// A content identity and every indexed copy of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ContentInfo {
    pub cas_id: String,
    pub uuid: String,
    pub kind: String,
    pub mime: Option<String>,
    /// Files with exactly these bytes, this one included (`1 + other_copies`).
    pub copies: u64,
    /// Every other indexed path with identical bytes (any location): the same cas_id, and for
    /// files over 100 KiB the same full-file BLAKE3 too.
    pub other_copies: Vec<JsonPath>,
    /// Files sharing the sampled cas_id whose bytes could not be compared (unreadable, offline,
    /// changed since indexed): not counted as copies.
    pub unconfirmed: Vec<JsonPath>,
    /// Files sharing the size and sampled cas_id but with different bytes: not copies.
    pub near_duplicates: Vec<JsonPath>,
    pub integrity: Option<String>,
    pub queued_for_intelligence: bool,
    /// Thumbnails, metadata and text made for this content, with their files' paths.
    #[serde(default)]
    pub sidecars: Vec<crate::sidecar::SidecarView>,
    /// Media metadata (dimensions, EXIF), once read.
    #[serde(default)]
    pub media: Option<crate::sidecar::Media>,
}

/// Details of an indexed file: type, content identity, other copies (confirmed by full hash,
/// see [`crate::copies`]).
pub fn file_info(lib: &Library, path: &Path) -> Result<FileInfo> {
    let (loc, id) = crate::query::resolve(lib, path)?;
    let conn = lib.reader()?;
    let own = crate::tree::entry_path(&conn, loc.root_entry_id, &loc.path.0, id)?
        .ok_or_else(|| Error::NotFound(format!("{} is not in the index", path.display())))?;
    let entry = crate::query::entry_view(&conn, id, &own)?;
    let content_of = || -> Result<Option<(i64, Option<Vec<u8>>)>> {
        Ok(conn
            .query_row(
                "SELECT content_id, integrity FROM entry_content WHERE entry_id = ?1",
                [id],
                |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)),
            )
            .optional()?)
    };
    if let Some((cid, _)) = content_of()? {
        // Unreadable copies stay unconfirmed; they are listed as such below.
        crate::copies::confirm(lib, &[cid])?;
    }
    let content = match content_of()? {
        None => None,
        Some((cid, integrity)) => {
            let (kind, mime, digest, size, split_from): (
                String,
                Option<String>,
                Vec<u8>,
                i64,
                Option<i64>,
            ) = conn.query_row(
                "SELECT kind, mime, digest, size, split_from FROM content_identities WHERE id = ?1",
                [cid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let cas_id = content::hex(&digest[..8.min(digest.len())]);
            let exact = size as u64 <= content::WHOLE_FILE_LIMIT;
            let mut dirs: HashMap<i64, DirPaths> = HashMap::new();
            let locs: HashMap<i64, location::Location> = location::list_with(&conn)?
                .into_iter()
                .map(|l| (l.id, l))
                .collect();
            // (path, integrity) of the members of identities matching `sql`'s (?1, ?2).
            let mut members =
                |sql: &str, a: i64, b: i64| -> Result<Vec<(JsonPath, Option<Vec<u8>>)>> {
                    let mut out = Vec::new();
                    let mut q = conn.prepare(sql)?;
                    let mut rows = q.query(params![a, b])?;
                    while let Some(r) = rows.next()? {
                        let (l, parent, name, integ): (i64, i64, OsString, Option<Vec<u8>>) = (
                            r.get(0)?,
                            r.get(1)?,
                            crate::names::from_sql(r.get_ref(2)?)?,
                            r.get(3)?,
                        );
                        let Some(loc) = locs.get(&l) else { continue };
                        let paths = match dirs.entry(l) {
                            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                                DirPaths::load(&conn, loc.id, loc.root_entry_id, &loc.path.0)?,
                            ),
                        };
                        if let Some(d) = paths.dir(parent) {
                            out.push((JsonPath(d.join(name)), integ));
                        }
                    }
                    Ok(out)
                };
            let mut others = Vec::new();
            let mut unconfirmed = Vec::new();
            for (p, integ) in members(
                "SELECT e.location_id, e.parent_id, e.name, ec.integrity FROM entry_content ec JOIN entries e ON e.id = ec.entry_id
                  WHERE ec.content_id = ?1 AND ec.entry_id != ?2",
                cid,
                id,
            )? {
                if exact || (integ.is_some() && integ == integrity) {
                    others.push(p);
                } else {
                    unconfirmed.push(p);
                }
            }
            let mut near: Vec<JsonPath> = members(
                "SELECT e.location_id, e.parent_id, e.name, ec.integrity FROM content_identities s
                   JOIN entry_content ec ON ec.content_id = s.id JOIN entries e ON e.id = ec.entry_id
                  WHERE (s.split_from = ?1 OR s.id = ?1) AND s.id != ?2",
                split_from.unwrap_or(cid),
                cid,
            )?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
            others.sort();
            unconfirmed.sort();
            near.sort();
            let queued: bool = conn.query_row(
                "SELECT count(*) > 0 FROM intelligence_queue WHERE content_id = ?1",
                [cid],
                |r| r.get(0),
            )?;
            let (sidecars, media) = crate::sidecar::of_content(&conn, lib, cid)?;
            Some(ContentInfo {
                sidecars,
                media,
                uuid: content::content_uuid(&cas_id).to_string(),
                cas_id,
                kind,
                mime,
                copies: 1 + others.len() as u64,
                other_copies: others,
                unconfirmed,
                near_duplicates: near,
                integrity: integrity.map(|d| content::hex(&d)),
                queued_for_intelligence: queued,
            })
        }
    };
    let attached = crate::organise::attached(&conn, id)?;
    Ok(FileInfo {
        entry,
        location_id: loc.id,
        content,
        attached,
    })
}

/// `verify`: the full-file BLAKE3 of any file; when the file is indexed with a stored integrity
/// hash, whether it still matches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Verified {
    pub path: JsonPath,
    pub size: u64,
    pub blake3: String,
    pub cas_id: Option<String>,
    /// `Some(true/false)` when the index held an integrity hash for this file to compare with.
    pub matches_index: Option<bool>,
}

/// Computes the integrity hash of `path` and compares it with the library's record, if any.
pub fn verify(lib: Option<&Library>, path: &Path) -> Result<Verified> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let (digest, size) = content::integrity_of_file(&abs).map_err(|e| match e {
        HashError::Io(io) => Error::io(&abs, io),
        other => Error::Invalid(format!("{}: {other}", abs.display())),
    })?;
    let cas_id = content::cas_of_file_stable(&abs, 3, false)
        .ok()
        .map(|h| h.id.cas_id);
    let mut matches_index = None;
    if let Some(lib) = lib
        && let Ok((_, id)) = crate::query::resolve(lib, &abs)
    {
        let stored: Option<Vec<u8>> = lib
            .reader()?
            .query_row(
                "SELECT integrity FROM entry_content WHERE entry_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if let Some(s) = stored {
            matches_index = Some(s.as_slice() == digest.as_slice());
        }
    }
    Ok(Verified {
        path: JsonPath(abs),
        size,
        blake3: content::hex(&digest),
        cas_id,
        matches_index,
    })
}
