//! Standard Webhooks receiver, the Rust one of five identical implementations;
//! `../../STANDARD-WEBHOOKS.md` is the specification all five follow step by step.

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::types::{Event, HttpResponse};
use hookhost::plugin::{config, crypto};

const TOLERANCE_SECONDS: u64 = 300;

struct Standard;

impl Guest for Standard {
    fn describe() -> Manifest {
        Manifest {
            name: "Standard Webhooks (Rust)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Standard Webhooks receiver (webhook-signature v1)".into(),
            emits: vec!["standard.webhook".into()],
            poll_interval_seconds: None,
            subscriptions: vec![],
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let secret = config::get("secret")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PluginError::Internal("config `secret` is not set".into()))?;
        let key = BASE64
            .decode(secret.strip_prefix("whsec_").unwrap_or(&secret))
            .map_err(|_| PluginError::Internal("config `secret` is not valid base64".into()))?;

        let id = required_header(&request, "webhook-id")?;
        let timestamp = required_header(&request, "webhook-timestamp")?;
        let signatures = required_header(&request, "webhook-signature")?;

        check_timestamp(timestamp)?;

        let mut signed = Vec::with_capacity(id.len() + timestamp.len() + 2 + request.body.len());
        signed.extend_from_slice(id.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(&request.body);
        let expected = format!("v1,{}", BASE64.encode(crypto::hmac_sha256(&key, &signed)));
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
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: format!(r#"{{"ok":true,"event":{{"id":"{id}","kind":"standard.webhook"}}}}"#)
                    .into_bytes(),
            },
            events: vec![Event {
                id: id.to_string(),
                kind: "standard.webhook".into(),
                subject: None,
                payload: format!(r#"{{"body_base64":"{}"}}"#, BASE64.encode(&request.body)),
            }],
        })
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("standard-rust does not poll".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal(
            "standard-rust subscribes to no events".into(),
        ))
    }
}

fn required_header<'a>(request: &'a WebhookRequest, name: &str) -> Result<&'a str, PluginError> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PluginError::Unauthorized(format!("missing {name} header")))
}

fn check_timestamp(timestamp: &str) -> Result<(), PluginError> {
    if timestamp.len() > 15 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PluginError::Unauthorized(
            "malformed webhook-timestamp header".into(),
        ));
    }
    let sent: u64 = timestamp.parse().expect("1-15 digits fit in u64");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(sent) > TOLERANCE_SECONDS {
        return Err(PluginError::Unauthorized(
            "webhook-timestamp is outside the 300 s tolerance".into(),
        ));
    }
    Ok(())
}

fn plain_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

export!(Standard);
