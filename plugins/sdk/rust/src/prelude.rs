//! What nearly every plugin names, for one glob import at the top of its
//! `lib.rs`: `use hookhost_sdk::v0_2_0::prelude::*;` (or `hookhost_sdk::prelude::*`
//! for contract 0.1.0). Signature helpers (`signature::...`) and outbound HTTP
//! (`http::...`) are imported by name, by the plugins that use them.

pub use super::{
    config, crypto, log, manifest, state, Event, HttpResponse, Manifest, Plugin, PluginError,
    PollOutcome, StaticManifest, StoredEvent, WebhookOutcome, WebhookRequest,
};
