//! The embedded `EventStore`: one SQLite file in the data directory, written by one
//! thread that commits in groups.
//!
//! Group commit: every write is a job sent to the writer thread. The writer takes
//! all jobs queued at that moment, runs each in its own savepoint inside ONE
//! transaction, commits once (one fsync for the whole group), and only then answers
//! each job. Under load, requests that arrive during an fsync form the next group, so
//! durability costs one fsync per group instead of one per request.
//!
//! Reads use a second connection: in WAL mode readers see the last commit and never
//! wait for the writer.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{
    AfterFailure, ClaimedDelivery, DeliveryFilter, DeliveryRow, DeliveryState, EventFilter,
    EventStore, IngestRecord, Persisted, PollLease, PollRecord, RawRequest, SavedCursor,
    StateChange, StateRefused, StoredEventRow, Unavailable, UnixMs, STATE_MAX_KEYS,
};

/// The most jobs one commit covers; bounds the latency a single group adds.
const MAX_GROUP: usize = 512;

/// A write, run inside a savepoint of the group's transaction. It returns whether it
/// succeeded (else its savepoint is rolled back) and how to answer its caller once
/// the commit's outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Finish) + Send>;
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the writer thread is asked to do.
enum Message {
    Write(Job),
    /// Checkpoint the WAL into the database file and stop taking writes.
    Close(oneshot::Sender<Result<()>>),
}

/// Whether the writer groups queued writes into one commit. `PerWrite` exists for
/// the benchmark that measures what grouping buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Grouped,
    PerWrite,
}

pub struct SqliteStore {
    /// To the writer thread, which is the only receiver and the only writer.
    jobs: mpsc::UnboundedSender<Message>,
    /// Read-only queries; a mutex because a connection is not `Sync`, and reads are
    /// short.
    reader: Arc<Mutex<Connection>>,
    /// Held (locked) for as long as the store is open.
    _lock: std::fs::File,
}

/// Bumped, with a migration, whenever `SCHEMA` changes.
/// Version 2 added `poll_cursors` and `plugin_state`, version 3 `poll_leases`; the
/// tables are created if missing, which is the whole migration from 1 and 2.
const SCHEMA_VERSION: u32 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    plugin TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers TEXT NOT NULL, -- JSON array of [name, value]
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_received ON requests(received_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    request_id INTEGER REFERENCES requests(id) ON DELETE SET NULL,
    UNIQUE (plugin, event_id)
);
CREATE INDEX IF NOT EXISTS events_received ON events(received_at);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    plugin TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    claimed_until INTEGER,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (event_id, plugin)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_at);
CREATE TABLE IF NOT EXISTS poll_cursors (
    plugin TEXT PRIMARY KEY,
    cursor TEXT,
    polled_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS plugin_state (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS poll_leases (
    plugin TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and starts its writer thread.
    ///
    /// This process owns the file alone, so any lease left by a previous run was
    /// held by a process that is gone: leases are released at once, and deliveries
    /// that were in flight at a crash are due again immediately.
    pub fn open(path: &Path, commit: Commit) -> Result<SqliteStore> {
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
        let mut writer = open_connection(path)?;
        let version: u32 = writer
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .context("reading the event store's schema version")?;
        // A newer hookhost may have changed the tables; writing to them with this
        // version's statements could corrupt what it stored.
        if version > SCHEMA_VERSION {
            bail!(
                "{} has schema version {version}, newer than this hookhost's {SCHEMA_VERSION}",
                path.display()
            );
        }
        writer
            .execute_batch(SCHEMA)
            .context("creating the event store's tables")?;
        writer
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .context("recording the event store's schema version")?;
        writer
            .execute(
                "UPDATE deliveries SET claimed_until = NULL WHERE state = 'pending'",
                [],
            )
            .context("releasing delivery leases of the previous run")?;
        writer
            .execute("UPDATE poll_leases SET expires_at = 0", [])
            .context("releasing poll leases of the previous run")?;
        let reader = open_connection(path)?;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Message>();
        std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || {
                while let Some(first) = queue.blocking_recv() {
                    let mut group = Vec::new();
                    let mut close = None;
                    match first {
                        Message::Write(job) => group.push(job),
                        Message::Close(reply) => close = Some(reply),
                    }
                    while close.is_none() && commit == Commit::Grouped && group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(Message::Write(job)) => group.push(job),
                            Ok(Message::Close(reply)) => close = Some(reply),
                            Err(_) => break,
                        }
                    }
                    if !group.is_empty() {
                        run_group(&mut writer, group);
                    }
                    if let Some(reply) = close {
                        // Writes sent after this are refused (their callers report a
                        // storage failure); the ones queued before were committed above.
                        queue.close();
                        let _ = reply.send(checkpoint(&writer));
                        return;
                    }
                }
            })
            .context("starting the event store's writer thread")?;
        Ok(SqliteStore {
            jobs,
            reader: Arc::new(Mutex::new(reader)),
            _lock: lock,
        })
    }

    /// Runs `f` on the writer thread inside the next group's transaction and waits
    /// until that transaction is committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |commit| {
                let _ = reply.send(match commit {
                    Ok(()) => result,
                    Err(error) => Err(anyhow!("committing to the event store: {error}")),
                });
            });
            (ok, finish)
        });
        self.jobs.send(Message::Write(job)).map_err(|_| {
            anyhow!("the event store's writer thread has stopped").context(Unavailable)
        })?;
        answer
            .await
            .map_err(|_| anyhow!("the event store could not run the write (see the log)"))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in a query leaves the connection usable; SQLite keeps no
            // half-done state for a read.
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .context("event store read task panicked")?
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
    Ok(conn)
}

/// Copies every committed page from the WAL into the database file and empties the
/// WAL, so that the database file alone holds everything (for a backup taken after
/// shutdown, or a tool that ignores the WAL).
fn checkpoint(conn: &Connection) -> Result<()> {
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .context("checkpointing the event store's write-ahead log")?;
    if busy != 0 {
        bail!("checkpointing the event store's write-ahead log: a reader kept it busy");
    }
    Ok(())
}

fn run_group(conn: &mut Connection, group: Vec<Job>) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            // Dropping the jobs unanswered makes each caller report a storage
            // failure (503 for a webhook); nothing was acknowledged.
            tracing::error!("event store: beginning a transaction: {error}");
            return;
        }
    };
    let mut finishes = Vec::with_capacity(group.len());
    for job in group {
        match tx.savepoint() {
            Ok(savepoint) => {
                // A panicking job must not take the writer thread (and with it
                // every later write) down; it is dropped unanswered instead.
                let ran =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&savepoint)));
                let Ok((ok, finish)) = ran else {
                    tracing::error!("event store: a write panicked; it was rolled back");
                    continue;
                };
                if ok {
                    if let Err(error) = savepoint.commit() {
                        tracing::error!("event store: releasing a savepoint: {error}");
                    }
                }
                // A failed job's savepoint rolls back when dropped, leaving the
                // group's other writes intact.
                finishes.push(finish);
            }
            Err(error) => {
                tracing::error!("event store: opening a savepoint: {error}");
                // The job is dropped unanswered; its caller sees the writer's
                // channel closed and reports a storage failure.
            }
        }
    }
    let commit = tx.commit().map_err(|error| error.to_string());
    if let Err(error) = &commit {
        tracing::error!("event store: commit failed: {error}");
    }
    for finish in finishes {
        finish(commit.clone());
    }
}

/// One page of a newest-first listing: `select` (`SELECT ... FROM table`) filtered by
/// every clause in `clauses` (each with one `?`, bound from `values` in order) and
/// by the cursor (ids below `before`), by descending id, at most `limit` rows.
fn newest_first<T>(
    conn: &Connection,
    select: &str,
    mut clauses: Vec<&str>,
    mut values: Vec<rusqlite::types::Value>,
    before: Option<i64>,
    limit: u32,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    if let Some(before) = before {
        clauses.push("id < ?");
        values.push(before.into());
    }
    let mut sql = select.to_string();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::from(limit).into());
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values), from_row)?;
    rows.collect()
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEventRow> {
    Ok(StoredEventRow {
        id: row.get(0)?,
        plugin: row.get(1)?,
        event_id: row.get(2)?,
        kind: row.get(3)?,
        subject: row.get(4)?,
        payload: row.get(5)?,
        received_at: row.get::<_, i64>(6)? as UnixMs,
    })
}

const EVENT_COLUMNS: &str = "id, plugin, event_id, kind, subject, payload, received_at";
const DELIVERY_COLUMNS: &str =
    "id, event_id, plugin, state, attempts, next_at, last_error, updated_at";

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    let state: String = row.get(3)?;
    Ok(DeliveryRow {
        id: row.get(0)?,
        event: row.get(1)?,
        plugin: row.get(2)?,
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        attempts: row.get(4)?,
        next_attempt_at: row.get::<_, i64>(5)? as UnixMs,
        last_error: row.get(6)?,
        updated_at: row.get::<_, i64>(7)? as UnixMs,
    })
}

fn persist(conn: &Connection, record: &IngestRecord) -> Result<Vec<Persisted>> {
    let mut existing = Vec::with_capacity(record.events.len());
    for event in &record.events {
        let id: Option<i64> = conn
            .prepare_cached("SELECT id FROM events WHERE plugin = ?1 AND event_id = ?2")?
            .query_row(params![record.plugin, event.event_id], |row| row.get(0))
            .optional()?;
        existing.push(id);
    }
    // A provider's retry of something fully stored changes nothing, not even the
    // request log.
    if !record.events.is_empty() && existing.iter().all(Option::is_some) {
        return Ok(existing
            .into_iter()
            .map(|id| Persisted::Duplicate(id.expect("checked")))
            .collect());
    }
    let request_id = match &record.request {
        Some(request) => {
            conn.prepare_cached(
                "INSERT INTO requests (plugin, received_at, method, path, query, headers, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                record.plugin,
                record.received_at as i64,
                request.method,
                request.path,
                request.query,
                serde_json::to_string(&request.headers)?,
                request.body,
            ])?;
            Some(conn.last_insert_rowid())
        }
        None => None,
    };
    let mut outcomes = Vec::with_capacity(record.events.len());
    for (event, existing) in record.events.iter().zip(existing) {
        if let Some(id) = existing {
            outcomes.push(Persisted::Duplicate(id));
            continue;
        }
        // OR IGNORE: one delivery may carry the same event id twice; the first wins.
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO events
                     (plugin, event_id, kind, subject, payload, received_at, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                record.plugin,
                event.event_id,
                event.kind,
                event.subject,
                event.payload,
                record.received_at as i64,
                request_id,
            ])?;
        if inserted == 0 {
            let id = conn
                .prepare_cached("SELECT id FROM events WHERE plugin = ?1 AND event_id = ?2")?
                .query_row(params![record.plugin, event.event_id], |row| row.get(0))?;
            outcomes.push(Persisted::Duplicate(id));
            continue;
        }
        let id = conn.last_insert_rowid();
        for subscriber in &event.subscribers {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (event_id, plugin, state, next_at, updated_at)
                 VALUES (?1, ?2, 'pending', ?3, ?3)",
            )?
            .execute(params![id, subscriber, record.received_at as i64])?;
        }
        outcomes.push(Persisted::New(id));
    }
    Ok(outcomes)
}

fn saved_cursor(conn: &Connection, plugin: &str) -> rusqlite::Result<Option<SavedCursor>> {
    conn.prepare_cached("SELECT cursor, polled_at FROM poll_cursors WHERE plugin = ?1")?
        .query_row([plugin], |row| {
            Ok(SavedCursor {
                cursor: row.get(0)?,
                polled_at: row.get::<_, i64>(1)? as UnixMs,
            })
        })
        .optional()
}

/// Applies state writes inside the caller's transaction (a savepoint that the
/// writer rolls back when this, or anything after it in the same job, fails).
fn apply_state(
    conn: &Connection,
    plugin: &str,
    changes: &[StateChange],
    now: UnixMs,
) -> Result<Result<(), StateRefused>> {
    for change in changes {
        match change {
            StateChange::Set(key, value) => conn
                .prepare_cached(
                    "INSERT INTO plugin_state (plugin, key, value, updated_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = ?3, updated_at = ?4",
                )?
                .execute(params![plugin, key, value, now as i64])?,
            StateChange::Delete(key) => conn
                .prepare_cached("DELETE FROM plugin_state WHERE plugin = ?1 AND key = ?2")?
                .execute(params![plugin, key])?,
        };
    }
    let held = conn
        .prepare_cached("SELECT COUNT(*) FROM plugin_state WHERE plugin = ?1")?
        .query_row([plugin], |row| row.get::<_, i64>(0))? as u64;
    if held > STATE_MAX_KEYS {
        return Ok(Err(StateRefused::TooManyKeys {
            plugin: plugin.to_string(),
            would_hold: held,
        }));
    }
    Ok(Ok(()))
}

fn persist_poll(conn: &Connection, record: PollRecord) -> Result<Vec<Persisted>> {
    if let Some(token) = record.lease {
        let current = conn
            .prepare_cached("SELECT token FROM poll_leases WHERE plugin = ?1")?
            .query_row([&record.plugin], |row| row.get::<_, i64>(0))
            .optional()?
            .map(|token| token as u64);
        if current != Some(token) {
            return Err(StateRefused::LeaseLost {
                plugin: record.plugin,
                token,
                current,
            }
            .into());
        }
    }
    let saved = saved_cursor(conn, &record.plugin)?.and_then(|saved| saved.cursor);
    if saved != record.from_cursor {
        return Err(StateRefused::CursorMoved {
            plugin: record.plugin,
            started: record.from_cursor,
            saved,
        }
        .into());
    }
    apply_state(conn, &record.plugin, &record.state, record.polled_at)??;
    let cursor = record.cursor.or(saved);
    conn.prepare_cached(
        "INSERT INTO poll_cursors (plugin, cursor, polled_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (plugin) DO UPDATE SET cursor = ?2, polled_at = ?3",
    )?
    .execute(params![record.plugin, cursor, record.polled_at as i64])?;
    let events = IngestRecord {
        plugin: record.plugin,
        received_at: record.polled_at,
        request: None,
        events: record.events,
    };
    persist(conn, &events)
}

/// `prefix.*` becomes a LIKE prefix match; anything else is exact.
fn kind_clause(kind: &str) -> (&'static str, String) {
    match kind.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            let escaped = prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            ("kind LIKE ? ESCAPE '\\'", format!("{escaped}%"))
        }
        _ => ("kind = ?", kind.to_string()),
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn persist_ingest(&self, record: IngestRecord) -> Result<Vec<Persisted>> {
        self.write(move |conn| persist(conn, &record)).await
    }

    async fn list_events(&self, filter: EventFilter) -> Result<Vec<StoredEventRow>> {
        self.read(move |conn| {
            let mut clauses = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(plugin) = filter.plugin {
                clauses.push("plugin = ?");
                values.push(plugin.into());
            }
            if let Some(kind) = filter.kind {
                let (clause, value) = kind_clause(&kind);
                clauses.push(clause);
                values.push(value.into());
            }
            if let Some(subject) = filter.subject {
                clauses.push("subject = ?");
                values.push(subject.into());
            }
            let select = format!("SELECT {EVENT_COLUMNS} FROM events");
            Ok(newest_first(
                conn,
                &select,
                clauses,
                values,
                filter.before,
                filter.limit,
                event_from_row,
            )?)
        })
        .await
        .context("listing events")
    }

    async fn get_event(&self, id: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>> {
        self.read(move |conn| {
            let found = conn
                .query_row(
                    &format!("SELECT {EVENT_COLUMNS}, request_id FROM events WHERE id = ?1"),
                    [id],
                    |row| Ok((event_from_row(row)?, row.get::<_, Option<i64>>(7)?)),
                )
                .optional()?;
            let Some((event, request_id)) = found else {
                return Ok(None);
            };
            let request = match request_id {
                Some(request_id) => conn
                    .query_row(
                        "SELECT method, path, query, headers, body FROM requests WHERE id = ?1",
                        [request_id],
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, String>(3)?,
                                row.get::<_, Vec<u8>>(4)?,
                            ))
                        },
                    )
                    .optional()?
                    .map(|(method, path, query, headers, body)| {
                        Ok::<_, anyhow::Error>(RawRequest {
                            method,
                            path,
                            query,
                            headers: serde_json::from_str(&headers)
                                .context("decoding stored headers")?,
                            body,
                        })
                    })
                    .transpose()?,
                None => None,
            };
            Ok(Some((event, request)))
        })
        .await
        .with_context(|| format!("reading event {id}"))
    }

    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        self.read(move |conn| {
            let mut clauses = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(plugin) = filter.plugin {
                clauses.push("plugin = ?");
                values.push(plugin.into());
            }
            if let Some(state) = filter.state {
                clauses.push("state = ?");
                values.push(state.as_str().to_string().into());
            }
            if let Some(event) = filter.event {
                clauses.push("event_id = ?");
                values.push(event.into());
            }
            let select = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries");
            Ok(newest_first(
                conn,
                &select,
                clauses,
                values,
                filter.before,
                filter.limit,
                delivery_from_row,
            )?)
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
        let until = now + lease.as_millis() as UnixMs;
        self.write(move |conn| {
            let mut statement = conn.prepare_cached(
                "UPDATE deliveries SET claimed_until = ?2, attempts = attempts + 1, updated_at = ?1
                 WHERE id IN (
                     SELECT id FROM deliveries
                     WHERE state = 'pending' AND next_at <= ?1
                       AND (claimed_until IS NULL OR claimed_until <= ?1)
                     ORDER BY next_at LIMIT ?3)
                 RETURNING id, event_id, plugin, attempts",
            )?;
            let claimed = statement
                .query_map(params![now as i64, until as i64, limit], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, u32>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(claimed.len());
            for (id, event_id, plugin, attempt) in claimed {
                let event = conn
                    .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
                    .query_row([event_id], event_from_row)?;
                out.push(ClaimedDelivery {
                    id,
                    plugin,
                    attempt,
                    event,
                });
            }
            Ok(out)
        })
        .await
        .context("claiming due deliveries")
    }

    async fn next_due(&self) -> Result<Option<UnixMs>> {
        self.read(|conn| {
            let next: Option<i64> = conn.query_row(
                "SELECT MIN(MAX(next_at, COALESCE(claimed_until, 0))) FROM deliveries
                 WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )?;
            Ok(next.map(|n| n as UnixMs))
        })
        .await
        .context("finding the next due delivery")
    }

    async fn complete(&self, delivery: i64, now: UnixMs) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE deliveries SET state = 'delivered', claimed_until = NULL,
                     last_error = NULL, updated_at = ?2 WHERE id = ?1",
                params![delivery, now as i64],
            )?;
            Ok(())
        })
        .await
        .with_context(|| format!("completing delivery {delivery}"))
    }

    async fn fail(
        &self,
        delivery: i64,
        error: String,
        after: AfterFailure,
        now: UnixMs,
    ) -> Result<()> {
        self.write(move |conn| {
            let (state, next_at) = match after {
                AfterFailure::RetryAt(at) => ("pending", at),
                AfterFailure::Dead => ("dead", now),
            };
            conn.execute(
                "UPDATE deliveries SET state = ?2, next_at = ?3, claimed_until = NULL,
                     last_error = ?4, updated_at = ?5 WHERE id = ?1",
                params![delivery, state, next_at as i64, error, now as i64],
            )?;
            Ok(())
        })
        .await
        .with_context(|| format!("recording a failed attempt of delivery {delivery}"))
    }

    async fn retry(&self, delivery: i64, now: UnixMs) -> Result<Option<DeliveryRow>> {
        self.write(move |conn| {
            let row = conn
                .query_row(
                    &format!(
                        "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?2,
                             claimed_until = NULL, updated_at = ?2 WHERE id = ?1
                         RETURNING {DELIVERY_COLUMNS}"
                    ),
                    params![delivery, now as i64],
                    delivery_from_row,
                )
                .optional()?;
            Ok(row)
        })
        .await
        .with_context(|| format!("re-queueing delivery {delivery}"))
    }

    async fn close(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Message::Close(reply))
            .map_err(|_| anyhow!("the event store's writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the event store's writer thread stopped while closing"))?
    }

    async fn purge_older_than(&self, cutoff: UnixMs) -> Result<u64> {
        self.write(move |conn| {
            let events =
                conn.execute("DELETE FROM events WHERE received_at < ?1", [cutoff as i64])?;
            conn.execute(
                "DELETE FROM requests WHERE received_at < ?1",
                [cutoff as i64],
            )?;
            Ok(events as u64)
        })
        .await
        .context("purging old events")
    }

    async fn persist_poll(&self, record: PollRecord) -> Result<Vec<Persisted>> {
        let plugin = record.plugin.clone();
        self.write(move |conn| persist_poll(conn, record))
            .await
            .with_context(|| format!("saving a poll of {plugin}"))
    }

    async fn poll_cursor(&self, plugin: &str) -> Result<Option<SavedCursor>> {
        let plugin = plugin.to_string();
        self.read(move |conn| Ok(saved_cursor(conn, &plugin)?))
            .await
            .context("reading a poll cursor")
    }

    async fn keep_poll_leases(
        &self,
        node: &str,
        plugins: &[String],
        now: UnixMs,
        ttl: Duration,
    ) -> Result<Vec<PollLease>> {
        let (node, plugins) = (node.to_string(), plugins.to_vec());
        let expires_at = now.saturating_add(ttl.as_millis() as UnixMs);
        self.write(move |conn| {
            let mut held = Vec::new();
            for plugin in plugins {
                // The token grows only when the lease changes hands, so the holder's
                // polls in flight stay valid across its renewals.
                let lease = conn
                    .prepare_cached(
                        "INSERT INTO poll_leases (plugin, holder, token, expires_at)
                         VALUES (?1, ?2, 1, ?3)
                         ON CONFLICT (plugin) DO UPDATE SET
                             token = CASE WHEN holder = ?2 THEN token ELSE token + 1 END,
                             holder = ?2,
                             expires_at = ?3
                         WHERE holder = ?2 OR expires_at <= ?4
                         RETURNING token",
                    )?
                    .query_row(
                        params![plugin, node, expires_at as i64, now as i64],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()?;
                if let Some(token) = lease {
                    held.push(PollLease {
                        plugin,
                        token: token as u64,
                        expires_at,
                    });
                }
            }
            Ok(held)
        })
        .await
        .context("renewing poll leases")
    }

    async fn release_poll_leases(&self, node: &str) -> Result<()> {
        let node = node.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE poll_leases SET expires_at = 0 WHERE holder = ?1",
                [node],
            )?;
            Ok(())
        })
        .await
        .context("releasing poll leases")
    }

    async fn health(&self) -> Result<()> {
        if self.jobs.is_closed() {
            return Err(anyhow!("the event store's writer thread has stopped").context(Unavailable));
        }
        Ok(())
    }

    async fn state_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM plugin_state WHERE plugin = ?1 AND key = ?2")?
                .query_row(params![plugin, key], |row| row.get(0))
                .optional()?)
        })
        .await
        .context("reading plugin state")
    }

    async fn state_len(&self, plugin: &str) -> Result<u64> {
        let plugin = plugin.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT COUNT(*) FROM plugin_state WHERE plugin = ?1")?
                .query_row([plugin], |row| row.get::<_, i64>(0))? as u64)
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
        let plugin = plugin.to_string();
        self.write(move |conn| {
            // A refusal must change nothing, so it fails the job (rolling its
            // savepoint back) and is turned back into a value below.
            apply_state(conn, &plugin, &changes, now)?.map_err(anyhow::Error::from)
        })
        .await
        .map(Ok)
        .or_else(|error| match error.downcast::<StateRefused>() {
            Ok(refused) => Ok(Err(refused)),
            Err(error) => Err(error.context("writing plugin state")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("events.sqlite3"), Commit::Grouped).unwrap()
    }

    fn record(event_ids: &[&str], subscribers: &[&str], at: UnixMs) -> IngestRecord {
        IngestRecord {
            plugin: "github".into(),
            received_at: at,
            request: Some(RawRequest {
                method: "POST".into(),
                path: "/".into(),
                query: "a=1".into(),
                headers: vec![("x-github-event".into(), "push".into())],
                body: b"{\"raw\":true}".to_vec(),
            }),
            events: event_ids
                .iter()
                .map(|id| NewEvent {
                    event_id: id.to_string(),
                    kind: "github.push".into(),
                    subject: Some("acme/widgets".into()),
                    payload: "{}".into(),
                    subscribers: subscribers.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        }
    }

    use super::super::NewEvent;

    #[tokio::test]
    async fn leases_of_a_previous_run_are_released_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store(&dir);
            store
                .persist_ingest(record(&["a"], &["notify"], 100))
                .await
                .unwrap();
            let claimed = store
                .claim_due(100, Duration::from_secs(3600), 10)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
        }
        let store = store(&dir);
        assert_eq!(
            store
                .claim_due(101, Duration::ZERO, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn closing_empties_the_wal_into_the_file_and_refuses_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store
            .persist_ingest(record(&["a", "b"], &[], 1))
            .await
            .unwrap();
        let wal = dir.path().join("events.sqlite3-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        store.close().await.unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let refused = store.persist_ingest(record(&["c"], &[], 2)).await;
        assert!(refused.is_err());
        // What was committed is in the database file alone.
        std::fs::remove_file(&wal).unwrap();
        let conn = Connection::open(dir.path().join("events.sqlite3")).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(&dir);
        let path = dir.path().join("events.sqlite3");
        let error = SqliteStore::open(&path, Commit::Grouped).err().unwrap();
        assert!(format!("{error:#}").contains("in use"), "{error:#}");
        drop(first);
        SqliteStore::open(&path, Commit::Grouped).unwrap();
    }

    #[tokio::test]
    async fn a_store_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        drop(store(&dir));
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let error = SqliteStore::open(&path, Commit::Grouped).err().unwrap();
        assert!(format!("{error:#}").contains("newer"), "{error:#}");
    }
}
