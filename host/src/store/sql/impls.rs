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
    ClaimedDelivery, Clock, DeliveryFilter, DeliveryQueue, DeliveryRow, Discarded, EventFilter,
    EventLog, IngestRecord, Persisted, PollBook, PollLease, PollRecord, PurgeBatch, PurgeStep,
    RawRequest, SavedCursor, Settled, Settlement, StateChange, StateRefused, StateStore,
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

/// Runs `$write` on `$backend`'s writer, with `$doing` as the context of a failure,
/// and unpacks its answer of the `$expected` variant.
macro_rules! commit {
    ($backend:expr, $write:expr, $expected:path, $doing:expr) => {{
        let written = $backend.write($write).await.with_context(|| $doing)?;
        expect!(written, $expected, writes::unexpected)
    }};
}

/// Runs `$read` on one of `$backend`'s connections, with `$doing` as the context of
/// a failure, and unpacks its answer of the `$expected` variant.
macro_rules! query {
    ($backend:expr, $read:expr, $expected:path, $doing:expr) => {{
        let found = $backend.read($read).await.with_context(|| $doing)?;
        expect!(found, $expected, reads::unexpected)
    }};
}

/// The context of a failure to settle `delivery` as `settlement` says.
fn settling(delivery: i64, settlement: &Settlement) -> String {
    match settlement {
        Settlement::Done => format!("completing delivery {delivery}"),
        Settlement::Failed { .. } => format!("recording a failed attempt of delivery {delivery}"),
        Settlement::PutBack { .. } => format!("putting delivery {delivery} back unattempted"),
    }
}

#[async_trait::async_trait]
impl<B: SqlBackend> EventLog for B {
    async fn persist_ingest(&self, record: IngestRecord) -> Result<Vec<Persisted>> {
        let written = self.write(Write::Ingest(record)).await?;
        expect!(written, Written::Persisted, writes::unexpected)
    }

    async fn list_events(&self, filter: EventFilter) -> Result<Vec<StoredEventRow>> {
        query!(self, Read::Events(filter), Found::Events, "listing events")
    }

    async fn get_event(&self, id: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>> {
        let event = query!(
            self,
            Read::Event(id),
            Found::Event,
            format!("reading event {id}")
        )?;
        Ok(event.map(|event| *event))
    }

    async fn purge(&self, step: PurgeStep) -> Result<PurgeBatch> {
        commit!(
            self,
            Write::Purge(step),
            Written::Purged,
            format!("purging {:?} older than {}", step.target, step.cutoff)
        )
    }
}

#[async_trait::async_trait]
impl<B: SqlBackend> DeliveryQueue for B {
    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let read = Read::Deliveries(filter);
        query!(self, read, Found::Deliveries, "listing deliveries")
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
        commit!(self, write, Written::Claimed, "claiming due deliveries")
    }

    async fn next_due(&self) -> Result<Option<UnixMs>> {
        query!(
            self,
            Read::NextDue,
            Found::NextDue,
            "finding the next due delivery"
        )
    }

    async fn due_in(&self, handlers: &[String], now: Clock) -> Result<Option<Duration>> {
        let handlers = handlers.to_vec();
        let read = Read::DueIn { handlers, now };
        query!(self, read, Found::DueIn, "finding the next due delivery")
    }

    async fn settle(
        &self,
        delivery: i64,
        lease: u64,
        settlement: Settlement,
        now: Clock,
    ) -> Result<Settled> {
        let doing = settling(delivery, &settlement);
        let write = Write::Settle {
            delivery,
            lease,
            settlement,
            now,
        };
        commit!(self, write, Written::Settled, doing)
    }

    async fn retry(&self, delivery: i64, now: UnixMs) -> Result<Option<DeliveryRow>> {
        let write = Write::Retry { delivery, now };
        commit!(
            self,
            write,
            Written::Delivery,
            format!("re-queueing delivery {delivery}")
        )
    }

    async fn discard(&self, delivery: i64) -> Result<Discarded> {
        commit!(
            self,
            Write::Discard { delivery },
            Written::Discarded,
            format!("discarding delivery {delivery}")
        )
    }
}

#[async_trait::async_trait]
impl<B: SqlBackend> PollBook for B {
    async fn persist_poll(&self, record: PollRecord) -> Result<Vec<Persisted>> {
        let doing = format!("saving a poll of {}", record.plugin);
        commit!(self, Write::Poll(record), Written::Persisted, doing)
    }

    async fn poll_cursor(&self, plugin: &str) -> Result<Option<SavedCursor>> {
        let read = Read::Cursor(plugin.to_string());
        query!(self, read, Found::Cursor, "reading a poll cursor")
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
        commit!(self, write, Written::Leases, "renewing poll leases")
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
        query!(self, read, Found::StateValue, "reading plugin state")
    }

    async fn state_len(&self, plugin: &str) -> Result<u64> {
        let read = Read::StateLen(plugin.to_string());
        query!(self, read, Found::StateLen, "counting plugin state keys")
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
