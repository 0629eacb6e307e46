//! Which client a request comes from, for the limits and idempotency keys that cannot use a
//! token. The TCP peer, unless a trusted reverse proxy is configured to name the client in a
//! header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName};

pub struct ClientAddress {
    header: Option<HeaderName>,
}

impl ClientAddress {
    /// `header`: e.g. `X-Forwarded-For`; `None` = the peer address only. Validated by
    /// `Settings::validate`; a name that still does not parse is treated as unset.
    pub fn new(header: Option<&str>) -> ClientAddress {
        ClientAddress {
            header: header.and_then(|h| HeaderName::try_from(h.trim()).ok()),
        }
    }

    /// The client of `request`, as text fit for a key (hashed before it is stored).
    pub fn of(&self, request: &Request) -> String {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        self.resolve(request.headers(), peer)
    }

    pub fn resolve(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> String {
        let forwarded = self.header.as_ref().and_then(|name| {
            // The right-most entry is the one our own proxy appended; everything left of it
            // came from the client and can be forged.
            let last_line = headers.get_all(name).iter().next_back()?;
            let last = last_line.to_str().ok()?.rsplit(',').next()?.trim();
            parse_ip(last)
        });
        match forwarded.or(peer) {
            Some(ip) => bucket_of(ip),
            // Only when served without connection info (not by `serve`): one shared bucket.
            None => "unknown".to_owned(),
        }
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// An IPv6 client usually holds a whole /64: keying by full address would give it 2^64
/// buckets. IPv4 (and IPv4-mapped IPv6) addresses are one client each.
fn bucket_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::try_from(*k).unwrap(), v.parse().unwrap());
        }
        h
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)));

    #[test]
    fn without_a_trusted_header_only_the_peer_counts() {
        let c = ClientAddress::new(None);
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(c.resolve(&h, PEER), "10.0.0.9");
    }

    #[test]
    fn the_right_most_forwarded_entry_wins() {
        let c = ClientAddress::new(Some("X-Forwarded-For"));
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 7.7.7.7"),
            ("x-forwarded-for", "9.9.9.9, 203.0.113.5"),
        ]);
        assert_eq!(c.resolve(&h, PEER), "203.0.113.5");
        // Absent or garbage: the peer.
        assert_eq!(c.resolve(&HeaderMap::new(), PEER), "10.0.0.9");
        let junk = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(c.resolve(&junk, PEER), "10.0.0.9");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let c = ClientAddress::new(Some("x-real-ip"));
        let a = c.resolve(&headers(&[("x-real-ip", "2001:db8:1:2::1")]), None);
        let b = c.resolve(
            &headers(&[("x-real-ip", "[2001:db8:1:2:ffff::9]:443")]),
            None,
        );
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        let mapped = c.resolve(&headers(&[("x-real-ip", "::ffff:192.0.2.1")]), None);
        assert_eq!(mapped, "192.0.2.1");
    }
}
