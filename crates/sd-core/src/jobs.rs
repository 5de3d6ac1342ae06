//! The job kinds this build runs, and jobs as clients see them. Each kind lives in its own module
//! as a [`JobKind`] (how it runs, what its end writes); the generic runner (`runner.rs`) knows
//! none of them. This file lists them once, in [`kinds!`]: adding a kind is its module plus one
//! line there.

use std::sync::{Arc, Mutex};

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::Control;
pub use crate::control::JobState;
use crate::library::{JobHost, Library};
use crate::runner::{self, Row};
pub use crate::runner::{JobKind, running_ids, start};
use crate::{Error, Result};

/// Declares the registered kinds: `Variant = "spec tag" => KindType`, one line each. Generates
/// [`JobSpec`] and [`JobProgress`] (one variant per kind) and the dispatch on the `kind` column.
macro_rules! kinds {
    ($($variant:ident = $tag:literal => $kind:ty),+ $(,)?) => {
        /// What a job does. A closed set: one variant per registered kind, holding its params.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(tag = "kind", content = "params")]
        pub enum JobSpec {
            $(#[serde(rename = $tag)] $variant(<$kind as JobKind>::Params),)+
        }

        /// A job's progress, by kind (serialised as the inner value; read back in the order the
        /// kinds are listed).
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(untagged)]
        pub enum JobProgress {
            $($variant(<$kind as JobKind>::Progress),)+
        }

        impl JobProgress {
            /// What the job was asked to do and could not, in words; `None` when nothing failed.
            /// Each kind decides what counts ([`JobKind::failures`]).
            pub fn failures(&self) -> Option<String> {
                match self {
                    $(JobProgress::$variant(p) => <$kind as JobKind>::failures(p),)+
                }
            }
        }

        /// Decodes a stored row's spec and progress by its `kind` column.
        fn decode(row: &Row) -> Result<(JobSpec, JobProgress)> {
            $(if row.kind == <$kind as JobKind>::KIND {
                return Ok((
                    JobSpec::$variant(runner::decode::<$kind>(row)?),
                    JobProgress::$variant(serde_json::from_str(&row.progress)?),
                ));
            })+
            Err(unknown_kind(&row.kind))
        }

        impl JobHost for Host {
            fn run(&self, lib: &Arc<Library>, id: i64, control: &Arc<Control>) {
                let kind = match lib.reader().and_then(|c| runner::row(&c, id)) {
                    Ok(row) => row.kind,
                    Err(e) => return tracing::error!(error = %e, "reading the job"),
                };
                $(if kind == <$kind as JobKind>::KIND {
                    let base = Mutex::new(None);
                    let publish = |p: Option<(&<$kind as JobKind>::Progress, bool)>| {
                        self.snapshot(lib, id, &base, p.map(|(p, paused)| {
                            (JobProgress::$variant(p.clone()), paused)
                        }))
                    };
                    return runner::drive::<$kind>(lib, id, control, &publish);
                })+
                tracing::error!(error = %unknown_kind(&kind), "running the job");
            }

            fn end(&self, lib: &Library, id: i64, state: JobState) -> Result<()> {
                let kind = runner::row(&lib.reader()?, id)?.kind;
                $(if kind == <$kind as JobKind>::KIND {
                    runner::end::<$kind>(lib, id, state, None)?;
                    self.publish(lib, id);
                    return Ok(());
                })+
                Err(unknown_kind(&kind))
            }

            fn publish(&self, lib: &Library, id: i64) {
                if let Ok(info) = get(lib, id) {
                    (self.publish)(info);
                }
            }
        }
    };
}

kinds! {
    FileOp = "file_op" => crate::fileops::FileOpKind,
    Index = "index" => crate::index::IndexJob,
    TransferPull = "transfer_pull" => crate::transfer::PullKind,
    TransferPush = "transfer_push" => crate::transfer::PushKind,
    Sidecar = "sidecar" => crate::sidecar::SidecarJob,
}

fn unknown_kind(kind: &str) -> Error {
    Error::Invalid(format!(
        "unknown job kind {kind:?} in the database (written by a newer Spacedrive?)"
    ))
}

impl JobProgress {
    /// The progress of an index job.
    pub fn index(&self) -> Option<&crate::index::IndexProgress> {
        match self {
            JobProgress::Index(p) => Some(p),
            _ => None,
        }
    }

    /// The progress of a file-operation job.
    pub fn file_op(&self) -> Option<&crate::fileops::FileOpProgress> {
        match self {
            JobProgress::FileOp(p) => Some(p),
            _ => None,
        }
    }

    /// The progress of a sidecar job.
    pub fn sidecar(&self) -> Option<&crate::sidecar::SidecarProgress> {
        match self {
            JobProgress::Sidecar(p) => Some(p),
            _ => None,
        }
    }
}

/// A job as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// The job host lent to every library: runs the kinds listed in [`kinds!`] and hands every
/// change of a job, as a [`JobInfo`], to `publish` (the node puts it on the event bus).
pub struct Host {
    publish: Box<dyn Fn(JobInfo) + Send + Sync>,
}

impl Host {
    pub fn new(publish: impl Fn(JobInfo) + Send + Sync + 'static) -> Arc<Host> {
        Arc::new(Host {
            publish: Box::new(publish),
        })
    }

    /// Publishes the job's row (`progress` `None`) or a snapshot of it running with `progress`,
    /// built from the last row read (`base`) rather than from the database.
    fn snapshot(
        &self,
        lib: &Library,
        id: i64,
        base: &Mutex<Option<JobInfo>>,
        progress: Option<(JobProgress, bool)>,
    ) {
        let mut base = base.lock().unwrap_or_else(|p| p.into_inner());
        match progress {
            None => {
                if let Ok(info) = get(lib, id) {
                    *base = Some(info.clone());
                    (self.publish)(info);
                }
            }
            Some((progress, paused)) => {
                if let Some(info) = base.as_ref() {
                    let mut snapshot = info.clone();
                    snapshot.progress = progress;
                    snapshot.state = if paused {
                        JobState::Paused
                    } else {
                        JobState::Running
                    };
                    (self.publish)(snapshot);
                }
            }
        }
    }
}

const COLUMNS: &str =
    "id, kind, state, params, progress, error, resumes, created_at, started_at, finished_at";

fn from_row(lib: &Library, r: &rusqlite::Row<'_>) -> rusqlite::Result<JobInfo> {
    let row = Row {
        kind: r.get(1)?,
        state: JobState::parse(&r.get::<_, String>(2)?).map_err(|e| e.into_sql(2))?,
        spec: r.get(3)?,
        progress: r.get(4)?,
    };
    let (spec, progress) = decode(&row).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(JobInfo {
        id: r.get(0)?,
        library_id: lib.id,
        kind: row.kind,
        state: row.state,
        spec,
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

/// Pauses a running job at its next checkpoint.
pub fn pause(lib: &Arc<Library>, id: i64) -> Result<JobInfo> {
    get(lib, id)?;
    runner::pause(lib, id)?;
    get(lib, id)
}

/// Resumes a paused job (also one paused before the daemon restarted).
pub fn resume(lib: &Arc<Library>, id: i64) -> Result<JobInfo> {
    get(lib, id)?;
    runner::resume(lib, id)?;
    get(lib, id)
}

/// Cancels a job. What it already committed stays; an index job leaves its location `partial`.
pub fn cancel(lib: &Arc<Library>, id: i64) -> Result<JobInfo> {
    get(lib, id)?;
    runner::cancel(lib, id)?;
    get(lib, id)
}

/// Restarts every job that was queued or running when the library was last closed.
pub fn resume_interrupted(lib: &Arc<Library>) -> Result<Vec<i64>> {
    runner::resume_interrupted(lib)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec a kind's module writes (`runner::insert`, tagged with `JobKind::TAG`) is the
    /// spec clients read (`JobSpec`, tagged by the literal in `kinds!`).
    #[test]
    fn spec_tags_agree_with_the_kinds() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, kind TEXT, state TEXT, params TEXT, progress TEXT, created_at INTEGER)",
        )
        .unwrap();
        let mut conn = conn;
        let tx = conn.transaction().unwrap();
        let index = crate::index::IndexParams {
            location_id: 3,
            initial: true,
            subtrees: vec![],
        };
        runner::insert::<crate::index::IndexJob>(&tx, &index, &Default::default()).unwrap();
        let op = crate::fileops::FileOpJob {
            op: crate::fileops::OpKind::Copy,
            policy: crate::fileops::ConflictPolicy::Skip,
            action: serde_json::json!({}),
            targets: vec![],
            undoes: None,
            committed_at: 1,
        };
        runner::insert::<crate::fileops::FileOpKind>(&tx, &op, &Default::default()).unwrap();
        let rows: Vec<(String, String, String, String)> = tx
            .prepare("SELECT kind, state, params, progress FROM jobs ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let decoded: Vec<_> = rows
            .into_iter()
            .map(|(kind, state, spec, progress)| {
                let row = Row {
                    kind,
                    state: JobState::parse(&state).unwrap(),
                    spec,
                    progress,
                };
                let typed: JobSpec = serde_json::from_str(&row.spec).unwrap();
                (decode(&row).unwrap(), typed)
            })
            .collect();
        assert!(matches!(
            &decoded[0],
            ((JobSpec::Index(p), JobProgress::Index(_)), JobSpec::Index(_)) if p.location_id == 3
        ));
        assert!(matches!(
            &decoded[1],
            (
                (JobSpec::FileOp(_), JobProgress::FileOp(_)),
                JobSpec::FileOp(_)
            )
        ));
        let bad = Row {
            kind: "thumbnail".into(),
            state: JobState::Queued,
            spec: "{}".into(),
            progress: "{}".into(),
        };
        assert!(decode(&bad).is_err());
    }
}
