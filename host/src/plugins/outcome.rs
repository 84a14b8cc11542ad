//! The checks every outcome a plugin returns must pass before anything of it is
//! saved or answered: events (size, JSON payload, id and kind), a webhook's
//! response (size, status, headers), a poll's cursor. A failed check is the
//! plugin's bug; the error completes "plugin X returned ...".

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::plugins::bindings::{Event, PollOutcome, WebhookOutcome};
use crate::plugins::limits::PluginLimits;

/// The longest cursor a plugin may return; a cursor is a position, not a payload.
pub const MAX_CURSOR_BYTES: usize = 64 * 1024;

/// A webhook outcome that passed every check: the response to send and the
/// events to store.
pub struct Accepted {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub events: Vec<Event>,
}

/// Checks what `handle-webhook` returned.
pub fn check_webhook(outcome: WebhookOutcome, limits: &PluginLimits) -> Result<Accepted, String> {
    if outcome.response.body.len() > limits.max_response_bytes {
        return Err(format!(
            "a response body of {} bytes, above max_response_bytes = {}",
            outcome.response.body.len(),
            limits.max_response_bytes
        ));
    }
    for event in &outcome.events {
        check_event(event, limits.max_event_bytes)?;
    }
    let response = outcome.response;
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| format!("the invalid HTTP status {}", response.status))?;
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("the invalid header name {name:?}"))?;
        let value = HeaderValue::try_from(value)
            .map_err(|_| format!("an invalid value for header {name}"))?;
        headers.append(name, value);
    }
    Ok(Accepted {
        status,
        headers,
        body: response.body,
        events: outcome.events,
    })
}

/// Checks what `poll` returned.
pub fn check_poll(outcome: &PollOutcome, max_event_bytes: usize) -> Result<(), String> {
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

/// Checks one event a plugin emitted (by webhook or poll): a non-empty id and kind
/// and a JSON payload.
pub fn check_event(event: &Event, max_event_bytes: usize) -> Result<(), String> {
    if event.payload.len() > max_event_bytes {
        return Err(format!(
            "event {:?} with a payload of {} bytes, above max_event_bytes = {max_event_bytes}",
            event.id,
            event.payload.len(),
        ));
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&event.payload) {
        return Err(format!(
            "event {:?} with a payload that is not JSON: {error}",
            event.id
        ));
    }
    if event.id.is_empty() || event.kind.is_empty() {
        return Err("an event with an empty id or kind".into());
    }
    Ok(())
}
