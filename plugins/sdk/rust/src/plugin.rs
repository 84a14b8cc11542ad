//! The guest trait a plugin implements. Only `describe` is required: the host calls
//! only what the manifest says the plugin uses, and the default for every other
//! call is the error the examples have always returned for it.

use super::bindings::exports::hookhost::plugin::guest::Guest;
use super::{Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest};

/// The plugin's name for its own errors; [`export!`](crate::export) implements it
/// from the crate's name, so a crate that forgets `export!` does not compile.
pub trait PluginName {
    const NAME: &'static str;
}

/// What a plugin does: the contract's `guest` interface (see `wit/v0.1.0/plugin.wit`),
/// with defaults for the calls a plugin does not use.
pub trait Plugin: PluginName {
    /// Describes the plugin. Called once when the plugin is loaded; must not fail.
    fn describe() -> Manifest;

    /// Handles one webhook delivery. Default: `bad-request`, "`<name>` takes no
    /// webhooks" (HTTP 400).
    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Err(PluginError::BadRequest(format!(
            "{} takes no webhooks",
            Self::NAME
        )))
    }

    /// Asks the provider for what is new since `cursor`. Default: `internal`,
    /// "`<name>` does not poll" (the host never calls it unless the manifest has a
    /// poll interval).
    fn poll(_cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        Err(PluginError::Internal(format!(
            "{} does not poll",
            Self::NAME
        )))
    }

    /// Reacts to one stored event matching the manifest's subscriptions. Default:
    /// `internal`, "`<name>` subscribes to no events".
    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal(format!(
            "{} subscribes to no events",
            Self::NAME
        )))
    }
}

// What the generated export glue calls; each function forwards, so a plugin costs
// nothing more per call than one implementing `Guest` itself.
impl<T: Plugin> Guest for T {
    fn describe() -> Manifest {
        <T as Plugin>::describe()
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        <T as Plugin>::handle_webhook(request)
    }

    fn poll(cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        <T as Plugin>::poll(cursor)
    }

    fn on_event(event: StoredEvent) -> Result<(), PluginError> {
        <T as Plugin>::on_event(event)
    }
}
