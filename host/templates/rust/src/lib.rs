//! hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
//! event keyed by the SHA-256 of the body. Replace `handle_webhook` with your
//! provider's logic, and check its signature in a `fn verify(request:
//! &WebhookRequest) -> Result<(), PluginError>`, which runs first: compare with
//! `hookhost_sdk::v0_2_0::signature::hmac_sha256_matches`, read a secret with
//! `config::required("secret")?`, headers with `request.header(name)`. `poll` and
//! `on_event` are the SDK's defaults (errors) until you implement them.

use hookhost_sdk::v0_2_0::prelude::*;
use hookhost_sdk::v0_2_0::signature::hex;

struct Hooks;

impl Plugin for Hooks {
    const MANIFEST: StaticManifest = StaticManifest::named("{{id}}")
        .description("TODO: what this plugin does")
        .emits(&["{{id}}.*"]);

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Ok(WebhookOutcome {
            response: HttpResponse::json(200, r#"{"ok":true}"#),
            events: vec![Event::new(
                hex(&crypto::sha256(&request.body)),
                "{{id}}.received",
                format!(r#"{{"size":{}}}"#, request.body.len()),
            )],
        })
    }
}

hookhost_sdk::v0_2_0::export!(Hooks);
