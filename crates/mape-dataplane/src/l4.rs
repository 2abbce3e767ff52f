//! Transport summaries of IPv4 datagrams and the in-place NAPT rewrites, with RFC 1624
//! (eqn. 3) incremental checksum updates: one pass over the changed words, never over the
//! payload. ICMP query identifiers are treated like ports (RFC 7597 §8.2, RFC 5508). Every
//! header field is read and written through the `mape_wire` views.

use core::net::Ipv4Addr;

use mape_nat::{Endpoint, Protocol};
use mape_wire::checksum::Delta;
use mape_wire::icmpv4::msg_type;
use mape_wire::{Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

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

impl L4 {
    const fn ports(kind: L4Kind, sport: u16, dport: u16) -> L4 {
        L4 {
            kind,
            sport,
            dport,
            flags: 0,
            seq: 0,
            ack: 0,
        }
    }

    /// Whether this is a TCP SYN (the segments whose MSS option is clamped).
    #[inline]
    pub(crate) const fn is_syn(&self) -> bool {
        matches!(self.kind, L4Kind::Tcp) && self.flags & mape_wire::TcpFlags::SYN.bits() != 0
    }
}

/// Whether `a` names a single host that may be forwarded to or from (RFC 1812 §4.2.2.11,
/// §5.3.7): not unspecified, loopback, limited broadcast, multicast or class E.
#[inline]
pub(crate) fn is_unicast(a: Ipv4Addr) -> bool {
    let o = a.octets()[0];
    !(a.is_unspecified() || o == 127 || o >= 224)
}

/// Whether an ICMPv4 type is an error the NAPT translates through its embedded packet
/// (RFC 5508 §4; a redirect is not translated).
#[inline]
pub(crate) const fn is_icmp_error(t: u8) -> bool {
    t != msg_type::REDIRECT && mape_wire::icmpv4::is_error_type(t)
}

/// Reads the transport facts of a whole (unfragmented or reassembled) datagram. After
/// `Ok`, the fixed transport header is present (TCP: with its options).
#[inline]
pub(crate) fn parse(ip: &Ipv4Packet<&[u8]>) -> Result<L4, DropReason> {
    let payload = ip.payload();
    match ip.protocol() {
        IpProtocol::TCP => {
            let t = TcpPacket::new_checked(payload).map_err(|_| DropReason::L4Truncated)?;
            Ok(L4 {
                kind: L4Kind::Tcp,
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags().bits(),
                seq: t.seq_number(),
                ack: t.ack_number(),
            })
        }
        IpProtocol::UDP => {
            let u = UdpPacket::new_checked_header(payload).map_err(|_| DropReason::L4Truncated)?;
            Ok(L4::ports(L4Kind::Udp, u.src_port(), u.dst_port()))
        }
        IpProtocol::ICMP => {
            let m = Icmpv4Packet::new_checked(payload).map_err(|_| DropReason::L4Truncated)?;
            let t = m.msg_type();
            if t == msg_type::ECHO_REQUEST || t == msg_type::ECHO_REPLY {
                let id = m.echo_ident();
                Ok(L4::ports(L4Kind::IcmpQuery, id, id))
            } else if is_icmp_error(t) {
                Ok(L4::ports(L4Kind::IcmpError, 0, 0))
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
    pub(crate) proto: Protocol,
    pub(crate) src: Endpoint,
    pub(crate) dst: Endpoint,
    pub(crate) dont_frag: bool,
}

/// Parses `quote`, the packet embedded in an ICMP error (for an ICMPv4 error: its data;
/// for an ICMPv6 error about a tunnel packet: what follows the quoted IPv6 header and its
/// extension headers). The embedded packet may be truncated but must show its full IP
/// header and 8 bytes of transport header, and be a first fragment. An embedded ICMP must
/// be a query (no error about an error, RFC 1812 §4.3.2.7).
pub(crate) fn embedded(quote: &[u8]) -> Result<Embedded, DropReason> {
    let bad = DropReason::IcmpErrorMalformed;
    let ip = Ipv4Packet::new_checked_header(quote).map_err(|_| bad)?;
    let l4 = ip.payload();
    if l4.len() < mape_wire::udp::HEADER_LEN || !ip.is_first_fragment() {
        return Err(bad);
    }
    let (proto, sport, dport) = match ip.protocol() {
        IpProtocol::TCP => {
            let (s, d) = mape_wire::ports(l4).ok_or(bad)?;
            (Protocol::Tcp, s, d)
        }
        IpProtocol::UDP => {
            let (s, d) = mape_wire::ports(l4).ok_or(bad)?;
            (Protocol::Udp, s, d)
        }
        IpProtocol::ICMP => {
            let m = Icmpv4Packet::new_checked(l4).map_err(|_| bad)?;
            let t = m.msg_type();
            if t != msg_type::ECHO_REQUEST && t != msg_type::ECHO_REPLY {
                return Err(bad);
            }
            (Protocol::Icmp, m.echo_ident(), m.echo_ident())
        }
        _ => return Err(bad),
    };
    Ok(Embedded {
        proto,
        src: Endpoint::new(ip.src_addr(), sport),
        dst: Endpoint::new(ip.dst_addr(), dport),
        dont_frag: ip.dont_frag(),
    })
}

/// [`embedded`] for the packet quoted by the ICMPv4 error that `ip` carries.
#[inline]
pub(crate) fn error_quote(ip: &Ipv4Packet<&[u8]>) -> Result<Embedded, DropReason> {
    embedded(Icmpv4Packet::new_unchecked(ip.payload()).data())
}

/// [`error_quote`] of an ICMPv4 error about to be translated: its own checksum must
/// verify first (RFC 792), else it is dropped as `icmp_bad_checksum`.
pub(crate) fn checked_error_quote(ip: &Ipv4Packet<&[u8]>) -> Result<Embedded, DropReason> {
    if !Icmpv4Packet::new_unchecked(ip.payload()).verify_checksum() {
        return Err(DropReason::IcmpBadChecksum);
    }
    error_quote(ip)
}

/// The port that names the CE of a datagram (RFC 7597 §5.3 PSID, §8.1 source check):
/// the port on `side` (`Dst` for packets toward a CE, `Src` for packets from one), or for
/// an ICMP error the opposite port of the packet it quotes (§8.2: the quote is a packet
/// going the other way).
pub(crate) fn map_port(ip: &Ipv4Packet<&[u8]>, l4: &L4, side: Side) -> Result<u16, DropReason> {
    Ok(match (l4.kind, side) {
        (L4Kind::IcmpError, Side::Dst) => error_quote(ip)?.src.port,
        (L4Kind::IcmpError, Side::Src) => error_quote(ip)?.dst.port,
        (_, Side::Dst) => l4.dport,
        (_, Side::Src) => l4.sport,
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

/// Rewrites only the IPv4 address on `side`, updating the header checksum (RFC 1624), and
/// returns the change for the transport checksums that cover the address.
#[inline(always)]
pub(crate) fn rewrite_addr(ip: &mut Ipv4Packet<&mut [u8]>, side: Side, new: Ipv4Addr) -> Delta {
    let old = match side {
        Side::Src => ip.src_addr(),
        Side::Dst => ip.dst_addr(),
    };
    match side {
        Side::Src => ip.set_src_addr(new),
        Side::Dst => ip.set_dst_addr(new),
    }
    let d = Delta::new().replace_32(u32::from(old), u32::from(new));
    ip.set_checksum(d.apply(ip.checksum()));
    d
}

/// Rewrites the port (or ICMP query identifier) on `side` of the transport header `l4`
/// of protocol `proto`, updating its checksum with `addr` (the address change the
/// pseudo-header saw) and the port change. `l4` may be cut short (a quote): the port
/// needs 8 bytes, a TCP checksum is updated only when present. A zero UDP checksum stays
/// zero (RFC 768).
#[inline]
fn rewrite_port(l4: &mut [u8], proto: Protocol, side: Side, addr: Delta, new: u16) {
    if l4.len() < mape_wire::udp::HEADER_LEN {
        return;
    }
    match proto {
        Protocol::Tcp => {
            let mut t = TcpPacket::new_unchecked(l4);
            let old = match side {
                Side::Src => t.src_port(),
                Side::Dst => t.dst_port(),
            };
            match side {
                Side::Src => t.set_src_port(new),
                Side::Dst => t.set_dst_port(new),
            }
            if t.shows_checksum() {
                t.set_checksum(addr.replace_16(old, new).apply(t.checksum()));
            }
        }
        Protocol::Udp => {
            let mut u = UdpPacket::new_unchecked(l4);
            let old = match side {
                Side::Src => u.src_port(),
                Side::Dst => u.dst_port(),
            };
            match side {
                Side::Src => u.set_src_port(new),
                Side::Dst => u.set_dst_port(new),
            }
            u.set_checksum(addr.replace_16(old, new).apply_udp(u.checksum()));
        }
        Protocol::Icmp => {
            // No pseudo-header: only the identifier change counts.
            let mut m = Icmpv4Packet::new_unchecked(l4);
            let old = m.echo_ident();
            m.set_echo_ident(new);
            m.set_checksum(Delta::new().replace_16(old, new).apply(m.checksum()));
        }
    }
}

/// Rewrites address and port (or ICMP identifier) on `side` of a whole datagram that
/// [`parse`] accepted as TCP, UDP or an ICMP query. IPv4 header checksum and transport
/// checksum are updated incrementally (RFC 1624 eqn. 3). The payload is never read.
#[inline(always)]
pub(crate) fn rewrite(ip: &mut Ipv4Packet<&mut [u8]>, kind: L4Kind, side: Side, new: Endpoint) {
    let addr = rewrite_addr(ip, side, new.addr);
    if kind != L4Kind::IcmpError {
        rewrite_port(ip.payload_mut(), kind.protocol(), side, addr, new.port);
    }
}

/// [`rewrite`] for the packet embedded in an ICMP error (RFC 5508 §4.2), `quote` as
/// [`embedded`] accepted it: the embedded packet may be truncated, so the transport
/// checksum is updated only when present. The caller recomputes the outer ICMP checksum.
pub(crate) fn rewrite_embedded(quote: &mut [u8], proto: Protocol, side: Side, new: Endpoint) {
    if Ipv4Packet::new_checked_header(&*quote).is_err() {
        return;
    }
    let mut ip = Ipv4Packet::new_unchecked(quote);
    let addr = rewrite_addr(&mut ip, side, new.addr);
    rewrite_port(ip.payload_mut(), proto, side, addr, new.port);
}

/// The ICMP message of an IPv4 datagram that carries one, as a mutable view.
#[inline]
pub(crate) fn icmp_mut<'a>(ip: &'a mut Ipv4Packet<&mut [u8]>) -> Icmpv4Packet<&'a mut [u8]> {
    Icmpv4Packet::new_unchecked(ip.payload_mut())
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
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        rewrite(&mut ip, L4Kind::Udp, Side::Src, new);
        ip.decrement_ttl();
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
            &mut Ipv4Packet::new_unchecked(&mut p[..]),
            L4Kind::Udp,
            Side::Dst,
            Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), 9),
        );
        assert_eq!(&p[26..28], &[0, 0]);
    }

    #[test]
    fn parse_rejects_short_and_unknown() {
        let p = udp_packet();
        let with_proto = |proto: u8| {
            let mut q = p.clone();
            q[9] = proto;
            q
        };
        let v = |b: &[u8]| parse(&Ipv4Packet::new_unchecked(b));
        assert_eq!(v(&p[..25]), Err(DropReason::L4Truncated));
        assert_eq!(v(&with_proto(47)), Err(DropReason::ProtocolUnsupported));
        assert_eq!(v(&with_proto(6)), Err(DropReason::L4Truncated));
        let l = v(&p).unwrap();
        assert_eq!((l.sport, l.dport, l.kind), (40000, 53, L4Kind::Udp));
    }
}
