//! A test plugin that exists in two builds which answer differently, for hot
//! reload tests: every webhook gets 200 with body `v1` (or `v2` when built with
//! the `v2` feature), and `describe` reports version `1.0.0` (or `2.0.0`).

use hookhost_sdk::{HttpResponse, Manifest, Plugin, PluginError, WebhookOutcome, WebhookRequest};

const ANSWER: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };
const VERSION: &str = if cfg!(feature = "v2") {
    "2.0.0"
} else {
    "1.0.0"
};

struct Versioned;

impl Plugin for Versioned {
    fn describe() -> Manifest {
        Manifest::new(
            "Versioned",
            VERSION,
            format!("answers {ANSWER}, for hot reload tests"),
        )
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Ok(WebhookOutcome {
            response: HttpResponse::text(200, ANSWER),
            events: vec![],
        })
    }
}

hookhost_sdk::export!(Versioned);
