//! Linear webhooks.
//!
//! Verifies `Linear-Signature`: the hex HMAC-SHA256 of the raw body under config
//! `secret` (the webhook's signing secret). The signature covers the body only,
//! so freshness comes from the body's own `webhookTimestamp` (Unix milliseconds,
//! signed with it): one more than config `tolerance` seconds (default 60, Linear's
//! "within a minute") from now, or none at all, is refused, so a captured delivery
//! cannot be replayed later. (Linear also sends a `Linear-Timestamp` header, which
//! no signature covers; it is not used.) Every refusal is 401.
//!
//! Event: id = the `Linear-Delivery` header, kind = `linear.{type}.{action}` with
//! both as Linear sends them (`linear.Issue.create`, `linear.Comment.remove`),
//! subject = `data.id` when there is one, payload = the body as Linear sent it.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{from_hex, hmac_sha256_matches, milliseconds_from_now};
use serde_json::Value;

const DEFAULT_TOLERANCE_SECONDS: u64 = 60;

struct Linear;

impl Plugin for Linear {
    const MANIFEST: StaticManifest = StaticManifest::named("Linear").emits(&["linear.*"]);

    /// Checks `Linear-Signature` against the body under config `secret`, in
    /// constant time.
    fn verify(request: &WebhookRequest) -> Result<(), PluginError> {
        let secret = config::required("secret")?;
        let claimed = from_hex(request.auth_header("linear-signature")?)
            .ok_or_else(|| PluginError::Unauthorized("malformed Linear-Signature header".into()))?;
        if hmac_sha256_matches(secret.as_bytes(), &request.body, &claimed) {
            Ok(())
        } else {
            Err(PluginError::Unauthorized("signature does not match".into()))
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let body = request.json_body()?;
        verify_freshness(&body)?;

        let delivery = request
            .header("linear-delivery")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| PluginError::BadRequest("missing Linear-Delivery header".into()))?;
        let field = |name: &str| {
            body[name]
                .as_str()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| PluginError::BadRequest(format!("body has no `{name}`")))
        };
        let kind = format!("linear.{}.{}", field("type")?, field("action")?);
        let subject = body["data"]["id"].as_str().map(str::to_string);
        let payload = request.body_text()?;
        Ok(WebhookOutcome::accepted(Event {
            subject,
            ..Event::new(delivery, kind, payload)
        }))
    }
}

/// Checks the signed body's `webhookTimestamp` is within config `tolerance`.
fn verify_freshness(body: &Value) -> Result<(), PluginError> {
    let tolerance = config::seconds("tolerance", DEFAULT_TOLERANCE_SECONDS)?;
    let sent = body["webhookTimestamp"].as_u64().ok_or_else(|| {
        PluginError::Unauthorized("body has no webhookTimestamp in milliseconds".into())
    })?;
    if milliseconds_from_now(sent) > tolerance.saturating_mul(1000) {
        return Err(PluginError::Unauthorized(format!(
            "webhookTimestamp is outside the {tolerance} s tolerance"
        )));
    }
    Ok(())
}

hookhost_sdk::v0_2_0::export!(Linear);
