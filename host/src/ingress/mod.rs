//! Webhooks in.

pub mod containment;
