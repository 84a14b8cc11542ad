//! The embedded `EventStore`: one SQLite file in the data directory, written by one
//! thread that commits in groups (`writer`), read beside it.
//!
//! Reads use a second connection: in WAL mode readers see the last commit and never
//! wait for the writer. What the store writes and reads is the shared core's
//! (`sql`); this module holds only what SQLite needs: the file and its lock, the
//! schema (`schema`), the writer thread, and the driver (`conn`).

mod conn;
mod schema;
mod try_later;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::sql::conn::run_now;
use crate::store::sql::group::{self, Refused};
use crate::store::sql::impls::SqlBackend;
use crate::store::sql::reads::{self, Found, Read};
use crate::store::sql::writes::{Write, Written};
use crate::store::{EventStore, Unavailable};
use conn::SqliteConn;
use writer::Message;

pub use schema::SCHEMA_VERSION;
pub use writer::Commit;

pub struct SqliteStore {
    /// To the writer thread, which is the only receiver and the only writer.
    /// Bounded: a write that finds it full is refused as unavailable.
    jobs: mpsc::Sender<Message>,
    /// Read-only queries; a mutex because a connection is not `Sync`, and reads are
    /// short.
    reader: Arc<Mutex<Connection>>,
    /// Held (locked) for as long as the store is open.
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and starts its writer thread,
    /// with the default `write_queue`.
    pub fn open(path: &Path, commit: Commit) -> Result<SqliteStore> {
        Self::open_with(path, commit, group::DEFAULT_WRITE_QUEUE)
    }

    /// `open`, with at most `write_queue` writes waiting for the writer thread.
    ///
    /// This process owns the file alone, so any lease left by a previous run was
    /// held by a process that is gone: leases are released at once, and deliveries
    /// that were in flight at a crash are due again immediately.
    pub fn open_with(path: &Path, commit: Commit, write_queue: usize) -> Result<SqliteStore> {
        // The lock is what makes "this process owns the file alone" true: a second
        // host on the same data directory would otherwise release our leases and
        // deliver events twice. The OS drops it when the process dies, even by kill -9.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            anyhow!(
                "{} is in use by another hookhost (it holds {})",
                path.display(),
                lock_path.display()
            )
        })?;
        let writer = open_connection(path)?;
        schema::migrate(&writer, path)?;
        schema::release_previous_run(&writer)?;
        let reader = open_connection(path)?;
        Ok(SqliteStore {
            jobs: writer::spawn(writer, commit, write_queue)?,
            reader: Arc::new(Mutex::new(reader)),
            _lock: lock,
        })
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening event store {}", path.display()))?;
    // WAL lets readers run beside the writer. synchronous=FULL fsyncs the WAL at
    // every commit: the promise is that a 2xx means the event is on disk, and with
    // NORMAL a power loss could drop the last commits after they were acknowledged.
    // Group commit is what keeps FULL affordable.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )
    .with_context(|| format!("configuring event store {}", path.display()))?;
    // Every statement of the shared core is prepared once and kept: room for all
    // of them (and the listings' few shapes), so none is evicted and re-prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqlBackend for SqliteStore {
    async fn write(&self, write: Write) -> Result<Written> {
        group::submit(write, |job| {
            self.jobs
                .try_send(Message::Write(job))
                .map_err(|error| match error {
                    mpsc::error::TrySendError::Full(_) => Refused::Full,
                    mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
                })
        })
        .await
    }

    async fn read(&self, read: Read) -> Result<Found> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in a query leaves the connection usable; SQLite keeps no
            // half-done state for a read.
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            run_now(reads::run(&SqliteConn(&conn), read))?.map_err(try_later::mark)
        })
        .await
        .context("event store read task panicked")?
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn health(&self) -> Result<()> {
        if self.jobs.is_closed() {
            return Err(anyhow!("the event store's writer thread has stopped").context(Unavailable));
        }
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        // Waits for room: closing comes after the last write was answered, so
        // the queue is draining.
        self.jobs
            .send(Message::Close(reply))
            .await
            .map_err(|_| anyhow!("the event store's writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the event store's writer thread stopped while closing"))?
    }
}

#[cfg(test)]
mod tests;
