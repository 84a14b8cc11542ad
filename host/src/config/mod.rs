//! The host's configuration: the TOML file, `${ENV}` expansion, and the defaults a
//! bare `hookhost serve` runs with.

pub mod dev_secrets;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::plugins::limits::{parse_bytes, PluginLimits};
use crate::plugins::outbound::allowlist::AllowedHost;
use crate::plugins::registry::is_valid_plugin_id;
use dev_secrets::DevelopmentSecret;

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
    /// Stored events older than this are purged in the background.
    pub retention: Duration,
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
    /// and no-proxy checks (see `admin_auth`), since that something is a proxy.
    pub allow_unauthenticated_admin: bool,
    /// `postgres://user:pass@host:port/db` or key=value pairs (parsed, with
    /// `sslmode`, by `store::postgres::DatabaseUrl`): the database every node of a
    /// fleet shares; `None` keeps events in SQLite in `data_dir`.
    pub database: Option<String>,
    /// Plugin config values that hold a published development secret; `load`
    /// refuses them unless `listen` is loopback, where `Host::start` warns.
    pub development_secrets: Vec<DevelopmentSecret>,
}

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
    /// `max_log_bytes`); `None` takes the default in `limits`.
    pub memory: Option<usize>,
    pub table_elements: Option<usize>,
    pub instances: Option<usize>,
    pub max_concurrent_calls: Option<usize>,
    pub max_response_bytes: Option<usize>,
    pub max_event_bytes: Option<usize>,
    pub max_log_bytes: Option<usize>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Far more than webhook traffic needs (a provider holds a connection for the few
/// milliseconds a delivery takes, so even thousands of deliveries a second need a
/// few dozen), and few enough that the worst case, every connection buffering a
/// `max_body_bytes` body, stays around a GiB with the default body limit. The
/// process's open-file limit must allow it (plus ~100 for the store and plugins).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
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
    retention: Option<String>,
    shutdown_timeout: Option<String>,
    admin_token: Option<String>,
    #[serde(default)]
    allow_unauthenticated_admin: bool,
    database: Option<String>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginConfigFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginConfigFile {
    #[serde(default)]
    config: BTreeMap<String, String>,
    timeout: Option<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    max_attempts: Option<u32>,
    retry_base: Option<String>,
    poll_interval: Option<String>,
    sources: Option<Vec<String>>,
    memory: Option<ByteSize>,
    table_elements: Option<usize>,
    instances: Option<usize>,
    max_concurrent_calls: Option<usize>,
    max_response_bytes: Option<ByteSize>,
    max_event_bytes: Option<ByteSize>,
    max_log_bytes: Option<ByteSize>,
}

/// A byte size as written: `65536` or `"64KiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(usize),
    Text(String),
}

impl ByteSize {
    fn resolve(self, key: &str) -> Result<usize> {
        match self {
            ByteSize::Bytes(bytes) => Ok(bytes),
            ByteSize::Text(text) => parse_bytes(&text).with_context(|| {
                format!("config `{key} = {text:?}` is not a size such as \"64MiB\" or 65536")
            }),
        }
    }
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
        let retention = match file.retention {
            Some(text) => parse_duration(&text, "retention", "\"30d\"")?,
            None => DEFAULT_RETENTION,
        };
        if retention.is_zero() {
            bail!("config `retention` must be longer than zero");
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
                     [a-z0-9][a-z0-9_-]{{0,63}})"
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
            };
            // Refuse limits the engine cannot honour now, not at the first call.
            PluginLimits::from_config(&id, &config)?;
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

        Ok(Config {
            listen,
            admin_listen,
            plugins_dir,
            data_dir,
            max_body_bytes,
            max_connections,
            retention,
            shutdown_timeout,
            plugins,
            admin_token,
            allow_unauthenticated_admin,
            database,
            development_secrets,
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

/// Replaces every `${NAME}` in `text` with the environment variable `NAME`, and
/// `${NAME:-fallback}` with `fallback` when `NAME` is unset. A plain `${NAME}` that
/// is not set is an error rather than an empty string: an empty webhook secret
/// would silently accept nothing, or worse. Errors never quote `text`: it may be a
/// secret or a database URL with its password (callers name the key instead).
fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    expand_env_noting(text, env).map(|(value, _)| value)
}

/// `expand_env`, and the names of the variables `text` refers to, so that a
/// message about the value can say which variable to set.
fn expand_env_noting(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>)> {
    let mut names = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("a `${{` has no closing `}}`");
        };
        let (name, fallback) = match after[..end].split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (&after[..end], None),
        };
        if name.is_empty() {
            bail!("a `${{}}` has no variable name");
        }
        names.push(name.to_string());
        let value = match (env(name), fallback) {
            (Some(value), _) => value,
            (None, Some(fallback)) => fallback.to_string(),
            (None, None) => bail!("environment variable {name} is not set"),
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            "PORT" => Some("9999".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config> {
        let file: ConfigFile = toml::from_str(text)?;
        Config::from_file(file, Path::new("/etc/hookhost"), Overrides::default(), &env)
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let config = Config::load(None, Overrides::default(), env).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.plugins_dir, PathBuf::from("plugins"));
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.retention, DEFAULT_RETENTION);
        assert_eq!(config.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(
            parse("shutdown_timeout = \"5s\"").unwrap().shutdown_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            parse("retention = \"7d\"").unwrap().retention.as_secs(),
            7 * 86400
        );
    }

    #[test]
    fn file_values_expand_env_and_resolve_relative_to_the_file() {
        let config = parse(
            r#"
            listen = "127.0.0.1:${PORT}"
            plugins_dir = "my-plugins"
            data_dir = "/var/lib/hookhost"
            [plugins.github]
            config = { secret = "${SECRET}", prefix = "a${SECRET}b", dev = "${NOPE:-dev-secret}", set = "${SECRET:-unused}" }
            timeout = "250ms"
            max_attempts = 3
            retry_base = "100ms"
            poll_interval = "30s"
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(
            config.plugins_dir,
            PathBuf::from("/etc/hookhost/my-plugins")
        );
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/hookhost"));
        let github = &config.plugins["github"];
        assert_eq!(github.values["secret"], "s3cr3t");
        assert_eq!(github.values["prefix"], "as3cr3tb");
        assert_eq!(github.values["dev"], "dev-secret");
        assert_eq!(github.values["set"], "s3cr3t");
        assert_eq!(github.timeout, Some(Duration::from_millis(250)));
        assert_eq!(github.max_attempts, Some(3));
        assert_eq!(github.retry_base, Some(Duration::from_millis(100)));
        assert_eq!(github.poll_interval, Some(Duration::from_secs(30)));
        let error = parse("[plugins.feed]\npoll_interval = \"0s\"").unwrap_err();
        assert!(format!("{error:#}").contains("poll_interval"), "{error:#}");
    }

    #[test]
    fn a_missing_env_var_is_an_error_naming_it() {
        let err = parse("[plugins.github]\nconfig = { secret = \"${NOPE}\" }").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("NOPE"), "{text}");
        assert!(text.contains("plugins.github"), "{text}");
    }

    #[test]
    fn limits_parse_as_sizes_and_are_checked_at_load() {
        let config = parse(
            "[plugins.p]\nmemory = \"64MiB\"\nmax_log_bytes = 1000\nmax_concurrent_calls = 2\n",
        )
        .unwrap();
        let p = &config.plugins["p"];
        assert_eq!(p.memory, Some(64 << 20));
        assert_eq!(p.max_log_bytes, Some(1000));
        assert_eq!(p.max_concurrent_calls, Some(2));
        let error = parse("[plugins.p]\nmemory = \"lots\"").unwrap_err();
        assert!(
            format!("{error:#}").contains("[plugins.p] memory"),
            "{error:#}"
        );
        let error = parse("[plugins.p]\nmemory = \"1GiB\"").unwrap_err();
        assert!(format!("{error:#}").contains("ceiling"), "{error:#}");
    }

    #[test]
    fn allowed_hosts_entries_are_checked_at_load() {
        let config =
            parse("[plugins.p]\nallowed_hosts = [\"api.github.com\", \"127.0.0.1:9000\"]\n")
                .unwrap();
        assert_eq!(
            config.plugins["p"].allowed_hosts,
            vec![
                "api.github.com".parse().unwrap(),
                "127.0.0.1:9000".parse().unwrap()
            ]
        );
        let error = parse("[plugins.p]\nallowed_hosts = [\"https://api.github.com\"]").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("[plugins.p] allowed_hosts"), "{text}");
        assert!(text.contains("host:port"), "{text}");
    }

    #[test]
    fn sources_default_to_any_and_must_name_plugin_ids() {
        let config = parse(
            "[plugins.notify]\nsources = [\"github\", \"stripe\"]\n[plugins.other]\n\
             [plugins.none]\nsources = []\n",
        )
        .unwrap();
        assert_eq!(
            config.plugins["notify"].sources.as_deref(),
            Some(&["github".to_string(), "stripe".to_string()][..])
        );
        assert_eq!(config.plugins["other"].sources, None);
        assert_eq!(config.plugins["none"].sources.as_deref(), Some(&[][..]));
        let error = parse("[plugins.notify]\nsources = [\"GitHub\"]").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("[plugins.notify] sources"), "{text}");
        assert!(text.contains("\"GitHub\""), "{text}");
        assert!(parse("[plugins.notify]\nsources = \"github\"").is_err());
    }

    #[test]
    fn max_connections_defaults_and_refuses_zero() {
        assert_eq!(parse("").unwrap().max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(parse("max_connections = 8").unwrap().max_connections, 8);
        let error = parse("max_connections = 0").unwrap_err();
        assert!(
            format!("{error:#}").contains("`max_connections` must be at least 1"),
            "{error:#}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(parse("lisen = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn command_line_overrides_win() {
        let file: ConfigFile = toml::from_str("listen = \"127.0.0.1:1\"").unwrap();
        let overrides = Overrides {
            listen: Some("127.0.0.1:2".parse().unwrap()),
            plugins_dir: Some("/p".into()),
            ..Overrides::default()
        };
        let config = Config::from_file(file, Path::new(""), overrides, &env).unwrap();
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.plugins_dir, PathBuf::from("/p"));
    }

    #[test]
    fn the_database_comes_from_the_flag_else_the_file_with_env_expansion() {
        let file = || toml::from_str("database = \"postgres://app:${SECRET}@db/hooks\"").unwrap();
        let config = Config::from_file(file(), Path::new(""), Overrides::default(), &env).unwrap();
        assert_eq!(
            config.database.as_deref(),
            Some("postgres://app:s3cr3t@db/hooks")
        );
        let overrides = Overrides {
            database: Some("postgres://other/db".into()),
            ..Overrides::default()
        };
        let config = Config::from_file(file(), Path::new(""), overrides, &env).unwrap();
        assert_eq!(config.database.as_deref(), Some("postgres://other/db"));
        assert_eq!(parse("").unwrap().database, None);
    }

    fn with_admin_env(text: &str, admin_env: Option<&str>) -> Result<Config> {
        let file: ConfigFile = toml::from_str(text)?;
        let env = |name: &str| match name {
            ADMIN_TOKEN_ENV => admin_env.map(str::to_string),
            other => env(other),
        };
        Config::from_file(file, Path::new(""), Overrides::default(), &env)
    }

    #[test]
    fn the_admin_token_comes_from_the_file_else_the_environment() {
        let from_file = with_admin_env("admin_token = \"${SECRET}\"", Some("from-env")).unwrap();
        assert_eq!(from_file.admin_token.as_deref(), Some("s3cr3t"));
        let from_env = with_admin_env("", Some("from-env")).unwrap();
        assert_eq!(from_env.admin_token.as_deref(), Some("from-env"));
        assert_eq!(with_admin_env("", Some("")).unwrap().admin_token, None);
        assert_eq!(with_admin_env("", None).unwrap().admin_token, None);
        let empty = with_admin_env("admin_token = \" \"", None).unwrap_err();
        assert!(format!("{empty:#}").contains("admin_token"), "{empty:#}");
    }

    #[test]
    fn a_non_loopback_address_needs_a_token_or_an_explicit_opt_out() {
        let err = with_admin_env("listen = \"0.0.0.0:8080\"", None).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("0.0.0.0:8080"), "{text}");
        assert!(text.contains("--allow-unauthenticated-admin"), "{text}");
        assert!(with_admin_env("listen = \"0.0.0.0:8080\"", Some("t")).is_ok());
        assert!(with_admin_env(
            "listen = \"[::]:8080\"\nallow_unauthenticated_admin = true",
            None
        )
        .is_ok());
        assert!(with_admin_env("listen = \"[::1]:8080\"", None).is_ok());
        let file: ConfigFile = toml::from_str("listen = \"10.0.0.1:80\"").unwrap();
        let overrides = Overrides {
            allow_unauthenticated_admin: true,
            ..Overrides::default()
        };
        assert!(Config::from_file(file, Path::new(""), overrides, &env).is_ok());
    }

    #[test]
    fn a_public_listen_needs_no_token_when_the_admin_has_its_own_loopback_listener() {
        let config = with_admin_env(
            "listen = \"0.0.0.0:8080\"\nadmin_listen = \"127.0.0.1:8081\"",
            None,
        )
        .unwrap();
        assert_eq!(config.admin_listen, Some("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(config.admin_address().port(), 8081);
        assert_eq!(
            parse("").unwrap().admin_address(),
            parse("").unwrap().listen
        );

        // The rule follows the admin surface, wherever it is served.
        let err = with_admin_env("admin_listen = \"0.0.0.0:8081\"", None).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("refusing to listen on 0.0.0.0:8081"),
            "{text}"
        );
        assert!(text.contains("admin_listen"), "{text}");
        assert!(with_admin_env("admin_listen = \"0.0.0.0:8081\"", Some("t")).is_ok());

        let file: ConfigFile = toml::from_str("admin_listen = \"127.0.0.1:1\"").unwrap();
        let overrides = Overrides {
            admin_listen: Some("127.0.0.1:2".parse().unwrap()),
            ..Overrides::default()
        };
        let config = Config::from_file(file, Path::new(""), overrides, &env).unwrap();
        assert_eq!(config.admin_listen.unwrap().port(), 2, "the flag wins");

        let same = parse("listen = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"");
        assert!(format!("{:#}", same.unwrap_err()).contains("same address"));
        assert!(parse("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"").is_ok());
        let bad = parse("admin_listen = \"localhost\"").unwrap_err();
        assert!(format!("{bad:#}").contains("admin_listen"), "{bad:#}");
    }

    /// The repository's own config file, as `scripts/run` uses it.
    fn shipped_config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hookhost.toml")
    }

    fn load_shipped(listen: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let overrides = Overrides {
            listen: Some(listen.parse().unwrap()),
            ..Overrides::default()
        };
        Config::load(Some(&shipped_config()), overrides, env)
    }

    #[test]
    fn the_shipped_development_secrets_are_refused_off_loopback_naming_key_and_variable() {
        let error = format!("{:#}", load_shipped("0.0.0.0:8080", &|_| None).unwrap_err());
        for (key, variable) in [
            ("[plugins.github] config.secret", "GITHUB_WEBHOOK_SECRET"),
            ("[plugins.stripe] config.secret", "STRIPE_WEBHOOK_SECRET"),
            (
                "[plugins.slack] config.signing_secret",
                "SLACK_SIGNING_SECRET",
            ),
            (
                "[plugins.standard-go] config.secret",
                "STANDARD_WEBHOOK_SECRET",
            ),
        ] {
            assert!(
                error.contains(&format!(
                    "`{key}` is a published development secret; set {variable}"
                )),
                "{key} / {variable} not in: {error}"
            );
        }
        assert!(error.contains("0.0.0.0:8080"), "{error}");

        // On loopback they load, listed for the start-up warning.
        let config = load_shipped("127.0.0.1:8080", &|_| None).unwrap();
        let github = DevelopmentSecret {
            plugin: "github".into(),
            key: "secret".into(),
            variables: vec!["GITHUB_WEBHOOK_SECRET".into()],
        };
        assert!(config.development_secrets.contains(&github));
        assert_eq!(config.development_secrets.len(), 8);

        // With every variable set, nothing is left to refuse.
        let real = |name: &str| name.ends_with("SECRET").then(|| format!("real-{name}"));
        let config = load_shipped("0.0.0.0:8080", &|name| {
            real(name).or_else(|| (name == ADMIN_TOKEN_ENV).then(|| "t".repeat(32)))
        })
        .unwrap();
        assert!(config.development_secrets.is_empty());
    }

    #[test]
    fn a_development_secret_is_one_however_it_got_there() {
        let error = parse(
            "listen = \"10.0.0.1:80\"\nadmin_token = \"t\"\n\
             [plugins.hand]\nconfig = { key = \"prefix-dev-secret-change-me\" }\n",
        )
        .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains(
                "`[plugins.hand] config.key` is a published development secret; replace it"
            ),
            "{text}"
        );
        let exported =
            |name: &str| (name == "HOOK").then(|| "whsec_dev-secret-change-me".to_string());
        let file: ConfigFile = toml::from_str(
            "listen = \"[::]:80\"\nadmin_token = \"t\"\n[plugins.p]\nconfig = { s = \"${HOOK}\" }\n",
        )
        .unwrap();
        let error =
            Config::from_file(file, Path::new(""), Overrides::default(), &exported).unwrap_err();
        assert!(
            format!("{error:#}").contains("set HOOK to the real secret"),
            "{error:#}"
        );
    }

    /// Keeps `DEVELOPMENT_SECRETS` in step with the shipped config: every
    /// `${VAR:-fallback}` in a plugin's config is a listed development secret or
    /// plainly not a secret (empty, a URL, a number).
    #[test]
    fn every_fallback_in_the_shipped_config_is_a_listed_secret_or_no_secret() {
        let text = std::fs::read_to_string(shipped_config()).unwrap();
        let file: toml::Value = toml::from_str(&text).unwrap();
        let mut fallbacks = 0;
        for (id, plugin) in file["plugins"].as_table().unwrap() {
            let Some(config) = plugin.get("config").and_then(|c| c.as_table()) else {
                continue;
            };
            for (key, value) in config {
                let mut rest = value.as_str().unwrap();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let end = after.find('}').unwrap();
                    if let Some((_, fallback)) = after[..end].split_once(":-") {
                        fallbacks += 1;
                        let harmless = fallback.is_empty()
                            || fallback.starts_with("http://")
                            || fallback.starts_with("https://")
                            || fallback.chars().all(|c| c.is_ascii_digit());
                        assert!(
                            harmless || dev_secrets::DEVELOPMENT_SECRETS.contains(&fallback),
                            "[plugins.{id}] config.{key} falls back to {fallback:?}, which is \
                             not in dev_secrets::DEVELOPMENT_SECRETS"
                        );
                    }
                    rest = &after[end + 1..];
                }
            }
        }
        assert!(fallbacks >= 10, "found only {fallbacks} fallbacks");
    }

    #[test]
    fn an_expansion_error_does_not_quote_the_value() {
        let error = parse("database = \"postgres://app:hunter2@db/${DB\"").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("database"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
