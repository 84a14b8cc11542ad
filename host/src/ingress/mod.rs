//! Webhooks in.

pub mod containment;
pub mod webhook;
