//! Test plugin `greedy`: implements the plugin world correctly but also imports an
//! interface the host does not provide (`test:greedy/secrets`). Contract: the host
//! must refuse to load it, say which import is missing, and keep serving the others.

wit_bindgen::generate!({
    inline: r#"
        package test:greedy;

        interface secrets {
            all: func() -> list<string>;
        }

        world greedy {
            include hookhost:plugin/plugin@0.1.0;
            import secrets;
        }
    "#,
    path: "../../../wit",
    world: "test:greedy/greedy",
    generate_all,
});

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};

struct Greedy;

impl Guest for Greedy {
    fn describe() -> Manifest {
        Manifest {
            name: "Greedy".into(),
            version: "0.1.0".into(),
            description: "imports what the host does not provide".into(),
            emits: vec![],
            poll_interval_seconds: None,
            subscriptions: vec![],
        }
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        // Using the import keeps it in the component.
        Err(PluginError::Internal(test::greedy::secrets::all().join(",")))
    }

    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal("no".into()))
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal("no".into()))
    }
}

export!(Greedy);
