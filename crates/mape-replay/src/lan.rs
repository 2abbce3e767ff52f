//! Which addresses are the LAN, and so which way a packet crosses the router or why it
//! does not ([`Lan::classify`]).

use std::net::Ipv4Addr;

use mape_nat::Ipv4Prefix;

use crate::packet::SkipReason;

/// Which addresses are the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lan {
    /// RFC 1918 private sources are the LAN. A packet from a private address is outbound
    /// whatever its destination (a private destination of another network is exactly what
    /// the incident sent); a packet from a public address to a private one is inbound.
    Private,
    /// These prefixes are the LAN (`--lan`); traffic between two LAN addresses is skipped
    /// as LAN-local.
    Nets(Vec<Ipv4Prefix>),
}

/// Direction of a packet through the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// LAN → internet.
    Outbound,
    /// Internet → LAN.
    Inbound,
}

fn is_private(a: Ipv4Addr) -> bool {
    a.is_private()
}

impl Lan {
    /// Whether `a` is a LAN address.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        match self {
            Lan::Private => is_private(a),
            Lan::Nets(nets) => nets.iter().any(|n| n.contains(a)),
        }
    }

    /// The direction of a packet `src → dst`, or why it is skipped.
    pub fn classify(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Direction, SkipReason> {
        if dst.is_multicast() || dst.is_broadcast() {
            return Err(SkipReason::Multicast);
        }
        let (s, d) = (self.contains(src), self.contains(dst));
        match (s, d, self) {
            (true, true, Lan::Nets(_)) => Err(SkipReason::LanLocal),
            (true, _, _) => Ok(Direction::Outbound),
            (false, true, _) => Ok(Direction::Inbound),
            (false, false, _) => Err(SkipReason::NotLan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_classification() {
        let p = Lan::Private;
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            p.classify(a("192.168.1.10"), a("1.1.1.1")),
            Ok(Direction::Outbound)
        );
        assert_eq!(
            p.classify(a("192.168.1.23"), a("192.168.1.211")),
            Ok(Direction::Outbound)
        );
        assert_eq!(
            p.classify(a("1.1.1.1"), a("192.168.1.10")),
            Ok(Direction::Inbound)
        );
        assert_eq!(
            p.classify(a("1.1.1.1"), a("8.8.8.8")),
            Err(SkipReason::NotLan)
        );
        assert_eq!(
            p.classify(a("192.168.1.10"), a("239.255.255.250")),
            Err(SkipReason::Multicast)
        );
        let n = Lan::Nets(vec!["192.168.1.0/24".parse().unwrap()]);
        assert_eq!(
            n.classify(a("192.168.1.10"), a("192.168.1.1")),
            Err(SkipReason::LanLocal)
        );
        assert_eq!(
            n.classify(a("192.168.1.10"), a("10.0.0.1")),
            Ok(Direction::Outbound)
        );
        assert_eq!(
            n.classify(a("10.0.0.1"), a("192.168.1.10")),
            Ok(Direction::Inbound)
        );
    }
}
