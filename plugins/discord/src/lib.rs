//! Discord interactions (an application's Interactions Endpoint URL).
//!
//! Verifies `X-Signature-Ed25519`: the hex Ed25519 signature of the
//! `X-Signature-Timestamp` header's text followed by the raw body, under config
//! `public_key` (the application's public key, hex). Discord's timestamp is Unix
//! seconds; one more than config `tolerance` seconds (default 300) from now is
//! refused too, so a captured interaction cannot be replayed later. Every refusal
//! is 401, as Discord requires (its portal sends forged requests to check).
//!
//! A PING (`"type": 1`, sent when the URL is saved) is answered PONG, `{"type":1}`,
//! and stored as nothing. Every other interaction is stored as an event, answered
//! with a deferred response so a handler can reply later through Discord's
//! follow-up webhook (the interaction's `token`, in the payload, is valid for 15
//! minutes): `{"type":5}` (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE); an autocomplete,
//! which Discord does not let be deferred, gets no suggestions,
//! `{"type":8,"data":{"choices":[]}}`.
//!
//! Event: id = the interaction's `id`, kind = `discord.` + its type
//! (`application_command`, `message_component`, `application_command_autocomplete`,
//! `modal_submit`), subject = the command's `data.name` or the component's
//! `data.custom_id`, payload = the body as Discord sent it.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{check_timestamp, from_hex};

const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

struct Discord;

impl Plugin for Discord {
    const MANIFEST: StaticManifest = StaticManifest::named("Discord").emits(&["discord.*"]);

    /// Checks the timestamp's age, then `X-Signature-Ed25519` over timestamp + body
    /// under config `public_key`.
    fn verify(request: &WebhookRequest) -> Result<(), PluginError> {
        let public_key = from_hex(&config::required("public_key")?)
            .filter(|key| key.len() == 32)
            .ok_or_else(|| {
                PluginError::Internal("config `public_key` is not 32 bytes of hex".into())
            })?;
        let tolerance = config::seconds("tolerance", DEFAULT_TOLERANCE_SECONDS)?;
        let signature = request.auth_header("x-signature-ed25519")?;
        let timestamp = request.auth_header("x-signature-timestamp")?;

        check_timestamp("X-Signature-Timestamp", timestamp, tolerance)?;
        let signature = from_hex(signature).ok_or_else(|| {
            PluginError::Unauthorized("malformed X-Signature-Ed25519 header".into())
        })?;
        let mut signed = Vec::with_capacity(timestamp.len() + request.body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(&request.body);
        if crypto::ed25519_verify(&public_key, &signed, &signature) {
            Ok(())
        } else {
            Err(PluginError::Unauthorized(
                "invalid request signature".into(),
            ))
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let body = request.json_body()?;
        let interaction_type = body["type"]
            .as_u64()
            .ok_or_else(|| PluginError::BadRequest("interaction has no numeric `type`".into()))?;
        let (kind, answer) = match interaction_type {
            1 => {
                return Ok(WebhookOutcome {
                    response: HttpResponse::json(200, r#"{"type":1}"#),
                    events: vec![],
                })
            }
            2 => ("application_command", DEFERRED),
            3 => ("message_component", DEFERRED),
            4 => ("application_command_autocomplete", NO_CHOICES),
            5 => ("modal_submit", DEFERRED),
            other => {
                return Err(PluginError::BadRequest(format!(
                    "unknown interaction type {other}"
                )))
            }
        };
        let id = body["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| PluginError::BadRequest("interaction has no `id`".into()))?;
        let subject = body["data"]["name"]
            .as_str()
            .or_else(|| body["data"]["custom_id"].as_str())
            .map(str::to_string);
        let payload = request.body_text()?;
        Ok(WebhookOutcome {
            response: HttpResponse::json(200, answer),
            events: vec![Event {
                subject,
                ..Event::new(id, format!("discord.{kind}"), payload)
            }],
        })
    }
}

/// DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: acknowledged, the reply comes later.
const DEFERRED: &str = r#"{"type":5}"#;
/// APPLICATION_COMMAND_AUTOCOMPLETE_RESULT with no suggestions.
const NO_CHOICES: &str = r#"{"type":8,"data":{"choices":[]}}"#;

hookhost_sdk::v0_2_0::export!(Discord);
