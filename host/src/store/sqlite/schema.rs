//! The SQLite store's tables, and bringing a file up to date at open.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

/// Bumped, with a migration, whenever `SCHEMA` changes.
/// Version 2 added `poll_cursors` and `plugin_state`, version 3 `poll_leases`; the
/// tables and indexes are created if missing, which is the whole migration from 1
/// and 2. Version 4 added `deliveries.claim_token` (see `ADD_CLAIM_TOKEN`),
/// `poll_wants` and the index `events_request`.
pub const SCHEMA_VERSION: u32 = 4;

/// The fencing token of a delivery's claim, added to a file older than version 4
/// (`SCHEMA` creates `deliveries` without it, so a new file gets it here too).
const ADD_CLAIM_TOKEN: &str =
    "ALTER TABLE deliveries ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0";

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
-- The purge keeps a request while an event points at it, and deleting a request
-- sets its events' request_id to NULL: without this index each would scan events.
CREATE INDEX IF NOT EXISTS events_request ON events(request_id);
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
CREATE TABLE IF NOT EXISTS poll_wants (
    plugin TEXT NOT NULL,
    node TEXT NOT NULL,
    seen_until INTEGER NOT NULL,
    PRIMARY KEY (plugin, node)
) WITHOUT ROWID;
"#;

/// Brings the file at `path` (open on `conn`) to `SCHEMA_VERSION`, or refuses one
/// that a newer hookhost wrote: writing to its tables with this version's
/// statements could corrupt what it stored.
pub fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .context("reading the event store's schema version")?;
    if version > SCHEMA_VERSION {
        bail!(
            "{} has schema version {version}, newer than this hookhost's {SCHEMA_VERSION}",
            path.display()
        );
    }
    conn.execute_batch(SCHEMA)
        .context("creating the event store's tables")?;
    if version < 4 {
        conn.execute(ADD_CLAIM_TOKEN, [])
            .context("adding the claim token to deliveries")?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .context("recording the event store's schema version")
}

/// Releases every lease a previous run left: this process owns the file alone
/// (see `SqliteStore::open`), so their holder is gone. Deliveries that were in
/// flight at a crash are due again at once.
pub fn release_previous_run(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE deliveries SET claimed_until = NULL WHERE state = 'pending'",
        [],
    )
    .context("releasing delivery leases of the previous run")?;
    conn.execute("UPDATE poll_leases SET expires_at = 0", [])
        .context("releasing poll leases of the previous run")?;
    Ok(())
}
