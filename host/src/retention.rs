//! The background purge: deletes stored events older than `retention`.

use std::sync::Arc;
use std::time::Duration;

use crate::outage::Outage;
use crate::store::{now_ms, EventLog};

/// How often the purge runs; events live at most this much past their retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Purges at start and then every `PURGE_EVERY`, for as long as the host runs.
pub async fn run(store: Arc<dyn EventLog>, retention: Duration) {
    let mut ticks = tokio::time::interval(PURGE_EVERY.min(retention));
    let mut outage = Outage::new("purging old events");
    loop {
        ticks.tick().await;
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        match store.purge_older_than(cutoff).await {
            Ok(purged) => {
                outage.succeeded();
                if purged > 0 {
                    tracing::info!(purged, "purged events past their retention");
                }
            }
            // The next tick tries again.
            Err(error) => outage.failed(&error),
        }
    }
}
