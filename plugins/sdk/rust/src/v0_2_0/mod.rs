//! The SDK for contract 0.2.0 (`wit/v0.2.0/plugin.wit`): the same helpers as the
//! crate root, which targets 0.1.0, compiled again against 0.2.0's bindings, plus
//! what 0.2.0 adds (`WebhookRequest::url`; `crypto::{ed25519_verify, hmac_sha1,
//! hmac_sha512}`). A plugin opts in by its paths alone, so one build can never
//! turn another plugin's contract:
//!
//! ```ignore
//! use hookhost_sdk::v0_2_0::prelude::*;
//! // ...
//! hookhost_sdk::v0_2_0::export!(Acme);
//! ```

// Each version's bindings must come from their own world, since the export
// macro wit-bindgen generates is named after it and exported at the crate root;
// `plugin-v0-2-0` only includes the contract's `plugin`, so the component is
// exactly a 0.2.0 plugin.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        inline: "
            package hookhost:sdk;
            world plugin-v0-2-0 { include hookhost:plugin/plugin@0.2.0; }
        ",
        path: "../../../wit/v0.2.0",
        // The contract's interfaces are in another package than this world.
        generate_all,
        pub_export_macro: true,
        disable_custom_section_link_helpers: true,
    });
}

#[path = "../config.rs"]
pub mod config;
#[cfg(feature = "http")]
#[path = "../http.rs"]
pub mod http;
#[path = "../plugin.rs"]
mod plugin;
#[path = "../prelude.rs"]
pub mod prelude;
#[path = "../reply.rs"]
mod reply;
#[path = "../request.rs"]
mod request;
/// `../signature.rs`, and Ed25519 (`ed25519_verify`, `ed25519_base64_matches`).
pub mod signature;
#[path = "../static_manifest.rs"]
mod static_manifest;

pub use bindings::hookhost::plugin::types::{
    Event, Header, HttpResponse, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest,
};
/// The host's imports: as at the root, and 0.2.0's `crypto::{ed25519_verify,
/// hmac_sha1, hmac_sha512}`.
pub use bindings::hookhost::plugin::{crypto, log, state};
pub use plugin::{Plugin, PluginName};
pub use static_manifest::StaticManifest;

#[doc(inline)]
pub use crate::__export_v0_2_0 as export;
#[doc(inline)]
pub use crate::__manifest_v0_2_0 as manifest;
