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
