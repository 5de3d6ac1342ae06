//! The event bus: job progress and state changes, fanned out to every subscribed client.

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde::{Deserialize, Serialize};

use crate::jobs::JobInfo;

/// Something that happened in the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A job's progress or state changed.
    Job(JobInfo),
}

/// Cloneable handle to the bus.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Sender<Event>>>>,
}

impl EventBus {
    /// A new subscription. A subscriber that falls more than 1024 events behind misses events
    /// rather than slowing the engine down; job events are full snapshots, so the next one catches up.
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = bounded(1024);
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Sends `event` to every live subscriber and forgets the ones that hung up.
    pub fn emit(&self, event: Event) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| {
            !matches!(
                s.try_send(event.clone()),
                Err(TrySendError::Disconnected(_))
            )
        });
    }
}
