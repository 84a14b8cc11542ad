//! Persistence off, for benchmarks that measure what the store costs: a store that
//! acknowledges every write and keeps nothing. Shared by examples with `#[path]`.

use std::time::Duration;

use anyhow::Result;
use hookhost::store::{
    now_ms, ClaimedDelivery, Clock, DeliveryFilter, DeliveryQueue, DeliveryRow, Discarded,
    EventFilter, EventLog, EventStore, IngestRecord, Persisted, PollBook, PollLease, PollRecord,
    PurgeBatch, PurgeStep, RawRequest, SavedCursor, Settled, Settlement, StateChange, StateRefused,
    StateStore, StoredEventRow, UnixMs,
};

/// Persistence off: acknowledges everything and keeps nothing.
pub struct NullStore;

#[async_trait::async_trait]
impl EventLog for NullStore {
    async fn persist_ingest(&self, record: IngestRecord) -> Result<Vec<Persisted>> {
        Ok(record.events.iter().map(|_| Persisted::New(0)).collect())
    }
    async fn list_events(&self, _: EventFilter) -> Result<Vec<StoredEventRow>> {
        Ok(vec![])
    }
    async fn get_event(&self, _: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>> {
        Ok(None)
    }
    async fn purge(&self, _: PurgeStep) -> Result<PurgeBatch> {
        Ok(PurgeBatch::default())
    }
}

#[async_trait::async_trait]
impl DeliveryQueue for NullStore {
    async fn list_deliveries(&self, _: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        Ok(vec![])
    }
    async fn claim_due(
        &self,
        _: &[String],
        _: Clock,
        _: Duration,
        _: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        Ok(vec![])
    }
    async fn next_due(&self) -> Result<Option<UnixMs>> {
        Ok(None)
    }
    async fn due_in(&self, _: &[String], _: Clock) -> Result<Option<Duration>> {
        Ok(None)
    }
    async fn settle(&self, _: i64, _: u64, _: Settlement, _: Clock) -> Result<Settled> {
        Ok(Settled::Recorded)
    }
    async fn retry(&self, _: i64, _: UnixMs) -> Result<Option<DeliveryRow>> {
        Ok(None)
    }
    async fn discard(&self, _: i64) -> Result<Discarded> {
        Ok(Discarded::NotFound)
    }
}

#[async_trait::async_trait]
impl PollBook for NullStore {
    async fn persist_poll(&self, record: PollRecord) -> Result<Vec<Persisted>> {
        Ok(record.events.iter().map(|_| Persisted::New(0)).collect())
    }
    async fn poll_cursor(&self, _: &str) -> Result<Option<SavedCursor>> {
        Ok(None)
    }
    // One node and no memory: it holds every lease, always with the first token.
    async fn keep_poll_leases(
        &self,
        _: &str,
        plugins: &[String],
        now: Clock,
        ttl: Duration,
    ) -> Result<Vec<PollLease>> {
        let now = match now {
            Clock::At(at) => at,
            Clock::Database => now_ms(),
        };
        let expires_at = now + ttl.as_millis() as UnixMs;
        Ok(plugins
            .iter()
            .map(|plugin| PollLease {
                plugin: plugin.clone(),
                token: 1,
                expires_at,
            })
            .collect())
    }
    async fn release_poll_leases(&self, _: &str) -> Result<()> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl StateStore for NullStore {
    async fn state_get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn state_len(&self, _: &str) -> Result<u64> {
        Ok(0)
    }
    async fn state_apply(
        &self,
        _: &str,
        _: Vec<StateChange>,
        _: UnixMs,
    ) -> Result<Result<(), StateRefused>> {
        Ok(Ok(()))
    }
}

#[async_trait::async_trait]
impl EventStore for NullStore {
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
