//! Which address a request really came from.
//!
//! The socket's peer address, unless that peer is a configured trusted proxy:
//! then the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy. Headers from untrusted peers are ignored, so a client cannot
//! pick its own address to dodge login throttling.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request came from (the socket's peer), when the server
/// was started with connect info: an extractor that never fails.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl Peer {
    /// The peer recorded in a request's extensions (or, as axum's own
    /// `ConnectInfo` extractor does, a `MockConnectInfo` for tests).
    pub fn of(extensions: &axum::http::Extensions) -> Self {
        Self(
            extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|info| info.0)
                .or_else(|| {
                    extensions
                        .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                        .map(|mock| mock.0)
                }),
        )
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

/// The client's address for logging, session records and throttling.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    if !is_trusted(peer_ip, trusted) {
        return peer_ip;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer_ip)
}

/// Whether the request came straight from one of the `trusted` proxies
/// (whose `X-Forwarded-*` headers are then believed).
pub fn from_trusted_proxy(peer: Option<SocketAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|peer| is_trusted(canonical(peer.ip()), trusted))
}

/// The first of a forwarded header's comma-separated values: the one the
/// proxy closest to the client set (shipped configs set, never append,
/// them). `None` when absent or empty.
pub fn first_forwarded<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client an address belongs to: an IPv4 address, or the IPv6 network
/// of `ipv6_prefix` bits around it (a home line or a server holds a whole
/// /64), as its first address. Login throttling, the hashing queue and the
/// connection cap all count clients this way.
pub(crate) fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, ipv6_prefix.min(128))
            .map_or(IpAddr::V6(v6), |net| IpAddr::V6(net.trunc().addr())),
        v4 => v4,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 4000)
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(peer("203.0.113.9"), &headers("1.2.3.4"), &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers("6.6.6.6, 198.51.100.2, 10.0.0.5");
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &trusted),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_trusted_peer_without_header_is_the_client() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            client_ip(peer("127.0.0.1"), &HeaderMap::new(), &trusted),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_match_ipv4_ranges() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(peer("::ffff:127.0.0.1"), &headers("192.0.2.1"), &trusted),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
