//! What operators see of one plugin's polling, and where the scheduler keeps it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

/// What operators see of one plugin's polling (`GET /api/plugins`, `poll`).
#[derive(Debug, Clone, Default)]
pub struct PollStatus {
    pub interval: Duration,
    /// When the last poll ended, successful or not.
    pub last_poll_at: Option<SystemTime>,
    pub last_success_at: Option<SystemTime>,
    pub next_poll_at: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub polling: bool,
    /// The saved cursor, as of the last successful poll (or the start).
    pub cursor: Option<String>,
    /// Whether this node holds the plugin's poll lease now (only the holder polls
    /// it on its timer).
    pub lease_held: bool,
}

impl PollStatus {
    pub fn to_json(&self) -> Value {
        let time =
            |at: Option<SystemTime>| at.map(|at| humantime::format_rfc3339_millis(at).to_string());
        json!({
            "interval_seconds": self.interval.as_secs_f64(),
            "last_poll_at": time(self.last_poll_at),
            "last_success_at": time(self.last_success_at),
            "next_poll_at": time(self.next_poll_at),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "polling": self.polling,
            "cursor": self.cursor,
            "lease_held": self.lease_held,
        })
    }
}

/// One polling plugin: its id, the lock that keeps it from being polled twice at
/// once, and its status.
pub(super) struct PollingPlugin {
    pub(super) id: String,
    /// Held for the whole of a poll: the "never twice at once" rule.
    pub(super) running: Arc<tokio::sync::Mutex<()>>,
    /// Polls finished so far; lets the timer tell that a poll ended (and its
    /// `Finished` is on the way) since the timer was set.
    pub(super) completed: AtomicU64,
    pub(super) status: Mutex<PollStatus>,
}

impl PollingPlugin {
    pub(super) fn new(id: &str, interval: Duration) -> Self {
        PollingPlugin {
            id: id.to_string(),
            running: Arc::default(),
            completed: AtomicU64::new(0),
            status: Mutex::new(PollStatus {
                interval,
                ..PollStatus::default()
            }),
        }
    }

    pub(super) fn status(&self) -> std::sync::MutexGuard<'_, PollStatus> {
        // Every update is a few plain assignments; a poisoned lock is consistent.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}
