//! `hookhost:plugin@0.1.0` (`wit/v0.1.0/`, frozen). Its imports are served by the
//! 0.2.0 implementations on `CallState` (`call_state::v0_1_0` forwards), and its
//! values are converted to and from the host's (0.2.0) types here: 0.1.0 is 0.2.0 without the request's
//! `url` and the newer `crypto` functions, so every conversion is total.

use super::v0_2_0 as host;

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/v0.1.0",
        // As in 0.2.0 (see `v0_2_0`).
        imports: { "hookhost:plugin/state": async | trappable },
        exports: { default: async },
    });
}

/// The name under which a `0.1.0` component exports its functions.
pub const GUEST_EXPORT: &str = "hookhost:plugin/guest@0.1.0";

pub use generated::{Plugin, PluginPre};

use generated::hookhost::plugin::types::{
    Event, HttpResponse, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest,
};
/// The imported interfaces, whose `Host` traits `call_state` implements by
/// forwarding to the newest version's.
pub use generated::hookhost::plugin::{config, crypto, log, state, types};

// Exports: what the host passes in loses what 0.1.0 does not have (`url`); what
// the plugin returns is already complete.

/// The host keeps its request (for the store), so a 0.1.0 plugin gets a copy.
pub fn webhook_request(request: &host::WebhookRequest) -> WebhookRequest {
    WebhookRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
    }
}

pub fn stored_event(stored: host::StoredEvent) -> StoredEvent {
    let event = stored.event;
    StoredEvent {
        source: stored.source,
        received_at_unix_ms: stored.received_at_unix_ms,
        event: Event {
            id: event.id,
            kind: event.kind,
            subject: event.subject,
            payload: event.payload,
        },
        attempt: stored.attempt,
    }
}

pub fn manifest(manifest: Manifest) -> host::Manifest {
    host::Manifest {
        name: manifest.name,
        version: manifest.version,
        description: manifest.description,
        emits: manifest.emits,
        poll_interval_seconds: manifest.poll_interval_seconds,
        subscriptions: manifest.subscriptions,
    }
}

pub fn webhook_answer(
    answer: Result<WebhookOutcome, PluginError>,
) -> Result<host::WebhookOutcome, host::PluginError> {
    let outcome = answer.map_err(plugin_error)?;
    let HttpResponse {
        status,
        headers,
        body,
    } = outcome.response;
    Ok(host::WebhookOutcome {
        response: host::types::HttpResponse {
            status,
            headers,
            body,
        },
        events: events(outcome.events),
    })
}

pub fn poll_answer(
    answer: Result<PollOutcome, PluginError>,
) -> Result<host::PollOutcome, host::PluginError> {
    let outcome = answer.map_err(plugin_error)?;
    Ok(host::PollOutcome {
        events: events(outcome.events),
        cursor: outcome.cursor,
        next_poll_seconds: outcome.next_poll_seconds,
    })
}

pub fn on_event_answer(answer: Result<(), PluginError>) -> Result<(), host::PluginError> {
    answer.map_err(plugin_error)
}

fn events(events: Vec<Event>) -> Vec<host::Event> {
    events
        .into_iter()
        .map(|event| host::Event {
            id: event.id,
            kind: event.kind,
            subject: event.subject,
            payload: event.payload,
        })
        .collect()
}

fn plugin_error(error: PluginError) -> host::PluginError {
    match error {
        PluginError::Unauthorized(m) => host::PluginError::Unauthorized(m),
        PluginError::BadRequest(m) => host::PluginError::BadRequest(m),
        PluginError::Unavailable(m) => host::PluginError::Unavailable(m),
        PluginError::Internal(m) => host::PluginError::Internal(m),
    }
}
