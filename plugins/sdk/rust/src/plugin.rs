//! The guest trait a plugin implements. A plugin declares its manifest (or
//! computes it in `describe`) and writes the calls it uses: the host calls only
//! what the manifest says the plugin uses, and the default for every other call
//! is the error the examples have always returned for it.

use super::bindings::exports::hookhost::plugin::guest::Guest;
use super::{
    Manifest, PluginError, PollOutcome, StaticManifest, StoredEvent, WebhookOutcome, WebhookRequest,
};

/// What the plugin's Cargo.toml says of it; [`export!`](crate::export)
/// implements it from the crate's package (`CARGO_PKG_*`), so a crate that
/// forgets `export!` does not compile.
pub trait PluginName {
    /// The crate's name, which the default calls name in their errors.
    const NAME: &'static str;
    /// The crate's version, the manifest's unless `describe` says otherwise.
    const VERSION: &'static str;
    /// The crate's description, the manifest's unless it declares its own.
    const DESCRIPTION: &'static str;
}

/// What a plugin does: the contract's `guest` interface (see `wit/v0.1.0/plugin.wit`),
/// with defaults for the calls a plugin does not use.
pub trait Plugin: PluginName {
    /// The manifest, for a plugin that says the same of itself on every load:
    /// `const MANIFEST: StaticManifest = StaticManifest::named("Acme").emits(&["acme.*"]);`.
    /// A plugin that computes its manifest (from its config, say) implements
    /// `describe` instead. With neither, the plugin does not build: the default
    /// is a compile-time error, raised only where the default `describe` uses it.
    const MANIFEST: StaticManifest =
        panic!("a hookhost plugin declares `const MANIFEST` or implements `describe`");

    /// Describes the plugin. Called once when the plugin is loaded; must not fail.
    /// Default: [`MANIFEST`](Self::MANIFEST) at the crate's version.
    fn describe() -> Manifest {
        Self::MANIFEST.to_manifest(Self::VERSION, Self::DESCRIPTION)
    }

    /// Checks that a webhook delivery is authentic (its signature, its age),
    /// before `handle_webhook` sees it: an error refuses the delivery and
    /// `handle_webhook` is not called, so no provider logic runs on a forged
    /// request. Default: every request passes, for a plugin that checks inside
    /// `handle_webhook` (when the check needs what it parses) or takes no webhooks.
    fn verify(_request: &WebhookRequest) -> Result<(), PluginError> {
        Ok(())
    }

    /// Handles one webhook delivery, once [`verify`](Self::verify) has passed it.
    /// Default: `bad-request`, "`<name>` takes no webhooks" (HTTP 400).
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
        <T as Plugin>::verify(&request)?;
        <T as Plugin>::handle_webhook(request)
    }

    fn poll(cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        <T as Plugin>::poll(cursor)
    }

    fn on_event(event: StoredEvent) -> Result<(), PluginError> {
        <T as Plugin>::on_event(event)
    }
}
