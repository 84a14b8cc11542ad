//! Poll timers: when each polling plugin is polled next, and the rules that decide
//! it. One task owns every timer in a `BTreeSet` ordered by due time and sleeps
//! until the earliest, so a host with thousands of polling plugins keeps one
//! timer armed in tokio and does no work at all between polls (BENCHMARKS.md). The
//! polls themselves run in their own tasks, at most `MAX_CONCURRENT_POLLS` at once.
//!
//! How long each wait is: `delay`. A per-plugin lock means one plugin is never
//! polled twice at once: the timer skips a plugin being polled, and `poll_now`
//! waits for it.
//!
//! Timers follow the registry (which the reload task changes): a new polling
//! plugin gets a timer, a removed one loses it, and a replaced one continues with
//! the new version's interval from its last poll; its cursor is in the store under
//! its id, so it is kept.
//!
//! Several nodes may share the store; each plugin is polled only by the node that
//! holds its poll lease (`leases`), under the lease's fencing token. Every
//! node keeps every timer; when it fires on a node without the lease, that turn is
//! skipped (no poll, no failure). A node that takes a lease re-times the plugin to
//! the saved cursor's last poll plus the interval, so a takeover neither polls
//! early nor waits a whole new interval. A save refused because the lease changed
//! hands is a lost lease, not a plugin failure: the node stops polling the plugin
//! until it holds the lease again. The `TimerTask` runs the lease keeper and
//! releases this node's leases when it stops.

pub mod delay;
pub mod leases;
pub mod poll;
pub mod status;

pub use status::PollStatus;
use status::PollingPlugin;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Config;
use crate::ingest::Ingest;
use crate::node::NodeId;
use crate::plugins::loaded::LoadedPlugin;
use crate::plugins::registry::Registry;
use crate::schedule::delay::{first_wait, interval_for, next_delay, Ended};
use crate::schedule::leases::{HeldLeases, LeaseKeeper};
use crate::schedule::poll::{poll_once, PollFailure, PollReport};
use crate::store::{now_ms, PollBook};

/// Polls running at once over all plugins; the rest wait their turn. Well below
/// the instance pool (`plugins::runtime`), which webhooks need too.
pub const MAX_CONCURRENT_POLLS: usize = 16;
/// The longest releasing this node's poll leases at shutdown may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// To the timer task: when a plugin is due next.
enum Due {
    /// Sent by a finished poll, or a turn skipped without the lease.
    Finished { id: String, at: Instant },
    /// This node has taken `id`'s lease; its first poll is at `at`, unless a poll
    /// of it ended after `completed` was read (that poll already set the time).
    LeaseTaken {
        id: String,
        at: Instant,
        completed: u64,
    },
}

struct Shared {
    registry: Arc<Registry>,
    store: Arc<dyn PollBook>,
    /// Where a poll's events go (and the dispatcher is woken, the change published).
    ingest: Ingest,
    /// `[plugins.<id>] poll_interval`.
    configured: BTreeMap<String, Duration>,
    /// Written by the timer task (add/remove on registry changes) and by `poll_now`
    /// (a plugin the timer task has not seen yet); read by the API.
    pollers: Mutex<HashMap<String, Arc<PollingPlugin>>>,
    /// From poll tasks (and the task re-timing taken leases) to the timer task,
    /// its only receiver.
    due: mpsc::UnboundedSender<Due>,
    slots: Arc<Semaphore>,
    /// This node's poll leases: the keeper writes them, polls check them.
    leases: Arc<HeldLeases>,
    /// Asks the keeper for a round now (the timer task, when a polling plugin
    /// appears), so that a new plugin does not wait for the next round.
    keep_now: Arc<Notify>,
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

/// The timer task with the lease keeper; `Host::serve` runs it.
pub struct TimerTask {
    timers: Timers,
    keeper: LeaseKeeper,
}

struct Timers {
    shared: Arc<Shared>,
    due: mpsc::UnboundedReceiver<Due>,
    /// From the lease keeper, its only sender: plugins whose lease this node took.
    taken: mpsc::UnboundedReceiver<Vec<String>>,
    registry_changes: watch::Receiver<u64>,
    /// Due polls, earliest first; the `u64` keeps equal instants apart.
    queue: BTreeSet<(Instant, u64, String)>,
    timers: HashMap<String, Timer>,
    sequence: u64,
}

struct Timer {
    poller: Arc<PollingPlugin>,
    /// The loaded version the timer was set for, to notice replacements.
    sha256: String,
    /// `None` while a poll is running (its `Finished` sets the next).
    due: Option<(Instant, u64)>,
    /// `poller.completed` when `due` was set.
    seen_completed: u64,
}

impl Scheduler {
    /// The scheduler of node `node`, which polls only the plugins whose lease it
    /// holds.
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        store: Arc<dyn PollBook>,
        ingest: Ingest,
        node: NodeId,
    ) -> (Scheduler, TimerTask) {
        let (due_tx, due_rx) = mpsc::unbounded_channel();
        let (taken_tx, taken_rx) = mpsc::unbounded_channel();
        let registry_changes = registry.subscribe();
        let leases = Arc::new(HeldLeases::default());
        let keep_now = Arc::new(Notify::new());
        let keeper = LeaseKeeper {
            node,
            store: store.clone(),
            registry: registry.clone(),
            held: leases.clone(),
            taken: taken_tx,
            keep_now: keep_now.clone(),
        };
        let shared = Arc::new(Shared {
            registry,
            store,
            ingest,
            configured: config
                .plugins
                .iter()
                .filter_map(|(id, plugin)| Some((id.clone(), plugin.poll_interval?)))
                .collect(),
            pollers: Mutex::default(),
            due: due_tx,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS)),
            leases,
            keep_now,
        });
        let timers = Timers {
            shared: shared.clone(),
            due: due_rx,
            taken: taken_rx,
            registry_changes,
            queue: BTreeSet::new(),
            timers: HashMap::new(),
            sequence: 0,
        };
        (Scheduler { shared }, TimerTask { timers, keeper })
    }

    /// The poll status of `id`, if it is a polling plugin the scheduler knows.
    pub fn status(&self, id: &str) -> Option<PollStatus> {
        let poller = self.shared.pollers().get(id).cloned()?;
        let mut status = poller.status().clone();
        status.lease_held = self.shared.leases.token(id, now_ms()).is_some();
        Some(status)
    }

    /// Polls `id` now, after any poll of it already running, and returns the
    /// outcome and when the next poll is due. It polls under this node's lease
    /// when it holds it, and otherwise relies on the saved cursor alone: the save
    /// is refused if another node saved a poll in the meantime.
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
            .or_insert_with(|| Arc::new(PollingPlugin::new(id, interval)))
            .clone();
        let guard = poller.running.clone().lock_owned().await;
        let slot = self.shared.slot().await;
        let lease = self.shared.leases.token(id, now_ms());
        Ok(self.shared.clone().run(poller, guard, slot, lease).await)
    }
}

impl Shared {
    fn pollers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PollingPlugin>>> {
        self.pollers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interval_for(&self, plugin: &LoadedPlugin) -> Option<Duration> {
        interval_for(plugin, self.configured.get(plugin.id()).copied())
    }

    async fn slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// A timer's poll of `poller` (whose lock `guard` is): waits for a slot, then
    /// polls if this node still holds the lease, or skips this turn.
    async fn run_timed(self: Arc<Self>, poller: Arc<PollingPlugin>, guard: OwnedMutexGuard<()>) {
        let slot = self.slot().await;
        // Waiting for a slot can take a while; the lease must hold when the poll starts.
        match self.leases.token(&poller.id, now_ms()) {
            Some(token) => {
                let (_outcome, _next_at) = self.run(poller, guard, slot, Some(token)).await;
            }
            None => {
                let at = Instant::now() + skipped_turn(&poller);
                drop(guard);
                let _ = self.due.send(Due::Finished {
                    id: poller.id.clone(),
                    at,
                });
            }
        }
    }

    /// Runs one poll of `poller` (whose lock `guard` is) under the poll lease
    /// `lease` (`None`: the cursor check alone), records how it went, and tells
    /// the timer task when the next is due.
    async fn run(
        self: Arc<Self>,
        poller: Arc<PollingPlugin>,
        guard: OwnedMutexGuard<()>,
        _slot: OwnedSemaphorePermit,
        lease: Option<u64>,
    ) -> (Result<PollReport, PollFailure>, SystemTime) {
        poller.status().polling = true;
        // The version serving now, as for a webhook; it may differ from the one the
        // timer was set for.
        let result = match self.registry.get(&poller.id) {
            Some(plugin) if plugin.manifest.poll_interval_seconds.is_some() => {
                poll_once(&plugin, &*self.store, &self.ingest, lease).await
            }
            _ => Err(PollFailure::Unloaded(poller.id.clone())),
        };
        let now = SystemTime::now();
        if let (Err(PollFailure::LeaseLost(_)), Some(token)) = (&result, lease) {
            // Not the plugin's failure: another node polls it now. This node waits
            // until the keeper hands it the lease again.
            self.leases.lost(&poller.id, token);
            tracing::warn!(plugin = %poller.id, "poll lease lost during a poll; nothing was saved, and this node stops polling the plugin until it holds the lease again");
        }
        let (delay, next_at) = {
            let mut status = poller.status();
            status.polling = false;
            let ended = match &result {
                Err(PollFailure::LeaseLost(_)) => Ended::Success { hint_seconds: None },
                Ok(report) => {
                    status.last_poll_at = Some(now);
                    status.cursor = report.cursor.clone();
                    status.consecutive_failures = 0;
                    status.last_error = None;
                    status.last_success_at = Some(now);
                    Ended::Success {
                        hint_seconds: report.next_poll_seconds,
                    }
                }
                Err(failure) => {
                    status.last_poll_at = Some(now);
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
        match &result {
            // A lost lease was logged above, as what it is.
            Ok(_) | Err(PollFailure::LeaseLost(_)) => {}
            Err(failure) => tracing::warn!(
                plugin = %poller.id,
                retry_in_ms = delay.as_millis() as u64,
                "poll failed: {}",
                failure.summary()
            ),
        }
        poller.completed.fetch_add(1, Ordering::SeqCst);
        drop(guard);
        // The timer task outlives every poll unless the host is shutting down.
        let _ = self.due.send(Due::Finished {
            id: poller.id.clone(),
            at: Instant::now() + delay,
        });
        (result, next_at)
    }

    /// How long ago `id`'s saved cursor was polled (`None`: never, or unknown),
    /// noting the cursor in `poller`'s status.
    async fn since_saved(&self, id: &str, poller: &PollingPlugin) -> Option<Duration> {
        match self.store.poll_cursor(id).await {
            Ok(Some(saved)) => {
                poller.status().cursor = saved.cursor;
                Some(Duration::from_millis(
                    now_ms().saturating_sub(saved.polled_at),
                ))
            }
            Ok(None) => None,
            Err(error) => {
                tracing::error!(plugin = %id, "{error:#}");
                None
            }
        }
    }
}

/// The wait after a turn skipped because this node does not hold the lease: the
/// interval, as after a successful poll.
fn skipped_turn(poller: &PollingPlugin) -> Duration {
    let interval = poller.status().interval;
    next_delay(
        interval,
        Ended::Success { hint_seconds: None },
        fastrand::f64(),
    )
}

impl TimerTask {
    /// Sets a timer, and so a poll status, for every polling plugin loaded now.
    /// `Host::serve` calls it before it accepts connections, so that the plugins
    /// API shows each polling plugin's status from the first request on (`run`
    /// then only follows later changes of the registry).
    pub async fn set_timers(&mut self) {
        self.timers.follow_registry().await;
    }

    /// Runs the timers and the lease keeper until `stop` resolves (or the
    /// registry is gone), then releases this node's poll leases, so that another
    /// node takes its plugins over at once. Polls in flight finish by themselves.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let TimerTask { timers, keeper } = self;
        let node = keeper.node.clone();
        let store = keeper.store.clone();
        let held = keeper.held.clone();
        let (stop_keeper, keeper_stopped) = oneshot::channel::<()>();
        let keeper = keeper.run(async {
            let _ = keeper_stopped.await;
        });
        let timers = timers.run();
        tokio::pin!(keeper, timers, stop);
        // All three in this task, so that aborting it stops the keeper too.
        tokio::select! {
            _ = &mut stop => {}
            _ = &mut timers => {}
            _ = &mut keeper => {}
        }
        // A round in flight finishes first: nothing may renew a lease after the release.
        let _ = stop_keeper.send(());
        keeper.await;
        held.replace(Vec::new(), now_ms());
        match tokio::time::timeout(RELEASE_TIMEOUT, store.release_poll_leases(node.as_str())).await
        {
            Ok(Ok(())) => tracing::info!(node = %node, "poll leases released"),
            Ok(Err(error)) => tracing::warn!(node = %node, "{error:#}; they run out by themselves"),
            Err(_) => {
                tracing::warn!(node = %node, "releasing poll leases took longer than {RELEASE_TIMEOUT:?}; they run out by themselves")
            }
        }
    }
}

impl Timers {
    /// Runs until the registry is gone.
    async fn run(mut self) {
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
                Some(due) = self.due.recv() => self.due(due),
                Some(taken) = self.taken.recv() => self.lease_taken(taken),
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.fire_due();
                }
            }
        }
    }

    /// Adds, re-times and removes timers to match the registry.
    async fn follow_registry(&mut self) {
        self.registry_changes.borrow_and_update();
        let mut added = false;
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
                        .or_insert_with(|| Arc::new(PollingPlugin::new(&id, interval)))
                        .clone();
                    poller.status().interval = interval;
                    // Resume the rhythm of the last saved poll (a restart must not
                    // poll sooner than the interval), spread a little.
                    let since_saved = self.shared.since_saved(&id, &poller).await;
                    let wait = first_wait(interval, since_saved, fastrand::f64());
                    added = true;
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
        if added {
            self.shared.keep_now.notify_one();
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

    fn due(&mut self, due: Due) {
        match due {
            Due::Finished { id, at } => self.schedule(&id, at),
            Due::LeaseTaken { id, at, completed } => {
                let current = self
                    .timers
                    .get(&id)
                    .map(|timer| timer.poller.completed.load(Ordering::SeqCst));
                if current == Some(completed) {
                    self.schedule(&id, at);
                }
            }
        }
    }

    /// Re-times the first poll of plugins whose lease this node just took, from
    /// their saved cursors, in a task of its own, so that timers keep firing while
    /// the store is read.
    fn lease_taken(&mut self, ids: Vec<String>) {
        let taken: Vec<(String, Arc<PollingPlugin>, u64)> = ids
            .into_iter()
            .filter_map(|id| {
                let poller = self.timers.get(&id)?.poller.clone();
                let completed = poller.completed.load(Ordering::SeqCst);
                Some((id, poller, completed))
            })
            .collect();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            for (id, poller, completed) in taken {
                let interval = poller.status().interval;
                let since_saved = shared.since_saved(&id, &poller).await;
                let wait = first_wait(interval, since_saved, fastrand::f64());
                let at = Instant::now() + wait;
                let _ = shared.due.send(Due::LeaseTaken { id, at, completed });
            }
        });
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
            let poller = timer.poller.clone();
            if self.shared.leases.token(&id, now_ms()).is_none() {
                // Another node polls it (or none may, until a lease is taken).
                drop(guard);
                let at = now + skipped_turn(&poller);
                self.schedule(&id, at);
                continue;
            }
            tokio::spawn(self.shared.clone().run_timed(poller, guard));
        }
    }
}
