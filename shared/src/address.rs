//! Source addresses as API Gateway sends them, read one way everywhere.
//!
//! The authorizer compares a request's source address with a key's CIDR
//! allowlist and counts it in the day's usage. API Gateway's own fields do
//! not always hold a bare address: HTTP APIs have been reported to send
//! `requestContext.http.sourceIp` with the client's port
//! (`"203.0.113.10:39870"`, `"[2001:db8::1]:12345"`). Every payload format
//! reads its address through [`parse_source_ip`], so the allowlist and the
//! usage counters see the same address whatever form it came in.
//!
//! Forms accepted (RFC 4291 section 2.2 and RFC 5952 for IPv6, RFC 3986
//! section 3.2.2 for brackets and ports, RFC 6874 for zone identifiers):
//! - a dotted-decimal IPv4 address, optionally with `:port`;
//! - an IPv6 address in any of its textual forms (full, `::`-compressed,
//!   upper or lower case, with an embedded IPv4 tail), optionally in
//!   brackets, optionally with `:port` after the brackets, optionally with a
//!   `%zone` suffix (dropped: a zone is local to the sender's host);
//! - an IPv4-mapped IPv6 address (`::ffff:203.0.113.10`), read as the IPv4
//!   address it maps, so an IPv4 allowlist entry covers it.
//!
//! Anything else (the legacy `inet_aton` forms such as `0xcb.0.113.10`,
//! `203.0.29450` or octal `0313.0.0161.012`, which mean different addresses
//! to different parsers, host names, lists) is no address: a key with an
//! allowlist is then denied `ip_denied`, failing closed.

use std::net::{IpAddr, Ipv6Addr};

/// The address in `text`, in its canonical form; `None` when `text` is not
/// one of the accepted forms above.
pub fn parse_source_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let host = if let Some(rest) = text.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ipv6(inside).map(|ip| IpAddr::V6(ip).to_canonical());
    } else if let Some((host, port)) = text.rsplit_once(':') {
        // `v4:port` (an IPv6 address without brackets has more than one
        // colon and was either parsed above or is read with its zone below).
        if host.contains(':') {
            return ipv6(text).map(|ip| IpAddr::V6(ip).to_canonical());
        }
        if !is_port(port) {
            return None;
        }
        host
    } else {
        return None;
    };
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// An IPv6 address, with an optional `%zone` suffix dropped.
fn ipv6(text: &str) -> Option<Ipv6Addr> {
    let address = match text.split_once('%') {
        Some((address, zone)) if !zone.is_empty() => address,
        Some(_) => return None,
        None => text,
    };
    address.parse().ok()
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_form_of_an_ipv4_address_reads_the_same() {
        for form in [
            "203.0.113.10",
            " 203.0.113.10 ",
            "203.0.113.10:39870",
            "203.0.113.10:0",
            "::ffff:203.0.113.10",
            "::FFFF:cb00:710a",
            "[::ffff:203.0.113.10]:443",
            "0:0:0:0:0:ffff:203.0.113.10",
        ] {
            assert_eq!(parse_source_ip(form), Some(ip("203.0.113.10")), "{form}");
        }
    }

    #[test]
    fn every_form_of_an_ipv6_address_reads_the_same() {
        for form in [
            "2001:db8::1",
            "2001:DB8::1",
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "[2001:db8::1]",
            "[2001:db8::1]:12345",
            "2001:db8::1%eth0",
            "[2001:db8::1%25eth0]:8080",
        ] {
            assert_eq!(parse_source_ip(form), Some(ip("2001:db8::1")), "{form}");
        }
    }

    #[test]
    fn ambiguous_or_broken_forms_are_no_address() {
        for form in [
            "",
            "203.0.113",
            "0xcb.0.113.10",
            "203.0.29450",
            "3405803786",
            "0313.0.0161.012",
            "203.0.113.10:",
            "203.0.113.10:99999",
            "203.0.113.10:80:80",
            "[203.0.113.10]:80",
            "[2001:db8::1]x",
            "[2001:db8::1]:",
            "2001:db8::1%",
            "example.com",
            "example.com:80",
            "203.0.113.10, 198.51.100.1",
        ] {
            assert_eq!(parse_source_ip(form), None, "{form:?}");
        }
    }
}
