//! The sending job of a push: grants the receiving device its sources, asks it to receive them,
//! and follows its receiving job to the end (see the module above).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{PushRequest, RemoteJob, Transport, wait_transport};
use crate::audit::{self, Outcome};
use crate::control::{Control, Stop};
use crate::fileops::{self, ConflictPolicy, OpKind};
use crate::library::Library;
use crate::names::JsonPath;
use crate::runner::store_progress;
use crate::runner::{End, JobKind};
use crate::{Error, Result};

/// What a sending job was asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PushJob {
    /// The receiving device (network id), and its name when the job was made.
    pub device: String,
    pub device_name: String,
    /// Names this push on both devices.
    pub token: String,
    /// Paths here.
    pub sources: Vec<JsonPath>,
    /// Where they go there.
    pub dest: JsonPath,
    pub policy: ConflictPolicy,
    pub move_source: bool,
    pub action: serde_json::Value,
    pub targets: Vec<String>,
    pub committed_at: i64,
}

/// Where a sending job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PushPhase {
    #[default]
    Sending,
    /// The receiving device cannot be reached: the job tries again until it can.
    Waiting,
    Done,
}

/// Progress of a sending job: the receiving job's, as that device reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PushProgress {
    /// Where the job is (always present: tells this progress apart from other kinds').
    pub push: PushPhase,
    pub to: String,
    /// The receiving job on the other device, and its state.
    pub remote_job: Option<i64>,
    pub remote_state: Option<String>,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub bytes_resumed: u64,
    pub verified: u64,
    pub skipped: u64,
    pub failed: u64,
    pub sources_removed: u64,
    pub sources_kept: u64,
    pub waiting: Option<String>,
    pub errors: Vec<String>,
}

impl PushProgress {
    fn follow(&mut self, job: &RemoteJob) {
        self.remote_job = Some(job.job);
        self.remote_state = Some(job.state.clone());
        if let Some(p) = &job.progress {
            self.files_total = p.files_total;
            self.files_done = p.files_done;
            self.bytes_total = p.bytes_total;
            self.bytes_done = p.bytes_done;
            self.bytes_resumed = p.bytes_resumed;
            self.verified = p.verified;
            self.skipped = p.skipped;
            self.failed = p.failed;
            self.sources_removed = p.sources_removed;
            self.sources_kept = p.sources_kept;
            self.errors = p.errors.clone();
        }
    }
}

/// The sending job kind.
pub struct PushKind;

fn follow_remote(
    lib: &Library,
    id: i64,
    transport: &dyn Transport,
    params: &PushJob,
    control: &Control,
    progress: &mut PushProgress,
    publish: &dyn Fn(&PushProgress, bool),
) -> Result<std::result::Result<RemoteJob, Stop>> {
    let req = PushRequest {
        token: params.token.clone(),
        sources: params.sources.clone(),
        dest: params.dest.clone(),
        policy: params.policy,
        move_source: params.move_source,
        action: params.action.clone(),
    };
    let mut started = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        if let Some(stop) = control.stopped() {
            if stop == Stop::Cancel && started {
                // Best effort: the receiver's job is cancelled with this one.
                let _ = transport.push_cancel(&params.device, &params.token);
            }
            return Ok(Err(stop));
        }
        let r = if started {
            transport.push_status(&params.device, &params.token)
        } else {
            transport.push(&params.device, &req)
        };
        match r {
            Ok(job) => {
                started = true;
                backoff = Duration::from_millis(500);
                progress.push = PushPhase::Sending;
                progress.waiting = None;
                progress.follow(&job);
                publish(progress, false);
                store_progress(lib, id, progress)?;
                if job.is_final() {
                    return Ok(Ok(job));
                }
                sleep(control, Duration::from_millis(200));
            }
            Err(Error::Unreachable(why)) => {
                progress.push = PushPhase::Waiting;
                progress.waiting = Some(why);
                publish(progress, true);
                store_progress(lib, id, progress)?;
                sleep(control, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sleeps up to `d`, waking early when the job is stopped.
fn sleep(control: &Control, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && control.stopped().is_none() {
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl JobKind for PushKind {
    const KIND: &'static str = "transfer.push";
    const TAG: &'static str = "transfer_push";
    type Params = PushJob;
    type Progress = PushProgress;

    fn had_started(p: &PushProgress) -> bool {
        p.remote_job.is_some()
    }

    fn failures(p: &PushProgress) -> Option<String> {
        (p.failed > 0 || p.sources_kept > 0).then(|| {
            let first = p
                .errors
                .first()
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default();
            format!(
                "{} items failed, {} sources kept on {}{first}",
                p.failed, p.sources_kept, p.to
            )
        })
    }

    fn run(
        lib: &Arc<Library>,
        id: i64,
        params: &PushJob,
        control: &Control,
        progress: &(dyn Fn(&PushProgress, bool) + Sync),
    ) -> Result<std::result::Result<Option<String>, Stop>> {
        let transport = match wait_transport(lib, control) {
            Ok(t) => t,
            Err(stop) => return Ok(Err(stop)),
        };
        let mut p = PushProgress {
            to: params.device_name.clone(),
            ..PushProgress::default()
        };
        transport.grant(&params.token, &params.device, &params.sources);
        let outcome = follow_remote(
            lib,
            id,
            transport.as_ref(),
            params,
            control,
            &mut p,
            progress,
        );
        // Shut down: the grant comes back when the job resumes; the receiver waits meanwhile.
        transport.ungrant(&params.token);
        let job = match outcome? {
            Ok(job) => job,
            Err(stop) => return Ok(Err(stop)),
        };
        p.push = PushPhase::Done;
        store_progress(lib, id, &p)?;
        progress(&p, true);
        match job.state.as_str() {
            "completed" | "completed_with_errors" => Ok(Ok(Self::failures(&p))),
            other => Err(Error::Invalid(format!(
                "{} did not receive the files ({other}): {}",
                params.device_name,
                job.error.unwrap_or_else(|| "no reason given".into())
            ))),
        }
    }

    fn finish(tx: &rusqlite::Transaction<'_>, end: &End<'_, PushJob>) -> Result<()> {
        let p = end.params;
        let progress: PushProgress = crate::runner::stored_progress(tx, end.id)?;
        let mut summary = serde_json::json!({
            "to": p.device_name,
            "remote_job": progress.remote_job,
            "files": progress.files_done,
            "bytes": progress.bytes_done,
            "verified": progress.verified,
            "skipped": progress.skipped,
            "failed": progress.failed,
            "bytes_resumed": progress.bytes_resumed,
            "sources_removed": progress.sources_removed,
            "sources_kept": progress.sources_kept,
            "errors": progress.errors,
        });
        if let Some(e) = end.error {
            summary["error"] = serde_json::Value::String(e.to_owned());
        }
        let outcome = Outcome::of_job(end.state);
        audit::append(
            tx,
            end.device_row,
            &audit::Record {
                kind: fileops::audit_kind(
                    if p.move_source {
                        OpKind::Move
                    } else {
                        OpKind::Copy
                    },
                    false,
                )
                .to_owned(),
                action: p.action.clone(),
                targets: p.targets.clone(),
                outcome,
                summary,
                undo: None,
                job_id: Some(end.id),
                undoes: None,
                created_at: p.committed_at,
            },
        )?;
        Ok(())
    }
}
