//! Host imports.

pub mod crypto;
pub mod guest_output;
pub mod state;
