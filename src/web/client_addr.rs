//! Who sent a request: the client's address, from the connection's peer and,
//! only through proxies the operator named in `TRUSTED_PROXIES`, from
//! `X-Forwarded-For`. Rate limits, the waiting room and the `/metrics` access
//! rule all take it from here.
//!
//! A proxy such as nginx with `$proxy_add_x_forwarded_for` *appends* the
//! address it was reached from to whatever `X-Forwarded-For` the client sent,
//! so only the right end of the list was written by proxies; everything to the
//! left of the first untrusted hop is the client's own say. The walk therefore
//! starts at the peer and goes leftwards while the hop it stands on is a
//! trusted proxy ([`select`]):
//!
//! - no proxies trusted: the peer, headers ignored;
//! - a count `N`: the peer is the first proxy; past `N` proxies, the next entry;
//! - addresses and blocks: the peer must be one of them for the header to be
//!   read at all; then the rightmost entry that is not one of them.
//!
//! The walk stops at an entry that is not an address (`unknown`, garbage) and
//! answers the last trusted hop instead: nothing a client wrote is believed. A
//! list shorter than the proxies said to be in front ends at its leftmost
//! entry, which a trusted proxy wrote.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName};

use crate::config::TrustedProxies;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What the app knows of who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address as far as it can be trusted; `None` only for a
    /// connection without a peer address.
    pub address: Option<IpAddr>,
    /// The request says a proxy relayed it (`Forwarded`, `X-Forwarded-For` or
    /// `X-Real-IP`), yet its peer is not a trusted proxy: the address is then
    /// that of something relaying for someone else, not the client's.
    pub relayed_untrusted: bool,
}

/// The client of `req` under `proxies`.
pub fn of(req: &HttpRequest, proxies: &TrustedProxies) -> Client {
    let Some(peer) = req.peer_addr().map(|a| canonical(a.ip())) else {
        return Client {
            address: None,
            relayed_untrusted: false,
        };
    };
    let headers = req.headers();
    let relayed = [header::FORWARDED, X_FORWARDED_FOR, X_REAL_IP]
        .iter()
        .any(|name| headers.contains_key(name));
    Client {
        address: Some(select(peer, &forwarded_for(headers), proxies)),
        relayed_untrusted: relayed && !trusted(proxies, 0, peer),
    }
}

/// The entries of every `X-Forwarded-For` line, in order. A line that is not
/// text is one entry that parses as no address, so the walk stops there.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    let mut entries = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(line) => entries.extend(line.split(',')),
            Err(_) => entries.push(""),
        }
    }
    entries
}

/// The client's address: the walk of the module documentation over the
/// `X-Forwarded-For` entries (left to right, as written) from the peer.
pub fn select(peer: IpAddr, forwarded_for: &[&str], proxies: &TrustedProxies) -> IpAddr {
    let mut client = canonical(peer);
    let mut leftwards = forwarded_for.iter().rev();
    let mut position = 0;
    while trusted(proxies, position, client) {
        let Some(hop) = leftwards.next().and_then(|entry| parse_hop(entry)) else {
            break;
        };
        client = hop;
        position += 1;
    }
    client
}

/// Whether the hop at `position` (0: the peer), at `address`, is a proxy
/// whose report of the hop before it is believed.
fn trusted(proxies: &TrustedProxies, position: usize, address: IpAddr) -> bool {
    match proxies {
        TrustedProxies::None => false,
        TrustedProxies::Count(n) => position < usize::from(n.get()),
        TrustedProxies::Networks(nets) => nets.iter().any(|net| net.contains(&address)),
    }
}

/// One `X-Forwarded-For` entry: an address, with a port as some proxies add
/// (`192.0.2.7:5123`, `[2001:db8::7]:5123`); anything else is no address.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let address = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))?;
    Some(canonical(address))
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:127.0.0.1`) is that
/// IPv4 address.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn proxies(setting: &str) -> TrustedProxies {
        TrustedProxies::parse(setting).unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        // (TRUSTED_PROXIES, peer, X-Forwarded-For, client)
        let cases: &[(&str, &str, &str, &str)] = &[
            // No proxies trusted: the header is the client's own say.
            ("", "203.0.113.9", "127.0.0.1", "203.0.113.9"),
            ("", "127.0.0.1", "", "127.0.0.1"),
            // One proxy: the entry it appended.
            ("1", "10.0.0.2", "203.0.113.9", "203.0.113.9"),
            ("1", "10.0.0.2", "127.0.0.1, 203.0.113.9", "203.0.113.9"),
            (
                "1",
                "10.0.0.2",
                "1.1.1.1,2.2.2.2, 203.0.113.9",
                "203.0.113.9",
            ),
            // Two proxies: the peer, then the entry the outer one is known by.
            (
                "2",
                "10.0.0.2",
                "127.0.0.1, 203.0.113.9, 10.0.0.1",
                "203.0.113.9",
            ),
            // Fewer entries than proxies: the leftmost, which a proxy wrote.
            ("2", "10.0.0.2", "203.0.113.9", "203.0.113.9"),
            ("1", "127.0.0.1", "", "127.0.0.1"),
            // Proxies by address: the peer must be one of them.
            ("10.0.0.0/8", "203.0.113.7", "127.0.0.1", "203.0.113.7"),
            (
                "10.0.0.0/8",
                "10.0.0.2",
                "127.0.0.1, 203.0.113.9",
                "203.0.113.9",
            ),
            (
                "10.0.0.0/8, 192.168.1.5",
                "10.0.0.2",
                "127.0.0.1, 203.0.113.9, 192.168.1.5, 10.9.9.9",
                "203.0.113.9",
            ),
            // Every hop a trusted proxy: the farthest one.
            ("10.0.0.0/8", "10.0.0.2", "10.0.0.1", "10.0.0.1"),
            // Ports as some proxies write them; IPv6; IPv4 through IPv6.
            ("1", "10.0.0.2", "203.0.113.9:5123", "203.0.113.9"),
            ("1", "10.0.0.2", "[2001:db8::7]:5123", "2001:db8::7"),
            ("1", "10.0.0.2", " 2001:db8::7 ", "2001:db8::7"),
            ("1", "::ffff:10.0.0.2", "::ffff:203.0.113.9", "203.0.113.9"),
            (
                "10.0.0.0/8",
                "::ffff:10.0.0.2",
                "203.0.113.9",
                "203.0.113.9",
            ),
            (
                "2001:db8:1::/48",
                "2001:db8:1::2",
                "203.0.113.9",
                "203.0.113.9",
            ),
            // Garbage stops the walk at the last trusted hop.
            ("1", "10.0.0.2", "unknown", "10.0.0.2"),
            ("1", "10.0.0.2", "203.0.113.9, ", "10.0.0.2"),
            ("2", "10.0.0.2", "203.0.113.9, bogus", "10.0.0.2"),
            ("2", "10.0.0.2", "bogus, 10.0.0.1", "10.0.0.1"),
            (
                "10.0.0.0/8",
                "10.0.0.2",
                "203.0.113.9, 10.0.0.1 x",
                "10.0.0.2",
            ),
            ("1", "10.0.0.2", "203.0.113.9/32", "10.0.0.2"),
        ];
        for (setting, peer, xff, client) in cases {
            let entries: Vec<&str> = if xff.is_empty() {
                Vec::new()
            } else {
                xff.split(',').collect()
            };
            assert_eq!(
                select(ip(peer), &entries, &proxies(setting)),
                ip(client),
                "TRUSTED_PROXIES={setting:?}, peer {peer}, X-Forwarded-For: {xff}"
            );
        }
    }

    #[test]
    fn every_forwarded_for_line_counts_in_order_and_a_line_not_text_stops_the_walk() {
        let mut headers = HeaderMap::new();
        headers.append(X_FORWARDED_FOR, "127.0.0.1, 198.51.100.1".parse().unwrap());
        headers.append(X_FORWARDED_FOR, "203.0.113.9".parse().unwrap());
        let entries = forwarded_for(&headers);
        assert_eq!(entries, ["127.0.0.1", " 198.51.100.1", "203.0.113.9"]);
        assert_eq!(
            select(ip("10.0.0.2"), &entries, &proxies("2")),
            ip("198.51.100.1")
        );

        headers.append(
            X_FORWARDED_FOR,
            header::HeaderValue::from_bytes(b"\xff203.0.113.9").unwrap(),
        );
        let entries = forwarded_for(&headers);
        assert_eq!(
            select(ip("10.0.0.2"), &entries, &proxies("1")),
            ip("10.0.0.2")
        );
    }
}
