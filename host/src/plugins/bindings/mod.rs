//! Rust bindings for the `hookhost:plugin` WIT package, one module per supported
//! version (`v0_1_0`, `v0_2_0`, each generated from `wit/v<version>/` in a private
//! module), and `versioned`, which picks one per component.
//!
//! The rest of the host speaks the newest version only: its types and imports are
//! re-exported below, and `call_state` implements its imports. An older version
//! converts its values to and from the newest (`v0_1_0`) and its imports forward
//! to the newest's (`call_state::v0_1_0`), so one host-side implementation of
//! each import serves every version. `runtime` links every version's imports.

pub mod v0_1_0;
pub mod v0_2_0;
mod versioned;

pub use v0_2_0::{
    config, crypto, log, state, types, Event, Manifest, PluginError, PollOutcome, StoredEvent,
    WebhookOutcome, WebhookRequest,
};
pub use versioned::{Plugin, PluginPre, WitVersion};
