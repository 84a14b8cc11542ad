//! The background purge: deletes what is past its retention, never unfinished work.
//!
//! - Events older than `retention` go with their delivered deliveries. An event
//!   with a pending delivery (a retry still to come) or a dead one (a dead letter
//!   waiting for an operator) stays, whatever its age, with its raw request.
//! - Dead letters stay until an operator retries or discards them, or, when
//!   `dead_letter_retention` is set, until they have been dead that long; their
//!   events then go at the next purge if they are past `retention` too.
//! - Raw requests go once they are past `retention` and no stored event needs them.
//!
//! The purge runs in small batches, each one short write of the store's writer,
//! and pauses between them, so that webhooks' writes are never queued behind it
//! for long (on SQLite the writer holds the whole database while it runs one; on
//! PostgreSQL a long transaction would be abandoned). What it removed is logged
//! and counted in `/metrics` (`hookhost_retention_purged_total`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::metrics::{Metrics, Purged};
use crate::outage::Outage;
use crate::store::{now_ms, EventLog, PurgeBatch, PurgeStep, PurgeTarget, UnixMs};

/// How often the purge runs (or more often, for a retention shorter than this);
/// rows live at most this much past their retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Rows one batch looks at: a few milliseconds of the writer's time.
const BATCH: u32 = 500;

/// Between two batches: the writer takes the webhooks' writes that queued up.
const PAUSE: Duration = Duration::from_millis(5);

/// How long things are kept; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `retention`: events, their delivered deliveries and their requests.
    pub events: Duration,
    /// `dead_letter_retention`: dead deliveries; `None` keeps them until an
    /// operator retries or discards them.
    pub dead_letters: Option<Duration>,
}

impl Retention {
    fn every(&self) -> Duration {
        let shortest = match self.dead_letters {
            Some(dead) => self.events.min(dead),
            None => self.events,
        };
        PURGE_EVERY.min(shortest)
    }
}

/// Purges at start and then every `PURGE_EVERY` (or the shorter retention), for
/// as long as the host runs.
pub async fn run(store: Arc<dyn EventLog>, retention: Retention, metrics: Arc<Metrics>) {
    let mut ticks = tokio::time::interval(retention.every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = Outage::new("purging old events");
    loop {
        ticks.tick().await;
        match purge_once(store.as_ref(), retention, &metrics).await {
            Ok(totals) => {
                outage.succeeded();
                if totals != Totals::default() {
                    tracing::info!(
                        events = totals.events,
                        deliveries = totals.deliveries,
                        dead_letters = totals.dead_letters,
                        requests = totals.requests,
                        "purged what was past its retention"
                    );
                }
            }
            // What went before the error is counted; the next tick goes on.
            Err(error) => outage.failed(&error),
        }
    }
}

/// What one purge run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    events: u64,
    deliveries: u64,
    dead_letters: u64,
    requests: u64,
}

/// One whole purge: dead letters first, so that an event whose last dead letter
/// expires goes in the same run, then events, then the requests they leave.
async fn purge_once(
    store: &dyn EventLog,
    retention: Retention,
    metrics: &Metrics,
) -> Result<Totals> {
    let now = now_ms();
    let before = |age: Duration| now.saturating_sub(age.as_millis() as UnixMs);
    let mut totals = Totals::default();
    if let Some(dead) = retention.dead_letters {
        purge_all(store, PurgeTarget::DeadLetters, before(dead), |batch| {
            metrics.purged(Purged::DeadLetters, batch.removed);
            totals.dead_letters += batch.removed;
        })
        .await?;
    }
    let cutoff = before(retention.events);
    purge_all(store, PurgeTarget::Events, cutoff, |batch| {
        metrics.purged(Purged::Events, batch.removed);
        metrics.purged(Purged::Deliveries, batch.deliveries);
        totals.events += batch.removed;
        totals.deliveries += batch.deliveries;
    })
    .await?;
    purge_all(store, PurgeTarget::Requests, cutoff, |batch| {
        metrics.purged(Purged::Requests, batch.removed);
        totals.requests += batch.removed;
    })
    .await?;
    Ok(totals)
}

/// Runs batches of `target` until one finds nothing older than `cutoff` left,
/// giving each batch to `removed` as it is committed.
async fn purge_all(
    store: &dyn EventLog,
    target: PurgeTarget,
    cutoff: UnixMs,
    mut removed: impl FnMut(PurgeBatch),
) -> Result<()> {
    let mut after = 0;
    loop {
        let step = PurgeStep {
            target,
            cutoff,
            after,
            limit: BATCH,
        };
        let batch = store.purge(step).await?;
        removed(batch);
        match batch.last {
            Some(last) => after = last,
            None => return Ok(()),
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_runs_at_least_as_often_as_the_shortest_retention() {
        let hour = Duration::from_secs(3600);
        let retention = |events, dead_letters| Retention {
            events,
            dead_letters,
        };
        assert_eq!(retention(30 * 24 * hour, None).every(), PURGE_EVERY);
        assert_eq!(
            retention(Duration::from_secs(3), None).every(),
            Duration::from_secs(3)
        );
        assert_eq!(
            retention(30 * 24 * hour, Some(Duration::from_secs(60))).every(),
            Duration::from_secs(60)
        );
    }
}
