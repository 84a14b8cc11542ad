//! `hookhost:plugin@0.2.0` (`wit/v0.2.0/`): 0.1.0 plus the request's public `url`
//! and more `crypto`. The newest version, so its types are the host's own; its
//! imports are implemented on `CallState` (`call_state`).

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/v0.2.0",
        // Host imports (config, log, crypto) never block, so they stay
        // synchronous, except `state`, which waits for the store, and may trap
        // the call (its staged writes are charged to the call's host memory
        // budget); exports are async because WASI p2 is linked async and calls
        // are interrupted by epoch deadlines.
        imports: { "hookhost:plugin/state": async | trappable },
        exports: { default: async },
    });
}

/// The name under which a `0.2.0` component exports its functions.
pub const GUEST_EXPORT: &str = "hookhost:plugin/guest@0.2.0";

pub use generated::hookhost::plugin::types::{
    Event, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
pub use generated::hookhost::plugin::{config, crypto, log, state, types};
pub use generated::{Plugin, PluginPre};
