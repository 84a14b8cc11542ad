//! A test plugin that exists in two builds which answer differently, for hot
//! reload tests: every webhook gets 200 with body `v1` (or `v2` when built with
//! the `v2` feature), and `describe` reports version `1.0.0` (or `2.0.0`).

use hookhost_sdk::{HttpResponse, Manifest, Plugin, PluginError, WebhookOutcome, WebhookRequest};

/// The build: its answer is `v<BUILD>`, its version `<BUILD>.0.0`.
const BUILD: u8 = if cfg!(feature = "v2") { 2 } else { 1 };

struct Versioned;

impl Plugin for Versioned {
    fn describe() -> Manifest {
        let description = format!("answers v{BUILD}, for hot reload tests");
        Manifest::new("Versioned", format!("{BUILD}.0.0"), description)
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Ok(WebhookOutcome {
            response: HttpResponse::text(200, format!("v{BUILD}")),
            events: vec![],
        })
    }
}

hookhost_sdk::export!(Versioned);
