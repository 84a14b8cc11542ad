//! hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
//! event keyed by the SHA-256 of the body. Replace `handle_webhook` with your
//! provider's logic: verify its signature with `crypto::hmac_sha256` and
//! `crypto::constant_time_eq`, read secrets with `config::get`.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::crypto;
use hookhost::plugin::types::{Event, HttpResponse};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Manifest {
        Manifest {
            name: "{{id}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "TODO: what this plugin does".into(),
            emits: vec!["{{id}}.*".into()],
            poll_interval_seconds: None,
            subscriptions: vec![],
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let digest: String = crypto::sha256(&request.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(WebhookOutcome {
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"ok":true}"#.to_vec(),
            },
            events: vec![Event {
                id: digest,
                kind: "{{id}}.received".into(),
                subject: None,
                payload: format!(r#"{{"size":{}}}"#, request.body.len()),
            }],
        })
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("{{id}} does not poll".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal("{{id}} subscribes to no events".into()))
    }
}

export!(Plugin);
