//! Standard Webhooks receiver, the Rust one of five identical implementations;
//! `../../STANDARD-WEBHOOKS.md` is the specification all five follow step by step.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{
    base64, ed25519_base64_matches, from_base64, seconds_from_now, signatures_of_version,
};

const TOLERANCE_SECONDS: u64 = 300;

struct Standard;

impl Plugin for Standard {
    const MANIFEST: StaticManifest =
        StaticManifest::named("Standard Webhooks (Rust)").emits(&["standard.webhook"]);

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let secret = config::get("secret").filter(|s| !s.is_empty());
        let public_key = config::get("public_key").filter(|s| !s.is_empty());
        if secret.is_none() && public_key.is_none() {
            return Err(PluginError::Internal(
                "config `secret` or `public_key` must be set".into(),
            ));
        }
        let key = secret
            .map(|secret| {
                from_base64(secret.strip_prefix("whsec_").unwrap_or(&secret)).ok_or_else(|| {
                    PluginError::Internal("config `secret` is not valid base64".into())
                })
            })
            .transpose()?;
        let public_key = public_key
            .map(|public_key| {
                from_base64(public_key.strip_prefix("whpk_").unwrap_or(&public_key))
                    .filter(|key| key.len() == 32)
                    .ok_or_else(|| {
                        PluginError::Internal(
                            "config `public_key` is not the base64 of a 32-byte Ed25519 key".into(),
                        )
                    })
            })
            .transpose()?;

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
        let symmetric = key.is_some_and(|key| {
            let expected = base64(&crypto::hmac_sha256(&key, &signed));
            signatures_of_version(signatures, "v1")
                .any(|value| crypto::constant_time_eq(value.as_bytes(), expected.as_bytes()))
        });
        let authentic = symmetric
            || public_key.is_some_and(|public_key| {
                signatures_of_version(signatures, "v1a")
                    .any(|value| ed25519_base64_matches(&public_key, &signed, value))
            });
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

hookhost_sdk::v0_2_0::export!(Standard);
