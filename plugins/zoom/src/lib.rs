//! Zoom webhooks (an app's event subscription, "Secret Token" verification).
//!
//! Verifies `x-zm-signature: v0=<hex>`: HMAC-SHA256 of `v0:{x-zm-request-timestamp}:{body}`
//! under config `secret_token`. The timestamp is Unix seconds; one more than config
//! `tolerance` seconds (default 300) from now is refused, so a captured delivery
//! cannot be replayed later. Every refusal is 401.
//!
//! `endpoint.url_validation` (Zoom's challenge when the URL is saved, and every 72
//! hours) is answered 200 with `{"plainToken": <payload.plainToken>,
//! "encryptedToken": <hex HMAC-SHA256 of plainToken under secret_token>}` and
//! stored as nothing. Zoom signs the challenge like any event (its sample app
//! checks the signature first), and it must be checked: answering an unsigned
//! one would hand anyone the HMAC of any text they chose, which is exactly a
//! valid `x-zm-signature` for any body.
//!
//! Event: id = hex SHA-256 of the body (Zoom's events carry no id of their own;
//! a retry sends the same body, so it is stored once), kind = `zoom.` + `event`
//! (`zoom.meeting.started`), subject = `payload.object.id` when there is one,
//! payload = the body as Zoom sent it.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{check_timestamp, from_hex, hex, hmac_sha256_matches};
use serde_json::{json, Value};

const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

struct Zoom;

impl Plugin for Zoom {
    const MANIFEST: StaticManifest = StaticManifest::named("Zoom").emits(&["zoom.*"]);

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let secret = config::required("secret_token")?;
        verify(&request, secret.as_bytes())?;
        let body = request.json_body()?;
        let event = body["event"]
            .as_str()
            .filter(|event| !event.is_empty())
            .ok_or_else(|| PluginError::BadRequest("body has no `event`".into()))?;

        if event == "endpoint.url_validation" {
            let plain_token = body["payload"]["plainToken"].as_str().ok_or_else(|| {
                PluginError::BadRequest("endpoint.url_validation has no payload.plainToken".into())
            })?;
            let encrypted_token = hex(&crypto::hmac_sha256(
                secret.as_bytes(),
                plain_token.as_bytes(),
            ));
            let answer = json!({ "plainToken": plain_token, "encryptedToken": encrypted_token });
            return Ok(WebhookOutcome {
                response: HttpResponse::json(200, answer.to_string()),
                events: vec![],
            });
        }

        let id = hex(&crypto::sha256(&request.body));
        let kind = format!("zoom.{event}");
        let subject = match &body["payload"]["object"]["id"] {
            Value::String(id) => Some(id.clone()),
            Value::Number(id) => Some(id.to_string()),
            _ => None,
        };
        let payload = request.body_text()?;
        Ok(WebhookOutcome::accepted(Event {
            subject,
            ..Event::new(id, kind, payload)
        }))
    }
}

/// Checks the timestamp's age, then `x-zm-signature` over
/// `v0:{timestamp}:{body}` under `secret`.
fn verify(request: &WebhookRequest, secret: &[u8]) -> Result<(), PluginError> {
    let tolerance = config::seconds("tolerance", DEFAULT_TOLERANCE_SECONDS)?;
    let signature = request.auth_header("x-zm-signature")?;
    let timestamp = request.auth_header("x-zm-request-timestamp")?;

    check_timestamp("x-zm-request-timestamp", timestamp, tolerance)?;
    let claimed = signature
        .strip_prefix("v0=")
        .and_then(from_hex)
        .ok_or_else(|| PluginError::Unauthorized("malformed x-zm-signature header".into()))?;
    let mut signed = Vec::with_capacity(timestamp.len() + request.body.len() + 4);
    signed.extend_from_slice(b"v0:");
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b':');
    signed.extend_from_slice(&request.body);
    if hmac_sha256_matches(secret, &signed, &claimed) {
        Ok(())
    } else {
        Err(PluginError::Unauthorized("signature does not match".into()))
    }
}

hookhost_sdk::v0_2_0::export!(Zoom);
