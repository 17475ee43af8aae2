//! Who a request comes from, behind reverse proxies: [`TrustedProxies`]
//! (HERALD_TRUSTED_PROXIES) and [`TrustedProxies::client_address`], which believes
//! `X-Forwarded-For` only as far as the hops that wrote it are trusted; and [`limit_key`], the
//! address a rate limit counts (an IPv6 client's /64, which one host usually holds whole).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The client's address as the server resolved it (the request extension `herald serve` sets
/// for its handlers and rate limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The networks whose `X-Forwarded-For` is believed: the load balancers and proxies in front of
/// `herald serve`. Empty by default, so the header is ignored and the TCP peer is the client.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts nobody: the client is the TCP peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// A comma-separated list of addresses and CIDR networks, such as
    /// `10.0.0.0/8, 192.168.1.7, fd00::/8`. An empty list trusts nobody.
    ///
    /// # Errors
    /// A sentence naming the first entry that is neither an address nor a network.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "`{entry}` is neither an IP address nor a CIDR network (such as 10.0.0.0/8)"
                    )
                })?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP `peer` when it is not a trusted proxy; otherwise the
    /// `X-Forwarded-For` entries (`header_values`, in the order the headers came) read from the
    /// right, skipping trusted hops, up to the first address no trusted proxy vouches for. Only
    /// the entries a trusted hop appended are believed, so a client cannot choose its address
    /// by sending the header itself. An entry that is not an address ends the walk at the last
    /// trusted hop.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        header_values: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let entries: Vec<&str> = header_values
            .into_iter()
            .flat_map(|value| value.split(','))
            .collect();
        for entry in entries.into_iter().rev() {
            let Some(hop) = forwarded_address(entry) else {
                return client;
            };
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.7:5123`,
/// `[2001:db8::1]:443`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

/// The key a per-address rate limit counts: an IPv4 address (IPv4-mapped IPv6 included) as it
/// is, an IPv6 address by its /64, since one host is usually given a whole /64 and could
/// otherwise take a fresh address for every try.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn with_no_trusted_proxy_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::none();
        assert_eq!(
            none.client_address(ip("10.0.0.2"), ["203.0.113.9"]),
            ip("10.0.0.2")
        );
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            trusted.client_address(ip("198.51.100.4"), ["203.0.113.9"]),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        // The client forged the first entry; the balancer (10.0.0.2) appended what it saw,
        // and an inner proxy (192.168.1.7) appended the balancer.
        assert_eq!(
            trusted.client_address(ip("192.168.1.7"), ["6.6.6.6, 203.0.113.9", "10.0.0.2"]),
            ip("203.0.113.9")
        );
        // Ports and brackets, and IPv4-mapped IPv6.
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.2"), ["203.0.113.9:5123"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.2"), ["[2001:db8::1]:443"]),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn a_malformed_entry_or_an_all_trusted_chain_stops_at_the_last_trusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            trusted.client_address(ip("10.0.0.2"), ["203.0.113.9, unknown"]),
            ip("10.0.0.2")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.2"), ["10.0.0.9, 10.0.0.5"]),
            ip("10.0.0.9")
        );
        // No header: the proxy itself.
        assert_eq!(trusted.client_address(ip("10.0.0.2"), []), ip("10.0.0.2"));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = TrustedProxies::parse("10.0.0.0/8, lb.internal").unwrap_err();
        assert!(e.contains("`lb.internal`"), "{e}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        // Host bits in a network are dropped, not refused.
        let t = TrustedProxies::parse("10.1.2.3/8").unwrap();
        assert!(t.contains(ip("10.200.0.1")));
        assert_eq!(format!("{t:?}"), r#"["10.0.0.0/8"]"#);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_slash_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:2::2"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(limit_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }
}
