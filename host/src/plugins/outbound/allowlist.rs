//! `[plugins.<id>] allowed_hosts`: its entries, and which requests and which
//! addresses they allow.
//!
//! An entry is a host name or an IP address, with or without a port:
//! - without a port (`api.github.com`, `203.0.113.7`) it allows https on port 443
//!   and nothing else;
//! - with one (`api.example.com:8443`, `127.0.0.1:9000`, `[::1]:9000`) it allows
//!   that port, over http or https: naming the port is how plain http is asked
//!   for, so `http://example.com/` needs `example.com:80`.
//!
//! Names match names (ignoring ASCII case) and addresses match addresses; a name
//! is never compared with what it resolves to. A request to an allowed name then
//! goes only to the public addresses the name resolves to: an address that is not
//! public (loopback, private, link-local, metadata, ...: see `address`) is
//! connected to only when an entry names that address and port itself.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use anyhow::{bail, Context};

use super::address::{self, Restriction};

/// A host as a request or an entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lowercased.
    Name(String),
    /// An IP address; an IPv4-mapped IPv6 address is kept as its IPv4 address.
    Address(IpAddr),
}

impl Host {
    /// `host` as it appears in a URI or an entry (IPv6 in brackets or not).
    fn parse(host: &str) -> Self {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Address(ip.to_canonical()),
            Err(_) => Host::Name(bare.to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Address(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// One `allowed_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: Host,
    /// `None`: https on 443 only.
    port: Option<u16>,
}

impl AllowedHost {
    fn allows(&self, destination: &Destination) -> bool {
        self.host == destination.host
            && match self.port {
                Some(port) => port == destination.port,
                None => destination.https && destination.port == 443,
            }
    }
}

impl FromStr for AllowedHost {
    type Err = anyhow::Error;

    fn from_str(entry: &str) -> anyhow::Result<Self> {
        const FORM: &str = "write a host (`api.github.com`, https on port 443 only) or \
                            host:port (`api.example.com:8443`, `127.0.0.1:9000`, `[::1]:9000`)";
        if entry.contains("://") || entry.contains('/') {
            bail!("{entry:?} is not a host: {FORM}");
        }
        // A bare IPv6 address has colons of its own.
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Ok(AllowedHost {
                host: Host::Address(ip.to_canonical()),
                port: None,
            });
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .with_context(|| format!("{entry:?} has no valid port (1-65535): {FORM}"))?;
                (host, Some(port))
            }
            _ => (entry, None),
        };
        let host = Host::parse(host);
        if let Host::Name(name) = &host {
            let valid = name.split('.').all(|label| !label.is_empty())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if !valid {
                bail!("{entry:?} is not a host name or IP address (no wildcards): {FORM}");
            }
        }
        Ok(AllowedHost { host, port })
    }
}

/// Where a request asks to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub https: bool,
    pub host: Host,
    pub port: u16,
}

impl Destination {
    /// `None` when the URI has no host or a scheme other than http and https.
    pub fn of(uri: &http::Uri) -> Option<Self> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return None,
        };
        let host = Host::parse(uri.host()?);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Destination { https, host, port })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Whether some entry allows `destination`; checked before any name is looked up.
pub fn allows(entries: &[AllowedHost], destination: &Destination) -> bool {
    entries.iter().any(|entry| entry.allows(destination))
}

/// Whether the refusal of plain http to `destination` is only for want of a port
/// in an entry that names its host: what the operator most likely meant to allow.
pub fn needs_port_for_http(entries: &[AllowedHost], destination: &Destination) -> bool {
    !destination.https
        && entries
            .iter()
            .any(|entry| entry.host == destination.host && entry.port.is_none())
}

/// What a request to an allowed `destination` may connect to, of the addresses
/// its host resolved to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Screened {
    /// Public addresses, and others that an entry names; in the resolver's order.
    pub permitted: Vec<SocketAddr>,
    /// Addresses that are not public and that no entry names, with why.
    pub refused: Vec<(SocketAddr, Restriction)>,
}

/// Sorts `resolved` into what may and may not be connected to: the check is on the
/// address that will be connected to, not on the name that led to it.
pub fn screen(
    entries: &[AllowedHost],
    destination: &Destination,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Screened {
    let mut screened = Screened::default();
    for address in resolved {
        let address = SocketAddr::new(address.ip().to_canonical(), address.port());
        if screened.permitted.contains(&address)
            || screened.refused.iter().any(|(a, _)| *a == address)
        {
            continue;
        }
        match address::restriction(address.ip()) {
            None => screened.permitted.push(address),
            Some(restriction) => {
                let literal = Destination {
                    https: destination.https,
                    host: Host::Address(address.ip()),
                    port: address.port(),
                };
                if allows(entries, &literal) {
                    screened.permitted.push(address);
                } else {
                    screened.refused.push((address, restriction));
                }
            }
        }
    }
    screened
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(written: &[&str]) -> Vec<AllowedHost> {
        written.iter().map(|e| e.parse().unwrap()).collect()
    }

    fn permits(written: &[&str], uri: &str) -> bool {
        let destination = Destination::of(&uri.parse().unwrap()).unwrap();
        allows(&entries(written), &destination)
    }

    fn socket(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!permits(&[], "https://api.github.com/repos"));
    }

    #[test]
    fn a_bare_host_allows_https_on_443_only() {
        assert!(permits(&["api.github.com"], "https://api.github.com/repos"));
        assert!(permits(&["API.github.com"], "https://api.GitHub.com:443/"));
        assert!(!permits(&["example.com"], "http://example.com/"));
        assert!(!permits(&["example.com"], "http://example.com:443/"));
        assert!(!permits(
            &["api.github.com"],
            "https://api.github.com:8443/"
        ));
        assert!(!permits(
            &["api.github.com"],
            "https://evil.com/?api.github.com"
        ));
        assert!(!permits(&["github.com"], "https://api.github.com/"));
        assert!(!permits(
            &["api.github.com"],
            "https://api.github.com.evil.com/"
        ));
        assert!(!permits(&["api.github.com"], "https://user@evil.com/"));
        assert!(permits(&["203.0.113.7"], "https://203.0.113.7/"));
        assert!(!permits(&["203.0.113.7"], "http://203.0.113.7/"));
    }

    #[test]
    fn a_host_with_a_port_allows_that_port_over_http_or_https() {
        assert!(permits(&["example.com:80"], "http://example.com/"));
        assert!(!permits(&["example.com:80"], "https://example.com/"));
        assert!(permits(&["127.0.0.1:9000"], "http://127.0.0.1:9000/items"));
        assert!(permits(&["127.0.0.1:9000"], "https://127.0.0.1:9000/items"));
        assert!(!permits(&["127.0.0.1:9000"], "http://127.0.0.1:9001/items"));
        assert!(!permits(&["127.0.0.1:9000"], "http://127.0.0.1/items"));
        assert!(permits(&["[::1]:9000"], "http://[::1]:9000/"));
        assert!(!permits(&["[::1]:9000"], "http://[::2]:9000/"));
    }

    #[test]
    fn names_and_addresses_never_match_each_other() {
        assert!(!permits(&["127.0.0.1:9000"], "http://localhost:9000/"));
        assert!(!permits(&["localhost:9000"], "http://127.0.0.1:9000/"));
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert!(permits(
            &["127.0.0.1:9000"],
            "http://[::ffff:127.0.0.1]:9000/"
        ));
    }

    #[test]
    fn only_http_and_https_are_allowed() {
        let uri = "ftp://example.com:21/".parse().unwrap();
        assert_eq!(Destination::of(&uri), None);
    }

    #[test]
    fn entries_are_parsed_or_refused_with_the_form_to_use() {
        assert_eq!(
            entries(&[
                "Api.GitHub.com",
                "h:8443",
                "10.0.0.5",
                "::1",
                "[::1]",
                "[::1]:80"
            ]),
            vec![
                AllowedHost {
                    host: Host::Name("api.github.com".into()),
                    port: None
                },
                AllowedHost {
                    host: Host::Name("h".into()),
                    port: Some(8443)
                },
                AllowedHost {
                    host: Host::Address("10.0.0.5".parse().unwrap()),
                    port: None
                },
                AllowedHost {
                    host: Host::Address("::1".parse().unwrap()),
                    port: None
                },
                AllowedHost {
                    host: Host::Address("::1".parse().unwrap()),
                    port: None
                },
                AllowedHost {
                    host: Host::Address("::1".parse().unwrap()),
                    port: Some(80)
                },
            ]
        );
        for bad in [
            "",
            "https://api.github.com",
            "api.github.com/v3",
            "*.github.com",
            "api.github.com:",
            "api.github.com:0",
            "api.github.com:https",
            "api.github.com:99999",
            "a..b",
            "two words",
            "[::1",
        ] {
            let error = bad.parse::<AllowedHost>().unwrap_err().to_string();
            assert!(error.contains("host:port"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn an_allowed_name_reaches_only_its_public_addresses() {
        let allowed = entries(&["api.example.com", "feeds.example.com:8080"]);
        let https = Destination::of(&"https://api.example.com/".parse().unwrap()).unwrap();
        let screened = screen(
            &allowed,
            &https,
            [
                socket("93.184.216.34:443"),
                socket("127.0.0.1:443"),
                socket("[::1]:443"),
                socket("169.254.169.254:443"),
                socket("[::ffff:169.254.169.254]:443"),
                socket("10.1.2.3:443"),
                socket("[2606:2800:220:1::248]:443"),
                socket("93.184.216.34:443"),
            ],
        );
        assert_eq!(
            screened.permitted,
            vec![
                socket("93.184.216.34:443"),
                socket("[2606:2800:220:1::248]:443")
            ]
        );
        assert_eq!(
            screened.refused,
            vec![
                (socket("127.0.0.1:443"), Restriction::Loopback),
                (socket("[::1]:443"), Restriction::Loopback),
                (socket("169.254.169.254:443"), Restriction::Metadata),
                (socket("10.1.2.3:443"), Restriction::Private),
            ]
        );

        // A name that resolves only to restricted addresses is left with nothing.
        let http = Destination::of(&"http://feeds.example.com:8080/".parse().unwrap()).unwrap();
        let screened = screen(&allowed, &http, [socket("127.0.0.1:8080")]);
        assert!(screened.permitted.is_empty(), "{screened:?}");
    }

    #[test]
    fn an_address_that_is_not_public_is_reached_when_an_entry_names_it() {
        let allowed = entries(&["internal.example:8080", "10.0.0.5:8080", "10.0.0.6"]);
        let http = Destination::of(&"http://internal.example:8080/".parse().unwrap()).unwrap();
        let screened = screen(
            &allowed,
            &http,
            [
                socket("10.0.0.5:8080"),
                socket("10.0.0.6:8080"),
                socket("[::ffff:10.0.0.5]:8080"),
            ],
        );
        assert_eq!(screened.permitted, vec![socket("10.0.0.5:8080")]);
        // 10.0.0.6 is named for https on 443 only.
        assert_eq!(
            screened.refused,
            vec![(socket("10.0.0.6:8080"), Restriction::Private)]
        );

        // An address literal that an entry names is itself the entry.
        let literal = Destination::of(&"http://10.0.0.5:8080/".parse().unwrap()).unwrap();
        assert!(allows(&allowed, &literal));
        let screened = screen(&allowed, &literal, [socket("10.0.0.5:8080")]);
        assert_eq!(screened.permitted, vec![socket("10.0.0.5:8080")]);
    }

    #[test]
    fn plain_http_to_a_bare_entry_is_told_apart_for_the_log() {
        let allowed = entries(&["example.com"]);
        let http = Destination::of(&"http://example.com/".parse().unwrap()).unwrap();
        assert!(needs_port_for_http(&allowed, &http));
        let other = Destination::of(&"http://example.org/".parse().unwrap()).unwrap();
        assert!(!needs_port_for_http(&allowed, &other));
    }
}
