//! Who a request comes from: the client's IP address, and the key its
//! per-address limits are counted under.
//!
//! The address is the TCP peer (axum's `ConnectInfo`, which
//! [`crate::listener::serve`] gives every request), unless the
//! peer is one of the configured proxies (`--trusted-proxies`): then
//! `X-Forwarded-For` is read from the right, skipping trusted hops, and
//! the first address not trusted is the client. A header from anyone else
//! is ignored, so a client cannot pick the address it is counted under.
//!
//! ```ignore
//! // by hand
//! let ip = client_ip(peer, &headers, &trusted);
//! // or with the middleware in front and the extractor in the handler
//! router.layer(axum::middleware::from_fn_with_state(
//!     Arc::new(trusted),
//!     service::client_addr::resolve,
//! ));
//! async fn handler(ClientIp(ip): ClientIp) { .. }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::{IpNet, Ipv6Net};

/// The header proxies append the address they got a request from to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`):
/// networks in CIDR notation, or single addresses. Empty by default: no
/// header is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parse a comma-separated list of CIDR networks or addresses
    /// (`10.0.0.0/8, 192.168.1.7, fd00::/8`); empty means none. The clap
    /// value parser of `--trusted-proxies`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match IpNet::from_str(item) {
                Ok(net) => net.trunc(),
                Err(_) => match IpAddr::from_str(item) {
                    Ok(ip) => IpNet::from(ip.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is neither a CIDR network (10.0.0.0/8) nor an address"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies { nets })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The client's address: `peer` itself unless `peer` is a trusted proxy;
/// then the right-most `X-Forwarded-For` entry that is not a trusted proxy
/// (every header line, in order, as one list). When every entry is trusted,
/// the left-most; when an entry does not parse, the last trusted hop before
/// it (the client is unknown: it is counted under its proxy). IPv4-mapped
/// IPv6 addresses count as IPv4.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.ip().to_canonical();
    if !trusted.contains(client) {
        return client;
    }
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(line) = line.to_str() else {
            return client;
        };
        for entry in line.rsplit(',') {
            let Some(ip) = forwarded_ip(entry.trim()) else {
                return client;
            };
            client = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5`, `[2001:db8::1]:443`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(entry) {
        return Some(ip.to_canonical());
    }
    SocketAddr::from_str(entry)
        .ok()
        .map(|s| s.ip().to_canonical())
}

/// What per-address limits count under: an IPv4 address, or the /64 an
/// IPv6 address is in (one home or phone gets a whole /64, so counting
/// single IPv6 addresses would give one client 2^64 budgets).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey(String);

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressKey(v4.to_string()),
            IpAddr::V6(v6) => {
                let net = Ipv6Net::new(v6, 64).expect("64 is a valid prefix").trunc();
                AddressKey(net.to_string())
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client's address as found by the [`resolve`] middleware, as an axum
/// extractor. Without the middleware in front, extraction fails with 500
/// (a wiring mistake, not a client's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key its limits count under.
    pub fn key(&self) -> AddressKey {
        AddressKey::of(self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<ClientIp>().copied().ok_or_else(|| {
            tracing::error!("ClientIp used without service::client_addr::resolve in front");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

/// Middleware putting the [`ClientIp`] of every request into its
/// extensions, with the trusted proxies as its state
/// (`axum::middleware::from_fn_with_state(Arc::new(trusted), resolve)`).
/// Needs `ConnectInfo<SocketAddr>` ([`crate::listener::serve`] gives it).
pub async fn resolve(
    State(trusted): State<Arc<TrustedProxies>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = client_ip(peer, request.headers(), &trusted);
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 4321)
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_cannot_choose_its_address_with_a_forged_x_forwarded_for() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // Not from a proxy: the header is ignored.
        let forged = xff(&["9.9.9.9"]);
        assert_eq!(
            client_ip(peer("203.0.113.5"), &forged, &trusted),
            ip("203.0.113.5")
        );
        // No proxy configured: ignored too, even from 10.x.
        let none = TrustedProxies::default();
        assert_eq!(client_ip(peer("10.1.1.1"), &forged, &none), ip("10.1.1.1"));
        // Through the proxy, a forged left-most entry is skipped: the
        // right-most untrusted one is what the proxy saw.
        let through = xff(&["9.9.9.9, 203.0.113.5"]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &through, &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_right_to_left_across_header_lines() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let h = xff(&["198.51.100.1, 203.0.113.9", "192.168.1.7:3456, 10.2.3.4"]);
        assert_eq!(client_ip(peer("10.0.0.2"), &h, &trusted), ip("203.0.113.9"));
        // All trusted: the left-most.
        let h = xff(&["10.9.9.9, 10.2.3.4"]);
        assert_eq!(client_ip(peer("10.0.0.2"), &h, &trusted), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(peer("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // Garbage stops the walk at the last trusted hop.
        let h = xff(&["203.0.113.9, garbage, 10.2.3.4"]);
        assert_eq!(client_ip(peer("10.0.0.2"), &h, &trusted), ip("10.2.3.4"));
        // IPv6 with a port, and IPv4-mapped peers.
        let h = xff(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(peer("::ffff:10.0.0.2"), &h, &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn trusted_proxies_parse_networks_and_addresses_and_refuse_garbage() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
        let t = TrustedProxies::parse("172.28.0.10, fd00::/8,10.1.2.3/8").unwrap();
        assert_eq!(t.nets.len(), 3);
        assert!(t.contains(ip("172.28.0.10")));
        assert!(!t.contains(ip("172.28.0.11")));
        assert!(t.contains(ip("fd12::1")));
        assert!(t.contains(ip("10.200.0.1")), "host bits are dropped");
        assert!(t.contains(ip("::ffff:172.28.0.10")));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nginx").is_err());
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_64_and_ipv4_stands_alone() {
        let a = AddressKey::of(ip("2001:db8:1:2:aaaa::1"));
        let b = AddressKey::of(ip("2001:db8:1:2:ffff::9"));
        let c = AddressKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str(), "2001:db8:1:2::/64");
        assert_eq!(AddressKey::of(ip("192.0.2.1")).as_str(), "192.0.2.1");
        assert_eq!(
            AddressKey::of(ip("::ffff:192.0.2.1")),
            AddressKey::of(ip("192.0.2.1"))
        );
        assert_ne!(
            AddressKey::of(ip("192.0.2.1")),
            AddressKey::of(ip("192.0.2.2"))
        );
    }
}
