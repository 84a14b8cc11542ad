//! Where an admin request came from, as far as the request itself can tell: the
//! page that sent it (`Sec-Fetch-Site`, `Origin`), the name it was addressed to
//! (`Host`), and the proxies it passed. `admin::auth` decides with these; nothing
//! here refuses anything.
//!
//! What a browser page can and cannot forge matters here: a page can add neither
//! `Sec-Fetch-Site` nor `Origin` nor `Host` to its requests (the browser sets them),
//! and can add any other header only to requests to its own origin (elsewhere a
//! custom header needs a CORS preflight that hookhost never grants). A DNS-rebinding
//! page is the exception: it is on "its own origin" (`attacker.example:8080` now
//! resolving to 127.0.0.1), so its requests look same-origin, and only the `Host`
//! they carry gives it away.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, Uri, Version};

/// Whether a browser sent the request from a page of another origin. The browser's
/// own `Sec-Fetch-Site` decides when present (every current browser sends it, and
/// neither page scripts nor proxies rewrite it); otherwise, and for `none` (a typed
/// URL or bookmark), an `Origin` header must name this host. A request with
/// neither came from a program that is not a browser, which is not cross-site.
///
/// `Sec-Fetch-Site: same-origin` wins over `Origin` on purpose: a proxy that
/// rewrites `Host` (nginx's default) would otherwise make the dashboard's own
/// requests look cross-site. Pages from plugins are sandboxed (`ingress::containment`),
/// so their origin is opaque and their requests are `cross-site` to the browser.
pub fn is_cross_site(headers: &HeaderMap, uri: &Uri) -> bool {
    match headers.get("sec-fetch-site").map(|site| site.as_bytes()) {
        Some(b"same-origin") => false,
        Some(b"none") | None => headers.get(header::ORIGIN).is_some_and(|origin| {
            !origin
                .to_str()
                .is_ok_and(|o| is_own_origin(o, headers, uri))
        }),
        Some(_) => true,
    }
}

/// Whether `origin` (`scheme://host[:port]`; `null` never is) names the host this
/// request was addressed to: its `Host`, its target's authority, or a host a proxy
/// says the client asked for (`X-Forwarded-Host`, `Forwarded: host=`; a page
/// cannot add those to a cross-origin request, see the module docs).
fn is_own_origin(origin: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Some((host, port)) = split_host_port(authority) else {
        return false;
    };
    let port = port.unwrap_or(default_port);
    addressed_names(headers, uri)
        .chain(forwarded_hosts(headers))
        .filter_map(|name| split_host_port(&name).map(|(h, p)| (h.to_string(), p)))
        .any(|(own_host, own_port)| {
            own_host.eq_ignore_ascii_case(host) && own_port.unwrap_or(default_port) == port
        })
}

/// Whether every name the request was addressed to (its `Host`, and the authority
/// of an HTTP/2 or absolute-form target) is a loopback name, `localhost`,
/// `*.localhost` (RFC 6761: resolved to loopback by the browser itself, and nobody
/// can register one), a 127.0.0.0/8 address or `[::1]`, on `port` when given (no
/// port in the name means 80). `0.0.0.0` is not loopback: browsers that reach the
/// machine through it are exactly the pages this check keeps out. A request that
/// names no host, or several `Host`s, is not.
pub fn is_addressed_to_loopback(headers: &HeaderMap, uri: &Uri, port: Option<u16>) -> bool {
    if headers.get_all(header::HOST).iter().count() > 1 {
        return false;
    }
    let mut names = addressed_names(headers, uri).peekable();
    names.peek().is_some()
        && names.all(|name| {
            split_host_port(&name).is_some_and(|(host, named_port)| {
                is_loopback_name(host) && port.is_none_or(|port| named_port.unwrap_or(80) == port)
            })
        })
}

/// Headers that proxies add, and that no browser or the hookhost CLI sends.
const PROXY_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "via",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
];

/// The first sign that a proxy forwarded the request, to name in the log: one of
/// `PROXY_HEADERS`, or HTTP/1.0, which no browser or the CLI speaks but nginx does
/// to an upstream by default (while it adds no header and rewrites `Host` to the
/// upstream's loopback address). A forwarder that leaves neither trace (a plain TCP
/// tunnel) cannot be told from a local client: the README says to set a token
/// whenever anything forwards to hookhost.
pub fn proxy_evidence(headers: &HeaderMap, version: Version) -> Option<&'static str> {
    PROXY_HEADERS
        .iter()
        .copied()
        .find(|name| headers.contains_key(*name))
        .or(matches!(version, Version::HTTP_09 | Version::HTTP_10).then_some("HTTP/1.0"))
}

/// The `Host` header and the target's authority, whichever the request has.
fn addressed_names<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::HOST)
        .iter()
        .map(|host| host.to_str().unwrap_or("").to_string())
        .chain(
            uri.authority()
                .map(|authority| authority.as_str().to_string()),
        )
}

/// The hosts in `X-Forwarded-Host` and `Forwarded: host=`.
fn forwarded_hosts(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
    };
    let x_forwarded = values("x-forwarded-host").map(str::to_string);
    let forwarded = values("forwarded")
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string());
    x_forwarded.chain(forwarded)
}

/// `host[:port]` or `[v6]:port` into the host (without brackets) and the port;
/// `None` for anything else (userinfo, a bare IPv6 address, a bad port).
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, rest) = bracketed.split_once(']')?;
        match rest {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    // Unbracketed, the host cannot hold a ':' (split above); userinfo or a path
    // has no place in a Host.
    if host.is_empty() || host.contains(['@', '/']) {
        return None;
    }
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

fn is_loopback_name(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if host == "localhost"
        || host
            .strip_suffix(".localhost")
            .is_some_and(|sub| !sub.is_empty())
    {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::test_headers as headers;

    fn path() -> Uri {
        Uri::from_static("/api/events")
    }

    #[test]
    fn only_same_origin_browsers_may_change_things() {
        let cross = |pairs: &[(&'static str, &str)]| is_cross_site(&headers(pairs), &path());
        assert!(!cross(&[("sec-fetch-site", "same-origin")]));
        assert!(!cross(&[]), "not a browser");
        assert!(cross(&[("sec-fetch-site", "same-site")]));
        assert!(cross(&[("sec-fetch-site", "cross-site")]));

        // Without Sec-Fetch-Site, Origin must name this host.
        let host = ("host", "127.0.0.1:8080");
        assert!(!cross(&[host, ("origin", "http://127.0.0.1:8080")]));
        assert!(!cross(&[host, ("origin", "HTTP://127.0.0.1:8080")]));
        assert!(cross(&[host, ("origin", "http://evil.example")]));
        assert!(cross(&[host, ("origin", "http://127.0.0.1:8081")]));
        assert!(cross(&[host, ("origin", "null")]), "a sandboxed page");
        assert!(cross(&[
            host,
            ("sec-fetch-site", "none"),
            ("origin", "http://evil.example")
        ]));
        assert!(!cross(&[
            ("host", "localhost"),
            ("origin", "http://localhost")
        ]));
        assert!(!cross(&[("host", "[::1]:80"), ("origin", "http://[::1]")]));

        // Behind a proxy that rewrote Host, the host the client asked for counts.
        let proxied = ("host", "127.0.0.1:8080");
        let asked = ("x-forwarded-host", "hooks.example.com");
        assert!(!cross(&[
            proxied,
            asked,
            ("origin", "https://hooks.example.com")
        ]));
        let forwarded = (
            "forwarded",
            "for=1.2.3.4;host=\"hooks.example.com\";proto=https",
        );
        assert!(!cross(&[
            proxied,
            forwarded,
            ("origin", "https://hooks.example.com")
        ]));
        assert!(cross(&[proxied, asked, ("origin", "https://evil.example")]));
        // The browser's word wins over a Host a proxy rewrote.
        assert!(!cross(&[
            proxied,
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://hooks.example.com")
        ]));
    }

    #[test]
    fn only_loopback_names_on_the_listening_port_are_loopback() {
        let at = |host: &str, port: Option<u16>| {
            is_addressed_to_loopback(&headers(&[("host", host)]), &path(), port)
        };
        for host in [
            "127.0.0.1:8080",
            "127.1.2.3:8080",
            "localhost:8080",
            "LocalHost:8080",
            "dev.localhost:8080",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
        ] {
            assert!(at(host, Some(8080)), "{host}");
        }
        for host in [
            "attacker.example:8080",
            "localhost.attacker.example:8080",
            "127.0.0.1.nip.io:8080",
            "0.0.0.0:8080",
            "[::]:8080",
            ".localhost:8080",
            "localhost.:8080",
            "2130706433:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "127.0.0.1:http",
            "user@127.0.0.1:8080",
            "::1:8080",
            "",
        ] {
            assert!(!at(host, Some(8080)), "{host}");
        }
        assert!(at("localhost", Some(80)));
        assert!(at("localhost:1234", None), "no socket: any port");

        let two = headers(&[("host", "127.0.0.1:8080"), ("host", "evil.example")]);
        assert!(!is_addressed_to_loopback(&two, &path(), Some(8080)));
        assert!(!is_addressed_to_loopback(
            &HeaderMap::new(),
            &path(),
            Some(8080)
        ));
        // HTTP/2 carries the name in the target's authority.
        let h2 = Uri::from_static("http://localhost:8080/api/events");
        assert!(is_addressed_to_loopback(&HeaderMap::new(), &h2, Some(8080)));
        let rebound = Uri::from_static("http://attacker.example:8080/api/events");
        let host = headers(&[("host", "127.0.0.1:8080")]);
        assert!(!is_addressed_to_loopback(&host, &rebound, Some(8080)));
    }

    #[test]
    fn proxies_are_known_by_their_headers_or_by_http_1_0() {
        let evidence =
            |pairs: &[(&'static str, &str)]| proxy_evidence(&headers(pairs), Version::HTTP_11);
        assert_eq!(evidence(&[]), None);
        assert_eq!(
            evidence(&[("x-forwarded-for", "1.2.3.4")]),
            Some("x-forwarded-for")
        );
        assert_eq!(evidence(&[("forwarded", "for=1.2.3.4")]), Some("forwarded"));
        assert_eq!(evidence(&[("x-real-ip", "1.2.3.4")]), Some("x-real-ip"));
        assert_eq!(evidence(&[("via", "1.1 nginx")]), Some("via"));
        assert_eq!(
            proxy_evidence(&HeaderMap::new(), Version::HTTP_10),
            Some("HTTP/1.0")
        );
        assert_eq!(proxy_evidence(&HeaderMap::new(), Version::HTTP_2), None);
    }
}
