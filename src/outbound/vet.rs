//! Which addresses an outbound request may reach. Decided on the resolved IP
//! address (after DNS), never on the name, and the connection then goes to that
//! very address: a name that resolves to an internal address is refused, and a
//! second resolution (DNS rebinding) never happens.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` may not be reached, or `None` when it may. Loopback is refused unless
/// `allow_loopback` (a dev/test setting); everything else listed is always refused.
pub fn refusal(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            // An IPv4-mapped or -compatible address is judged as the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refusal_v4(v4, allow_loopback);
            }
            refusal_v6(v6, allow_loopback)
        }
    }
}

fn refusal_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() || a == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if ip.is_private() {
        Some("private (10/8, 172.16/12, 192.168/16)")
    } else if ip.is_link_local() {
        Some("link-local (169.254/16, cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space (CGNAT 100.64/10)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast, broadcast or reserved")
    } else if ip.is_documentation() || (a == 198 && (b & 0xfe) == 18) || (a == 192 && b == 0) {
        Some("documentation, benchmarking or protocol assignment")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        Some("unspecified (::)")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("unique local (fc00::/7)")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if ip.is_multicast() {
        Some("multicast (ff00::/8)")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation (2001:db8::/32)")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address that could be internal.
        Some("NAT64 (64:ff9b::/96)")
    } else if first == 0x2002 {
        Some("6to4 (2002::/16)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str, allow_loopback: bool) -> bool {
        refusal(s.parse().unwrap(), allow_loopback).is_some()
    }

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(refused(ip, false), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass_and_loopback_only_when_allowed() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert!(!refused(ip, false), "{ip} must pass");
        }
        assert!(!refused("127.0.0.1", true));
        assert!(!refused("::1", true));
        assert!(refused("10.0.0.1", true), "the allowance is loopback only");
        assert!(refused("169.254.169.254", true));
    }
}
