//! Internet checksum: full computation (RFC 1071), IPv4/IPv6 pseudo-headers, and RFC 1624
//! incremental updates for in-place NAPT rewrites.
//!
//! Vocabulary used below:
//! * a **sum** is the 16-bit one's-complement sum of some bytes (not inverted);
//! * a **checksum** is the inverted sum that goes on the wire.
//!
//! Incremental updates use RFC 1624 §3, eqn. 3:
//!
//! ```text
//!     HC' = ~(~HC + ~m + m')
//! ```
//!
//! where `HC` is the old checksum, `m` the old 16-bit word and `m'` the new one (all in
//! one's-complement arithmetic). Unlike eqn. 2 (`HC' = HC - ~m - m'`), eqn. 3 never turns a
//! valid checksum into the wrong zero (`0xFFFF` vs `0x0000`, RFC 1624 §4).
//!
//! UDP corner cases (RFC 768, RFC 1122 §4.1.3.4):
//! * a computed UDP checksum of `0x0000` is transmitted as `0xFFFF` ([`udp_fixup`]);
//! * a received UDP-over-IPv4 checksum of `0` means "no checksum" and must stay `0` after
//!   a NAT rewrite ([`adjust_udp`], [`Delta::apply_udp`]).
//!   (Over IPv6 a zero UDP checksum is invalid, RFC 8200 §8.1; the NAT works on IPv4.)

use core::net::{Ipv4Addr, Ipv6Addr};

/// Fold a 64-bit accumulator into a 16-bit one's-complement sum (end-around carry).
#[inline]
pub const fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// One's-complement sum of `bytes` as big-endian 16-bit words (RFC 1071 §4.1), folded but
/// not inverted. An odd trailing byte is padded with a zero low byte.
///
/// Processes 8 bytes per step into a 64-bit accumulator (two 32-bit adds, no carry
/// handling needed below 16 GiB of input), then folds.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_be_bytes(w);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder();
    if rest.len() >= 4 {
        acc += u64::from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        acc += u64::from(b) << 8;
    }
    fold(acc)
}

/// One's-complement addition of two sums.
#[inline]
pub const fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// One's-complement sum of several sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Checksum (inverted sum) of `bytes`: what goes in an IPv4 header or ICMPv4 message.
#[inline]
pub fn of(bytes: &[u8]) -> u16 {
    !data(bytes)
}

/// Checksum of `bytes` preceded by a pseudo-header whose sum is `pseudo`.
#[inline]
pub fn with_pseudo(pseudo: u16, bytes: &[u8]) -> u16 {
    !add(pseudo, data(bytes))
}

/// Sum of the IPv4 pseudo-header (RFC 768, RFC 9293 §3.1): src, dst, zero, protocol,
/// upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = u64::from(u32::from_be_bytes(src.octets()))
        + u64::from(u32::from_be_bytes(dst.octets()))
        + u64::from(protocol)
        + u64::from(length);
    fold(s)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): src, dst, 32-bit upper-layer length,
/// three zero bytes, next header.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc = u64::from(next_header) + u64::from(length);
    for a in [src.octets(), dst.octets()] {
        for w in a.chunks_exact(4) {
            acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    fold(acc)
}

/// The addresses of a pseudo-header, IPv4 or IPv6, for TCP/UDP/ICMPv6 checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PseudoHeader {
    /// IPv4 source and destination.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// IPv6 source and destination.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl PseudoHeader {
    /// Pseudo-header sum for `protocol` and upper-layer `length`.
    #[inline]
    pub fn sum(&self, protocol: u8, length: u32) -> u16 {
        match self {
            PseudoHeader::V4 { src, dst } => pseudo_header_v4(src, dst, protocol, length),
            PseudoHeader::V6 { src, dst } => pseudo_header_v6(src, dst, protocol, length),
        }
    }

    /// Whether this is an IPv4 pseudo-header.
    #[inline]
    pub const fn is_v4(&self) -> bool {
        matches!(self, PseudoHeader::V4 { .. })
    }
}

/// RFC 768: a computed UDP checksum of zero is transmitted as all ones.
#[inline]
pub const fn udp_fixup(csum: u16) -> u16 {
    if csum == 0 {
        0xffff
    } else {
        csum
    }
}

/// RFC 1624 eqn. 3 for one 16-bit word: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub const fn update_16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u64 + !old as u64 + new as u64)
}

/// RFC 1624 eqn. 3 for a 32-bit value (two words), e.g. an IPv4 address or TCP seq.
#[inline]
pub const fn update_32(csum: u16, old: u32, new: u32) -> u16 {
    let s = !csum as u64
        + (!(old >> 16) & 0xffff) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(s)
}

/// Adjust `csum` after the bytes `old` were replaced by `new` (same length, starting at an
/// even offset of the checksummed data). Use for address/port rewrites in NAPT.
///
/// `HC' = ~(~HC + ~sum(old) + sum(new))`, RFC 1624 eqn. 3 over many words.
#[inline]
pub fn adjust(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    Delta::new().replace(old, new).apply(csum)
}

/// [`adjust`] for a UDP checksum: a zero (absent, UDP/IPv4) checksum stays zero, and a
/// result of zero is sent as `0xFFFF`.
#[inline]
pub fn adjust_udp(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    Delta::new().replace(old, new).apply_udp(csum)
}

/// An accumulated checksum change (`Σ ~m + m'`), built once per rewrite and applied to
/// several checksums: e.g. for SNAT the address change goes into both the IPv4 header
/// checksum and the TCP/UDP checksum, the port change only into the latter.
///
/// ```
/// use mape_wire::checksum::Delta;
/// let addr = Delta::new().replace(&[192, 168, 1, 10], &[203, 0, 113, 7]);
/// let l4 = addr.replace_16(50_000, 2_048);
/// # let (ip_csum, tcp_csum) = (0x1234, 0x5678);
/// let ip_csum = addr.apply(ip_csum);
/// let tcp_csum = l4.apply(tcp_csum);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    #[inline]
    pub const fn new() -> Self {
        Delta(0)
    }

    /// Record that 16-bit word `old` became `new`.
    #[inline]
    #[must_use]
    pub const fn replace_16(self, old: u16, new: u16) -> Self {
        Delta(self.0 + !old as u64 + new as u64)
    }

    /// Record that 32-bit value `old` (at an even offset) became `new`.
    #[inline]
    #[must_use]
    pub const fn replace_32(self, old: u32, new: u32) -> Self {
        self.replace_16((old >> 16) as u16, (new >> 16) as u16)
            .replace_16(old as u16, new as u16)
    }

    /// Record that bytes `old` (at an even offset) became `new` (same length).
    #[inline]
    #[must_use]
    pub fn replace(self, old: &[u8], new: &[u8]) -> Self {
        Delta(self.0 + u64::from(!data(old)) + u64::from(data(new)))
    }

    /// Apply to a checksum (IPv4 header, TCP, ICMP): `~(~HC + Δ)`.
    #[inline]
    pub const fn apply(self, csum: u16) -> u16 {
        // Fold Δ first so the accumulator cannot overflow however many words it holds.
        !fold(!csum as u64 + fold(self.0) as u64)
    }

    /// Apply to a UDP checksum: `0` (no checksum, UDP/IPv4) stays `0`; a result of `0` is
    /// sent as `0xFFFF` (RFC 768).
    #[inline]
    pub const fn apply_udp(self, csum: u16) -> u16 {
        if csum == 0 {
            0
        } else {
            udp_fixup(self.apply(csum))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive RFC 1071 reference: 16 bits at a time, fold at the end.
    fn naive(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in bytes.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            s += u32::from(w);
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 numerical example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&b), 0xddf2);
        assert_eq!(naive(&b), 0xddf2);
    }

    #[test]
    fn odd_lengths() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        let b: Vec<u8> = (0..=255u8).collect();
        for n in 0..b.len() {
            assert_eq!(data(&b[..n]), naive(&b[..n]), "len {n}");
        }
    }

    #[test]
    fn ipv4_header_checksum_known() {
        // Wikipedia's IPv4 header checksum example: checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(of(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(data(&h), 0xffff);
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let s4 = Ipv4Addr::new(192, 0, 2, 1);
        let d4 = Ipv4Addr::new(198, 51, 100, 200);
        let mut ph = Vec::new();
        ph.extend_from_slice(&s4.octets());
        ph.extend_from_slice(&d4.octets());
        ph.extend_from_slice(&[0, 17, 0x01, 0x23]);
        assert_eq!(pseudo_header_v4(&s4, &d4, 17, 0x123), naive(&ph));

        let s6: Ipv6Addr = "2001:db8::ffff:1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6.octets());
        ph.extend_from_slice(&d6.octets());
        ph.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 58, 0x0001_0203), naive(&ph));
        let all = Ipv6Addr::from(u128::MAX);
        let mut ph = [0xffu8; 40];
        ph[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        ph[36..39].fill(0);
        ph[39] = 255;
        assert_eq!(pseudo_header_v6(&all, &all, 255, u32::MAX), naive(&ph));
    }

    #[test]
    fn udp_zero_corner_cases() {
        assert_eq!(udp_fixup(0), 0xffff);
        assert_eq!(udp_fixup(0x1234), 0x1234);
        // An absent checksum stays absent whatever is rewritten.
        assert_eq!(adjust_udp(0, &[1, 2, 3, 4], &[9, 9, 9, 9]), 0);
        assert_eq!(Delta::new().replace_16(1, 2).apply_udp(0), 0);
        // A rewrite that makes the checksum 0 sends 0xFFFF: find one by construction.
        // csum 0x0001 with word 0x0000 -> 0x0001: HC' = ~(~1 + ~0 + 1) = ~(0xfffe+0xffff+1)
        let c = update_16(0x0001, 0x0000, 0x0001);
        assert_eq!(c, 0x0000);
        assert_eq!(adjust_udp(0x0001, &[0, 0], &[0, 1]), 0xffff);
    }

    #[test]
    fn rfc1624_section4_example() {
        // RFC 1624 §4: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000 with eqn 3.
        assert_eq!(update_16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    fn full_with(pseudo: u16, body: &[u8], csum_at: usize) -> u16 {
        let mut b = body.to_vec();
        b[csum_at..csum_at + 2].fill(0);
        with_pseudo(pseudo, &b)
    }

    proptest! {
        #[test]
        fn fast_equals_naive(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&b), naive(&b));
        }

        #[test]
        fn combine_is_split_invariant(b in proptest::collection::vec(any::<u8>(), 0..200), at in 0usize..100) {
            let at = (at.min(b.len())) & !1;
            prop_assert_eq!(add(data(&b[..at]), data(&b[at..])), data(&b));
            prop_assert_eq!(combine(&[data(&b[..at]), data(&b[at..])]), data(&b));
        }

        /// Random TCP-like segment with an IPv4 pseudo-header; rewrite source address and
        /// port (SNAT) incrementally and compare with a full recomputation.
        #[test]
        fn incremental_matches_full_v4(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            new_src in any::<[u8; 4]>(), new_port in any::<u16>(),
            mut body in proptest::collection::vec(any::<u8>(), 20..80),
            udp in any::<bool>(),
        ) {
            let proto = if udp { 17 } else { 6 };
            let csum_at = if udp { 6 } else { 16 };
            let (s, d, ns) = (Ipv4Addr::from(src), Ipv4Addr::from(dst), Ipv4Addr::from(new_src));
            let len = body.len() as u32;
            let mut c = full_with(pseudo_header_v4(&s, &d, proto, len), &body, csum_at);
            if udp { c = udp_fixup(c); }
            body[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            let old_port = u16::from_be_bytes([body[0], body[1]]);
            let delta = Delta::new().replace(&src, &new_src).replace_16(old_port, new_port);
            let inc = if udp { delta.apply_udp(c) } else { delta.apply(c) };
            body[0..2].copy_from_slice(&new_port.to_be_bytes());
            let mut full = full_with(pseudo_header_v4(&ns, &d, proto, len), &body, csum_at);
            if udp { full = udp_fixup(full); }
            prop_assert_eq!(inc, full);
            // Verifying the rewritten segment sums to all-ones.
            body[csum_at..csum_at + 2].copy_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(add(pseudo_header_v4(&ns, &d, proto, len), data(&body)), 0xffff);
            // The slice-based and word-based helpers agree.
            let mut a = if udp { adjust_udp(c, &src, &new_src) } else { adjust(c, &src, &new_src) };
            a = if udp {
                Delta::new().replace_16(old_port, new_port).apply_udp(a)
            } else {
                update_16(a, old_port, new_port)
            };
            prop_assert_eq!(a, full);
            let b = update_32(c, u32::from_be_bytes(src), u32::from_be_bytes(new_src));
            let b = update_16(b, old_port, new_port);
            if udp { prop_assert_eq!(udp_fixup(b), full); } else { prop_assert_eq!(b, full); }
        }

        /// Corner cases: words and checksums at 0x0000 / 0xFFFF.
        #[test]
        fn incremental_corner_words(
            old in prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
            new in prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
            rest in proptest::collection::vec(any::<u8>(), 2..16),
        ) {
            // body: [word][csum][rest], checksum over it with no pseudo-header.
            let mut body = vec![0u8; 4];
            body[0..2].copy_from_slice(&old.to_be_bytes());
            body.extend_from_slice(&rest);
            // Real checksummed data is never all-zero (the pseudo-header has a protocol).
            body.push(1);
            let c = full_with(0, &body, 2);
            body[2..4].copy_from_slice(&c.to_be_bytes());
            let inc = update_16(c, old, new);
            body[0..2].copy_from_slice(&new.to_be_bytes());
            let full = full_with(0, &body, 2);
            // 0x0000 and 0xFFFF are the same number in one's complement; eqn. 3 yields the
            // representation a full computation yields unless the data sum is zero.
            prop_assert_eq!(inc, full);
            prop_assert_eq!(udp_fixup(update_16(udp_fixup(c), old, new)), udp_fixup(full));
        }

        #[test]
        fn incremental_matches_full_v6(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), new_dst in any::<[u8; 16]>(),
            mut body in proptest::collection::vec(any::<u8>(), 8..64),
        ) {
            let (s, d, nd) = (Ipv6Addr::from(src), Ipv6Addr::from(dst), Ipv6Addr::from(new_dst));
            let len = body.len() as u32;
            let c = full_with(pseudo_header_v6(&s, &d, 58, len), &body, 2);
            body[2..4].copy_from_slice(&c.to_be_bytes());
            let inc = adjust(c, &dst, &new_dst);
            prop_assert_eq!(inc, full_with(pseudo_header_v6(&s, &nd, 58, len), &body, 2));
        }
    }
}
