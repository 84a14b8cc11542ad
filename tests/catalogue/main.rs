//! The provider catalogue end to end: each provider plugin built against
//! `hookhost:plugin@0.2.0`, on the real binary, accepting deliveries and handshakes
//! signed as the provider signs them (by the provider's own library where the
//! registries have one: `tests/signers/`) and refusing forged, tampered and stale
//! ones. One module per provider.

#[path = "../common/mod.rs"]
mod common;

mod delivery;
mod discord;
mod linear;
mod meta;
mod msgraph;
mod shopify;
mod twilio;
mod zoom;
