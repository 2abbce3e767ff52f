//! UDP header view, checksum over the IPv4/IPv6 pseudo-header (RFC 768; zero checksum
//! rules RFC 768 / RFC 1122 §4.1.3.4 for IPv4, RFC 8200 §8.1 for IPv6) and [`Repr`].

use crate::be;
use crate::checksum::{self, PseudoHeader};
use crate::{ChecksumMode, IpProtocol, Result, WireError};

/// Byte ranges of the UDP header (RFC 768).
mod field {
    use crate::Field;
    pub(crate) const SRC_PORT: Field = 0..2;
    pub(crate) const DST_PORT: Field = 2..4;
    pub(crate) const LENGTH: Field = 4..6;
    pub(crate) const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
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

    /// Wrap a buffer that shows at least the 8-byte header; the length field is not
    /// judged (a NAPT rewrites ports of datagrams whatever they claim, and the datagram
    /// quoted in an ICMP error is cut short). [`Packet::payload`] stays within the buffer.
    #[inline]
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// At least 8 bytes, length field ≥ 8 and ≤ buffer length. A longer buffer is fine;
    /// [`Packet::payload`] stops at the length field.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = self.len() as usize;
        if len < HEADER_LEN {
            return Err(WireError::BadTotalLen);
        }
        if d.len() < len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field (header + payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Checksum field (0 = none, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    fn end(&self) -> usize {
        let d = self.buffer.as_ref();
        (self.len() as usize).clamp(HEADER_LEN.min(d.len()), d.len())
    }

    /// Payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = self.end();
        &self.buffer.as_ref()[HEADER_LEN.min(end)..end]
    }

    /// The datagram up to the length field.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        let end = self.end();
        &self.buffer.as_ref()[..end]
    }

    /// Whether the checksum verifies under `ph`. Over IPv4 a zero checksum means "none"
    /// and verifies; over IPv6 zero is invalid (RFC 8200 §8.1).
    #[inline]
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return ph.is_v4();
        }
        let d = self.datagram();
        checksum::add(ph.sum(IpProtocol::UDP, d.len() as u32), checksum::data(d)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::SRC_PORT.start, v)
    }
    /// Set destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::DST_PORT.start, v)
    }
    /// Set the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }

    /// Compute and store the checksum under `ph` (0 is sent as 0xFFFF, RFC 768).
    #[inline]
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let d = self.datagram();
        let c = checksum::with_pseudo(ph.sum(IpProtocol::UDP, d.len() as u32), d);
        self.set_checksum(checksum::udp_fixup(c))
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.end();
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }
}

/// A high-level UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Parse a datagram; with `mode` enabled verifies the checksum (see
    /// [`Packet::verify_checksum`] for the zero rule).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        ph: &PseudoHeader,
        mode: ChecksumMode,
    ) -> Result<Repr> {
        packet.check_len()?;
        if mode == ChecksumMode::Enabled && !packet.verify_checksum(ph) {
            return Err(WireError::BadChecksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// Header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the header into `buf[..8]`; bytes `8..buffer_len()` must already hold the
    /// payload. With `mode` enabled the checksum is filled (0 → 0xFFFF); disabled leaves 0
    /// ("no checksum", valid over IPv4 only). Returns 8.
    pub fn emit(&self, buf: &mut [u8], ph: &PseudoHeader, mode: ChecksumMode) -> Result<usize> {
        let total = self.buffer_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        let len = u16::try_from(total).map_err(|_| WireError::FieldOverflow)?;
        let mut p = Packet::new_unchecked(&mut buf[..total]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.set_checksum(0);
        if mode == ChecksumMode::Enabled {
            p.fill_checksum(ph);
        }
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_header_ignores_the_length_field() {
        // Ports 40000 → 53, length field 200 although only 8 bytes are present.
        let b = [0x9c, 0x40, 0x00, 0x35, 0x00, 0xc8, 0x12, 0x34];
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(WireError::Truncated)
        );
        let p = Packet::new_checked_header(&b[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.checksum()),
            (40000, 53, 0x1234)
        );
        assert!(p.payload().is_empty());
        assert_eq!(
            Packet::new_checked_header(&b[..7]).err(),
            Some(WireError::Truncated)
        );
    }
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // UDP part of tests/fixtures/ipv4_udp_dns.bin (192.0.2.10:53000 -> 198.51.100.53:53).
    // tshark 4.0.17: checksum 0xc8b7 [correct].
    static DNS_BYTES: [u8; 37] = [
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0xc8, 0xb7, // header
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78,
        0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    // UDP part of tests/fixtures/ipv4_udp_csum_ffff.bin (192.0.2.1:1000 -> 192.0.2.2:2000):
    // computed checksum 0, sent as 0xffff. tshark: 0xffff [correct].
    static FFFF_BYTES: [u8; 12] = [
        0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0c, 0xff, 0xff, 0x70, 0x1a, 0x00, 0x00,
    ];

    fn ph() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 0, 2, 10),
            dst: Ipv4Addr::new(198, 51, 100, 53),
        }
    }

    fn ph_ffff() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&DNS_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.checksum(), 0xc8b7);
        assert!(p.verify_checksum(&ph()));
        assert_eq!(p.payload(), &DNS_BYTES[8..]);
        let r = Repr::parse(&p, &ph(), ChecksumMode::Enabled).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 53000,
                dst_port: 53,
                payload_len: 29
            }
        );
    }

    #[test]
    fn construct() {
        let mut buf = DNS_BYTES;
        buf[..8].fill(0x55);
        let r = Repr {
            src_port: 53000,
            dst_port: 53,
            payload_len: 29,
        };
        assert_eq!(r.emit(&mut buf, &ph(), ChecksumMode::Enabled).unwrap(), 8);
        assert_eq!(buf, DNS_BYTES);
        assert_eq!(
            r.emit(&mut buf[..36], &ph(), ChecksumMode::Enabled),
            Err(WireError::BufferTooSmall)
        );
        // Zero checksum is sent as 0xffff.
        let mut buf = FFFF_BYTES;
        buf[..8].fill(0);
        let r = Repr {
            src_port: 1000,
            dst_port: 2000,
            payload_len: 4,
        };
        r.emit(&mut buf, &ph_ffff(), ChecksumMode::Enabled).unwrap();
        assert_eq!(buf, FFFF_BYTES);
        assert!(Packet::new_unchecked(&buf[..]).verify_checksum(&ph_ffff()));
    }

    #[test]
    fn zero_checksum_rules() {
        let mut b = DNS_BYTES;
        b[6..8].fill(0);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&ph()));
        let v6 = PseudoHeader::V6 {
            src: Ipv6Addr::LOCALHOST,
            dst: Ipv6Addr::LOCALHOST,
        };
        assert!(!p.verify_checksum(&v6));
        assert_eq!(
            Repr::parse(&p, &v6, ChecksumMode::Enabled),
            Err(WireError::BadChecksum)
        );
        // Disabled checksum on emit leaves 0.
        let r = Repr::parse(&p, &ph(), ChecksumMode::Enabled).unwrap();
        r.emit(&mut b, &ph(), ChecksumMode::Disabled).unwrap();
        assert_eq!(&b[6..8], &[0, 0]);
    }

    #[test]
    fn truncated_and_inconsistent() {
        for n in 0..DNS_BYTES.len() {
            assert_eq!(
                Packet::new_checked(&DNS_BYTES[..n]),
                Err(WireError::Truncated),
                "len {n}"
            );
        }
        let mut b = DNS_BYTES;
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::BadTotalLen));
        // Longer buffer: payload stops at the length field.
        let mut v = DNS_BYTES.to_vec();
        v.push(0xee);
        let p = Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.payload(), &DNS_BYTES[8..]);
        assert!(p.verify_checksum(&ph()));
    }

    #[test]
    fn setters() {
        let mut b = DNS_BYTES;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        p.fill_checksum(&ph());
        assert!(p.verify_checksum(&ph()));
        assert_eq!(p.payload(), &[0xab, 0xcd]);
        p.payload_mut()[0] = 0;
        assert!(!p.verify_checksum(&ph()));
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(sp in any::<u16>(), dp in any::<u16>(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..100),
                                 s in any::<[u8; 16]>(), d in any::<[u8; 16]>(), v6 in any::<bool>()) {
            let ph = if v6 {
                PseudoHeader::V6 { src: s.into(), dst: d.into() }
            } else {
                PseudoHeader::V4 { src: [s[0], s[1], s[2], s[3]].into(), dst: [d[0], d[1], d[2], d[3]].into() }
            };
            let r = Repr { src_port: sp, dst_port: dp, payload_len: payload.len() };
            let mut buf = vec![0u8; r.buffer_len()];
            buf[8..].copy_from_slice(&payload);
            r.emit(&mut buf, &ph, ChecksumMode::Enabled).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, &ph, ChecksumMode::Enabled).unwrap(), r);
            prop_assert_ne!(p.checksum(), 0);
            let h = etherparse::UdpHeader { source_port: sp, destination_port: dp, length: buf.len() as u16, checksum: 0 };
            let want = match ph {
                PseudoHeader::V4 { src, dst } => h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), &payload).unwrap(),
                PseudoHeader::V6 { src, dst } => h.calc_checksum_ipv6_raw(src.octets(), dst.octets(), &payload).unwrap(),
            };
            prop_assert_eq!(p.checksum(), want);
        }

        /// NAPT rewrite of address and port with incremental update equals a full
        /// recomputation, and a zero (absent) checksum stays zero.
        #[test]
        fn napt_incremental(payload in proptest::collection::vec(any::<u8>(), 0..40),
                            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                            new_src in any::<[u8; 4]>(), sp in any::<u16>(), new_sp in any::<u16>(),
                            absent in any::<bool>()) {
            let ph = PseudoHeader::V4 { src: src.into(), dst: dst.into() };
            let nph = PseudoHeader::V4 { src: new_src.into(), dst: dst.into() };
            let r = Repr { src_port: sp, dst_port: 53, payload_len: payload.len() };
            let mut buf = vec![0u8; r.buffer_len()];
            buf[8..].copy_from_slice(&payload);
            let mode = if absent { ChecksumMode::Disabled } else { ChecksumMode::Enabled };
            r.emit(&mut buf, &ph, mode).unwrap();
            let mut p = Packet::new_checked(&mut buf[..]).unwrap();
            let delta = checksum::Delta::new().replace(&src, &new_src).replace_16(sp, new_sp);
            let c = delta.apply_udp(p.checksum());
            p.set_src_port(new_sp);
            p.set_checksum(c);
            if absent {
                prop_assert_eq!(p.checksum(), 0);
            } else {
                prop_assert!(p.verify_checksum(&nph));
                let full = p.checksum();
                p.fill_checksum(&nph);
                prop_assert_eq!(full, p.checksum());
            }
        }
    }
}
