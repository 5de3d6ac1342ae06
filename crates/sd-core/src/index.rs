//! The indexer: records a location's files and directories in the library, and keeps them current.
//!
//! Phases, each resumable: **discovery + processing** (the walker lists directories on two threads;
//! the writer diffs each listing against the index and commits in batches together with the
//! checkpoint), **cleanup** (entries missing from disk are deleted, after moves had their chance to
//! claim them), and **aggregation** (recursive size and counts per directory).
//!
//! Architecture Invariant: the indexer only reads the filesystem. It never follows symlinks, never
//! crosses into another filesystem, and never treats an unreachable location root as "everything
//! was deleted".

mod departed;
pub mod ephemeral;
mod identify;
pub(crate) mod scan;
pub mod walk;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, bounded};
use serde::{Deserialize, Serialize};

use rusqlite::{OptionalExtension, params};

use crate::control::{Control, JobState, Stop};
use crate::library::Library;
use crate::location::row::{self as location, IndexMode, Location};
use crate::rules::Rules;
use crate::runner::{self, End, JobKind};
use crate::{Error, Result, tree};
use scan::ScanState;
pub use scan::Sums;
use walk::{DirTask, Listing, PathError, WalkOptions};

/// What an index job does, stored as the job's params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IndexParams {
    pub location_id: i64,
    /// First scan of the location (nothing indexed yet: no diff, no move detection needed).
    pub initial: bool,
    /// Directories (entry ids) whose subtrees to rescan; empty means the whole location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtrees: Vec<i64>,
}

/// Where an index job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Discovery,
    Cleanup,
    Aggregation,
    /// Content identity (content and deep modes).
    Content,
    Done,
}

/// Live and persisted progress of an index job; also its result when it completes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IndexProgress {
    pub phase: Phase,
    pub dirs_listed: u64,
    /// Entries seen on disk so far in this scan.
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub other: u64,
    pub bytes: u64,
    /// Changes made to the index.
    pub new: u64,
    pub modified: u64,
    pub moved: u64,
    pub deleted: u64,
    /// Entries left out by the location's rules.
    pub ignored: u64,
    /// Paths that could not be read; the first few are in `error_samples`.
    pub errors: u64,
    pub error_samples: Vec<PathError>,
    /// Entries the location held after its previous scan (a progress-bar estimate).
    pub expected: Option<u64>,
    /// Directories already listed when this run picked the job up from a checkpoint.
    pub resumed_after_dirs: Option<u64>,
    /// Final recursive totals of the location (set when the job completes).
    pub totals: Option<Sums>,
    /// Content phase: files to identify, identified (or failed), bytes read to identify them,
    /// time spent, integrity hashes computed for shared ids, files that changed since the scan.
    #[serde(default)]
    pub content_total: u64,
    #[serde(default)]
    pub content_done: u64,
    #[serde(default)]
    pub content_bytes: u64,
    #[serde(default)]
    pub content_ms: u64,
    /// Time spent on the integrity pass (full hashes), not included in `content_ms`.
    #[serde(default)]
    pub integrity_ms: u64,
    #[serde(default)]
    pub integrity_hashed: u64,
    #[serde(default)]
    pub changed_while_identifying: u64,
    /// Content newly queued for later jobs (thumbnails, text extraction).
    #[serde(default)]
    pub queued: u64,
}

/// The index job kind: runs [`run`]; its end drops the checkpoint, leaves the location
/// `partial` unless the job ran to its end, and starts the follow-up rescan asked for while it
/// ran (rules changed) unless the user cancelled it.
pub struct IndexJob;

impl JobKind for IndexJob {
    const KIND: &'static str = "index";
    const TAG: &'static str = "index";
    type Params = IndexParams;
    type Progress = IndexProgress;

    fn had_started(p: &IndexProgress) -> bool {
        p.dirs_listed > 0
    }

    fn run(
        lib: &Arc<Library>,
        id: i64,
        params: &IndexParams,
        control: &Control,
        progress: &(dyn Fn(&IndexProgress, bool) + Sync),
    ) -> Result<Result<Option<String>, Stop>> {
        let on_progress = |p: &IndexProgress| progress(p, p.phase == Phase::Done);
        let hooks = RunHooks {
            on_progress: &on_progress,
        };
        // Unreadable paths are reported in the progress, not counted as failures.
        Ok(run(lib, id, params, control, &hooks)?.map(|_| None))
    }

    fn finish(tx: &rusqlite::Transaction<'_>, end: &End<'_, IndexParams>) -> Result<()> {
        clear_checkpoint(tx, end.id)?;
        if !end.state.ran_to_end() {
            tx.execute(
                "UPDATE locations SET state = 'partial' WHERE id = ?1 AND last_job_id = ?2",
                rusqlite::params![end.params.location_id, end.id],
            )?;
        }
        Ok(())
    }

    fn ended(lib: &Arc<Library>, _id: i64, params: &IndexParams, state: JobState) -> Result<()> {
        // The contents it queued (deep locations) and the files it removed: the sidecar job's.
        if let Err(e) = crate::sidecar::after_index(lib, params.location_id) {
            tracing::warn!(error = %e, "starting the sidecar job");
        }
        follow_up(lib, params.location_id, state == JobState::Cancelled).map(|_| ())
    }
}

/// After an index job of location `id` ended: starts the follow-up rescan asked for while it ran
/// (rules changed), unless the user cancelled the job.
fn follow_up(lib: &Arc<Library>, id: i64, cancelled: bool) -> Result<Option<i64>> {
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
        location::set_rescan_after(lib, id, false)?;
        return Ok(None);
    }
    let loc = location::get(lib, id)?;
    if !loc.online {
        // Rescanned when it is back; until then it reads as the scan left it.
        lib.writer.transaction(move |tx| {
            tx.execute(
                "UPDATE locations SET state = 'ready' WHERE id = ?1 AND state = 'indexing'",
                [id],
            )?;
            Ok(())
        })?;
        return Ok(None);
    }
    if location::active_job(lib, &loc)?.is_some() {
        return Ok(None); // busy: that job's end comes here again
    }
    let job = queue(lib, &loc, Vec::new())?;
    tracing::info!(
        location = id,
        job,
        "rescanning under the rules changed during the last scan"
    );
    Ok(Some(job))
}

/// Queues an index job over the whole location (`subtrees` empty) or the given directories.
pub(crate) fn queue(lib: &Arc<Library>, loc: &Location, subtrees: Vec<i64>) -> Result<i64> {
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
        let params = IndexParams {
            location_id: id,
            initial: false,
            subtrees,
        };
        let job = runner::insert::<IndexJob>(tx, &params, &IndexProgress::default())?;
        if full {
            // This job reads the current rules: no follow-up needed.
            tx.execute("UPDATE locations SET rescan_after = 0 WHERE id = ?1", [id])?;
        }
        for seed in seeds {
            seed_checkpoint(tx, job, seed)?;
        }
        tx.execute(
            "UPDATE locations SET last_job_id = ?2, state = 'indexing' WHERE id = ?1",
            params![id, job],
        )?;
        Ok(job)
    })?;
    runner::start(lib, job)?;
    Ok(job)
}

/// Hooks used by [`run`]: a debug throttle for crash tests, and a progress callback.
pub struct RunHooks<'a> {
    pub on_progress: &'a (dyn Fn(&IndexProgress) + Sync),
}

/// Reads `SPACEDRIVE_DEBUG_THROTTLE_MS`: when set, the indexer commits one directory (in the
/// content phase, one file) per batch and sleeps this long after each — and file operations sleep
/// this long before each copy and each source removal — so crash tests can kill it
/// mid-phase. Never set it in normal use.
pub(crate) fn debug_throttle() -> Option<Duration> {
    std::env::var("SPACEDRIVE_DEBUG_THROTTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

/// How a phase of the indexer commits what its workers produce: a batch is committed once its
/// items weigh `max` or `age` has passed since the last commit, whichever comes first, and at
/// once when the channel is idle for 100 ms or hangs up (under the debug throttle every item is
/// its own batch); `apply` writes a batch, with the checkpoint and progress it amounts to.
pub(crate) struct Batches<T> {
    pub max: usize,
    pub age: Duration,
    pub weight: fn(&T) -> usize,
    pub apply: fn(&rusqlite::Transaction<'_>, &mut ScanState, Vec<T>) -> Result<()>,
}

/// Discovery: 20,000 entries (a listing weighs its children plus itself) or 250 ms.
const DISCOVERY_BATCHES: Batches<Listing> = Batches {
    max: 20_000,
    age: Duration::from_millis(250),
    weight: |l| l.children.as_ref().map_or(1, |c| c.len() + 1),
    apply: scan::apply_batch,
};

/// The one batch-and-commit loop of the indexer (discovery and content phases): takes items
/// from `rx` until it hangs up and commits them in `batches`, each in one writer transaction
/// in which `batches.apply` writes the items together with the checkpoint and the job's
/// progress they amount to, so after a crash exactly the uncommitted items are redone; then
/// publishes the progress (and sleeps, under the debug throttle). Paused or stopped, it
/// commits nothing more (it blocks while paused) and returns; a write error ends it.
///
/// The calling thread cuts the next batch while a committer thread (`sd-commit`) writes the
/// previous one, one batch waiting between them at most: with one thread doing both, nothing
/// took items off `rx` during a commit, and the walkers stopped at a full channel whenever the
/// writer committed (a fifth of both cores idle in a 1M-entry index).
pub(crate) fn commit_batches<T: Send + 'static>(
    lib: &Arc<Library>,
    state: &Arc<Mutex<ScanState>>,
    rx: &crossbeam_channel::Receiver<T>,
    control: &Control,
    hooks: &RunHooks<'_>,
    batches: &Batches<T>,
) -> Result<()> {
    let apply = batches.apply;
    let throttle = debug_throttle();
    let (to_commit, cut) = bounded::<Vec<T>>(1);
    std::thread::scope(|s| {
        let committer = std::thread::Builder::new()
            .name("sd-commit".into())
            .spawn_scoped(s, move || -> Result<()> {
                for batch in cut {
                    // Paused: wait here; stopped: commit nothing more.
                    if control.check().is_err() {
                        return Ok(());
                    }
                    let st = state.clone();
                    let progress = lib.writer.transaction(move |tx| {
                        let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
                        apply(tx, &mut st, batch)?;
                        Ok(st.progress.clone())
                    })?;
                    lib.touch();
                    (hooks.on_progress)(&progress);
                    if let Some(t) = throttle {
                        std::thread::sleep(t);
                    }
                }
                Ok(())
            })
            .map_err(|e| Error::io("<commit thread>", e))?;
        let cutting = batch_loop(rx, control, batches, throttle.is_some(), |batch| {
            // Refused only once the committer has ended (a write error, or stopped).
            to_commit
                .send(batch)
                .map_err(|_| Error::Invalid("the commit thread ended".into()))
        });
        drop(to_commit);
        let committed = committer
            .join()
            .map_err(|_| Error::Invalid("the commit thread panicked".into()))?;
        match committed {
            Err(e) => Err(e),
            Ok(()) if control.stopped().is_some() => Ok(()),
            Ok(()) => cutting,
        }
    })
}

/// When [`commit_batches`] commits: cuts `rx` into batches by `batches`' thresholds (every
/// item alone when `throttled`) and hands each to `commit`.
fn batch_loop<T>(
    rx: &crossbeam_channel::Receiver<T>,
    control: &Control,
    batches: &Batches<T>,
    throttled: bool,
    mut commit: impl FnMut(Vec<T>) -> Result<()>,
) -> Result<()> {
    let mut batch: Vec<T> = Vec::new();
    let mut weighed = 0;
    let mut since = Instant::now();
    loop {
        // Paused or stopped: commit nothing more (blocks here while paused).
        if control.check().is_err() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(item) => {
                weighed += (batches.weight)(&item);
                batch.push(item);
                let full = weighed >= batches.max || since.elapsed() >= batches.age;
                if full || throttled {
                    commit(std::mem::take(&mut batch))?;
                    weighed = 0;
                    since = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !batch.is_empty() {
                    commit(std::mem::take(&mut batch))?;
                    weighed = 0;
                    since = Instant::now();
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return if batch.is_empty() {
                    Ok(())
                } else {
                    commit(batch)
                };
            }
        }
    }
}

/// Runs (or resumes) index job `job_id` to completion. `Err(Stop)` inside the outer `Ok` means the
/// job was interrupted and its checkpoint is intact.
pub fn run(
    lib: &Arc<Library>,
    job_id: i64,
    params: &IndexParams,
    control: &Control,
    hooks: &RunHooks<'_>,
) -> Result<Result<IndexProgress, Stop>> {
    let loc = location::get(lib, params.location_id)?;
    let root_path = loc.path.0.clone();
    let md = std::fs::symlink_metadata(&root_path).map_err(|e| {
        Error::Invalid(format!(
            "location folder {} is not reachable ({e}); the index was left as it was. Is the drive mounted?",
            root_path.display()
        ))
    })?;
    if !md.is_dir() {
        return Err(Error::Invalid(format!(
            "location path {} is no longer a directory; the index was left as it was",
            root_path.display()
        )));
    }
    let rules = Arc::new(Rules::new(loc.rules.clone())?);
    let root_id = loc.root_entry_id;
    let (_, _, mtime, inode, _) = walk::describe(&md);

    // Load the checkpoint and refresh the root entry's own metadata.
    let (frontier, missing, progress) = lib.writer.transaction(move |tx| {
        tx.execute(
            "UPDATE entries SET mtime = ?2, inode = ?3 WHERE id = ?1",
            rusqlite::params![root_id, mtime, inode as i64],
        )?;
        scan::load_checkpoint(tx, job_id)
    })?;
    let mut progress: IndexProgress = progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    if progress.dirs_listed > 0 || progress.phase != Phase::Discovery {
        progress.resumed_after_dirs = Some(progress.dirs_listed);
    }
    if progress.expected.is_none() && !params.initial {
        progress.expected = Some(loc.files + loc.dirs);
    }
    let fresh = params.initial && progress.dirs_listed == 0 && progress.phase == Phase::Discovery;
    // A run over a few folders that starts now sums again only around them; a resumed one cannot
    // know what it listed before, and sums the whole location.
    let around = (!params.subtrees.is_empty()
        && progress.dirs_listed == 0
        && progress.phase == Phase::Discovery)
        .then(HashSet::new);

    let tokens = Arc::new(AtomicU64::new(1));
    let reader = lib.reader()?;
    let mut start = Vec::new();
    let mut token_map = HashMap::new();
    for id in frontier {
        let Some(path) = tree::entry_path(&reader, root_id, &root_path, id)? else {
            continue;
        };
        let token = tokens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        token_map.insert(token, id);
        let chain = rules.chain_from_root(&root_path, &path);
        start.push(DirTask { token, path, chain });
    }
    drop(reader);

    let state = Arc::new(Mutex::new(ScanState {
        job_id,
        location_id: loc.id,
        root_id,
        root_path: root_path.clone(),
        fresh,
        tokens: token_map,
        missing: missing.into_iter().collect(),
        direct: HashMap::new(),
        around,
        inodes: None,
        inode_queries: 0,
        dev: loc.dev,
        departed_waiting: None,
        progress,
        frontier_new: HashSet::new(),
        rollup: fresh.then(|| scan::Rollup::new(root_id)),
        next_id: None,
    }));

    if !start.is_empty() {
        let opts = WalkOptions {
            before_list: lib.dir_hook(loc.id),
            rules,
            dev: Some(loc.dev),
            recursive: true,
            threads: 2,
            tokens,
        };
        let stopped = discover(lib, &state, start, &opts, control, hooks)?;
        if let Err(stop) = stopped {
            return Ok(Err(stop));
        }
    }
    if let Some(stop) = control.stopped() {
        return Ok(Err(stop));
    }

    // Cleanup and aggregation: one transaction, so they are redone whole after a crash.
    let identify = loc.mode != IndexMode::Shallow;
    let phase = state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .progress
        .phase;
    if phase < Phase::Content {
        let st = state.clone();
        let loc_id = loc.id;
        let progress = lib.writer.transaction(move |tx| {
            let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
            st.progress.phase = Phase::Cleanup;
            scan::delete_missing(tx, &mut st)?;
            scan::drop_orphan_content(tx)?;
            st.progress.phase = Phase::Aggregation;
            let totals = scan::aggregate(tx, &mut st)?;
            st.progress.totals = Some(totals);
            st.progress.phase = if identify {
                Phase::Content
            } else {
                Phase::Done
            };
            finish_tx(tx, &st, loc_id)?;
            Ok(st.progress.clone())
        })?;
        lib.touch();
        (hooks.on_progress)(&progress);
    }
    if identify
        && state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .progress
            .phase
            == Phase::Content
    {
        if let Err(stop) = identify::run(lib, &loc, &state, control, hooks)? {
            return Ok(Err(stop));
        }
        let st = state.clone();
        let loc_id = loc.id;
        let progress = lib.writer.transaction(move |tx| {
            let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
            if st.progress.changed_while_identifying > 0 {
                // Sizes recorded during identification: bring directory totals up to date.
                st.direct.clear();
                st.progress.totals = Some(scan::aggregate(tx, &mut st)?);
            }
            st.progress.phase = Phase::Done;
            finish_tx(tx, &st, loc_id)?;
            Ok(st.progress.clone())
        })?;
        lib.touch();
        (hooks.on_progress)(&progress);
    }
    let result = state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .progress
        .clone();
    Ok(Ok(result))
}

/// Persists the progress; once the job is done, marks the location ready — unless a rules change
/// made while it ran asks for a follow-up scan (`follow_up`): the location stays `indexing` in
/// between, so nobody reads `ready` in the moment before that scan is queued.
fn finish_tx(tx: &rusqlite::Transaction<'_>, st: &ScanState, loc_id: i64) -> Result<()> {
    if st.progress.phase == Phase::Done {
        tx.execute(
            "UPDATE locations SET state = CASE WHEN rescan_after THEN state ELSE 'ready' END,
                 last_scan_at = ?2 WHERE id = ?1",
            rusqlite::params![loc_id, crate::store::now_ms()],
        )?;
    }
    tx.execute(
        "UPDATE jobs SET progress = ?2 WHERE id = ?1",
        rusqlite::params![st.job_id, serde_json::to_string(&st.progress)?],
    )?;
    Ok(())
}

/// The discovery phase: walker threads feed listings to this thread, which commits them in batches.
fn discover(
    lib: &Arc<Library>,
    state: &Arc<Mutex<ScanState>>,
    start: Vec<DirTask>,
    opts: &WalkOptions,
    control: &Control,
    hooks: &RunHooks<'_>,
) -> Result<Result<(), Stop>> {
    let (tx, rx) = bounded::<Listing>(512);
    std::thread::scope(|s| {
        let walker = std::thread::Builder::new()
            .name("sd-walk".into())
            .spawn_scoped(s, move || walk::walk(start, opts, &tx, control))
            .map_err(|e| Error::io("<walker thread>", e))?;
        let outcome = commit_batches(lib, state, &rx, control, hooks, &DISCOVERY_BATCHES);
        // On a write error, hanging up makes the walkers stop.
        drop(rx);
        let walked = walker.join().unwrap_or(Err(Stop::Shutdown));
        outcome.map(|()| walked)
    })
}

/// Sets up a location's first index job inside an open transaction: the frontier starts at the root.
pub(crate) fn seed_checkpoint(
    tx: &rusqlite::Transaction<'_>,
    job_id: i64,
    root_id: i64,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO index_frontier (job_id, entry_id) VALUES (?1, ?2)",
        rusqlite::params![job_id, root_id],
    )?;
    Ok(())
}

/// Drops a finished or cancelled job's checkpoint rows.
pub(crate) fn clear_checkpoint(tx: &rusqlite::Transaction<'_>, job_id: i64) -> Result<()> {
    tx.execute("DELETE FROM index_frontier WHERE job_id = ?1", [job_id])?;
    tx.execute("DELETE FROM index_missing WHERE job_id = ?1", [job_id])?;
    Ok(())
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    fn no_write(_: &rusqlite::Transaction<'_>, _: &mut ScanState, _: Vec<u32>) -> Result<()> {
        Ok(())
    }

    /// Items weigh their value; a batch is cut at 10 or after a minute (never, here).
    const TENS: Batches<u32> = Batches {
        max: 10,
        age: Duration::from_secs(60),
        weight: |n| *n as usize,
        apply: no_write,
    };

    fn cut(items: &[u32], throttled: bool) -> Vec<Vec<u32>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in items {
            tx.send(*i).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        batch_loop(&rx, &Control::default(), &TENS, throttled, |b| {
            out.push(b);
            Ok(())
        })
        .unwrap();
        out
    }

    /// The thresholds both phases rely on: a batch ends when its weight reaches `max`, the rest
    /// is committed when the channel hangs up, and the throttle commits item by item.
    #[test]
    fn batches_are_cut_by_weight_and_flushed_at_the_end() {
        assert_eq!(
            cut(&[4, 5, 1, 9, 2, 3], false),
            [vec![4, 5, 1], vec![9, 2], vec![3]]
        );
        assert_eq!(cut(&[30, 1], false), [vec![30], vec![1]], "heavy alone");
        assert_eq!(cut(&[1, 2, 3], true), [vec![1], vec![2], vec![3]]);
        assert!(cut(&[], false).is_empty());
    }

    /// An idle channel flushes what is waiting; a write error ends the loop; a stopped job
    /// commits nothing more.
    #[test]
    fn idle_flushes_errors_end_and_stops_commit_nothing() {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(1u32).unwrap();
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            tx.send(2).unwrap();
        });
        let mut out = Vec::new();
        batch_loop(&rx, &Control::default(), &TENS, false, |b| {
            out.push(b);
            Ok(())
        })
        .unwrap();
        feeder.join().unwrap();
        assert_eq!(
            out,
            [vec![1], vec![2]],
            "the idle channel flushed the first"
        );

        let (tx, rx) = crossbeam_channel::unbounded();
        for i in [9, 9, 9] {
            tx.send(i).unwrap();
        }
        drop(tx);
        let mut calls = 0;
        let e = batch_loop(&rx, &Control::default(), &TENS, false, |_| {
            calls += 1;
            Err(Error::Invalid("disk full".into()))
        });
        assert!(e.is_err());
        assert_eq!(calls, 1);

        let control = Control::default();
        control.stop(Stop::Cancel);
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(1u32).unwrap();
        drop(tx);
        batch_loop(&rx, &control, &TENS, false, |_| {
            panic!("committed after a stop")
        })
        .unwrap();
    }
}
