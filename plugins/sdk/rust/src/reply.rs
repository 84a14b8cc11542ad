//! Building what a call returns: the manifest, a response, a webhook's usual
//! answer, an event, a poll outcome; and the plugin error for a failed `state` call.

use super::state::StateError;
use super::{Event, HttpResponse, Manifest, PluginError, PollOutcome, WebhookOutcome};

impl Manifest {
    /// A plugin that emits nothing, does not poll and subscribes to nothing; the
    /// methods below add what it does. `version` is the plugin's own, usually
    /// `env!("CARGO_PKG_VERSION")`.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            emits: Vec::new(),
            poll_interval_seconds: None,
            subscriptions: Vec::new(),
        }
    }

    /// The event-kind patterns it emits (`github.push`, `github.*`).
    pub fn emits<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.emits = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Asks to be polled every `seconds` unless the operator configures another
    /// interval.
    pub fn polls_every(mut self, seconds: u32) -> Self {
        self.poll_interval_seconds = Some(seconds);
        self
    }

    /// The event-kind patterns whose events `on_event` gets (`github.push`,
    /// `stripe.invoice.*`).
    pub fn subscribes_to<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        patterns: I,
    ) -> Self {
        self.subscriptions = patterns.into_iter().map(Into::into).collect();
        self
    }
}

impl HttpResponse {
    /// `status` with `body` as `content-type: application/json`; the body is used
    /// as given, never parsed or re-serialised.
    #[inline]
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::with_type(status, "application/json", body.into())
    }

    /// `status` with `body` as `content-type: text/plain`.
    #[inline]
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::with_type(status, "text/plain", body.into())
    }

    #[inline]
    fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body,
        }
    }
}

impl WebhookOutcome {
    /// The usual answer to a delivery stored as one event: 200 with the JSON
    /// `{"event":{"id":...,"kind":...},"ok":true}` (serde_json's key order), and
    /// `event`.
    #[cfg(feature = "json")]
    pub fn accepted(event: Event) -> Self {
        // Written out rather than built as a `serde_json::Value` and serialised:
        // the same bytes, without a map and four strings allocated in every call.
        let id = json_string(&event.id);
        let kind = json_string(&event.kind);
        let reply = format!(r#"{{"event":{{"id":{id},"kind":{kind}}},"ok":true}}"#);
        WebhookOutcome {
            response: HttpResponse::json(200, reply),
            events: vec![event],
        }
    }
}

/// `text` as a JSON string literal, quotes and escapes included.
#[cfg(feature = "json")]
fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("serialising a str cannot fail")
}

impl Event {
    /// An event about no particular subject; set `subject` for one that is.
    /// `payload` must be a JSON document.
    pub fn new(id: impl Into<String>, kind: impl Into<String>, payload: impl Into<String>) -> Self {
        Event {
            id: id.into(),
            kind: kind.into(),
            subject: None,
            payload: payload.into(),
        }
    }
}

impl PollOutcome {
    /// What a poll found (oldest first) and the cursor for the next one (`None`
    /// keeps the current one), with the configured wait before the next poll.
    pub fn new(events: Vec<Event>, cursor: Option<String>) -> Self {
        PollOutcome {
            events,
            cursor,
            next_poll_seconds: None,
        }
    }
}

/// A `state` call that failed fails the plugin's call as `unavailable`, so the host
/// retries it later (a poll keeps its cursor and backs off).
impl From<StateError> for PluginError {
    fn from(error: StateError) -> Self {
        PluginError::Unavailable(format!("plugin state: {error:?}"))
    }
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    #[test]
    fn the_usual_answer_names_the_stored_event() {
        let outcome = WebhookOutcome::accepted(Event::new("d-1", "acme.\"push\"", "{}"));
        assert_eq!(outcome.response.status, 200);
        assert_eq!(
            String::from_utf8(outcome.response.body).unwrap(),
            r#"{"event":{"id":"d-1","kind":"acme.\"push\""},"ok":true}"#
        );
        assert_eq!(
            outcome.response.headers,
            [("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(outcome.events.len(), 1);
        assert_eq!(outcome.events[0].id, "d-1");
    }

    #[test]
    fn the_usual_answer_escapes_what_json_must() {
        let id = "d\\1\n\u{1}é";
        let outcome = WebhookOutcome::accepted(Event::new(id, "k", "{}"));
        let body: serde_json::Value = serde_json::from_slice(&outcome.response.body).unwrap();
        assert_eq!(body["event"]["id"], id);
        assert_eq!(body["ok"], true);
    }
}
