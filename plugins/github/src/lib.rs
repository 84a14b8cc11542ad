//! GitHub webhooks: verifies `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
//! under config `secret`), answers `ping`, and emits one event per delivery:
//! id = `X-GitHub-Delivery`, kind = `github.<event>[.<action>]`, subject = the
//! repository's full name, payload = the body.

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::types::{Event, HttpResponse};
use hookhost::plugin::{config, crypto};

struct Github;

impl Guest for Github {
    fn describe() -> Manifest {
        Manifest {
            name: "GitHub".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "GitHub webhooks verified with X-Hub-Signature-256".into(),
            emits: vec!["github.*".into()],
            poll_interval_seconds: None,
            subscriptions: vec![],
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let secret = config::get("secret")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PluginError::Internal("config `secret` is not set".into()))?;
        verify_signature(&request, secret.as_bytes())?;

        let event = header(&request, "x-github-event")
            .ok_or_else(|| PluginError::BadRequest("missing X-GitHub-Event header".into()))?;
        if event == "ping" {
            return Ok(WebhookOutcome {
                response: json_response(200, r#"{"ok":true,"pong":true}"#.into()),
                events: vec![],
            });
        }
        let delivery = header(&request, "x-github-delivery")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| PluginError::BadRequest("missing X-GitHub-Delivery header".into()))?;
        let body: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|e| PluginError::BadRequest(format!("body is not JSON: {e}")))?;

        let mut kind = format!("github.{event}");
        if let Some(action) = body.get("action").and_then(|a| a.as_str()) {
            kind = format!("{kind}.{action}");
        }
        let subject = body
            .pointer("/repository/full_name")
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let reply = serde_json::json!({ "ok": true, "event": { "id": delivery, "kind": kind } });
        Ok(WebhookOutcome {
            response: json_response(200, reply.to_string()),
            events: vec![Event {
                id: delivery.to_string(),
                kind,
                subject,
                payload: body.to_string(),
            }],
        })
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("github does not poll".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal(
            "github subscribes to no events".into(),
        ))
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the body, in constant time.
fn verify_signature(request: &WebhookRequest, secret: &[u8]) -> Result<(), PluginError> {
    let signature = header(request, "x-hub-signature-256")
        .ok_or_else(|| PluginError::Unauthorized("missing X-Hub-Signature-256 header".into()))?;
    let claimed = signature
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .ok_or_else(|| PluginError::Unauthorized("malformed X-Hub-Signature-256 header".into()))?;
    let expected = crypto::hmac_sha256(secret, &request.body);
    if crypto::constant_time_eq(&expected, &claimed) {
        Ok(())
    } else {
        Err(PluginError::Unauthorized("signature does not match".into()))
    }
}

fn header<'a>(request: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn json_response(status: u16, body: String) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

export!(Github);
