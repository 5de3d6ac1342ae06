//! The job runner: durable jobs of any kind, knowing none of them. A job is a row in the
//! library's `jobs` table (kind, state, params, progress), a thread while it runs, and progress
//! published at most 10 times a second. Jobs survive the daemon: a job that was queued or running
//! when the daemon stopped (or was killed) starts again from its last checkpoint when the library
//! opens.
//!
//! A kind is a type implementing [`JobKind`] in its own module (`index::IndexJob`,
//! `fileops::FileOpKind`): it runs the job and writes what its end means (locations, audit rows)
//! in the transaction that records the end. The kinds are listed once, in `jobs.rs`, which lends
//! the library a [`JobHost`](crate::library::JobHost) dispatching on the `kind` column.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::control::JobState;
use crate::control::{Control, Stop};
use crate::library::{Library, RunningJob};
use crate::store::now_ms;
use crate::{Error, Result};

/// One kind of job: its parameters and progress types and what running and ending it do.
/// Implemented in the kind's own module; registered by one line in `jobs.rs`.
pub trait JobKind {
    /// The `kind` column.
    const KIND: &'static str;
    /// The `kind` tag of the job's spec in JSON (the wire and the `params` column); the same
    /// literal names the variant of `jobs::JobSpec`.
    const TAG: &'static str;
    /// What the job was asked to do (the `params` column).
    type Params: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// Where it is (the `progress` column), as clients see it.
    type Progress: Serialize + DeserializeOwned + Clone + Default + Send + 'static;

    /// Whether a job with this stored progress had already done some work (a start counts as a
    /// resume in `resumes`).
    fn had_started(_progress: &Self::Progress) -> bool {
        false
    }

    /// What the job was asked to do and could not, in words, from its final progress; `None`
    /// when nothing failed (the default: a kind whose partial failures do not count).
    fn failures(_progress: &Self::Progress) -> Option<String> {
        None
    }

    /// Runs the job from its checkpoint. `Ok(Ok(failures))` when it ran to its end — `Some`
    /// saying what it could not do when some of it failed —, `Ok(Err(stop))` when it stopped at a
    /// checkpoint. `progress(p, last)` publishes `p` (`last` forces it past the rate limit).
    fn run(
        lib: &Arc<Library>,
        id: i64,
        params: &Self::Params,
        control: &Control,
        progress: &(dyn Fn(&Self::Progress, bool) + Sync),
    ) -> Result<std::result::Result<Option<String>, Stop>>;

    /// Writes what the job's end means, in the transaction that records it.
    fn finish(tx: &rusqlite::Transaction<'_>, end: &End<'_, Self::Params>) -> Result<()>;

    /// Runs after the end is committed, outside any transaction (e.g. a follow-up job).
    fn ended(
        _lib: &Arc<Library>,
        _id: i64,
        _params: &Self::Params,
        _state: JobState,
    ) -> Result<()> {
        Ok(())
    }
}

/// How a job ended, for [`JobKind::finish`].
pub struct End<'a, P> {
    pub id: i64,
    pub params: &'a P,
    pub state: JobState,
    pub error: Option<&'a str>,
    /// Row id of this device in the library's `devices` table.
    pub device_row: i64,
}

/// Inserts a queued job of kind `K`; the caller commits, then calls [`start`].
pub fn insert<K: JobKind>(
    tx: &rusqlite::Transaction<'_>,
    params: &K::Params,
    progress: &K::Progress,
) -> Result<i64> {
    #[derive(Serialize)]
    struct Spec<'a, P> {
        kind: &'static str,
        params: &'a P,
    }
    let spec = Spec {
        kind: K::TAG,
        params,
    };
    tx.execute(
        "INSERT INTO jobs (kind, state, params, progress, created_at) VALUES (?1, 'queued', ?2, ?3, ?4)",
        params![K::KIND, serde_json::to_string(&spec)?, serde_json::to_string(progress)?, now_ms()],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Job `id`'s progress as last written to its row (the default when unreadable).
pub fn stored_progress<P: DeserializeOwned + Default>(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<P> {
    let progress: String =
        conn.query_row("SELECT progress FROM jobs WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    Ok(serde_json::from_str(&progress).unwrap_or_default())
}

/// Writes a running job's progress to its row (what `job list` shows between events).
pub fn store_progress<P: Serialize>(lib: &Library, id: i64, p: &P) -> Result<()> {
    let stored = serde_json::to_string(p)?;
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE jobs SET progress = ?2 WHERE id = ?1",
            params![id, stored],
        )?;
        Ok(())
    })
}

/// A job's stored row, undecoded: what the runner needs without knowing the kind.
pub struct Row {
    pub kind: String,
    pub state: JobState,
    /// `{"kind": …, "params": …}`.
    pub spec: String,
    pub progress: String,
}

/// Job `id`'s row.
pub fn row(conn: &rusqlite::Connection, id: i64) -> Result<Row> {
    conn.query_row(
        "SELECT kind, state, params, progress FROM jobs WHERE id = ?1",
        [id],
        |r| {
            Ok(Row {
                kind: r.get(0)?,
                state: JobState::parse(&r.get::<_, String>(1)?).map_err(|e| e.into_sql(1))?,
                spec: r.get(2)?,
                progress: r.get(3)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no job {id}")))
}

/// Job `id`'s state.
pub fn state(lib: &Library, id: i64) -> Result<JobState> {
    Ok(row(&lib.reader()?, id)?.state)
}

/// Starts the thread that runs job `id`. Does nothing if it is already running.
pub fn start(lib: &Arc<Library>, id: i64) -> Result<()> {
    let mut jobs = lib.jobs.lock().unwrap_or_else(|p| p.into_inner());
    if jobs.contains_key(&id) {
        return Ok(());
    }
    let control = Arc::new(Control::default());
    let (l, c) = (lib.clone(), control.clone());
    let handle = std::thread::Builder::new()
        .name(format!("sd-job-{id}"))
        .spawn(move || {
            let span = tracing::info_span!("job", library = %l.name(), id);
            let _enter = span.enter();
            l.host.clone().run(&l, id, &c);
            l.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        })
        .map_err(|e| Error::io("<job thread>", e))?;
    jobs.insert(
        id,
        RunningJob {
            control,
            handle: Some(handle),
        },
    );
    Ok(())
}

/// Restarts every job that was queued or running when the library was last closed.
pub fn resume_interrupted(lib: &Arc<Library>) -> Result<Vec<i64>> {
    let ids: Vec<i64> = lib
        .reader()?
        .prepare("SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for &id in &ids {
        start(lib, id)?;
    }
    Ok(ids)
}

fn control_of(lib: &Library, id: i64) -> Option<Arc<Control>> {
    lib.jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .map(|j| j.control.clone())
}

fn set_state(lib: &Library, id: i64, state: JobState) -> Result<()> {
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE jobs SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    })?;
    lib.host.publish(lib, id);
    Ok(())
}

/// Pauses a running job at its next checkpoint.
pub fn pause(lib: &Arc<Library>, id: i64) -> Result<()> {
    let state = state(lib, id)?;
    match (state, control_of(lib, id)) {
        (JobState::Running | JobState::Queued, Some(c)) => {
            c.pause();
            set_state(lib, id, JobState::Paused)
        }
        (JobState::Paused, _) => Ok(()),
        (s, _) => Err(Error::Conflict(format!(
            "job {id} is {} and cannot be paused",
            s.as_str()
        ))),
    }
}

/// Resumes a paused job (also one paused before the daemon restarted).
pub fn resume(lib: &Arc<Library>, id: i64) -> Result<()> {
    let state = state(lib, id)?;
    if state != JobState::Paused {
        return Err(Error::Conflict(format!(
            "job {id} is {}, not paused",
            state.as_str()
        )));
    }
    match control_of(lib, id) {
        Some(c) => {
            c.resume();
            set_state(lib, id, JobState::Running)
        }
        None => start(lib, id),
    }
}

/// Cancels a job. What it already committed stays; an index job leaves its location `partial`.
pub fn cancel(lib: &Arc<Library>, id: i64) -> Result<()> {
    let state = state(lib, id)?;
    if state.is_final() {
        return Err(Error::Conflict(format!(
            "job {id} already {}",
            state.as_str()
        )));
    }
    match control_of(lib, id) {
        Some(c) => {
            c.stop(Stop::Cancel);
            wait(lib, id);
            Ok(())
        }
        None => lib.host.end(lib, id, JobState::Cancelled),
    }
}

/// Waits for a job's thread to end.
fn wait(lib: &Library, id: i64) {
    let handle = lib
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&id)
        .and_then(|j| j.handle.take());
    if let Some(h) = handle {
        let _ = h.join();
    }
}

/// Ids of jobs whose thread is alive.
pub fn running_ids(lib: &Library) -> Vec<i64> {
    lib.jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .copied()
        .collect()
}

/// Whether a job of `lib` other than `me` is running right now (alive, not paused, not
/// stopping): what a low-priority kind waits for.
pub fn active_others(lib: &Library, me: i64) -> bool {
    lib.jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(id, j)| *id != me && !j.control.paused() && j.control.stopped().is_none())
}

/// What a kind's run publishes: `None` when the row changed (state), `Some(progress)` for a
/// progress snapshot of the running job (`paused` says whether it is paused right now).
pub type Publish<'a, P> = dyn Fn(Option<(&P, bool)>) + Sync + 'a;

/// Runs job `id` of kind `K` on this thread: marks it running, runs it, records its end (the
/// kind's [`JobKind::finish`] in the same transaction), then [`JobKind::ended`]. Called by the
/// registry's host with a `publish` that turns rows and snapshots into events.
pub fn drive<K: JobKind>(
    lib: &Arc<Library>,
    id: i64,
    control: &Arc<Control>,
    publish: &Publish<'_, K::Progress>,
) {
    let outcome = drive_inner::<K>(lib, id, control, publish);
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "job failed");
        let _ = end::<K>(lib, id, JobState::Failed, Some(e.to_string()));
    }
    if let Ok(state) = state(lib, id)
        && state.is_final()
        && let Ok(params) = params::<K>(lib, id)
        && let Err(e) = K::ended(lib, id, &params, state)
    {
        tracing::warn!(error = %e, kind = K::KIND, "after the job's end");
    }
    publish(None);
}

/// The params of job `id`, which is of kind `K`.
fn params<K: JobKind>(lib: &Library, id: i64) -> Result<K::Params> {
    decode::<K>(&row(&lib.reader()?, id)?)
}

/// Decodes a row's params as kind `K`'s.
pub fn decode<K: JobKind>(row: &Row) -> Result<K::Params> {
    #[derive(serde::Deserialize)]
    struct Spec<P> {
        params: P,
    }
    Ok(serde_json::from_str::<Spec<K::Params>>(&row.spec)?.params)
}

fn drive_inner<K: JobKind>(
    lib: &Arc<Library>,
    id: i64,
    control: &Arc<Control>,
    publish: &Publish<'_, K::Progress>,
) -> Result<()> {
    let row = row(&lib.reader()?, id)?;
    let params = decode::<K>(&row)?;
    let stored: K::Progress = serde_json::from_str(&row.progress)?;
    let resumed =
        matches!(row.state, JobState::Running | JobState::Paused) || K::had_started(&stored);
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, ?2), resumes = resumes + ?3 WHERE id = ?1",
            params![id, now_ms(), resumed as i64],
        )?;
        Ok(())
    })?;
    publish(None);
    tracing::info!(resumed, kind = K::KIND, "job started");

    let last_emit = Mutex::new(Instant::now() - Duration::from_secs(1));
    let on_progress = |p: &K::Progress, last_one: bool| {
        let mut last = last_emit.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_millis(100) || last_one {
            *last = Instant::now();
            publish(Some((p, control.paused())));
        }
    };
    match K::run(lib, id, &params, control, &on_progress)? {
        Ok(None) => end::<K>(lib, id, JobState::Completed, None),
        Ok(Some(why)) => end::<K>(lib, id, JobState::CompletedWithErrors, Some(why)),
        Err(Stop::Cancel) => end::<K>(lib, id, JobState::Cancelled, None),
        Err(Stop::Shutdown) => {
            // Interrupted by the daemon stopping: stays resumable, picked up at next start.
            lib.writer.run(move |c| {
                c.execute(
                    "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state != 'paused'",
                    [id],
                )?;
                Ok(())
            })
        }
    }
}

/// Records job `id`'s end in `state`, with what its kind `K` writes for it, in one transaction.
pub fn end<K: JobKind>(
    lib: &Library,
    id: i64,
    state: JobState,
    error: Option<String>,
) -> Result<()> {
    let params = params::<K>(lib, id)?;
    let device_row = lib.device_row;
    lib.writer.transaction(move |tx| {
        tx.execute(
            "UPDATE jobs SET state = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, state.as_str(), error, now_ms()],
        )?;
        K::finish(
            tx,
            &End {
                id,
                params: &params,
                state,
                error: error.as_deref(),
                device_row,
            },
        )
    })
}
