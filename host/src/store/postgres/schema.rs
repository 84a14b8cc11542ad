//! The PostgreSQL store's tables and their migrations.
//!
//! Several nodes may start at once against one database: each runs the migrations
//! inside one transaction holding a transaction-scoped advisory lock, so exactly
//! one of them creates or alters the tables and the others find them ready. DDL is
//! transactional in PostgreSQL, so a migration that fails leaves nothing behind.

use anyhow::{bail, Context, Result};

/// `pg_advisory_xact_lock` key for migrations: "hookhost" as ASCII, so that it is
/// unlikely to meet another application's lock in a shared database.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_686f_7374;

/// Each entry takes the schema from the version before it (its index) to its
/// index + 1. Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the SQLite store's schema version 3, plus the shared
    // components of `ComponentStore`.
    r#"
CREATE TABLE requests (
    id BIGSERIAL PRIMARY KEY,
    plugin TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers TEXT NOT NULL, -- JSON array of [name, value]
    body BYTEA NOT NULL
);
CREATE INDEX requests_received ON requests(received_at);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    plugin TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    request_id BIGINT REFERENCES requests(id) ON DELETE SET NULL,
    UNIQUE (plugin, event_id)
);
CREATE INDEX events_received ON events(received_at);
CREATE INDEX events_kind ON events(kind, id);
-- Purging requests sets events.request_id to NULL; without this index every
-- deleted request would scan the events table.
CREATE INDEX events_request ON events(request_id);
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    plugin TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claimed_until BIGINT,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    UNIQUE (event_id, plugin)
);
CREATE INDEX deliveries_due ON deliveries(state, next_at);
CREATE TABLE poll_cursors (
    plugin TEXT PRIMARY KEY,
    cursor TEXT,
    polled_at BIGINT NOT NULL
);
CREATE TABLE plugin_state (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE poll_leases (
    plugin TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE components (
    sha256 TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE deployments (
    plugin TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES components(sha256),
    deployed_at BIGINT NOT NULL
);
"#,
    // 2: undeploy and rollback. A NULL `deployments.sha256` is a tombstone: the
    // plugin was undeployed, and no node runs it. `deployment_history` holds each
    // plugin's recent deploys and undeploys, newest last, for rollback; it starts
    // with what is deployed now, and components no deployment refers to (every
    // component ever deployed was kept until now) are deleted.
    r#"
ALTER TABLE deployments ALTER COLUMN sha256 DROP NOT NULL;
CREATE TABLE deployment_history (
    id BIGSERIAL PRIMARY KEY,
    plugin TEXT NOT NULL,
    sha256 TEXT REFERENCES components(sha256),
    deployed_at BIGINT NOT NULL
);
CREATE INDEX deployment_history_plugin ON deployment_history(plugin, id);
INSERT INTO deployment_history (plugin, sha256, deployed_at)
    SELECT plugin, sha256, deployed_at FROM deployments ORDER BY deployed_at;
DELETE FROM components c WHERE NOT EXISTS (SELECT 1 FROM deployments d WHERE d.sha256 = c.sha256);
"#,
    // 3: fenced delivery claims, and which node can poll which plugin (for
    // spreading poll leases over the nodes).
    r#"
ALTER TABLE deliveries ADD COLUMN claim_token BIGINT NOT NULL DEFAULT 0;
CREATE TABLE poll_wants (
    plugin TEXT NOT NULL,
    node TEXT NOT NULL,
    seen_until BIGINT NOT NULL,
    PRIMARY KEY (plugin, node)
);
"#,
];

/// The schema version this hookhost reads and writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database to `SCHEMA_VERSION`, or refuses one that a newer hookhost
/// has migrated further (writing to it with this version's statements could
/// corrupt what the newer one stored).
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .context("beginning the migration transaction")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("taking the migration lock")?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS hookhost_schema (version INTEGER NOT NULL)")
        .await
        .context("creating the schema version table")?;
    let version: i32 = tx
        .query_opt("SELECT version FROM hookhost_schema", &[])
        .await
        .context("reading the schema version")?
        .map(|row| row.get(0))
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        bail!(
            "the database has hookhost schema version {version}, newer than this hookhost's \
             {SCHEMA_VERSION}; run a hookhost at least as new as the one that migrated it"
        );
    }
    if version == SCHEMA_VERSION {
        // Nothing to do; committing releases the lock at once.
        tx.commit().await.context("ending the migration")?;
        return Ok(());
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(migration)
            .await
            .with_context(|| format!("migrating the schema to version {}", index + 1))?;
    }
    tx.execute("DELETE FROM hookhost_schema", &[])
        .await
        .context("recording the schema version")?;
    tx.execute(
        "INSERT INTO hookhost_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .context("recording the schema version")?;
    tx.commit().await.context("committing the migration")?;
    tracing::info!(
        from = version,
        to = SCHEMA_VERSION,
        "migrated the PostgreSQL schema"
    );
    Ok(())
}
