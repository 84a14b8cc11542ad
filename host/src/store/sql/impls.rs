//! The narrow store traits (`EventLog`, `DeliveryQueue`, `PollBook`, `StateStore`),
//! implemented once for every SQL backend: a backend says how a `Write` reaches its
//! writer and how a `Read` reaches a connection, and gets the rest from here. What
//! each call asks for, what it expects back and the context its errors carry are
//! the same on every database.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};

use super::reads::{self, Found, Read};
use super::writes::{self, Write, Written};
use crate::store::{
    AfterFailure, ClaimedDelivery, Clock, DeliveryFilter, DeliveryQueue, DeliveryRow, Discarded,
    EventFilter, EventLog, IngestRecord, Persisted, PollBook, PollLease, PollRecord, PurgeBatch,
    PurgeStep, RawRequest, SavedCursor, Settled, StateChange, StateRefused, StateStore,
    StoredEventRow, UnixMs,
};

/// What a SQL database does itself; see the module docs.
pub trait SqlBackend: Send + Sync + 'static {
    /// Runs `write` in the next group commit and answers once it is durable (or
    /// failed, having changed nothing).
    fn write(&self, write: Write) -> impl Future<Output = Result<Written>> + Send;

    /// Runs `read` on a connection that sees the last commit.
    fn read(&self, read: Read) -> impl Future<Output = Result<Found>> + Send;
}

/// The value of an answer of the `expected` variant, else a bug reported as an
/// error (`writes::unexpected`, `reads::unexpected`).
macro_rules! expect {
    ($answer:expr, $expected:path, $unexpected:path) => {
        match $answer {
            $expected(value) => Ok(value),
            other => Err($unexpected(stringify!($expected), other)),
        }
    };
}

#[async_trait::async_trait]
impl<B: SqlBackend> EventLog for B {
    async fn persist_ingest(&self, record: IngestRecord) -> Result<Vec<Persisted>> {
        let written = self.write(Write::Ingest(record)).await?;
        expect!(written, Written::Persisted, writes::unexpected)
    }

    async fn list_events(&self, filter: EventFilter) -> Result<Vec<StoredEventRow>> {
        let found = self
            .read(Read::Events(filter))
            .await
            .context("listing events")?;
        expect!(found, Found::Events, reads::unexpected)
    }

    async fn get_event(&self, id: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>> {
        let found = self
            .read(Read::Event(id))
            .await
            .with_context(|| format!("reading event {id}"))?;
        let event = expect!(found, Found::Event, reads::unexpected)?;
        Ok(event.map(|event| *event))
    }

    async fn purge(&self, step: PurgeStep) -> Result<PurgeBatch> {
        let written = self
            .write(Write::Purge(step))
            .await
            .with_context(|| format!("purging {:?} older than {}", step.target, step.cutoff))?;
        expect!(written, Written::Purged, writes::unexpected)
    }
}

#[async_trait::async_trait]
impl<B: SqlBackend> DeliveryQueue for B {
    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let found = self
            .read(Read::Deliveries(filter))
            .await
            .context("listing deliveries")?;
        expect!(found, Found::Deliveries, reads::unexpected)
    }

    async fn claim_due(
        &self,
        handlers: &[String],
        now: Clock,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        let write = Write::Claim {
            handlers: handlers.to_vec(),
            now,
            lease_ms: lease.as_millis() as UnixMs,
            limit,
        };
        let written = self.write(write).await.context("claiming due deliveries")?;
        expect!(written, Written::Claimed, writes::unexpected)
    }

    async fn next_due(&self) -> Result<Option<UnixMs>> {
        let found = self
            .read(Read::NextDue)
            .await
            .context("finding the next due delivery")?;
        expect!(found, Found::NextDue, reads::unexpected)
    }

    async fn due_in(&self, handlers: &[String], now: Clock) -> Result<Option<Duration>> {
        let read = Read::DueIn {
            handlers: handlers.to_vec(),
            now,
        };
        let found = self
            .read(read)
            .await
            .context("finding the next due delivery")?;
        expect!(found, Found::DueIn, reads::unexpected)
    }

    async fn complete(&self, delivery: i64, lease: u64, now: Clock) -> Result<Settled> {
        let written = self
            .write(Write::Complete {
                delivery,
                lease,
                now,
            })
            .await
            .with_context(|| format!("completing delivery {delivery}"))?;
        expect!(written, Written::Settled, writes::unexpected)
    }

    async fn fail(
        &self,
        delivery: i64,
        lease: u64,
        error: String,
        after: AfterFailure,
        now: Clock,
    ) -> Result<Settled> {
        let write = Write::Fail {
            delivery,
            lease,
            error,
            after,
            now,
        };
        let written = self
            .write(write)
            .await
            .with_context(|| format!("recording a failed attempt of delivery {delivery}"))?;
        expect!(written, Written::Settled, writes::unexpected)
    }

    async fn put_back(
        &self,
        delivery: i64,
        lease: u64,
        after: Duration,
        now: Clock,
    ) -> Result<Settled> {
        let write = Write::PutBack {
            delivery,
            lease,
            after,
            now,
        };
        let written = self
            .write(write)
            .await
            .with_context(|| format!("putting delivery {delivery} back unattempted"))?;
        expect!(written, Written::Settled, writes::unexpected)
    }

    async fn retry(&self, delivery: i64, now: UnixMs) -> Result<Option<DeliveryRow>> {
        let written = self
            .write(Write::Retry { delivery, now })
            .await
            .with_context(|| format!("re-queueing delivery {delivery}"))?;
        expect!(written, Written::Delivery, writes::unexpected)
    }

    async fn discard(&self, delivery: i64) -> Result<Discarded> {
        let written = self
            .write(Write::Discard { delivery })
            .await
            .with_context(|| format!("discarding delivery {delivery}"))?;
        expect!(written, Written::Discarded, writes::unexpected)
    }
}

#[async_trait::async_trait]
impl<B: SqlBackend> PollBook for B {
    async fn persist_poll(&self, record: PollRecord) -> Result<Vec<Persisted>> {
        let plugin = record.plugin.clone();
        let written = self
            .write(Write::Poll(record))
            .await
            .with_context(|| format!("saving a poll of {plugin}"))?;
        expect!(written, Written::Persisted, writes::unexpected)
    }

    async fn poll_cursor(&self, plugin: &str) -> Result<Option<SavedCursor>> {
        let found = self
            .read(Read::Cursor(plugin.to_string()))
            .await
            .context("reading a poll cursor")?;
        expect!(found, Found::Cursor, reads::unexpected)
    }

    async fn keep_poll_leases(
        &self,
        node: &str,
        plugins: &[String],
        now: Clock,
        ttl: Duration,
    ) -> Result<Vec<PollLease>> {
        let write = Write::KeepLeases {
            node: node.to_string(),
            plugins: plugins.to_vec(),
            now,
            ttl_ms: ttl.as_millis() as UnixMs,
        };
        let written = self.write(write).await.context("renewing poll leases")?;
        expect!(written, Written::Leases, writes::unexpected)
    }

    async fn release_poll_leases(&self, node: &str) -> Result<()> {
        let node = node.to_string();
        self.write(Write::ReleaseLeases { node })
            .await
            .context("releasing poll leases")?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl<B: SqlBackend> StateStore for B {
    async fn state_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let read = Read::StateValue {
            plugin: plugin.to_string(),
            key: key.to_string(),
        };
        let found = self.read(read).await.context("reading plugin state")?;
        expect!(found, Found::StateValue, reads::unexpected)
    }

    async fn state_len(&self, plugin: &str) -> Result<u64> {
        let found = self
            .read(Read::StateLen(plugin.to_string()))
            .await
            .context("counting plugin state keys")?;
        expect!(found, Found::StateLen, reads::unexpected)
    }

    async fn state_apply(
        &self,
        plugin: &str,
        changes: Vec<StateChange>,
        now: UnixMs,
    ) -> Result<Result<(), StateRefused>> {
        let write = Write::State {
            plugin: plugin.to_string(),
            changes,
            now,
        };
        match self.write(write).await {
            Ok(_) => Ok(Ok(())),
            // A refusal fails the write so that nothing of it stays; it is an
            // answer, not an error, to the caller.
            Err(error) => match error.downcast::<StateRefused>() {
                Ok(refused) => Ok(Err(refused)),
                Err(error) => Err(error.context("writing plugin state")),
            },
        }
    }
}
