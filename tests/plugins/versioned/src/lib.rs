//! A test plugin that exists in two builds which answer differently, for hot
//! reload tests: every webhook gets 200 with body `v1` (or `v2` when built with
//! the `v2` feature), and `describe` reports version `1.0.0` (or `2.0.0`).

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::types::HttpResponse;

const ANSWER: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };
const VERSION: &str = if cfg!(feature = "v2") {
    "2.0.0"
} else {
    "1.0.0"
};

struct Versioned;

impl Guest for Versioned {
    fn describe() -> Manifest {
        Manifest {
            name: "Versioned".into(),
            version: VERSION.into(),
            description: format!("answers {ANSWER}, for hot reload tests"),
            emits: vec![],
            poll_interval_seconds: None,
            subscriptions: vec![],
        }
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Ok(WebhookOutcome {
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: ANSWER.as_bytes().to_vec(),
            },
            events: vec![],
        })
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("versioned does not poll".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal(
            "versioned subscribes to no events".into(),
        ))
    }
}

export!(Versioned);
