//! Durable jobs: a row in the library's `jobs` table, a thread while it runs, progress on the
//! event bus. Jobs survive the daemon: a job that was running when the daemon stopped (or was
//! killed) is picked up again from its last checkpoint when the library is next opened.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::{Control, Stop};
use crate::events::Event;
use crate::fileops::{FileOpJob, FileOpProgress};
use crate::index::{self, IndexParams, IndexProgress};
use crate::library::Library;
use crate::store::now_ms;
use crate::{Error, Result};

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Paused,
    Completed,
    /// Ran to its end, but some of what it was asked to do failed (`error` says what).
    CompletedWithErrors,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::CompletedWithErrors => "completed_with_errors",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "completed" => JobState::Completed,
            "completed_with_errors" => JobState::CompletedWithErrors,
            "failed" => JobState::Failed,
            _ => JobState::Cancelled,
        }
    }

    /// Whether the job has ended for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::CompletedWithErrors
                | JobState::Failed
                | JobState::Cancelled
        )
    }

    /// Whether the job ran to its end (with or without failed items).
    pub fn ran_to_end(self) -> bool {
        matches!(self, JobState::Completed | JobState::CompletedWithErrors)
    }
}

/// What a job does. A closed set: one variant per kind, dispatched in one `match`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum JobSpec {
    /// Index (or rescan) a location.
    Index(IndexParams),
    /// Copy, move, rename, delete or restore files (the plan is in `fileop_items`).
    FileOp(FileOpJob),
}

impl JobSpec {
    fn kind(&self) -> &'static str {
        match self {
            JobSpec::Index(_) => "index",
            JobSpec::FileOp(_) => "fileop",
        }
    }
}

/// A job's progress, by kind (serialised as the inner value).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobProgress {
    FileOp(FileOpProgress),
    Index(IndexProgress),
}

impl JobProgress {
    /// The progress of an index job.
    pub fn index(&self) -> Option<&IndexProgress> {
        match self {
            JobProgress::Index(p) => Some(p),
            JobProgress::FileOp(_) => None,
        }
    }

    /// The progress of a file-operation job.
    pub fn file_op(&self) -> Option<&FileOpProgress> {
        match self {
            JobProgress::FileOp(p) => Some(p),
            JobProgress::Index(_) => None,
        }
    }

    /// What the job was asked to do and could not, in words; `None` when nothing failed. Each
    /// kind decides what counts: a file operation's failed items and kept sources do; an index
    /// job's unreadable paths do not (they are reported in its progress, and the index keeps
    /// what it had for them).
    pub fn failures(&self) -> Option<String> {
        match self {
            JobProgress::FileOp(p) => p.failures(),
            JobProgress::Index(_) => None,
        }
    }
}

/// A job as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: i64,
    pub library_id: Uuid,
    pub kind: String,
    pub state: JobState,
    pub spec: JobSpec,
    pub progress: JobProgress,
    pub error: Option<String>,
    pub resumes: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub(crate) struct RunningJob {
    control: Arc<Control>,
    handle: Option<JoinHandle<()>>,
}

/// Inserts a queued job; the caller commits and then calls [`start`].
pub(crate) fn insert(
    tx: &rusqlite::Transaction<'_>,
    spec: &JobSpec,
    progress: &impl Serialize,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO jobs (kind, state, params, progress, created_at) VALUES (?1, 'queued', ?2, ?3, ?4)",
        params![spec.kind(), serde_json::to_string(spec)?, serde_json::to_string(progress)?, now_ms()],
    )?;
    Ok(tx.last_insert_rowid())
}

const COLUMNS: &str =
    "id, kind, state, params, progress, error, resumes, created_at, started_at, finished_at";

fn from_row(lib: &Library, r: &rusqlite::Row<'_>) -> rusqlite::Result<JobInfo> {
    let spec: String = r.get(3)?;
    let progress: String = r.get(4)?;
    let bad = |e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    };
    let kind: String = r.get(1)?;
    let progress = match kind.as_str() {
        "fileop" => JobProgress::FileOp(serde_json::from_str(&progress).map_err(bad)?),
        _ => JobProgress::Index(serde_json::from_str(&progress).map_err(bad)?),
    };
    Ok(JobInfo {
        id: r.get(0)?,
        library_id: lib.id,
        kind,
        state: JobState::parse(&r.get::<_, String>(2)?),
        spec: serde_json::from_str(&spec).map_err(bad)?,
        progress,
        error: r.get(5)?,
        resumes: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

/// One job.
pub fn get(lib: &Library, id: i64) -> Result<JobInfo> {
    lib.reader()?
        .query_row(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            |r| from_row(lib, r),
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no job {id} in library {:?}", lib.name())))
}

/// The most recent jobs, newest first.
pub fn list(lib: &Library, limit: usize) -> Result<Vec<JobInfo>> {
    let conn = lib.reader()?;
    let mut q = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = q.query_map([limit as i64], |r| from_row(lib, r))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        .spawn(move || run_job(&l, id, &c))
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

fn set_state(lib: &Library, id: i64, state: JobState) -> Result<JobInfo> {
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE jobs SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    })?;
    let info = get(lib, id)?;
    lib.bus.emit(Event::Job(info.clone()));
    Ok(info)
}

/// Pauses a running job at its next checkpoint.
pub fn pause(lib: &Arc<Library>, id: i64) -> Result<JobInfo> {
    let info = get(lib, id)?;
    match (info.state, control_of(lib, id)) {
        (JobState::Running | JobState::Queued, Some(c)) => {
            c.pause();
            set_state(lib, id, JobState::Paused)
        }
        (JobState::Paused, _) => Ok(info),
        (s, _) => Err(Error::Conflict(format!(
            "job {id} is {} and cannot be paused",
            s.as_str()
        ))),
    }
}

/// Resumes a paused job (also one paused before the daemon restarted).
pub fn resume(lib: &Arc<Library>, id: i64) -> Result<JobInfo> {
    let info = get(lib, id)?;
    if info.state != JobState::Paused {
        return Err(Error::Conflict(format!(
            "job {id} is {}, not paused",
            info.state.as_str()
        )));
    }
    match control_of(lib, id) {
        Some(c) => {
            c.resume();
            set_state(lib, id, JobState::Running)
        }
        None => {
            start(lib, id)?;
            get(lib, id)
        }
    }
}

/// Cancels a job. What it already committed stays; an index job leaves its location `partial`.
pub fn cancel(lib: &Arc<Library>, id: i64) -> Result<JobInfo> {
    let info = get(lib, id)?;
    if info.state.is_final() {
        return Err(Error::Conflict(format!(
            "job {id} already {}",
            info.state.as_str()
        )));
    }
    match control_of(lib, id) {
        Some(c) => {
            c.stop(Stop::Cancel);
            wait(lib, id);
            get(lib, id)
        }
        None => {
            finish(lib, id, &info.spec, JobState::Cancelled, None)?;
            get(lib, id)
        }
    }
}

/// Waits for a job's thread to end (used by cancel and shutdown).
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

/// Stops every running job of the library at its next checkpoint, leaving it resumable.
pub(crate) fn shutdown(lib: &Library) {
    let ids: Vec<i64> = {
        let jobs = lib.jobs.lock().unwrap_or_else(|p| p.into_inner());
        for j in jobs.values() {
            j.control.stop(Stop::Shutdown);
        }
        jobs.keys().copied().collect()
    };
    for id in ids {
        wait(lib, id);
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

fn run_job(lib: &Arc<Library>, id: i64, control: &Arc<Control>) {
    let span = tracing::info_span!("job", library = %lib.name(), id);
    let _enter = span.enter();
    let outcome = run_job_inner(lib, id, control);
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "job failed");
        if let Ok(info) = get(lib, id) {
            let _ = finish(lib, id, &info.spec, JobState::Failed, Some(e.to_string()));
        }
    }
    if let Ok(info) = get(lib, id) {
        if let JobSpec::Index(p) = &info.spec
            && info.state.is_final()
            && let Err(e) = crate::location::index_job_ended(
                lib,
                p.location_id,
                info.state == JobState::Cancelled,
            )
        {
            tracing::warn!(error = %e, "starting the follow-up rescan");
        }
        lib.bus.emit(Event::Job(info));
    }
    // Someone searches this library: have its index ready for the next query.
    let searched = lib
        .search
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    if searched && let Err(e) = crate::search::warm(lib) {
        tracing::warn!(error = %e, "rebuilding the search index");
    }
    lib.jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

fn run_job_inner(lib: &Arc<Library>, id: i64, control: &Arc<Control>) -> Result<()> {
    let mut info = get(lib, id)?;
    let was = info.state;
    info.state = JobState::Running;
    let resumed = matches!(was, JobState::Running | JobState::Paused)
        || info.progress.index().is_some_and(|p| p.dirs_listed > 0);
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, ?2), resumes = resumes + ?3 WHERE id = ?1",
            params![id, now_ms(), resumed as i64],
        )?;
        Ok(())
    })?;
    let info = get(lib, id)?;
    lib.bus.emit(Event::Job(info.clone()));
    tracing::info!(resumed, "job started");

    let last_emit = std::sync::Mutex::new(Instant::now() - Duration::from_secs(1));
    let emit = |p: JobProgress, last_one: bool| {
        let mut last = last_emit.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_millis(100) || last_one {
            *last = Instant::now();
            let mut snapshot = info.clone();
            snapshot.progress = p;
            snapshot.state = if control.paused() {
                JobState::Paused
            } else {
                JobState::Running
            };
            lib.bus.emit(Event::Job(snapshot));
        }
    };
    let mut failures = None;
    let stopped = match &info.spec {
        JobSpec::Index(params) => {
            let on_progress = |p: &IndexProgress| {
                emit(JobProgress::Index(p.clone()), p.phase == index::Phase::Done)
            };
            let hooks = index::RunHooks {
                on_progress: &on_progress,
            };
            index::run(lib, id, params, control, &hooks)?.map(|_| ())
        }
        JobSpec::FileOp(params) => {
            let on_progress = |p: &FileOpProgress| emit(JobProgress::FileOp(p.clone()), false);
            match crate::fileops::run(lib, id, params, control, &on_progress)? {
                Ok(done) => {
                    failures = JobProgress::FileOp(done.clone()).failures();
                    let progress = serde_json::to_string(&done)?;
                    lib.writer.run(move |c| {
                        c.execute(
                            "UPDATE jobs SET progress = ?2 WHERE id = ?1",
                            params![id, progress],
                        )?;
                        Ok(())
                    })?;
                    Ok(())
                }
                Err(stop) => Err(stop),
            }
        }
    };
    match stopped {
        Ok(()) => match failures {
            None => finish(lib, id, &info.spec, JobState::Completed, None),
            Some(why) => finish(
                lib,
                id,
                &info.spec,
                JobState::CompletedWithErrors,
                Some(why),
            ),
        },
        Err(Stop::Cancel) => finish(lib, id, &info.spec, JobState::Cancelled, None),
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

/// Records a job's end and the matching location state, dropping its checkpoint.
fn finish(
    lib: &Library,
    id: i64,
    spec: &JobSpec,
    state: JobState,
    error: Option<String>,
) -> Result<()> {
    let spec = spec.clone();
    let device_row = lib.device_row;
    lib.writer.transaction(move |tx| {
        tx.execute(
            "UPDATE jobs SET state = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, state.as_str(), error, now_ms()],
        )?;
        match spec {
            JobSpec::Index(p) => {
                index::clear_checkpoint(tx, id)?;
                if !state.ran_to_end() {
                    tx.execute(
                        "UPDATE locations SET state = 'partial' WHERE id = ?1 AND last_job_id = ?2",
                        params![p.location_id, id],
                    )?;
                }
            }
            JobSpec::FileOp(p) => {
                let progress: String =
                    tx.query_row("SELECT progress FROM jobs WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                let progress: FileOpProgress = serde_json::from_str(&progress).unwrap_or_default();
                let (mut summary, undo) = crate::fileops::summarize(tx, id, &p, &progress)?;
                if let Some(e) = &error {
                    summary["error"] = serde_json::Value::String(e.clone());
                }
                let outcome = match state {
                    JobState::Completed => crate::audit::Outcome::Completed,
                    JobState::CompletedWithErrors => crate::audit::Outcome::CompletedWithErrors,
                    JobState::Cancelled => crate::audit::Outcome::Cancelled,
                    _ => crate::audit::Outcome::Failed,
                };
                let kind = if p.undoes.is_some() {
                    "undo".to_string()
                } else {
                    format!("file.{}", p.op.as_str())
                };
                crate::audit::append(
                    tx,
                    device_row,
                    &crate::audit::Record {
                        kind,
                        action: p.action.clone(),
                        targets: p.targets.clone(),
                        outcome,
                        summary,
                        undo,
                        job_id: Some(id),
                        undoes: p.undoes,
                        created_at: p.committed_at,
                    },
                )?;
            }
        }
        Ok(())
    })
}
