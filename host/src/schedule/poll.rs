//! One poll of one plugin: read its saved cursor, call `poll`, check what came back,
//! and save events, cursor and `state` writes in one transaction. When and how
//! often this runs is the scheduler's business.

use axum::http::StatusCode;
use serde::Serialize;
use tokio::sync::Notify;

use crate::plugins::bindings::{PluginError, PollOutcome};
use crate::plugins::loaded::{CallError, LoadedPlugin};
use crate::plugins::registry::Registry;
use crate::server::check_event;
use crate::store::{now_ms, EventStore, NewEvent, Persisted, PollRecord, StateRefused};

/// The longest cursor a plugin may return; a cursor is a position, not a payload.
pub const MAX_CURSOR_BYTES: usize = 64 * 1024;

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
    #[error("{0}")]
    Plugin(String, StatusCode),
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
    /// The status `POST /api/plugins/{id}/poll` answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            PollFailure::Plugin(_, status) => *status,
            PollFailure::Call(CallError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            PollFailure::Call(CallError::Trap { .. } | CallError::UndeclaredKind { .. })
            | PollFailure::Invalid { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            PollFailure::Storage(_)
            | PollFailure::LeaseLost(_)
            | PollFailure::Call(CallError::Busy { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            PollFailure::Plugin(..) => "plugin_error",
            PollFailure::Call(CallError::Timeout { .. }) => "timeout",
            PollFailure::Call(CallError::Trap { .. }) => "trap",
            PollFailure::Call(CallError::Busy { .. }) => "busy",
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
/// check alone). New events with subscribers wake the dispatcher.
pub async fn poll_once(
    plugin: &LoadedPlugin,
    store: &dyn EventStore,
    registry: &Registry,
    wake_dispatcher: &Notify,
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
    check_outcome(&outcome, plugin.limits.max_event_bytes).map_err(|what| {
        PollFailure::Invalid {
            plugin: id.clone(),
            version: version.clone(),
            what,
        }
    })?;
    let events: Vec<NewEvent> = outcome
        .events
        .iter()
        .map(|event| NewEvent::emitted(event, registry.subscribers(&event.kind, &id)))
        .collect();
    let has_subscribers = events.iter().any(|e| !e.subscribers.is_empty());
    let cursor = outcome.cursor.clone().or(from_cursor.clone());
    let persisted = store
        .persist_poll(PollRecord {
            plugin: id.clone(),
            polled_at,
            from_cursor,
            cursor: outcome.cursor,
            events,
            state,
            lease,
        })
        .await
        .map_err(|error| match error.downcast_ref::<StateRefused>() {
            Some(StateRefused::LeaseLost { .. }) => PollFailure::LeaseLost(id.clone()),
            _ => {
                tracing::error!(plugin = %id, "{error:#}");
                PollFailure::Storage(error)
            }
        })?;
    if has_subscribers {
        wake_dispatcher.notify_one();
    }
    let events = outcome
        .events
        .into_iter()
        .zip(persisted)
        .map(|(event, persisted)| {
            let (stored_as, duplicate) = match persisted {
                Persisted::New(at) => (at, false),
                Persisted::Duplicate(at) => (at, true),
            };
            tracing::info!(
                plugin = %id,
                event_id = %event.id,
                kind = %event.kind,
                stored_as,
                duplicate,
                "event polled"
            );
            PolledEvent {
                id: stored_as,
                event_id: event.id,
                kind: event.kind,
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

fn check_outcome(outcome: &PollOutcome, max_event_bytes: usize) -> Result<(), String> {
    for event in &outcome.events {
        check_event(event, max_event_bytes)?;
    }
    match &outcome.cursor {
        Some(cursor) if cursor.len() > MAX_CURSOR_BYTES => Err(format!(
            "a cursor of {} bytes (the limit is {MAX_CURSOR_BYTES})",
            cursor.len()
        )),
        _ => Ok(()),
    }
}

fn plugin_failure(id: &str, version: &str, error: PluginError) -> PollFailure {
    let (what, message, status) = match error {
        PluginError::Unavailable(m) => ("unavailable", m, StatusCode::SERVICE_UNAVAILABLE),
        PluginError::Internal(m) => ("internal", m, StatusCode::BAD_GATEWAY),
        PluginError::BadRequest(m) => ("bad-request", m, StatusCode::BAD_GATEWAY),
        PluginError::Unauthorized(m) => ("unauthorized", m, StatusCode::BAD_GATEWAY),
    };
    tracing::warn!(plugin = id, version, "poll failed: {what}: {message}");
    PollFailure::Plugin(format!("{what}: {message}"), status)
}
