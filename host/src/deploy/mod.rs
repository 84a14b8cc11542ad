//! Deploys.

pub mod reload;
pub mod sync;
pub mod watcher;
