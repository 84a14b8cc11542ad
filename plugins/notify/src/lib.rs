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

use std::time::Duration;

use hookhost_sdk::http::Request;
use hookhost_sdk::log::{log, Level};
use hookhost_sdk::prelude::*;

/// Below the host's default 10 s call timeout, so that a stalled receiver ends as
/// this plugin's own error (with a reason) rather than as an interrupted call.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

struct Notify;

impl Plugin for Notify {
    fn describe() -> Manifest {
        let subscriptions = if config::required("url").is_ok() {
            vec!["github.push", "stripe.invoice.paid"]
        } else {
            // Nothing to post to: queueing deliveries would only fill the dead
            // letters.
            log(
                Level::Warn,
                "config `url` is not set: notify subscribes to nothing",
            );
            vec![]
        };
        manifest!(
            "Notify",
            "posts a message to a chat webhook for GitHub pushes and paid Stripe invoices",
        )
        .subscribes_to(subscriptions)
    }

    fn on_event(stored: StoredEvent) -> Result<(), PluginError> {
        let url = config::required("url")?;
        let payload = stored.json_payload()?;
        let text = message::describe(&stored.event.kind, &stored.event.id, &payload);
        let body = serde_json::json!({ "text": text }).to_string();
        post(&url, body)
    }
}

/// POSTs `body` as JSON to `url`; any answer but a 2xx is an error.
fn post(url: &str, body: String) -> Result<(), PluginError> {
    let what = format!("POST {url}");
    Request::post(url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(POST_TIMEOUT)
        .send()
        .map_err(|error| {
            if error.is_denied() {
                PluginError::Internal(format!(
                    "{what} failed: {error}; it must be in [plugins.notify] allowed_hosts"
                ))
            } else {
                error.into_plugin_error(&what)
            }
        })?
        .require_success(&what)?;
    Ok(())
}

hookhost_sdk::export!(Notify);
