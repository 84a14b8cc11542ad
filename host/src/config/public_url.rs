//! The URL a provider addressed a webhook to (the 0.2.0 contract's
//! `webhook-request.url`), which schemes that sign the URL (Twilio) verify over:
//! the operator's `public_url` when set, since behind a proxy or TLS terminator
//! the host cannot know the scheme and name the provider used, else `http://`
//! and the request's `Host`.

use std::fmt;

use anyhow::{bail, Context, Result};
use axum::http::uri::Authority;

/// The top-level `public_url` config key, checked: an absolute `http` or `https`
/// URL with a host, possibly a path prefix (a proxy that mounts hookhost below
/// one), and no credentials, query or fragment. Kept as written, without a
/// trailing `/`, since a provider signs the URL exactly as it was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<PublicUrl> {
        let example = "such as \"https://hooks.example.com\"";
        let url = url::Url::parse(text).with_context(|| {
            format!("config `public_url = {text:?}` is not an absolute URL {example}")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("config `public_url = {text:?}` must start with https:// or http:// ({example})");
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("config `public_url = {text:?}` has no host ({example})");
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!("config `public_url` must not hold credentials");
        }
        if url.query().is_some() || url.fragment().is_some() || text.contains(['?', '#']) {
            bail!(
                "config `public_url = {text:?}` must not have a query or fragment: the \
                 request's own path and query follow it"
            );
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("config `public_url = {text:?}` must not contain spaces or control characters");
        }
        Ok(PublicUrl(text.trim_end_matches('/').to_string()))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The URL of a request for `path` (from `/`, as received: `/hooks/<id>/...`) and
/// `query` (without `?`): `public_url` followed by them, or without one `http://`
/// and `host` (the request's `Host`). A `host` that is not a plain `name[:port]`
/// (a `/`, `?`, `@` or space in it) is left out rather than let it reshape the URL:
/// such a URL has an empty host, and no signature made for the real one matches it.
pub fn request_url(
    public_url: Option<&PublicUrl>,
    host: Option<&str>,
    path: &str,
    query: &str,
) -> String {
    let origin = match public_url {
        Some(base) => base.0.clone(),
        None => {
            let host = host
                .filter(|host| !host.contains('@'))
                .and_then(|host| host.parse::<Authority>().ok())
                .map(|authority| authority.to_string())
                .unwrap_or_default();
            format!("http://{host}")
        }
    };
    if query.is_empty() {
        format!("{origin}{path}")
    } else {
        format!("{origin}{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_followed_by_the_request_path_and_query() {
        let base = PublicUrl::parse("https://hooks.example.com").unwrap();
        assert_eq!(
            request_url(
                Some(&base),
                Some("10.0.0.5:8080"),
                "/hooks/twilio/sms",
                "a=1&b=%20"
            ),
            "https://hooks.example.com/hooks/twilio/sms?a=1&b=%20"
        );
        assert_eq!(
            request_url(Some(&base), None, "/hooks/twilio", ""),
            "https://hooks.example.com/hooks/twilio"
        );
    }

    #[test]
    fn public_url_keeps_a_path_prefix_and_drops_a_trailing_slash() {
        let base = PublicUrl::parse("https://example.com/in/").unwrap();
        assert_eq!(base.to_string(), "https://example.com/in");
        assert_eq!(
            request_url(Some(&base), None, "/hooks/x", ""),
            "https://example.com/in/hooks/x"
        );
    }

    #[test]
    fn without_public_url_the_host_header_names_the_origin() {
        assert_eq!(
            request_url(None, Some("hooks.example.com:8080"), "/hooks/x/y", "q=1"),
            "http://hooks.example.com:8080/hooks/x/y?q=1"
        );
    }

    #[test]
    fn a_host_header_that_is_not_an_authority_cannot_reshape_the_url() {
        for host in ["evil.example/hooks/x?", "user@evil.example", "a b", "a#b"] {
            assert_eq!(
                request_url(None, Some(host), "/hooks/x", ""),
                "http:///hooks/x",
                "{host}"
            );
        }
        assert_eq!(request_url(None, None, "/hooks/x", ""), "http:///hooks/x");
    }

    #[test]
    fn public_url_refuses_what_is_not_an_http_origin() {
        for bad in [
            "hooks.example.com",
            "ftp://hooks.example.com",
            "https://",
            "https://user:pw@hooks.example.com",
            "https://hooks.example.com/?a=1",
            "https://hooks.example.com/#x",
            "https://hooks.example.com/a b",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(PublicUrl::parse("http://127.0.0.1:8080").is_ok());
    }
}
