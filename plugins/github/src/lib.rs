//! GitHub webhooks: verifies `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
//! under config `secret`), answers `ping`, and emits one event per delivery:
//! id = `X-GitHub-Delivery`, kind = `github.<event>[.<action>]`, subject = the
//! repository's full name, payload = the body. Built against
//! `hookhost:plugin@0.2.0`.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::{from_hex, hmac_sha256_matches};

mod delivery;

use delivery::Delivery;

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
        let kind = fields.kind(event);
        let subject = fields.subject();
        // The body exactly as GitHub signed it. JSON is UTF-8, but the parser
        // does not check the strings it skipped.
        let payload = request.body_text()?;
        Ok(WebhookOutcome::accepted(Event {
            subject,
            ..Event::new(delivery, kind, payload)
        }))
    }
}

hookhost_sdk::v0_2_0::export!(Github);
