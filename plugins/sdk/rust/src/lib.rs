//! The hookhost plugin SDK for Rust: the bindings to `wit/v0.1.0/plugin.wit` (world
//! `plugin`), generated once here, and what the example plugins would otherwise
//! each write again. A plugin crate is a `cdylib` that holds only its provider
//! logic:
//!
//! ```ignore
//! use hookhost_sdk::prelude::*;
//!
//! struct Acme;
//!
//! impl Plugin for Acme {
//!     // The version and description are Cargo.toml's.
//!     const MANIFEST: StaticManifest = StaticManifest::named("Acme").emits(&["acme.*"]);
//!
//!     fn verify(request: &WebhookRequest) -> Result<(), PluginError> {
//!         // the signature; runs before handle_webhook, which it can refuse
//!     }
//!
//!     fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
//!         // parse, answer (`WebhookOutcome::accepted(event)`, usually)
//!     }
//! }
//!
//! hookhost_sdk::export!(Acme);
//! ```
//!
//! A plugin whose manifest depends on its config implements `fn describe() ->
//! Manifest` instead of declaring `MANIFEST`, building it with [`manifest!`].
//!
//! # Layout
//! - this file: the generated bindings (`bindings`, hidden), the contract's types
//!   and imported interfaces under stable names, [`manifest!`] and [`export!`].
//! - `config.rs`: the host's `config::get`, [`config::required`] for a key
//!   the plugin cannot work without, [`config::seconds`] for a tolerance.
//! - `plugin.rs`: [`Plugin`], the guest trait with defaults for the calls a plugin
//!   does not use, and `verify` run before every `handle_webhook`.
//! - `static_manifest.rs`: [`StaticManifest`], the manifest declared as a constant.
//! - `prelude.rs`: what nearly every plugin names, for `use hookhost_sdk::prelude::*`.
//! - `request.rs`: reading a webhook request (headers, JSON body).
//! - `reply.rs`: building what a call returns (manifest, response, a webhook's
//!   usual answer, event, poll outcome) and turning a `state` failure into a plugin error.
//! - `signature.rs`: signature checks with the host's crypto, hex and base64,
//!   timestamp skew (seconds as text, milliseconds as a number).
//! - `http.rs` (feature `http`): a blocking outbound HTTP client over wasi:http.
//! - `v0_2_0/`: the same SDK for contract 0.2.0 (`wit/v0.2.0/plugin.wit`): its own
//!   bindings, the files above compiled again against them, and its `manifest!`
//!   and `export!`. The files above name the bindings and types as `super::`, so
//!   each version's copy resolves to its own; the crate root stays 0.1.0, so a
//!   plugin moves to 0.2.0 only by writing `hookhost_sdk::v0_2_0::...`.
//!
//! Features: `json` (serde_json helpers), `http` (the outbound client); a plugin
//! that needs neither pulls in neither dependency.

pub mod config;
mod plugin;
pub mod prelude;
mod reply;
mod request;
pub mod signature;
mod static_manifest;

#[cfg(feature = "http")]
pub mod http;

/// The same SDK for contract 0.2.0; the root stays 0.1.0.
pub mod v0_2_0;

/// The generated bindings. Public only because [`export!`] expands in the plugin's
/// crate and names them; plugins use the re-exports below.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../../wit/v0.1.0",
        // The export macro is used by the plugin crates, not by this one.
        pub_export_macro: true,
        // That macro's expansion carries the whole world's type section into the
        // plugin's crate, so this crate needs no link helper to keep its own.
        disable_custom_section_link_helpers: true,
    });
}

pub use bindings::hookhost::plugin::types::{
    Event, Header, HttpResponse, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest,
};
/// The host's imports, as the contract names them: `log::log`,
/// `crypto::{hmac_sha256, sha256, constant_time_eq}`, `state::{get, set, delete}`
/// (and `config::get`, in [`config`] with [`config::required`]).
pub use bindings::hookhost::plugin::{crypto, log, state};
pub use plugin::{Plugin, PluginName};
pub use static_manifest::StaticManifest;

/// A [`Manifest`] named `name`, whose version is the calling crate's
/// (`CARGO_PKG_VERSION`, so Cargo.toml is the one place to bump it) and whose
/// description is its Cargo.toml `description` (`CARGO_PKG_DESCRIPTION`), or
/// `description` when given; chain `.emits(...)`, `.polls_every(...)`,
/// `.subscribes_to(...)`.
#[macro_export]
macro_rules! manifest {
    ($name:expr $(,)?) => {
        $crate::Manifest::new(
            $name,
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    };
    ($name:expr, $description:expr $(,)?) => {
        $crate::Manifest::new($name, env!("CARGO_PKG_VERSION"), $description)
    };
}

/// Exports a type that implements [`Plugin`] as the component's `guest`; once per
/// plugin crate, at its root. Its crate's name (`CARGO_PKG_NAME`) becomes
/// [`PluginName::NAME`], which the default calls name in their errors.
#[macro_export]
macro_rules! export {
    ($plugin:ident) => {
        impl $crate::PluginName for $plugin {
            const NAME: &'static str = env!("CARGO_PKG_NAME");
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = env!("CARGO_PKG_DESCRIPTION");
        }
        $crate::bindings::export!($plugin with_types_in $crate::bindings);
    };
}

/// [`manifest!`] for [`v0_2_0`]; use it as `hookhost_sdk::v0_2_0::manifest!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __manifest_v0_2_0 {
    ($name:expr $(,)?) => {
        $crate::v0_2_0::Manifest::new(
            $name,
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    };
    ($name:expr, $description:expr $(,)?) => {
        $crate::v0_2_0::Manifest::new($name, env!("CARGO_PKG_VERSION"), $description)
    };
}

/// [`export!`] for [`v0_2_0`]; use it as `hookhost_sdk::v0_2_0::export!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_v0_2_0 {
    ($plugin:ident) => {
        impl $crate::v0_2_0::PluginName for $plugin {
            const NAME: &'static str = env!("CARGO_PKG_NAME");
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = env!("CARGO_PKG_DESCRIPTION");
        }
        $crate::v0_2_0::bindings::export!($plugin with_types_in $crate::v0_2_0::bindings);
    };
}
