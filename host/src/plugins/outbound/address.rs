//! Which IP addresses are public: the only ones a plugin reaches through an
//! allowlisted host *name*. Every other address (the host itself, its networks,
//! its cloud's metadata service, ranges that route nowhere useful) is refused unless
//! an allowlist entry names it literally (see `allowlist`).
//!
//! Written here rather than taken from a crate: std's `is_global` is unstable, and
//! the crates that backport it (`ip_rfc`, `ip_network`) are unmaintained since
//! 2020/2021 and treat IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as global, which is the
//! one form an attacker would use to get around a check like this one. Ranges are
//! IANA's IPv4 and IPv6 special-purpose registries, plus the cloud metadata
//! addresses (one of which, Azure's 168.63.129.16, is otherwise public).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// A cloud instance's metadata or control-plane endpoint (credentials live there).
    Metadata,
    /// `0.0.0.0/8` and `::`: Linux connects them to the host itself.
    Unspecified,
    Loopback,
    /// RFC 1918, IPv6 unique local (`fc00::/7`) and deprecated site-local (`fec0::/10`).
    Private,
    /// Carrier-grade NAT, `100.64.0.0/10` (RFC 6598): another operator's private network.
    SharedAddressSpace,
    LinkLocal,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    /// Reserved, deprecated or protocol-specific ranges that no public service uses:
    /// `240.0.0.0/4`, `192.0.0.0/24`, `192.88.99.0/24`, IPv4-compatible IPv6 (`::/96`),
    /// `100::/64`, `2001::/23` (Teredo and other IETF assignments), `64:ff9b:1::/48`.
    Reserved,
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restriction::Metadata => "cloud metadata",
            Restriction::Unspecified => "unspecified",
            Restriction::Loopback => "loopback",
            Restriction::Private => "private",
            Restriction::SharedAddressSpace => "shared address space (CGNAT)",
            Restriction::LinkLocal => "link-local",
            Restriction::Multicast => "multicast",
            Restriction::Broadcast => "broadcast",
            Restriction::Documentation => "documentation",
            Restriction::Benchmarking => "benchmarking",
            Restriction::Reserved => "reserved",
        })
    }
}

/// Cloud metadata endpoints: AWS, GCP, Azure, Oracle, DigitalOcean and others
/// (169.254.169.254), ECS task metadata (169.254.170.2), EKS pod identity
/// (169.254.170.23), Azure's WireServer (168.63.129.16, a public address), Alibaba
/// (100.100.100.200), Tencent (169.254.0.23).
const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(169, 254, 0, 23),
];

/// AWS's IPv6 metadata endpoints (instance metadata, EKS pod identity).
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
];

/// `None` for a public address; otherwise why it is not one.
pub fn restriction(ip: IpAddr) -> Option<Restriction> {
    match ip {
        IpAddr::V4(ip) => v4_restriction(ip),
        IpAddr::V6(ip) => v6_restriction(ip),
    }
}

fn v4_restriction(ip: Ipv4Addr) -> Option<Restriction> {
    let [a, b, c, _] = ip.octets();
    let restriction = if METADATA_V4.contains(&ip) {
        Restriction::Metadata
    } else if a == 0 {
        Restriction::Unspecified
    } else if ip.is_loopback() {
        Restriction::Loopback
    } else if ip.is_private() {
        Restriction::Private
    } else if a == 100 && (b & 0xc0) == 64 {
        Restriction::SharedAddressSpace
    } else if ip.is_link_local() {
        Restriction::LinkLocal
    } else if ip.is_broadcast() {
        Restriction::Broadcast
    } else if ip.is_multicast() {
        Restriction::Multicast
    } else if ip.is_documentation() {
        Restriction::Documentation
    } else if a == 198 && (b & 0xfe) == 18 {
        Restriction::Benchmarking
    } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 192 && b == 88 && c == 99) {
        Restriction::Reserved
    } else {
        return None;
    };
    Some(restriction)
}

fn v6_restriction(ip: Ipv6Addr) -> Option<Restriction> {
    // Forms that carry an IPv4 address and reach it: judged as that address.
    if let Some(v4) = embedded_v4(ip) {
        return v4_restriction(v4);
    }
    let s = ip.segments();
    let restriction = if METADATA_V6.contains(&ip) {
        Restriction::Metadata
    } else if ip.is_unspecified() {
        Restriction::Unspecified
    } else if ip.is_loopback() {
        Restriction::Loopback
    } else if s[..6] == [0; 6] {
        // IPv4-compatible (`::a.b.c.d`), deprecated by RFC 4291: nothing public uses
        // it, and some stacks still route it to the IPv4 address.
        Restriction::Reserved
    } else if ip.is_unique_local() || (s[0] & 0xffc0) == 0xfec0 {
        Restriction::Private
    } else if ip.is_unicast_link_local() {
        Restriction::LinkLocal
    } else if ip.is_multicast() {
        Restriction::Multicast
    } else if (s[0] == 0x2001 && s[1] == 0xdb8) || (s[0] == 0x3fff && s[1] < 0x1000) {
        Restriction::Documentation
    } else if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
        Restriction::Benchmarking
    } else if (s[0] == 0x2001 && s[1] < 0x200)
        || s[..4] == [0x100, 0, 0, 0]
        || s[..3] == [0x64, 0xff9b, 1]
    {
        Restriction::Reserved
    } else {
        return None;
    };
    Some(restriction)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), NAT64 well-known
/// prefix (`64:ff9b::a.b.c.d`, RFC 6052) or 6to4 (`2002:aabb:ccdd::/48`, RFC 3056)
/// address: connecting to one of these reaches that IPv4 address (directly, or
/// through a translator or relay), so it is only as public as the IPv4 address is.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let pair = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(pair(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(pair(s[1], s[2]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Option<Restriction> {
        restriction(text.parse().unwrap())
    }

    #[test]
    fn public_addresses_have_no_restriction() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "140.82.112.3",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            // NAT64 and 6to4 forms of a public address reach that public address.
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(of(public), None, "{public}");
        }
    }

    #[test]
    fn addresses_that_lead_into_the_host_or_its_networks_are_restricted() {
        use Restriction::*;
        for (address, expected) in [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.254", Private),
            ("192.168.1.1", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fec0::1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.254", SharedAddressSpace),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.1", Documentation),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("2001:2::1", Benchmarking),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("192.88.99.1", Reserved),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("64:ff9b:1::1", Reserved),
        ] {
            assert_eq!(of(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn cloud_metadata_addresses_are_restricted_even_the_public_one() {
        for metadata in [
            "169.254.169.254",
            "169.254.170.2",
            "168.63.129.16",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(of(metadata), Some(Restriction::Metadata), "{metadata}");
        }
        // Its neighbours are ordinary public addresses.
        assert_eq!(of("168.63.129.17"), None);
    }

    #[test]
    fn ipv6_forms_that_carry_an_ipv4_address_are_judged_by_it() {
        use Restriction::*;
        for (address, expected) in [
            // IPv4-mapped, in both notations.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:192.168.0.1", Private),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:100.64.0.1", SharedAddressSpace),
            ("::ffff:a9fe:a9fe", Metadata),
            // IPv4-compatible (deprecated): refused whatever it carries.
            ("::127.0.0.1", Reserved),
            ("::8.8.8.8", Reserved),
            // NAT64 well-known prefix and 6to4.
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("2002:a00:1::", Private),
            ("2002:7f00:1::1", Loopback),
        ] {
            assert_eq!(of(address), Some(expected), "{address}");
        }
    }
}
