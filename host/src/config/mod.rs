//! The host's configuration: the TOML file, `${ENV}` expansion, and the defaults a
//! bare `hookhost serve` runs with.

pub mod dev_secrets;
mod env;
mod plugin;
pub mod public_url;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use dev_secrets::DevelopmentSecret;
use env::{expand_env, expand_env_noting};
pub use plugin::PluginConfig;
use plugin::{ByteSize, PluginConfigFile};

use crate::config::public_url::PublicUrl;
use crate::plugins::id::{is_valid_plugin_id, PLUGIN_ID_PATTERN};

/// Everything `hookhost serve` needs to run, after the file, the environment and the
/// command line have been merged.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where providers reach `/hooks/*`; with no `admin_listen`, the admin surface too.
    pub listen: SocketAddr,
    /// A listener of its own for `/api/*`, the dashboard and `/metrics`, so that they
    /// live on another origin than plugins' responses; `listen` then serves only
    /// `/hooks/*` and `/healthz`.
    pub admin_listen: Option<SocketAddr>,
    pub plugins_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Webhook bodies above this get 413 before any plugin runs.
    pub max_body_bytes: usize,
    /// Connections one listener holds open at most; at the cap new ones wait and
    /// the connection idle longest is closed (`connections`).
    pub max_connections: usize,
    /// Writes waiting for the event store at most (`write_queue`); while the disk
    /// or database stalls, more are answered 503 with `Retry-After` instead of
    /// being held in memory.
    pub write_queue: usize,
    /// Stored events older than this are purged in the background, unless a
    /// delivery of theirs is pending or dead (see `retention`).
    pub retention: Duration,
    /// Dead letters (dead deliveries) that have been dead this long are purged;
    /// `None` keeps them until an operator retries or discards them.
    pub dead_letter_retention: Option<Duration>,
    /// After SIGTERM/SIGINT, how long requests and deliveries in flight may take to
    /// finish before they are abandoned (a provider retries; a delivery is due again
    /// at the next start).
    pub shutdown_timeout: Duration,
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The bearer token `/api/*` and the dashboard require; `None` leaves them open,
    /// which `load` allows only on a loopback admin address or when told to.
    pub admin_token: Option<String>,
    /// Serve the admin API without a token on a non-loopback address: something in
    /// front of hookhost guards it. Also turns off the open admin's loopback-Host
    /// and no-proxy checks (see `admin::auth`), since that something is a proxy.
    pub allow_unauthenticated_admin: bool,
    /// `postgres://user:pass@host:port/db` or key=value pairs (parsed, with
    /// `sslmode`, by `store::postgres::DatabaseUrl`): the database every node of a
    /// fleet shares; `None` keeps events in SQLite in `data_dir`.
    pub database: Option<String>,
    /// Plugin config values that hold a published development secret; `load`
    /// refuses them unless `listen` is loopback, where `Host::start` warns.
    pub development_secrets: Vec<DevelopmentSecret>,
    /// `public_url`: the scheme, host and any path prefix providers use to reach
    /// this host (`https://hooks.example.com`); a webhook's `url` is it followed by
    /// the request's own path and query. `None`: `http://` and the `Host` header.
    pub public_url: Option<PublicUrl>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Far more than webhook traffic needs (a provider holds a connection for the few
/// milliseconds a delivery takes, so even thousands of deliveries a second need a
/// few dozen), and few enough that the worst case, every connection buffering a
/// `max_body_bytes` body, stays around a GiB with the default body limit. The
/// process's open-file limit must allow it (plus ~100 for the store and plugins).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub use crate::store::DEFAULT_WRITE_QUEUE;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Where the admin token comes from when the file sets no `admin_token`; the CLI's
/// client commands read the same variable, so one export serves both sides.
pub const ADMIN_TOKEN_ENV: &str = "HOOKHOST_ADMIN_TOKEN";

/// The file as written by the user; every field optional so that the defaults apply.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    admin_listen: Option<String>,
    plugins_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    write_queue: Option<usize>,
    retention: Option<String>,
    dead_letter_retention: Option<String>,
    shutdown_timeout: Option<String>,
    admin_token: Option<String>,
    #[serde(default)]
    allow_unauthenticated_admin: bool,
    database: Option<String>,
    public_url: Option<String>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginConfigFile>,
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    /// `--admin-listen ADDR`.
    pub admin_listen: Option<SocketAddr>,
    pub plugins_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// `--allow-unauthenticated-admin`: same as the config key; either one enables it.
    pub allow_unauthenticated_admin: bool,
    /// `--database URL`.
    pub database: Option<String>,
}

impl Config {
    /// The address that serves `/api/*` and the dashboard.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_listen.unwrap_or(self.listen)
    }

    /// Reads `path` (when given), expands `${ENV}` references with `env`, and applies
    /// the command-line overrides. Relative directories in the file are taken relative
    /// to the file, so a config can be used from any working directory.
    pub fn load(
        path: Option<&Path>,
        overrides: Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let (file, base) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let file: ConfigFile = toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (file, base)
            }
            None => (ConfigFile::default(), PathBuf::new()),
        };
        Self::from_file(file, &base, overrides, &env)
    }

    fn from_file(
        file: ConfigFile,
        base: &Path,
        overrides: Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let listen = match (overrides.listen, file.listen) {
            (Some(addr), _) => addr,
            (None, Some(text)) => expand_env(&text, env)
                .context("config `listen`")?
                .parse()
                .with_context(|| {
                    format!("config `listen = {text:?}` is not an address such as 127.0.0.1:8080")
                })?,
            (None, None) => DEFAULT_LISTEN.parse().expect("default address parses"),
        };
        let admin_listen = match (overrides.admin_listen, file.admin_listen) {
            (Some(addr), _) => Some(addr),
            (None, Some(text)) => Some(expand_env(&text, env)?.parse().with_context(|| {
                format!("config `admin_listen = {text:?}` is not an address such as 127.0.0.1:8081")
            })?),
            (None, None) => None,
        };
        if admin_listen == Some(listen) && listen.port() != 0 {
            bail!(
                "config `admin_listen` is {listen}, the same address as `listen`; give the \
                 admin surface another port (or remove `admin_listen` to serve both on one)"
            );
        }
        let plugins_dir = overrides
            .plugins_dir
            .unwrap_or_else(|| base.join(file.plugins_dir.unwrap_or_else(|| "plugins".into())));
        let data_dir = overrides
            .data_dir
            .unwrap_or_else(|| base.join(file.data_dir.unwrap_or_else(|| "data".into())));
        let max_body_bytes = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            bail!("config `max_body_bytes` must be at least 1");
        }
        let max_connections = file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            bail!(
                "config `max_connections` must be at least 1 (it caps the connections the \
                 listener holds open; the default is {DEFAULT_MAX_CONNECTIONS})"
            );
        }
        let write_queue = file.write_queue.unwrap_or(DEFAULT_WRITE_QUEUE);
        if write_queue == 0 {
            bail!(
                "config `write_queue` must be at least 1 (it caps the writes waiting for \
                 the event store; the default is {DEFAULT_WRITE_QUEUE})"
            );
        }
        let retention = match file.retention {
            Some(text) => parse_duration(&text, "retention", "\"30d\"")?,
            None => DEFAULT_RETENTION,
        };
        if retention.is_zero() {
            bail!("config `retention` must be longer than zero");
        }
        let dead_letter_retention = file
            .dead_letter_retention
            .map(|text| parse_duration(&text, "dead_letter_retention", "\"90d\""))
            .transpose()?;
        if dead_letter_retention.is_some_and(|age| age.is_zero()) {
            bail!(
                "config `dead_letter_retention` must be longer than zero (leave it out to keep \
                 dead letters until an operator retries or discards them)"
            );
        }
        let shutdown_timeout = match file.shutdown_timeout {
            Some(text) => parse_duration(&text, "shutdown_timeout", "\"30s\"")?,
            None => DEFAULT_SHUTDOWN_TIMEOUT,
        };

        let mut plugins = BTreeMap::new();
        let mut development_secrets = Vec::new();
        for (id, plugin) in file.plugins {
            let values = plugin
                .config
                .into_iter()
                .map(|(key, value)| {
                    let (value, variables) = expand_env_noting(&value, env)
                        .with_context(|| format!("config `[plugins.{id}] config.{key}`"))?;
                    development_secrets
                        .extend(DevelopmentSecret::find(&id, &key, &value, &variables));
                    Ok((key, value))
                })
                .collect::<Result<_>>()?;
            let timeout = plugin
                .timeout
                .map(|text| parse_duration(&text, &format!("[plugins.{id}] timeout"), "\"5s\""))
                .transpose()?;
            let retry_base = plugin
                .retry_base
                .map(|text| parse_duration(&text, &format!("[plugins.{id}] retry_base"), "\"10s\""))
                .transpose()?;
            let poll_interval = plugin
                .poll_interval
                .map(|text| {
                    parse_duration(&text, &format!("[plugins.{id}] poll_interval"), "\"30s\"")
                })
                .transpose()?;
            if poll_interval.is_some_and(|interval| interval.is_zero()) {
                bail!("config `[plugins.{id}] poll_interval` must be longer than zero");
            }
            if plugin.max_attempts == Some(0) {
                bail!("config `[plugins.{id}] max_attempts` must be at least 1");
            }
            if let Some(bad) = plugin
                .sources
                .iter()
                .flatten()
                .find(|source| !is_valid_plugin_id(source))
            {
                bail!(
                    "config `[plugins.{id}] sources` lists {bad:?}, which is not a plugin id \
                     (a plugin id is the file stem of plugins/<id>.wasm and matches \
                     {PLUGIN_ID_PATTERN})"
                );
            }
            let bytes = |size: Option<ByteSize>, name: &str| {
                size.map(|size| size.resolve(&format!("[plugins.{id}] {name}")))
                    .transpose()
            };
            let config = PluginConfig {
                values,
                timeout,
                allowed_hosts: plugin
                    .allowed_hosts
                    .iter()
                    .map(|entry| {
                        entry
                            .parse()
                            .with_context(|| format!("config `[plugins.{id}] allowed_hosts`"))
                    })
                    .collect::<Result<_>>()?,
                max_attempts: plugin.max_attempts,
                retry_base,
                poll_interval,
                sources: plugin.sources,
                memory: bytes(plugin.memory, "memory")?,
                table_elements: plugin.table_elements,
                instances: plugin.instances,
                max_concurrent_calls: plugin.max_concurrent_calls,
                max_response_bytes: bytes(plugin.max_response_bytes, "max_response_bytes")?,
                max_event_bytes: bytes(plugin.max_event_bytes, "max_event_bytes")?,
                max_log_bytes: bytes(plugin.max_log_bytes, "max_log_bytes")?,
                memory_init: plugin.memory_init,
            };
            // Refuse limits the engine cannot honour now, not at the first call.
            config.limits(&id)?;
            plugins.insert(id, config);
        }

        if !development_secrets.is_empty() && !listen.ip().is_loopback() {
            return Err(dev_secrets::refusal(listen, &development_secrets));
        }

        let admin_token = admin_token(file.admin_token, env)?;
        let allow_unauthenticated_admin =
            file.allow_unauthenticated_admin || overrides.allow_unauthenticated_admin;
        // Only the listener that serves the admin surface needs guarding: a public
        // `listen` beside a loopback `admin_listen` serves webhooks alone.
        let admin_address = admin_listen.unwrap_or(listen);
        if admin_token.is_none()
            && !admin_address.ip().is_loopback()
            && !allow_unauthenticated_admin
        {
            let way_out = match admin_listen {
                Some(_) => "a loopback `admin_listen` such as 127.0.0.1:8081",
                None => {
                    "a loopback address such as 127.0.0.1 (or a loopback `admin_listen`, \
                     which leaves `listen` serving webhooks alone)"
                }
            };
            bail!(
                "refusing to listen on {admin_address} without an admin token: anyone who \
                 can reach it could read every stored event and retry deliveries. Set \
                 `admin_token` in the config or {ADMIN_TOKEN_ENV} in the environment, use \
                 {way_out}, or, if something in front of hookhost already guards /api and /, \
                 pass --allow-unauthenticated-admin \
                 (config `allow_unauthenticated_admin = true`)"
            );
        }

        let database = match (overrides.database, file.database) {
            (Some(url), _) => Some(url),
            (None, Some(text)) => Some(expand_env(&text, env).context("config `database`")?),
            (None, None) => None,
        };

        let public_url = file
            .public_url
            .map(|text| PublicUrl::parse(&expand_env(&text, env).context("config `public_url`")?))
            .transpose()?;

        Ok(Config {
            listen,
            admin_listen,
            plugins_dir,
            data_dir,
            max_body_bytes,
            max_connections,
            write_queue,
            retention,
            dead_letter_retention,
            shutdown_timeout,
            plugins,
            admin_token,
            allow_unauthenticated_admin,
            database,
            development_secrets,
            public_url,
        })
    }
}

/// The file's `admin_token` (after `${ENV}` expansion), else `HOOKHOST_ADMIN_TOKEN`.
/// The file wins so that a token exported in a shell for talking to some other host
/// cannot silently replace the one this host was configured with. An empty token
/// in the file is a mistake (it would match an empty header); an empty variable
/// counts as unset, as shells and service managers often leave variables empty.
fn admin_token(
    in_file: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    match in_file {
        Some(text) => {
            let token = expand_env(&text, env).context("config `admin_token`")?;
            if token.trim().is_empty() {
                bail!(
                    "config `admin_token` is empty; set a long random value, or remove the \
                     key to serve the admin API without a token on a loopback address"
                );
            }
            Ok(Some(token))
        }
        None => Ok(env(ADMIN_TOKEN_ENV).filter(|token| !token.trim().is_empty())),
    }
}

fn parse_duration(text: &str, key: &str, example: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("config `{key} = {text:?}` is not a duration such as {example}"))
}

#[cfg(test)]
mod tests;
