//! Transport summaries of IPv4 datagrams and the in-place NAPT rewrites, with RFC 1624
//! (eqn. 3) incremental checksum updates: one pass over the changed words, never over the
//! payload. ICMP query identifiers are treated like ports (RFC 7597 §8.2, RFC 5508).

use core::net::Ipv4Addr;

use mape_nat::{Endpoint, Protocol};
use mape_wire::checksum::Delta;
use mape_wire::icmpv4::msg_type;
use mape_wire::IpProtocol;

use crate::drop::DropReason;

/// What kind of transport payload a datagram carries, as far as the NAPT cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L4Kind {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo request or reply: the identifier is the "port" (RFC 7597 §8.2).
    IcmpQuery,
    /// ICMP destination unreachable, time exceeded, parameter problem or source quench:
    /// the embedded packet carries the ports (RFC 5508 §4).
    IcmpError,
}

impl L4Kind {
    pub(crate) const fn protocol(self) -> Protocol {
        match self {
            L4Kind::Tcp => Protocol::Tcp,
            L4Kind::Udp => Protocol::Udp,
            L4Kind::IcmpQuery | L4Kind::IcmpError => Protocol::Icmp,
        }
    }
}

/// The transport facts of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L4 {
    pub(crate) kind: L4Kind,
    /// TCP/UDP source port; ICMP query identifier; 0 for errors.
    pub(crate) sport: u16,
    /// TCP/UDP destination port; ICMP query identifier; 0 for errors.
    pub(crate) dport: u16,
    /// TCP flags (0 otherwise).
    pub(crate) flags: u8,
    /// TCP sequence number (0 otherwise).
    pub(crate) seq: u32,
    /// TCP acknowledgement number (0 otherwise).
    pub(crate) ack: u32,
}

#[inline]
pub(crate) fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn addr_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(rd32(b, at))
}

/// An IPv6 address at a fixed offset (caller checked the bounds).
#[inline]
pub(crate) fn addr6_at(b: &[u8], at: usize) -> core::net::Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    core::net::Ipv6Addr::from(o)
}

/// Whether `a` names a single host that may be forwarded to or from (RFC 1812 §4.2.2.11,
/// §5.3.7): not unspecified, loopback, limited broadcast, multicast or class E.
#[inline]
pub(crate) fn is_unicast(a: Ipv4Addr) -> bool {
    let o = a.octets()[0];
    !(a.is_unspecified() || o == 127 || o >= 224)
}

/// Whether an ICMPv4 type is an error the NAPT translates through its embedded packet.
#[inline]
pub(crate) const fn is_icmp_error(t: u8) -> bool {
    matches!(
        t,
        msg_type::DEST_UNREACHABLE
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAM_PROBLEM
            | msg_type::SOURCE_QUENCH
    )
}

/// Reads the transport facts of a whole (unfragmented or reassembled) datagram `pkt`
/// whose header is `hl` bytes long. After `Ok`, the fixed transport header is present.
pub(crate) fn parse(pkt: &[u8], hl: usize, proto: u8) -> Result<L4, DropReason> {
    match proto {
        IpProtocol::TCP => {
            if pkt.len() < hl + 20 {
                return Err(DropReason::L4Truncated);
            }
            let doff = usize::from(pkt[hl + 12] >> 4) * 4;
            if doff < 20 || pkt.len() < hl + doff {
                return Err(DropReason::L4Truncated);
            }
            Ok(L4 {
                kind: L4Kind::Tcp,
                sport: rd16(pkt, hl),
                dport: rd16(pkt, hl + 2),
                flags: pkt[hl + 13],
                seq: rd32(pkt, hl + 4),
                ack: rd32(pkt, hl + 8),
            })
        }
        IpProtocol::UDP => {
            if pkt.len() < hl + 8 {
                return Err(DropReason::L4Truncated);
            }
            Ok(L4 {
                kind: L4Kind::Udp,
                sport: rd16(pkt, hl),
                dport: rd16(pkt, hl + 2),
                flags: 0,
                seq: 0,
                ack: 0,
            })
        }
        IpProtocol::ICMP => {
            if pkt.len() < hl + 8 {
                return Err(DropReason::L4Truncated);
            }
            let t = pkt[hl];
            if t == msg_type::ECHO_REQUEST || t == msg_type::ECHO_REPLY {
                let id = rd16(pkt, hl + 4);
                Ok(L4 {
                    kind: L4Kind::IcmpQuery,
                    sport: id,
                    dport: id,
                    flags: 0,
                    seq: 0,
                    ack: 0,
                })
            } else if is_icmp_error(t) {
                Ok(L4 {
                    kind: L4Kind::IcmpError,
                    sport: 0,
                    dport: 0,
                    flags: 0,
                    seq: 0,
                    ack: 0,
                })
            } else {
                Err(DropReason::IcmpUnsupported)
            }
        }
        _ => Err(DropReason::ProtocolUnsupported),
    }
}

/// The packet quoted in an ICMP error (RFC 792: IP header + at least 8 bytes), parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Embedded {
    /// Offset of the embedded IPv4 header within the datagram holding the ICMP error.
    pub(crate) at: usize,
    pub(crate) hl: usize,
    pub(crate) proto: Protocol,
    pub(crate) src: Endpoint,
    pub(crate) dst: Endpoint,
    pub(crate) dont_frag: bool,
}

/// Parses the packet embedded in an ICMP error, starting at offset `at` of `pkt` (for an
/// ICMPv4 error: its header offset + 8; for an ICMPv6 error about a tunnel packet: after
/// the quoted IPv6 header and its extension headers).
/// The embedded packet may be truncated but must show its full IP header and 8 bytes of
/// transport header, and be a first fragment. An embedded ICMP must be a query (no error
/// about an error, RFC 1812 §4.3.2.7).
pub(crate) fn embedded(pkt: &[u8], at: usize) -> Result<Embedded, DropReason> {
    let emb = pkt.get(at..).ok_or(DropReason::IcmpErrorMalformed)?;
    if emb.len() < 20 || emb[0] >> 4 != 4 {
        return Err(DropReason::IcmpErrorMalformed);
    }
    let hl = usize::from(emb[0] & 0x0f) * 4;
    if hl < 20 || emb.len() < hl + 8 {
        return Err(DropReason::IcmpErrorMalformed);
    }
    let flags_off = rd16(emb, 6);
    if flags_off & 0x1fff != 0 {
        return Err(DropReason::IcmpErrorMalformed);
    }
    let src = addr_at(emb, 12);
    let dst = addr_at(emb, 16);
    let (proto, sport, dport) = match emb[9] {
        IpProtocol::TCP => (Protocol::Tcp, rd16(emb, hl), rd16(emb, hl + 2)),
        IpProtocol::UDP => (Protocol::Udp, rd16(emb, hl), rd16(emb, hl + 2)),
        IpProtocol::ICMP => {
            let t = emb[hl];
            if t != msg_type::ECHO_REQUEST && t != msg_type::ECHO_REPLY {
                return Err(DropReason::IcmpErrorMalformed);
            }
            let id = rd16(emb, hl + 4);
            (Protocol::Icmp, id, id)
        }
        _ => return Err(DropReason::IcmpErrorMalformed),
    };
    Ok(Embedded {
        at,
        hl,
        proto,
        src: Endpoint::new(src, sport),
        dst: Endpoint::new(dst, dport),
        dont_frag: flags_off & 0x4000 != 0,
    })
}

/// The endpoint as the NAT engine keys the remote side: ICMP queries use port 0 there
/// (the identifier is ours only).
#[inline]
pub(crate) const fn nat_remote(ep: Endpoint, proto: Protocol) -> Endpoint {
    match proto {
        Protocol::Icmp => Endpoint::new(ep.addr, 0),
        _ => ep,
    }
}

/// Which endpoint of a datagram to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Source address and port (SNAT, outbound).
    Src,
    /// Destination address and port (DNAT, inbound).
    Dst,
}

impl Side {
    const fn addr_at(self) -> usize {
        match self {
            Side::Src => 12,
            Side::Dst => 16,
        }
    }
    const fn port_at(self) -> usize {
        match self {
            Side::Src => 0,
            Side::Dst => 2,
        }
    }
}

/// Rewrites only the IPv4 address on `side`, updating the header checksum (RFC 1624).
/// For an ICMP datagram (no pseudo-header) nothing else changes.
#[inline]
pub(crate) fn rewrite_addr(pkt: &mut [u8], side: Side, new: Ipv4Addr) {
    let at = side.addr_at();
    let old = rd32(pkt, at);
    let new = u32::from(new);
    pkt[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let c = Delta::new().replace_32(old, new).apply(rd16(pkt, 10));
    wr16(pkt, 10, c);
}

/// Rewrites address and port (or ICMP identifier) on `side` of a whole datagram that
/// [`parse`] accepted as TCP, UDP or an ICMP query. IPv4 header checksum and transport
/// checksum are updated incrementally (RFC 1624 eqn. 3); a zero UDP checksum stays zero
/// (RFC 768). The payload is never read.
#[inline]
pub(crate) fn rewrite(pkt: &mut [u8], hl: usize, kind: L4Kind, side: Side, new: Endpoint) {
    let at = side.addr_at();
    let old_a = rd32(pkt, at);
    let new_a = u32::from(new.addr);
    pkt[at..at + 4].copy_from_slice(&new_a.to_be_bytes());
    let addr = Delta::new().replace_32(old_a, new_a);
    wr16(pkt, 10, addr.apply(rd16(pkt, 10)));
    match kind {
        L4Kind::Tcp | L4Kind::Udp => {
            let p = hl + side.port_at();
            let old_p = rd16(pkt, p);
            wr16(pkt, p, new.port);
            let d = addr.replace_16(old_p, new.port);
            if kind == L4Kind::Tcp {
                let c = hl + 16;
                wr16(pkt, c, d.apply(rd16(pkt, c)));
            } else {
                let c = hl + 6;
                wr16(pkt, c, d.apply_udp(rd16(pkt, c)));
            }
        }
        L4Kind::IcmpQuery => {
            let p = hl + 4;
            let old_p = rd16(pkt, p);
            wr16(pkt, p, new.port);
            let c = hl + 2;
            wr16(
                pkt,
                c,
                Delta::new().replace_16(old_p, new.port).apply(rd16(pkt, c)),
            );
        }
        L4Kind::IcmpError => {}
    }
}

/// [`rewrite`] for the packet embedded in an ICMP error (RFC 5508 §4.2): the embedded
/// packet may be truncated, so the port and transport checksum are updated only when
/// present. The caller recomputes the outer ICMP checksum afterwards.
pub(crate) fn rewrite_embedded(
    emb: &mut [u8],
    hl: usize,
    proto: Protocol,
    side: Side,
    new: Endpoint,
) {
    if emb.len() < 20 {
        return;
    }
    let at = side.addr_at();
    let old_a = rd32(emb, at);
    let new_a = u32::from(new.addr);
    emb[at..at + 4].copy_from_slice(&new_a.to_be_bytes());
    let addr = Delta::new().replace_32(old_a, new_a);
    wr16(emb, 10, addr.apply(rd16(emb, 10)));
    match proto {
        Protocol::Tcp | Protocol::Udp => {
            let p = hl + side.port_at();
            if emb.len() < p + 2 {
                return;
            }
            let old_p = rd16(emb, p);
            wr16(emb, p, new.port);
            let d = addr.replace_16(old_p, new.port);
            if proto == Protocol::Tcp {
                let c = hl + 16;
                if emb.len() >= c + 2 {
                    wr16(emb, c, d.apply(rd16(emb, c)));
                }
            } else {
                let c = hl + 6;
                if emb.len() >= c + 2 {
                    wr16(emb, c, d.apply_udp(rd16(emb, c)));
                }
            }
        }
        Protocol::Icmp => {
            let p = hl + 4;
            if emb.len() < p + 2 {
                return;
            }
            let old_p = rd16(emb, p);
            wr16(emb, p, new.port);
            let c = hl + 2;
            wr16(
                emb,
                c,
                Delta::new().replace_16(old_p, new.port).apply(rd16(emb, c)),
            );
        }
    }
}

/// Decrements the TTL and updates the header checksum (RFC 1812 §5.3.1, RFC 1624).
#[inline]
pub(crate) fn decrement_ttl(pkt: &mut [u8]) {
    let ttl = pkt[8];
    if ttl == 0 {
        return;
    }
    let old = u16::from_be_bytes([ttl, pkt[9]]);
    let new = u16::from_be_bytes([ttl - 1, pkt[9]]);
    pkt[8] = ttl - 1;
    wr16(
        pkt,
        10,
        Delta::new().replace_16(old, new).apply(rd16(pkt, 10)),
    );
}

/// Recomputes the ICMP checksum over `icmp` (the whole message) from scratch.
pub(crate) fn fill_icmp_checksum(icmp: &mut [u8]) {
    if icmp.len() < 4 {
        return;
    }
    icmp[2] = 0;
    icmp[3] = 0;
    let c = mape_wire::checksum::of(icmp);
    wr16(icmp, 2, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mape_wire::checksum;

    fn udp_packet() -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 168, 1, 10], [8, 8, 8, 8], 64)
            .udp(40000, 53)
            .write(&mut v, b"hello world")
            .unwrap();
        v
    }

    #[test]
    fn rewrite_matches_full_recomputation() {
        let mut p = udp_packet();
        let new = Endpoint::new(Ipv4Addr::new(14, 9, 26, 101), 6672);
        rewrite(&mut p, 20, L4Kind::Udp, Side::Src, new);
        decrement_ttl(&mut p);
        let mut want = Vec::new();
        etherparse::PacketBuilder::ipv4([14, 9, 26, 101], [8, 8, 8, 8], 63)
            .udp(6672, 53)
            .write(&mut want, b"hello world")
            .unwrap();
        assert_eq!(p, want);
        assert_eq!(checksum::data(&p[..20]), 0xffff);
    }

    #[test]
    fn zero_udp_checksum_stays_zero() {
        let mut p = udp_packet();
        p[26] = 0;
        p[27] = 0;
        rewrite(
            &mut p,
            20,
            L4Kind::Udp,
            Side::Dst,
            Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), 9),
        );
        assert_eq!(rd16(&p, 26), 0);
    }

    #[test]
    fn parse_rejects_short_and_unknown() {
        let p = udp_packet();
        assert_eq!(parse(&p[..25], 20, 17), Err(DropReason::L4Truncated));
        assert_eq!(parse(&p, 20, 47), Err(DropReason::ProtocolUnsupported));
        assert_eq!(parse(&p, 20, 6), Err(DropReason::L4Truncated));
        let l = parse(&p, 20, 17).unwrap();
        assert_eq!((l.sport, l.dport, l.kind), (40000, 53, L4Kind::Udp));
    }
}
