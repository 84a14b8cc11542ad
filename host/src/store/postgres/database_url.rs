//! The operator's `database` setting: parsed once, split into what tokio-postgres
//! understands and what hookhost handles itself (TLS), and shown only without its
//! passwords.
//!
//! Two forms are accepted, as libpq and tokio-postgres accept them:
//! - a URL, `postgres://user:pass@host:port/db?key=value&...`;
//! - key=value pairs, `host=db.internal user=app password='s e c' dbname=hooks`.
//!
//! A password can sit in the URL's userinfo, in a `password=` parameter of either
//! form (its key possibly percent-encoded: `pass%77ord=`), or quoted and escaped in
//! the pairs. `shown` masks every one of them: any parameter whose key, decoded,
//! contains "password" in any case (tokio-postgres only honours `password`, but a
//! misspelt or libpq-only key such as `sslpassword` would otherwise be echoed by
//! the error that refuses it). Anything ambiguous about where the userinfo ends (an
//! `@` after the host) is refused rather than guessed at, because tokio-postgres
//! takes the first `@` anywhere as the end of the userinfo and a guess that differs
//! would show part of a password as a host name.
//!
//! TLS keys: tokio-postgres 0.7.18 knows `sslmode` = disable/prefer/require only,
//! and no `sslrootcert`. Both are taken out here and honoured as libpq does (see
//! `SslMode`) by `tls::connector`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use percent_encoding::percent_decode_str;

/// `sslmode`, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked
    /// (unless `sslrootcert` names a file). libpq's default, and so hookhost's.
    Prefer,
    /// TLS or no connection; the certificate is not checked (unless `sslrootcert`
    /// names a file).
    Require,
    /// TLS, and the server's certificate must chain to `sslrootcert`.
    VerifyCa,
    /// `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries plain first; an attacker in the path can then
            // always make it plain, so it is not offered.
            other => bail!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        })
    }
}

/// Which certificates a TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// No `sslrootcert`: nothing is verified unless the mode is `verify-full`,
    /// which then uses the public roots.
    Unset,
    /// `sslrootcert=system`: the Mozilla roots built into hookhost (webpki-roots).
    System,
    /// `sslrootcert=FILE`: the PEM certificates in this file.
    File(PathBuf),
}

/// How the connection is secured: `sslmode` and `sslrootcert` after libpq's rules
/// have been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub roots: RootCerts,
}

/// A parsed `database` setting.
pub struct DatabaseUrl {
    /// Everything but the TLS keys, which hookhost sets itself.
    pub config: tokio_postgres::Config,
    pub tls: TlsSettings,
    /// The setting as written, with every password replaced by `***`: the only
    /// form that may reach a log line or an error.
    pub shown: String,
}

const URL_PREFIXES: [&str; 2] = ["postgres://", "postgresql://"];
const MASK: &str = "***";

impl FromStr for DatabaseUrl {
    type Err = anyhow::Error;

    /// Errors never quote `text`: only `shown`, once it is known to be safe, or
    /// the part that is wrong when that part cannot hold a password.
    fn from_str(text: &str) -> Result<DatabaseUrl> {
        let parsed = if URL_PREFIXES.iter().any(|prefix| text.starts_with(prefix)) {
            parse_url(text)?
        } else if let Some((scheme, _)) = text.split_once("://") {
            bail!(
                "the database URL's scheme {:?} is not postgres:// or postgresql://",
                scheme_only(scheme)
            );
        } else {
            parse_pairs(text)?
        };
        let tls = tls_settings(parsed.sslmode.as_deref(), parsed.sslrootcert.as_deref())
            .with_context(|| format!("database {}", parsed.shown))?;
        let mut config = tokio_postgres::Config::from_str(&parsed.for_client)
            .map_err(|error| anyhow!("database {}: {}", parsed.shown, error_chain(&error)))?;
        config.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        Ok(DatabaseUrl {
            config,
            tls,
            shown: parsed.shown,
        })
    }
}

/// A tokio-postgres or pool error with its causes: their `Display` alone says
/// "error performing TLS handshake" and leaves out why.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // deadpool's errors repeat their cause in their own text.
        if !text.ends_with(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// What both forms give: the text for tokio-postgres, the shown text, and the TLS
/// keys taken out of the first.
struct Split {
    for_client: String,
    shown: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl Split {
    /// Takes a TLS key out (the last one wins, as in tokio-postgres); whether it was one.
    fn take_tls_key(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// Whether a parameter's value is to be masked.
fn is_password_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// A scheme as it may be quoted in an error: short and plain, else not at all.
fn scheme_only(scheme: &str) -> &str {
    let plain = scheme.len() <= 16
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if plain {
        scheme
    } else {
        "(not shown)"
    }
}

fn decode(text: &str, what: &str) -> Result<String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| anyhow!("the database URL's {what} is not UTF-8 once percent-decoded"))
}

/// `postgres://[user[:password]@]host[:port][,...][/db][?key=value&...]`, read as
/// tokio-postgres reads it.
fn parse_url(text: &str) -> Result<Split> {
    let (scheme, rest) = text.split_once("://").expect("checked by the caller");
    let (userinfo, after) = match rest.find('@') {
        Some(at) => {
            if rest[..at].contains(['/', '?']) {
                bail!(
                    "the database URL has an `@` after its host; percent-encode `@` in a \
                     password or parameter as %40"
                );
            }
            let after = &rest[at + 1..];
            let host_end = after.find(['/', '?']).unwrap_or(after.len());
            if after[..host_end].contains('@') {
                bail!(
                    "the database URL has more than one `@` before its host; percent-encode \
                     `@` in the password as %40"
                );
            }
            (Some(&rest[..at]), after)
        }
        None => (None, rest),
    };
    let (base, query) = match after.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (after, None),
    };

    let mut split = Split {
        for_client: format!("{scheme}://"),
        shown: format!("{scheme}://"),
        sslmode: None,
        sslrootcert: None,
    };
    if let Some(userinfo) = userinfo {
        split.for_client.push_str(userinfo);
        split.for_client.push('@');
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                let _ = write!(split.shown, "{user}:{MASK}@");
            }
            None => {
                let _ = write!(split.shown, "{userinfo}@");
            }
        }
    }
    split.for_client.push_str(base);
    split.shown.push_str(base);

    let Some(query) = query else {
        return Ok(split);
    };
    let mut kept = Vec::new();
    let mut shown = Vec::new();
    for parameter in query.split('&').filter(|p| !p.is_empty()) {
        let Some((raw_key, raw_value)) = parameter.split_once('=') else {
            bail!("the database URL has a parameter without `=` (key=value)");
        };
        let key = decode(raw_key, "parameter name")?;
        if is_password_key(&key) {
            shown.push(format!("{raw_key}={MASK}"));
        } else {
            shown.push(parameter.to_string());
        }
        if key == "sslmode" || key == "sslrootcert" {
            let value = decode(raw_value, &format!("`{key}`"))?;
            split.take_tls_key(&key, value);
        } else {
            kept.push(parameter);
        }
    }
    if !kept.is_empty() {
        split.for_client.push('?');
        split.for_client.push_str(&kept.join("&"));
    }
    if !shown.is_empty() {
        split.shown.push('?');
        split.shown.push_str(&shown.join("&"));
    }
    Ok(split)
}

/// `key=value key='quoted \' value' ...`, read as tokio-postgres reads it.
fn parse_pairs(text: &str) -> Result<Split> {
    let pairs = Pairs::parse(text)?;
    if pairs.is_empty() {
        bail!(
            "the database setting is empty; give a postgres:// URL or key=value pairs \
             (host=... dbname=...)"
        );
    }
    let mut split = Split {
        for_client: String::new(),
        shown: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    let mut shown = Vec::new();
    for (key, value) in pairs {
        if is_password_key(&key) {
            shown.push(format!("{key}={MASK}"));
        } else {
            shown.push(format!("{key}={}", quote(&value)));
        }
        if !split.take_tls_key(&key, value.clone()) {
            kept.push(format!("{key}={}", quote(&value)));
        }
    }
    split.for_client = kept.join(" ");
    split.shown = shown.join(" ");
    Ok(split)
}

/// A value as the key=value form needs it: quoted when empty or holding
/// whitespace, quotes or backslashes, which are escaped.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

/// The key=value form's grammar, as tokio-postgres 0.7.18's `Parser`: keys run to
/// whitespace or `=`, whitespace may surround `=`, a value is quoted (`'...'`) or
/// runs to whitespace, and `\` escapes the next character in both.
struct Pairs;

impl Pairs {
    fn parse(text: &str) -> Result<Vec<(String, String)>> {
        let mut chars = text.chars().peekable();
        let mut pairs = Vec::new();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
                key.push(c);
            }
            if key.is_empty() {
                // Only whitespace was left; a lone `=` is not a key.
                if chars.peek().is_some() {
                    bail!("the database setting has `=` without a key before it");
                }
                return Ok(pairs);
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next() != Some('=') {
                // `key` may be a bare password pasted in the wrong place: not quoted.
                bail!(
                    "the database setting is neither a postgres:// URL nor key=value pairs \
                     (host=... dbname=...): a word has no `=` after it"
                );
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some('\\') => value.extend(chars.next()),
                        Some(c) => value.push(c),
                        None => {
                            bail!("the database setting has a quoted value without its closing `'`")
                        }
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '\\' {
                        value.extend(chars.next());
                    } else {
                        value.push(c);
                    }
                }
                if value.is_empty() {
                    bail!("the database setting's `{key}` has no value (quote an empty one: '')");
                }
            }
            pairs.push((key, value));
        }
    }
}

/// libpq's rules for `sslmode` and `sslrootcert` together.
fn tls_settings(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Result<TlsSettings> {
    let roots = match sslrootcert {
        None => RootCerts::Unset,
        Some("") => bail!("sslrootcert is empty; name a PEM file, or `system`"),
        Some("system") => RootCerts::System,
        Some(path) => RootCerts::File(PathBuf::from(path)),
    };
    let mode = match sslmode {
        Some(mode) => SslMode::parse(mode)?,
        // As in libpq 16: trusting every public CA only means something when the
        // host name is checked too.
        None if roots == RootCerts::System => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    match (mode, &roots) {
        (SslMode::VerifyCa, RootCerts::Unset) => bail!(
            "sslmode=verify-ca needs sslrootcert=FILE (the CA that signed the server's \
             certificate): against the public roots any certificate any public CA issued \
             would pass. Use sslmode=verify-full to check the server against the public roots"
        ),
        (
            SslMode::Disable | SslMode::Prefer | SslMode::Require | SslMode::VerifyCa,
            RootCerts::System,
        ) => {
            bail!(
                "sslrootcert=system needs sslmode=verify-full: any public CA can issue a \
                 certificate, so only the host name check makes it mean something"
            )
        }
        _ => {}
    }
    Ok(TlsSettings { mode, roots })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DatabaseUrl {
        text.parse()
            .unwrap_or_else(|error| panic!("{text:?} does not parse: {error:#}"))
    }

    fn refused(text: &str) -> String {
        match text.parse::<DatabaseUrl>() {
            Ok(_) => panic!("{text:?} parsed"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn every_spelling_of_a_password_is_masked() {
        let cases = [
            (
                "postgres://app:s3cr:t@db.internal:5432/hooks",
                "postgres://app:***@db.internal:5432/hooks",
            ),
            (
                "postgres://app@db/hooks?password=s3cret&connect_timeout=3",
                "postgres://app@db/hooks?password=***&connect_timeout=3",
            ),
            (
                "postgresql://db/hooks?user=app&pass%77ord=s3cret",
                "postgresql://db/hooks?user=app&pass%77ord=***",
            ),
            (
                "postgres://app:%73%33cret@db/hooks?application_name=x",
                "postgres://app:***@db/hooks?application_name=x",
            ),
            (
                "host=db user=app password=s3cret dbname=hooks",
                "host=db user=app password=*** dbname=hooks",
            ),
            (
                "host=db password = 's3 c\\'ret' dbname=hooks",
                "host=db password=*** dbname=hooks",
            ),
            ("postgres://app@db/hooks", "postgres://app@db/hooks"),
            ("postgres://db/hooks", "postgres://db/hooks"),
        ];
        for (text, shown) in cases {
            assert_eq!(parse(text).shown, shown, "{text}");
        }
        assert_eq!(
            parse("postgres://app:s3cret@db/hooks")
                .config
                .get_password(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(
            parse("postgres://db/hooks?pass%77ord=s3cret")
                .config
                .get_password(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(
            parse("host=db password='s3 c\\'ret'").config.get_password(),
            Some(&b"s3 c'ret"[..])
        );
    }

    #[test]
    fn a_refused_setting_never_quotes_its_password() {
        let texts = [
            // Keys tokio-postgres does not know, in any case.
            "postgres://db/hooks?PASSWORD=s3cret",
            "postgres://db/hooks?sslpassword=s3cret",
            "host=db Password=s3cret",
            // Where the userinfo ends is ambiguous.
            "postgres://db/hooks?password=s3@cret",
            "postgres://db?password=s3@cret",
            "postgres://app:s3@cret@db/hooks",
            // Not a URL or pairs at all.
            "s3cret",
            "mysql://app:s3cret@db/hooks",
            "postgres://db/hooks?password",
            "host=db password='s3cret",
        ];
        for text in texts {
            let error = refused(text);
            assert!(!error.contains("s3"), "{text:?} gave {error}");
        }
        assert!(refused("postgres://db/hooks?password=a@b").contains("%40"));
        assert!(refused("mysql://x@y/z").contains("\"mysql\""));
        assert!(refused("host=db sslmode=allow").contains("verify-full"));
    }

    #[test]
    fn tls_keys_are_taken_out_and_follow_libpq() {
        let url = parse("postgres://app@db/hooks?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(
            url.tls,
            TlsSettings {
                mode: SslMode::VerifyFull,
                roots: RootCerts::File("/etc/ca.pem".into())
            }
        );
        assert_eq!(
            url.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            url.shown,
            "postgres://app@db/hooks?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
        );

        let pairs = parse("host=db sslmode=verify-ca sslrootcert='/etc/my ca.pem'");
        assert_eq!(pairs.tls.mode, SslMode::VerifyCa);
        assert_eq!(pairs.tls.roots, RootCerts::File("/etc/my ca.pem".into()));

        let default = parse("postgres://db/hooks");
        assert_eq!(default.tls.mode, SslMode::Prefer);
        assert_eq!(
            default.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert_eq!(
            parse("host=db sslmode=disable").config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        assert_eq!(
            parse("postgres://db/h?sslrootcert=system").tls.mode,
            SslMode::VerifyFull
        );
        assert_eq!(
            parse("postgres://db/h?sslmode=verify-full").tls.roots,
            RootCerts::Unset
        );
        assert!(refused("postgres://db/h?sslmode=verify-ca").contains("sslrootcert"));
        assert!(
            refused("postgres://db/h?sslmode=require&sslrootcert=system").contains("verify-full")
        );
    }

    #[test]
    fn the_pairs_form_reads_as_tokio_postgres_reads_it() {
        let url = parse("  host = db   port=6543 user=app dbname='my db' application_name=a\\ b ");
        assert_eq!(url.config.get_dbname(), Some("my db"));
        assert_eq!(url.config.get_application_name(), Some("a b"));
        assert_eq!(url.config.get_ports(), &[6543]);
        assert_eq!(
            url.shown,
            "host=db port=6543 user=app dbname='my db' application_name='a b'"
        );
        assert!(refused("").contains("empty"));
        assert!(refused("host=").contains("no value"));
    }
}
