//! IPv6 header view, builder and [`Repr`] (RFC 8200 §3), the extension-header walker
//! (hop-by-hop §4.3, routing §4.4, destination options §4.6) and the fragment header
//! (§4.5) parser/builder.

use core::net::Ipv6Addr;

use crate::be;
use crate::{IpProtocol, Result, WireError};

/// Byte ranges of the fixed IPv6 header (RFC 8200 §3).
mod field {
    use crate::Field;
    pub(crate) const VER_TC_FLOW: Field = 0..4;
    pub(crate) const LENGTH: Field = 4..6;
    pub(crate) const NXT_HDR: usize = 6;
    pub(crate) const HOP_LIMIT: usize = 7;
    pub(crate) const SRC_ADDR: Field = 8..24;
    pub(crate) const DST_ADDR: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// IPv6 minimum link MTU (RFC 8200 §5); bounds ICMPv6 error size (RFC 4443 §2.4 (c)).
pub const MIN_MTU: usize = 1280;
/// Most extension headers the walker follows before giving up with
/// [`WireError::TooManyExtHeaders`]. RFC 8200 §4.1 recommends at most one of each (two
/// destination options), so 8 is generous.
pub const MAX_EXT_HEADERS: usize = 8;

/// A read/write view of an IPv6 packet in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and run [`Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Wrap a buffer that may be cut short (embedded in an ICMPv6 error) and run
    /// [`Packet::check_header`].
    #[inline]
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    /// The fixed header is present and the version is 6.
    #[inline]
    pub fn check_header(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if d[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        Ok(())
    }

    /// [`Packet::check_header`] and the buffer holds `40 + payload_len` bytes (a longer
    /// buffer is fine; the payload is cut to `payload_len`). Jumbograms (payload length 0
    /// with a jumbo option, RFC 2675) are not supported: they read as empty payloads.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        if self.buffer.as_ref().len() < HEADER_LEN + self.payload_len() as usize {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (be::u32_at(self.buffer.as_ref(), field::VER_TC_FLOW.start) >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::VER_TC_FLOW.start) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    #[inline]
    fn payload_end(&self) -> usize {
        let len = self.buffer.as_ref().len();
        (HEADER_LEN + self.payload_len() as usize).min(len)
    }

    /// Payload after the fixed header (extension headers included), cut to `payload_len`
    /// or to the buffer, whichever is shorter.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = self.payload_end();
        let d = self.buffer.as_ref();
        &d[HEADER_LEN.min(end)..end]
    }

    /// The packet up to `40 + payload_len`, clamped to the buffer.
    #[inline]
    pub fn packet_bytes(&self) -> &[u8] {
        let end = self.payload_end();
        &self.buffer.as_ref()[..end]
    }

    /// Walk the extension headers (see [`walk`]). Offsets in the result are from the start
    /// of the IPv6 header.
    #[inline]
    pub fn ext_headers(&self) -> Result<ExtHeaders> {
        let mut e = walk(self.next_header(), self.payload())?;
        e.offset += HEADER_LEN;
        if let Some(f) = e.fragment_at.as_mut() {
            *f += HEADER_LEN;
        }
        Ok(e)
    }

    /// Upper-layer protocol and its bytes (after all extension headers).
    #[inline]
    pub fn upper_layer(&self) -> Result<(u8, &[u8])> {
        let e = self.ext_headers()?;
        let end = self.payload_end();
        let d = self.buffer.as_ref();
        Ok((e.protocol, &d[e.offset.min(end)..end]))
    }
}

impl<'a> Packet<&'a [u8]> {
    /// [`Packet::payload`] for the lifetime of the buffer, not of the view.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let end = self.payload_end();
        &self.buffer[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_vtf(&mut self, mask: u32, value: u32) {
        let d = self.buffer.as_mut();
        let old = be::u32_at(d, 0);
        be::set_u32(d, 0, (old & !mask) | (value & mask));
    }

    /// Set the version.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        self.set_vtf(0xf000_0000, u32::from(v) << 28)
    }

    /// Set the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, v: u8) {
        self.set_vtf(0x0ff0_0000, u32::from(v) << 20)
    }

    /// Set the flow label (low 20 bits used).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        self.set_vtf(0x000f_ffff, v)
    }

    /// Set the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }

    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v
    }

    /// Set the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }

    /// Mutable payload (same range as [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.payload_end();
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }

    /// Mutable whole buffer.
    #[inline]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// A high-level fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header of the fixed header.
    pub next_header: u8,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Header with hop limit 64, traffic class and flow label 0.
    pub const fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload_len: usize) -> Repr {
        Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    /// Parse the fixed header of a packet (runs `check_len`).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len() as usize,
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Length of the emitted header (40).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the fixed header into `buf[..40]`. Returns 40.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let len = u16::try_from(self.payload_len).map_err(|_| WireError::FieldOverflow)?;
        if self.flow_label > 0x000f_ffff {
            return Err(WireError::FieldOverflow);
        }
        let mut p = Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_vtf(0xffff_ffff, 6 << 28);
        p.set_traffic_class(self.traffic_class);
        p.set_flow_label(self.flow_label);
        p.set_payload_len(len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        Ok(HEADER_LEN)
    }
}

/// The IPv6 Fragment header (RFC 8200 §4.5), 8 bytes:
/// next header, reserved, 13-bit offset + 2 reserved bits + M flag, 32-bit identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentHeader {
    /// Next header of the fragmentable part.
    pub next_header: u8,
    /// Fragment offset **in bytes** (multiple of 8).
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more_fragments: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentHeader {
    /// Wire length of the fragment header.
    pub const LEN: usize = 8;

    /// Parse from the first 8 bytes of `bytes`.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<FragmentHeader> {
        if bytes.len() < Self::LEN {
            return Err(WireError::Truncated);
        }
        let om = be::u16_at(bytes, 2);
        Ok(FragmentHeader {
            next_header: bytes[0],
            offset: om & 0xfff8,
            more_fragments: om & 1 != 0,
            ident: be::u32_at(bytes, 4),
        })
    }

    /// Write into `buf[..8]`; reserved fields zero. Returns 8.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < Self::LEN {
            return Err(WireError::BufferTooSmall);
        }
        buf[0] = self.next_header;
        buf[1] = 0;
        be::set_u16(
            buf,
            2,
            (self.offset & 0xfff8) | u16::from(self.more_fragments),
        );
        be::set_u32(buf, 4, self.ident);
        Ok(Self::LEN)
    }

    /// Whether this fragment holds the start of the packet (offset 0).
    #[inline]
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Atomic fragment (RFC 6946): offset 0 and no more fragments.
    #[inline]
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more_fragments
    }
}

/// Result of [`walk`]: where the upper layer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtHeaders {
    /// Upper-layer protocol (the first next-header value that is not hop-by-hop, routing,
    /// destination options or fragment). For a non-first fragment this is the fragment
    /// header's next header, and `offset` points at fragment data, not at a header.
    pub protocol: u8,
    /// Offset of the upper-layer header (see [`Packet::ext_headers`] for the origin).
    pub offset: usize,
    /// The fragment header, if any.
    pub fragment: Option<FragmentHeader>,
    /// Offset of the fragment header, if any: the length of the unfragmentable part.
    pub fragment_at: Option<usize>,
    /// Number of extension headers skipped.
    pub count: u8,
}

impl ExtHeaders {
    /// Whether a fragment header was present (atomic fragments included).
    #[inline]
    pub const fn is_fragment(&self) -> bool {
        self.fragment.is_some()
    }

    /// Whether the upper-layer header is present: no fragment header, or offset 0.
    #[inline]
    pub fn has_upper_header(&self) -> bool {
        self.fragment.is_none_or(|f| f.is_first())
    }
}

/// The index in `packet` (an IPv6 packet from its fixed header) of the next-header byte
/// that names the extension header at offset `at`: byte 6 of the fixed header, or the
/// first byte of the extension header before it (RFC 8200 §4: hop-by-hop, routing and
/// destination options headers are `(len + 1) × 8` bytes). `None` if the chain does not
/// land on `at` or `at` is not named as a fragment header. Reassembly rewrites that byte.
pub fn fragment_nh_index(packet: &[u8], at: usize) -> Option<usize> {
    let mut pos = field::NXT_HDR;
    let mut off = HEADER_LEN;
    while off < at {
        pos = off;
        off += (usize::from(*packet.get(off + 1)?) + 1) * 8;
    }
    (off == at && *packet.get(pos)? == IpProtocol::IPV6_FRAG).then_some(pos)
}

/// Walk the extension-header chain of an IPv6 payload `bytes` whose first header is
/// `next_header` (RFC 8200 §4.1). Skips hop-by-hop (0, only as the first header), routing
/// (43) and destination options (60) headers; parses the fragment header (44) and stops
/// right after it for non-first fragments (what follows is fragment data). Any other value
/// (TCP, UDP, ICMPv6, IPv4-in-IPv6, No Next Header 59, ESP, AH, ...) ends the walk.
///
/// Offsets are from the start of `bytes`. Bounded by [`MAX_EXT_HEADERS`]; never panics.
pub fn walk(next_header: u8, bytes: &[u8]) -> Result<ExtHeaders> {
    let mut e = ExtHeaders {
        protocol: next_header,
        offset: 0,
        fragment: None,
        fragment_at: None,
        count: 0,
    };
    loop {
        match e.protocol {
            IpProtocol::HOPOPT | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                if e.protocol == IpProtocol::HOPOPT && e.count != 0 {
                    // RFC 8200 §4.1: hop-by-hop only immediately after the IPv6 header.
                    return Err(WireError::BadExtHeader);
                }
                if usize::from(e.count) >= MAX_EXT_HEADERS {
                    return Err(WireError::TooManyExtHeaders);
                }
                let hdr = bytes
                    .get(e.offset..e.offset + 2)
                    .ok_or(WireError::Truncated)?;
                // Hdr Ext Len in 8-octet units, not counting the first 8 octets.
                let len = (usize::from(hdr[1]) + 1) * 8;
                if bytes.len() < e.offset + len {
                    return Err(WireError::Truncated);
                }
                e.protocol = hdr[0];
                e.offset += len;
                e.count += 1;
            }
            IpProtocol::IPV6_FRAG => {
                if e.fragment.is_some() {
                    return Err(WireError::BadExtHeader);
                }
                if usize::from(e.count) >= MAX_EXT_HEADERS {
                    return Err(WireError::TooManyExtHeaders);
                }
                let f = FragmentHeader::parse(bytes.get(e.offset..).unwrap_or(&[]))?;
                e.fragment_at = Some(e.offset);
                e.fragment = Some(f);
                e.protocol = f.next_header;
                e.offset += FragmentHeader::LEN;
                e.count += 1;
                if !f.is_first() {
                    return Ok(e);
                }
            }
            _ => return Ok(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_payload_outlives_the_view() {
        // Payload length 3, four bytes present after the fixed header.
        let mut b = [0u8; 44];
        b[0] = 0x60;
        b[5] = 3;
        b[40..].copy_from_slice(&[1, 2, 3, 4]);
        let p: &[u8] = Packet::new_checked(&b[..]).unwrap().into_payload();
        assert_eq!(p, &[1, 2, 3]);
    }

    #[test]
    fn fragment_nh_index_walks_the_chain() {
        let mut p = [0u8; 64];
        p[6] = 44;
        assert_eq!(fragment_nh_index(&p, 40), Some(6));
        // Destination options (60, 8 bytes) naming the fragment header at 48.
        p[6] = 60;
        p[40] = 44;
        p[41] = 0;
        assert_eq!(fragment_nh_index(&p, 48), Some(40));
        assert_eq!(fragment_nh_index(&p, 44), None);
        p[40] = 17;
        assert_eq!(fragment_nh_index(&p, 48), None);
        assert_eq!(fragment_nh_index(&p[..41], 48), None);
    }
    use proptest::prelude::*;

    // = tests/fixtures/ipv6_hbh_dstopt_tcp.bin: hop-by-hop (PadN) + destination options
    // (PadN) + TCP SYN-ACK 443 -> 40000 with MSS 1440. tshark 4.0.17: TCP checksum 0x7861
    // [correct].
    static HBH_DST_TCP: [u8; 80] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, // IPv6
        0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // hop-by-hop
        0x06, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // destination options
        0x01, 0xbb, 0x9c, 0x40, 0x11, 0x11, 0x11, 0x11, 0x01, 0x02, 0x03, 0x05, 0x60, 0x12, 0xff,
        0xff, 0x78, 0x61, 0x00, 0x00, 0x02, 0x04, 0x05, 0xa0,
    ];

    // = tests/fixtures/ipv6_udp.bin: UDP 2001:db8:1::10:50000 -> 2001:db8:2::20:9999
    // "hello", traffic class 0xb8, flow label 0x12345. tshark: UDP checksum 0x75fd [correct].
    static IPV6_UDP: [u8; 53] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x0d, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0xc3, 0x50, 0x27, 0x0f, 0x00,
        0x0d, 0x75, 0xfd, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
    ];

    // = tests/fixtures/ipv6_frag_icmpv6_echo.bin: atomic fragment, id 0xdeadbeef, ICMPv6
    // echo request. tshark: fragment header next=58 offset 0 M=0; ICMPv6 checksum [correct].
    static FRAG_ECHO: [u8; 60] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0x00, 0x00, 0x00, 0xde,
        0xad, 0xbe, 0xef, 0x80, 0x00, 0x99, 0x6e, 0xab, 0xcd, 0x00, 0x07, 0x70, 0x69, 0x6e, 0x67,
    ];

    fn x() -> Ipv6Addr {
        "2001:db8:1::10".parse().unwrap()
    }
    fn y() -> Ipv6Addr {
        "2001:db8:2::20".parse().unwrap()
    }

    fn udp_repr() -> Repr {
        Repr {
            src_addr: x(),
            dst_addr: y(),
            next_header: IpProtocol::UDP,
            payload_len: 13,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&IPV6_UDP[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 13);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), x());
        assert_eq!(p.dst_addr(), y());
        assert_eq!(p.payload(), &IPV6_UDP[40..]);
        assert_eq!(Repr::parse(&p).unwrap(), udp_repr());
        let e = p.ext_headers().unwrap();
        assert_eq!(
            (e.protocol, e.offset, e.count, e.fragment),
            (17, 40, 0, None)
        );
        assert_eq!(p.upper_layer().unwrap(), (17, &IPV6_UDP[40..]));
    }

    #[test]
    fn construct() {
        let mut buf = IPV6_UDP;
        buf[..40].fill(0xff);
        assert_eq!(udp_repr().emit(&mut buf).unwrap(), 40);
        assert_eq!(buf, IPV6_UDP);
        assert_eq!(
            udp_repr().emit(&mut buf[..39]),
            Err(WireError::BufferTooSmall)
        );
        let r = Repr {
            payload_len: 70_000,
            ..udp_repr()
        };
        assert_eq!(r.emit(&mut buf), Err(WireError::FieldOverflow));
    }

    #[test]
    fn walk_hbh_dstopt() {
        let p = Packet::new_checked(&HBH_DST_TCP[..]).unwrap();
        let e = p.ext_headers().unwrap();
        assert_eq!(e.protocol, IpProtocol::TCP);
        assert_eq!(e.offset, 56);
        assert_eq!(e.count, 2);
        assert!(!e.is_fragment() && e.has_upper_header());
        let (proto, l4) = p.upper_layer().unwrap();
        assert_eq!(proto, IpProtocol::TCP);
        assert_eq!(&l4[..4], &[0x01, 0xbb, 0x9c, 0x40]);
    }

    #[test]
    fn walk_fragment() {
        let p = Packet::new_checked(&FRAG_ECHO[..]).unwrap();
        let e = p.ext_headers().unwrap();
        assert_eq!(e.protocol, IpProtocol::ICMPV6);
        assert_eq!(e.offset, 48);
        assert_eq!(e.fragment_at, Some(40));
        let f = e.fragment.unwrap();
        assert_eq!(
            f,
            FragmentHeader {
                next_header: 58,
                offset: 0,
                more_fragments: false,
                ident: 0xdeadbeef
            }
        );
        assert!(f.is_atomic() && e.has_upper_header());
        let mut b = [0u8; 8];
        f.emit(&mut b).unwrap();
        assert_eq!(&b, &FRAG_ECHO[40..48]);
    }

    #[test]
    fn walk_non_first_fragment_stops() {
        // Fragment (offset 1232, M=1) whose data happens to look like a routing header.
        let mut b = [0u8; 32];
        FragmentHeader {
            next_header: IpProtocol::IPV6_OPTS,
            offset: 1232,
            more_fragments: true,
            ident: 1,
        }
        .emit(&mut b)
        .unwrap();
        b[8] = 6;
        b[9] = 200; // would point far out of the buffer
        let e = walk(IpProtocol::IPV6_FRAG, &b).unwrap();
        assert_eq!(e.protocol, IpProtocol::IPV6_OPTS);
        assert_eq!(e.offset, 8);
        assert!(!e.has_upper_header());
        assert_eq!(e.fragment.unwrap().offset, 1232);
        assert!(e.fragment.unwrap().more_fragments);
    }

    #[test]
    fn walk_errors() {
        // Hop-by-hop not first.
        let mut b = [0u8; 16];
        b[0] = IpProtocol::HOPOPT;
        assert_eq!(
            walk(IpProtocol::IPV6_OPTS, &b),
            Err(WireError::BadExtHeader)
        );
        // Too many destination options headers.
        let mut b = [0u8; 8 * 10];
        for c in b.chunks_mut(8) {
            c[0] = IpProtocol::IPV6_OPTS;
        }
        assert_eq!(
            walk(IpProtocol::IPV6_OPTS, &b),
            Err(WireError::TooManyExtHeaders)
        );
        // Two fragment headers.
        let mut b = [0u8; 16];
        b[0] = IpProtocol::IPV6_FRAG;
        assert_eq!(
            walk(IpProtocol::IPV6_FRAG, &b),
            Err(WireError::BadExtHeader)
        );
        // Length pointing past the end.
        let b = [6u8, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(walk(IpProtocol::IPV6_ROUTE, &b), Err(WireError::Truncated));
        // No next header ends the walk.
        let b = [59u8, 0, 0, 0, 0, 0, 0, 0];
        let e = walk(IpProtocol::IPV6_OPTS, &b).unwrap();
        assert_eq!((e.protocol, e.offset), (IpProtocol::IPV6_NONXT, 8));
    }

    #[test]
    fn truncated_at_every_length() {
        for full in [&HBH_DST_TCP[..], &IPV6_UDP[..], &FRAG_ECHO[..]] {
            for n in 0..full.len() {
                assert_eq!(
                    Packet::new_checked(&full[..n]),
                    Err(WireError::Truncated),
                    "len {n}"
                );
                if let Ok(p) = Packet::new_checked_header(&full[..n]) {
                    // Cut-short views walk what is there, or report truncation.
                    let _ = p.ext_headers();
                }
            }
            // Walking cut-short payloads never panics; the upper layer is found only once
            // every extension header is complete.
            let p = Packet::new_checked(full).unwrap();
            let want = p.ext_headers().unwrap();
            for n in 0..p.payload().len() {
                match walk(p.next_header(), &p.payload()[..n]) {
                    Ok(e) => assert!(e.offset <= n && e.offset + 40 == want.offset, "len {n}"),
                    Err(err) => assert_eq!(err, WireError::Truncated),
                }
            }
        }
    }

    #[test]
    fn bad_version_and_longer_buffer() {
        let mut b = IPV6_UDP;
        b[0] = 0x4b;
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::BadVersion));
        let mut v = IPV6_UDP.to_vec();
        v.extend_from_slice(&[0xee; 7]);
        let p = Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.payload(), &IPV6_UDP[40..]);
        assert_eq!(p.packet_bytes(), &IPV6_UDP[..]);
    }

    #[test]
    fn setters() {
        let mut b = IPV6_UDP;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_traffic_class(0x01);
        p.set_flow_label(0xfffff);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 1, 0xfffff)
        );
        p.set_hop_limit(1);
        p.set_next_header(59);
        p.set_payload_len(5);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.payload().len(), 5);
        p.payload_mut()[0] = 0;
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, Ipv6Addr::LOCALHOST);
        assert_eq!((r.hop_limit, r.next_header, r.payload_len), (1, 59, 5));
        assert_eq!(b[40], 0);
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(
            s in any::<[u8; 16]>(), d in any::<[u8; 16]>(), nh in any::<u8>(),
            pl in 0usize..2000, hl in any::<u8>(), tc in any::<u8>(), fl in 0u32..0x100000,
        ) {
            let r = Repr { src_addr: s.into(), dst_addr: d.into(), next_header: nh, payload_len: pl,
                hop_limit: hl, traffic_class: tc, flow_label: fl };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
            let (h, _) = etherparse::Ipv6Header::from_slice(&buf).unwrap();
            prop_assert_eq!(h.flow_label.value(), fl);
            prop_assert_eq!(h.traffic_class, tc);
            prop_assert_eq!(h.payload_length as usize, pl);
        }

        #[test]
        fn fragment_header_round_trip(nh in any::<u8>(), off in 0u16..8192, m in any::<bool>(), id in any::<u32>()) {
            let f = FragmentHeader { next_header: nh, offset: off << 3, more_fragments: m, ident: id };
            let mut b = [0u8; 8];
            f.emit(&mut b).unwrap();
            prop_assert_eq!(FragmentHeader::parse(&b).unwrap(), f);
            let (e, _) = etherparse::Ipv6FragmentHeader::from_slice(&b).unwrap();
            prop_assert_eq!(e.fragment_offset.value(), off);
            prop_assert_eq!(e.more_fragments, m);
            prop_assert_eq!(e.identification, id);
        }

        #[test]
        fn walk_never_panics(nh in prop_oneof![Just(0u8), Just(43), Just(44), Just(60), any::<u8>()],
                             b in proptest::collection::vec(prop_oneof![Just(0u8), Just(43), Just(44), Just(60), any::<u8>()], 0..120)) {
            if let Ok(e) = walk(nh, &b) {
                prop_assert!(e.offset <= b.len());
                prop_assert!(usize::from(e.count) <= MAX_EXT_HEADERS);
            }
        }
    }
}
