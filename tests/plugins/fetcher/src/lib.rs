//! A test plugin that makes one outbound HTTP request (through wasi:http) described
//! by the webhook it receives, and answers with what happened, so that tests can
//! drive the host's outbound policy end to end.
//!
//! - `handle-webhook` takes a JSON body
//!   `{"url": "...", "method": "GET", "body": "...", "timeout_ms": N}`
//!   (`method` defaults to GET, `body` to empty, the timeout for connecting, the
//!   first byte and each gap between bytes to the host's cap), sends it with the
//!   notify example's client (`plugins/notify/src/wasi_http.rs`), reads the whole
//!   response body, and answers 200 with `{"status": <code>, "body_bytes": <length>}`,
//!   or, when the request or the body failed,
//!   `{"error": "<message>", "error_code": "<wasi:http error-code>"}` (`error_code`
//!   is the variant's name, such as `HttpRequestDenied`, or null when the failure
//!   carried none). It emits no events.
//!   A body that is not such JSON is a `bad-request`.
//! - `describe` subscribes to nothing; `poll` and `on-event` are errors.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

// The same client as the notify example, so that these tests cover it.
#[allow(dead_code)]
#[path = "../../../../plugins/notify/src/wasi_http.rs"]
mod wasi_http;

use std::time::Duration;

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::types::HttpResponse;
use serde_json::{json, Value};
use wasip2::http::types::Method;

struct Fetcher;

impl Guest for Fetcher {
    fn describe() -> Manifest {
        Manifest {
            name: "Fetcher".into(),
            version: "1".into(),
            description: "makes the outbound request it is asked for, for tests".into(),
            emits: vec![],
            poll_interval_seconds: None,
            subscriptions: vec![],
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let ask: Value = serde_json::from_slice(&request.body)
            .map_err(|e| PluginError::BadRequest(format!("body is not JSON: {e}")))?;
        let url = ask["url"]
            .as_str()
            .ok_or_else(|| PluginError::BadRequest("body has no string `url`".into()))?;
        let method = match ask["method"].as_str().unwrap_or("GET") {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_string()),
        };
        let body = ask["body"].as_str().unwrap_or("");
        let timeout = ask["timeout_ms"].as_u64().map(Duration::from_millis);

        let reply = match wasi_http::send(method, url, &[], body.as_bytes(), timeout) {
            Ok(response) => json!({ "status": response.status, "body_bytes": response.body.len() }),
            Err(failure) => json!({
                "error": failure.to_string(),
                "error_code": failure.code_name(),
            }),
        };
        Ok(WebhookOutcome {
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: reply.to_string().into_bytes(),
            },
            events: vec![],
        })
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("fetcher does not poll".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal(
            "fetcher subscribes to nothing".into(),
        ))
    }
}

export!(Fetcher);
