//! Notify: a handler plugin that posts a short human-readable message for each
//! GitHub push and each paid Stripe invoice to config `url`, as the JSON
//! `{"text": "..."}` that Slack incoming webhooks (and many chat tools) accept.
//!
//! Without `url` it subscribes to nothing, so an unconfigured notify is inert.
//! The post goes through the host's outbound HTTP (wasi:http), so the URL's host
//! must be in `[plugins.notify] allowed_hosts`. A refused, failed or non-2xx post
//! is returned as an error, so the host's delivery retries, backoff and dead
//! letters apply. Delivery is at least once: after a post whose answer was lost,
//! the same message can be posted again.

mod message;
// Shared with the fetcher test plugin, which uses parts this plugin does not.
#[allow(dead_code)]
mod wasi_http;

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use std::time::Duration;

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::config;
use hookhost::plugin::log::{log, Level};
use wasip2::http::types::Method;

/// Below the host's default 10 s call timeout, so that a stalled receiver ends as
/// this plugin's own error (with a reason) rather than as an interrupted call.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

struct Notify;

impl Guest for Notify {
    fn describe() -> Manifest {
        Manifest {
            name: "Notify".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "posts a message to a chat webhook for GitHub pushes and paid Stripe invoices"
                    .into(),
            emits: vec![],
            poll_interval_seconds: None,
            subscriptions: if configured_url().is_some() {
                vec!["github.push".into(), "stripe.invoice.paid".into()]
            } else {
                // Nothing to post to: queueing deliveries would only fill the dead
                // letters.
                log(
                    Level::Warn,
                    "config `url` is not set: notify subscribes to nothing",
                );
                vec![]
            },
        }
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Err(PluginError::BadRequest("notify takes no webhooks".into()))
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("notify does not poll".into()))
    }

    fn on_event(stored: StoredEvent) -> Result<(), PluginError> {
        let url = configured_url()
            .ok_or_else(|| PluginError::Internal("config `url` is not set".into()))?;
        let payload: serde_json::Value = serde_json::from_str(&stored.event.payload)
            .map_err(|e| PluginError::Internal(format!("payload is not JSON: {e}")))?;
        let text = message::describe(&stored.event.kind, &stored.event.id, &payload);
        let body = serde_json::json!({ "text": text }).to_string();
        post(&url, body)
    }
}

fn configured_url() -> Option<String> {
    config::get("url").filter(|url| !url.is_empty())
}

/// POSTs `body` as JSON to `url`; any answer but a 2xx is an error.
fn post(url: &str, body: String) -> Result<(), PluginError> {
    let headers: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
    let response = wasi_http::send(
        Method::Post,
        url,
        &headers,
        body.as_bytes(),
        Some(POST_TIMEOUT),
    )
    .map_err(|failure| match failure {
        // Retrying cannot help until the operator changes the config.
        wasi_http::Failure::Request(_) => PluginError::Internal(format!("config `url`: {failure}")),
        _ if failure.is_denied() => PluginError::Internal(format!(
            "POST {url} failed: {failure}; it must be in [plugins.notify] allowed_hosts"
        )),
        _ => PluginError::Unavailable(format!("POST {url} failed: {failure}")),
    })?;
    if !(200..300).contains(&response.status) {
        let excerpt: String = String::from_utf8_lossy(&response.body)
            .chars()
            .take(200)
            .collect();
        return Err(PluginError::Unavailable(format!(
            "POST {url} answered HTTP {}: {excerpt}",
            response.status
        )));
    }
    Ok(())
}

export!(Notify);
