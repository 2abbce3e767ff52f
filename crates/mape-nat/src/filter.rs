//! The destination filter: IPv4 special-purpose destinations that are not globally reachable
//! (IANA registry, RFC 6890 and updates) never get a session or a port, because nothing
//! through the tunnel can answer them (the seed incident sent to 192.168.1.211).
//! RFC 6888 REQ-6 asks a CGN to let the operator turn translation off for given destinations.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

/// An IPv4 prefix `addr/len` with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

impl Ipv4Prefix {
    /// Builds `addr/len`, clearing host bits; `None` when `len > 32`.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        if len > 32 {
            return None;
        }
        let raw = u32::from_be_bytes(addr.octets());
        Some(Self {
            addr: raw & Self::mask(len),
            len,
        })
    }

    const fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is `0.0.0.0/0`'s opposite: a prefix never is empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies inside.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.len) == self.addr
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

/// Why a string is not an IPv4 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an IPv4 prefix (expected a.b.c.d/len with len 0-32)")]
pub struct Ipv4PrefixParseError(pub String);

impl FromStr for Ipv4Prefix {
    type Err = Ipv4PrefixParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || Ipv4PrefixParseError(s.to_string());
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| err())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| err())?;
        Ipv4Prefix::new(addr, l).ok_or_else(err)
    }
}

const fn p(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Prefix {
    let raw = u32::from_be_bytes([a, b, c, d]);
    Ipv4Prefix {
        addr: raw & Ipv4Prefix::mask(len),
        len,
    }
}

/// Special-purpose blocks that are not globally reachable (IANA IPv4 Special-Purpose Address
/// Registry, RFC 6890 §2.2.2 and its updates), with their names.
/// Multicast (224.0.0.0/4, RFC 5771) is listed too and filtered unless configured.
pub const SPECIAL_PURPOSE: &[(Ipv4Prefix, &str)] = &[
    (p(0, 0, 0, 0, 8), "this network (RFC 791)"),
    (p(10, 0, 0, 0, 8), "private use (RFC 1918)"),
    (p(100, 64, 0, 0, 10), "shared address space (RFC 6598)"),
    (p(127, 0, 0, 0, 8), "loopback (RFC 1122)"),
    (p(169, 254, 0, 0, 16), "link local (RFC 3927)"),
    (p(172, 16, 0, 0, 12), "private use (RFC 1918)"),
    (p(192, 0, 0, 0, 24), "IETF protocol assignments (RFC 6890)"),
    (p(192, 0, 2, 0, 24), "documentation TEST-NET-1 (RFC 5737)"),
    (
        p(192, 88, 99, 0, 24),
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    (p(192, 168, 0, 0, 16), "private use (RFC 1918)"),
    (p(198, 18, 0, 0, 15), "benchmarking (RFC 2544)"),
    (
        p(198, 51, 100, 0, 24),
        "documentation TEST-NET-2 (RFC 5737)",
    ),
    (p(203, 0, 113, 0, 24), "documentation TEST-NET-3 (RFC 5737)"),
    (p(224, 0, 0, 0, 4), "multicast (RFC 5771)"),
    (p(240, 0, 0, 0, 4), "reserved (RFC 1112)"),
];

/// Globally reachable exceptions inside the blocks above (registry: Global = True).
const GLOBAL_EXCEPTIONS: &[Ipv4Prefix] = &[
    p(192, 0, 0, 9, 32),  // Port Control Protocol anycast (RFC 7723)
    p(192, 0, 0, 10, 32), // TURN anycast (RFC 8155)
];

/// Decides which destinations may get a NAT session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationFilter {
    /// Whether the filter is on at all (`linux-like` and `rtx830-like` turn it off).
    pub enabled: bool,
    /// Prefixes allowed although special-purpose (the lab allows the documentation ranges).
    pub allow: Vec<Ipv4Prefix>,
    /// Whether multicast destinations may pass.
    pub allow_multicast: bool,
}

impl Default for DestinationFilter {
    fn default() -> Self {
        Self {
            enabled: true,
            allow: Vec::new(),
            allow_multicast: false,
        }
    }
}

impl DestinationFilter {
    /// The name of the special-purpose block that makes `dst` unreachable through the tunnel,
    /// or `None` when it may pass.
    pub fn blocked(&self, dst: Ipv4Addr) -> Option<&'static str> {
        if !self.enabled {
            return None;
        }
        if dst == Ipv4Addr::BROADCAST {
            return Some("limited broadcast (RFC 919)");
        }
        let (prefix, name) = SPECIAL_PURPOSE.iter().find(|(p, _)| p.contains(dst))?;
        if self.allow_multicast && prefix.len() == 4 && prefix.addr() == Ipv4Addr::new(224, 0, 0, 0)
        {
            return None;
        }
        if GLOBAL_EXCEPTIONS.iter().any(|p| p.contains(dst))
            || self.allow.iter().any(|p| p.contains(dst))
        {
            return None;
        }
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_incident_destination_is_blocked() {
        let f = DestinationFilter::default();
        assert_eq!(
            f.blocked(ip("192.168.1.211")),
            Some("private use (RFC 1918)")
        );
    }

    #[test]
    fn registry_blocks_and_public_addresses() {
        let f = DestinationFilter::default();
        for blocked in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(
                f.blocked(ip(blocked)).is_some(),
                "{blocked} should be blocked"
            );
        }
        for open in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(f.blocked(ip(open)), None, "{open} should pass");
        }
    }

    #[test]
    fn allow_list_and_multicast_and_off() {
        let mut f = DestinationFilter {
            allow: vec!["203.0.113.0/24".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(f.blocked(ip("203.0.113.10")), None);
        assert!(f.blocked(ip("198.51.100.1")).is_some());
        f.allow_multicast = true;
        assert_eq!(f.blocked(ip("239.1.1.1")), None);
        f.enabled = false;
        assert_eq!(f.blocked(ip("192.168.1.211")), None);
    }

    #[test]
    fn prefix_parsing() {
        assert_eq!(
            "192.168.1.77/24".parse::<Ipv4Prefix>().unwrap().to_string(),
            "192.168.1.0/24"
        );
        assert_eq!("10.1.2.3".parse::<Ipv4Prefix>().unwrap().len(), 32);
        assert!("10.0.0.0/33".parse::<Ipv4Prefix>().is_err());
        assert!("banana/8".parse::<Ipv4Prefix>().is_err());
        assert!("0.0.0.0/0"
            .parse::<Ipv4Prefix>()
            .unwrap()
            .contains(ip("8.8.8.8")));
    }
}
