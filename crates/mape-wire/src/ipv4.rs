//! IPv4 header view, builder and [`Repr`] (RFC 791 §3.1; fragmentation fields RFC 791 §3.2,
//! header checksum RFC 1071/RFC 1624).

use core::net::Ipv4Addr;

use crate::be;
use crate::checksum;
use crate::{ChecksumMode, Result, WireError};

/// Byte ranges of the IPv4 header (RFC 791 §3.1).
mod field {
    use crate::Field;
    pub(crate) const VER_IHL: usize = 0;
    pub(crate) const DSCP_ECN: usize = 1;
    pub(crate) const LENGTH: Field = 2..4;
    pub(crate) const IDENT: Field = 4..6;
    pub(crate) const FLG_OFF: Field = 6..8;
    pub(crate) const TTL: usize = 8;
    pub(crate) const PROTOCOL: usize = 9;
    pub(crate) const CHECKSUM: Field = 10..12;
    pub(crate) const SRC_ADDR: Field = 12..16;
    pub(crate) const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 header (IHL = 15).
pub const MAX_HEADER_LEN: usize = 60;
/// RFC 791: every host must accept datagrams of 576 octets; RFC 1812 §4.3.2.3 bounds
/// ICMP errors to it.
pub const MIN_MTU: usize = 576;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checks. Accessors may panic unless [`Packet::check_len`]
    /// (or [`Packet::check_header`]) succeeds.
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

    /// Wrap a buffer that may be cut short (the datagram embedded in an ICMP error) and run
    /// [`Packet::check_header`]. [`Packet::payload`] then returns what is present.
    #[inline]
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    /// Validate the header only: version 4, IHL ≥ 5, the whole header (with options)
    /// present, total length ≥ header length. The payload may be shorter than total length.
    #[inline]
    pub fn check_header(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if d[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if d.len() < hl {
            return Err(WireError::Truncated);
        }
        if (self.total_len() as usize) < hl {
            return Err(WireError::BadTotalLen);
        }
        Ok(())
    }

    /// Validate [`Packet::check_header`] and that the buffer holds `total_len` bytes.
    /// A longer buffer is fine (link padding): [`Packet::payload`] stops at `total_len`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        if self.buffer.as_ref().len() < self.total_len() as usize {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer, including bytes past `total_len`.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (4 for valid packets).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// IHL field in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        self.ihl() * 4
    }

    /// DSCP (upper 6 bits of the former TOS byte, RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// ECN (lower 2 bits, RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The whole TOS / traffic-class byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length field (header + payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset **in bytes** (the 13-bit field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be::u16_at(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment of a larger datagram (MF set or offset ≠ 0).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Whether the packet carries the start of the datagram (offset 0): true for
    /// unfragmented packets too. Only such a packet carries the transport header.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK == 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`crate::IpProtocol`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[..(self.header_len() as usize).min(d.len())]
    }

    /// Options bytes (between the fixed header and the payload); skipped, not parsed.
    #[inline]
    pub fn options(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let hl = (self.header_len() as usize).clamp(HEADER_LEN, d.len());
        &d[HEADER_LEN..hl]
    }

    #[inline]
    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let end = (self.total_len() as usize).min(len);
        let start = (self.header_len() as usize).min(end);
        start..end
    }

    /// Payload: from the end of the header to `total_len` (or the end of the buffer if it
    /// is shorter, for views made by [`Packet::new_checked_header`]).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let r = self.payload_range();
        &self.buffer.as_ref()[r]
    }

    /// The packet up to `total_len` (without link padding), clamped to the buffer.
    #[inline]
    pub fn packet_bytes(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[..(self.total_len() as usize).min(d.len())]
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version field.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[field::VER_IHL] = (d[field::VER_IHL] & 0x0f) | (v << 4);
    }

    /// Set the header length in bytes (must be a multiple of 4, ≤ 60).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let d = self.buffer.as_mut();
        d[field::VER_IHL] = (d[field::VER_IHL] & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Set DSCP.
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[field::DSCP_ECN] = (d[field::DSCP_ECN] & 0x03) | (v << 2);
    }

    /// Set ECN.
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[field::DSCP_ECN] = (d[field::DSCP_ECN] & !0x03) | (v & 0x03);
    }

    /// Set the whole TOS byte.
    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Set total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }

    /// Set identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::IDENT.start, v)
    }

    #[inline]
    fn set_flg_off_bits(&mut self, mask: u16, value: u16) {
        let d = self.buffer.as_mut();
        let old = be::u16_at(d, field::FLG_OFF.start);
        be::set_u16(d, field::FLG_OFF.start, (old & !mask) | (value & mask));
    }

    /// Set Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, v: bool) {
        self.set_flg_off_bits(FLAG_DF, if v { FLAG_DF } else { 0 })
    }

    /// Set More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, v: bool) {
        self.set_flg_off_bits(FLAG_MF, if v { FLAG_MF } else { 0 })
    }

    /// Set fragment offset **in bytes** (must be a multiple of 8; lower bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.set_flg_off_bits(OFFSET_MASK, bytes >> 3)
    }

    /// Clear both flags and the offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.set_flg_off_bits(0xffff, 0)
    }

    /// Set TTL (checksum not updated).
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Set protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }

    /// Set the source address (checksum not updated).
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }

    /// Set the destination address (checksum not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }

    /// Compute and store the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::of(self.header());
        self.set_checksum(c)
    }

    /// Router forwarding step (RFC 1812 §5.3.1): decrement TTL and update the header
    /// checksum incrementally (RFC 1624). Returns the new TTL; does nothing and returns 0
    /// if the TTL is already 0.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        let proto = self.protocol();
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl - 1, proto]);
        self.set_ttl(ttl - 1);
        let c = checksum::update_16(self.checksum(), old, new);
        self.set_checksum(c);
        ttl - 1
    }

    /// Mutable options bytes.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.as_ref().len();
        let hl = (self.header_len() as usize).clamp(HEADER_LEN, len);
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Mutable payload (same range as [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = self.payload_range();
        &mut self.buffer.as_mut()[r]
    }

    /// Mutable whole buffer.
    #[inline]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// A high-level IPv4 header (options are not represented; `emit` writes a 20-byte header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (total length − header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP.
    pub dscp: u8,
    /// ECN.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (multiple of 8).
    pub frag_offset: u16,
}

impl Repr {
    /// A plain unfragmented header with DF set, TTL 64 and DSCP/ECN 0.
    pub const fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload_len: usize) -> Repr {
        Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
    }

    /// Parse a checked packet; verifies the header checksum when `mode` is enabled.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, mode: ChecksumMode) -> Result<Repr> {
        packet.check_len()?;
        if mode == ChecksumMode::Enabled && !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Length of the emitted header (always 20).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the header into `buf[..20]` (payload bytes untouched) and fill the checksum
    /// when `mode` is enabled. Returns the header length.
    pub fn emit(&self, buf: &mut [u8], mode: ChecksumMode) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let total = u16::try_from(self.buffer_len()).map_err(|_| WireError::FieldOverflow)?;
        let mut p = Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_version(4);
        p.set_header_len(HEADER_LEN as u8);
        p.set_tos((self.dscp << 2) | (self.ecn & 0x03));
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.clear_flags();
        p.set_dont_frag(self.dont_frag);
        p.set_more_frags(self.more_frags);
        p.set_frag_offset(self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        if mode == ChecksumMode::Enabled {
            p.fill_checksum();
        } else {
            p.set_checksum(0);
        }
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IpProtocol;
    use proptest::prelude::*;

    // IPv4/UDP DNS query 192.0.2.10:53000 -> 198.51.100.53:53, "example.com A".
    // = tests/fixtures/ipv4_udp_dns.bin (gen.py); tshark 4.0.17: IPv4 header checksum
    // 0x3c0d [correct], UDP checksum 0xc8b7 [correct].
    static PACKET_BYTES: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3c, 0x0d, 0xc0, 0x00, 0x02,
        0x0a, 0xc6, 0x33, 0x64, 0x35, // IPv4 header
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0xc8, 0xb7, // UDP header
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78,
        0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 10),
            dst_addr: Ipv4Addr::new(198, 51, 100, 53),
            protocol: IpProtocol::UDP,
            payload_len: 37,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0x1234,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 57);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert!(p.is_first_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.checksum(), 0x3c0d);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 53));
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), &PACKET_BYTES[20..]);
        assert_eq!(Repr::parse(&p, ChecksumMode::Enabled).unwrap(), repr());
    }

    #[test]
    fn construct() {
        let mut buf = PACKET_BYTES;
        buf[..20].fill(0xee);
        let r = repr();
        assert_eq!(r.emit(&mut buf, ChecksumMode::Enabled).unwrap(), 20);
        assert_eq!(buf, PACKET_BYTES);
        assert_eq!(
            r.emit(&mut buf[..19], ChecksumMode::Enabled),
            Err(WireError::BufferTooSmall)
        );
        let big = Repr {
            payload_len: 65_516,
            ..r
        };
        assert_eq!(
            big.emit(&mut buf, ChecksumMode::Enabled),
            Err(WireError::FieldOverflow)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..PACKET_BYTES.len() {
            let e = Packet::new_checked(&PACKET_BYTES[..n]).unwrap_err();
            assert_eq!(e, WireError::Truncated, "len {n}");
        }
        // A cut-short datagram (as in an ICMP error) passes check_header from 20 bytes.
        for n in 20..PACKET_BYTES.len() {
            let p = Packet::new_checked_header(&PACKET_BYTES[..n]).unwrap();
            assert_eq!(p.payload(), &PACKET_BYTES[20..n]);
        }
    }

    #[test]
    fn longer_buffer_is_cut_to_total_len() {
        let mut buf = [0u8; 64];
        buf[..57].copy_from_slice(&PACKET_BYTES);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 37);
        assert_eq!(p.packet_bytes(), &PACKET_BYTES[..]);
    }

    #[test]
    fn inconsistent_headers() {
        let mut b = PACKET_BYTES;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::BadVersion));
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::BadHeaderLen));
        b[0] = 0x4f; // 60-byte header in a 57-byte packet
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::Truncated));
        b[0] = 0x46;
        b[2..4].copy_from_slice(&23u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::BadTotalLen));
        let mut b = PACKET_BYTES;
        b[15] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(
            Repr::parse(&p, ChecksumMode::Enabled),
            Err(WireError::BadChecksum)
        );
        assert!(Repr::parse(&p, ChecksumMode::Disabled).is_ok());
    }

    #[test]
    fn options_are_skipped() {
        // Header with 4 bytes of options (NOP NOP NOP EOL).
        let mut b = [0u8; 28];
        b[0] = 0x46;
        b[2..4].copy_from_slice(&28u16.to_be_bytes());
        b[8] = 1;
        b[9] = IpProtocol::ICMP;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        b[24..28].copy_from_slice(&[8, 0, 0xf7, 0xff]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[8, 0, 0xf7, 0xff]);
        assert_eq!(
            Repr::parse(&p, ChecksumMode::Enabled).unwrap().payload_len,
            4
        );
    }

    #[test]
    fn setters_and_fragments() {
        let mut b = PACKET_BYTES;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_dscp(46);
        p.set_ecn(3);
        assert_eq!((p.dscp(), p.ecn(), p.tos()), (46, 3, 0xbb));
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert!(p.is_fragment() && !p.is_first_fragment() && p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        p.set_dont_frag(false);
        p.set_frag_offset(0);
        assert!(p.is_fragment() && p.is_first_fragment() && !p.dont_frag());
        p.set_src_addr(Ipv4Addr::new(203, 0, 113, 1));
        p.set_dst_addr(Ipv4Addr::new(203, 0, 113, 2));
        p.set_ident(7);
        p.set_protocol(6);
        p.set_ttl(3);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), 2);
        assert!(p.verify_checksum());
        p.set_ttl(0);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl(), 0);
        assert!(p.verify_checksum());
        p.payload_mut()[0] = 0xaa;
        assert_eq!(b[20], 0xaa);
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..1500,
            any::<u8>(),
            0u8..64,
            0u8..4,
            any::<u16>(),
            any::<(bool, bool)>(),
            0u16..8192,
        )
            .prop_map(|(s, d, pr, pl, ttl, dscp, ecn, id, (df, mf), off)| Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                protocol: pr,
                payload_len: pl,
                ttl,
                dscp,
                ecn,
                ident: id,
                dont_frag: df,
                more_frags: mf,
                frag_offset: off << 3,
            })
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(r in arb_repr()) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf, ChecksumMode::Enabled).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, ChecksumMode::Enabled).unwrap(), r);
            // etherparse as an independent oracle.
            let (h, _) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
            prop_assert_eq!(h.header_checksum, p.checksum());
            prop_assert_eq!(h.calc_header_checksum(), p.checksum());
            prop_assert_eq!(h.source, r.src_addr.octets());
            prop_assert_eq!(h.fragment_offset.value() * 8, r.frag_offset);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.payload(), p.options(), p.verify_checksum(), p.is_fragment());
                let _ = Repr::parse(&p, ChecksumMode::Enabled);
            }
            if let Ok(p) = Packet::new_checked_header(&b[..]) {
                let _ = (p.payload(), p.options(), p.packet_bytes());
            }
        }
    }
}
