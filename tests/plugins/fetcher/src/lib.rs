//! A test plugin that makes one outbound HTTP request (through wasi:http) described
//! by the webhook it receives, and answers with what happened, so that tests can
//! drive the host's outbound policy end to end.
//!
//! - `handle-webhook` takes a JSON body
//!   `{"url": "...", "method": "GET", "body": "...", "timeout_ms": N}`
//!   (`method` defaults to GET, `body` to empty, the timeout for connecting, the
//!   first byte and each gap between bytes to the host's cap), sends it with the
//!   SDK's client (`hookhost_sdk::http`, which the feed and notify examples use)
//!   without the client's own response size limit, so that the host's is the one
//!   tested, reads the whole response body, and answers 200 with
//!   `{"status": <code>, "body_bytes": <length>}`,
//!   or, when the request or the body failed,
//!   `{"error": "<message>", "error_code": "<wasi:http error-code>"}` (`error_code`
//!   is the variant's name, such as `HttpRequestDenied`, or null when the failure
//!   carried none). It emits no events.
//!   A body that is not such JSON is a `bad-request`.
//! - `describe` subscribes to nothing; `poll` and `on-event` are errors.

use std::time::Duration;

use hookhost_sdk::http::{Method, Request};
use hookhost_sdk::{HttpResponse, Manifest, Plugin, PluginError, WebhookOutcome, WebhookRequest};
use serde_json::json;

struct Fetcher;

impl Plugin for Fetcher {
    fn describe() -> Manifest {
        Manifest::new(
            "Fetcher",
            "1",
            "makes the outbound request it is asked for, for tests",
        )
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let ask = request.json_body()?;
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
        let mut outbound = Request::new(method, url)
            .body(ask["body"].as_str().unwrap_or(""))
            .max_response_bytes(usize::MAX);
        if let Some(ms) = ask["timeout_ms"].as_u64() {
            outbound = outbound.timeout(Duration::from_millis(ms));
        }

        let reply = match outbound.send() {
            Ok(response) => json!({ "status": response.status, "body_bytes": response.body.len() }),
            Err(failure) => json!({
                "error": failure.to_string(),
                "error_code": failure.code_name(),
            }),
        };
        Ok(WebhookOutcome {
            response: HttpResponse::json(200, reply.to_string()),
            events: vec![],
        })
    }
}

hookhost_sdk::export!(Fetcher);
