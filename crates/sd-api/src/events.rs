//! `events.subscribe`: the one method answered by a stream. [`subscribe`] yields the stream's
//! lines; a transport writes each one as it comes and stops when the iterator ends or the
//! client hangs up.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use sd_core::Node;
use sd_core::events::Event;
use sd_core::jobs::{self, JobInfo};
use sd_core::library::Library;

use crate::StreamLine;

/// How long a stream stays silent before a heartbeat (so a vanished client is noticed).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// The lines of one subscription: first the current state (of job `job`, or of every unfinished
/// job of the library named, or of all libraries), then events as they happen. With `job`, it
/// ends after the event in which that job reaches a final state; an error is the last line.
pub fn subscribe(node: &Node, library: Option<&str>, job: Option<i64>) -> Subscription {
    // Subscribed before the snapshot is read, so nothing happens unseen in between.
    let rx = node.bus.subscribe();
    let mut sub = Subscription {
        rx,
        pending: Vec::new(),
        libs: Vec::new(),
        filtered: library.is_some() || job.is_some(),
        job,
        done: false,
    };
    sub.libs = if sub.filtered {
        match node.library(library) {
            Ok(l) => vec![l],
            Err(e) => {
                sub.finish_with(StreamLine::Error(e.into()));
                return sub;
            }
        }
    } else {
        node.libraries()
    };
    for lib in &sub.libs {
        let snapshot: Vec<JobInfo> = match job {
            Some(id) => match jobs::get(lib, id) {
                Ok(j) => vec![j],
                Err(e) => {
                    sub.pending = vec![StreamLine::Error(e.into())];
                    break;
                }
            },
            None => match jobs::list(lib, 200) {
                Ok(list) => list.into_iter().filter(|j| !j.state.is_final()).collect(),
                Err(e) => {
                    sub.pending = vec![StreamLine::Error(e.into())];
                    break;
                }
            },
        };
        sub.pending.extend(
            snapshot
                .into_iter()
                .map(|j| StreamLine::Event(Event::Job(j))),
        );
    }
    // Lines are handed out from the back.
    sub.pending.reverse();
    sub
}

/// An open subscription; see [`subscribe`].
pub struct Subscription {
    rx: Receiver<Event>,
    /// Lines to send before waiting for events, last first.
    pending: Vec<StreamLine>,
    libs: Vec<Arc<Library>>,
    /// Events only of `libs[0]` (a library or a job was named).
    filtered: bool,
    job: Option<i64>,
    done: bool,
}

impl Subscription {
    fn finish_with(&mut self, line: StreamLine) {
        self.pending = vec![line];
        self.libs.clear();
    }

    /// Whether `line` ends the stream: an error, or the followed job in a final state.
    fn ends(&self, line: &StreamLine) -> bool {
        match line {
            StreamLine::Error(_) => true,
            StreamLine::Event(Event::Job(j)) => self.job.is_some() && j.state.is_final(),
            _ => false,
        }
    }

    fn wanted(&self, j: &JobInfo) -> bool {
        !(self.filtered && self.libs.first().is_some_and(|l| l.id != j.library_id)
            || self.job.is_some_and(|id| id != j.id))
    }
}

impl Iterator for Subscription {
    type Item = StreamLine;

    fn next(&mut self) -> Option<StreamLine> {
        if self.done {
            return None;
        }
        if let Some(line) = self.pending.pop() {
            self.done = self.ends(&line);
            return Some(line);
        }
        loop {
            let line = match self.rx.recv_timeout(HEARTBEAT) {
                Ok(Event::Job(j)) if self.wanted(&j) => StreamLine::Event(Event::Job(j)),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    // A job may have ended between snapshot and subscription; re-check it.
                    if let Some(id) = self.job
                        && let Some(lib) = self.libs.first()
                        && let Ok(j) = jobs::get(lib, id)
                        && j.state.is_final()
                    {
                        StreamLine::Event(Event::Job(j))
                    } else {
                        StreamLine::Heartbeat(true)
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            };
            self.done = self.ends(&line);
            return Some(line);
        }
    }
}
