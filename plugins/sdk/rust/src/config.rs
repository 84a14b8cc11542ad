//! The plugin's configuration (`[plugins.<id>] config` in the operator's
//! hookhost.toml): the host's `config::get`, and the rules the examples share for
//! a key they cannot work without and for a number of seconds.

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

/// Config `key` as a whole number of seconds (a replay tolerance, say), or
/// `default` when it is unset or empty; anything but ASCII digits is `internal`,
/// "config `<key>` must be a whole number of seconds".
pub fn seconds(key: &str, default: u64) -> Result<u64, PluginError> {
    match get(key).filter(|value| !value.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())
            .flatten()
            .ok_or_else(|| {
                PluginError::Internal(format!("config `{key}` must be a whole number of seconds"))
            }),
    }
}
