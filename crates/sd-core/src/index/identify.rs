//! The content phase: gives every non-empty file of a content-mode location its content identity,
//! file type and, for files that share a sampled id with another file, its integrity hash.
//!
//! Work is whatever files still have no `content_id`, so the phase resumes by itself after a
//! crash. Hashing runs on two threads, which open each file by name in its open directory and
//! check it against the scan's record; results are committed in batches by `commit_batches`
//! (the job thread cuts them, its commit thread writes them).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use rusqlite::{Transaction, params};

use super::scan::ScanState;
use super::walk::PathError;
use super::{Batches, RunHooks, commit_batches};
use crate::content::{self, HashError, Hashed, Recorded};
use crate::control::{Control, Stop};
use crate::filetype::{self, FileType};
use crate::library::Library;
use crate::location::row::Location;
use crate::store::{RowsInsert, now_ms};
use crate::tree::DirPaths;
use crate::{Error, Result};

/// Hashing attempts for a file that keeps changing under the reader.
const ATTEMPTS: usize = 3;
/// 20,000 files or a second.
const BATCHES: Batches<Vec<Outcome>> = Batches {
    max: 20_000,
    age: Duration::from_millis(1000),
    weight: |chunk| chunk.len(),
    apply,
};
const HASH_THREADS: usize = 2;
/// Files pass between the threads in chunks of this many: one channel hand-over (and at most
/// one wake-up) per chunk instead of two per file, which for small files cost the job thread as
/// much as the database writes.
const CHUNK: usize = 64;

/// A file to hash: its entry, where it is, and what for.
struct Work {
    id: i64,
    /// Its directory's entry id and path.
    dir: (i64, Arc<Path>),
    name: OsString,
    task: Task,
}

enum Task {
    /// Its cas_id and file type, the file being as the index recorded it.
    Identify(Recorded),
    /// Its integrity hash (a full hash).
    Confirm,
}

impl Work {
    fn path(&self) -> PathBuf {
        self.dir.1.join(&self.name)
    }
}

enum Outcome {
    /// Entry `id`, recorded as `recorded`, was hashed as `found`. Only what the writer needs
    /// crosses over: the rest of the work is freed by the thread that hashed it.
    Hashed {
        id: i64,
        recorded: Recorded,
        found: Recorded,
        digest: [u8; 32],
        ft: FileType,
    },
    Integrity {
        id: i64,
        size: u64,
        mtime: i64,
        digest: [u8; 32],
    },
    Failed {
        path: PathBuf,
        message: String,
    },
}

/// Runs the content phase for `loc`, then the integrity pass. `Err(Stop)` when interrupted.
pub(crate) fn run(
    lib: &Arc<Library>,
    loc: &Location,
    state: &Arc<Mutex<ScanState>>,
    control: &Control,
    hooks: &RunHooks<'_>,
) -> Result<Result<(), Stop>> {
    let started = Instant::now();
    let reader = lib.reader()?;
    let todo: i64 = reader.query_row(
        "SELECT count(*) FROM entries e WHERE location_id = ?1 AND kind = 0 AND size > 0
           AND NOT EXISTS (SELECT 1 FROM entry_content c WHERE c.entry_id = e.id)",
        [loc.id],
        |r| r.get(0),
    )?;
    {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.progress.content_total = st.progress.content_done + todo as u64;
    }
    let dirs = DirPaths::load(&reader, loc.id, loc.root_entry_id, &loc.path.0)?;
    drop(reader);

    let loc_id = loc.id;
    let db = lib.db();
    let stopped = pipeline(lib, state, control, hooks, |tx| {
        produce_unidentified(&db, loc_id, dirs, &tx, control)
    })?;
    // Queue the kinds later jobs want, in one statement rather than one per file.
    let queued = lib.writer.run(|c| {
        let kinds: Vec<String> = crate::filetype::ContentKind::ALL
            .into_iter()
            .filter(|k| k.wants_intelligence())
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        Ok(c.execute(
            &format!(
                "INSERT OR IGNORE INTO intelligence_queue (content_id, kind, queued_at)
                 SELECT id, kind, ?1 FROM content_identities c WHERE kind IN ({})
                    AND NOT EXISTS (SELECT 1 FROM sidecars s WHERE s.content_id = c.id)",
                kinds.join(", ")
            ),
            [now_ms()],
        )? as u64)
    })?;
    {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.progress.queued += queued;
        st.progress.content_ms += started.elapsed().as_millis() as u64;
    }
    if stopped.is_err() {
        return Ok(stopped);
    }
    let started = Instant::now();

    // Integrity pass: full hashes for this location's files whose sampled id is shared.
    let reader = lib.reader()?;
    let dirs = DirPaths::load(&reader, loc.id, loc.root_entry_id, &loc.path.0)?;
    drop(reader);
    let db = lib.db();
    let stopped = pipeline(lib, state, control, hooks, |tx| {
        produce_candidates(&db, loc_id, dirs, &tx, control)
    })?;
    // Hash what the pass could not reach (copies in other locations) and split identities
    // whose files differ: a content identity holds only identical bytes (copies.rs).
    let unconfirmed = if stopped.is_ok() {
        crate::copies::settle(lib, loc_id)?
    } else {
        Vec::new()
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    for e in unconfirmed {
        st.progress.errors += 1;
        if st.progress.error_samples.len() < 50 {
            st.progress.error_samples.push(e);
        }
    }
    st.progress.integrity_ms += started.elapsed().as_millis() as u64;
    Ok(stopped)
}

/// Producer → hashers → batched commits. The producer decides what to hash and how (`Task`).
fn pipeline(
    lib: &Arc<Library>,
    state: &Arc<Mutex<ScanState>>,
    control: &Control,
    hooks: &RunHooks<'_>,
    produce: impl FnOnce(Sender<Vec<Work>>) -> Result<()> + Send,
) -> Result<Result<(), Stop>> {
    let (work_tx, work_rx) = bounded::<Vec<Work>>(16);
    // Deep enough to hold a whole batch: the hashers go on while the job thread waits for the
    // writer to commit the previous one (with a shallow queue they stopped at every commit).
    let (out_tx, out_rx) = bounded::<Vec<Outcome>>(BATCHES.max / CHUNK + 1);
    std::thread::scope(|s| -> Result<Result<(), Stop>> {
        let producer = s.spawn(|| produce(work_tx));
        for i in 0..HASH_THREADS {
            let (rx, tx) = (work_rx.clone(), out_tx.clone());
            std::thread::Builder::new()
                .name(format!("sd-hash-{i}"))
                .spawn_scoped(s, move || hasher(&rx, &tx, control))
                .map_err(|e| Error::io("<hash thread>", e))?;
        }
        drop(work_rx);
        drop(out_tx);
        let committed = commit_batches(lib, state, &out_rx, control, hooks, &BATCHES);
        drop(out_rx);
        let produced = producer
            .join()
            .map_err(|_| Error::Invalid("the content producer panicked".into()))?;
        committed?;
        produced?;
        Ok(match control.stopped() {
            Some(stop) => Err(stop),
            None => Ok(()),
        })
    })
}

fn hasher(rx: &Receiver<Vec<Work>>, tx: &Sender<Vec<Outcome>>, control: &Control) {
    let mut dirs = OpenDirs::default();
    for chunk in rx {
        let mut out = Vec::with_capacity(chunk.len());
        for work in chunk {
            if control.check().is_err() {
                return;
            }
            out.push(hash_one(work, &mut dirs));
        }
        if tx.send(out).is_err() {
            return;
        }
    }
}

/// The directories a hasher has open, the latest first: files come in entry order, so mostly
/// several from one directory in a row, and each is opened by its name in an open directory
/// instead of by its whole path.
#[derive(Default)]
struct OpenDirs(Vec<(i64, File)>);

impl OpenDirs {
    const KEEP: usize = 4;

    fn get(&mut self, (id, path): &(i64, Arc<Path>)) -> Option<BorrowedFd<'_>> {
        match self.0.iter().position(|(d, _)| d == id) {
            Some(0) => {}
            Some(at) => {
                let dir = self.0.remove(at);
                self.0.insert(0, dir);
            }
            None => {
                let dir = File::options()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                    .open(path)
                    .ok()?;
                self.0.truncate(Self::KEEP - 1);
                self.0.insert(0, (*id, dir));
            }
        }
        Some(self.0[0].1.as_fd())
    }
}

/// Hashes one file: its cas_id and file type, or (integrity pass) its full BLAKE3.
fn hash_one(work: Work, dirs: &mut OpenDirs) -> Outcome {
    let recorded = match work.task {
        Task::Identify(recorded) => recorded,
        Task::Confirm => {
            let path = work.path();
            return match content::integrity_of_file(&path) {
                Ok((digest, size)) => match std::fs::metadata(&path) {
                    Ok(md) => Outcome::Integrity {
                        id: work.id,
                        size,
                        mtime: super::walk::describe(&md).2,
                        digest,
                    },
                    Err(e) => Outcome::Failed {
                        path,
                        message: e.to_string(),
                    },
                },
                Err(e) => Outcome::Failed {
                    path,
                    message: e.to_string(),
                },
            };
        }
    };
    // Mostly the file is as the scan saw it: one open by name and one fstat.
    let mut ft = None;
    let quick = dirs.get(&work.dir).and_then(|dir| {
        content::cas_of_recorded(dir, &work.name, recorded, &mut |head| {
            ft = Some(filetype::detect(&work.name, head))
        })
    });
    let identified = |hashed: Hashed, ft| Outcome::Hashed {
        id: work.id,
        recorded,
        found: Recorded {
            size: hashed.size,
            mtime_ns: hashed.mtime_ns,
            inode: hashed.inode,
        },
        digest: hashed.id.digest,
        ft,
    };
    if let (Some(hashed), Some(ft)) = (quick, ft) {
        return identified(hashed, ft);
    }
    // Changed since, or unreadable: by path, checked before and after, which says what failed.
    let path = work.path();
    match content::cas_of_file_stable(&path, ATTEMPTS, true) {
        Ok(hashed) => {
            let ft = filetype::detect(&work.name, &hashed.header);
            identified(hashed, ft)
        }
        Err(HashError::Changed) => Outcome::Failed {
            path,
            message: format!(
                "kept changing while being read ({ATTEMPTS} attempts); left unidentified"
            ),
        },
        Err(e) => Outcome::Failed {
            path,
            message: e.to_string(),
        },
    }
}

/// Writes a batch. Identities are written once per distinct cas_id, in key order (the table is
/// keyed by hash: a batch in hashing order would touch its pages at random, and files with the
/// same bytes would each cost a statement); links in entry order, so they append.
fn apply(tx: &Transaction<'_>, st: &mut ScanState, batch: Vec<Vec<Outcome>>) -> Result<()> {
    let now = now_ms();
    // cas key → (the first file hashed with it, how many files of the batch have it).
    let mut identities: BTreeMap<i64, (usize, i64)> = BTreeMap::new();
    let mut links: Vec<(i64, i64)> = Vec::new();
    let mut hashed_rows: Vec<(i64, Recorded, Recorded, [u8; 32], FileType)> = Vec::new();
    for o in batch.into_iter().flatten() {
        match o {
            Outcome::Hashed {
                id,
                recorded,
                found,
                digest,
                ft,
            } => {
                let cid = content::cas_key(&digest);
                let at = hashed_rows.len();
                identities.entry(cid).or_insert((at, 0)).1 += 1;
                links.push((id, cid));
                hashed_rows.push((id, recorded, found, digest, ft));
            }
            Outcome::Integrity {
                id,
                size,
                mtime,
                digest,
            } => {
                st.progress.integrity_hashed += tx
                    .prepare_cached(
                        "UPDATE entry_content SET integrity = ?2 WHERE entry_id = ?1
                            AND EXISTS (SELECT 1 FROM entries WHERE id = ?1 AND size = ?3 AND mtime = ?4)",
                    )?
                    .execute(params![id, digest.as_slice(), size as i64, mtime])? as u64;
            }
            Outcome::Failed { path, message } => {
                let p = &mut st.progress;
                p.content_done += 1;
                p.errors += 1;
                if p.error_samples.len() < 50 {
                    p.error_samples.push(PathError {
                        path: path.into(),
                        message,
                    });
                }
            }
        }
    }
    // Count the copies here: a new identity is born with the batch's count, a known one gains it.
    static UPSERT: LazyLock<RowsInsert> = LazyLock::new(|| {
        RowsInsert::new(
            "INSERT OR FAIL INTO content_identities (id, digest, size, kind, mime, copies, first_seen) VALUES",
            7,
            "ON CONFLICT (id) DO UPDATE SET copies = copies + excluded.copies",
        )
    });
    let identities: Vec<(i64, (usize, i64))> = identities.into_iter().collect();
    UPSERT.run(tx, &identities, |stmt, at, _, (cid, (first, copies))| {
        let (_, _, found, digest, ft) = &hashed_rows[*first];
        stmt.raw_bind_parameter(at, cid)?;
        stmt.raw_bind_parameter(at + 1, digest.as_slice())?;
        stmt.raw_bind_parameter(at + 2, found.size as i64)?;
        stmt.raw_bind_parameter(at + 3, ft.kind.as_str())?;
        stmt.raw_bind_parameter(at + 4, ft.mime)?;
        stmt.raw_bind_parameter(at + 5, copies)?;
        stmt.raw_bind_parameter(at + 6, now)
    })?;
    let p = &mut st.progress;
    let mut resized =
        tx.prepare_cached("UPDATE entries SET size = ?2, mtime = ?3 WHERE id = ?1")?;
    for (id, recorded, found, _, _) in &hashed_rows {
        if found.size != recorded.size || found.mtime_ns != recorded.mtime_ns {
            // Changed since the scan saw it: record what was actually hashed.
            p.modified += 1;
            p.changed_while_identifying += 1;
            resized.execute(params![id, found.size as i64, found.mtime_ns])?;
        }
        p.content_done += 1;
        p.content_bytes += found.size.min(content::WHOLE_FILE_LIMIT);
    }
    // The work list holds only files without a link.
    links.sort_unstable();
    static LINK: LazyLock<RowsInsert> = LazyLock::new(|| {
        RowsInsert::new(
            "INSERT OR FAIL INTO entry_content (entry_id, content_id) VALUES",
            2,
            "",
        )
    });
    LINK.run(tx, &links, |stmt, at, _, (entry, cid)| {
        stmt.raw_bind_parameter(at, entry)?;
        stmt.raw_bind_parameter(at + 1, cid)
    })?;
    tx.prepare_cached("UPDATE jobs SET progress = ?2 WHERE id = ?1")?
        .execute(params![st.job_id, serde_json::to_string(&st.progress)?])?;
    Ok(())
}

/// Hands work to the hashers `size` files at a time.
struct Feed<'a> {
    tx: &'a Sender<Vec<Work>>,
    size: usize,
    chunk: Vec<Work>,
}

impl<'a> Feed<'a> {
    fn new(tx: &'a Sender<Vec<Work>>, size: usize) -> Feed<'a> {
        Feed {
            tx,
            size,
            chunk: Vec::with_capacity(size),
        }
    }

    /// `false` once the hashers are gone.
    fn push(&mut self, work: Work) -> bool {
        self.chunk.push(work);
        self.chunk.len() < self.size || self.flush()
    }

    fn flush(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.size));
        chunk.is_empty() || self.tx.send(chunk).is_ok()
    }
}

/// Directory paths as the hashers get them: one `Arc` per run of files from the same directory.
struct SharedDirs {
    paths: DirPaths,
    last: Option<(i64, Arc<Path>)>,
}

impl SharedDirs {
    fn new(paths: DirPaths) -> SharedDirs {
        SharedDirs { paths, last: None }
    }

    fn get(&mut self, parent: i64) -> Option<(i64, Arc<Path>)> {
        match &self.last {
            Some((id, path)) if *id == parent => Some((parent, path.clone())),
            _ => {
                let dir = (parent, Arc::from(self.paths.dir(parent)?));
                self.last = Some(dir.clone());
                Some(dir)
            }
        }
    }
}

/// Sends every non-empty file of the location that has no content identity yet, in id order.
fn produce_unidentified(
    db: &crate::store::DbFile,
    loc: i64,
    dirs: DirPaths,
    tx: &Sender<Vec<Work>>,
    control: &Control,
) -> Result<()> {
    let mut dirs = SharedDirs::new(dirs);
    let mut feed = Feed::new(tx, CHUNK);
    let conn = db.reader()?;
    let mut q = conn.prepare(
        "SELECT id, parent_id, name, size, mtime, inode FROM entries
         WHERE id > ?1 AND location_id = ?2 AND kind = 0 AND size > 0
           AND NOT EXISTS (SELECT 1 FROM entry_content c WHERE c.entry_id = entries.id)
         ORDER BY id LIMIT 4096",
    )?;
    let mut last = 0i64;
    loop {
        let mut chunk = Vec::new();
        let mut rows = q.query(params![last, loc])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            last = id;
            chunk.push((
                id,
                r.get::<_, i64>(1)?,
                crate::names::from_sql(r.get_ref(2)?)?,
                Recorded {
                    size: r.get::<_, i64>(3)? as u64,
                    mtime_ns: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    inode: r.get::<_, i64>(5)? as u64,
                },
            ));
        }
        drop(rows);
        if chunk.is_empty() {
            feed.flush();
            return Ok(());
        }
        for (id, parent, name, recorded) in chunk {
            if control.stopped().is_some() {
                return Ok(());
            }
            let Some(dir) = dirs.get(parent) else {
                continue;
            };
            let work = Work {
                id,
                dir,
                name,
                task: Task::Identify(recorded),
            };
            if !feed.push(work) {
                return Ok(());
            }
        }
    }
}

/// Sends this location's files whose content id is shared with another file and whose integrity
/// hash is not known yet (one per inode). Files up to 100 KiB need none: their cas_id covers
/// every byte.
fn produce_candidates(
    db: &crate::store::DbFile,
    loc: i64,
    dirs: DirPaths,
    tx: &Sender<Vec<Work>>,
    control: &Control,
) -> Result<()> {
    let mut dirs = SharedDirs::new(dirs);
    // One file at a time: these are full hashes of files over 100 KiB, which a chunk could
    // pile onto one hasher.
    let mut feed = Feed::new(tx, 1);
    let conn = db.reader()?;
    let mut q = conn.prepare(
        "SELECT e.id, e.parent_id, e.name, e.inode FROM content_identities c
           JOIN entry_content ec ON ec.content_id = c.id
           JOIN entries e ON e.id = ec.entry_id
          WHERE c.copies >= 2 AND c.size > ?2 AND e.location_id = ?1 AND ec.integrity IS NULL",
    )?;
    let mut seen: HashMap<u64, ()> = HashMap::new();
    let rows: Vec<(i64, i64, OsString, i64)> = q
        .query_map(params![loc, content::WHOLE_FILE_LIMIT as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                crate::names::from_sql(r.get_ref(2)?)?,
                r.get(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, parent, name, inode) in rows {
        if control.stopped().is_some() {
            return Ok(());
        }
        if seen.insert(inode as u64, ()).is_some() {
            continue;
        }
        let Some(dir) = dirs.get(parent) else {
            continue;
        };
        let work = Work {
            id,
            dir,
            name,
            task: Task::Confirm,
        };
        if !feed.push(work) {
            break;
        }
    }
    Ok(())
}
