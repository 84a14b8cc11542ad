//! The admin surface: everything but `/hooks/*`, behind `auth`.

pub mod auth;
pub mod dashboard;
pub mod deploy;
pub mod events;
pub mod health;
pub mod plugins;
pub mod poll;
pub mod request_origin;
pub mod stream;
