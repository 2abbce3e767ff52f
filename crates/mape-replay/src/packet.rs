//! Frame decoding down to what the NAT engine needs (link layer → IPv4 → TCP/UDP/ICMP echo
//! summary), the reasons a frame is skipped, and the encoder that turns a summary back into a
//! valid IPv4 packet (checksums included) for `--write-pcap`.
//!
//! From the IP header up, parsing and building go through `mape-wire` (its views, `Repr`s
//! and checksums); only the link layer of the capture is read here. Only the fields the
//! engine looks at are read, every read is bounds-checked, and any malformed input ends as
//! a [`SkipReason`], never a panic.

use std::net::Ipv4Addr;

use mape_nat::{Endpoint, Protocol, TcpFlags};
use mape_wire::{
    icmpv4, ipv4, prefix, tcp, udp, ChecksumMode, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
    PseudoHeader, TcpRepr, UdpRepr, WireError,
};

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

/// EtherType values (IEEE 802 numbers, IANA "ieee-802-numbers" registry) this module
/// follows.
mod ethertype {
    pub(super) const IPV4: u16 = 0x0800;
    pub(super) const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag.
    pub(super) const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer tag).
    pub(super) const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub(super) const QINQ_OLD: u16 = 0x9100;
}

/// A big-endian 16-bit link-layer field at `at` (see the crate documentation for why the
/// link layer is read here and not through `mape-wire`).
#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Decodes a captured frame of link type `link` (see [`linktype`]).
pub fn decode(link: u32, data: &[u8]) -> Result<Packet, SkipReason> {
    if data.is_empty() {
        return Err(SkipReason::ZeroLength);
    }
    // Header layouts: tcpdump.org "Link-layer header types" (LINKTYPE_ETHERNET,
    // LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_LOOP).
    let ip = match link {
        linktype::ETHERNET => {
            let ethertype = be16(data, 12).ok_or(SkipReason::Truncated)?;
            ether_payload(ethertype, data.get(14..).ok_or(SkipReason::Truncated)?)?
        }
        // Raw IP: the version nibble tells IPv4 from IPv6 ([`ipv4`] looks at it).
        linktype::RAW | linktype::IPV4 => data,
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
            ethertype::IPV4 => return Ok(rest),
            ethertype::IPV6 => return Err(SkipReason::Ipv6),
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
                // A 4-byte tag: TCI, then the next EtherType.
                ethertype = be16(rest, 2).ok_or(SkipReason::Truncated)?;
                rest = rest.get(4..).ok_or(SkipReason::Truncated)?;
            }
            _ => return Err(SkipReason::NotIp),
        }
    }
    Err(SkipReason::NotIp)
}

/// Decodes an IP packet through `mape-wire`'s views. The capture may cut the packet short
/// (snaplen): the IPv4 header must be whole, the transport header only up to the fields
/// read ([`mape_wire::prefix`]), and the payload is what is there, bounded by the total
/// length.
fn ipv4(b: &[u8]) -> Result<Packet, SkipReason> {
    match prefix::ip_version(b) {
        Some(4) => {}
        Some(6) => return Err(SkipReason::Ipv6),
        Some(_) => return Err(SkipReason::BadIpHeader),
        None => return Err(SkipReason::Truncated),
    }
    let ip = Ipv4Packet::new_checked_header(b).map_err(|e| match e {
        WireError::Truncated => SkipReason::Truncated,
        _ => SkipReason::BadIpHeader,
    })?;
    if !ip.is_first_fragment() {
        return Err(SkipReason::NonFirstFragment);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let l4 = ip.payload();
    match ip.protocol() {
        IpProtocol::TCP => {
            let t = prefix::tcp(l4).ok_or(SkipReason::Truncated)?;
            Ok(Packet::tcp_numbered(
                Endpoint::new(src, t.src_port),
                Endpoint::new(dst, t.dst_port),
                t.flags.bits(),
                t.seq_number,
                t.ack_number,
            ))
        }
        IpProtocol::UDP => {
            let (sp, dp) = mape_wire::ports(l4).ok_or(SkipReason::Truncated)?;
            Ok(Packet::udp(Endpoint::new(src, sp), Endpoint::new(dst, dp)))
        }
        IpProtocol::ICMP => {
            let (ty, id) = prefix::icmpv4_query(l4).ok_or(SkipReason::Truncated)?;
            match ty {
                icmpv4::msg_type::ECHO_REQUEST => Ok(Packet::echo_request(src, id, dst)),
                icmpv4::msg_type::ECHO_REPLY => Ok(Packet::echo_reply(src, dst, id)),
                _ => Err(SkipReason::IcmpNotEcho),
            }
        }
        _ => Err(SkipReason::OtherProtocol),
    }
}

/// Builds a valid IPv4 packet for `pkt` with `payload` zero bytes after the transport
/// header, IP identification `ip_id`, into `out` (cleared first), with `mape-wire`'s
/// `Repr`s: a 20-byte IPv4 header (TTL 64, DF except for ICMP), then a TCP header without
/// options (window 64240), a UDP header, or an ICMP echo request or reply (identifier
/// from the requester's port, sequence number `ip_id`). Every checksum is correct so
/// Wireshark shows no error. The payload is cut so that the packet fits the 16-bit total
/// length (RFC 791 §3.1).
pub fn encode_ipv4(
    pkt: &Packet,
    payload: u16,
    ip_id: u16,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let l4_header = match pkt.proto {
        Protocol::Tcp => tcp::HEADER_LEN,
        Protocol::Udp => udp::HEADER_LEN,
        Protocol::Icmp => icmpv4::HEADER_LEN,
    };
    let payload = usize::from(payload).min(usize::from(u16::MAX) - ipv4::HEADER_LEN - l4_header);
    let l4_len = l4_header + payload;
    out.clear();
    out.resize(ipv4::HEADER_LEN + l4_len, 0);
    let (ip_buf, l4_buf) = out.split_at_mut(ipv4::HEADER_LEN);
    let (src, dst) = (pkt.src.addr, pkt.dst.addr);
    let ph = PseudoHeader::V4 { src, dst };
    let on = ChecksumMode::Enabled;
    match pkt.proto {
        Protocol::Tcp => TcpRepr {
            src_port: pkt.src.port,
            dst_port: pkt.dst.port,
            seq_number: pkt.seq,
            ack_number: pkt.ack,
            flags: tcp::Flags::from_bits(pkt.flags.0),
            window_len: 64240,
            urgent_at: 0,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            timestamps: None,
            payload_len: payload,
        }
        .emit(l4_buf, &ph, on)?,
        Protocol::Udp => UdpRepr {
            src_port: pkt.src.port,
            dst_port: pkt.dst.port,
            payload_len: payload,
        }
        .emit(l4_buf, &ph, on)?,
        Protocol::Icmp => match pkt.icmp {
            Some(IcmpKind::Reply) => Icmpv4Repr::echo_reply(pkt.dst.port, ip_id, payload),
            _ => Icmpv4Repr::echo_request(pkt.src.port, ip_id, payload),
        }
        .emit(l4_buf, on)?,
    };
    Ipv4Repr {
        ident: ip_id,
        dont_frag: pkt.proto != Protocol::Icmp,
        ..Ipv4Repr::new(src, dst, pkt.proto.ip_number(), l4_len)
    }
    .emit(ip_buf, on)?;
    Ok(())
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
        encode_ipv4(&p, 33, 7, &mut buf).unwrap();
        let ip = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(ip.verify_checksum(), "IPv4 header checksum verifies");
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

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn encoded(p: &Packet, payload: u16, ip_id: u16) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_ipv4(p, payload, ip_id, &mut buf).unwrap();
        buf
    }

    #[test]
    fn udp_checksum_matches_a_known_vector() {
        // 10.0.0.1:1234 -> 8.8.8.8:53, 5 zero bytes, IP id 1. Checksums summed by hand
        // (RFC 1071): IPv4 header 0x20bb, UDP over the pseudo header 0xe0bc.
        let p = Packet::udp(ep("10.0.0.1:1234"), ep("8.8.8.8:53"));
        assert_eq!(
            encoded(&p, 5, 1),
            hex("4500002100014000401120bb0a0000010808080804d20035000de0bc0000000000")
        );
    }

    #[test]
    fn tcp_and_icmp_match_known_vectors() {
        // SYN-ACK with sequence and acknowledgement numbers, DF, window 64240, 3 zero bytes;
        // IPv4 checksum 0x8276, TCP 0xe427.
        let p = Packet::tcp_numbered(
            ep("192.168.1.10:50001"),
            ep("104.16.124.96:443"),
            0x12,
            0x0102_0304,
            0xa0b0_c0d0,
        );
        assert_eq!(
            encoded(&p, 3, 0x1234),
            hex(concat!(
                "4500002b1234400040068276c0a8010a68107c60",
                "c35101bb01020304a0b0c0d05012faf0e4270000000000"
            ))
        );
        // Echo request id 77, sequence = IP id 9, no DF; ICMP checksum 0xf7a9.
        let req = Packet::echo_request(ip("192.168.1.10"), 77, ip("1.1.1.1"));
        assert_eq!(
            encoded(&req, 4, 9),
            hex("45000020000900004001b720c0a8010a010101010800f7a9004d000900000000")
        );
        // Its reply: the identifier is the requester's (destination) port.
        let rep = Packet::echo_reply(ip("1.1.1.1"), ip("192.168.1.10"), 77);
        assert_eq!(
            encoded(&rep, 0, 10),
            hex("4500001c000a00004001b72301010101c0a8010a0000ffa8004d000a")
        );
    }

    #[test]
    fn oversized_payload_is_cut_to_the_ipv4_total_length() {
        let p = Packet::udp(ep("10.0.0.1:1234"), ep("8.8.8.8:53"));
        let b = encoded(&p, u16::MAX, 1);
        assert_eq!(b.len(), 65535);
        assert_eq!(&b[2..4], &[0xff, 0xff], "total length");
        assert_eq!(&b[24..26], &[0xff, 0xeb], "UDP length 65535 - 20");
        assert_eq!(decode(linktype::RAW, &b), Ok(p));
    }

    #[test]
    fn a_capture_cut_inside_the_tcp_options_still_decodes() {
        // A SYN with 20 bytes of options captured with a 48-byte snapshot: the TCP header
        // stops after its flags byte.
        let syn = Packet::tcp_numbered(ep("192.168.1.10:50001"), ep("1.1.1.1:443"), 2, 7, 0);
        let mut b = encoded(&syn, 20, 1);
        b[32] = 0xa0; // data offset 10: the 20 "payload" bytes are options
        b.truncate(20 + 14);
        assert_eq!(decode(linktype::RAW, &b), Ok(syn));
        b.truncate(20 + 13);
        assert_eq!(decode(linktype::RAW, &b), Err(SkipReason::Truncated));
        // ICMP: type and identifier are enough.
        let req = Packet::echo_request(ip("192.168.1.10"), 77, ip("1.1.1.1"));
        let b = encoded(&req, 0, 1);
        assert_eq!(decode(linktype::RAW, &b[..26]), Ok(req));
        assert_eq!(decode(linktype::RAW, &b[..25]), Err(SkipReason::Truncated));
    }

    #[test]
    fn vlan_qinq_sll_sll2_and_null() {
        let p = Packet::udp(ep("192.168.1.10:5000"), ep("8.8.8.8:53"));
        let mut ipb = Vec::new();
        encode_ipv4(&p, 0, 1, &mut ipb).unwrap();
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
        encode_ipv4(&p, 0, 1, &mut b).unwrap();
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
        )
        .unwrap();
        icmp_err[20] = 3;
        assert_eq!(
            decode(linktype::RAW, &icmp_err),
            Err(SkipReason::IcmpNotEcho)
        );
        // IHL 15 (60-byte header) in a frame cut after 30 bytes: the header itself is
        // missing, whatever its other fields say.
        let mut long_hdr = Vec::new();
        encode_ipv4(&p, 20, 1, &mut long_hdr).unwrap();
        long_hdr[0] = 0x4f;
        long_hdr[7] = 0x10;
        assert_eq!(
            decode(linktype::RAW, &long_hdr[..30]),
            Err(SkipReason::Truncated)
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
        )
        .unwrap();
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
