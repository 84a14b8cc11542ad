//! The floor of a webhook call, for the benchmarks: accepts every delivery as one
//! event without checking anything. It answers as the `github` plugin does
//! (`WebhookOutcome::accepted`, id = `X-GitHub-Delivery`, kind `github.push`,
//! payload `{}`), so that running it where `github` runs shows what a fresh
//! instance and the host's path cost before a plugin does any work of its own.

use hookhost_sdk::v0_2_0::prelude::*;

struct Floor;

impl Plugin for Floor {
    const MANIFEST: StaticManifest = StaticManifest::named("Floor").emits(&["github.*"]);

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let delivery = request
            .header("x-github-delivery")
            .unwrap_or("no-delivery-id")
            .to_string();
        Ok(WebhookOutcome::accepted(Event::new(
            delivery,
            "github.push",
            "{}",
        )))
    }
}

hookhost_sdk::v0_2_0::export!(Floor);
