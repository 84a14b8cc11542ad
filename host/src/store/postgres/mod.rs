//! The shared `EventStore`: one PostgreSQL database that every node of a fleet
//! writes to, so the fleet behaves as one host. What it writes and reads is the
//! shared core's (`sql`); this module holds only what PostgreSQL needs:
//!
//! - Writes go through group commit (`writer`): a writer on a thread of its own,
//!   with its own connection, commits queued writes together: a group's webhook
//!   writes in two statements (`batched_ingest`), any other write in a savepoint.
//! - Reads go straight to a pooled connection (`pool`), through the driver
//!   (`conn`).
//! - Migrations run at open under an advisory lock (`schema`), so nodes starting
//!   together are safe.
//! - Nothing is released at open: other nodes' delivery claims and poll leases are
//!   theirs until they run out.
//! - A database that is down gives errors within seconds (connect, pool wait and
//!   statement timeouts), never a hang; the pool connects again when it returns,
//!   without a restart.
//! - The fleet's deployed components (`components`), and the connection setting
//!   and TLS (`database_url`, `tls`).

mod batched_ingest;
mod components;
mod conn;
mod database_url;
mod pool;
mod schema;
mod tls;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use deadpool_postgres::{Object, Pool};
use tokio::sync::mpsc;

use crate::store::sql::group::{self, Job, Refused, DEFAULT_WRITE_QUEUE};
use crate::store::sql::impls::SqlBackend;
use crate::store::sql::reads::{self, Found, Read};
use crate::store::sql::writes::{Write, Written};
use crate::store::{EventStore, Unavailable};
use conn::PgConn;
use pool::{pool_error, HEALTH_TIMEOUT, READ_TIMEOUT};

pub use database_url::{DatabaseUrl, SslMode};
pub use schema::SCHEMA_VERSION;

/// How a store connects; the defaults suit one node of a small fleet.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Writers, each committing its own groups on its own connection; all of them
    /// run on the store's writer thread (`writer::spawn`).
    pub writers: usize,
    /// Connections in the pool for reads and deploys; each writer has one more of
    /// its own.
    pub max_connections: usize,
    /// Writes waiting for a writer at most; more are refused as unavailable.
    pub write_queue: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            // One: every group costs both sides a fixed amount (its round trips,
            // two statements to start, a WAL flush), and a second writer splits
            // the same load into smaller groups. One node on two cores persisted
            // 12,244 webhooks/s with one writer, 9,153 with two, 8,012 with four
            // (BENCHMARKS.md, "PostgreSQL: one writer on its own thread"). The
            // nodes of a fleet still commit side by side.
            writers: 1,
            max_connections: 16,
            write_queue: DEFAULT_WRITE_QUEUE,
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// To the writer tasks (the receiving end is shared by them); the only way
    /// anything is written except deploys, which carry whole components. Bounded:
    /// a write that finds it full is refused as unavailable.
    jobs: mpsc::Sender<Job>,
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
        let pool = pool::pool(&url, options.max_connections.max(1))?;
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
        let jobs = writer::spawn(&url, options.writers, options.write_queue)?;
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
    async fn with_client<T, F, Fut>(&self, read: F) -> Result<T>
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

impl SqlBackend for PostgresStore {
    async fn write(&self, write: Write) -> Result<Written> {
        if self.closed.load(Ordering::Acquire) {
            bail!("the event store is closed");
        }
        group::submit(write, |job| {
            self.jobs.try_send(job).map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
            })
        })
        .await
    }

    async fn read(&self, read: Read) -> Result<Found> {
        self.with_client(|client| async move { reads::run(&PgConn(&client), read).await })
            .await
            .map_err(|error| {
                // A connection lost in the middle of the read.
                if writer::is_try_later(&error) && !crate::store::is_unavailable(&error) {
                    error.context(Unavailable)
                } else {
                    error
                }
            })
    }
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
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
