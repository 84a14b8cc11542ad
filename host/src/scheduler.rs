//! Poll timers: when each polling plugin is polled next, and the rules that decide
//! it. One task owns every timer in a `BTreeSet` ordered by due time and sleeps
//! until the earliest, so a host with thousands of polling plugins keeps one
//! timer armed in tokio and does no work at all between polls (BENCHMARKS.md). The
//! polls themselves run in their own tasks, at most `MAX_CONCURRENT_POLLS` at once.
//!
//! Rules: the interval is the manifest's `poll-interval-seconds` unless
//! `[plugins.<id>] poll_interval` overrides it; each wait gets up to
//! `JITTER_FRACTION` more at random, so plugins started together drift apart; a
//! plugin's `next-poll-seconds` hint replaces one wait; after a failure the cursor
//! stays and the wait doubles per consecutive failure up to `MAX_BACKOFF` (or the
//! interval, if longer), and one success resets it. A per-plugin lock means one
//! plugin is never polled twice at once: the timer skips a plugin being polled,
//! and `poll_now` waits for it.
//!
//! Timers follow the registry (which the reload task changes): a new polling
//! plugin gets a timer, a removed one loses it, and a replaced one continues with
//! the new version's interval from its last poll; its cursor is in the store under
//! its id, so it is kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify, OwnedMutexGuard, Semaphore};
use tokio::time::Instant;

use crate::config::Config;
use crate::plugin::LoadedPlugin;
use crate::poller::{poll_once, PollFailure, PollReport};
use crate::registry::Registry;
use crate::store::EventStore;

/// The longest wait after failures, unless the interval itself is longer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Up to this fraction of a wait is added at random.
pub const JITTER_FRACTION: f64 = 0.1;
/// The first poll after start or load comes within this much (or a tenth of the
/// interval, if less) of when it is due, so that a restart does not poll every
/// plugin in the same instant.
const START_SPREAD: Duration = Duration::from_secs(5);
/// Polls running at once over all plugins; the rest wait their turn. Well below
/// the instance pool (runtime.rs), which webhooks need too.
pub const MAX_CONCURRENT_POLLS: usize = 16;

/// How the last poll ended, as far as the next wait is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Success {
        hint_seconds: Option<u32>,
    },
    /// `consecutive` failures so far, from 1.
    Failure {
        consecutive: u32,
    },
}

/// The wait before the next poll. `random` is in `[0, 1)`.
pub fn next_delay(interval: Duration, ended: Ended, random: f64) -> Duration {
    match ended {
        Ended::Success {
            hint_seconds: Some(seconds),
        } => Duration::from_secs(seconds.into()),
        Ended::Success { hint_seconds: None } => with_jitter(interval, random),
        Ended::Failure { consecutive } => {
            let cap = interval.max(MAX_BACKOFF);
            let doubled = interval.saturating_mul(1 << consecutive.min(30)).min(cap);
            with_jitter(doubled, random)
        }
    }
}

fn with_jitter(wait: Duration, random: f64) -> Duration {
    wait + wait.mul_f64(JITTER_FRACTION * random.clamp(0.0, 1.0))
}

/// How often `plugin` polls, or `None` when it does not.
pub fn interval_for(plugin: &LoadedPlugin, configured: Option<Duration>) -> Option<Duration> {
    plugin
        .manifest
        .poll_interval_seconds
        .map(|seconds| configured.unwrap_or(Duration::from_secs(seconds.max(1).into())))
}

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
        })
    }
}

/// One polling plugin id.
struct Poller {
    id: String,
    /// Held for the whole of a poll: the "never twice at once" rule.
    running: Arc<tokio::sync::Mutex<()>>,
    /// Polls finished so far; lets the timer tell that a poll ended (and its
    /// `Finished` is on the way) since the timer was set.
    completed: AtomicU64,
    status: Mutex<PollStatus>,
}

impl Poller {
    fn new(id: &str, interval: Duration) -> Self {
        Poller {
            id: id.to_string(),
            running: Arc::default(),
            completed: AtomicU64::new(0),
            status: Mutex::new(PollStatus {
                interval,
                ..PollStatus::default()
            }),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, PollStatus> {
        // Every update is a few plain assignments; a poisoned lock is consistent.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sent by a finished poll to the timer task: when `id` is due next.
struct Finished {
    id: String,
    at: Instant,
}

struct Shared {
    registry: Arc<Registry>,
    store: Arc<dyn EventStore>,
    /// Notified when a poll stored events that have subscribers.
    wake_dispatcher: Arc<Notify>,
    /// `[plugins.<id>] poll_interval`.
    configured: BTreeMap<String, Duration>,
    /// Written by the timer task (add/remove on registry changes) and by `poll_now`
    /// (a plugin the timer task has not seen yet); read by the API.
    pollers: Mutex<HashMap<String, Arc<Poller>>>,
    /// From poll tasks to the timer task, its only receiver.
    finished: mpsc::UnboundedSender<Finished>,
    slots: Semaphore,
}

/// Why `poll_now` did not poll.
#[derive(Debug, thiserror::Error)]
pub enum PollNowError {
    #[error("no plugin {0} is loaded")]
    NotFound(String),
    #[error("plugin {0} does not poll (its manifest has no poll-interval-seconds)")]
    NotPolling(String),
}

/// The handle the API uses. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

/// The timer task; `Host::serve` runs it.
pub struct TimerTask {
    shared: Arc<Shared>,
    finished: mpsc::UnboundedReceiver<Finished>,
    registry_changes: watch::Receiver<u64>,
    /// Due polls, earliest first; the `u64` keeps equal instants apart.
    queue: BTreeSet<(Instant, u64, String)>,
    timers: HashMap<String, Timer>,
    sequence: u64,
}

struct Timer {
    poller: Arc<Poller>,
    /// The loaded version the timer was set for, to notice replacements.
    sha256: String,
    /// `None` while a poll is running (its `Finished` sets the next).
    due: Option<(Instant, u64)>,
    /// `poller.completed` when `due` was set.
    seen_completed: u64,
}

impl Scheduler {
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        store: Arc<dyn EventStore>,
        wake_dispatcher: Arc<Notify>,
    ) -> (Scheduler, TimerTask) {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let registry_changes = registry.subscribe();
        let shared = Arc::new(Shared {
            registry,
            store,
            wake_dispatcher,
            configured: config
                .plugins
                .iter()
                .filter_map(|(id, plugin)| Some((id.clone(), plugin.poll_interval?)))
                .collect(),
            pollers: Mutex::default(),
            finished: finished_tx,
            slots: Semaphore::new(MAX_CONCURRENT_POLLS),
        });
        let task = TimerTask {
            shared: shared.clone(),
            finished: finished_rx,
            registry_changes,
            queue: BTreeSet::new(),
            timers: HashMap::new(),
            sequence: 0,
        };
        (Scheduler { shared }, task)
    }

    /// The poll status of `id`, if it is a polling plugin the scheduler knows.
    pub fn status(&self, id: &str) -> Option<PollStatus> {
        let poller = self.shared.pollers().get(id).cloned()?;
        let status = poller.status().clone();
        Some(status)
    }

    /// Polls `id` now, after any poll of it already running, and returns the
    /// outcome and when the next poll is due.
    pub async fn poll_now(
        &self,
        id: &str,
    ) -> Result<(Result<PollReport, PollFailure>, SystemTime), PollNowError> {
        let plugin = self
            .shared
            .registry
            .get(id)
            .ok_or_else(|| PollNowError::NotFound(id.to_string()))?;
        let interval = self
            .shared
            .interval_for(&plugin)
            .ok_or_else(|| PollNowError::NotPolling(id.to_string()))?;
        let poller = self
            .shared
            .pollers()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Poller::new(id, interval)))
            .clone();
        let guard = poller.running.clone().lock_owned().await;
        Ok(self.shared.clone().run(poller, guard).await)
    }
}

impl Shared {
    fn pollers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Poller>>> {
        self.pollers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interval_for(&self, plugin: &LoadedPlugin) -> Option<Duration> {
        interval_for(plugin, self.configured.get(plugin.id()).copied())
    }

    /// Runs one poll of `poller` (whose lock `guard` is), records how it went, and
    /// tells the timer task when the next is due.
    async fn run(
        self: Arc<Self>,
        poller: Arc<Poller>,
        guard: OwnedMutexGuard<()>,
    ) -> (Result<PollReport, PollFailure>, SystemTime) {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        poller.status().polling = true;
        // The version serving now, as for a webhook; it may differ from the one the
        // timer was set for.
        let result = match self.registry.get(&poller.id) {
            Some(plugin) if plugin.manifest.poll_interval_seconds.is_some() => {
                poll_once(&plugin, &*self.store, &self.registry, &self.wake_dispatcher).await
            }
            _ => Err(PollFailure::Plugin(
                format!(
                    "plugin {} is no longer loaded as a polling plugin",
                    poller.id
                ),
                axum::http::StatusCode::NOT_FOUND,
            )),
        };
        let now = SystemTime::now();
        let (delay, next_at) = {
            let mut status = poller.status();
            status.polling = false;
            status.last_poll_at = Some(now);
            let ended = match &result {
                Ok(report) => {
                    status.cursor = report.cursor.clone();
                    status.consecutive_failures = 0;
                    status.last_error = None;
                    status.last_success_at = Some(now);
                    Ended::Success {
                        hint_seconds: report.next_poll_seconds,
                    }
                }
                Err(failure) => {
                    status.consecutive_failures += 1;
                    status.last_error = Some(failure.summary());
                    Ended::Failure {
                        consecutive: status.consecutive_failures,
                    }
                }
            };
            let delay = next_delay(status.interval, ended, fastrand::f64());
            status.next_poll_at = Some(now + delay);
            (delay, now + delay)
        };
        if let Err(failure) = &result {
            tracing::warn!(
                plugin = %poller.id,
                retry_in_ms = delay.as_millis() as u64,
                "poll failed: {}",
                failure.summary()
            );
        }
        poller.completed.fetch_add(1, Ordering::SeqCst);
        drop(guard);
        // The timer task outlives every poll unless the host is shutting down.
        let _ = self.finished.send(Finished {
            id: poller.id.clone(),
            at: Instant::now() + delay,
        });
        (result, next_at)
    }
}

impl TimerTask {
    /// Runs for as long as the host does.
    pub async fn run(mut self) {
        self.follow_registry().await;
        loop {
            let next = self.queue.first().map(|(at, _, _)| *at);
            tokio::select! {
                changed = self.registry_changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.follow_registry().await;
                }
                Some(finished) = self.finished.recv() => self.finished(finished),
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.fire_due();
                }
            }
        }
    }

    /// Adds, re-times and removes timers to match the registry.
    async fn follow_registry(&mut self) {
        self.registry_changes.borrow_and_update();
        let mut polling = HashMap::new();
        for (id, entry) in self.shared.registry.snapshot() {
            let Some(plugin) = entry.current else {
                continue;
            };
            if let Some(interval) = self.shared.interval_for(&plugin) {
                polling.insert(id, (plugin.sha256.clone(), interval));
            }
        }
        let gone: Vec<String> = self
            .timers
            .keys()
            .filter(|id| !polling.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(timer) = self.timers.remove(&id) {
                if let Some((at, seq)) = timer.due {
                    self.queue.remove(&(at, seq, id.clone()));
                }
            }
            self.shared.pollers().remove(&id);
            tracing::info!(plugin = %id, "poll timer removed");
        }
        for (id, (sha256, interval)) in polling {
            match self.timers.get_mut(&id) {
                Some(timer) if timer.sha256 == sha256 => {}
                Some(timer) => {
                    // A new version: its interval, from the last poll, and a fresh
                    // start for the backoff.
                    timer.sha256 = sha256;
                    let since_last = {
                        let mut status = timer.poller.status();
                        status.interval = interval;
                        status.consecutive_failures = 0;
                        status
                            .last_poll_at
                            .and_then(|at| at.elapsed().ok())
                            .unwrap_or(interval)
                    };
                    if timer.due.is_some() {
                        let wait = interval.saturating_sub(since_last);
                        self.schedule(&id, Instant::now() + wait);
                    }
                    tracing::info!(plugin = %id, interval_ms = interval.as_millis() as u64, "poll timer follows the new version");
                }
                None => {
                    let poller = self
                        .shared
                        .pollers()
                        .entry(id.clone())
                        .or_insert_with(|| Arc::new(Poller::new(&id, interval)))
                        .clone();
                    poller.status().interval = interval;
                    // Resume the rhythm of the last saved poll (a restart must not
                    // poll sooner than the interval), spread a little.
                    let since_saved = match self.shared.store.poll_cursor(&id).await {
                        Ok(Some(saved)) => {
                            poller.status().cursor = saved.cursor;
                            Duration::from_millis(
                                crate::store::now_ms().saturating_sub(saved.polled_at),
                            )
                        }
                        Ok(None) => interval,
                        Err(error) => {
                            tracing::error!(plugin = %id, "{error:#}");
                            interval
                        }
                    };
                    let spread = START_SPREAD.min(interval / 10).mul_f64(fastrand::f64());
                    let wait = interval.saturating_sub(since_saved) + spread;
                    self.timers.insert(
                        id.clone(),
                        Timer {
                            poller,
                            sha256,
                            due: None,
                            seen_completed: 0,
                        },
                    );
                    self.schedule(&id, Instant::now() + wait);
                    tracing::info!(plugin = %id, interval_ms = interval.as_millis() as u64, first_in_ms = wait.as_millis() as u64, "poll timer set");
                }
            }
        }
    }

    fn schedule(&mut self, id: &str, at: Instant) {
        let Some(timer) = self.timers.get_mut(id) else {
            return;
        };
        if let Some((old, seq)) = timer.due.take() {
            self.queue.remove(&(old, seq, id.to_string()));
        }
        self.sequence += 1;
        timer.due = Some((at, self.sequence));
        timer.seen_completed = timer.poller.completed.load(Ordering::SeqCst);
        self.queue.insert((at, self.sequence, id.to_string()));
        let wall = SystemTime::now() + at.saturating_duration_since(Instant::now());
        timer.poller.status().next_poll_at = Some(wall);
    }

    fn finished(&mut self, finished: Finished) {
        self.schedule(&finished.id, finished.at);
    }

    /// Starts the poll of every timer that is due.
    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(first) = self.queue.first().cloned() {
            if first.0 > now {
                break;
            }
            self.queue.remove(&first);
            let id = first.2;
            let Some(timer) = self.timers.get_mut(&id) else {
                continue;
            };
            timer.due = None;
            if timer.poller.completed.load(Ordering::SeqCst) != timer.seen_completed {
                // A poll (from the API) ended since this was set; its `Finished`
                // is queued and sets the next time.
                continue;
            }
            let Ok(guard) = timer.poller.running.clone().try_lock_owned() else {
                // Being polled (from the API); that poll's `Finished` re-arms this.
                continue;
            };
            let shared = self.shared.clone();
            let poller = timer.poller.clone();
            tokio::spawn(async move {
                let (_outcome, _next_at) = shared.run(poller, guard).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_interval_plus_at_most_a_tenth() {
        let interval = Duration::from_secs(60);
        let ok = Ended::Success { hint_seconds: None };
        assert_eq!(next_delay(interval, ok, 0.0), interval);
        assert_eq!(next_delay(interval, ok, 0.5), Duration::from_secs(63));
        assert!(next_delay(interval, ok, 0.999_999) < Duration::from_secs(66));
    }

    #[test]
    fn a_hint_replaces_the_interval_exactly() {
        let hint = |s| Ended::Success {
            hint_seconds: Some(s),
        };
        assert_eq!(
            next_delay(Duration::from_secs(60), hint(5), 0.9),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_delay(Duration::from_secs(60), hint(0), 0.9),
            Duration::ZERO
        );
        assert_eq!(
            next_delay(Duration::from_secs(60), hint(7200), 0.9),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap_and_always_grow_until_then() {
        let interval = Duration::from_secs(10);
        let failed = |n| Ended::Failure { consecutive: n };
        assert_eq!(
            next_delay(interval, failed(1), 0.0),
            Duration::from_secs(20)
        );
        assert_eq!(
            next_delay(interval, failed(3), 0.0),
            Duration::from_secs(80)
        );
        // The longest wait after n failures is shorter than the shortest after n+1,
        // until the cap.
        for n in 1..8 {
            assert!(
                next_delay(interval, failed(n), 0.999_999)
                    < next_delay(interval, failed(n + 1), 0.0)
            );
        }
        for n in [9, 20, 31, 1000, u32::MAX] {
            let wait = next_delay(interval, failed(n), 0.0);
            assert_eq!(wait, MAX_BACKOFF, "{n}");
        }
        // An interval above the cap is never shortened by a failure.
        let daily = Duration::from_secs(86_400);
        assert_eq!(next_delay(daily, failed(1), 0.0), daily);
    }
}
