//! Delivers stored events to the handler plugins subscribed to them: claims due
//! deliveries from the store's durable queue, calls `on-event`, and records the
//! outcome, retrying failures with exponential backoff and jitter until the plugin's
//! attempt limit, after which the delivery is dead-lettered.
//!
//! Delivery is at least once: an attempt is counted when it is claimed, so a crash
//! during a call shows up as an attempt, and the delivery comes again after restart.
//!
//! Several nodes may share the queue (PostgreSQL). A node claims only deliveries
//! of the handler plugins it has loaded, so a node without a handler (a rolling
//! deploy, a plugin removed on one node) leaves them to the nodes that have it
//! instead of spending their attempts. Whether a delivery is due and whether a
//! claim ran out are decided by the database's clock (`Clock::Database`), never
//! this node's. Every outcome is recorded under the claim's fencing token: a node
//! that was paused past its lease, while another node claimed the delivery again,
//! finds its outcome refused (`Settled::Stale`), and drops and logs it.
//!
//! A call refused for want of capacity (no slot or instance free) never reached the
//! handler: the delivery is put back with that attempt uncounted (`put_back`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::backoff;
use crate::config::Config;
use crate::live::{Change, LiveFeed};
use crate::metrics::{Delivery, Metrics};
use crate::outage::Outage;
use crate::plugins::bindings::{Event, StoredEvent};
use crate::plugins::loaded::{CallError, DEFAULT_CALL_TIMEOUT};
use crate::plugins::plugin_error;
use crate::plugins::registry::Registry;
use crate::store::{
    AfterFailure, ClaimedDelivery, Clock, DeliveryQueue, DeliveryState, Settled, Settlement,
};

pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(5);
/// The longest wait between two attempts, however many have failed.
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// How many `on-event` calls run at once, over all plugins.
const MAX_IN_FLIGHT: usize = 16;
/// How long the loop sleeps when nothing is due and nothing wakes it; bounds how
/// late a delivery made due by another node sharing the store (PostgreSQL) is
/// noticed.
const IDLE: Duration = Duration::from_secs(5);
/// How much longer than the longest call a delivery's lease lasts: room to record
/// the outcome. Every call ends by its timeout, so only a node that stalls past this
/// (or dies) lets the lease run out, and then another node, or this one after a
/// restart, tries the delivery again, which at-least-once delivery allows. Short,
/// because it is also how long a dead node's deliveries wait.
const LEASE_MARGIN: Duration = Duration::from_secs(15);
/// How long the loop waits after the store failed before it asks again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long a delivery put back for want of capacity waits at least (plus as much
/// again at random, so that deliveries put back together do not return together).
const CAPACITY_PAUSE: Duration = Duration::from_secs(1);

/// How one plugin's failed deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
}

pub struct Dispatcher {
    pub store: Arc<dyn DeliveryQueue>,
    pub registry: Arc<Registry>,
    /// Per plugin id; plugins not listed get the defaults.
    pub policies: BTreeMap<String, RetryPolicy>,
    /// How long a claimed delivery is reserved: longer than any call may run.
    pub lease: Duration,
    /// Notified by the webhook path after it stored events with subscribers, and by
    /// the retry API; the dispatcher loop is the only waiter.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Told the outcome of every attempt, for the dashboard.
    pub live: LiveFeed,
}

impl Dispatcher {
    pub fn new(
        config: &Config,
        store: Arc<dyn DeliveryQueue>,
        registry: Arc<Registry>,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        live: LiveFeed,
    ) -> Self {
        let policies = config
            .plugins
            .iter()
            .map(|(id, plugin)| {
                let policy = RetryPolicy {
                    max_attempts: plugin.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
                    base: plugin.retry_base.unwrap_or(DEFAULT_RETRY_BASE),
                };
                (id.clone(), policy)
            })
            .collect();
        let longest_call = config
            .plugins
            .values()
            .filter_map(|plugin| plugin.timeout)
            .chain([DEFAULT_CALL_TIMEOUT])
            .max()
            .unwrap_or(DEFAULT_CALL_TIMEOUT);
        Dispatcher {
            store,
            registry,
            policies,
            lease: longest_call + LEASE_MARGIN,
            wake,
            metrics,
            live,
        }
    }

    fn policy(&self, plugin: &str) -> RetryPolicy {
        self.policies.get(plugin).copied().unwrap_or(RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base: DEFAULT_RETRY_BASE,
        })
    }

    /// Runs until `stop` resolves, then waits for the deliveries in flight to be
    /// recorded and returns. The caller bounds that wait: a delivery abandoned
    /// mid-call keeps its lease and is tried again at the next start.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let this = Arc::new(self);
        let mut in_flight = JoinSet::new();
        let mut outage = Outage::new("reading the delivery queue");
        tokio::pin!(stop);
        loop {
            let room = MAX_IN_FLIGHT - in_flight.len();
            if room == 0 {
                in_flight.join_next().await;
                continue;
            }
            let handlers = this.handlers();
            match this
                .store
                .claim_due(&handlers, Clock::Database, this.lease, room as u32)
                .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    outage.succeeded();
                    for delivery in claimed {
                        in_flight.spawn(this.clone().deliver(delivery));
                    }
                    continue;
                }
                Ok(_) => outage.succeeded(),
                Err(error) => {
                    // Without this pause a failing store would be asked again in a
                    // tight loop, since the due delivery stays due. It is asked
                    // again until it answers: a database outage ends by itself.
                    outage.failed(&error);
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(STORE_ERROR_PAUSE) => {}
                    }
                    continue;
                }
            }
            let wait = match this.store.due_in(&handlers, Clock::Database).await {
                Ok(Some(wait)) => wait.min(IDLE),
                Ok(None) => IDLE,
                Err(error) => {
                    outage.failed(&error);
                    STORE_ERROR_PAUSE
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        if !in_flight.is_empty() {
            tracing::info!(
                deliveries = in_flight.len(),
                "waiting for deliveries in flight"
            );
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// The plugins loaded here, whose deliveries this node may claim. A plugin
    /// loaded later is noticed at the next claim (within `IDLE`).
    fn handlers(&self) -> Vec<String> {
        self.registry
            .snapshot()
            .into_iter()
            .filter(|(_, entry)| entry.current.is_some())
            .map(|(id, _)| id)
            .collect()
    }

    async fn deliver(self: Arc<Self>, delivery: ClaimedDelivery) {
        let plugin_id = delivery.plugin.clone();
        let source = &delivery.event.plugin;
        // Set when the handler must never get this event: no retry can change that.
        let mut refused = false;
        let outcome = match self.registry.get(&plugin_id) {
            None => Err(format!("plugin {plugin_id} is not loaded")),
            // Queued before `sources` excluded the emitter (an earlier config), or
            // put back by the retry API: the handler's `sources` hold all the same.
            Some(plugin) if !plugin.accepts_events_from(source) => {
                refused = true;
                Err(format!(
                    "events from plugin {source} are not among [plugins.{plugin_id}] sources"
                ))
            }
            Some(plugin) => {
                let event = StoredEvent {
                    source: delivery.event.plugin.clone(),
                    received_at_unix_ms: delivery.event.received_at,
                    event: Event {
                        id: delivery.event.event_id.clone(),
                        kind: delivery.event.kind.clone(),
                        subject: delivery.event.subject.clone(),
                        payload: delivery.event.payload.clone(),
                    },
                    attempt: delivery.attempt,
                };
                match plugin.on_event(event).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(plugin_error::describe(&error)),
                    Err(error) if error.is_capacity() => {
                        return self.put_back(&delivery, &error).await;
                    }
                    Err(error) => Err(error.to_string()),
                }
            }
        };
        let (settlement, new_state) = match outcome {
            Ok(()) => {
                tracing::info!(
                    plugin = %plugin_id,
                    delivery = delivery.id,
                    event = delivery.event.id,
                    attempt = delivery.attempt,
                    "event delivered"
                );
                self.metrics
                    .delivery_finished(&plugin_id, Delivery::Delivered);
                (Settlement::Done, DeliveryState::Delivered)
            }
            Err(error) => {
                let policy = self.policy(&plugin_id);
                let after = if refused || delivery.attempt >= policy.max_attempts {
                    tracing::warn!(
                        plugin = %plugin_id,
                        delivery = delivery.id,
                        event = delivery.event.id,
                        attempt = delivery.attempt,
                        "delivery dead-lettered after {} attempts: {error}",
                        delivery.attempt
                    );
                    self.metrics.delivery_finished(&plugin_id, Delivery::Dead);
                    AfterFailure::Dead
                } else {
                    let delay = backoff(policy.base, delivery.attempt, fastrand::f64());
                    tracing::warn!(
                        plugin = %plugin_id,
                        delivery = delivery.id,
                        event = delivery.event.id,
                        attempt = delivery.attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        "delivery failed, will retry: {error}"
                    );
                    self.metrics.delivery_finished(&plugin_id, Delivery::Failed);
                    AfterFailure::RetryIn(delay)
                };
                let new_state = match after {
                    AfterFailure::Dead => DeliveryState::Dead,
                    AfterFailure::RetryIn(_) => DeliveryState::Pending,
                };
                (Settlement::Failed { error, after }, new_state)
            }
        };
        let recorded = self
            .store
            .settle(delivery.id, delivery.lease, settlement, Clock::Database)
            .await;
        match recorded {
            Ok(Settled::Recorded) => self.live.publish(Change::Delivery {
                id: delivery.id.to_string(),
                state: new_state.as_str(),
            }),
            // Another claim owns the delivery now; its outcome is the one that counts.
            Ok(Settled::Stale) => tracing::warn!(
                plugin = %plugin_id,
                delivery = delivery.id,
                attempt = delivery.attempt,
                lease = delivery.lease,
                outcome = new_state.as_str(),
                "stale delivery outcome dropped: the claim ran out and the delivery was \
                 claimed again (or retried) since"
            ),
            // The lease runs out and the delivery is tried again: at least once.
            Err(error) => tracing::error!("{error:#}"),
        }
    }

    /// The handler never ran: its slots or the host's instance pool were all in
    /// use. Such a refusal says nothing about the delivery, so it costs no
    /// attempt; the delivery is due again shortly.
    async fn put_back(&self, delivery: &ClaimedDelivery, error: &CallError) {
        // Up to twice the pause, so that deliveries put back together spread out.
        let after = CAPACITY_PAUSE.mul_f64(1.0 + fastrand::f64());
        tracing::warn!(
            plugin = %delivery.plugin,
            delivery = delivery.id,
            event = delivery.event.id,
            attempt = delivery.attempt,
            "delivery put back without spending an attempt: {error}"
        );
        match self
            .store
            .settle(
                delivery.id,
                delivery.lease,
                Settlement::PutBack { after },
                Clock::Database,
            )
            .await
        {
            Ok(Settled::Recorded) => {}
            Ok(Settled::Stale) => tracing::warn!(
                plugin = %delivery.plugin,
                delivery = delivery.id,
                "stale put-back dropped: the delivery was claimed again (or retried) since"
            ),
            // The lease runs out and the delivery comes again, that attempt counted.
            Err(error) => tracing::error!("{error:#}"),
        }
    }
}

/// The wait after failed attempt number `attempt` (from 1): `base * 2^(attempt-1)`,
/// capped at `MAX_DELAY`, with "equal jitter": the upper half of that window is random (`random` in
/// `[0, 1)`). Jitter spreads retries of many events failing together; keeping the
/// lower half fixed means every wait (below the cap) is at least as long as the one
/// before.
pub fn backoff(base: Duration, attempt: u32, random: f64) -> Duration {
    let full = backoff::doubled(base, attempt.saturating_sub(1), MAX_DELAY);
    backoff::equal_jitter(full, random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_jittered_within_its_window_and_never_shrinks() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(base, 1, 0.999_999).as_millis(), 99);
        assert_eq!(backoff(base, 3, 0.0), Duration::from_millis(200));
        // Below the cap, the longest wait after one attempt is no longer than the
        // shortest after the next.
        for attempt in 1..15 {
            assert!(backoff(base, attempt, 0.999_999) <= backoff(base, attempt + 1, 0.0));
        }
        assert!(backoff(base, 60, 0.999_999) <= MAX_DELAY);
        assert!(backoff(base, u32::MAX, 0.0) >= MAX_DELAY / 2);
    }
}
