//! Why the dataplane dropped a packet: one closed enum for the CE and BR pipelines, NAT
//! reasons included, whose snake_case names are log fields and metric labels (the
//! VPP `MAP_ERROR_*` / Jool `JSTAT_*` pattern).

use core::fmt;

use mape_nat::NatDrop;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $v:ident => $s:literal, )*) => {
        /// A reason the dataplane did not forward a packet.
        ///
        /// Every reason is a counter ([`DropCounters`]), a log field and a metric label
        /// ([`DropReason::as_str`]). NAT engine reasons are carried as [`DropReason::Nat`]
        /// and keep the engine's names (they never clash with the dataplane's own).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason {
            $( $(#[$doc])* $v, )*
            /// The NAPT engine refused or dropped the packet.
            Nat(NatDrop),
        }

        const LOCAL: &[DropReason] = &[$(DropReason::$v,)*];
        const LOCAL_COUNT: usize = LOCAL.len();

        impl DropReason {
            const fn local_index(self) -> usize {
                let mut i = 0;
                $(
                    if matches!(self, DropReason::$v) {
                        return i;
                    }
                    i += 1;
                )*
                i
            }

            /// The snake_case name used as log field and metric label.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( DropReason::$v => $s, )*
                    DropReason::Nat(n) => n.as_str(),
                }
            }
        }
    };
}

reasons! {
    /// First nibble is neither 4 nor 6 (or the input is empty).
    BadIpVersion => "bad_ip_version",
    /// IPv4 header truncated, IHL < 5, or total length inconsistent with the buffer.
    Ipv4Malformed => "ipv4_malformed",
    /// IPv4 header checksum does not verify (RFC 1812 §5.2.2).
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// IPv4 source is not a single host (multicast, broadcast, loopback, unspecified) or is
    /// our own external address arriving from the LAN (RFC 1812 §5.3.7).
    Ipv4BadSource => "ipv4_bad_source",
    /// IPv4 source from the LAN outside the configured LAN prefixes (`lan.prefixes`): a
    /// spoofed or misconfigured host (RFC 2827 ingress filtering), never given a NAT record.
    SourceOutsideLan => "source_outside_lan",
    /// IPv4 destination cannot be forwarded (multicast, broadcast, loopback, unspecified).
    Ipv4BadDestination => "ipv4_bad_destination",
    /// TTL would reach zero (RFC 1812 §5.3.1); ICMP time exceeded sent where allowed.
    TtlExpired => "ttl_expired",
    /// TCP/UDP/ICMP header shorter than its fixed part.
    L4Truncated => "l4_truncated",
    /// A transport protocol the NAPT cannot translate (no ports): shared addresses
    /// (RFC 7597 §9) only carry TCP, UDP and ICMP.
    ProtocolUnsupported => "protocol_unsupported",
    /// ICMP type that is neither echo nor a translatable error (RFC 5508).
    IcmpUnsupported => "icmp_unsupported",
    /// ICMP or ICMPv6 checksum does not verify.
    IcmpBadChecksum => "icmp_bad_checksum",
    /// ICMP error whose embedded packet cannot be parsed.
    IcmpErrorMalformed => "icmp_error_malformed",
    /// ICMP error whose embedded packet is not one of ours.
    IcmpErrorNotOurs => "icmp_error_not_ours",
    /// Packet larger than the tunnel MTU with DF set: ICMP fragmentation needed sent to
    /// the sender (RFC 4787 REQ-13, RFC 2473 §7.2, RFC 1191).
    FragNeeded => "frag_needed",
    /// IPv6 header truncated or payload length inconsistent with the buffer.
    Ipv6Malformed => "ipv6_malformed",
    /// Malformed or too long IPv6 extension-header chain.
    Ipv6BadExtHeader => "ipv6_bad_ext_header",
    /// IPv6 packet that is not IPv4-in-IPv6 (next header 4) nor an ICMPv6 error for us:
    /// MLD and other kernel noise (linux-plumbing.md).
    Ipv6NotIpip => "ipv6_not_ipip",
    /// IPv6 destination is not our MAP address (CE) or BR address (BR).
    Ipv6NotForUs => "ipv6_not_for_us",
    /// IPv6 source is neither an accepted BR address nor covered by a rule (RFC 7597 §8.1).
    UnknownTunnelSource => "unknown_tunnel_source",
    /// Inner IPv4 source address or port does not match the IPv6 source (RFC 7597 §8.1,
    /// §10): silently discarded and counted.
    SpoofedSource => "spoofed_source",
    /// BR: no rule covers the IPv4 destination (ICMP unreachable sent, rate limited).
    NoRule => "no_rule",
    /// BR: the destination port belongs to no CE (excluded range of the port set).
    NoCe => "no_ce",
    /// Overlapping fragments: the whole datagram is discarded (RFC 5722, RFC 8200 §4.5).
    FragOverlap => "frag_overlap",
    /// Reassembled datagram would exceed 65535 bytes.
    FragTooBig => "frag_too_big",
    /// Inconsistent fragment (length not a multiple of 8, data past the end, two ends).
    FragMalformed => "frag_malformed",
    /// Reassembly limits reached (datagrams per host, total datagrams, bytes, fragments
    /// per datagram).
    FragLimit => "frag_limit",
    /// Incomplete datagram expired (counted once per discarded datagram).
    FragTimeout => "frag_timeout",
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = LOCAL_COUNT + NatDrop::COUNT;

    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; DropReason::COUNT] = {
        let mut all = [DropReason::BadIpVersion; DropReason::COUNT];
        let mut i = 0;
        while i < LOCAL_COUNT {
            all[i] = LOCAL[i];
            i += 1;
        }
        let mut j = 0;
        while j < NatDrop::COUNT {
            all[LOCAL_COUNT + j] = DropReason::Nat(NatDrop::ALL[j]);
            j += 1;
        }
        all
    };

    /// Dense index `0..COUNT` for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            DropReason::Nat(n) => LOCAL_COUNT + n.index(),
            other => other.local_index(),
        }
    }

    /// Whether the reason comes from the NAT engine.
    pub const fn is_nat(self) -> bool {
        matches!(self, DropReason::Nat(_))
    }
}

impl From<NatDrop> for DropReason {
    fn from(n: NatDrop) -> Self {
        DropReason::Nat(n)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `u64` per [`DropReason`], indexed by [`DropReason::index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters([0; DropReason::COUNT])
    }
}

impl DropCounters {
    /// Count one drop.
    #[inline]
    pub fn add(&mut self, r: DropReason) {
        self.0[r.index()] += 1;
    }

    /// Count `n` drops.
    #[inline]
    pub fn add_n(&mut self, r: DropReason, n: u64) {
        self.0[r.index()] += n;
    }

    /// The count for one reason.
    #[inline]
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn all_is_dense_and_names_unique_snake_case() {
        let mut names = HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            let s = r.as_str();
            assert!(names.insert(s), "duplicate name {s}");
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
        for n in NatDrop::ALL {
            assert!(DropReason::ALL.contains(&DropReason::Nat(n)));
        }
        assert_eq!(DropReason::Nat(NatDrop::HostQuota).as_str(), "host_quota");
    }

    #[test]
    fn counters_count() {
        let mut c = DropCounters::default();
        c.add(DropReason::SpoofedSource);
        c.add(DropReason::Nat(NatDrop::NoMapping));
        c.add_n(DropReason::FragTimeout, 3);
        assert_eq!(c.get(DropReason::SpoofedSource), 1);
        assert_eq!(c.total(), 5);
        assert_eq!(c.nonzero().count(), 3);
    }
}
