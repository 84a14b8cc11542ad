//! Test plugin `v2-probe`, built against `hookhost:plugin@0.2.0` with the SDK's
//! `v0_2_0` module: runs what the test sends through the host's 0.2.0 imports and
//! echoes the request's `url`. Contract:
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
//! - `poll`, `on-event`: the SDK's default errors.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{from_hex, hex};
use serde_json::{json, Value};

struct Probe;

fn bad(message: String) -> PluginError {
    PluginError::BadRequest(message)
}

fn bytes(value: &Value, what: &str) -> Result<Vec<u8>, PluginError> {
    value
        .as_str()
        .and_then(from_hex)
        .ok_or_else(|| bad(format!("{what} is not a hex string")))
}

fn list<'a>(body: &'a Value, name: &str) -> &'a [Value] {
    body[name].as_array().map(Vec::as_slice).unwrap_or_default()
}

impl Plugin for Probe {
    const MANIFEST: StaticManifest = StaticManifest::named("V2 probe").emits(&["v2-probe.*"]);

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let body = if request.body.is_empty() {
            json!({})
        } else {
            request.json_body()?
        };
        let ed25519 = list(&body, "ed25519")
            .iter()
            .map(|case| {
                Ok(crypto::ed25519_verify(
                    &bytes(&case["key"], "key")?,
                    &bytes(&case["message"], "message")?,
                    &bytes(&case["signature"], "signature")?,
                ))
            })
            .collect::<Result<Vec<bool>, PluginError>>()?;
        let hmac = list(&body, "hmac")
            .iter()
            .map(|case| {
                let key = bytes(&case["key"], "key")?;
                let data = bytes(&case["data"], "data")?;
                let mac = match case["alg"].as_str() {
                    Some("sha1") => crypto::hmac_sha1(&key, &data),
                    Some("sha256") => crypto::hmac_sha256(&key, &data),
                    Some("sha512") => crypto::hmac_sha512(&key, &data),
                    other => return Err(bad(format!("unknown alg {other:?}"))),
                };
                Ok(hex(&mac))
            })
            .collect::<Result<Vec<String>, PluginError>>()?;
        let events = match body["emit"].as_str() {
            Some(id) => vec![Event::new(
                id,
                "v2-probe.received",
                json!({ "url": request.url }).to_string(),
            )],
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
            response: HttpResponse::json(200, answer.to_string()),
            events,
        })
    }
}

hookhost_sdk::v0_2_0::export!(Probe);
