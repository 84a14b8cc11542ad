//! The crate root's `signature.rs` compiled against 0.2.0's crypto, and the
//! signature checks only 0.2.0 can do: Ed25519, verified by the host.

// `../signature.rs` names the host's crypto and the plugin error as
// `super::{crypto, PluginError}`: these imports.
use super::{crypto, PluginError};

#[path = "../signature.rs"]
mod common;
pub use common::*;

/// Whether `signature` is a valid Ed25519 signature (RFC 8032) of `message` under
/// `public_key` (32 bytes), verified strictly by the host: a non-canonical
/// signature, a small-order key, or a key or signature of the wrong length is
/// `false`, never an error.
pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    crypto::ed25519_verify(public_key, message, signature)
}

/// Whether `signature_base64`, an Ed25519 signature as Standard Webhooks and
/// others send it (standard padded base64), is a valid signature of `message` under
/// `public_key`. Only the canonical encoding of the bytes is accepted, so that two
/// texts never stand for one signature (and every SDK accepts the same strings).
pub fn ed25519_base64_matches(public_key: &[u8], message: &[u8], signature_base64: &str) -> bool {
    from_base64(signature_base64).is_some_and(|signature| {
        base64(&signature) == signature_base64 && ed25519_verify(public_key, message, &signature)
    })
}
