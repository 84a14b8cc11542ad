//! One poll of one plugin: read its saved cursor, call `poll`, check what came back,
//! and save events, cursor and `state` writes in one transaction. When and how
//! often this runs is the scheduler's business.

use serde::Serialize;

use crate::ingest::{Arrival, Ingest, IngestError};
use crate::plugins::bindings::PluginError;
use crate::plugins::loaded::{CallError, LoadedPlugin};
use crate::plugins::outcome::check_poll;
use crate::plugins::plugin_error;
use crate::store::{now_ms, Persisted, PollBook};

/// A poll whose outcome was saved.
#[derive(Debug, Clone, Serialize)]
pub struct PollReport {
    pub plugin: String,
    pub version: String,
    pub events: Vec<PolledEvent>,
    /// The cursor saved for the next poll (the old one when the plugin returned none).
    pub cursor: Option<String>,
    /// The plugin's hint for the next poll, if it gave one.
    pub next_poll_seconds: Option<u32>,
}

/// One event of a poll and what the store made of it.
#[derive(Debug, Clone, Serialize)]
pub struct PolledEvent {
    /// The host's id of the stored event (the earlier one for a duplicate).
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub duplicate: bool,
}

/// Why a poll saved nothing. Every case keeps the cursor where it was.
#[derive(Debug, thiserror::Error)]
pub enum PollFailure {
    /// The plugin answered with an error; `unavailable` when it said it is
    /// temporarily unavailable (rather than failing).
    #[error("{message}")]
    Plugin { message: String, unavailable: bool },
    /// The plugin was unloaded, or no longer polls, while the poll waited.
    #[error("plugin {0} is no longer loaded as a polling plugin")]
    Unloaded(String),
    #[error("{0}")]
    Call(#[from] CallError),
    #[error("plugin {plugin} {version} returned {what}")]
    Invalid {
        plugin: String,
        version: String,
        what: String,
    },
    #[error("saving the poll failed: {0:#}")]
    Storage(anyhow::Error),
    /// The save was refused because the poll lease changed hands during the poll:
    /// another node polls the plugin now. Nothing was saved.
    #[error("the poll lease of {0} changed hands during the poll; another node polls it now and nothing was saved")]
    LeaseLost(String),
}

impl PollFailure {
    /// A stable machine-readable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            PollFailure::Plugin { .. } | PollFailure::Unloaded(_) => "plugin_error",
            PollFailure::Call(CallError::Timeout { .. }) => "timeout",
            PollFailure::Call(CallError::Trap { .. }) => "trap",
            PollFailure::Call(CallError::Busy { .. }) => "busy",
            PollFailure::Call(CallError::PoolExhausted { .. }) => "pool_exhausted",
            PollFailure::Call(CallError::UndeclaredKind { .. }) => "undeclared_kind",
            PollFailure::Invalid { .. } => "invalid_outcome",
            PollFailure::Storage(_) => "storage",
            PollFailure::LeaseLost(_) => "lease_lost",
        }
    }

    /// One line for operators (the poll status); trap details stay in the log.
    pub fn summary(&self) -> String {
        match self {
            PollFailure::Call(CallError::Trap {
                plugin, version, ..
            }) => {
                format!("plugin {plugin} {version} trapped (the details are in the host's log)")
            }
            PollFailure::Storage(_) => "the poll could not be saved (see the host's log)".into(),
            other => other.to_string(),
        }
    }
}

/// Polls `plugin` once from its saved cursor and saves the outcome, under the
/// fencing token `lease` of this node's poll lease (`None`: the saved cursor's
/// check alone). The events go the way of every ingest (`ingest`).
pub async fn poll_once(
    plugin: &LoadedPlugin,
    store: &dyn PollBook,
    ingest: &Ingest,
    lease: Option<u64>,
) -> Result<PollReport, PollFailure> {
    let id = plugin.id().to_string();
    let version = plugin.manifest.version.clone();
    let from_cursor = store
        .poll_cursor(&id)
        .await
        .map_err(PollFailure::Storage)?
        .and_then(|saved| saved.cursor);
    let polled_at = now_ms();
    let (answer, state) = plugin.poll(from_cursor.clone()).await.map_err(|error| {
        // The poll status shows only that it trapped (`summary`); why goes here.
        if let CallError::Trap { .. } = &error {
            tracing::error!(plugin = %id, "{error}");
        }
        PollFailure::Call(error)
    })?;
    let outcome = answer.map_err(|error| plugin_failure(&id, &version, error))?;
    check_poll(&outcome, plugin.limits.max_event_bytes).map_err(|what| PollFailure::Invalid {
        plugin: id.clone(),
        version: version.clone(),
        what,
    })?;
    let cursor = outcome.cursor.clone().or(from_cursor.clone());
    let arrival = Arrival::Poll {
        polled_at,
        from_cursor,
        cursor: outcome.cursor,
        state,
        lease,
    };
    // What the report names of each event; the events themselves move into the store.
    let named: Vec<(String, String)> = outcome
        .events
        .iter()
        .map(|event| (event.id.clone(), event.kind.clone()))
        .collect();
    let persisted =
        ingest
            .ingest(&id, outcome.events, arrival)
            .await
            .map_err(|error| match error {
                IngestError::LeaseLost => PollFailure::LeaseLost(id.clone()),
                IngestError::Storage(error) => PollFailure::Storage(error),
            })?;
    let events = named
        .into_iter()
        .zip(persisted)
        .map(|((event_id, kind), persisted)| {
            let (stored_as, duplicate) = match persisted {
                Persisted::New(at) => (at, false),
                Persisted::Duplicate(at) => (at, true),
            };
            PolledEvent {
                id: stored_as,
                event_id,
                kind,
                duplicate,
            }
        })
        .collect();
    Ok(PollReport {
        plugin: id,
        version,
        events,
        cursor,
        next_poll_seconds: outcome.next_poll_seconds,
    })
}

fn plugin_failure(id: &str, version: &str, error: PluginError) -> PollFailure {
    let message = plugin_error::describe(&error);
    tracing::warn!(plugin = id, version, "poll failed: {message}");
    PollFailure::Plugin {
        message,
        unavailable: matches!(error, PluginError::Unavailable(_)),
    }
}
