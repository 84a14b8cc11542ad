//! Webhooks in.

pub mod containment;
pub mod public_url;
pub mod webhook;
