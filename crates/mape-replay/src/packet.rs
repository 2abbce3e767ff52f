//! Frame decoding down to what the NAT engine needs (link layer → IPv4 → TCP/UDP/ICMP echo
//! summary), the reasons a frame is skipped, and the encoder that turns a summary back into a
//! valid IPv4 packet (checksums included) for `--write-pcap`.
//!
//! Parsing is minimal on purpose: only the fields the engine looks at are read, every read
//! is bounds-checked, and any malformed input ends as a [`SkipReason`], never a panic.

use std::net::Ipv4Addr;

use mape_nat::{Endpoint, Protocol, TcpFlags};

/// Link-layer header types (tcpdump.org `LINKTYPE_*` values) this module understands.
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet II, with any number of 802.1Q / 802.1ad (QinQ) tags.
    pub const ETHERNET: u32 = 1;
    /// Raw IP: the frame starts with the IPv4 or IPv6 header.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (`tcpdump -i any`).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
}

/// Why a frame did not reach the engines. Each reason is a counter in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// A record with no bytes captured.
    ZeroLength,
    /// A link-layer type this tool does not decode (or a record naming no known interface).
    UnknownLinkType,
    /// The frame ends before the headers we need.
    Truncated,
    /// IPv6 (the NAT translates IPv4 only).
    Ipv6,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// An IPv4 header that makes no sense (version, header length, total length).
    BadIpHeader,
    /// An IP protocol the NAT does not translate (not TCP, UDP or ICMP).
    OtherProtocol,
    /// A non-first fragment: it carries no ports.
    NonFirstFragment,
    /// ICMP other than an echo request leaving the LAN or an echo reply entering it.
    IcmpNotEcho,
    /// Multicast or limited broadcast destination: a router never translates these.
    Multicast,
    /// Neither address is on the LAN.
    NotLan,
    /// Both addresses are on the LAN (`--lan` given): the traffic never crosses the router.
    LanLocal,
}

impl SkipReason {
    /// Every reason, in declaration order.
    pub const ALL: [SkipReason; 12] = [
        SkipReason::ZeroLength,
        SkipReason::UnknownLinkType,
        SkipReason::Truncated,
        SkipReason::Ipv6,
        SkipReason::NotIp,
        SkipReason::BadIpHeader,
        SkipReason::OtherProtocol,
        SkipReason::NonFirstFragment,
        SkipReason::IcmpNotEcho,
        SkipReason::Multicast,
        SkipReason::NotLan,
        SkipReason::LanLocal,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Dense index.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Name used in the report and the JSON output.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::ZeroLength => "zero_length",
            SkipReason::UnknownLinkType => "unknown_link_type",
            SkipReason::Truncated => "truncated",
            SkipReason::Ipv6 => "ipv6",
            SkipReason::NotIp => "not_ip",
            SkipReason::BadIpHeader => "bad_ip_header",
            SkipReason::OtherProtocol => "other_protocol",
            SkipReason::NonFirstFragment => "non_first_fragment",
            SkipReason::IcmpNotEcho => "icmp_not_echo",
            SkipReason::Multicast => "multicast",
            SkipReason::NotLan => "not_lan",
            SkipReason::LanLocal => "lan_local",
        }
    }
}

/// The kind of an ICMP packet the NAT translates (RFC 5508 queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpKind {
    /// Echo request (type 8): the identifier is the "port" of the sender.
    Request,
    /// Echo reply (type 0): the identifier is the "port" of the receiver.
    Reply,
}

/// What a decoded packet says, in the engine's terms. For ICMP the echo identifier is the
/// port of the side that owns it (the requester) and the other side's port is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Transport protocol.
    pub proto: Protocol,
    /// Source endpoint.
    pub src: Endpoint,
    /// Destination endpoint.
    pub dst: Endpoint,
    /// TCP flags byte (zero for UDP and ICMP).
    pub flags: TcpFlags,
    /// TCP sequence number (zero for UDP and ICMP).
    pub seq: u32,
    /// TCP acknowledgement number (zero for UDP and ICMP).
    pub ack: u32,
    /// ICMP echo kind (`None` for TCP and UDP).
    pub icmp: Option<IcmpKind>,
}

impl Packet {
    /// A UDP packet.
    pub fn udp(src: Endpoint, dst: Endpoint) -> Self {
        Self {
            proto: Protocol::Udp,
            src,
            dst,
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
            icmp: None,
        }
    }

    /// A TCP segment with `flags` (sequence and acknowledgement numbers zero).
    pub fn tcp(src: Endpoint, dst: Endpoint, flags: u8) -> Self {
        Self::tcp_numbered(src, dst, flags, 0, 0)
    }

    /// A TCP segment with `flags`, sequence number `seq` and acknowledgement number `ack`.
    pub fn tcp_numbered(src: Endpoint, dst: Endpoint, flags: u8, seq: u32, ack: u32) -> Self {
        Self {
            proto: Protocol::Tcp,
            src,
            dst,
            flags: TcpFlags(flags),
            seq,
            ack,
            icmp: None,
        }
    }

    /// An ICMP echo request from `src` with identifier `id` to `dst`.
    pub fn echo_request(src: Ipv4Addr, id: u16, dst: Ipv4Addr) -> Self {
        Self {
            proto: Protocol::Icmp,
            src: Endpoint::new(src, id),
            dst: Endpoint::new(dst, 0),
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
            icmp: Some(IcmpKind::Request),
        }
    }

    /// The echo reply `from` the remote to the requester `to` with identifier `id`.
    pub fn echo_reply(from: Ipv4Addr, to: Ipv4Addr, id: u16) -> Self {
        Self {
            proto: Protocol::Icmp,
            src: Endpoint::new(from, 0),
            dst: Endpoint::new(to, id),
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
            icmp: Some(IcmpKind::Reply),
        }
    }

    /// The same flow seen from the other side (ports swapped; ICMP request ↔ reply).
    pub fn reversed(&self, flags: u8) -> Self {
        Self {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            flags: TcpFlags(flags),
            seq: self.ack,
            ack: self.seq,
            icmp: self.icmp.map(|k| match k {
                IcmpKind::Request => IcmpKind::Reply,
                IcmpKind::Reply => IcmpKind::Request,
            }),
        }
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decodes a captured frame of link type `link` (see [`linktype`]).
pub fn decode(link: u32, data: &[u8]) -> Result<Packet, SkipReason> {
    if data.is_empty() {
        return Err(SkipReason::ZeroLength);
    }
    let ip = match link {
        linktype::ETHERNET => {
            let ethertype = be16(data, 12).ok_or(SkipReason::Truncated)?;
            ether_payload(ethertype, data.get(14..).ok_or(SkipReason::Truncated)?)?
        }
        linktype::RAW => match data[0] >> 4 {
            4 => data,
            6 => return Err(SkipReason::Ipv6),
            _ => return Err(SkipReason::BadIpHeader),
        },
        linktype::IPV4 => data,
        linktype::IPV6 => return Err(SkipReason::Ipv6),
        linktype::LINUX_SLL => {
            let proto = be16(data, 14).ok_or(SkipReason::Truncated)?;
            ether_payload(proto, data.get(16..).ok_or(SkipReason::Truncated)?)?
        }
        linktype::LINUX_SLL2 => {
            let proto = be16(data, 0).ok_or(SkipReason::Truncated)?;
            ether_payload(proto, data.get(20..).ok_or(SkipReason::Truncated)?)?
        }
        linktype::NULL | linktype::LOOP => {
            let fam = data.get(..4).ok_or(SkipReason::Truncated)?;
            let fam = [fam[0], fam[1], fam[2], fam[3]];
            // NULL is in the capturing host's byte order: accept both.
            let v = if link == linktype::LOOP {
                u32::from_be_bytes(fam)
            } else {
                u32::from_le_bytes(fam).min(u32::from_be_bytes(fam))
            };
            match v {
                2 => &data[4..],
                24 | 28 | 30 => return Err(SkipReason::Ipv6),
                _ => return Err(SkipReason::NotIp),
            }
        }
        _ => return Err(SkipReason::UnknownLinkType),
    };
    ipv4(ip)
}

/// Follows 802.1Q / 802.1ad / QinQ tags down to the network layer.
fn ether_payload(mut ethertype: u16, mut rest: &[u8]) -> Result<&[u8], SkipReason> {
    for _ in 0..8 {
        match ethertype {
            0x0800 => return Ok(rest),
            0x86dd => return Err(SkipReason::Ipv6),
            0x8100 | 0x88a8 | 0x9100 => {
                ethertype = be16(rest, 2).ok_or(SkipReason::Truncated)?;
                rest = rest.get(4..).ok_or(SkipReason::Truncated)?;
            }
            _ => return Err(SkipReason::NotIp),
        }
    }
    Err(SkipReason::NotIp)
}

fn ipv4(b: &[u8]) -> Result<Packet, SkipReason> {
    let first = *b.first().ok_or(SkipReason::Truncated)?;
    match first >> 4 {
        4 => {}
        6 => return Err(SkipReason::Ipv6),
        _ => return Err(SkipReason::BadIpHeader),
    }
    if b.len() < 20 {
        return Err(SkipReason::Truncated);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(be16(b, 2).ok_or(SkipReason::Truncated)?);
    if ihl < 20 || total < ihl {
        return Err(SkipReason::BadIpHeader);
    }
    let frag = be16(b, 6).ok_or(SkipReason::Truncated)?;
    if frag & 0x1fff != 0 {
        return Err(SkipReason::NonFirstFragment);
    }
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    // The capture may cut the packet short (snaplen): use what is there, bounded by the
    // IP total length.
    let end = total.min(b.len());
    let l4 = b.get(ihl..end).ok_or(SkipReason::Truncated)?;
    match b[9] {
        6 => {
            let sp = be16(l4, 0).ok_or(SkipReason::Truncated)?;
            let dp = be16(l4, 2).ok_or(SkipReason::Truncated)?;
            let flags = *l4.get(13).ok_or(SkipReason::Truncated)?;
            let seq = be32(l4, 4).ok_or(SkipReason::Truncated)?;
            let ack = be32(l4, 8).ok_or(SkipReason::Truncated)?;
            Ok(Packet::tcp_numbered(
                Endpoint::new(src, sp),
                Endpoint::new(dst, dp),
                flags,
                seq,
                ack,
            ))
        }
        17 => {
            let sp = be16(l4, 0).ok_or(SkipReason::Truncated)?;
            let dp = be16(l4, 2).ok_or(SkipReason::Truncated)?;
            Ok(Packet::udp(Endpoint::new(src, sp), Endpoint::new(dst, dp)))
        }
        1 => {
            let ty = *l4.first().ok_or(SkipReason::Truncated)?;
            let id = be16(l4, 4).ok_or(SkipReason::Truncated)?;
            match ty {
                8 => Ok(Packet::echo_request(src, id, dst)),
                0 => Ok(Packet::echo_reply(src, dst, id)),
                _ => Err(SkipReason::IcmpNotEcho),
            }
        }
        _ => Err(SkipReason::OtherProtocol),
    }
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds a valid IPv4 packet for `pkt` with `payload` zero bytes after the transport
/// header, IP identification `ip_id`, into `out` (cleared first). TCP sequence numbers are
/// not modelled (zero); every checksum is correct so Wireshark shows no error.
pub fn encode_ipv4(pkt: &Packet, payload: u16, ip_id: u16, out: &mut Vec<u8>) {
    out.clear();
    let l4_len: usize = match pkt.proto {
        Protocol::Tcp => 20,
        Protocol::Udp | Protocol::Icmp => 8,
    } + usize::from(payload);
    let total = (20 + l4_len).min(usize::from(u16::MAX)) as u16;
    let proto = pkt.proto.ip_number();
    let src = pkt.src.addr.octets();
    let dst = pkt.dst.addr.octets();
    let frag: u16 = if pkt.proto == Protocol::Icmp {
        0
    } else {
        0x4000
    };
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&frag.to_be_bytes());
    out.extend_from_slice(&[64, proto, 0, 0]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    let c = checksum(0, &out[..20]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    let l4_start = out.len();
    match pkt.proto {
        Protocol::Tcp => {
            out.extend_from_slice(&pkt.src.port.to_be_bytes());
            out.extend_from_slice(&pkt.dst.port.to_be_bytes());
            out.extend_from_slice(&pkt.seq.to_be_bytes());
            out.extend_from_slice(&pkt.ack.to_be_bytes());
            out.extend_from_slice(&[0x50, pkt.flags.0]);
            out.extend_from_slice(&64240u16.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        Protocol::Udp => {
            out.extend_from_slice(&pkt.src.port.to_be_bytes());
            out.extend_from_slice(&pkt.dst.port.to_be_bytes());
            out.extend_from_slice(&(l4_len as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        Protocol::Icmp => {
            let (ty, id) = match pkt.icmp {
                Some(IcmpKind::Reply) => (0u8, pkt.dst.port),
                _ => (8u8, pkt.src.port),
            };
            out.extend_from_slice(&[ty, 0, 0, 0]);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&ip_id.to_be_bytes());
        }
    }
    out.resize(20 + l4_len, 0);
    let l4 = &out[l4_start..];
    let csum = match pkt.proto {
        Protocol::Icmp => checksum(0, l4),
        Protocol::Tcp | Protocol::Udp => {
            // Pseudo header: source, destination, zero, protocol, transport length.
            let mut sum = 0u32;
            for pair in [src, dst] {
                sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
                sum += u32::from(u16::from_be_bytes([pair[2], pair[3]]));
            }
            sum += u32::from(proto) + l4_len as u32;
            let c = checksum(sum, l4);
            if pkt.proto == Protocol::Udp && c == 0 {
                0xffff
            } else {
                c
            }
        }
    };
    let at = l4_start
        + match pkt.proto {
            Protocol::Tcp => 16,
            Protocol::Udp => 6,
            Protocol::Icmp => 2,
        };
    out[at..at + 2].copy_from_slice(&csum.to_be_bytes());
}

/// Prepends a 14-byte Ethernet II header (locally administered MACs) to an IPv4 packet.
pub fn ethernet_frame(ipv4: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
    out.extend_from_slice(ipv4);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn roundtrip(p: Packet) {
        let mut buf = Vec::new();
        encode_ipv4(&p, 33, 7, &mut buf);
        assert_eq!(checksum(0, &buf[..20]), 0, "IPv4 header checksum verifies");
        assert_eq!(decode(linktype::RAW, &buf), Ok(p));
        assert_eq!(decode(linktype::IPV4, &buf), Ok(p));
        let mut eth = Vec::new();
        ethernet_frame(&buf, &mut eth);
        assert_eq!(decode(linktype::ETHERNET, &eth), Ok(p));
    }

    #[test]
    fn encode_decode_roundtrip_all_protocols() {
        roundtrip(Packet::udp(
            ep("192.168.1.23:50000"),
            ep("192.168.1.211:59870"),
        ));
        roundtrip(Packet::tcp(
            ep("192.168.1.10:50001"),
            ep("1.1.1.1:443"),
            0x12,
        ));
        roundtrip(Packet::echo_request(ip("192.168.1.10"), 77, ip("1.1.1.1")));
        roundtrip(Packet::echo_reply(ip("1.1.1.1"), ip("192.168.1.10"), 77));
    }

    #[test]
    fn udp_checksum_matches_a_known_vector() {
        // Verify by summing the pseudo header and segment: the result must be 0.
        let p = Packet::udp(ep("10.0.0.1:1234"), ep("8.8.8.8:53"));
        let mut buf = Vec::new();
        encode_ipv4(&p, 5, 1, &mut buf);
        let mut sum = 0u32;
        for a in [&buf[12..14], &buf[14..16], &buf[16..18], &buf[18..20]] {
            sum += u32::from(u16::from_be_bytes([a[0], a[1]]));
        }
        sum += 17 + (buf.len() as u32 - 20);
        assert_eq!(checksum(sum, &buf[20..]), 0);
    }

    #[test]
    fn vlan_qinq_sll_sll2_and_null() {
        let p = Packet::udp(ep("192.168.1.10:5000"), ep("8.8.8.8:53"));
        let mut ipb = Vec::new();
        encode_ipv4(&p, 0, 1, &mut ipb);
        // QinQ: 88a8 outer, 8100 inner.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        f.extend_from_slice(&ipb);
        assert_eq!(decode(linktype::ETHERNET, &f), Ok(p));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ipb);
        assert_eq!(decode(linktype::LINUX_SLL, &sll), Ok(p));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ipb);
        assert_eq!(decode(linktype::LINUX_SLL2, &sll2), Ok(p));
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ipb);
        assert_eq!(decode(linktype::NULL, &null), Ok(p));
    }

    #[test]
    fn skip_reasons() {
        let p = Packet::udp(ep("192.168.1.10:5000"), ep("8.8.8.8:53"));
        let mut b = Vec::new();
        encode_ipv4(&p, 0, 1, &mut b);
        assert_eq!(decode(linktype::RAW, &[]), Err(SkipReason::ZeroLength));
        assert_eq!(decode(9999, &b), Err(SkipReason::UnknownLinkType));
        assert_eq!(decode(linktype::RAW, &b[..10]), Err(SkipReason::Truncated));
        assert_eq!(decode(linktype::RAW, &b[..22]), Err(SkipReason::Truncated));
        let mut frag = b.clone();
        frag[6] = 0x00;
        frag[7] = 0x10;
        assert_eq!(
            decode(linktype::RAW, &frag),
            Err(SkipReason::NonFirstFragment)
        );
        let mut other = b.clone();
        other[9] = 47;
        assert_eq!(
            decode(linktype::RAW, &other),
            Err(SkipReason::OtherProtocol)
        );
        let mut badihl = b.clone();
        badihl[0] = 0x43;
        assert_eq!(decode(linktype::RAW, &badihl), Err(SkipReason::BadIpHeader));
        assert_eq!(decode(linktype::RAW, &[0x60; 40]), Err(SkipReason::Ipv6));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(decode(linktype::ETHERNET, &arp), Err(SkipReason::NotIp));
        let mut icmp_err = Vec::new();
        encode_ipv4(
            &Packet::echo_request(ip("1.1.1.1"), 1, ip("192.168.1.10")),
            0,
            1,
            &mut icmp_err,
        );
        icmp_err[20] = 3;
        assert_eq!(
            decode(linktype::RAW, &icmp_err),
            Err(SkipReason::IcmpNotEcho)
        );
        // Ethernet header cut inside the VLAN tag.
        let mut cut = vec![0u8; 12];
        cut.extend_from_slice(&[0x81, 0x00, 0]);
        assert_eq!(decode(linktype::ETHERNET, &cut), Err(SkipReason::Truncated));
    }

    #[test]
    fn decode_never_panics_on_short_prefixes() {
        let mut b = Vec::new();
        encode_ipv4(
            &Packet::tcp(ep("192.168.1.10:5000"), ep("1.1.1.1:443"), 2),
            0,
            1,
            &mut b,
        );
        let mut eth = Vec::new();
        ethernet_frame(&b, &mut eth);
        for link in [0, 1, 101, 108, 113, 228, 229, 276] {
            for n in 0..eth.len() {
                let _ = decode(link, &eth[..n]);
                let _ = decode(link, &b[..n.min(b.len())]);
            }
        }
    }
}
