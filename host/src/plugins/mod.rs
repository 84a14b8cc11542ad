//! Plugins.

pub mod artifact_cache;
pub mod bindings;
pub mod call_state;
pub mod data_segments;
pub mod host_memory;
pub mod http_budget;
pub mod id;
pub mod imports;
pub mod limits;
pub mod loaded;
pub mod memory_init;
pub mod outbound;
pub mod outcome;
pub mod plugin_error;
pub mod registry;
pub mod runtime;
pub mod subscriptions;
