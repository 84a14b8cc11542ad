//! `${NAME}` and `${NAME:-fallback}` in config values, from the environment.

use anyhow::{bail, Result};

/// Replaces every `${NAME}` in `text` with the environment variable `NAME`, and
/// `${NAME:-fallback}` with `fallback` when `NAME` is unset. A plain `${NAME}` that
/// is not set is an error rather than an empty string: an empty webhook secret
/// would silently accept nothing, or worse. Errors never quote `text`: it may be a
/// secret or a database URL with its password (callers name the key instead).
pub(super) fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    expand_env_noting(text, env).map(|(value, _)| value)
}

/// `expand_env`, and the names of the variables `text` refers to, so that a
/// message about the value can say which variable to set.
pub(super) fn expand_env_noting(
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
