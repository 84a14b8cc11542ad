//! GitHub webhooks: verifies `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
//! under config `secret`), answers `ping`, and emits one event per delivery:
//! id = `X-GitHub-Delivery`, kind = `github.<event>[.<action>]`, subject = the
//! repository's full name, payload = the body. Built against
//! `hookhost:plugin@0.2.0`.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{from_hex, hmac_sha256_matches};
use serde::Deserialize;
use std::borrow::Cow;

struct Github;

impl Plugin for Github {
    const MANIFEST: StaticManifest = StaticManifest::named("GitHub").emits(&["github.*"]);

    /// Checks `X-Hub-Signature-256: sha256=<hex>` against the body under config
    /// `secret`, in constant time.
    fn verify(request: &WebhookRequest) -> Result<(), PluginError> {
        let secret = config::required("secret")?;
        let signature = request.header("x-hub-signature-256").ok_or_else(|| {
            PluginError::Unauthorized("missing X-Hub-Signature-256 header".into())
        })?;
        let claimed = signature
            .strip_prefix("sha256=")
            .and_then(from_hex)
            .ok_or_else(|| {
                PluginError::Unauthorized("malformed X-Hub-Signature-256 header".into())
            })?;
        if hmac_sha256_matches(secret.as_bytes(), &request.body, &claimed) {
            Ok(())
        } else {
            Err(PluginError::Unauthorized("signature does not match".into()))
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let event = request
            .header("x-github-event")
            .ok_or_else(|| PluginError::BadRequest("missing X-GitHub-Event header".into()))?;
        if event == "ping" {
            return Ok(WebhookOutcome {
                response: HttpResponse::json(200, r#"{"ok":true,"pong":true}"#),
                events: vec![],
            });
        }
        let delivery = request
            .header("x-github-delivery")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| PluginError::BadRequest("missing X-GitHub-Delivery header".into()))?;
        let fields: Delivery = request.json()?;
        let kind = match fields.action {
            Some(action) => format!("github.{event}.{action}"),
            None => format!("github.{event}"),
        };
        let subject = fields
            .repository
            .and_then(|repository| repository.full_name)
            .map(String::from);
        // The body exactly as GitHub signed it. JSON is UTF-8, but the parser
        // does not check the strings it skipped.
        let payload = request.body_text()?;
        Ok(WebhookOutcome::accepted(Event {
            subject,
            ..Event::new(delivery, kind, payload)
        }))
    }
}

/// The two fields of a delivery the event is named by, typed as GitHub documents
/// them. Everything else is skipped by the parser (which still checks that it is
/// JSON) rather than built into a tree: the body itself is the payload, byte for
/// byte.
#[derive(Deserialize)]
struct Delivery<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    repository: Option<Repository<'a>>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow)]
    full_name: Option<Cow<'a, str>>,
}

hookhost_sdk::v0_2_0::export!(Github);
