//! Who is asking: the client address per-client limits count against.
//!
//! Behind a proxy the TCP peer is the proxy, and the client is named in
//! `X-Forwarded-For` — a header anyone can also write. Proxies *append* the
//! address they saw, so only entries on the right, written by proxies we
//! run, are true: [`TrustedProxies`] says how many hops (or which networks)
//! to trust, counting from the right; anything left of them is the client's
//! own say and is ignored. The result is always a parsed IP, and an IPv6
//! client is bucketed by its /64 (one customer's network, which they can
//! fill with addresses at will), so no header can mint new limiter keys.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use axum::http::HeaderMap;

/// The proxies in front of the gateway (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedProxies {
    /// Clients connect directly: the TCP peer is the client.
    #[default]
    None,
    /// This many proxies, each appending to `X-Forwarded-For`, the last of
    /// them connecting to the gateway.
    Hops(usize),
    /// Proxies in these networks; the client is the rightmost address
    /// outside them.
    Networks(Vec<Network>),
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// `""` or `0` for none, a number of hops, or comma-separated CIDRs.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::None);
        }
        if let Ok(hops) = raw.parse::<usize>() {
            return Ok(if hops == 0 { Self::None } else { Self::Hops(hops) });
        }
        raw.split(',')
            .map(str::trim)
            .filter(|cidr| !cidr.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self::Networks)
    }
}

/// An IP network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32) == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    let prefix = u32::from(prefix.min(width));
    let host_bits = u32::from(width) - prefix;
    if host_bits >= 128 { 0 } else { bits >> host_bits }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = raw.split_once('/').unwrap_or((raw, ""));
        let address: IpAddr = address.parse().map_err(|_| format!("{raw:?} is not an IP network"))?;
        let address = canonical(address);
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            width
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| format!("{raw:?} has no valid prefix length"))?
        };
        Ok(Self { address, prefix })
    }
}

/// A client's limiter bucket: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an IP, possibly with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

impl TrustedProxies {
    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, headers: &HeaderMap, peer: SocketAddr) -> ClientAddress {
        let peer = canonical(peer.ip());
        let forwarded = || {
            // Several headers are one list, in order.
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .collect::<Vec<_>>()
        };
        let client = match self {
            Self::None => peer,
            // The last proxy is the peer; its entry is the rightmost.
            Self::Hops(hops) => {
                let entries = forwarded();
                entries
                    .len()
                    .checked_sub(*hops)
                    .and_then(|index| parse_entry(entries[index]))
                    .unwrap_or(peer)
            }
            Self::Networks(networks) => {
                let trusted = |ip: IpAddr| networks.iter().any(|network| network.contains(ip));
                if trusted(peer) {
                    let mut client = peer;
                    for entry in forwarded().into_iter().rev() {
                        // A malformed entry is no proxy of ours: stop at the
                        // last address we could trust.
                        let Some(ip) = parse_entry(entry) else { break };
                        client = ip;
                        if !trusted(ip) {
                            break;
                        }
                    }
                    client
                } else {
                    peer
                }
            }
        };
        ClientAddress::of(client)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn without_proxies_the_header_is_ignored() {
        let client = TrustedProxies::None.client(&headers(&["198.51.100.1"]), peer("203.0.113.5"));
        assert_eq!(client.to_string(), "203.0.113.5");
    }

    #[test]
    fn hops_count_from_the_right_so_forged_entries_are_ignored() {
        let one = TrustedProxies::Hops(1);
        let proxy = peer("10.0.0.2");
        let honest = one.client(&headers(&["198.51.100.7"]), proxy);
        for forged in [
            "1.2.3.4, 198.51.100.7",
            "garbage, 198.51.100.7",
            "::1, 5.6.7.8, 198.51.100.7",
        ] {
            assert_eq!(one.client(&headers(&[forged]), proxy), honest, "{forged}");
        }
        // Split over several headers, the list is the same.
        assert_eq!(one.client(&headers(&["1.2.3.4", "198.51.100.7"]), proxy), honest);
        let two = TrustedProxies::Hops(2);
        assert_eq!(
            two.client(&headers(&["1.2.3.4, 198.51.100.7, 10.0.0.9"]), proxy),
            honest
        );
        // Fewer entries than proxies, or an unreadable one: the peer.
        assert_eq!(two.client(&headers(&["198.51.100.7"]), proxy).to_string(), "10.0.0.2");
        assert_eq!(one.client(&headers(&["not-an-ip"]), proxy).to_string(), "10.0.0.2");
    }

    #[test]
    fn networks_skip_our_proxies_from_the_right() {
        let ours: TrustedProxies = "10.0.0.0/8, fd00::/8".parse().unwrap();
        let client = ours.client(&headers(&["1.2.3.4, 198.51.100.7, 10.1.2.3"]), peer("10.0.0.2"));
        assert_eq!(client.to_string(), "198.51.100.7");
        // A peer outside our networks is the client, whatever it claims.
        let direct = ours.client(&headers(&["10.9.9.9"]), peer("203.0.113.5"));
        assert_eq!(direct.to_string(), "203.0.113.5");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let one = TrustedProxies::Hops(1);
        let a = one.client(&headers(&["2001:db8:1:2::1"]), peer("10.0.0.2"));
        let b = one.client(&headers(&["2001:db8:1:2:ffff:ffff:ffff:ffff"]), peer("10.0.0.2"));
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let other = one.client(&headers(&["2001:db8:1:3::1"]), peer("10.0.0.2"));
        assert_ne!(a, other);
        let mapped = one.client(&headers(&["[::ffff:198.51.100.7]:443"]), peer("10.0.0.2"));
        assert_eq!(mapped.to_string(), "198.51.100.7");
    }

    #[test]
    fn the_setting_reads_a_count_or_networks() {
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::None);
        assert_eq!("0".parse::<TrustedProxies>().unwrap(), TrustedProxies::None);
        assert_eq!("2".parse::<TrustedProxies>().unwrap(), TrustedProxies::Hops(2));
        assert!(matches!("10.0.0.0/8".parse::<TrustedProxies>().unwrap(), TrustedProxies::Networks(n) if n.len() == 1));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.local".parse::<TrustedProxies>().is_err());
    }
}
