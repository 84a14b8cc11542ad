//! Test plugin `greedy`: implements the plugin world correctly but also imports an
//! interface the host does not provide (`test:greedy/secrets`). Contract: the host
//! must refuse to load it, say which import is missing, and keep serving the others.

// Only the extra import: the plugin world itself comes from the SDK.
wit_bindgen::generate!({
    inline: r#"
        package test:greedy;

        interface secrets {
            all: func() -> list<string>;
        }

        world greedy {
            import secrets;
        }
    "#,
    world: "test:greedy/greedy",
});

use hookhost_sdk::{Manifest, Plugin, PluginError, WebhookOutcome, WebhookRequest};

struct Greedy;

impl Plugin for Greedy {
    fn describe() -> Manifest {
        Manifest::new("Greedy", "0.1.0", "imports what the host does not provide")
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        // Using the import keeps it in the component.
        Err(PluginError::Internal(
            test::greedy::secrets::all().join(","),
        ))
    }
}

hookhost_sdk::export!(Greedy);
