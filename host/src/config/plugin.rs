//! `[plugins.<id>]`: one plugin's config as written and as resolved, byte sizes,
//! and the check of its limits against what the engine can honour.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::plugins::limits::{
    PluginLimits, MAX_INSTANCES, MAX_MEMORY, MAX_TABLE_ELEMENTS, POOL_COMPONENT_INSTANCES,
};
use crate::plugins::memory_init::MemoryInit;
use crate::plugins::outbound::allowlist::AllowedHost;

/// `[plugins.<id>]`: what the host knows about one plugin besides its component.
#[derive(Debug, Clone, Default)]
pub struct PluginConfig {
    /// What the plugin's `config.get` sees (secrets, URLs), after `${ENV}` expansion.
    pub values: BTreeMap<String, String>,
    /// The longest a single call into the plugin may run before it is interrupted.
    pub timeout: Option<Duration>,
    /// Hosts (`api.github.com`: https on 443) or `host:port`s (either scheme) the
    /// plugin may send HTTP requests to; empty denies all outbound HTTP. See
    /// `outbound::allowlist`.
    pub allowed_hosts: Vec<AllowedHost>,
    /// How many times an event is offered to this plugin's `on-event` before its
    /// delivery is dead-lettered.
    pub max_attempts: Option<u32>,
    /// The delay before the first retry of a failed delivery; it doubles with each
    /// further attempt.
    pub retry_base: Option<Duration>,
    /// How often to poll, instead of the manifest's `poll-interval-seconds`; only
    /// for a plugin that polls at all.
    pub poll_interval: Option<Duration>,
    /// For a handler plugin: the plugin ids whose events it may get (`sources`);
    /// `None`, the default, takes events from any plugin. Kinds are not owned (any
    /// plugin may declare `github.*` in its `emits`), so this is how an operator makes
    /// sure that a `github.push` a handler acts on came from the `github` plugin.
    pub sources: Option<Vec<String>>,
    /// Resource limits (`memory`, `table_elements`, `instances`,
    /// `max_concurrent_calls`, `max_response_bytes`, `max_event_bytes`,
    /// `max_log_bytes`); `None` takes the default in `plugins::limits`.
    pub memory: Option<usize>,
    pub table_elements: Option<usize>,
    pub instances: Option<usize>,
    pub max_concurrent_calls: Option<usize>,
    pub max_response_bytes: Option<usize>,
    pub max_event_bytes: Option<usize>,
    pub max_log_bytes: Option<usize>,
    /// How each call's instance gets its initial memory (`plugins::memory_init`).
    pub memory_init: MemoryInit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginConfigFile {
    #[serde(default)]
    pub(super) config: BTreeMap<String, String>,
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    pub(super) max_attempts: Option<u32>,
    pub(super) retry_base: Option<String>,
    pub(super) poll_interval: Option<String>,
    pub(super) sources: Option<Vec<String>>,
    pub(super) memory: Option<ByteSize>,
    pub(super) table_elements: Option<usize>,
    pub(super) instances: Option<usize>,
    pub(super) max_concurrent_calls: Option<usize>,
    pub(super) max_response_bytes: Option<ByteSize>,
    pub(super) max_event_bytes: Option<ByteSize>,
    pub(super) max_log_bytes: Option<ByteSize>,
    #[serde(default)]
    pub(super) memory_init: MemoryInit,
}

/// A byte size as written: `65536` or `"64KiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ByteSize {
    Bytes(usize),
    Text(String),
}

impl ByteSize {
    pub(super) fn resolve(self, key: &str) -> Result<usize> {
        match self {
            ByteSize::Bytes(bytes) => Ok(bytes),
            ByteSize::Text(text) => parse_bytes(&text).with_context(|| {
                format!("config `{key} = {text:?}` is not a size such as \"64MiB\" or 65536")
            }),
        }
    }
}

impl PluginConfig {
    /// The limits this config asks for, over the defaults; `id` names the plugin in
    /// errors. Values the engine could not honour are refused here, at config
    /// load, rather than failing calls later.
    pub fn limits(&self, id: &str) -> Result<PluginLimits> {
        let defaults = PluginLimits::default();
        let limits = PluginLimits {
            timeout: self.timeout.unwrap_or(defaults.timeout),
            memory: self.memory.unwrap_or(defaults.memory),
            table_elements: self.table_elements.unwrap_or(defaults.table_elements),
            instances: self.instances.unwrap_or(defaults.instances),
            max_concurrent_calls: self
                .max_concurrent_calls
                .unwrap_or(defaults.max_concurrent_calls),
            max_response_bytes: self
                .max_response_bytes
                .unwrap_or(defaults.max_response_bytes),
            max_event_bytes: self.max_event_bytes.unwrap_or(defaults.max_event_bytes),
            max_log_bytes: self.max_log_bytes.unwrap_or(defaults.max_log_bytes),
        };
        let key = |name: &str| format!("config `[plugins.{id}] {name}`");
        if limits.timeout.is_zero() {
            bail!("{} must be longer than zero", key("timeout"));
        }
        if limits.memory > MAX_MEMORY {
            bail!(
                "{} = {} bytes is above the host's ceiling of {MAX_MEMORY} bytes (256MiB)",
                key("memory"),
                limits.memory
            );
        }
        if limits.table_elements > MAX_TABLE_ELEMENTS {
            bail!(
                "{} = {} is above the host's ceiling of {MAX_TABLE_ELEMENTS}",
                key("table_elements"),
                limits.table_elements
            );
        }
        if limits.instances > MAX_INSTANCES {
            bail!(
                "{} = {} is above the host's ceiling of {MAX_INSTANCES}",
                key("instances"),
                limits.instances
            );
        }
        if !(1..=POOL_COMPONENT_INSTANCES).contains(&limits.max_concurrent_calls) {
            bail!(
                "{} must be between 1 and {POOL_COMPONENT_INSTANCES}",
                key("max_concurrent_calls")
            );
        }
        for (name, value) in [
            ("memory", limits.memory),
            ("table_elements", limits.table_elements),
            ("instances", limits.instances),
        ] {
            if value == 0 {
                bail!("{} must be at least 1", key(name));
            }
        }
        Ok(limits)
    }
}

/// Parses a byte size: a plain number of bytes, or a number with a unit (`B`,
/// `KiB`, `MiB`, `GiB` in powers of 1024; `KB`, `MB`, `GB` in powers of 1000).
pub(super) fn parse_bytes(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().ok()?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::limits::DEFAULT_TIMEOUT;

    #[test]
    fn byte_sizes_parse_with_and_without_units() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("64 MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("1KB"), Some(1000));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("12B"), Some(12));
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-1",
            "10 parsecs",
            "99999999999999999999GiB",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_apply_and_overrides_win() {
        let limits = PluginConfig::default().limits("p").unwrap();
        assert_eq!(limits, PluginLimits::default());
        let config = PluginConfig {
            memory: Some(64 << 20),
            max_concurrent_calls: Some(2),
            ..PluginConfig::default()
        };
        let limits = config.limits("p").unwrap();
        assert_eq!(limits.memory, 64 << 20);
        assert_eq!(limits.max_concurrent_calls, 2);
        assert_eq!(limits.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn values_the_pool_cannot_honour_are_refused_by_key() {
        let cases = [
            PluginConfig {
                memory: Some(MAX_MEMORY + 1),
                ..PluginConfig::default()
            },
            PluginConfig {
                table_elements: Some(MAX_TABLE_ELEMENTS + 1),
                ..PluginConfig::default()
            },
            PluginConfig {
                max_concurrent_calls: Some(0),
                ..PluginConfig::default()
            },
            PluginConfig {
                timeout: Some(Duration::ZERO),
                ..PluginConfig::default()
            },
        ];
        for (config, key) in cases.iter().zip([
            "memory",
            "table_elements",
            "max_concurrent_calls",
            "timeout",
        ]) {
            let error = config.limits("p").unwrap_err();
            assert!(
                error.to_string().contains(&format!("[plugins.p] {key}")),
                "{error}"
            );
        }
    }
}
