//! HTTP plumbing under every route.

pub mod body;
pub mod body_deadline;
pub mod call_failure;
pub mod connections;
pub mod error;
pub mod listener;
