//! Standard Webhooks receiver, the Rust one of five identical implementations;
//! `../../STANDARD-WEBHOOKS.md` is the specification all five follow step by step.

use hookhost_sdk::signature::{base64, from_base64, seconds_from_now};
use hookhost_sdk::{
    config, crypto, manifest, Event, HttpResponse, Manifest, Plugin, PluginError, WebhookOutcome,
    WebhookRequest,
};

const TOLERANCE_SECONDS: u64 = 300;

struct Standard;

impl Plugin for Standard {
    fn describe() -> Manifest {
        manifest!("Standard Webhooks (Rust)").emits(["standard.webhook"])
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let secret = config::required("secret")?;
        let key = from_base64(secret.strip_prefix("whsec_").unwrap_or(&secret))
            .ok_or_else(|| PluginError::Internal("config `secret` is not valid base64".into()))?;

        let id = required_header(&request, "webhook-id")?;
        let timestamp = required_header(&request, "webhook-timestamp")?;
        let signatures = required_header(&request, "webhook-signature")?;

        let skew = seconds_from_now(timestamp).ok_or_else(|| {
            PluginError::Unauthorized("malformed webhook-timestamp header".into())
        })?;
        if skew > TOLERANCE_SECONDS {
            return Err(PluginError::Unauthorized(
                "webhook-timestamp is outside the 300 s tolerance".into(),
            ));
        }

        let mut signed = Vec::with_capacity(id.len() + timestamp.len() + 2 + request.body.len());
        signed.extend_from_slice(id.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(&request.body);
        let expected = format!("v1,{}", base64(&crypto::hmac_sha256(&key, &signed)));
        let authentic = signatures
            .split(' ')
            .filter(|entry| !entry.is_empty())
            .any(|entry| crypto::constant_time_eq(entry.as_bytes(), expected.as_bytes()));
        if !authentic {
            return Err(PluginError::Unauthorized("no matching signature".into()));
        }

        if !plain_id(id) {
            return Err(PluginError::BadRequest(
                "webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -".into(),
            ));
        }
        Ok(WebhookOutcome {
            response: HttpResponse::json(
                200,
                format!(r#"{{"ok":true,"event":{{"id":"{id}","kind":"standard.webhook"}}}}"#),
            ),
            events: vec![Event::new(
                id,
                "standard.webhook",
                format!(r#"{{"body_base64":"{}"}}"#, base64(&request.body)),
            )],
        })
    }
}

/// The value of header `name`; `unauthorized` when it is missing or empty.
fn required_header<'a>(request: &'a WebhookRequest, name: &str) -> Result<&'a str, PluginError> {
    request
        .header(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PluginError::Unauthorized(format!("missing {name} header")))
}

fn plain_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

hookhost_sdk::export!(Standard);
