//! Logging a store that keeps failing: once when the outage starts, a reminder
//! at most every `REMIND_EVERY` while it lasts, and once when it ends. Background
//! loops (the dispatcher, the lease keeper, the purge) retry a failing database
//! every second or so for as long as it is down; one line per attempt would bury
//! everything else in the log.

use std::time::Duration;

use std::time::Instant;

/// How often a lasting outage is logged again.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// One background loop's view of the store being down.
#[derive(Debug)]
pub struct Outage {
    /// What was being attempted, such as "claiming deliveries".
    what: &'static str,
    /// When the first failure of the current outage happened.
    since: Option<Instant>,
    last_logged: Option<Instant>,
    failures: u64,
}

impl Outage {
    pub fn new(what: &'static str) -> Self {
        Outage {
            what,
            since: None,
            last_logged: None,
            failures: 0,
        }
    }

    /// Records a failed attempt, logging it if it starts an outage or a reminder
    /// is due.
    pub fn failed(&mut self, error: &anyhow::Error) {
        self.failed_at(error, Instant::now());
    }

    /// `failed` at `now`; whether it logged.
    fn failed_at(&mut self, error: &anyhow::Error, now: Instant) -> bool {
        self.failures += 1;
        let what = self.what;
        match self.since {
            None => {
                self.since = Some(now);
                self.last_logged = Some(now);
                tracing::error!("{what} failed; retrying until it works: {error:#}");
                true
            }
            Some(since) if self.reminder_due(now) => {
                self.last_logged = Some(now);
                tracing::error!(
                    failures = self.failures,
                    down_for_s = now.duration_since(since).as_secs(),
                    "{what} still failing: {error:#}"
                );
                true
            }
            Some(_) => false,
        }
    }

    /// Records a successful attempt, logging the end of an outage.
    pub fn succeeded(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                failures = self.failures,
                down_for_s = since.elapsed().as_secs(),
                "{} works again",
                self.what
            );
        }
        self.failures = 0;
        self.last_logged = None;
    }

    /// Whether a store call is failing now.
    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }

    fn reminder_due(&self, now: Instant) -> bool {
        self.last_logged
            .is_none_or(|at| now.duration_since(at) >= REMIND_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_at_its_start_then_at_most_once_a_minute() {
        let mut outage = Outage::new("claiming deliveries");
        let error = anyhow::anyhow!("connection refused");
        let start = Instant::now();
        assert!(!outage.is_down());
        assert!(outage.failed_at(&error, start));
        assert!(outage.is_down());
        assert!(!outage.failed_at(&error, start + Duration::from_secs(1)));
        assert!(!outage.failed_at(&error, start + Duration::from_secs(59)));
        assert!(outage.failed_at(&error, start + Duration::from_secs(60)));
        assert!(!outage.failed_at(&error, start + Duration::from_secs(61)));
        assert_eq!(outage.failures, 5);
        outage.succeeded();
        assert!(!outage.is_down());
        assert_eq!(outage.failures, 0);
        // The next failure starts a new outage, logged at once.
        assert!(outage.failed_at(&error, start + Duration::from_secs(62)));
    }
}
