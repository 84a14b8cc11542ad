//! Test plugin `v2-probe`, built against `hookhost:plugin@0.2.0` (wit/v0.2.0):
//! runs what the test sends through the host's 0.2.0 imports and echoes the
//! request's `url`. Contract:
//!
//! - `describe`: name `V2 probe`, version `0.2.0`, emits `v2-probe.*`.
//! - `handle-webhook`: the body is a JSON object, every field optional:
//!   - `"ed25519"`: a list of `{"key", "message", "signature"}`, each hex;
//!   - `"hmac"`: a list of `{"alg": "sha1" | "sha256" | "sha512", "key", "data"}`,
//!     `key` and `data` hex;
//!   - `"emit"`: an event id; when given, one event `v2-probe.received` with that id.
//!
//!   It answers 200 with `{"url": <request url>, "path": ..., "query": ...,
//!   "ed25519": [bool...], "hmac": [hex...]}` in the same order. A body that is not
//!   such JSON, or hex that is not hex, is `bad-request`.
//! - `poll`, `on-event`: errors.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit/v0.2.0" });

use exports::hookhost::plugin::guest::Guest;
use hookhost::plugin::crypto;
use hookhost::plugin::types::{
    Event, HttpResponse, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest,
};
use serde_json::{json, Value};

struct Probe;

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::BadRequest(message.into())
}

fn hex(value: &Value, what: &str) -> Result<Vec<u8>, PluginError> {
    let text = value
        .as_str()
        .ok_or_else(|| bad(format!("{what} is not a string")))?;
    if text.len() % 2 != 0 {
        return Err(bad(format!("{what} is not hex")));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| bad(format!("{what} is not hex")))
        })
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn list<'a>(body: &'a Value, name: &str) -> &'a [Value] {
    body[name].as_array().map(Vec::as_slice).unwrap_or_default()
}

impl Guest for Probe {
    fn describe() -> Manifest {
        Manifest {
            name: "V2 probe".into(),
            version: "0.2.0".into(),
            description: "runs the host's 0.2.0 crypto and echoes the request url".into(),
            emits: vec!["v2-probe.*".into()],
            poll_interval_seconds: None,
            subscriptions: Vec::new(),
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let body: Value = if request.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&request.body)
                .map_err(|e| bad(format!("body is not JSON: {e}")))?
        };
        let ed25519 = list(&body, "ed25519")
            .iter()
            .map(|case| {
                Ok(crypto::ed25519_verify(
                    &hex(&case["key"], "key")?,
                    &hex(&case["message"], "message")?,
                    &hex(&case["signature"], "signature")?,
                ))
            })
            .collect::<Result<Vec<bool>, PluginError>>()?;
        let hmac = list(&body, "hmac")
            .iter()
            .map(|case| {
                let key = hex(&case["key"], "key")?;
                let data = hex(&case["data"], "data")?;
                let mac = match case["alg"].as_str() {
                    Some("sha1") => crypto::hmac_sha1(&key, &data),
                    Some("sha256") => crypto::hmac_sha256(&key, &data),
                    Some("sha512") => crypto::hmac_sha512(&key, &data),
                    other => return Err(bad(format!("unknown alg {other:?}"))),
                };
                Ok(to_hex(&mac))
            })
            .collect::<Result<Vec<String>, PluginError>>()?;
        let events = match body["emit"].as_str() {
            Some(id) => vec![Event {
                id: id.to_string(),
                kind: "v2-probe.received".into(),
                subject: None,
                payload: json!({ "url": request.url }).to_string(),
            }],
            None => Vec::new(),
        };
        let answer = json!({
            "url": request.url,
            "path": request.path,
            "query": request.query,
            "ed25519": ed25519,
            "hmac": hmac,
        });
        Ok(WebhookOutcome {
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: answer.to_string().into_bytes(),
            },
            events,
        })
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("v2-probe does not poll".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal("v2-probe handles no events".into()))
    }
}

export!(Probe);
