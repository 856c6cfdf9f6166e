//! The client's IP address, from the socket peer unless that peer is a trusted proxy.
//!
//! Guards against forged client addresses (attacks.md §3 A3, §8): rate-limit buckets, session
//! records and logs are keyed on this address, so a client that could choose it could reset
//! its own limits or frame someone else. `X-Forwarded-For` and `Forwarded` are therefore read
//! only when the TCP peer is in `AERIE_TRUSTED_PROXIES`, and then from the right: each trusted
//! proxy appends the address it saw, so the right-most hop that is not one of our proxies is the
//! last address a party we trust vouched for. Everything to its left was written by the client
//! and is ignored (taking the left-most hop is the classic bug). The look-alike headers
//! (`X-Real-IP`, `True-Client-IP`, `CF-Connecting-IP`, ...) are never read.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

pub use crate::request_context::ClientIp;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Resolves the client address once, for every later layer and extractor (the outermost
/// layer calls it, `crate::app`). A request without a socket peer (an in-process test) gets no
/// [`ClientIp`].
pub fn attach(request: &mut Request, trusted: &[IpNet]) {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let ip = client_ip(peer, request.headers(), trusted);
        request.extensions_mut().insert(ClientIp(ip));
    }
}

/// The client address for a request that arrived from `peer`.
///
/// Walks the forwarding chain from the right, skipping our own proxies; the first hop that is
/// not trusted is the client. A hop that does not parse ends the walk at the last address we
/// could vouch for, so garbage cannot mint new addresses. When every hop is trusted, the
/// left-most one is the client (an internal caller going through our proxy).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop.as_deref().and_then(parse_hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            return ip;
        }
    }
    client
}

pub fn is_trusted(ip: IpAddr, networks: &[IpNet]) -> bool {
    let ip = canonical(ip);
    networks.iter().any(|net| net.contains(&ip))
}

/// `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4 on a dual-stack socket: one client, one key.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The hops, left to right, from every `X-Forwarded-For` field (several fields form one list);
/// `Forwarded`'s `for=` values only when no `X-Forwarded-For` is present. `None` marks a hop
/// that is not valid UTF-8.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<String>> {
    let split = |name: &HeaderName, item: fn(&str) -> Option<String>| -> Vec<Option<String>> {
        headers
            .get_all(name)
            .iter()
            .flat_map(|value| match value.to_str() {
                Ok(text) => text.split(',').map(item).collect::<Vec<_>>(),
                Err(_) => vec![None],
            })
            .collect()
    };
    if headers.contains_key(&X_FORWARDED_FOR) {
        split(&X_FORWARDED_FOR, |hop| Some(hop.trim().to_owned()))
    } else {
        split(&FORWARDED, forwarded_for)
    }
}

/// The `for=` parameter of one `Forwarded` element (RFC 7239), unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::test_headers as headers;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().expect("test network"))
            .collect()
    }

    #[test]
    fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        for spoof in [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "127.0.0.1"),
            ("x-forwarded-for", "1.1.1.1, 127.0.0.1"),
            ("x-real-ip", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("cf-connecting-ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("forwarded", "for=\"[::1]\""),
        ] {
            assert_eq!(
                client_ip(peer, &headers(&[spoof]), &trusted),
                peer,
                "{spoof:?}"
            );
        }
    }

    #[test]
    fn no_trusted_proxies_means_headers_are_never_read() {
        let peer = ip("127.0.0.1");
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(client_ip(peer, &h, &[]), peer);
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        // The client prepended a fake hop; our proxy appended the address it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.7"));
        // Two layers of our proxies: both skipped.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.7"));
        // Several header fields form one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_header_is_read_like_x_forwarded_for() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "proto=https;for=198.51.100.7:80")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn garbage_hops_stop_the_walk_at_the_last_vouched_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        let h = headers(&[("x-forwarded-for", "1.2.3.4, unknown")]);
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, not-an-ip, 10.0.0.9")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("10.0.0.9"));
        // A trusted peer with no header at all: the peer is the client.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn mapped_ipv6_addresses_are_the_ipv4_client() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.7")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("198.51.100.7")
        );
    }
}
