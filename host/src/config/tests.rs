//! The config file, environment and command line, merged and checked.

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

/// The error, with its context, that refuses the config `text`.
fn refusal(text: &str) -> String {
    format!("{:#}", parse(text).unwrap_err())
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
    let error = refusal("[plugins.feed]\npoll_interval = \"0s\"");
    assert!(error.contains("poll_interval"), "{error}");
}

#[test]
fn a_missing_env_var_is_an_error_naming_it() {
    let text = refusal("[plugins.github]\nconfig = { secret = \"${NOPE}\" }");
    assert!(text.contains("NOPE"), "{text}");
    assert!(text.contains("plugins.github"), "{text}");
}

#[test]
fn limits_parse_as_sizes_and_are_checked_at_load() {
    let config =
        parse("[plugins.p]\nmemory = \"64MiB\"\nmax_log_bytes = 1000\nmax_concurrent_calls = 2\n")
            .unwrap();
    let p = &config.plugins["p"];
    assert_eq!(p.memory, Some(64 << 20));
    assert_eq!(p.max_log_bytes, Some(1000));
    assert_eq!(p.max_concurrent_calls, Some(2));
    let error = refusal("[plugins.p]\nmemory = \"lots\"");
    assert!(error.contains("[plugins.p] memory"), "{error}");
    let error = refusal("[plugins.p]\nmemory = \"1GiB\"");
    assert!(error.contains("ceiling"), "{error}");
}

#[test]
fn memory_init_is_auto_unless_a_known_strategy_is_named() {
    use crate::plugins::memory_init::MemoryInit;
    let config = parse(
        "[plugins.p]\nmemory_init = \"copy\"\n[plugins.q]\n\
         [plugins.r]\nmemory_init = \"resident\"\n",
    )
    .unwrap();
    assert_eq!(config.plugins["p"].memory_init, MemoryInit::Copy);
    assert_eq!(config.plugins["r"].memory_init, MemoryInit::Resident);
    assert_eq!(config.plugins["q"].memory_init, MemoryInit::Auto);
    let error = refusal("[plugins.p]\nmemory_init = \"fast\"");
    assert!(error.contains("memory_init"), "{error}");
    assert!(error.contains("`auto`, `copy`"), "{error}");
}

#[test]
fn allowed_hosts_entries_are_checked_at_load() {
    let config =
        parse("[plugins.p]\nallowed_hosts = [\"api.github.com\", \"127.0.0.1:9000\"]\n").unwrap();
    assert_eq!(
        config.plugins["p"].allowed_hosts,
        vec![
            "api.github.com".parse().unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        ]
    );
    let text = refusal("[plugins.p]\nallowed_hosts = [\"https://api.github.com\"]");
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
    let text = refusal("[plugins.notify]\nsources = [\"GitHub\"]");
    assert!(text.contains("[plugins.notify] sources"), "{text}");
    assert!(text.contains("\"GitHub\""), "{text}");
    assert!(parse("[plugins.notify]\nsources = \"github\"").is_err());
}

#[test]
fn counts_default_and_refuse_zero() {
    type Count = (&'static str, usize, fn(&Config) -> usize);
    let counts: [Count; 2] = [
        ("max_connections", DEFAULT_MAX_CONNECTIONS, |c| {
            c.max_connections
        }),
        ("write_queue", DEFAULT_WRITE_QUEUE, |c| c.write_queue),
    ];
    for (key, default, value) in counts {
        assert_eq!(value(&parse("").unwrap()), default, "{key}");
        assert_eq!(value(&parse(&format!("{key} = 8")).unwrap()), 8, "{key}");
        let error = refusal(&format!("{key} = 0"));
        assert!(
            error.contains(&format!("`{key}` must be at least 1")),
            "{error}"
        );
    }
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

#[test]
fn public_url_is_optional_expands_env_and_must_be_an_http_origin() {
    assert_eq!(parse("").unwrap().public_url, None);
    let config = parse("public_url = \"https://hooks.example.com:${PORT}/in/\"").unwrap();
    assert_eq!(
        config.public_url.unwrap().to_string(),
        "https://hooks.example.com:9999/in"
    );
    let error = refusal("public_url = \"hooks.example.com\"");
    assert!(error.contains("config `public_url"), "{error}");
    let error = refusal("public_url = \"https://hooks.example.com/?a=1\"");
    assert!(error.contains("query"), "{error}");
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
    let bad = refusal("admin_listen = \"localhost\"");
    assert!(bad.contains("admin_listen"), "{bad}");
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
    // github, stripe, slack, five standard-*, twilio, msgraph, zoom, linear,
    // shopify, meta's app secret and verify token.
    assert_eq!(config.development_secrets.len(), 15);

    // With every variable set, nothing is left to refuse.
    let real = |name: &str| {
        let secret = ["SECRET", "TOKEN", "STATE"]
            .iter()
            .any(|end| name.ends_with(end));
        (secret && name != ADMIN_TOKEN_ENV).then(|| format!("real-{name}"))
    };
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
        text.contains("`[plugins.hand] config.key` is a published development secret; replace it"),
        "{text}"
    );
    let exported = |name: &str| (name == "HOOK").then(|| "whsec_dev-secret-change-me".to_string());
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
    let text = refusal("database = \"postgres://app:hunter2@db/${DB\"");
    assert!(text.contains("database"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn dead_letters_are_kept_until_acted_on_unless_given_their_own_retention() {
    assert_eq!(parse("").unwrap().dead_letter_retention, None);
    assert_eq!(
        parse("dead_letter_retention = \"90d\"")
            .unwrap()
            .dead_letter_retention,
        Some(Duration::from_secs(90 * 86400))
    );
    let zero = refusal("dead_letter_retention = \"0s\"");
    assert!(zero.contains("dead_letter_retention"), "{zero}");
    let bad = refusal("dead_letter_retention = \"soon\"");
    assert!(bad.contains("dead_letter_retention"), "{bad}");
}
