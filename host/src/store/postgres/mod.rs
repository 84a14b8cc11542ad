//! The shared `EventStore`: one PostgreSQL database that every node of a fleet
//! writes to, so the fleet behaves as one host.
//!
//! - Writes go through group commit (`writer`): a few writer tasks, each on its
//!   own pooled connection, commit queued writes together, a savepoint per write.
//! - Reads go straight to a pooled connection.
//! - Migrations run at open under an advisory lock (`schema`), so nodes starting
//!   together are safe.
//! - Nothing is released at open: other nodes' delivery claims and poll leases are
//!   theirs until they run out.
//! - A database that is down gives errors within seconds (connect, pool wait and
//!   statement timeouts), never a hang; the pool connects again when it returns,
//!   without a restart.

mod components;
mod database_url;
mod reads;
mod schema;
mod tls;
mod writer;
mod writes;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{
    AfterFailure, ClaimedDelivery, DeliveryFilter, DeliveryRow, EventFilter, EventStore,
    IngestRecord, Persisted, PollLease, PollRecord, RawRequest, SavedCursor, StateChange,
    StateRefused, StoredEventRow, Unavailable, UnixMs,
};
use reads::{DELIVERY_COLUMNS, EVENT_COLUMNS};
use writer::{Job, Written};
use writes::Write;

pub use database_url::{DatabaseUrl, SslMode};
pub use schema::SCHEMA_VERSION;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a caller waits for a pooled connection (all busy) or a new one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one group of writes may take, commit included.
const GROUP_TIMEOUT: Duration = Duration::from_secs(10);
/// `health()` answers within this.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// How a store connects; the defaults suit one node of a small fleet.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Writer tasks, each committing its own groups on its own connection.
    pub writers: usize,
    /// Connections in the pool (writers, reads and deploys together).
    pub max_connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            writers: 4,
            max_connections: 16,
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// To the writer tasks (the receiving end is shared by them); the only way
    /// anything is written except deploys, which carry whole components.
    jobs: mpsc::UnboundedSender<Job>,
    /// Set by `close`; later writes are refused as on SQLite.
    closed: AtomicBool,
    /// The URL without its passwords, for messages.
    shown_url: String,
    /// Whether the connection made at open is encrypted (TLS).
    encrypted: bool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`, or key=value pairs;
    /// see `database_url`), brings the schema up to date and starts the writers.
    pub async fn open(url: &str) -> Result<PostgresStore> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    pub async fn open_with(url: &str, options: PostgresOptions) -> Result<PostgresStore> {
        let url: DatabaseUrl = url.parse()?;
        let shown_url = url.shown.clone();
        let pool = pool(url, &options)?;
        let mut client = pool.get().await.map_err(|error| {
            anyhow!(
                "connecting to PostgreSQL at {shown_url}: {}",
                pool_error(&error)
            )
        })?;
        if let Err(error) = schema::migrate(&mut client).await {
            // The migration transaction may be half-way; a fresh connection next time.
            drop(Object::take(client));
            return Err(error.context(format!("preparing the event store at {shown_url}")));
        }
        let encrypted = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .with_context(|| format!("asking PostgreSQL at {shown_url} whether TLS is in use"))?
            .get::<_, bool>(0);
        drop(client);
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..options.writers.max(1) {
            tokio::spawn(writer::run(pool.clone(), queue.clone()));
        }
        Ok(PostgresStore {
            pool,
            jobs,
            closed: AtomicBool::new(false),
            shown_url,
            encrypted,
        })
    }

    /// The database setting without its passwords, fit for logs.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Whether the store's connections are encrypted: they all are when the first
    /// one was, as `sslmode` decides for each alike (`prefer` could differ only if
    /// the server changed its mind between two connections).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Queues `write` for the next group and waits until that group committed.
    async fn write(&self, write: Write) -> Result<Written> {
        if self.closed.load(Ordering::Acquire) {
            bail!("the event store is closed");
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .map_err(|_| anyhow!("the event store's writers have stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the event store could not run the write (see the log)"))?
    }

    /// A pooled connection, or an error naming the database within `POOL_TIMEOUT`.
    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|error| {
                anyhow!(
                    "connecting to PostgreSQL at {}: {}",
                    self.shown_url,
                    pool_error(&error)
                )
            })
            .context(Unavailable)
    }

    /// Runs `read` on a pooled connection, giving up after `READ_TIMEOUT`.
    async fn read<T, F, Fut>(&self, read: F) -> Result<T>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let client = self.client().await?;
        tokio::time::timeout(READ_TIMEOUT, read(client))
            .await
            .map_err(|_| anyhow!("PostgreSQL did not answer within {READ_TIMEOUT:?}"))
            .context(Unavailable)?
    }
}

fn pool(url: DatabaseUrl, options: &PostgresOptions) -> Result<Pool> {
    let tls = tls::connector(&url.tls).with_context(|| format!("database {}", url.shown))?;
    let mut config = url.config;
    config
        .connect_timeout(CONNECT_TIMEOUT)
        // A server that vanished without closing the connection (a cut network, a
        // killed machine) is noticed by the keepalives instead of never.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(GROUP_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("hookhost");
    }
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // Fast: a connection the server closed (a restart) is known closed
            // without a round trip, and replaced.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.max_connections.max(options.writers + 1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .context("building the PostgreSQL connection pool")
}

/// Why the pool gave no connection, with tokio-postgres's causes (a refused
/// connection, a TLS certificate that did not verify), which its own text leaves out.
fn pool_error(error: &PoolError) -> String {
    match error {
        PoolError::Backend(error) => database_url::error_chain(error),
        other => database_url::error_chain(other),
    }
}

/// The answer of a write that was asked for `what`, when it is not the expected
/// variant: a bug, reported instead of a panic.
fn unexpected(what: &str, written: Written) -> anyhow::Error {
    anyhow!("the event store answered {what} with {written:?}")
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn persist_ingest(&self, record: IngestRecord) -> Result<Vec<Persisted>> {
        match self.write(Write::Ingest(record)).await? {
            Written::Persisted(persisted) => Ok(persisted),
            other => Err(unexpected("an ingest", other)),
        }
    }

    async fn list_events(&self, filter: EventFilter) -> Result<Vec<StoredEventRow>> {
        let (before, limit) = (filter.before, filter.limit);
        let (sql, values) = reads::event_clauses(filter).newest_first(
            &format!("SELECT {EVENT_COLUMNS} FROM events e"),
            before,
            limit,
        );
        self.read(|client| async move {
            let rows = client.query(&sql, &reads::params(&values)).await?;
            Ok(rows
                .iter()
                .map(|row| reads::event_from_row(row, 0))
                .collect())
        })
        .await
        .context("listing events")
    }

    async fn get_event(&self, id: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>> {
        self.read(|client| async move {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {EVENT_COLUMNS}, r.method, r.path, r.query, r.headers, r.body
                         FROM events e LEFT JOIN requests r ON r.id = e.request_id
                         WHERE e.id = $1"
                    ),
                    &[&id],
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let event = reads::event_from_row(&row, 0);
            let request = match row.get::<_, Option<String>>(7) {
                Some(method) => Some(RawRequest {
                    method,
                    path: row.get(8),
                    query: row.get(9),
                    headers: reads::headers_from_json(row.get(10))
                        .context("decoding stored headers")?,
                    body: row.get(11),
                }),
                None => None,
            };
            Ok(Some((event, request)))
        })
        .await
        .with_context(|| format!("reading event {id}"))
    }

    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let (before, limit) = (filter.before, filter.limit);
        let (sql, values) = reads::delivery_clauses(filter).newest_first(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries"),
            before,
            limit,
        );
        self.read(|client| async move {
            let rows = client.query(&sql, &reads::params(&values)).await?;
            Ok(rows.iter().map(reads::delivery_from_row).collect())
        })
        .await
        .context("listing deliveries")
    }

    async fn claim_due(
        &self,
        now: UnixMs,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        let until = now.saturating_add(lease.as_millis() as UnixMs);
        match self
            .write(Write::Claim { now, until, limit })
            .await
            .context("claiming due deliveries")?
        {
            Written::Claimed(claimed) => Ok(claimed),
            other => Err(unexpected("a claim", other)),
        }
    }

    async fn next_due(&self) -> Result<Option<UnixMs>> {
        self.read(|client| async move {
            let row = client
                .query_one(
                    "SELECT MIN(GREATEST(next_at, COALESCE(claimed_until, 0))) FROM deliveries
                     WHERE state = 'pending'",
                    &[],
                )
                .await?;
            Ok(row.get::<_, Option<i64>>(0).map(|next| next as UnixMs))
        })
        .await
        .context("finding the next due delivery")
    }

    async fn complete(&self, delivery: i64, now: UnixMs) -> Result<()> {
        self.write(Write::Complete { delivery, now })
            .await
            .with_context(|| format!("completing delivery {delivery}"))?;
        Ok(())
    }

    async fn fail(
        &self,
        delivery: i64,
        error: String,
        after: AfterFailure,
        now: UnixMs,
    ) -> Result<()> {
        self.write(Write::Fail {
            delivery,
            error,
            after,
            now,
        })
        .await
        .with_context(|| format!("recording a failed attempt of delivery {delivery}"))?;
        Ok(())
    }

    async fn retry(&self, delivery: i64, now: UnixMs) -> Result<Option<DeliveryRow>> {
        match self
            .write(Write::Retry { delivery, now })
            .await
            .with_context(|| format!("re-queueing delivery {delivery}"))?
        {
            Written::Delivery(row) => Ok(row),
            other => Err(unexpected("a retry", other)),
        }
    }

    async fn purge_older_than(&self, cutoff: UnixMs) -> Result<u64> {
        match self
            .write(Write::Purge { cutoff })
            .await
            .context("purging old events")?
        {
            Written::Count(count) => Ok(count),
            other => Err(unexpected("a purge", other)),
        }
    }

    async fn persist_poll(&self, record: PollRecord) -> Result<Vec<Persisted>> {
        let plugin = record.plugin.clone();
        match self
            .write(Write::Poll(record))
            .await
            .with_context(|| format!("saving a poll of {plugin}"))?
        {
            Written::Persisted(persisted) => Ok(persisted),
            other => Err(unexpected("a poll save", other)),
        }
    }

    async fn poll_cursor(&self, plugin: &str) -> Result<Option<SavedCursor>> {
        self.read(|client| async move {
            let row = client
                .query_opt(
                    "SELECT cursor, polled_at FROM poll_cursors WHERE plugin = $1",
                    &[&plugin],
                )
                .await?;
            Ok(row.map(|row| SavedCursor {
                cursor: row.get(0),
                polled_at: row.get::<_, i64>(1) as UnixMs,
            }))
        })
        .await
        .context("reading a poll cursor")
    }

    async fn state_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|client| async move {
            let row = client
                .query_opt(
                    "SELECT value FROM plugin_state WHERE plugin = $1 AND key = $2",
                    &[&plugin, &key],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
        .context("reading plugin state")
    }

    async fn state_len(&self, plugin: &str) -> Result<u64> {
        self.read(|client| async move {
            let row = client
                .query_one(
                    "SELECT COUNT(*) FROM plugin_state WHERE plugin = $1",
                    &[&plugin],
                )
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
        .context("counting plugin state keys")
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

    async fn keep_poll_leases(
        &self,
        node: &str,
        plugins: &[String],
        now: UnixMs,
        ttl: Duration,
    ) -> Result<Vec<PollLease>> {
        let write = Write::KeepLeases {
            node: node.to_string(),
            plugins: plugins.to_vec(),
            now,
            expires_at: now.saturating_add(ttl.as_millis() as UnixMs),
        };
        match self.write(write).await.context("renewing poll leases")? {
            Written::Leases(leases) => Ok(leases),
            other => Err(unexpected("a lease renewal", other)),
        }
    }

    async fn release_poll_leases(&self, node: &str) -> Result<()> {
        self.write(Write::ReleaseLeases {
            node: node.to_string(),
        })
        .await
        .context("releasing poll leases")?;
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        let check = async {
            let client = self.client().await?;
            client
                .query_one("SELECT 1", &[])
                .await
                .with_context(|| format!("querying PostgreSQL at {}", self.shown_url))?;
            Ok(())
        };
        tokio::time::timeout(HEALTH_TIMEOUT, check)
            .await
            .map_err(|_| {
                anyhow!(
                    "PostgreSQL at {} did not answer within {HEALTH_TIMEOUT:?}",
                    self.shown_url
                )
            })?
    }

    /// Every write was committed before it was answered; there is nothing to flush.
    /// Later writes are refused, as on SQLite.
    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
