//! Rust bindings for the `hookhost:plugin` WIT package, one module per supported
//! version (today `v0_1_0`). Each generates its bindings in a private module and
//! re-exports only what the host uses; a later version goes beside it. The rest
//! of the host names the current version's types through the re-exports below.

pub mod v0_1_0 {
    mod generated {
        wasmtime::component::bindgen!({
            world: "plugin",
            path: "../wit",
            // Host imports (config, log, crypto) never block, so they stay
            // synchronous, except `state`, which waits for the store, and may trap
            // the call (its staged writes are charged to the call's host memory
            // budget); exports are async because WASI p2 is linked async and calls
            // are interrupted by epoch deadlines.
            imports: { "hookhost:plugin/state": async | trappable },
            exports: { default: async },
        });
    }

    /// The name under which a `0.1.0` component exports its functions; the host
    /// recognises a component's contract version by it.
    pub const GUEST_EXPORT: &str = "hookhost:plugin/guest@0.1.0";

    pub use generated::hookhost::plugin::types::{
        Event, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
    };
    pub use generated::hookhost::plugin::{config, crypto, log, state, types};
    pub use generated::{Plugin, PluginPre};
}

pub use v0_1_0::GUEST_EXPORT as GUEST_EXPORT_V0_1_0;
pub use v0_1_0::{
    config, crypto, log, state, types, Event, Manifest, Plugin, PluginError, PluginPre,
    PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
