//! Rust bindings for the `hookhost:plugin` WIT package, one module per supported
//! version. Only what the rest of the host uses is re-exported.

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        // Host imports (config, log, crypto) never block, so they stay synchronous,
        // except `state`, which waits for the store, and may trap the call (its
        // staged writes are charged to the call's host memory budget); exports are
        // async because WASI p2 is linked async and calls are interrupted by epoch
        // deadlines.
        imports: { "hookhost:plugin/state": async | trappable },
        exports: { default: async },
    });
}

/// The name under which a `0.1.0` component exports its functions; the host
/// recognises a component's contract version by it.
pub const GUEST_EXPORT_V0_1_0: &str = "hookhost:plugin/guest@0.1.0";

pub use generated::hookhost::plugin::types::{
    Event, HttpResponse, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest,
};
pub use generated::hookhost::plugin::{config, crypto, log, state, types};
pub use generated::{Plugin, PluginPre};
