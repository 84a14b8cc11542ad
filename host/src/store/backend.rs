//! Which store a host runs on: PostgreSQL when the config names a `database`
//! (shared by every node of a fleet), else SQLite in the data directory.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::components::ComponentStore;
use super::postgres::{PostgresOptions, PostgresStore};
use super::sqlite::{Commit, SqliteStore};
use super::EventStore;

/// The stores a host runs on.
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    /// Components shared by the fleet; `None` on SQLite, where a deploy is written
    /// into the plugins folder instead.
    pub components: Option<Arc<dyn ComponentStore>>,
}

/// Opens PostgreSQL at `database` when given (an error, naming the setting without
/// its passwords, when it does not parse or cannot be reached), else SQLite at
/// `sqlite_path`; either with at most `write_queue` writes waiting.
pub async fn open(
    database: Option<&str>,
    sqlite_path: &Path,
    write_queue: usize,
) -> Result<Stores> {
    match database {
        Some(url) => {
            let options = PostgresOptions {
                write_queue,
                ..PostgresOptions::default()
            };
            let store = Arc::new(
                PostgresStore::open_with(url, options)
                    .await
                    .context("opening the PostgreSQL event store")?,
            );
            tracing::info!(
                database = %store.shown_url(),
                tls = store.is_encrypted(),
                "events are stored in PostgreSQL"
            );
            Ok(Stores {
                events: store.clone(),
                components: Some(store),
            })
        }
        None => {
            let store = SqliteStore::open_with(sqlite_path, Commit::Grouped, write_queue)
                .with_context(|| format!("opening the event store {}", sqlite_path.display()))?;
            Ok(Stores {
                events: Arc::new(store),
                components: None,
            })
        }
    }
}
