//! The plugin's configuration (`[plugins.<id>] config` in the operator's
//! hookhost.toml): the host's `config::get`, and the one rule the examples share
//! for a key they cannot work without.

use super::PluginError;

pub use super::bindings::hookhost::plugin::config::get;

/// The value of `key`, which the plugin cannot work without; an unset or empty
/// key is `internal`, "config `<key>` is not set" (the operator's mistake, not
/// the sender's).
pub fn required(key: &str) -> Result<String, PluginError> {
    get(key)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| PluginError::Internal(format!("config `{key}` is not set")))
}
