//! Pause / resume / cancel signalling between a job's owner and the threads doing its work.

use std::sync::{Condvar, Mutex};

/// Why a job's threads stopped before finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The user cancelled: the job ends as `cancelled`.
    Cancel,
    /// The daemon is shutting down: the job stays resumable and continues at next start.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Run,
    Pause,
    Stop(Stop),
}

/// Shared by every thread of one job. Workers call [`Control::check`] between units of work.
#[derive(Debug)]
pub struct Control {
    want: Mutex<Want>,
    cv: Condvar,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            want: Mutex::new(Want::Run),
            cv: Condvar::new(),
        }
    }
}

impl Control {
    /// Blocks while paused; returns `Err` when the job must stop.
    pub fn check(&self) -> Result<(), Stop> {
        let mut w = self.want.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *w {
                Want::Run => return Ok(()),
                Want::Stop(s) => return Err(s),
                Want::Pause => w = self.cv.wait(w).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    /// Non-blocking: whether a stop was requested.
    pub fn stopped(&self) -> Option<Stop> {
        match *self.want.lock().unwrap_or_else(|p| p.into_inner()) {
            Want::Stop(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the job is paused.
    pub fn paused(&self) -> bool {
        *self.want.lock().unwrap_or_else(|p| p.into_inner()) == Want::Pause
    }

    pub fn pause(&self) {
        self.set(Want::Pause, false);
    }

    pub fn resume(&self) {
        self.set(Want::Run, false);
    }

    pub fn stop(&self, why: Stop) {
        self.set(Want::Stop(why), true);
    }

    fn set(&self, to: Want, even_if_stopped: bool) {
        let mut w = self.want.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*w, Want::Stop(_)) && !even_if_stopped {
            return;
        }
        *w = to;
        self.cv.notify_all();
    }
}

/// Lifecycle of a job, as stored in the `jobs.state` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Completed,
        JobState::CompletedWithErrors,
        JobState::Failed,
        JobState::Cancelled,
    ];

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

    /// The state stored as `s`; a value this build does not know is an error, never a guess.
    pub fn parse(s: &str) -> Result<JobState, UnknownState> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState {
                what: "job",
                value: s.to_owned(),
            })
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

/// A state column holding a value this build does not know (written by a newer build, or edited).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} state {value:?} in the database")]
pub struct UnknownState {
    /// Whose state: `job`, `file operation item`, …
    pub what: &'static str,
    pub value: String,
}

impl UnknownState {
    /// As a column-conversion error, for `rusqlite` row mappers.
    pub fn into_sql(self, column: usize) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            Box::new(self),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_round_trip_and_unknown_is_an_error() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        let e = JobState::parse("exploded").unwrap_err();
        assert_eq!(e.value, "exploded");
        assert!(JobState::parse("").is_err());
        assert!(JobState::parse("Cancelled").is_err());
    }
}
