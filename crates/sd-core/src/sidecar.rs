//! Sidecars: what is derived from a content — thumbnails, media metadata, extracted text — made
//! in the background for the content of deep locations and kept once per content in the
//! library (`layout.rs`), never next to the user's files.
//!
//! The content phase of an index job queues contents of interesting kinds in the intelligence
//! queue; when an index job of a deep location ends, [`after_index`] starts (or nudges) the one
//! sidecar job of the library, a [`JobKind`] like any other: durable, paused and cancelled like
//! the rest, resumed after a crash. Its work is "queued contents with a file in a deep
//! location", and a content's rows are committed in the transaction that takes it off the queue,
//! so a resumed job redoes at most the contents in flight (their files are overwritten whole).
//! It runs at the lowest priority: its threads are `SCHED_IDLE` with idle I/O priority, and
//! they wait while another job of the library runs, so an index or a copy is never slowed.
//!
//! Architecture Invariant: sidecars are written only under `<library>/sidecars/`, whole (temp →
//! fsync → rename) before their rows; user files are only read. A decoder runs under limits
//! (dimensions, memory, time) and a failure is a `failed` row with its reason, never a failed
//! job.

mod layout;
mod make;
pub mod picture;
pub mod text;
pub mod tools;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, bounded};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::control::{Control, JobState, Stop};
use crate::filetype::ContentKind;
use crate::library::Library;
use crate::location::row::{self as location, IndexMode};
use crate::names::JsonPath;
use crate::runner::{self, End, JobKind};
use crate::store::now_ms;
use crate::{Error, Result};
pub use layout::{Layout, storage_uuid};
use make::{Outcome, Wants, Work};
pub use tools::Tools;

/// The version of each generator; a row made by an older one is remade lazily.
pub const GENERATOR: [(&str, i64); 3] = [("thumbnail", 1), ("metadata", 1), ("text", 1)];
/// The sidecar kinds.
pub const KINDS: [&str; 3] = ["thumbnail", "metadata", "text"];

/// A row's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ready,
    Failed,
    Unsupported,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Failed => "failed",
            Status::Unsupported => "unsupported",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "ready" => Status::Ready,
            "failed" => Status::Failed,
            _ => Status::Unsupported,
        }
    }
}

/// Media metadata of a content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Media {
    /// As displayed (EXIF orientation applied).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// When the picture was taken, nanoseconds since the epoch.
    pub taken_at: Option<i64>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub lens: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// EXIF orientation, 1–8.
    pub orientation: Option<u32>,
}

/// What the sidecar job was started for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SidecarParams {
    /// In words: after indexing a location, regeneration asked, at start-up.
    pub reason: String,
}

/// One content the job could not make a sidecar for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Failure {
    pub path: JsonPath,
    pub kind: String,
    pub reason: String,
}

/// Progress of a sidecar job; also its result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SidecarProgress {
    /// Contents to handle in this job (done + waiting).
    pub total: u64,
    /// Contents handled (or deferred).
    pub done: u64,
    /// Thumbnail files written.
    pub thumbnails: u64,
    /// Contents whose metadata was read.
    pub metadata: u64,
    /// Contents whose text went into the full-text index.
    pub texts: u64,
    /// Sidecars that failed (corrupt, truncated, over a limit) or are unsupported.
    pub failed: u64,
    pub unsupported: u64,
    /// Contents left queued: their file was gone or had changed.
    pub deferred: u64,
    /// Contents whose sidecars were removed (no file has that content any more).
    pub removed: u64,
    pub bytes_written: u64,
    pub ms: u64,
    /// Contents already handled when this run picked the job up after a stop.
    pub resumed_after: Option<u64>,
    /// The first failures, with reasons.
    pub failures: Vec<Failure>,
}

const MAX_FAILURES: usize = 20;

/// The sidecar job kind: drains the intelligence queue for deep locations and collects the
/// sidecars of contents no file has any more.
pub struct SidecarJob;

impl JobKind for SidecarJob {
    const KIND: &'static str = "sidecar";
    const TAG: &'static str = "sidecar";
    type Params = SidecarParams;
    type Progress = SidecarProgress;

    fn had_started(p: &SidecarProgress) -> bool {
        p.done > 0 || p.removed > 0
    }

    fn run(
        lib: &Arc<Library>,
        id: i64,
        _params: &SidecarParams,
        control: &Control,
        progress: &(dyn Fn(&SidecarProgress, bool) + Sync),
    ) -> Result<std::result::Result<Option<String>, Stop>> {
        let sched = lib.extension::<Sched>();
        sched.lock().active = Some(id);
        let out = run(lib, id, control, progress);
        let mut s = sched.lock();
        if s.active == Some(id) {
            s.active = None;
        }
        out.map(|r| r.map(|()| None))
    }

    fn finish(_tx: &rusqlite::Transaction<'_>, _end: &End<'_, SidecarParams>) -> Result<()> {
        Ok(())
    }
}

/// Which sidecar job of a library runs, and whether work arrived while it ran.
#[derive(Default)]
struct Sched(Mutex<SchedState>);

#[derive(Default)]
struct SchedState {
    active: Option<i64>,
    /// Work was queued while `active` ran: it looks again before it ends.
    pending: bool,
}

impl Sched {
    fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Lowers the calling thread to the idle CPU and I/O classes: it runs only when nothing else
/// wants the processor or the disk.
pub(crate) fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives the
    // call. Lowering one's own policy needs no privilege; a refusal changes nothing.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
    // IOPRIO_WHO_PROCESS (1), who = 0 (this thread), IOPRIO_CLASS_IDLE (3) << IOPRIO_CLASS_SHIFT (13).
    // SAFETY: ioprio_set takes three integers and no memory; a refusal changes nothing.
    unsafe {
        libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
    }
}

/// Contents of these kinds are queued for sidecars.
fn wanted_kinds() -> String {
    ContentKind::ALL
        .into_iter()
        .filter(|k| k.wants_intelligence())
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL: the current generator version of the row kind in `col`.
fn generator_case(col: &str) -> String {
    let arms: String = GENERATOR
        .iter()
        .map(|(k, v)| format!(" WHEN '{k}' THEN {v}"))
        .collect();
    format!("(CASE {col}{arms} ELSE 0 END)")
}

/// SQL condition: content `c.id` has a file in a deep location.
const IN_DEEP: &str = "EXISTS (SELECT 1 FROM entry_content ec JOIN entries e ON e.id = ec.entry_id
     JOIN locations l ON l.id = e.location_id WHERE ec.content_id = c.id AND l.mode = 'deep')";

/// Whether the sidecar job has anything to do: sidecars to collect, or queued contents of a
/// deep location.
fn has_work(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM sidecar_gc) OR EXISTS (
               SELECT 1 FROM intelligence_queue q JOIN content_identities c ON c.id = q.content_id
                WHERE {IN_DEEP})"
        ),
        [],
        |r| r.get(0),
    )?)
}

/// Starts the library's sidecar job when there is work for it, or tells the running one to
/// look again before it ends. Returns the job's id, if there is one now.
pub fn kick(lib: &Arc<Library>, reason: &str) -> Result<Option<i64>> {
    let sched = lib.extension::<Sched>();
    let mut s = sched.lock();
    if let Some(id) = s.active {
        s.pending = true;
        return Ok(Some(id));
    }
    let conn = lib.reader()?;
    let unfinished: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, state FROM jobs WHERE kind = ?1 AND state IN ('queued', 'running', 'paused')
              ORDER BY id DESC LIMIT 1",
            [SidecarJob::KIND],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, state)) = unfinished {
        // A paused job picks everything up when resumed; a queued one just needs its thread.
        if state != JobState::Paused.as_str() {
            runner::start(lib, id)?;
            s.active = Some(id);
        }
        return Ok(Some(id));
    }
    if !has_work(&conn)? {
        return Ok(None);
    }
    let params = SidecarParams {
        reason: reason.to_owned(),
    };
    let id = lib
        .writer
        .transaction(move |tx| runner::insert::<SidecarJob>(tx, &params, &Default::default()))?;
    s.active = Some(id);
    drop(s);
    runner::start(lib, id)?;
    Ok(Some(id))
}

/// Called when an index job of `location_id` ended: its deep contents may wait for sidecars,
/// and files it removed may have left sidecars no file needs.
pub fn after_index(lib: &Arc<Library>, location_id: i64) -> Result<Option<i64>> {
    let deep = location::get(lib, location_id).is_ok_and(|l| l.mode == IndexMode::Deep);
    let gc: bool =
        lib.reader()?
            .query_row("SELECT EXISTS (SELECT 1 FROM sidecar_gc)", [], |r| r.get(0))?;
    if !deep && !gc {
        return Ok(None);
    }
    kick(lib, &format!("after indexing location {location_id}"))
}

/// At start-up: sidecars made by an older generator, left to collect, or queued.
pub fn at_open(lib: &Arc<Library>) -> Result<Option<i64>> {
    let conn = lib.reader()?;
    let outdated: bool = conn.query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM sidecars s WHERE s.generator < {})",
            generator_case("s.kind")
        ),
        [],
        |r| r.get(0),
    )?;
    if outdated {
        requeue(lib)?;
    }
    kick(lib, "at start-up")
}

/// Queues the contents of deep locations that lack their sidecars or have outdated ones (made by
/// an older generator, or asked to be regenerated).
fn requeue(lib: &Library) -> Result<u64> {
    let sql = format!(
        "INSERT OR IGNORE INTO intelligence_queue (content_id, kind, queued_at)
         SELECT c.id, c.kind, ?1 FROM content_identities c
          WHERE c.kind IN ({})
            AND (NOT EXISTS (SELECT 1 FROM sidecars s WHERE s.content_id = c.id)
                 OR EXISTS (SELECT 1 FROM sidecars s WHERE s.content_id = c.id AND s.generator < {}))
            AND {IN_DEEP}",
        wanted_kinds(),
        generator_case("s.kind")
    );
    lib.writer
        .run(move |c| Ok(c.execute(&sql, [now_ms()])? as u64))
}

/// Reads `SPACEDRIVE_DEBUG_THROTTLE_MS` (see `index::debug_throttle`): one content per commit
/// and a sleep after each, so crash tests can kill the job mid-way.
fn debug_throttle() -> Option<Duration> {
    std::env::var("SPACEDRIVE_DEBUG_THROTTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

fn run(
    lib: &Arc<Library>,
    id: i64,
    control: &Control,
    progress: &(dyn Fn(&SidecarProgress, bool) + Sync),
) -> Result<std::result::Result<(), Stop>> {
    let started = Instant::now();
    let layout = Layout::of(lib);
    let swept = layout.sweep_temporaries();
    if swept > 0 {
        tracing::info!(swept, "removed temporaries a stopped sidecar job left");
    }
    let tools = Tools::detect();
    let stored = runner::row(&lib.reader()?, id)?.progress;
    let mut p: SidecarProgress = serde_json::from_str(&stored).unwrap_or_default();
    if SidecarJob::had_started(&p) {
        p.resumed_after = Some(p.done);
    }
    let ms_before = p.ms;
    loop {
        if let Err(stop) = control.check() {
            return Ok(Err(stop));
        }
        collect(lib, &layout, &mut p)?;
        requeue(lib)?;
        let waiting = count_work(&lib.reader()?)?;
        p.total = p.done + waiting;
        progress(&p, true);
        if waiting > 0 {
            let stopped = drain(lib, id, &layout, &tools, control, &mut p, progress)?;
            p.ms = ms_before + started.elapsed().as_millis() as u64;
            save(lib, id, &p)?;
            if let Err(stop) = stopped {
                return Ok(Err(stop));
            }
        }
        let sched = lib.extension::<Sched>();
        let mut s = sched.lock();
        if s.pending {
            s.pending = false;
            continue;
        }
        // Ending: a kick from now on starts a new job.
        s.active = None;
        break;
    }
    p.ms = ms_before + started.elapsed().as_millis() as u64;
    save(lib, id, &p)?;
    progress(&p, true);
    Ok(Ok(()))
}

fn save(lib: &Library, id: i64, p: &SidecarProgress) -> Result<()> {
    let json = serde_json::to_string(p)?;
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE jobs SET progress = ?2 WHERE id = ?1",
            params![id, json],
        )?;
        Ok(())
    })
}

fn count_work(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        &format!(
            "SELECT count(*) FROM intelligence_queue q JOIN content_identities c ON c.id = q.content_id
              WHERE {IN_DEEP}"
        ),
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Removes the sidecars of contents no file has any more: files first, then rows, so a crash
/// in between only leaves rows that the next pass removes.
fn collect(lib: &Library, layout: &Layout, p: &mut SidecarProgress) -> Result<()> {
    loop {
        let ids: Vec<(i64, bool)> = lib
            .reader()?
            .prepare(
                "SELECT g.content_id, EXISTS (SELECT 1 FROM entry_content ec WHERE ec.content_id = g.content_id)
                   FROM sidecar_gc g LIMIT 1000",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        let mut gone = Vec::new();
        for (cid, has_files) in &ids {
            if !has_files {
                layout
                    .remove_content(*cid)
                    .map_err(|e| Error::io(layout.content_dir(*cid), e))?;
                gone.push(*cid);
            }
        }
        p.removed += gone.len() as u64;
        let now = now_ms();
        lib.writer.transaction(move |tx| {
            for (cid, _) in &ids {
                tx.execute("DELETE FROM sidecar_gc WHERE content_id = ?1", [cid])?;
            }
            for cid in &gone {
                // Its files are gone: its rows go too. A file that got this content meanwhile
                // has it made again.
                remove_rows(tx, *cid)?;
                tx.execute(
                    "INSERT OR IGNORE INTO intelligence_queue (content_id, kind, queued_at)
                     SELECT id, kind, ?2 FROM content_identities c WHERE id = ?1
                        AND EXISTS (SELECT 1 FROM entry_content ec WHERE ec.content_id = c.id)",
                    params![cid, now],
                )?;
            }
            Ok(())
        })?;
    }
}

fn remove_rows(tx: &rusqlite::Transaction<'_>, cid: i64) -> Result<()> {
    tx.execute("DELETE FROM sidecars WHERE content_id = ?1", [cid])?;
    tx.execute("DELETE FROM media WHERE content_id = ?1", [cid])?;
    tx.execute("DELETE FROM content_text WHERE rowid = ?1", [cid])?;
    Ok(())
}

/// Another job of this library is running (not paused): sidecar work waits.
fn others_running(lib: &Library, me: i64) -> bool {
    runner::active_others(lib, me)
}

/// One queued content, with where to read it, or why it cannot be read now.
fn next_work(
    conn: &Connection,
    layout_locs: &HashMap<i64, location::Location>,
    after: i64,
    limit: usize,
) -> Result<Vec<std::result::Result<Work, i64>>> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT c.id, c.kind, c.mime, c.size FROM intelligence_queue q
           JOIN content_identities c ON c.id = q.content_id
          WHERE q.content_id > ?1 AND {IN_DEEP} ORDER BY q.content_id LIMIT ?2"
    ))?;
    let rows: Vec<(i64, String, Option<String>, i64)> = q
        .query_map(params![after, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (cid, kind, mime, size) in rows {
        let kind = ContentKind::parse(&kind).unwrap_or(ContentKind::Unknown);
        let Some(path) = readable_path(conn, layout_locs, cid)? else {
            out.push(Err(cid));
            continue;
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut wants = make::applicable(kind, mime.as_deref(), &ext);
        // Kinds whose rows are up to date are not made again.
        let mut have = conn.prepare_cached(
            "SELECT kind, min(generator) FROM sidecars WHERE content_id = ?1 GROUP BY kind",
        )?;
        for row in have.query_map([cid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (k, g) = row?;
            if g >= make::generator(&k) {
                match k.as_str() {
                    "thumbnail" => wants.thumbnail = false,
                    "metadata" => wants.metadata = false,
                    "text" => wants.text = false,
                    _ => {}
                }
            }
        }
        out.push(Ok(Work {
            content_id: cid,
            kind,
            mime,
            size: size as u64,
            path,
            wants,
        }));
    }
    Ok(out)
}

/// The path of a file with content `cid` in an online location, deep ones first.
fn readable_path(
    conn: &Connection,
    locs: &HashMap<i64, location::Location>,
    cid: i64,
) -> Result<Option<PathBuf>> {
    let mut q = conn.prepare_cached(
        "SELECT e.id, e.location_id FROM entry_content ec JOIN entries e ON e.id = ec.entry_id
          WHERE ec.content_id = ?1 LIMIT 16",
    )?;
    let mut cands: Vec<(i64, i64)> = q
        .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    cands.sort_by_key(|(_, l)| locs.get(l).is_none_or(|l| l.mode != IndexMode::Deep));
    for (entry, loc) in cands {
        let Some(l) = locs.get(&loc).filter(|l| l.online) else {
            continue;
        };
        if let Some(p) = crate::tree::entry_path(conn, l.root_entry_id, &l.path.0, entry)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Handles every queued content of the deep locations: a producer reads the queue in content
/// order, workers make the sidecars (one content each at a time), this thread commits them in
/// batches with the job's progress.
fn drain(
    lib: &Arc<Library>,
    id: i64,
    layout: &Layout,
    tools: &Tools,
    control: &Control,
    p: &mut SidecarProgress,
    progress: &(dyn Fn(&SidecarProgress, bool) + Sync),
) -> Result<std::result::Result<(), Stop>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (work_tx, work_rx) = bounded::<Work>(threads * 2);
    let (out_tx, out_rx) = bounded::<Outcome>(threads * 4);
    let throttle = debug_throttle();
    let db = lib.db();
    std::thread::scope(|s| -> Result<std::result::Result<(), Stop>> {
        let producer_out = out_tx.clone();
        let producer = std::thread::Builder::new()
            .name("sd-sidecar-queue".into())
            .spawn_scoped(s, move || -> Result<()> {
                let conn = db.reader()?;
                let locs: HashMap<i64, location::Location> = location::list_with(&conn)?
                    .into_iter()
                    .map(|l| (l.id, l))
                    .collect();
                let mut after = i64::MIN;
                loop {
                    let batch = next_work(&conn, &locs, after, 64)?;
                    if batch.is_empty() {
                        return Ok(());
                    }
                    for w in batch {
                        if control.stopped().is_some() {
                            return Ok(());
                        }
                        let sent = match w {
                            Ok(w) => {
                                after = w.content_id;
                                work_tx.send(w).is_ok()
                            }
                            Err(cid) => {
                                after = cid;
                                producer_out
                                    .send(Outcome::Deferred {
                                        content_id: cid,
                                        reason:
                                            "no file with this content can be read now (offline?)"
                                                .into(),
                                    })
                                    .is_ok()
                            }
                        };
                        if !sent {
                            return Ok(());
                        }
                    }
                }
            })
            .map_err(|e| Error::io("<sidecar queue thread>", e))?;
        for i in 0..threads {
            let (rx, tx) = (work_rx.clone(), out_tx.clone());
            let lib = lib.clone();
            std::thread::Builder::new()
                .name(format!("sd-sidecar-{i}"))
                .spawn_scoped(s, move || {
                    lower_priority();
                    for work in rx {
                        // Lowest priority: wait while an index or a copy runs.
                        while others_running(&lib, id) && control.stopped().is_none() {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        if control.check().is_err() {
                            return;
                        }
                        let out = if work.wants.any() {
                            make::guarded(work, layout, tools, picture::Limits::default())
                        } else {
                            Outcome::Made {
                                content_id: work.content_id,
                                path: work.path,
                                rows: Vec::new(),
                                media: None,
                                text: None,
                                bytes_written: 0,
                            }
                        };
                        if tx.send(out).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| Error::io("<sidecar thread>", e))?;
        }
        drop(work_rx);
        drop(out_tx);
        let committed = commit_loop(lib, id, &out_rx, control, throttle, p, progress);
        drop(out_rx);
        let produced = producer
            .join()
            .map_err(|_| Error::Invalid("the sidecar queue reader panicked".into()))?;
        committed?;
        produced?;
        Ok(match control.stopped() {
            Some(stop) => Err(stop),
            None => Ok(()),
        })
    })
}

/// Commits outcomes in batches (32 contents or half a second; one under the debug throttle),
/// each with the job's progress.
fn commit_loop(
    lib: &Arc<Library>,
    id: i64,
    rx: &crossbeam_channel::Receiver<Outcome>,
    control: &Control,
    throttle: Option<Duration>,
    p: &mut SidecarProgress,
    progress: &(dyn Fn(&SidecarProgress, bool) + Sync),
) -> Result<()> {
    let mut batch = Vec::new();
    let mut since = Instant::now();
    let commit = |batch: Vec<Outcome>, p: &mut SidecarProgress| -> Result<()> {
        let snapshot = p.clone();
        let after = lib.writer.transaction(move |tx| {
            let mut p = snapshot;
            for o in batch {
                apply(tx, o, &mut p)?;
            }
            tx.execute(
                "UPDATE jobs SET progress = ?2 WHERE id = ?1",
                params![id, serde_json::to_string(&p)?],
            )?;
            Ok(p)
        })?;
        *p = after;
        progress(p, false);
        if let Some(t) = throttle {
            std::thread::sleep(t);
        }
        Ok(())
    };
    loop {
        if control.check().is_err() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(o) => {
                batch.push(o);
                if batch.len() >= 32
                    || since.elapsed() >= Duration::from_millis(500)
                    || throttle.is_some()
                {
                    commit(std::mem::take(&mut batch), p)?;
                    since = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !batch.is_empty() {
                    commit(std::mem::take(&mut batch), p)?;
                    since = Instant::now();
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return if batch.is_empty() {
                    Ok(())
                } else {
                    commit(batch, p)
                };
            }
        }
    }
}

/// Writes one outcome: its rows, metadata and text, and takes the content off the queue.
fn apply(tx: &rusqlite::Transaction<'_>, o: Outcome, p: &mut SidecarProgress) -> Result<()> {
    match o {
        Outcome::Deferred { content_id, reason } => {
            tracing::debug!(content_id, reason, "sidecars deferred");
            p.done += 1;
            p.deferred += 1;
        }
        Outcome::Made {
            content_id,
            path,
            rows,
            media,
            text,
            bytes_written,
        } => {
            store_made(tx, content_id, &rows, media, text)?;
            tx.execute(
                "DELETE FROM intelligence_queue WHERE content_id = ?1",
                [content_id],
            )?;
            p.done += 1;
            p.bytes_written += bytes_written;
            let mut failed_once = false;
            for r in &rows {
                match (r.status, r.kind) {
                    (Status::Ready, "thumbnail") => p.thumbnails += 1,
                    (Status::Ready, "metadata") => p.metadata += 1,
                    (Status::Ready, "text") => p.texts += 1,
                    (Status::Ready, _) => {}
                    (Status::Failed, _) => {
                        p.failed += 1;
                        if !failed_once && p.failures.len() < MAX_FAILURES {
                            failed_once = true;
                            p.failures.push(Failure {
                                path: JsonPath(path.clone()),
                                kind: r.kind.to_owned(),
                                reason: r.reason.clone().unwrap_or_default(),
                            });
                        }
                    }
                    (Status::Unsupported, _) => p.unsupported += 1,
                }
            }
        }
    }
    Ok(())
}

/// Replaces a content's rows of the kinds in `rows`, its media (`Some`) and its text (`Some`).
/// A content no file has any more is marked for collection (its files were just written).
fn store_made(
    tx: &rusqlite::Transaction<'_>,
    cid: i64,
    rows: &[make::Row],
    media: Option<Option<Media>>,
    text: Option<Option<String>>,
) -> Result<()> {
    let now = now_ms();
    let kinds: HashSet<&str> = rows.iter().map(|r| r.kind).collect();
    for k in &kinds {
        tx.execute(
            "DELETE FROM sidecars WHERE content_id = ?1 AND kind = ?2",
            params![cid, k],
        )?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO sidecars (content_id, kind, variant, status, reason, ext, size, width, height, generator, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for r in rows {
        ins.execute(params![
            cid,
            r.kind,
            r.variant,
            r.status.as_str(),
            r.reason,
            r.ext,
            r.size as i64,
            r.width,
            r.height,
            make::generator(r.kind),
            now
        ])?;
    }
    if let Some(m) = media {
        tx.execute("DELETE FROM media WHERE content_id = ?1", [cid])?;
        if let Some(m) = m {
            tx.execute(
                "INSERT INTO media (content_id, width, height, taken_at, make, model, lens, latitude, longitude, orientation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![cid, m.width, m.height, m.taken_at, m.make, m.model, m.lens, m.latitude, m.longitude, m.orientation],
            )?;
        }
    }
    if let Some(t) = text {
        tx.execute("DELETE FROM content_text WHERE rowid = ?1", [cid])?;
        if let Some(t) = t {
            tx.execute(
                "INSERT INTO content_text (rowid, body) VALUES (?1, ?2)",
                params![cid, t],
            )?;
        }
    }
    tx.execute(
        "INSERT OR IGNORE INTO sidecar_gc (content_id)
         SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM entry_content WHERE content_id = ?1)",
        [cid],
    )?;
    Ok(())
}

/// One sidecar of a content, as `file info` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SidecarView {
    pub kind: String,
    pub variant: String,
    pub status: Status,
    pub reason: Option<String>,
    /// The file, for kinds that have one and are ready.
    pub path: Option<JsonPath>,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub generator: i64,
    /// Made by an older generator: remade at the next sidecar job or on demand.
    pub outdated: bool,
}

/// The sidecars and media metadata of content `cid`.
pub fn of_content(
    conn: &Connection,
    lib: &Library,
    cid: i64,
) -> Result<(Vec<SidecarView>, Option<Media>)> {
    let layout = Layout::of(lib);
    let mut q = conn.prepare(
        "SELECT kind, variant, status, reason, ext, size, width, height, generator FROM sidecars
          WHERE content_id = ?1 ORDER BY kind, size",
    )?;
    let views = q
        .query_map([cid], |r| {
            let kind: String = r.get(0)?;
            let variant: String = r.get(1)?;
            let status = Status::parse(&r.get::<_, String>(2)?);
            let ext: Option<String> = r.get(4)?;
            let generator: i64 = r.get(8)?;
            Ok(SidecarView {
                path: ext
                    .filter(|_| status == Status::Ready)
                    .map(|e| JsonPath(layout.file(cid, &kind, &variant, &e))),
                outdated: generator < make::generator(&kind),
                kind,
                variant,
                status,
                reason: r.get(3)?,
                size: r.get::<_, i64>(5)? as u64,
                width: r.get(6)?,
                height: r.get(7)?,
                generator,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let media = conn
        .query_row(
            "SELECT width, height, taken_at, make, model, lens, latitude, longitude, orientation
               FROM media WHERE content_id = ?1",
            [cid],
            |r| {
                Ok(Media {
                    width: r.get(0)?,
                    height: r.get(1)?,
                    taken_at: r.get(2)?,
                    make: r.get(3)?,
                    model: r.get(4)?,
                    lens: r.get(5)?,
                    latitude: r.get(6)?,
                    longitude: r.get(7)?,
                    orientation: r.get(8)?,
                })
            },
        )
        .optional()?;
    Ok((views, media))
}

/// `spacedrive thumb`: the thumbnail of an indexed file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Thumbnail {
    pub path: JsonPath,
    pub variant: String,
    pub width: u32,
    pub height: u32,
    /// Made now, on demand (it was missing or outdated).
    pub generated: bool,
    /// The file is sealed with the library's key (an encrypted library): [`read_thumbnail`]
    /// opens it; other programs cannot.
    pub sealed: bool,
}

/// The WebP bytes of a thumbnail [`thumbnail`] returned (opened, in an encrypted library).
pub fn read_thumbnail(lib: &Library, thumb: &Thumbnail) -> Result<Vec<u8>> {
    Layout::of(lib)
        .read(&thumb.path.0)
        .map_err(|e| Error::io(&thumb.path.0, e))
}

/// A thumbnail's row: status, reason, generator, width, height.
type ThumbRow = (Status, Option<String>, i64, Option<u32>, Option<u32>);

/// The variant that serves a thumbnail of `size` px: the smallest at least that large.
pub fn variant_for(size: u32) -> (&'static str, u32) {
    picture::VARIANTS
        .into_iter()
        .find(|(_, s)| *s >= size)
        .unwrap_or(picture::VARIANTS[picture::VARIANTS.len() - 1])
}

/// The path of the thumbnail of the indexed file at `path`, at least `size` px on its longest
/// side where the picture is that large; made now when missing or outdated.
pub fn thumbnail(lib: &Library, path: &std::path::Path, size: u32) -> Result<Thumbnail> {
    let (loc, entry) = crate::query::resolve(lib, path)?;
    let conn = lib.reader()?;
    let content: Option<(i64, String, Option<String>, i64)> = conn
        .query_row(
            "SELECT c.id, c.kind, c.mime, c.size FROM entry_content ec
               JOIN content_identities c ON c.id = ec.content_id WHERE ec.entry_id = ?1",
            [entry],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((cid, kind, mime, csize)) = content else {
        return Err(Error::Invalid(format!(
            "{} has no content identity yet (empty, or in a shallow location, or its index job has not reached it)",
            path.display()
        )));
    };
    let (variant, _) = variant_for(size);
    let layout = Layout::of(lib);
    let current = make::generator("thumbnail");
    let row = |conn: &Connection| -> Result<Option<ThumbRow>> {
        Ok(conn
            .query_row(
                "SELECT status, reason, generator, width, height FROM sidecars
                  WHERE content_id = ?1 AND kind = 'thumbnail' AND variant = ?2",
                params![cid, variant],
                |r| {
                    Ok((
                        Status::parse(&r.get::<_, String>(0)?),
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                },
            )
            .optional()?)
    };
    let file = layout.file(cid, "thumbnail", variant, "webp");
    let answer = |w: Option<u32>, h: Option<u32>, generated: bool| Thumbnail {
        path: JsonPath(file.clone()),
        variant: variant.to_owned(),
        width: w.unwrap_or(0),
        height: h.unwrap_or(0),
        generated,
        sealed: layout.sealed(),
    };
    match row(&conn)? {
        Some((Status::Ready, _, g, w, h)) if g >= current && file.is_file() => {
            return Ok(answer(w, h, false));
        }
        Some((status, reason, g, _, _)) if g >= current && status != Status::Ready => {
            return Err(Error::Invalid(format!(
                "no thumbnail for {}: {} ({})",
                path.display(),
                reason.unwrap_or_default(),
                status.as_str()
            )));
        }
        _ => {}
    }
    // Make it now, from this file.
    let file_path = crate::tree::entry_path(&conn, loc.root_entry_id, &loc.path.0, entry)?
        .ok_or_else(|| Error::NotFound(format!("{} is not in the index", path.display())))?;
    let kind = ContentKind::parse(&kind).unwrap_or(ContentKind::Unknown);
    let ext = file_path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !make::applicable(kind, mime.as_deref(), &ext).thumbnail {
        return Err(Error::Invalid(format!(
            "no thumbnail for {}: {} content has none",
            path.display(),
            kind.as_str()
        )));
    }
    let work = Work {
        content_id: cid,
        kind,
        mime,
        size: csize as u64,
        path: file_path,
        wants: Wants {
            thumbnail: true,
            ..Wants::default()
        },
    };
    match make::guarded(work, &layout, &Tools::detect(), picture::Limits::default()) {
        Outcome::Deferred { reason, .. } => Err(Error::Invalid(format!(
            "cannot make a thumbnail of {}: {reason}",
            path.display()
        ))),
        Outcome::Made { rows, .. } => {
            let mine = rows.iter().find(|r| r.variant == variant).cloned();
            lib.writer
                .transaction(move |tx| store_made(tx, cid, &rows, None, None))?;
            match mine {
                Some(r) if r.status == Status::Ready => Ok(answer(r.width, r.height, true)),
                Some(r) => Err(Error::Invalid(format!(
                    "no thumbnail for {}: {} ({})",
                    path.display(),
                    r.reason.unwrap_or_default(),
                    r.status.as_str()
                ))),
                None => Err(Error::Invalid(format!(
                    "no thumbnail for {}",
                    path.display()
                ))),
            }
        }
    }
}

/// Counts of one kind and status.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Count {
    pub kind: String,
    pub status: Status,
    /// Sidecars (thumbnail variants count one each).
    pub sidecars: u64,
    /// Contents with at least one of them.
    pub contents: u64,
    pub bytes: u64,
}

/// `sidecar status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StatusReport {
    /// Where the files are.
    pub dir: JsonPath,
    pub counts: Vec<Count>,
    /// Contents of deep locations waiting for their sidecars.
    pub queued: u64,
    /// Rows made by an older generator, remade lazily.
    pub outdated: u64,
    /// Outside programs found on this machine (video frames, PDF pages).
    pub tools: Tools,
    /// The sidecar job now running, queued or paused, if any: id and state.
    pub job: Option<(i64, JobState)>,
    pub generators: Vec<(String, i64)>,
}

/// Counts by kind and status, the queue, the tools found and the job.
pub fn status(lib: &Library) -> Result<StatusReport> {
    let conn = lib.reader()?;
    let mut q = conn.prepare(
        "SELECT kind, status, count(*), count(DISTINCT content_id), coalesce(sum(CASE WHEN ext IS NOT NULL THEN size ELSE 0 END), 0)
           FROM sidecars GROUP BY kind, status ORDER BY kind, status",
    )?;
    let counts = q
        .query_map([], |r| {
            Ok(Count {
                kind: r.get(0)?,
                status: Status::parse(&r.get::<_, String>(1)?),
                sidecars: r.get::<_, i64>(2)? as u64,
                contents: r.get::<_, i64>(3)? as u64,
                bytes: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let outdated: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM sidecars s WHERE s.generator < {}",
            generator_case("s.kind")
        ),
        [],
        |r| r.get(0),
    )?;
    let job = conn
        .query_row(
            "SELECT id, state FROM jobs WHERE kind = ?1 AND state IN ('queued', 'running', 'paused')
              ORDER BY id DESC LIMIT 1",
            [SidecarJob::KIND],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?
        .and_then(|(id, s)| JobState::parse(&s).ok().map(|s| (id, s)));
    Ok(StatusReport {
        dir: JsonPath(lib.sidecar_dir()),
        counts,
        queued: count_work(&conn)?,
        outdated: outdated as u64,
        tools: Tools::detect(),
        job,
        generators: GENERATOR
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
    })
}

/// `sidecar regenerate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Regenerated {
    /// Sidecar rows marked to be made again.
    pub marked: u64,
    /// The sidecar job that remakes them.
    pub job: Option<i64>,
}

/// Marks every sidecar (of `kind`, if given) to be made again — failed and unsupported ones
/// too, after a fix or a tool's install — and starts the job that remakes them.
pub fn regenerate(lib: &Arc<Library>, kind: Option<&str>) -> Result<Regenerated> {
    if let Some(k) = kind
        && !KINDS.contains(&k)
    {
        return Err(Error::Invalid(format!(
            "unknown sidecar kind {k:?}; one of {}",
            KINDS.join(", ")
        )));
    }
    let kind = kind.map(str::to_owned);
    let marked = lib.writer.run(move |c| {
        Ok(match &kind {
            Some(k) => c.execute("UPDATE sidecars SET generator = 0 WHERE kind = ?1", [k])?,
            None => c.execute("UPDATE sidecars SET generator = 0", [])?,
        } as u64)
    })?;
    requeue(lib)?;
    let job = kick(lib, "regeneration asked")?;
    Ok(Regenerated { marked, job })
}

/// Entry ids whose content's media metadata passes `f` (confirmed copies only).
pub fn media_matches(conn: &Connection, f: &MediaFilter) -> Result<HashSet<i64>> {
    let mut q = conn.prepare(&format!(
        "SELECT ec.entry_id FROM media m JOIN entry_content ec ON ec.content_id = m.content_id
           JOIN content_identities ci ON ci.id = ec.content_id
          WHERE (?1 IS NULL OR m.taken_at >= ?1) AND (?2 IS NULL OR m.taken_at < ?2)
            AND (?3 IS NULL OR instr(lower(coalesce(m.make, '') || ' ' || coalesce(m.model, '')), lower(?3)) > 0)
            AND (?4 IS NULL OR m.width >= ?4) AND (?5 IS NULL OR m.height >= ?5)
            AND {}",
        crate::copies::CONFIRMED_MEMBER
    ))?;
    let ids = q
        .query_map(
            params![
                f.taken_after,
                f.taken_before,
                f.camera,
                f.min_width,
                f.min_height
            ],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Media filters of a search.
#[derive(Debug, Clone, Default)]
pub struct MediaFilter {
    pub taken_after: Option<i64>,
    pub taken_before: Option<i64>,
    pub camera: Option<String>,
    pub min_width: Option<u32>,
    pub min_height: Option<u32>,
}

/// The full-text query for what a user typed: every word must occur (in any order), a
/// "double-quoted span" as a phrase. Each is quoted for FTS5, so nothing typed is syntax.
pub fn fts_query(text: &str) -> Option<String> {
    let mut terms = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let (term, tail) = match rest
            .strip_prefix('"')
            .and_then(|r| r.find('"').map(|end| (&r[..end], &r[end + 1..])))
        {
            Some((phrase, tail)) if !phrase.trim().is_empty() => (phrase, tail),
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        // Only letters and digits are indexed: a term of punctuation alone matches nothing.
        if term.chars().any(char::is_alphanumeric) {
            terms.push(format!("\"{}\"", term.replace('"', "\"\"")));
        }
        rest = tail;
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Entry ids whose content's text matches `text` (see [`fts_query`]), each with a snippet.
pub fn text_matches(conn: &Connection, text: &str) -> Result<HashMap<i64, String>> {
    let Some(query) = fts_query(text) else {
        return Err(Error::Invalid(
            "--content needs at least one word to look for".into(),
        ));
    };
    let mut q = conn.prepare(&format!(
        "SELECT ec.entry_id, snippet(content_text, 0, '[', ']', '…', 12)
           FROM content_text JOIN entry_content ec ON ec.content_id = content_text.rowid
           JOIN content_identities ci ON ci.id = ec.content_id
          WHERE content_text MATCH ?1 AND {}",
        crate::copies::CONFIRMED_MEMBER
    ))?;
    let hits = q
        .query_map([query], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_is_never_fts_syntax() {
        assert_eq!(
            fts_query(r#"quarterly "net revenue" x*"#).as_deref(),
            Some(r#""quarterly" "net revenue" "x*""#)
        );
        assert_eq!(
            fts_query(r#"a"b OR NOT"#).as_deref(),
            Some(r#""a""b" "OR" "NOT""#)
        );
        assert_eq!(fts_query("  -- ** "), None);
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
             INSERT INTO t (rowid, body) VALUES (1, 'Quarterly revenue grew; résumé attached'), (2, 'nothing');",
        )
        .unwrap();
        let hits = |q: &str| -> Vec<i64> {
            let Some(q) = fts_query(q) else { return vec![] };
            conn.prepare("SELECT rowid FROM t WHERE t MATCH ?1")
                .unwrap()
                .query_map([q], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(hits("\"quarterly revenue\""), [1]);
        assert_eq!(hits("REVENUE resume"), [1]);
        assert_eq!(hits("\"revenue quarterly\""), Vec::<i64>::new());
        assert_eq!(hits("OR AND NEAR( \" *"), Vec::<i64>::new());
        assert_eq!(hits("x\"y"), Vec::<i64>::new());
    }

    #[test]
    fn applicable_kinds() {
        let a = |k, m: Option<&str>, e| make::applicable(k, m, e);
        let img = a(ContentKind::Image, Some("image/jpeg"), "jpg");
        assert!(img.thumbnail && img.metadata && !img.text);
        let pdf = a(ContentKind::Document, Some("application/pdf"), "pdf");
        assert!(pdf.thumbnail && pdf.text && !pdf.metadata);
        let md = a(ContentKind::Text, Some("text/markdown"), "md");
        assert!(!md.thumbnail && md.text && !md.metadata);
        let audio = a(ContentKind::Audio, Some("audio/mpeg"), "mp3");
        assert_eq!(
            audio,
            Wants {
                metadata: true,
                ..Wants::default()
            },
            "a row (unsupported) marks it handled"
        );
        assert_eq!(variant_for(100), ("grid-256", 256));
        assert_eq!(variant_for(512), ("grid-512", 512));
        assert_eq!(variant_for(600), ("detail-1024", 1024));
        assert_eq!(variant_for(5000), ("detail-1024", 1024));
    }
}
