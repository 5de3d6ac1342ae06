//! Running a planned file operation as a job: items in plan order, copies on two worker threads,
//! results committed in batches after the directories they touched were fsynced. A restarted job
//! continues from the first item not recorded as done; a destination that already holds exactly
//! the source's bytes (a copy finished just before a crash) is recognised, not copied again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use super::copy::{self, Capabilities, CopyError, Strategy};
use super::{ConflictPolicy, OpKind, Step, StepOp};
use crate::audit::{self, Outcome};
use crate::control::{Control, Stop, UnknownState};
use crate::library::Library;
use crate::names::{self, JsonPath};
use crate::runner::{End, JobKind};
use crate::{Error, Result};

/// What a file-operation job was asked to do (its `jobs.params`); the items are in `fileop_items`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileOpJob {
    pub op: OpKind,
    pub policy: ConflictPolicy,
    /// The action as the user asked for it, and what it targets (for the audit row).
    pub action: serde_json::Value,
    pub targets: Vec<String>,
    /// Set when this job is an undo: the audit row it reverses.
    pub undoes: Option<i64>,
    pub committed_at: i64,
}

/// Where a file-operation job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileOpPhase {
    #[default]
    Working,
    RemovingSources,
    UpdatingIndex,
    Done,
}

/// Progress and result of a file-operation job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileOpProgress {
    pub op: Option<OpKind>,
    pub phase: FileOpPhase,
    pub steps_total: u64,
    pub steps_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub copied: u64,
    pub renamed: u64,
    pub linked: u64,
    pub dirs_made: u64,
    pub trashed: u64,
    pub deleted: u64,
    pub restored: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Files whose copy was verified (BLAKE3 of source and copy compared).
    pub verified: u64,
    /// Destinations found already complete when the job was resumed (not copied again).
    pub already_done: u64,
    pub sources_removed: u64,
    /// Sources of a move that were copied but not removed (changed meanwhile, or not removable).
    #[serde(default)]
    pub sources_kept: u64,
    pub resumes: u64,
    pub strategies: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

const MAX_ERRORS: usize = 20;

impl FileOpProgress {
    /// What went wrong, in words, when any item failed or a move kept a source.
    pub fn failures(&self) -> Option<String> {
        if self.failed == 0 && self.sources_kept == 0 {
            return None;
        }
        let mut what = Vec::new();
        if self.failed > 0 {
            what.push(format!(
                "{} of {} steps failed",
                self.failed, self.steps_total
            ));
        }
        if self.sources_kept > 0 {
            what.push(format!(
                "{} sources were copied but not removed",
                self.sources_kept
            ));
        }
        let first = self
            .errors
            .first()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default();
        Some(format!("{}{first}", what.join(", ")))
    }
}

/// Writes a plan's steps as a job's items.
pub(crate) fn insert_items(tx: &Transaction<'_>, job: i64, steps: &[Step]) -> Result<()> {
    let mut q = tx.prepare_cached(
        "INSERT INTO fileop_items (job_id, seq, op, src, dst, size, mtime, link_to, overwrite, root, state, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for s in steps {
        let state = if s.op == StepOp::Skip {
            ItemState::Skipped
        } else {
            ItemState::Pending
        };
        q.execute(params![
            job,
            s.seq,
            s.op.as_str(),
            names::to_sql(s.src.0.as_os_str()),
            s.dst.as_ref().map(|d| names::to_value(d.0.as_os_str())),
            s.size as i64,
            s.mtime,
            s.link_to,
            s.overwrite,
            s.root,
            state.as_str(),
            s.note,
        ])?;
    }
    Ok(())
}

/// Where one item of a file-operation job is (`fileop_items.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemState {
    Pending,
    Done,
    /// Done, and (a cross-filesystem move) its source removed.
    SourceRemoved,
    Skipped,
    Failed,
}

impl ItemState {
    const ALL: [ItemState; 5] = [
        ItemState::Pending,
        ItemState::Done,
        ItemState::SourceRemoved,
        ItemState::Skipped,
        ItemState::Failed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Done => "done",
            ItemState::SourceRemoved => "source_removed",
            ItemState::Skipped => "skipped",
            ItemState::Failed => "failed",
        }
    }

    /// The state stored as `s`; a value this build does not know is an error.
    pub(crate) fn parse(s: &str) -> std::result::Result<ItemState, UnknownState> {
        ItemState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState {
                what: "file operation item",
                value: s.to_owned(),
            })
    }

    /// Whether the item's work is done (its destination in place).
    pub(crate) fn is_done(self) -> bool {
        matches!(self, ItemState::Done | ItemState::SourceRemoved)
    }
}

/// One item as the runner holds it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub step: Step,
    pub state: ItemState,
}

pub(crate) fn load_items(conn: &rusqlite::Connection, job: i64) -> Result<Vec<Item>> {
    let mut q = conn.prepare(
        "SELECT seq, op, src, dst, size, mtime, link_to, overwrite, root, state, note
         FROM fileop_items WHERE job_id = ?1 ORDER BY seq",
    )?;
    let rows = q.query_map([job], |r| {
        Ok(Item {
            step: Step {
                seq: r.get(0)?,
                op: StepOp::parse(&r.get::<_, String>(1)?).unwrap_or(StepOp::Skip),
                src: JsonPath(names::from_sql(r.get_ref(2)?)?.into()),
                dst: names::opt_from_sql(r.get_ref(3)?)?.map(|d| JsonPath(d.into())),
                size: r.get::<_, i64>(4)? as u64,
                mtime: r.get(5)?,
                link_to: r.get(6)?,
                overwrite: r.get(7)?,
                root: r.get(8)?,
                note: r.get(10)?,
            },
            state: ItemState::parse(&r.get::<_, String>(9)?).map_err(|e| e.into_sql(9))?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A change to one item, committed with the next batch.
struct Update {
    seq: i64,
    state: ItemState,
    hash: Option<[u8; 32]>,
    note: Option<String>,
    dst: Option<PathBuf>,
}

/// Work for a copy thread.
struct CopyWork {
    seq: i64,
    src: PathBuf,
    dst: PathBuf,
    overwrite: bool,
}

struct CopyDone {
    seq: i64,
    dst: PathBuf,
    result: std::result::Result<(copy::Copied, bool), CopyError>,
}

/// What a copy thread hands the publisher: a verified copy waiting for its name, or a result
/// that needs no naming.
enum Handoff {
    Ready(CopyWork, copy::Staged, copy::Copied),
    Done(CopyDone),
}

/// Whether `dst` holds exactly the bytes hashed as `hash` (`len` bytes).
pub(crate) fn holds(dst: &Path, hash: &[u8; 32], len: u64) -> bool {
    matches!(copy::hash_path(dst), Ok((h, n)) if h == *hash && n == len)
}

/// A copy thread: copies and verifies (unnamed, or into temporary files) and hands the copies to
/// the publisher. It never waits for the disk, so copying overlaps with the syncs. On a resumed
/// job it first looks for a destination an earlier run already placed.
fn copy_worker(
    job: i64,
    resumed: bool,
    caps: Arc<Capabilities>,
    rx: Receiver<CopyWork>,
    tx: Sender<Handoff>,
) {
    let throttle = crate::index::debug_throttle();
    for w in rx {
        if let Some(t) = throttle {
            std::thread::sleep(t); // tests: make a crash land mid-copy
        }
        let handoff = if resumed && !w.overwrite && std::fs::symlink_metadata(&w.dst).is_ok() {
            // Already there: a copy finished just before an interruption, or a file that
            // appeared since the preview. Identical bytes mean it is ours.
            let _ = std::fs::remove_file(copy::temp_path(&w.dst, job, w.seq));
            let result = match copy::hash_path(&w.src) {
                Ok((a, alen)) if holds(&w.dst, &a, alen) => Ok((
                    copy::Copied {
                        hash: a,
                        bytes: alen,
                        strategy: Strategy::Stream,
                    },
                    true,
                )),
                Ok(_) => Err(CopyError::Exists),
                Err(e) => Err(CopyError::Io(w.src.clone(), e)),
            };
            Handoff::Done(CopyDone {
                seq: w.seq,
                dst: w.dst,
                result,
            })
        } else {
            let tmp = copy::temp_path(&w.dst, job, w.seq);
            match copy::prepare(&w.src, &w.dst, tmp, &caps) {
                Ok((staged, c)) => Handoff::Ready(w, staged, c),
                Err(e) => Handoff::Done(CopyDone {
                    seq: w.seq,
                    dst: w.dst,
                    result: Err(e),
                }),
            }
        };
        if tx.send(handoff).is_err() {
            return;
        }
    }
}

/// A publisher's batch (local copies, and files received from another device) is synced and
/// named once it holds [`staged_max`] files, this many bytes, or this long after its first.
pub(crate) const BATCH_BYTES: u64 = 256 << 20;
pub(crate) const BATCH_WAIT: Duration = Duration::from_millis(500);

/// The publisher: every batch (`batch` files — at most 4,096 —, 256 MiB or half a second) syncs
/// the destination filesystems once, then gives the batch's copies their final names and reports
/// them. A name taken meanwhile by a file with exactly the copy's bytes (ours, or an identical
/// one) counts as already done, as on a resumed job.
fn publisher(rx: Receiver<Handoff>, tx: Sender<CopyDone>, batch: usize) {
    let mut ready: Vec<(CopyWork, copy::Staged, copy::Copied)> = Vec::new();
    let mut bytes = 0u64;
    let mut since = Instant::now();
    loop {
        let next = if ready.is_empty() {
            rx.recv()
                .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(Duration::from_millis(100))
        };
        let open = match next {
            Ok(Handoff::Done(d)) => {
                if tx.send(d).is_err() {
                    return;
                }
                true
            }
            Ok(Handoff::Ready(w, staged, c)) => {
                if ready.is_empty() {
                    since = Instant::now();
                }
                bytes += c.bytes;
                ready.push((w, staged, c));
                true
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => true,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => false,
        };
        let due = ready.len() >= batch || bytes >= BATCH_BYTES || since.elapsed() >= BATCH_WAIT;
        if !ready.is_empty() && (due || !open) {
            sync_filesystems(
                ready
                    .iter()
                    .map(|(w, s, _)| (s.dev, w.dst.parent().unwrap_or(&w.dst))),
            );
            for (w, staged, c) in ready.drain(..) {
                let result = match copy::place(staged, &w.dst, w.overwrite) {
                    Ok(()) => Ok((c, false)),
                    Err(CopyError::Exists) if holds(&w.dst, &c.hash, c.bytes) => Ok((c, true)),
                    Err(e) => Err(e),
                };
                let done = CopyDone {
                    seq: w.seq,
                    dst: w.dst,
                    result,
                };
                if tx.send(done).is_err() {
                    return;
                }
            }
            bytes = 0;
        }
        if !open {
            return;
        }
    }
}

/// Syncs each filesystem (device) once, through the first folder named on it.
pub(crate) fn sync_filesystems<'a>(dirs: impl Iterator<Item = (u64, &'a Path)>) {
    let mut synced: Vec<u64> = Vec::new();
    for (dev, d) in dirs {
        if synced.contains(&dev) {
            continue;
        }
        synced.push(dev);
        if let Err(e) = copy::sync_fs(d) {
            tracing::warn!(dir = %d.display(), error = %e, "syncing a destination");
        }
    }
}

/// Syncs each filesystem holding one of `dirs`, once.
fn sync_dirs<'a>(dirs: impl Iterator<Item = &'a Path>) {
    use std::os::unix::fs::MetadataExt;
    let with_dev: Vec<(u64, &Path)> = dirs
        .filter_map(|d| Some((std::fs::metadata(d).ok()?.dev(), d)))
        .collect();
    sync_filesystems(with_dev.into_iter());
}

/// The state of one run of a job.
struct Runner<'a> {
    lib: &'a Arc<Library>,
    job: i64,
    params: &'a FileOpJob,
    items: Vec<Item>,
    index: HashMap<i64, usize>,
    progress: FileOpProgress,
    pending: Vec<Update>,
    /// Sources renamed to destinations since the last flush, whose entries it re-links.
    renamed: Vec<(PathBuf, PathBuf)>,
    dirty_dirs: BTreeSet<PathBuf>,
    last_dirty: PathBuf,
    last_flush: Instant,
    on_progress: &'a dyn Fn(&FileOpProgress),
    fatal: Option<String>,
    /// Whether an earlier run of this job did some of it (its copies may be in place already).
    resumed: bool,
    /// The step of each of `progress.errors`, so that they read in plan order whichever worker
    /// failed first (an earlier run's errors, whose steps are not kept, stay in front).
    error_steps: Vec<i64>,
}

impl Runner<'_> {
    fn record(&mut self, u: Update) {
        if let Some(&i) = self.index.get(&u.seq) {
            let it = &mut self.items[i];
            it.state = u.state;
            if let Some(d) = &u.dst {
                it.step.dst = Some(JsonPath(d.clone()));
            }
            if matches!(
                u.state,
                ItemState::Done | ItemState::Skipped | ItemState::Failed
            ) {
                self.progress.steps_done += 1;
            }
        }
        self.pending.push(u);
    }

    fn done(&mut self, seq: i64, dirty: &[&Path]) {
        for d in dirty {
            if let Some(p) = d.parent() {
                self.dirty(p);
            }
        }
        self.record(Update {
            seq,
            state: ItemState::Done,
            hash: None,
            note: None,
            dst: None,
        });
    }

    /// Keeps `why` among the job's first errors in step order.
    fn note_error(&mut self, seq: i64, why: &str) {
        let at = self.error_steps.partition_point(|&s| s <= seq);
        if at < MAX_ERRORS {
            self.error_steps.insert(at, seq);
            self.progress.errors.insert(at, why.to_owned());
            self.error_steps.truncate(MAX_ERRORS);
            self.progress.errors.truncate(MAX_ERRORS);
        }
    }

    fn fail(&mut self, seq: i64, why: String) {
        self.progress.failed += 1;
        self.note_error(seq, &why);
        self.record(Update {
            seq,
            state: ItemState::Failed,
            hash: None,
            note: Some(why),
            dst: None,
        });
    }

    fn skip(&mut self, seq: i64, why: String) {
        self.progress.skipped += 1;
        self.record(Update {
            seq,
            state: ItemState::Skipped,
            hash: None,
            note: Some(why),
            dst: None,
        });
    }

    /// Notes a folder whose entries changed (for [`Self::sync_destinations`]); consecutive items
    /// mostly share one, which is then not looked up again.
    fn dirty(&mut self, dir: &Path) {
        if self.last_dirty.as_os_str() != dir.as_os_str() {
            self.dirty_dirs.insert(dir.to_path_buf());
            self.last_dirty = dir.to_path_buf();
        }
    }

    /// Makes every rename and folder made so far durable: one sync per destination filesystem.
    /// Done before a move removes any source and before the job reports completion.
    fn sync_destinations(&mut self) {
        let dirs = std::mem::take(&mut self.dirty_dirs);
        self.last_dirty = PathBuf::new();
        sync_dirs(dirs.iter().map(|d| d.as_path()));
    }

    fn maybe_flush(&mut self) -> Result<()> {
        if self.pending.len() >= 512 || self.last_flush.elapsed() >= Duration::from_millis(250) {
            self.flush()?;
        }
        Ok(())
    }

    /// Records the batch of results (with the job's progress) in one transaction, which also
    /// re-links the entries of the items renamed since the last flush (looked up through one
    /// reader connection first), so an item is recorded done together with its entry's move.
    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending);
        let relinks = super::follow::resolve(self.lib, &std::mem::take(&mut self.renamed));
        let job = self.job;
        let progress = serde_json::to_string(&self.progress)?;
        let relinked = self.lib.writer.transaction(move |tx| {
            let relinked = super::follow::apply(tx, &relinks)?;
            let mut q = tx.prepare_cached(
                "UPDATE fileop_items SET state = ?3, hash = coalesce(?4, hash), note = coalesce(?5, note),
                        dst = coalesce(?6, dst)
                 WHERE job_id = ?1 AND seq = ?2",
            )?;
            for u in &batch {
                q.execute(params![
                    job,
                    u.seq,
                    u.state.as_str(),
                    u.hash.map(|h| h.to_vec()),
                    u.note,
                    u.dst.as_ref().map(|d| names::to_value(d.as_os_str())),
                ])?;
            }
            tx.execute("UPDATE jobs SET progress = ?2 WHERE id = ?1", params![job, progress])?;
            Ok(relinked)
        })?;
        if relinked > 0 {
            self.lib.touch();
        }
        self.last_flush = Instant::now();
        (self.on_progress)(&self.progress);
        Ok(())
    }

    fn strategy(&mut self, s: Strategy) {
        let key = serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *self.progress.strategies.entry(key).or_default() += 1;
    }

    /// A destination that appeared after the preview, resolved by the job's policy.
    fn runtime_conflict(&mut self, seq: i64, dst: &Path) -> Option<(PathBuf, bool)> {
        match self.params.policy {
            ConflictPolicy::Overwrite => Some((dst.to_path_buf(), true)),
            ConflictPolicy::KeepBoth => {
                let planned: std::collections::HashSet<PathBuf> = self
                    .items
                    .iter()
                    .filter_map(|i| i.step.dst.as_ref().map(|d| d.0.clone()))
                    .collect();
                let is_dir = self
                    .index
                    .get(&seq)
                    .and_then(|&i| std::fs::symlink_metadata(&self.items[i].step.src.0).ok())
                    .is_some_and(|m| m.is_dir());
                let p = super::free_name(dst, is_dir, &planned).ok()?;
                Some((p, false))
            }
            ConflictPolicy::Skip | ConflictPolicy::Ask => {
                self.skip(
                    seq,
                    format!("{} appeared after the preview: skipped", dst.display()),
                );
                None
            }
        }
    }

    /// Takes one copy result off the `in_flight` count (an item sent back to the copy threads
    /// stays counted) and records it.
    fn take(&mut self, d: CopyDone, work: &Sender<CopyWork>, in_flight: &mut usize) -> Result<()> {
        *in_flight -= 1;
        if self.copy_result(d, work)? {
            *in_flight += 1;
        }
        Ok(())
    }

    /// Records a copy's result; returns whether the item went back to the copy threads (a
    /// destination that appeared meanwhile, resolved to another name or an overwrite).
    fn copy_result(&mut self, d: CopyDone, work: &Sender<CopyWork>) -> Result<bool> {
        let Some(&i) = self.index.get(&d.seq) else {
            return Ok(false);
        };
        match d.result {
            Ok((c, already)) => {
                if already {
                    self.progress.already_done += 1;
                } else {
                    self.progress.copied += 1;
                    self.progress.verified += 1;
                    self.strategy(c.strategy);
                }
                self.progress.bytes_done += c.bytes;
                self.dirty(d.dst.parent().unwrap_or(&d.dst));
                let changed_dst = self.items[i].step.dst.as_ref().map(|x| x.0.as_os_str())
                    != Some(d.dst.as_os_str());
                self.record(Update {
                    seq: d.seq,
                    state: ItemState::Done,
                    hash: Some(c.hash),
                    note: None,
                    dst: changed_dst.then_some(d.dst),
                });
            }
            Err(CopyError::Exists) => {
                if let Some((to, overwrite)) = self.runtime_conflict(d.seq, &d.dst) {
                    work.send(CopyWork {
                        seq: d.seq,
                        src: self.items[i].step.src.0.clone(),
                        dst: to,
                        overwrite,
                    })
                    .map_err(|_| Error::Invalid("copy threads stopped".into()))?;
                    return Ok(true);
                }
            }
            Err(e) => {
                if e.is_fatal() && self.fatal.is_none() {
                    self.fatal = Some(e.to_string());
                }
                self.fail(d.seq, e.to_string());
            }
        }
        Ok(false)
    }
}

/// Runs (or resumes) file-operation job `job`. `Ok(Err(stop))` when stopped early.
pub(crate) fn run(
    lib: &Arc<Library>,
    job: i64,
    params: &FileOpJob,
    control: &Control,
    on_progress: &dyn Fn(&FileOpProgress),
) -> Result<std::result::Result<FileOpProgress, Stop>> {
    let conn = lib.reader()?;
    let items = load_items(&conn, job)?;
    let stored: Option<String> = conn
        .query_row("SELECT progress FROM jobs WHERE id = ?1", [job], |r| {
            r.get(0)
        })
        .ok();
    drop(conn);
    let mut progress: FileOpProgress = stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let resumed = items
        .iter()
        .any(|i| i.state != ItemState::Pending && i.step.op != StepOp::Skip);
    if progress.op.is_none() {
        progress.op = Some(params.op);
        progress.steps_total = items.len() as u64;
        progress.bytes_total = items
            .iter()
            .filter(|i| {
                matches!(
                    i.step.op,
                    StepOp::Copy | StepOp::Rename | StepOp::Trash | StepOp::Delete
                )
            })
            .map(|i| i.step.size)
            .sum();
        progress.skipped = items
            .iter()
            .filter(|i| i.state == ItemState::Skipped)
            .count() as u64;
        progress.steps_done = progress.skipped;
    } else if resumed {
        progress.resumes += 1;
    }
    let mut items = items;
    if resumed {
        // A rename recorded as done but lost with a power cut (batches are synced before a
        // move removes sources and before completion, not before each record): redo it.
        for it in items.iter_mut().filter(|i| i.state == ItemState::Done) {
            let placed = matches!(
                it.step.op,
                StepOp::Copy | StepOp::Symlink | StepOp::Link | StepOp::Mkdir
            );
            if placed
                && let Some(d) = &it.step.dst
                && std::fs::symlink_metadata(&d.0).is_err()
            {
                it.state = ItemState::Pending;
            }
        }
    }
    let index = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.step.seq, i))
        .collect();
    let locations = super::follow::locations_touched(lib, &items);
    super::follow::hold(lib, &locations);
    let error_steps = vec![i64::MIN; progress.errors.len()];
    let mut r = Runner {
        lib,
        job,
        params,
        items,
        index,
        progress,
        pending: Vec::new(),
        renamed: Vec::new(),
        dirty_dirs: BTreeSet::new(),
        last_dirty: PathBuf::new(),
        last_flush: Instant::now(),
        on_progress,
        fatal: None,
        resumed,
        error_steps,
    };
    let outcome = work(&mut r, control);
    let flushed = r.flush();
    super::follow::release(lib, &locations);
    let stop = match outcome {
        Err(e) => return Err(e),
        Ok(Err(stop)) => Some(stop),
        Ok(Ok(())) => None,
    };
    flushed?;
    // The index follows whatever was done, including by a cancelled job. Items moved across
    // filesystems keep their entries (ids, tags, notes) like renamed ones.
    if params.op == OpKind::Move {
        let moved: Vec<(PathBuf, PathBuf)> = r
            .items
            .iter()
            .filter(|it| {
                it.step.root && it.state == ItemState::SourceRemoved && it.step.op != StepOp::Merge
            })
            .filter_map(|it| Some((it.step.src.0.clone(), it.step.dst.as_ref()?.0.clone())))
            .collect();
        super::follow::relink(lib, &moved);
    }
    if stop != Some(Stop::Shutdown) {
        r.progress.phase = FileOpPhase::UpdatingIndex;
        (r.on_progress)(&r.progress);
        super::follow::update_index(lib, &r.items, params.op, control);
    }
    if let Some(e) = r.fatal.take() {
        return Err(Error::Invalid(e));
    }
    match stop {
        Some(s) => Ok(Err(s)),
        None => {
            r.progress.phase = FileOpPhase::Done;
            Ok(Ok(r.progress))
        }
    }
}

/// How many verified copies may wait for their names at once. Each holds an open file (an
/// unnamed copy has no other handle), in the publisher's batch or on its way there, so this is
/// bounded by the open-file limit, which is first raised to its hard maximum (a desktop session's
/// default soft limit is 1024; the hard one far higher).
pub(crate) fn staged_max() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        // SAFETY: `rlimit` is plain old data; get/setrlimit read and write only the struct.
        let soft = unsafe {
            let mut l: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
                return 64;
            }
            if l.rlim_cur < l.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: l.rlim_max.min(1 << 20),
                    rlim_max: l.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    l.rlim_cur = want.rlim_cur;
                }
            }
            l.rlim_cur
        };
        // Keep 256 for the rest of the daemon; half of what is left for the batch, half for
        // the copies on their way to it.
        (soft.saturating_sub(256) / 2).clamp(16, 4096) as usize
    })
}

const COPY_THREADS: usize = 2;

fn work(r: &mut Runner<'_>, control: &Control) -> Result<std::result::Result<(), Stop>> {
    let caps = Arc::new(Capabilities::default());
    let staged = staged_max();
    let (work_tx, work_rx) = bounded::<CopyWork>(1024);
    // The channel and the batch together hold at most `2 * staged` (+ one per copy thread).
    let (hand_tx, hand_rx) = bounded::<Handoff>(staged);
    let (done_tx, done_rx) = unbounded::<CopyDone>();
    let mut threads: Vec<_> = (0..COPY_THREADS)
        .map(|i| {
            let (c, rx, tx) = (caps.clone(), work_rx.clone(), hand_tx.clone());
            let (job, resumed) = (r.job, r.resumed);
            std::thread::Builder::new()
                .name(format!("sd-copy-{job}-{i}"))
                .spawn(move || copy_worker(job, resumed, c, rx, tx))
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("<copy thread>", e))?;
    drop(hand_tx);
    let publish = std::thread::Builder::new()
        .name(format!("sd-publish-{}", r.job))
        .spawn(move || publisher(hand_rx, done_tx, staged))
        .map_err(|e| Error::io("<publisher thread>", e))?;
    threads.push(publish);
    let stopped = phase_one(r, control, &work_tx, &done_rx);
    let mut in_flight = stopped.as_ref().map(|(n, _)| *n).unwrap_or(0);
    if matches!(stopped, Ok((_, Some(_)))) || r.fatal.is_some() {
        // Stopping: copies not started yet stay pending (the queue is deep so that the copy
        // threads never wait for a checkpoint).
        while work_rx.try_recv().is_ok() {
            in_flight -= 1;
        }
    }
    // Let the copies in flight finish (each is short) so every result is recorded, with
    // checkpoints as they come in.
    while in_flight > 0 {
        let Ok(d) = done_rx.recv() else { break };
        r.take(d, &work_tx, &mut in_flight)?;
        r.maybe_flush()?;
    }
    drop(work_tx);
    for t in threads {
        let _ = t.join();
    }
    let stop = stopped?.1;
    if let Some(s) = stop {
        return Ok(Err(s));
    }
    if r.fatal.is_some() {
        return Ok(Ok(()));
    }
    // Hard links, once the files they point to are in place.
    for i in 0..r.items.len() {
        if r.items[i].step.op == StepOp::Link && r.items[i].state == ItemState::Pending {
            link(r, i);
        }
    }
    // Permanent deletes: children before their folder.
    for i in (0..r.items.len()).rev() {
        if r.items[i].step.op == StepOp::Delete && r.items[i].state == ItemState::Pending {
            if let Err(s) = control.check() {
                return Ok(Err(s));
            }
            delete(r, i);
            r.maybe_flush()?;
        }
    }
    folder_metadata(r);
    r.sync_destinations();
    r.flush()?;
    if r.params.op == OpKind::Move {
        r.progress.phase = FileOpPhase::RemovingSources;
        for i in (0..r.items.len()).rev() {
            if let Err(s) = control.check() {
                return Ok(Err(s));
            }
            remove_source(r, i);
            r.maybe_flush()?;
        }
    }
    Ok(Ok(()))
}

/// Everything but links and deletes, in plan order. Returns copies in flight and a stop, if any.
fn phase_one(
    r: &mut Runner<'_>,
    control: &Control,
    work: &Sender<CopyWork>,
    done: &Receiver<CopyDone>,
) -> Result<(usize, Option<Stop>)> {
    let mut in_flight = 0usize;
    // Folders this run could not make, with why: what goes inside them fails with that cause
    // instead of each item's own "No such file or directory".
    let mut unmade: HashMap<PathBuf, String> = HashMap::new();
    for i in 0..r.items.len() {
        while let Ok(d) = done.try_recv() {
            r.take(d, work, &mut in_flight)?;
        }
        if r.fatal.is_some() {
            return Ok((in_flight, None));
        }
        if let Err(s) = control.check() {
            return Ok((in_flight, Some(s)));
        }
        if r.items[i].state != ItemState::Pending {
            continue;
        }
        let step = r.items[i].step.clone();
        let seq = step.seq;
        let dst = step.dst.as_ref().map(|d| d.0.clone());
        if let Some(d) = &dst
            && let Some(why) = d.parent().and_then(|p| unmade.get(p)).cloned()
        {
            if step.op == StepOp::Mkdir {
                unmade.insert(d.clone(), why.clone());
            }
            let parent = d.parent().unwrap_or(d).display().to_string();
            r.fail(
                seq,
                format!(
                    "{}: not made: its folder {parent} could not be made ({why})",
                    d.display()
                ),
            );
            r.maybe_flush()?;
            continue;
        }
        match (step.op, dst) {
            (StepOp::Mkdir, Some(dst)) => match std::fs::create_dir(&dst) {
                Ok(()) => {
                    r.progress.dirs_made += 1;
                    r.done(seq, &[&dst]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dst.is_dir() => {
                    r.done(seq, &[])
                }
                Err(e) => {
                    let fatal = matches!(
                        e.raw_os_error(),
                        Some(libc::ENOSPC) | Some(libc::EROFS) | Some(libc::EDQUOT)
                    );
                    let why = copy::write_failure(&dst, &e);
                    let msg = format!("{}: {why}", dst.display());
                    if fatal {
                        r.fatal = Some(msg.clone());
                    }
                    unmade.insert(dst, why);
                    r.fail(seq, msg);
                }
            },
            (StepOp::Merge, _) => r.done(seq, &[]),
            (StepOp::Copy, Some(dst)) => {
                // Wait for a free slot while still taking results, so conflicts can re-queue.
                let mut w = CopyWork {
                    seq,
                    src: step.src.0.clone(),
                    dst,
                    overwrite: step.overwrite,
                };
                loop {
                    match work.try_send(w) {
                        Ok(()) => break,
                        Err(crossbeam_channel::TrySendError::Full(back)) => {
                            w = back;
                            if let Ok(d) = done.recv_timeout(Duration::from_millis(50)) {
                                r.take(d, work, &mut in_flight)?;
                                r.maybe_flush()?;
                            }
                        }
                        Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                            return Err(Error::Invalid("copy threads stopped".into()));
                        }
                    }
                }
                in_flight += 1;
            }
            (StepOp::Symlink, Some(dst)) => symlink(r, seq, &step.src.0, &dst, step.overwrite),
            (StepOp::Rename, Some(dst)) => rename(r, i, &step.src.0, &dst, step.overwrite),
            (StepOp::Trash, _) => trash(r, seq, &step.src.0),
            (StepOp::Restore, Some(dst)) => restore(r, seq, &step.src.0, &dst),
            (StepOp::Link | StepOp::Delete, _) => {}
            (op, _) => r.fail(seq, format!("step {seq} ({}) cannot run", op.as_str())),
        }
        r.maybe_flush()?;
    }
    Ok((in_flight, None))
}

fn symlink(r: &mut Runner<'_>, seq: i64, src: &Path, dst: &Path, overwrite: bool) {
    let res = (|| -> std::io::Result<bool> {
        let target = std::fs::read_link(src)?;
        let meta = std::fs::symlink_metadata(src)?;
        if let Ok(t) = std::fs::read_link(dst)
            && t == target
        {
            return Ok(true); // made before an interruption
        }
        let tmp = copy::temp_path(dst, r.job, seq);
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        let _ = copy::set_path_metadata(&tmp, &meta);
        let placed = if overwrite {
            std::fs::rename(&tmp, dst)
        } else {
            copy::rename_noreplace(&tmp, dst)
        };
        if placed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        placed.map(|()| false)
    })();
    match res {
        Ok(already) => {
            if already {
                r.progress.already_done += 1;
            }
            r.done(seq, &[dst]);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => r.skip(
            seq,
            format!("{} appeared after the preview: skipped", dst.display()),
        ),
        Err(e) => r.fail(
            seq,
            format!("{}: {}", dst.display(), copy::write_failure(dst, &e)),
        ),
    }
}

fn rename(r: &mut Runner<'_>, i: usize, src: &Path, dst: &Path, overwrite: bool) {
    let seq = r.items[i].step.seq;
    let res = if overwrite {
        std::fs::rename(src, dst)
    } else {
        copy::rename_noreplace(src, dst)
    };
    match res {
        Ok(()) => {
            r.progress.renamed += 1;
            r.progress.bytes_done += r.items[i].step.size;
            r.strategy(Strategy::Rename);
            r.renamed.push((src.to_path_buf(), dst.to_path_buf()));
            r.done(seq, &[src, dst]);
        }
        // Renamed before an interruption: the source is gone and the destination is there.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(dst).is_ok() =>
        {
            r.progress.already_done += 1;
            r.renamed.push((src.to_path_buf(), dst.to_path_buf()));
            r.done(seq, &[dst]);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Some((to, ow)) = r.runtime_conflict(seq, dst) {
                r.items[i].step.dst = Some(JsonPath(to.clone()));
                r.pending.push(Update {
                    seq,
                    state: ItemState::Pending,
                    hash: None,
                    note: None,
                    dst: Some(to.clone()),
                });
                rename(r, i, src, &to, ow);
            }
        }
        Err(e) => r.fail(seq, format!("{} → {}: {e}", src.display(), dst.display())),
    }
}

fn link(r: &mut Runner<'_>, i: usize) {
    let step = r.items[i].step.clone();
    let Some(dst) = step.dst.map(|d| d.0) else {
        return;
    };
    let target = step
        .link_to
        .and_then(|s| r.index.get(&s).copied())
        .filter(|&t| {
            r.items[t].state == ItemState::Done || r.items[t].state == ItemState::SourceRemoved
        })
        .and_then(|t| r.items[t].step.dst.clone());
    let Some(target) = target else {
        return r.fail(
            step.seq,
            format!(
                "{}: the file it is a hard link of was not copied",
                dst.display()
            ),
        );
    };
    match std::fs::hard_link(&target.0, &dst) {
        Ok(()) => {
            r.progress.linked += 1;
            r.done(step.seq, &[&dst]);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && same_file(&target.0, &dst) => {
            r.progress.already_done += 1;
            r.done(step.seq, &[]);
        }
        Err(e) => r.fail(
            step.seq,
            format!("{}: {}", dst.display(), copy::write_failure(&dst, &e)),
        ),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn delete(r: &mut Runner<'_>, i: usize) {
    let step = r.items[i].step.clone();
    let p = &step.src.0;
    let res = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => {
            r.progress.deleted += 1;
            r.progress.bytes_done += step.size;
            r.done(step.seq, &[p]);
        }
        Err(e) => r.fail(step.seq, format!("{}: {e}", p.display())),
    }
}

fn trash(r: &mut Runner<'_>, seq: i64, p: &Path) {
    let before: std::collections::HashSet<std::ffi::OsString> = trashed_as(p)
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.id)
        .collect();
    if let Err(e) = trash::delete(p) {
        if std::fs::symlink_metadata(p).is_err() {
            return r.fail(seq, format!("{}: no longer exists", p.display()));
        }
        return r.fail(
            seq,
            format!("{}: moving to the trash failed: {e}", p.display()),
        );
    }
    let id = trashed_as(p)
        .unwrap_or_default()
        .into_iter()
        .find(|i| !before.contains(&i.id))
        .map(|i| JsonPath(PathBuf::from(i.id)).to_text());
    r.progress.trashed += 1;
    r.progress.bytes_done += r
        .index
        .get(&seq)
        .map(|&i| r.items[i].step.size)
        .unwrap_or(0);
    r.dirty_dirs.insert(p.parent().unwrap_or(p).to_path_buf());
    r.record(Update {
        seq,
        state: ItemState::Done,
        hash: None,
        note: id,
        dst: None,
    });
}

/// Trash items whose original path is `p`.
fn trashed_as(p: &Path) -> std::result::Result<Vec<trash::TrashItem>, trash::Error> {
    Ok(trash::os_limited::list()?
        .into_iter()
        .filter(|i| i.original_path() == p)
        .collect())
}

fn restore(r: &mut Runner<'_>, seq: i64, info: &Path, dst: &Path) {
    let item = trash::os_limited::list()
        .ok()
        .and_then(|l| l.into_iter().find(|i| Path::new(&i.id) == info));
    let Some(item) = item else {
        if std::fs::symlink_metadata(dst).is_ok() {
            r.progress.already_done += 1;
            return r.done(seq, &[]);
        }
        return r.fail(
            seq,
            format!("{} is no longer in the trash (emptied?)", dst.display()),
        );
    };
    match trash::os_limited::restore_all([item]) {
        Ok(()) => {
            r.progress.restored += 1;
            r.done(seq, &[dst]);
        }
        Err(trash::Error::RestoreCollision { path, .. }) => r.fail(
            seq,
            format!("{} exists: move it away, then undo again", path.display()),
        ),
        Err(e) => r.fail(seq, format!("{}: restoring failed: {e}", dst.display())),
    }
}

/// Folders made by a copy get their source's permissions and times last (writing into a folder
/// changes its modification time), deepest first.
fn folder_metadata(r: &mut Runner<'_>) {
    for i in (0..r.items.len()).rev() {
        let it = &r.items[i];
        if it.step.op != StepOp::Mkdir || it.state != ItemState::Done {
            continue;
        }
        let Some(dst) = it.step.dst.as_ref().map(|d| d.0.clone()) else {
            continue;
        };
        if let Ok(m) = std::fs::symlink_metadata(&it.step.src.0)
            && let Err(e) = copy::set_path_metadata(&dst, &m)
        {
            tracing::warn!(dir = %dst.display(), error = %e, "copying folder metadata");
        }
    }
}

/// After a move's copies are all verified and recorded: removes the sources, deepest first. A
/// source that changed after it was copied is kept and reported.
fn remove_source(r: &mut Runner<'_>, i: usize) {
    let it = &r.items[i];
    if it.state != ItemState::Done {
        return;
    }
    if let Some(t) = crate::index::debug_throttle() {
        std::thread::sleep(t); // tests: make a crash land mid-removal
    }
    let step = it.step.clone();
    let p = &step.src.0;
    let res = match step.op {
        StepOp::Copy | StepOp::Symlink | StepOp::Link => match std::fs::symlink_metadata(p) {
            Ok(m) => {
                let now = crate::index::walk::mtime_ns(&m);
                if step.op == StepOp::Copy && (Some(now) != step.mtime || m.len() != step.size) {
                    Err(format!(
                        "{} changed after it was copied: kept (the copy holds the earlier version)",
                        p.display()
                    ))
                } else {
                    std::fs::remove_file(p).map_err(|e| format!("{}: {e}", p.display()))
                }
            }
            Err(_) => Ok(()),
        },
        StepOp::Mkdir | StepOp::Merge => match std::fs::remove_dir(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: not removed: {e}", p.display())),
        },
        _ => return,
    };
    match res {
        Ok(()) => {
            r.progress.sources_removed += 1;
            r.record(Update {
                seq: step.seq,
                state: ItemState::SourceRemoved,
                hash: None,
                note: None,
                dst: None,
            });
        }
        Err(why) => {
            r.progress.sources_kept += 1;
            r.note_error(step.seq, &why);
            r.pending.push(Update {
                seq: step.seq,
                state: ItemState::Done,
                hash: None,
                note: Some(why),
                dst: None,
            });
        }
    }
}

/// What reverses a file operation, stored as the undo data of its audit row: written here when
/// the job ends and read back by `actions` (as part of its `Reverse`) when the user undoes it.
/// One type, both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileUndo {
    /// Move each `to` back to `from`.
    MoveBack(Vec<MovedPair>),
    /// Put trashed items back.
    Restore(Vec<Trashed>),
    /// Trash again what an undo restored.
    TrashAgain(Vec<JsonPath>),
}

/// An item moved from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MovedPair {
    pub from: JsonPath,
    pub to: JsonPath,
}

/// An item moved to the trash from `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Trashed {
    /// The item's `.trashinfo` file (any bytes: the trashed name may not be UTF-8).
    pub trash_info: JsonPath,
    pub to: JsonPath,
}

/// What a finished job did: the summary and undo data for its audit row.
pub(crate) fn summarize(
    conn: &rusqlite::Connection,
    job: i64,
    params: &FileOpJob,
    progress: &FileOpProgress,
) -> Result<(serde_json::Value, Option<FileUndo>)> {
    let items = load_items(conn, job)?;
    let done = |i: &&Item| i.state.is_done();
    let summary = serde_json::json!({
        "steps": items.len(),
        "done": items.iter().filter(done).count(),
        "skipped": items.iter().filter(|i| i.state == ItemState::Skipped).count(),
        "failed": items.iter().filter(|i| i.state == ItemState::Failed).count(),
        "bytes": progress.bytes_done,
        "copied": progress.copied,
        "verified": progress.verified,
        "renamed": progress.renamed,
        "trashed": progress.trashed,
        "deleted": progress.deleted,
        "restored": progress.restored,
        "errors": progress.errors,
    });
    let undo = match params.op {
        OpKind::Move if !items.iter().any(|i| i.step.overwrite && done(&i)) => {
            // Each top-level item moved goes back where it came from; items merged into
            // existing folders were moved one by one (their children are roots).
            let moved = [
                StepOp::Rename,
                StepOp::Copy,
                StepOp::Mkdir,
                StepOp::Symlink,
                StepOp::Link,
            ];
            let pairs: Vec<MovedPair> = items
                .iter()
                .filter(done)
                .filter(|i| i.step.root && moved.contains(&i.step.op))
                .filter_map(|i| {
                    Some(MovedPair {
                        from: i.step.src.clone(),
                        to: i.step.dst.clone()?,
                    })
                })
                .collect();
            (!pairs.is_empty()).then_some(FileUndo::MoveBack(pairs))
        }
        OpKind::Trash => {
            let restores: Vec<Trashed> = items
                .iter()
                .filter(done)
                .filter_map(|i| {
                    i.step.note.as_ref().map(|id| Trashed {
                        trash_info: JsonPath::from_text(id),
                        to: i.step.src.clone(),
                    })
                })
                .collect();
            (!restores.is_empty()).then_some(FileUndo::Restore(restores))
        }
        OpKind::Restore => {
            let paths: Vec<JsonPath> = items
                .iter()
                .filter(done)
                .filter_map(|i| i.step.dst.clone())
                .collect();
            (!paths.is_empty()).then_some(FileUndo::TrashAgain(paths))
        }
        OpKind::Copy | OpKind::Delete | OpKind::Move => None,
    };
    Ok((summary, undo))
}

/// The file-operation job kind: runs [`run`]; its end writes the action's audit row (summary,
/// outcome, undo data).
pub struct FileOpKind;

impl JobKind for FileOpKind {
    const KIND: &'static str = "fileop";
    const TAG: &'static str = "file_op";
    type Params = FileOpJob;
    type Progress = FileOpProgress;

    fn failures(p: &FileOpProgress) -> Option<String> {
        p.failures()
    }

    fn run(
        lib: &Arc<Library>,
        id: i64,
        params: &FileOpJob,
        control: &Control,
        progress: &(dyn Fn(&FileOpProgress, bool) + Sync),
    ) -> Result<std::result::Result<Option<String>, Stop>> {
        let on_progress = |p: &FileOpProgress| progress(p, false);
        let done = match run(lib, id, params, control, &on_progress)? {
            Ok(done) => done,
            Err(stop) => return Ok(Err(stop)),
        };
        let failures = done.failures();
        crate::runner::store_progress(lib, id, &done)?;
        Ok(Ok(failures))
    }

    fn finish(tx: &rusqlite::Transaction<'_>, end: &End<'_, FileOpJob>) -> Result<()> {
        let p = end.params;
        let progress: FileOpProgress = crate::runner::stored_progress(tx, end.id)?;
        let (mut summary, undo) = summarize(tx, end.id, p, &progress)?;
        if let Some(e) = end.error {
            summary["error"] = serde_json::Value::String(e.to_owned());
        }
        let outcome = Outcome::of_job(end.state);
        audit::append(
            tx,
            end.device_row,
            &audit::Record {
                kind: p.audit_kind().to_owned(),
                action: p.action.clone(),
                targets: p.targets.clone(),
                outcome,
                summary,
                undo: undo.map(serde_json::to_value).transpose()?,
                job_id: Some(end.id),
                undoes: p.undoes,
                created_at: p.committed_at,
            },
        )?;
        Ok(())
    }
}

impl FileOpJob {
    /// The audit log's kind for this job's row (see [`super::audit_kind`]).
    pub fn audit_kind(&self) -> &'static str {
        super::audit_kind(self.op, self.undoes.is_some())
    }
}

#[cfg(test)]
mod undo_tests {
    use super::*;

    /// The undo data keeps the shape earlier builds wrote, so old audit rows can still be undone.
    #[test]
    fn item_states_round_trip_and_unknown_is_an_error() {
        for s in ItemState::ALL {
            assert_eq!(ItemState::parse(s.as_str()), Ok(s));
        }
        let e = ItemState::parse("half_done").unwrap_err();
        assert_eq!(e.value, "half_done");
        assert_eq!(e.what, "file operation item");
    }

    #[test]
    fn file_undo_round_trips_in_the_stored_shape() {
        let cases = [
            (
                FileUndo::MoveBack(vec![MovedPair {
                    from: JsonPath::from_text("/a/x"),
                    to: JsonPath::from_text("/b/x"),
                }]),
                serde_json::json!({"move_back": [{"from": "/a/x", "to": "/b/x"}]}),
            ),
            (
                FileUndo::Restore(vec![Trashed {
                    trash_info: JsonPath::from_text("/t/info/x.trashinfo"),
                    to: JsonPath::from_text("/a/x"),
                }]),
                serde_json::json!({"restore": [{"trash_info": "/t/info/x.trashinfo", "to": "/a/x"}]}),
            ),
            (
                FileUndo::TrashAgain(vec![JsonPath::from_text("/a/x")]),
                serde_json::json!({"trash_again": ["/a/x"]}),
            ),
        ];
        for (undo, json) in cases {
            assert_eq!(serde_json::to_value(&undo).unwrap(), json);
            assert_eq!(serde_json::from_value::<FileUndo>(json).unwrap(), undo);
        }
    }
}
