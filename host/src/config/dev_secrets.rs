//! The development secrets the shipped `hookhost.toml` falls back to
//! (`${GITHUB_WEBHOOK_SECRET:-dev-secret-change-me}`), so that hookhost runs out of
//! the box on a laptop. They are published in this repository: anyone can sign a
//! webhook with them. A plugin config value that contains one, however it got there
//! (a fallback, a literal, an exported variable), is refused when the host listens
//! on anything but loopback, where providers and attackers reach it, and warned
//! about on loopback.
//!
//! The list must follow the shipped config; a test reads `hookhost.toml` and fails
//! when one of its fallbacks is neither listed here nor plainly not a secret.

use std::fmt;
use std::net::SocketAddr;

use anyhow::{anyhow, Error};

/// Every secret the shipped config publishes as a fallback.
pub const DEVELOPMENT_SECRETS: &[&str] = &[
    "dev-secret-change-me",
    "whsec_dev-secret-change-me",
    // Standard Webhooks' form: `whsec_` + base64("dev-secret-change-me").
    "whsec_ZGV2LXNlY3JldC1jaGFuZ2UtbWU=",
    // The key inside the form above, should someone paste it decoded.
    "ZGV2LXNlY3JldC1jaGFuZ2UtbWU=",
];

/// A plugin config value that holds a development secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevelopmentSecret {
    pub plugin: String,
    /// The key under `[plugins.<plugin>] config`.
    pub key: String,
    /// The environment variables the value refers to (`${NAME}`), which are where
    /// the real secret belongs; empty when the value is written out in the file.
    pub variables: Vec<String>,
}

impl DevelopmentSecret {
    /// Whether `value` of `[plugins.<plugin>] config.<key>` holds a development
    /// secret; `variables` are those its text referred to.
    pub fn find(plugin: &str, key: &str, value: &str, variables: &[String]) -> Option<Self> {
        DEVELOPMENT_SECRETS
            .iter()
            .any(|secret| value.contains(secret))
            .then(|| DevelopmentSecret {
                plugin: plugin.to_string(),
                key: key.to_string(),
                variables: variables.to_vec(),
            })
    }
}

impl fmt::Display for DevelopmentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DevelopmentSecret {
            plugin,
            key,
            variables,
        } = self;
        write!(
            f,
            "`[plugins.{plugin}] config.{key}` is a published development secret; "
        )?;
        match variables.as_slice() {
            [] => write!(f, "replace it in the config file with the real secret"),
            [name] => write!(f, "set {name} to the real secret"),
            names => write!(f, "set {} to the real secret", names.join(" / ")),
        }
    }
}

/// The refusal to listen on `listen` (not loopback) with `found`.
pub fn refusal(listen: SocketAddr, found: &[DevelopmentSecret]) -> Error {
    let list: Vec<String> = found.iter().map(|secret| format!("  {secret}")).collect();
    anyhow!(
        "refusing to listen on {listen} with development secrets, which anyone can read in \
         hookhost's repository and sign webhooks with:\n{}\n(on a loopback address such as \
         127.0.0.1 they are allowed, with a warning, for trying hookhost locally)",
        list.join("\n")
    )
}

/// Logs each of `found` at start-up on a loopback address.
pub fn warn(found: &[DevelopmentSecret]) {
    for secret in found {
        tracing::warn!(
            plugin = %secret.plugin,
            "{secret}; it is accepted only because hookhost listens on loopback"
        );
    }
}
