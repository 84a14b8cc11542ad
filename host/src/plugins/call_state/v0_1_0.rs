//! The 0.1.0 contract's imports on `CallState`: each forwards to the newest
//! version's implementation (in `call_state`), converting the few types that
//! differ in name only, so that both versions share one implementation.

use crate::plugins::bindings::v0_1_0::{config, crypto, log, state, types};
use crate::plugins::bindings::{self as host};
use crate::plugins::call_state::CallState;

impl types::Host for CallState {}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        host::config::Host::get(self, key)
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => host::log::Level::Trace,
            log::Level::Debug => host::log::Level::Debug,
            log::Level::Info => host::log::Level::Info,
            log::Level::Warn => host::log::Level::Warn,
            log::Level::Error => host::log::Level::Error,
        };
        host::log::Host::log(self, level, message)
    }
}

impl crypto::Host for CallState {
    fn hmac_sha256(&mut self, key: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
        host::crypto::Host::hmac_sha256(self, key, data)
    }

    fn sha256(&mut self, data: Vec<u8>) -> Vec<u8> {
        host::crypto::Host::sha256(self, data)
    }

    fn constant_time_eq(&mut self, a: Vec<u8>, b: Vec<u8>) -> bool {
        host::crypto::Host::constant_time_eq(self, a, b)
    }
}

impl state::Host for CallState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, state::StateError>> {
        Ok(host::state::Host::get(self, key)
            .await?
            .map_err(state_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        Ok(host::state::Host::set(self, key, value)
            .await?
            .map_err(state_error))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), state::StateError>> {
        Ok(host::state::Host::delete(self, key)
            .await?
            .map_err(state_error))
    }
}

fn state_error(error: host::state::StateError) -> state::StateError {
    use host::state::StateError as Host;
    match error {
        Host::InvalidKey(m) => state::StateError::InvalidKey(m),
        Host::ValueTooLarge(m) => state::StateError::ValueTooLarge(m),
        Host::TooManyKeys(m) => state::StateError::TooManyKeys(m),
        Host::Unavailable(m) => state::StateError::Unavailable(m),
    }
}
