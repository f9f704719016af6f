//! Which addresses the proxy may connect to when it fetches a URL a client chose (a Client ID Metadata Document):
//! public unicast only. The rule is applied to every address a name resolves to, and the connection goes to the
//! checked address (see [`safe_fetch`](super::safe_fetch)), so neither a public name pointing inside nor DNS
//! rebinding reaches a private service (OWASP SSRF prevention; draft-ietf-oauth-client-id-metadata-document §6.5
//! "Server-Side Request Forgery").
//!
//! Refused, IPv4 (RFC 6890 special-purpose registry): `0.0.0.0/8` ("this network", unspecified), `10/8`,
//! `172.16/12`, `192.168/16` (RFC 1918 private), `100.64/10` (RFC 6598 carrier-grade NAT), `127/8` (loopback),
//! `169.254/16` (link-local, cloud metadata services), `192.0.0/24` (IETF protocol assignments), `192.0.2/24`,
//! `198.51.100/24`, `203.0.113/24` (documentation), `198.18/15` (benchmarking), `192.88.99/24` (6to4 relay anycast),
//! `224/4` (multicast), `240/4` (reserved, broadcast).
//!
//! IPv6: only global unicast (`2000::/3`, RFC 4291 §2.4) minus `2001::/23` (IETF protocol assignments, Teredo among
//! them), `2001:db8::/32` and `3fff::/20` (documentation), `2002::/16` (6to4, which embeds an IPv4 address); besides
//! that, an IPv4-mapped address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) and the NAT64 well-known prefix
//! (`64:ff9b::a.b.c.d`, RFC 6052) are judged by the IPv4 address inside. Everything else — unspecified `::`,
//! loopback `::1`, IPv4-compatible `::a.b.c.d` (deprecated), unique-local `fc00::/7`, link-local `fe80::/10`,
//! site-local `fec0::/10`, multicast `ff00::/8`, discard `100::/64`, local NAT64 `64:ff9b:1::/48` — is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address the proxy may connect to on a client's behalf.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const REFUSED: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    !REFUSED.iter().any(|(net, p)| in_v4(ip, *net, *p))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let [.., a, b, c, d] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped and the NAT64 well-known prefix carry an IPv4 destination: judge that.
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return is_public_v4(embedded_v4(ip));
    }
    const REFUSED_IN_GLOBAL: &[([u16; 8], u32)] = &[
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    ];
    in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3)
        && !REFUSED_IN_GLOBAL.iter().any(|(net, p)| in_v6(ip, *net, *p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        #[rustfmt::skip]
        let table: &[(&str, bool, &str)] = &[
            // public
            ("8.8.8.8", true, "public v4"),
            ("1.1.1.1", true, "public v4"),
            ("140.82.112.3", true, "github.com"),
            ("172.15.255.255", true, "just below 172.16/12"),
            ("172.32.0.0", true, "just above 172.16/12"),
            ("100.63.255.255", true, "just below CGNAT"),
            ("100.128.0.0", true, "just above CGNAT"),
            ("223.255.255.255", true, "just below multicast"),
            ("2606:4700:4700::1111", true, "public v6"),
            ("2a00:1450:4001:81c::200e", true, "public v6"),
            ("::ffff:8.8.8.8", true, "IPv4-mapped public"),
            ("64:ff9b::8.8.8.8", true, "NAT64 of a public address"),
            // loopback
            ("127.0.0.1", false, "loopback"),
            ("127.255.255.254", false, "loopback /8"),
            ("::1", false, "v6 loopback"),
            ("::ffff:127.0.0.1", false, "IPv4-mapped loopback"),
            ("::127.0.0.1", false, "IPv4-compatible loopback"),
            ("::8.8.8.8", false, "IPv4-compatible (deprecated) of anything"),
            ("64:ff9b::127.0.0.1", false, "NAT64 of loopback"),
            ("64:ff9b::a9fe:a9fe", false, "NAT64 of the metadata service"),
            ("2002:7f00:1::", false, "6to4 of loopback"),
            // private
            ("10.0.0.1", false, "RFC 1918"),
            ("10.255.255.255", false, "RFC 1918"),
            ("172.16.0.1", false, "RFC 1918"),
            ("172.31.255.255", false, "RFC 1918"),
            ("192.168.1.1", false, "RFC 1918"),
            ("::ffff:10.0.0.1", false, "IPv4-mapped private"),
            ("::ffff:192.168.0.1", false, "IPv4-mapped private"),
            // link-local
            ("169.254.169.254", false, "cloud metadata service"),
            ("169.254.0.1", false, "link-local"),
            ("fe80::1", false, "v6 link-local"),
            ("febf::1", false, "v6 link-local upper end"),
            ("::ffff:169.254.169.254", false, "IPv4-mapped metadata service"),
            // unique-local, site-local
            ("fc00::1", false, "unique local"),
            ("fd12:3456:789a::1", false, "unique local"),
            ("fd00:ec2::254", false, "EC2 IMDS over IPv6"),
            ("fec0::1", false, "site-local (deprecated)"),
            // CGNAT
            ("100.64.0.1", false, "CGNAT"),
            ("100.127.255.254", false, "CGNAT"),
            // multicast, broadcast, reserved
            ("224.0.0.1", false, "multicast"),
            ("239.255.255.250", false, "multicast"),
            ("ff02::1", false, "v6 multicast"),
            ("ff0e::1", false, "v6 global multicast"),
            ("255.255.255.255", false, "broadcast"),
            ("240.0.0.1", false, "reserved"),
            // unspecified, this network
            ("0.0.0.0", false, "unspecified"),
            ("0.1.2.3", false, "this network"),
            ("::", false, "v6 unspecified"),
            ("::ffff:0.0.0.0", false, "IPv4-mapped unspecified"),
            // special purpose
            ("192.0.0.8", false, "IETF protocol assignments"),
            ("192.0.2.1", false, "documentation"),
            ("198.51.100.7", false, "documentation"),
            ("203.0.113.9", false, "documentation"),
            ("198.18.0.1", false, "benchmarking"),
            ("198.19.255.255", false, "benchmarking"),
            ("192.88.99.1", false, "6to4 relay anycast"),
            ("2001:db8::1", false, "v6 documentation"),
            ("3fff::1", false, "v6 documentation (RFC 9637)"),
            ("2001::1", false, "Teredo"),
            ("100::1", false, "discard-only"),
            ("64:ff9b:1::1", false, "local-use NAT64"),
            ("4000::1", false, "outside global unicast"),
        ];
        for (addr, public, why) in table {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(is_public(ip), *public, "{addr} ({why})");
        }
    }
}
