//! Host imports.

pub mod guest_output;
pub mod state;
